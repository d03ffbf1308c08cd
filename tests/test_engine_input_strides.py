"""Engines get the values their code was compiled for, whatever the strides of what they are given.

AOTInductor code indexes each input with the strides seen when it was exported (contiguous)
and does not check them at run time. Non-contiguous tensors reach an engine two ways: the
caller passes a view (a transposed or sliced tensor), or the glue hands over a view (a reshape
of a chunk, as in attention blocks whose chunk stays in the glue). Both must give the model's
numbers.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from packager.build import BuildOptions, build
from packager.spec import parse_input_spec

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning")


class Affine(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x * self.weight + 1.0)


class ChunkInGlue(nn.Module):
    """The chunk stays in the glue (--fallback-op), so the engine after it receives reshaped
    views of a tensor's last-dim slices."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(x)
        a, b = x.chunk(2, dim=-1)
        batch = x.size(0)
        return torch.relu(a.reshape(batch, 2, 3) * 2.0 - b.reshape(batch, 2, 3))


def _build(model: nn.Module, example: torch.Tensor, path, spec: str, **options):
    torch.manual_seed(0)
    traced = torch.jit.trace(model.eval(), example)
    torch.jit.save(traced, str(path.with_suffix(".pt")))
    artifact = path.with_suffix(".poros")
    report = build(path.with_suffix(".pt"), artifact, BuildOptions(inputs=[parse_input_spec(spec)], **options))
    return traced, artifact, report


def test_a_transposed_input_gives_the_models_numbers(tmp_path) -> None:
    import poros_runtime

    torch.manual_seed(0)
    traced, artifact, _ = _build(Affine(), torch.randn(3, 6), tmp_path / "affine", "1..5x6:float32",
                                 self_check=False)
    module = poros_runtime.load(artifact)
    x = torch.randn(6, 4).t()  # shape (4, 6), strides (1, 4)
    assert not x.is_contiguous()
    torch.testing.assert_close(module(x), traced(x), rtol=1e-5, atol=1e-6)


def test_views_made_in_the_glue_reach_the_engine_with_their_values(tmp_path) -> None:
    import poros_runtime

    # No self-check: it would catch the problem too, but the point is the runtime's answer.
    traced, artifact, report = _build(ChunkInGlue(), torch.randn(2, 12), tmp_path / "chunk", "1..4x12:float32",
                                      fallback_ops=["aten::chunk"], self_check=False)
    assert "aten::chunk" in {node["op"] for node in report.fallback_nodes}
    assert len(report.segments) == 2
    module = poros_runtime.load(artifact)
    for batch in (1, 3, 4):
        x = torch.randn(batch, 12)
        torch.testing.assert_close(module(x), traced(x), rtol=1e-5, atol=1e-6)
