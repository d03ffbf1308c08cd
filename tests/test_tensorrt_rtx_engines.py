"""Real TensorRT-RTX engines built on this CPU-only machine from emitted ONNX, for whole models.

TensorRT-RTX builds engines without a GPU; nothing in this workplace can *run* them (CI has no
GPU, and the H100/H200 has compute capability 9.0, which TensorRT-RTX refuses), so these tests
check what can be checked: the partition for the tensorrt-rtx capability, the ONNX the emitter
writes for each segment (onnx.checker), the engine build with a dynamic-batch optimization
profile, and the requirements recorded for the runtime.
"""

from __future__ import annotations

import pytest

from packager.backends import get_backend
from packager.backends.onnx_emit import emit_onnx
from packager.frontends import import_torchscript
from packager.lowering import lower
from packager.segment import outline, partition
from packager.spec import parse_input_spec
from tests import models

onnx = pytest.importorskip("onnx")
pytest.importorskip("tensorrt_rtx")


@pytest.mark.parametrize(
    "save, spec",
    [(models.save_resnet, "1..4x3x32x32:float32"), (models.save_encoder, "1..4x8:int64")],
    ids=["cnn", "transformer"],
)
def test_tensorrt_rtx_engines_build_from_emitted_onnx_with_a_dynamic_batch_profile(tmp_path, save, spec):
    graph = import_torchscript(save(tmp_path / "model.pt"), [parse_input_spec(spec)])
    lower(graph)
    backend = get_backend("tensorrt-rtx")
    segments = outline(graph, partition(graph, backend.capability))
    assert segments, "expected at least one TensorRT-RTX segment"
    engine_ops = sum(1 for s in segments.values() for n in s.walk() if n.op != "prim::Constant")
    glue_ops = [n for n in graph.walk() if n.op not in ("prim::Constant", "poros::engine")]
    assert engine_ops > len(glue_ops), "most of the model should go to TensorRT-RTX"
    for node in glue_ops:
        assert node.meta.get("fallback_reason"), f"{node.kind} is in the glue without a reason"

    for segment_id, segment in segments.items():
        segment.meta["symbols"] = graph.meta["symbols"]
        onnx.checker.check_model(emit_onnx(segment), full_check=True)
        variant = backend.compile(segment, device="cuda", precision="fp32", workdir=tmp_path)
        assert variant.backend == "tensorrt-rtx" and len(variant.payload) > 10_000
        requirements = variant.requirements
        assert requirements["library"] == "tensorrt-rtx" and requirements["device_type"] == "cuda"
        assert "9.0" not in requirements["compute_capabilities"]
        # The model input's batch dim is s0 in 1..4: some engine input must be profiled over it.
        profile = variant.meta["profile"]
        assert any(shapes["min"][0] == 1 and shapes["max"][0] == 4 for shapes in profile.values()), profile
