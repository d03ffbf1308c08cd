"""TensorRTBackend: real TensorRT-RTX plans built on this CPU-only host, requirements, capability.

What is NOT tested, and why: engine *execution*.  No machine of this project has a GPU that
TensorRT-RTX plans run on (CI is CPU-only; the H100/H200 is compute capability 9.0, which
TensorRT-RTX refuses), and datacenter TensorRT is not installable here.  Plans cannot even be
deserialized for inspection: ``trt.Runtime.deserialize_cuda_engine`` needs a CUDA driver and
returns None on this host, and ``get_engine_validity`` reports INVALID for the same reason; the
tests assert that, so they notice if it ever changes.

The ONNX emitter (``packager.backends.onnx_emit``) is written separately; these tests feed the
builder hand-made ``onnx.helper`` models, and the IR segments given with them stand for the
models' signatures (typed inputs/outputs with a dynamic batch ``s0`` in 1..8).
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, checker, helper, numpy_helper

from packager.backends import _tensorrt_build
from packager.backends import tensorrt as tensorrt_module
from packager.backends._tensorrt_precision import lower_float_precision
from packager.backends.registry import BackendRegistry
from packager.backends.tensorrt import TensorRTBackend
from packager.errors import BackendError
from packager.ir import Graph, SymDim, TensorType

trt = pytest.importorskip("tensorrt_rtx")

SYMBOLS = {"s0": {"min": 1, "opt": 4, "max": 8}}
BATCH = SymDim("s0", 1, 8)
# tensorrt_rtx 1.7's ComputeCapability members from 8.0 up (7.5 cannot compile fp32 GEMMs).
RTX_TARGETS = ["8.0", "8.6", "8.9", "12.0", "12.1"]


def model(nodes, inputs, outputs, initializers=()):
    built = helper.make_model(
        helper.make_graph(nodes, "m", inputs, outputs, list(initializers)),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    checker.check_model(built)
    return built


def weight(name, *shape):
    return numpy_helper.from_array(np.random.default_rng(0).standard_normal(shape).astype(np.float32), name)


def cnn_model():
    """Conv + Relu + GlobalAveragePool + Flatten + Gemm, batch N dynamic."""
    return model(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("GlobalAveragePool", ["r"], ["p"]),
            helper.make_node("Flatten", ["p"], ["f"]),
            helper.make_node("Gemm", ["f", "g"], ["y"], transB=1),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        [weight("w", 8, 3, 3, 3), weight("b", 8), weight("g", 10, 8)],
    )


def transformer_model():
    """Self-attention (MatMul/Softmax) + residual + LayerNormalization, batch N dynamic."""
    d = 16
    nodes = [helper.make_node("MatMul", ["x", f"w{n}"], [n]) for n in "qkv"]
    nodes += [
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["s"]),
        helper.make_node("Mul", ["s", "scale"], ["ss"]),
        helper.make_node("Softmax", ["ss"], ["a"], axis=-1),
        helper.make_node("MatMul", ["a", "v"], ["o"]),
        helper.make_node("Add", ["o", "x"], ["h"]),
        helper.make_node("LayerNormalization", ["h", "gamma", "beta"], ["y"], axis=-1),
    ]
    initializers = [weight(f"w{n}", d, d) for n in "qkv"] + [
        numpy_helper.from_array(np.array(d ** -0.5, dtype=np.float32), "scale"),
        numpy_helper.from_array(np.ones(d, dtype=np.float32), "gamma"),
        numpy_helper.from_array(np.zeros(d, dtype=np.float32), "beta"),
    ]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 8, d]) for n in ("x", "y")]
    return model(nodes, io[:1], io[1:], initializers)


def signature_segment(name, input_shape, output_shape, op="aten::relu"):
    graph = Graph(name)
    graph.meta["symbols"] = SYMBOLS
    x = graph.add_input(TensorType("float32", input_shape), "x")
    out = graph.block.append_node(op, (x,), (TensorType("float32", output_shape),)).output
    graph.block.set_returns([out])
    return graph


class StubEmitter:
    """Stands in for packager.backends.onnx_emit: emits a fixed ONNX op per IR op."""

    ONNX_OPS = {"aten::relu": "Relu", "aten::unique_dim": "Unique"}

    def __init__(self):
        self.emitted = 0

    def emission_capability(self, node):
        return None if node.op in self.ONNX_OPS else f"no ONNX emission for {node.op}"

    def emit_onnx(self, segment, *, opset=17):
        self.emitted += 1
        (node,) = list(segment.walk())
        shape = ["N" if isinstance(d, SymDim) else d for d in segment.inputs[0].type.shape]
        return model(
            [helper.make_node(self.ONNX_OPS[node.op], [segment.inputs[0].name], ["out"])],
            [helper.make_tensor_value_info(segment.inputs[0].name, TensorProto.FLOAT, shape)],
            [helper.make_tensor_value_info("out", TensorProto.FLOAT, shape)],
        )


@pytest.mark.parametrize("make_model, input_shape, output_shape", [
    (cnn_model, (BATCH, 3, 16, 16), (BATCH, 10)),
    (transformer_model, (BATCH, 8, 16), (BATCH, 8, 16)),
], ids=["cnn", "transformer"])
def test_rtx_builds_plan_with_dynamic_batch_profile(tmp_path, make_model, input_shape, output_shape):
    backend = TensorRTBackend("tensorrt-rtx")
    segment = signature_segment("seg0", input_shape, output_shape)
    variant = backend.compile_onnx(segment, make_model(), precision="fp32", workdir=tmp_path)

    assert variant.backend == "tensorrt-rtx" and variant.size > 10_000
    assert (tmp_path / "seg0.tensorrt-rtx.plan").read_bytes() == variant.payload
    assert variant.requirements == {
        "device_type": "cuda",
        "library": "tensorrt-rtx",
        "library_version": trt.__version__,
        "compute_capabilities": RTX_TARGETS,
        "version_compatible": False,
        "builder_options": {"strongly_typed": True, "precision": "fp32", "tf32": True,
                            "optimization_level": None, "onnx_opset": 17},
        "torch": None,
    }
    assert "9.0" not in variant.requirements["compute_capabilities"]
    rest = list(input_shape[1:])
    assert variant.meta["profile"] == {"x": {"min": [1, *rest], "opt": [4, *rest], "max": [8, *rest]}}
    assert variant.meta["engine_inputs"] == ["x"] and variant.meta["engine_outputs"] == ["y"]
    assert variant.meta["inputs"][0]["dims"][0] == {"symbol": "s0", "min": 1, "max": 8}

    # Inspection needs a CUDA driver: documents (and detects a change in) what this host can do.
    runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
    assert runtime.deserialize_cuda_engine(variant.payload) is None
    assert runtime.get_engine_validity(variant.payload)[0] == trt.EngineValidity.INVALID


@pytest.mark.parametrize("precision, dtype", [("fp16", TensorProto.FLOAT16), ("bf16", TensorProto.BFLOAT16)])
def test_low_precision_casts_inside_and_keeps_float32_boundaries(precision, dtype):
    lowered = lower_float_precision(transformer_model(), {"fp16": "float16", "bf16": "bfloat16"}[precision])
    assert {i.data_type for i in lowered.graph.initializer} == {dtype}
    assert lowered.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert lowered.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert lowered.graph.node[0].op_type == "Cast" and lowered.graph.node[-1].op_type == "Cast"
    segment = signature_segment("seg0", (BATCH, 8, 16), (BATCH, 8, 16))
    variant = TensorRTBackend("tensorrt-rtx", compute_capabilities=["8.6"]).compile_onnx(
        segment, lowered, precision=precision)
    assert variant.size > 0 and variant.requirements["compute_capabilities"] == ["8.6"]
    assert variant.requirements["builder_options"]["precision"] == precision


def test_compile_through_emitter_stub(tmp_path):
    emitter = StubEmitter()
    backend = TensorRTBackend("tensorrt-rtx", emitter=emitter)
    segment = signature_segment("seg1", (BATCH, 32), (BATCH, 32))
    variant = backend.compile(segment, device="cuda", precision="fp16", workdir=tmp_path)
    assert variant.size > 0 and variant.meta["profile"]["x"]["max"] == [8, 32]


def test_compile_without_emitter_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(tensorrt_module, "_EMITTER_MODULE", "packager.backends.no_such_emitter")
    backend = TensorRTBackend("tensorrt-rtx")
    segment = signature_segment("seg0", (BATCH, 4), (BATCH, 4))
    assert "ONNX emission is not available" in backend.capability(next(segment.walk()))
    with pytest.raises(BackendError, match="ONNX emission not available"):
        backend._compile_impl(segment, device="cuda", precision="fp32", workdir=tmp_path)


def test_capability_probes_parser_and_caches_the_verdict():
    emitter = StubEmitter()
    backend = TensorRTBackend("tensorrt-rtx", emitter=emitter)
    relu = next(signature_segment("a", (BATCH, 4), (BATCH, 4)).walk())
    unique = next(signature_segment("b", (BATCH, 4), (BATCH, 4), op="aten::unique_dim").walk())
    other = next(signature_segment("c", (BATCH, 4), (BATCH, 4), op="aten::fft_rfft").walk())
    assert backend.capability(relu) is None
    reason = backend.capability(unique)
    assert reason.startswith("the tensorrt_rtx ONNX parser rejects it: Unique")
    assert backend.capability(other) == "no ONNX emission for aten::fft_rfft"
    again = next(signature_segment("d", (BATCH, 4), (BATCH, 4)).walk())
    assert backend.capability(again) is None and emitter.emitted == 2


def test_parser_rejection_reason_for_unsupported_op():
    rejected = model(
        [helper.make_node("Det", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
    )
    reason = _tensorrt_build.parser_rejection(trt, rejected)
    assert reason == "the tensorrt_rtx ONNX parser rejects it: Det (node 0): unsupported operator or attribute combination"
    with pytest.raises(BackendError, match="ONNX parser rejected the model: Det"):
        TensorRTBackend("tensorrt-rtx").compile_onnx(signature_segment("s", (3, 3), ()), rejected, precision="fp32")


def test_profile_needs_a_max_and_version_compatible_needs_lean_runtime():
    segment = signature_segment("seg0", (BATCH, 3, 16, 16), (BATCH, 10))
    segment.meta["symbols"] = {"s0": {"min": 1, "opt": 4}}
    with pytest.raises(BackendError, match="symbol 's0' has no max"):
        TensorRTBackend("tensorrt-rtx").compile_onnx(segment, cnn_model(), precision="fp32")
    segment.meta["symbols"] = SYMBOLS
    with pytest.raises(BackendError, match="libnvinfer_lean"):
        TensorRTBackend("tensorrt-rtx", version_compatible=True).compile_onnx(segment, cnn_model(), precision="fp32")
    with pytest.raises(BackendError, match=r"Turing \(SM75\): FP32 GEMM is not supported"):
        TensorRTBackend("tensorrt-rtx", compute_capabilities=["7.5"]).compile_onnx(
            segment, cnn_model(), precision="fp32")


def test_datacenter_tensorrt_is_refused_plainly_on_this_host(tmp_path):
    backend = TensorRTBackend("tensorrt", emitter=StubEmitter())
    segment = signature_segment("seg0", (BATCH, 4), (BATCH, 4))
    with pytest.raises(BackendError, match=r"not installed.*tensorrt-rtx, which builds on CPU|needs an NVIDIA GPU"):
        backend.compile(segment, device="cuda", precision="fp32", workdir=tmp_path)
    assert "needs TensorRT and an NVIDIA GPU" in backend.capability(next(segment.walk()))


def test_both_flavours_register():
    registry = BackendRegistry([TensorRTBackend("tensorrt"), TensorRTBackend("tensorrt-rtx")])
    assert registry.names() == ("tensorrt", "tensorrt-rtx")
