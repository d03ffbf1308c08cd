"""Emitted models parse with the TensorRT-RTX ONNX parser (the one the tensorrt-rtx backend hands
them to) and build into plans on this CPU-only host: an emitted CNN segment with a dynamic batch,
and every numeric case of ``emitter_test.py``. Building matters beside parsing: the builder refuses
some networks the parser accepts (a transposed convolution both strided and dilated), and the
capability probe only parses. TensorRT engines cannot run on this project's machines (see
DESIGN.md), so numbers are checked against onnx.reference in ``emitter_test.py``."""

from __future__ import annotations

import pytest
import torch

from packager.backends._tensorrt_build import build_plan
from packager.backends.onnx_emit import emit_onnx
from packager.backends.onnx_emit.emitter_test import CASES, build_case
from packager.ir.types import INT, ListType, ScalarType, SymDim, TensorType
from packager.lowering._testing import GraphBuilder

trt = pytest.importorskip("tensorrt_rtx")


def _cnn_segment():
    batch = SymDim("s0", 1, 8)
    b = GraphBuilder("cnn")
    b.graph.meta["symbols"] = {"s0": {"min": 1, "opt": 4, "max": 8}}
    x = b.input(TensorType("float32", (batch, 3, 16, 16)), "x")

    def typed(*shape):
        return TensorType("float32", (batch, *shape))

    conv = b.op("aten::conv2d", x, b.const(torch.randn(8, 3, 3, 3)), b.const(torch.randn(8)), [1], [1], [1], 1,
                out=typed(8, 16, 16))
    stats = [b.const(torch.randn(8)), b.const(torch.randn(8)), b.const(torch.randn(8)), b.const(torch.rand(8) + 0.5)]
    norm = b.op("aten::batch_norm", conv, *stats, False, 0.1, 1e-5, True, out=typed(8, 16, 16))
    relu = b.op("aten::relu", norm, out=typed(8, 16, 16))
    pool = b.op("aten::max_pool2d", relu, [2, 2], [2, 2], [0, 0], [1, 1], False, out=typed(8, 8, 8))
    gap = b.op("aten::adaptive_avg_pool2d", pool, [1, 1], out=typed(8, 1, 1))
    size = b.op("aten::size", gap, 0, out=ScalarType("int", "s0"), overload="int")
    flat = b.op("aten::view", gap, b.op("prim::ListConstruct", size, -1, out=ListType(INT)), out=typed(8))
    logits = b.op("aten::linear", flat, b.const(torch.randn(10, 8)), b.const(torch.randn(10)), out=typed(10))
    return b.returns(logits)


def _parse(model):
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    parsed = parser.parse(model.SerializeToString())
    errors = [str(parser.get_error(index)) for index in range(parser.num_errors)]
    assert parsed, f"TensorRT-RTX could not parse the emitted ONNX: {errors}"
    return network


def test_emitted_cnn_parses_with_tensorrt_rtx() -> None:
    network = _parse(emit_onnx(_cnn_segment()))
    assert network.num_inputs == 1 and tuple(network.get_input(0).shape) == (-1, 3, 16, 16)
    assert network.num_outputs == 1


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_every_table_case_parses_with_tensorrt_rtx(case) -> None:
    graph, _ = build_case(case)
    _parse(emit_onnx(graph, opset=case.opset))


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_every_table_case_builds_a_tensorrt_rtx_plan(case) -> None:
    graph, inputs = build_case(case)
    model = emit_onnx(graph, opset=case.opset)
    shapes = {info.name: (tuple(data.shape),) * 3 for info, data in zip(model.graph.input, inputs)
              if any(dim.dim_param for dim in info.type.tensor_type.shape.dim)}
    assert build_plan(trt, model, input_shapes=shapes).plan
