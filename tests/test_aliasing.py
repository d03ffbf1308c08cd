"""Memory shared across an engine boundary: views made in an engine, written in the glue.

In eager TorchScript a view and its base are one memory: ``v = h.view(-1); v.add_(1)`` changes
``h``. When the view is computed inside an engine and the write stays in the glue (in-place ops
on views are not functionalized), the write reaches ``h`` only if the engine returned a real
view of ``h``. AOTInductor at fp32 does, on contiguous inputs. An fp16/bf16 engine returns copies
(its outputs are cast back to the model's dtype), TensorRT always does, and the runtime hands
AOTInductor a contiguous copy of a strided input, so a view of it is a view of the copy. The
partitioner therefore keeps such views in the glue (see packager/segment/partition.py).

Every model is built by the real packager (AOTInductor CPU engines) and run by poros_runtime in
an import-blocked child; outputs must match eager TorchScript.
"""

from __future__ import annotations

import os

import pytest
import torch

from packager.build import BuildOptions, build
from packager.spec import parse_input_spec
from tests.support.runtime import run_in_runtime

DEVICE = os.environ.get("POROS_TEST_DEVICE", "cpu")
TOLERANCE = {"fp32": (1e-4, 1e-5), "fp16": (1e-2, 1e-2)}


class SharedViewWritten(torch.nn.Module):
    """One engine returns ``h`` and its view ``v``; the glue writes ``v``; the next engine reads ``h``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(x) * 2.0
        v = h.view(-1)
        v.add_(1.0)
        return h + 1.0


class ChunkWritten(torch.nn.Module):
    """``chunk`` views (a list unpacked) share ``h``; the glue scales one chunk in place."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = x * 2.0 + 1.0
        a, b = h.chunk(2, dim=1)
        a.mul_(10.0)
        return h * 3.0, b + 1.0


class ViewOfGlueValueWritten(torch.nn.Module):
    """The engine's output ``v`` is a view of its input ``g`` (made by the glue: ``sin`` is a
    forced fallback); the glue writes ``v``, which doubles ``g`` for the last engine."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.sin(x)
        v = g.t()
        w = torch.cos(v) * 3.0
        v.mul_(2.0)
        return g + w.t()


class StridedInputViewWritten(torch.nn.Module):
    """The glue transposes (``transpose`` is a forced fallback), so the engine gets a strided
    input, which the runtime makes contiguous for AOTInductor: a view the engine returned would
    be a view of that copy, and the glue's write would not reach ``g``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.sin(x)
        g = h.transpose(0, 1)
        v = g.unsqueeze(0)
        w = torch.cos(v) * 3.0
        v.mul_(2.0)
        return g * w[0]


class SharedViewRead(torch.nn.Module):
    """Like SharedViewWritten, but nothing writes: the view may stay in the engine."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(x) * 2.0
        return h, h.view(-1)


# The fp32 cases with contiguous engine inputs match eager through AOTInductor's own views as
# well; they are here because cloning engine outputs that share memory (at run time) breaks them.
CASES = {
    # name: (model, fallback ops, precisions)
    "shared_view_written": (SharedViewWritten, (), ("fp32", "fp16")),
    "chunk_written": (ChunkWritten, (), ("fp32", "fp16")),
    "view_of_glue_value_written": (ViewOfGlueValueWritten, ("aten::sin",), ("fp32", "fp16")),
    "strided_input_view_written": (StridedInputViewWritten, ("aten::transpose",), ("fp32",)),
}
SPEC = "1..4x8:float32"


def _build(model: torch.nn.Module, tmp_path, fallback_ops=(), precision="fp32"):
    model_path = tmp_path / "model.pt"
    torch.jit.script(model).save(str(model_path))
    artifact = tmp_path / f"model.{precision}.poros"
    # No self-check: the comparison below is the test, and it should report numbers.
    report = build(model_path, artifact, BuildOptions(
        inputs=[parse_input_spec(SPEC)], device=DEVICE, precision=precision,
        fallback_ops=list(fallback_ops), self_check=False,
    ))
    return model_path, artifact, report


def _compare(model_path, artifact, batches, tmp_path, precision):
    outputs, _ = run_in_runtime(artifact, batches, tmp_path, device=DEVICE)
    reference = torch.jit.load(str(model_path)).eval()
    rtol, atol = TOLERANCE[precision]
    for inputs, actual in zip(batches, outputs):
        with torch.no_grad():
            expected = reference(*[tensor.clone() for tensor in inputs])
        expected = expected if isinstance(expected, tuple) else (expected,)
        actual = actual if isinstance(actual, tuple) else (actual,)
        assert len(actual) == len(expected)
        for got, want in zip(actual, expected):
            torch.testing.assert_close(got, want, rtol=rtol, atol=atol)


def _batches():
    generator = torch.Generator().manual_seed(3)
    return [[torch.randn(shape, generator=generator)] for shape in ((3, 8), (1, 8), (4, 8))]


@pytest.mark.parametrize(
    "name,precision",
    [(name, precision) for name, (_, _, precisions) in sorted(CASES.items()) for precision in precisions],
)
def test_glue_writes_through_views_as_in_eager(name, precision, tmp_path):
    model, fallback_ops, _ = CASES[name]
    model_path, artifact, report = _build(model(), tmp_path, fallback_ops, precision)
    assert report.segments, "the test needs at least one engine"
    _compare(model_path, artifact, _batches(), tmp_path, precision)


def test_views_stay_in_the_glue_only_when_something_writes_them(tmp_path):
    for folder in ("written", "read"):
        (tmp_path / folder).mkdir()
    _, _, written = _build(SharedViewWritten(), tmp_path / "written")
    view = [node for node in written.fallback_nodes if node["op"] == "aten::view"]
    assert view and "writes that memory in place" in view[0]["reason"], written.fallback_nodes

    _, _, read = _build(SharedViewRead(), tmp_path / "read")
    assert not any(node["op"] == "aten::view" for node in read.fallback_nodes), read.fallback_nodes
