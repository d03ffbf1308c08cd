"""Whole models: build -> .poros -> poros_runtime in a subprocess that cannot import the packager.

Each model is built in the test (no downloads), packaged with the inductor backend (AOTInductor
CPU engines) and run by the runtime in an import-blocked child; outputs must match eager
TorchScript. Tolerance: fp32 engines reorder and fuse float reductions, so we accept
relative 1e-4 / absolute 1e-5 per element; fp16 engines keep ~3 decimal digits (rtol 1e-2).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from packager.build import BuildOptions, build
from packager.spec import parse_input_spec
from tests import models
from tests.support.runtime import run_in_runtime

DEVICE = os.environ.get("POROS_TEST_DEVICE", "cpu")


def _assert_matches(actual, expected, rtol=1e-4, atol=1e-5):
    if isinstance(expected, tuple):
        assert isinstance(actual, tuple) and len(actual) == len(expected), "output structure differs from the model"
        for a, e in zip(actual, expected):
            _assert_matches(a, e, rtol, atol)
        return
    assert isinstance(actual, torch.Tensor)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)


CASES = {
    # name: (save function, input specs, input batches to run, expected minimum engine segments)
    "resnet": (models.save_resnet, ["1..4x3x32x32:float32"], [[(1, 3, 32, 32)], [(3, 3, 32, 32)], [(4, 3, 32, 32)]], 1),
    "encoder": (models.save_encoder, ["1..4x2..12:int64"], [[(1, 2)], [(3, 7)], [(4, 12)]], 1),
    "if_and_loop": (models.save_if_and_loop, ["1..5x16:float32"], [[(1, 16)], [(5, 16)]], 1),
    "fft": (models.save_fft, ["1..4x4x16:float32"], [[(1, 4, 16)], [(4, 4, 16)]], 2),
    "two_in_tuple_out": (models.save_two_in_tuple_out, ["1..8x8:float32", "1..8x6:float32"],
                         [[(2, 8), (2, 6)], [(8, 8), (8, 6)]], 1),
}


def _make_inputs(shapes, specs):
    generator = torch.Generator().manual_seed(1)
    tensors = []
    for shape, spec in zip(shapes, specs):
        if spec.dtype == "int64":
            tensors.append(torch.randint(0, 50, shape, generator=generator))
        else:
            tensors.append(torch.randn(shape, generator=generator))
    return tensors


@pytest.mark.parametrize("name", sorted(CASES))
def test_model_builds_and_matches_eager_in_the_runtime(name, tmp_path):
    save, spec_texts, batch_shapes, min_segments = CASES[name]
    model_path = save(tmp_path / f"{name}.pt")
    specs = [parse_input_spec(text) for text in spec_texts]
    artifact = tmp_path / f"{name}.poros"
    report = build(model_path, artifact, BuildOptions(inputs=specs, device=DEVICE))
    assert artifact.exists()
    assert len(report.segments) >= min_segments, f"expected engines, got {report.segments}"
    assert all(v["backend"] == "inductor" for s in report.segments for v in s["variants"])
    assert all(v["requirements"]["device_type"] == DEVICE for s in report.segments for v in s["variants"])

    batches = [_make_inputs(shapes, specs) for shapes in batch_shapes]
    outputs, result = run_in_runtime(artifact, batches, tmp_path, device=DEVICE)
    reference = torch.jit.load(str(model_path)).eval()
    for inputs, output in zip(batches, outputs):
        with torch.no_grad():
            expected = reference(*inputs)
        _assert_matches(output, expected)
    assert {p["backend"] for p in result["plan"]} == {"inductor"}


def test_fft_model_alternates_engine_glue_engine(tmp_path):
    model_path = models.save_fft(tmp_path / "fft.pt")
    artifact = tmp_path / "fft.poros"
    report = build(model_path, artifact, BuildOptions(inputs=[parse_input_spec("2x4x16:float32")], device=DEVICE))
    glue_ops = [node["op"] for node in report.fallback_nodes]
    assert any(op.startswith("aten::fft_rfft") for op in glue_ops), glue_ops
    fft_reason = next(n["reason"] for n in report.fallback_nodes if n["op"].startswith("aten::fft_rfft"))
    assert "complex" in fft_reason or "fft" in fft_reason.lower()
    assert len(report.segments) == 2


def test_static_batch_and_torchscript_target(tmp_path):
    model_path = models.save_two_in_tuple_out(tmp_path / "m.pt")
    specs = [parse_input_spec("4x8"), parse_input_spec("4x6")]
    for target in ("inductor", "torchscript"):
        artifact = tmp_path / f"m_{target}.poros"
        report = build(model_path, artifact, BuildOptions(inputs=specs, target=target, device=DEVICE))
        assert (len(report.segments) == 0) == (target == "torchscript")
        batches = [_make_inputs([(4, 8), (4, 6)], specs)]
        outputs, _ = run_in_runtime(artifact, batches, tmp_path, device=DEVICE)
        with torch.no_grad():
            expected = torch.jit.load(str(model_path))(*batches[0])
        _assert_matches(outputs[0], expected)


def test_fallback_op_and_min_segment_size_move_work_to_the_glue(tmp_path):
    model_path = models.save_two_in_tuple_out(tmp_path / "m.pt")
    specs = [parse_input_spec("1..8x8"), parse_input_spec("1..8x6")]
    forced = build(model_path, tmp_path / "forced.poros",
                   BuildOptions(inputs=specs, fallback_ops=["aten::softmax"], device=DEVICE))
    softmax = [n for n in forced.fallback_nodes if n["op"].startswith("aten::softmax")]
    assert softmax and "--fallback-op" in softmax[0]["reason"]
    everything = build(model_path, tmp_path / "small.poros", BuildOptions(inputs=specs, min_segment_size=1000, device=DEVICE))
    assert everything.segments == []
    assert any("min-segment-size" in n["reason"] for n in everything.fallback_nodes)
