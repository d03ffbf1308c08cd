"""Every entry of the ONNX -> ATen table, run through ``import_onnx`` + ``run_graph`` and compared
with ``onnx.reference.ReferenceEvaluator`` (the ONNX spec's executable semantics).

Tolerance: fp32 rtol 1e-5, atol 1e-6 times the output's largest magnitude (at least 1). Both
sides compute in fp32 with the same formulas; they differ only in summation order (conv, matmul,
reductions) and in libm's erf/tanh/exp, a few ulps each. Relative error bounds those except where
a sum cancels to near zero: there the rounding error is a few ulps of the *terms* (of the order of
the output's largest values), hence the scaled absolute tolerance. Integer and bool results must
match exactly.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from packager.errors import InternalError, UnsupportedOpError
from packager.frontends._onnx_ops import ONNX_TO_ATEN, OnnxOpTable
from packager.frontends.onnx import import_onnx
from packager.ir import TensorType, run_graph, verify
from packager.spec import InputSpec

RTOL, ATOL = 1e-5, 1e-6

_RNG = np.random.default_rng(0)


def _f(*shape: int) -> np.ndarray:
    return _RNG.standard_normal(shape).astype(np.float32)


def _pos(*shape: int) -> np.ndarray:
    return (_RNG.random(shape) + 0.5).astype(np.float32)


def _i64(values) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def _model(nodes, feeds: dict, initializers: dict, outputs, opset: int) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
              for name, a in feeds.items()]
    graph = helper.make_graph(
        nodes, "case", inputs, [helper.make_empty_tensor_value_info(name) for name in outputs],
        [numpy_helper.from_array(array, name) for name, array in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def check(nodes, feeds: dict, initializers: dict | None = None, outputs=("y",), opset: int = 17):
    """Import the model, check every value is typed, and compare each output with onnx.reference."""
    model = _model(list(nodes), feeds, initializers or {}, list(outputs), opset)
    graph = import_onnx(model)
    verify(graph)
    for node in graph.walk():
        for value in node.outputs:
            if isinstance(value.type, TensorType):
                assert value.type.dtype is not None and value.type.shape is not None, f"{node!r}: {value.type}"
    got = run_graph(graph, [torch.from_numpy(array.copy()) for array in feeds.values()])
    got = got if isinstance(got, tuple) else (got,)
    expected = ReferenceEvaluator(model).run(None, feeds)
    for actual, wanted, value in zip(got, expected, graph.outputs, strict=True):
        wanted = np.asarray(wanted)
        actual = actual.numpy()
        assert actual.shape == wanted.shape
        assert actual.dtype == wanted.dtype, (actual.dtype, wanted.dtype)
        assert tuple(value.type.shape) == wanted.shape
        if np.issubdtype(wanted.dtype, np.floating):
            np.testing.assert_allclose(actual, wanted, rtol=RTOL, atol=ATOL * max(1.0, float(np.abs(wanted).max(initial=0))))
        else:
            np.testing.assert_array_equal(actual, wanted)
    return graph


def N(op_type, inputs, outputs=("y",), **attrs):
    return helper.make_node(op_type, list(inputs), list(outputs), **attrs)


# (id, nodes, feeds, initializers, opset)
CASES = [
    # elementwise and broadcasting
    *[(f"{op}", [N(op, ["a"])], {"a": _f(2, 3)}, {}, 17)
      for op in ("Relu", "Sigmoid", "Tanh", "Erf", "Exp", "Neg", "Abs", "Floor", "Ceil", "Sin", "Cos", "Sign")],
    ("Sqrt", [N("Sqrt", ["a"])], {"a": _pos(2, 3)}, {}, 17),
    ("Log", [N("Log", ["a"])], {"a": _pos(2, 3)}, {}, 17),
    ("Reciprocal", [N("Reciprocal", ["a"])], {"a": _pos(2, 3)}, {}, 17),
    *[(f"{op}-broadcast", [N(op, ["a", "b"])], {"a": _f(2, 3, 4), "b": _f(3, 1)}, {}, 17)
      for op in ("Add", "Sub", "Mul", "Div")],
    ("Add-initializer", [N("Add", ["a", "b"])], {"a": _f(2, 3)}, {"b": _f(3)}, 13),
    ("Div-int", [N("Div", ["a", "b"])], {"a": _i64([[7, -7, 9]])}, {"b": _i64([2, 2, -4])}, 17),
    ("Pow", [N("Pow", ["a", "b"])], {"a": _pos(2, 3), "b": _f(3)}, {}, 17),
    ("Pow-scalar-exponent", [N("Pow", ["a", "b"])], {"a": _f(2, 3)}, {"b": np.array(2.0, np.float32)}, 13),
    ("Equal-Where", [N("Greater", ["a", "b"], ["c"]), N("Where", ["c", "a", "b"])],
     {"a": _f(2, 3), "b": _f(3)}, {}, 17),
    ("Not-And-Or", [N("Less", ["a", "b"], ["l"]), N("Not", ["l"], ["n"]), N("Equal", ["a", "a"], ["e"]),
                    N("And", ["n", "e"], ["x"]), N("Or", ["x", "l"], ["y"])], {"a": _f(4), "b": _f(4)}, {}, 17),
    ("Xor-GreaterOrEqual-LessOrEqual", [N("GreaterOrEqual", ["a", "b"], ["g"]), N("LessOrEqual", ["a", "b"], ["l"]),
                                        N("Xor", ["g", "l"])], {"a": _i64([1, 2, 3]), "b": _i64([2, 2, 2])}, {}, 17),
    ("Max-Min-Sum-Mean", [N("Max", ["a", "b", "c"], ["m"]), N("Min", ["a", "b"], ["n"]),
                          N("Sum", ["m", "n", "c"], ["s"]), N("Mean", ["s", "a"], ["y"])],
     {"a": _f(2, 3), "b": _f(3), "c": _f(1, 3)}, {}, 17),
    ("LeakyRelu-default", [N("LeakyRelu", ["a"])], {"a": _f(2, 3)}, {}, 17),
    ("LeakyRelu-alpha", [N("LeakyRelu", ["a"], alpha=0.3)], {"a": _f(2, 3)}, {}, 17),
    ("Elu", [N("Elu", ["a"], alpha=0.5)], {"a": _f(2, 3)}, {}, 17),
    ("HardSigmoid", [N("HardSigmoid", ["a"], alpha=0.3, beta=0.4)], {"a": _f(2, 8)}, {}, 17),
    ("HardSwish", [N("HardSwish", ["a"])], {"a": 3 * _f(2, 8)}, {}, 17),
    ("Softplus", [N("Softplus", ["a"])], {"a": _f(2, 8)}, {}, 17),
    ("PRelu", [N("PRelu", ["a", "s"])], {"a": _f(2, 3, 4)}, {"s": _f(3, 1)}, 17),
    ("Gelu", [N("Gelu", ["a"])], {"a": _f(2, 8)}, {}, 20),
    ("Gelu-tanh", [N("Gelu", ["a"], approximate="tanh")], {"a": _f(2, 8)}, {}, 20),
    ("Clip-both", [N("Clip", ["a", "lo", "hi"])], {"a": _f(3, 4)},
     {"lo": np.array(-0.5, np.float32), "hi": np.array(0.5, np.float32)}, 13),
    ("Clip-max-only", [N("Clip", ["a", "", "hi"])], {"a": _f(3, 4)}, {"hi": np.array(0.1, np.float32)}, 13),
    ("Clip-none", [N("Clip", ["a"])], {"a": _f(3, 4)}, {}, 13),
    ("Cast-float-int", [N("Cast", ["a"], to=TensorProto.INT64)], {"a": 4 * _f(3, 4)}, {}, 13),
    ("Cast-int-float", [N("Cast", ["a"], to=TensorProto.FLOAT)], {"a": _i64([1, 2, 3])}, {}, 19),
    ("Identity-Dropout", [N("Dropout", ["a"], ["d"]), N("Identity", ["d"])], {"a": _f(3)}, {}, 17),
    # linear algebra
    ("MatMul-batched", [N("MatMul", ["a", "b"])], {"a": _f(2, 3, 4), "b": _f(4, 5)}, {}, 17),
    ("MatMul-vector", [N("MatMul", ["a", "b"])], {"a": _f(3, 4), "b": _f(4)}, {}, 17),
    ("Gemm", [N("Gemm", ["a", "b", "c"])], {"a": _f(3, 4)}, {"b": _f(4, 5), "c": _f(5)}, 13),
    ("Gemm-trans-alpha-beta", [N("Gemm", ["a", "b", "c"], transA=1, transB=1, alpha=0.5, beta=2.0)],
     {"a": _f(4, 3)}, {"b": _f(5, 4), "c": _f(3, 5)}, 17),
    ("Gemm-no-bias", [N("Gemm", ["a", "b"], alpha=2.0)], {"a": _f(3, 4)}, {"b": _f(4, 5)}, 17),
    ("Einsum", [N("Einsum", ["a", "b"], equation="bij,bjk->bik")], {"a": _f(2, 3, 4), "b": _f(2, 4, 5)}, {}, 17),
    # convolutions and normalization
    ("Conv-pads", [N("Conv", ["x", "w", "b"], pads=[1, 1, 1, 1])], {"x": _f(1, 3, 6, 6)},
     {"w": _f(4, 3, 3, 3), "b": _f(4)}, 17),
    ("Conv-stride-dilation-group", [N("Conv", ["x", "w"], strides=[2, 1], dilations=[1, 2], group=2)],
     {"x": _f(2, 4, 7, 7)}, {"w": _f(6, 2, 3, 3)}, 13),
    ("Conv-asymmetric-pads", [N("Conv", ["x", "w"], pads=[0, 1, 2, 1])], {"x": _f(1, 2, 5, 5)}, {"w": _f(3, 2, 3, 3)}, 17),
    ("Conv-same-upper", [N("Conv", ["x", "w"], auto_pad="SAME_UPPER", kernel_shape=[4, 4])],
     {"x": _f(1, 2, 5, 5)}, {"w": _f(3, 2, 4, 4)}, 17),
    ("Conv-same-lower-stride", [N("Conv", ["x", "w"], auto_pad="SAME_LOWER", strides=[2, 2])],
     {"x": _f(1, 2, 6, 6)}, {"w": _f(3, 2, 3, 3)}, 17),
    ("Conv-valid-1d", [N("Conv", ["x", "w"], auto_pad="VALID")], {"x": _f(2, 3, 9)}, {"w": _f(4, 3, 3)}, 17),
    ("Conv-3d", [N("Conv", ["x", "w"], pads=[1, 1, 1, 1, 1, 1])], {"x": _f(1, 2, 4, 4, 4)}, {"w": _f(2, 2, 3, 3, 3)}, 17),
    ("ConvTranspose", [N("ConvTranspose", ["x", "w", "b"], strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])],
     {"x": _f(1, 3, 4, 4)}, {"w": _f(3, 2, 3, 3), "b": _f(2)}, 17),
    ("ConvTranspose-1d", [N("ConvTranspose", ["x", "w"], strides=[3])], {"x": _f(1, 4, 3)}, {"w": _f(4, 2, 2)}, 17),
    ("BatchNormalization", [N("BatchNormalization", ["x", "s", "b", "m", "v"], epsilon=1e-3)],
     {"x": _f(2, 3, 4, 4)}, {"s": _f(3), "b": _f(3), "m": _f(3), "v": _pos(3)}, 15),
    ("LayerNormalization", [N("LayerNormalization", ["x", "s", "b"])], {"x": _f(2, 3, 8)}, {"s": _f(8), "b": _f(8)}, 17),
    ("LayerNormalization-axis", [N("LayerNormalization", ["x", "s"], axis=1, epsilon=1e-3)],
     {"x": _f(2, 3, 4)}, {"s": _f(3, 4)}, 17),
    ("Softmax", [N("Softmax", ["x"])], {"x": _f(2, 3, 4)}, {}, 13),
    ("Softmax-axis", [N("Softmax", ["x"], axis=1)], {"x": _f(2, 3, 4)}, {}, 13),
    ("LogSoftmax", [N("LogSoftmax", ["x"], axis=0)], {"x": _f(2, 3)}, {}, 17),
    # reductions: axes as attribute (opset < 18) and as input (18+; ReduceSum 13+)
    ("ReduceMean-attr", [N("ReduceMean", ["x"], axes=[1])], {"x": _f(2, 3, 4)}, {}, 17),
    ("ReduceMean-input-nokeep", [N("ReduceMean", ["x", "ax"], keepdims=0)], {"x": _f(2, 3, 4)}, {"ax": _i64([-1, 0])}, 18),
    ("ReduceMean-all", [N("ReduceMean", ["x"])], {"x": _f(2, 3)}, {}, 18),
    ("ReduceSum-input", [N("ReduceSum", ["x", "ax"])], {"x": _f(2, 3, 4)}, {"ax": _i64([1])}, 13),
    ("ReduceSum-noop", [N("ReduceSum", ["x"], noop_with_empty_axes=1)], {"x": _f(2, 3)}, {}, 13),
    ("ReduceMax-attr-nokeep", [N("ReduceMax", ["x"], axes=[0, 2], keepdims=0)], {"x": _f(2, 3, 4)}, {}, 13),
    ("ReduceMin-input", [N("ReduceMin", ["x", "ax"])], {"x": _f(2, 3)}, {"ax": _i64([1])}, 18),
    ("ArgMax", [N("ArgMax", ["x"], axis=1, keepdims=0)], {"x": _f(2, 5)}, {}, 13),
    ("ArgMin", [N("ArgMin", ["x"])], {"x": _f(4, 5)}, {}, 13),
    # pooling
    ("MaxPool", [N("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2])], {"x": _f(1, 2, 6, 6)}, {}, 17),
    ("MaxPool-pads-dilation", [N("MaxPool", ["x"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], dilations=[2, 1])],
     {"x": _f(1, 2, 7, 7)}, {}, 17),
    ("MaxPool-ceil", [N("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)], {"x": _f(1, 1, 6, 6)}, {}, 17),
    ("MaxPool-same-upper", [N("MaxPool", ["x"], kernel_shape=[2, 2], auto_pad="SAME_UPPER")], {"x": _f(1, 1, 5, 5)}, {}, 17),
    ("MaxPool-1d", [N("MaxPool", ["x"], kernel_shape=[3], strides=[2])], {"x": _f(2, 3, 9)}, {}, 17),
    ("AveragePool", [N("AveragePool", ["x"], kernel_shape=[2, 2], strides=[2, 2])], {"x": _f(1, 2, 6, 6)}, {}, 17),
    ("AveragePool-pads-exclude", [N("AveragePool", ["x"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
     {"x": _f(1, 2, 5, 5)}, {}, 17),
    ("AveragePool-pads-include", [N("AveragePool", ["x"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1)],
     {"x": _f(1, 2, 5, 5)}, {}, 17),
    ("AveragePool-asymmetric-include", [N("AveragePool", ["x"], kernel_shape=[2, 2], pads=[0, 0, 1, 1], count_include_pad=1)],
     {"x": _f(1, 1, 4, 4)}, {}, 17),
    ("GlobalAveragePool", [N("GlobalAveragePool", ["x"])], {"x": _f(2, 3, 4, 5)}, {}, 17),
    ("GlobalMaxPool", [N("GlobalMaxPool", ["x"])], {"x": _f(2, 3, 4, 2)}, {}, 17),
    # shape and layout
    ("Reshape-minus-one", [N("Reshape", ["x", "s"])], {"x": _f(2, 3, 4)}, {"s": _i64([-1, 4])}, 17),
    ("Reshape-zero-copies", [N("Reshape", ["x", "s"])], {"x": _f(2, 3, 4)}, {"s": _i64([0, 12])}, 17),
    ("Shape-Reshape-dynamic", [N("Shape", ["x"], ["sh"]), N("Gather", ["sh", "i"], ["b"]), N("Unsqueeze", ["b", "z"], ["bu"]),
                               N("Concat", ["bu", "m"], ["s"], axis=0), N("Reshape", ["x", "s"])],
     {"x": _f(2, 3, 4)}, {"i": _i64(0), "z": _i64([0]), "m": _i64([-1])}, 17),
    ("Shape-start-end", [N("Shape", ["x"], start=1, end=-1)], {"x": _f(2, 3, 4, 5)}, {}, 17),
    ("Flatten", [N("Flatten", ["x"])], {"x": _f(2, 3, 4)}, {}, 17),
    ("Flatten-axis0", [N("Flatten", ["x"], axis=0)], {"x": _f(2, 3, 4)}, {}, 17),
    ("Flatten-axis2", [N("Flatten", ["x"], axis=-1)], {"x": _f(2, 3, 4)}, {}, 17),
    ("Transpose", [N("Transpose", ["x"], perm=[1, 2, 0])], {"x": _f(2, 3, 4)}, {}, 17),
    ("Transpose-default", [N("Transpose", ["x"])], {"x": _f(2, 3, 4)}, {}, 17),
    ("Concat", [N("Concat", ["a", "b"], axis=-1)], {"a": _f(2, 3), "b": _f(2, 2)}, {}, 17),
    ("Split-input", [N("Split", ["x", "s"], ["y", "z"], axis=1)], {"x": _f(2, 5)}, {"s": _i64([2, 3])}, 13),
    ("Split-even", [N("Split", ["x"], ["y", "z", "w"])], {"x": _f(6, 2)}, {}, 13),
    ("Split-num-outputs", [N("Split", ["x"], ["y", "z"], axis=1, num_outputs=2)], {"x": _f(2, 5)}, {}, 18),
    ("Slice", [N("Slice", ["x", "st", "en"])], {"x": _f(4, 5)}, {"st": _i64([1, 0]), "en": _i64([3, -1])}, 13),
    ("Slice-axes-steps", [N("Slice", ["x", "st", "en", "ax", "sp"])], {"x": _f(4, 6)},
     {"st": _i64([1]), "en": _i64([9223372036854775807]), "ax": _i64([-1]), "sp": _i64([2])}, 13),
    ("Gather-scalar", [N("Gather", ["x", "i"], axis=1)], {"x": _f(3, 4)}, {"i": _i64(-1)}, 13),
    ("Gather-matrix", [N("Gather", ["x", "i"])], {"x": _f(5, 3)}, {"i": _i64([[0, 4], [2, 2]])}, 13),
    ("Gather-int32-axis1", [N("Gather", ["x", "i"], axis=1)], {"x": _f(2, 5, 3), "i": np.array([1, 3], np.int32)}, {}, 13),
    ("Unsqueeze-input", [N("Unsqueeze", ["x", "ax"])], {"x": _f(2, 3)}, {"ax": _i64([0, -1])}, 13),
    ("Squeeze-axes", [N("Squeeze", ["x", "ax"])], {"x": _f(1, 3, 1)}, {"ax": _i64([-1])}, 13),
    ("Squeeze-all", [N("Squeeze", ["x"])], {"x": _f(1, 3, 1)}, {}, 13),
    ("Expand-bidirectional", [N("Expand", ["x", "s"])], {"x": _f(3, 1)}, {"s": _i64([2, 1, 4])}, 13),
    ("Tile", [N("Tile", ["x", "r"])], {"x": _f(2, 3)}, {"r": _i64([2, 1])}, 13),
    ("Pad-constant", [N("Pad", ["x", "p", "v"])], {"x": _f(1, 2, 3)}, {"p": _i64([0, 1, 2, 0, 0, 1]),
                                                                      "v": np.array(1.5, np.float32)}, 13),
    ("Pad-reflect", [N("Pad", ["x", "p"], mode="reflect")], {"x": _f(1, 2, 4, 4)}, {"p": _i64([0, 0, 1, 2, 0, 0, 2, 1])}, 13),
    ("Pad-edge-axes", [N("Pad", ["x", "p", "", "ax"], mode="edge")], {"x": _f(1, 2, 4)}, {"p": _i64([1, 2]), "ax": _i64([-1])}, 18),
    # creation
    ("Constant", [N("Constant", [], ["c"], value=numpy_helper.from_array(_f(3))), N("Add", ["x", "c"])], {"x": _f(2, 3)}, {}, 13),
    ("Constant-value-ints", [N("Constant", [], ["c"], value_ints=[1, 2, 3]), N("Mul", ["x", "c"])], {"x": _i64([1, 1, 2])}, {}, 13),
    ("ConstantOfShape-from-shape", [N("Shape", ["x"], ["s"]), N("ConstantOfShape", ["s"], ["c"],
                                   value=numpy_helper.from_array(np.array([2.0], np.float32))), N("Mul", ["x", "c"])],
     {"x": _f(2, 3)}, {}, 13),
    ("Range", [N("Range", ["a", "b", "c"], ["r"]), N("Add", ["x", "r"])], {"x": _f(2, 4)},
     {"a": np.array(1.0, np.float32), "b": np.array(3.0, np.float32), "c": np.array(0.5, np.float32)}, 13),
    # resize
    ("Resize-nearest-asymmetric", [N("Resize", ["x", "", "sc"], mode="nearest", coordinate_transformation_mode="asymmetric",
                                     nearest_mode="floor")], {"x": _f(1, 2, 3, 3)}, {"sc": np.array([1, 1, 2, 2], np.float32)}, 13),
    ("Resize-nearest-half-pixel-sizes", [N("Resize", ["x", "", "", "sz"], mode="nearest", nearest_mode="round_prefer_ceil")],
     {"x": _f(1, 2, 3, 3)}, {"sz": _i64([1, 2, 7, 5])}, 13),
    ("Resize-linear", [N("Resize", ["x", "", "sc"], mode="linear")], {"x": _f(1, 2, 3, 4)},
     {"sc": np.array([1, 1, 2, 1.5], np.float32)}, 19),
    ("Resize-linear-align-corners", [N("Resize", ["x", "", "", "sz"], mode="linear", coordinate_transformation_mode="align_corners")],
     {"x": _f(1, 2, 3, 4)}, {"sz": _i64([1, 2, 5, 7])}, 13),
]


@pytest.mark.parametrize("nodes,feeds,initializers,opset", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_op_matches_onnx_reference(nodes, feeds, initializers, opset):
    outputs = sorted({out for node in nodes for out in node.output if out in ("y", "z", "w")})
    check(nodes, feeds, initializers, outputs=outputs, opset=opset)


def test_every_table_entry_has_a_case():
    covered = {node.op_type for case in CASES for node in case[1]}
    assert set(ONNX_TO_ATEN.op_types()) - covered == set()


def test_duplicate_registration_is_an_error():
    table = OnnxOpTable()
    table.register("Relu")(lambda ctx: None)
    with pytest.raises(InternalError, match="already mapped"):
        table.register("Relu")(lambda ctx: None)


def test_shape_stays_symbolic_for_dynamic_batch():
    nodes = [N("Shape", ["x"], ["sh"]), N("Gather", ["sh", "i"], ["b"]), N("Unsqueeze", ["b", "z"], ["bu"]),
             N("Concat", ["bu", "m"], ["s"], axis=0), N("Reshape", ["x", "s"])]
    feeds = {"x": _f(2, 3, 4)}
    model = _model(nodes, feeds, {"i": _i64(0), "z": _i64([0]), "m": _i64([-1])}, ["y"], 17)
    dims = InputSpec.static((3, 3, 4)).dims
    graph = import_onnx(model, [InputSpec((type(dims[0])(1, 3, 8),) + dims[1:])])
    (output,) = graph.outputs
    assert str(output.type.shape[0].expr) == "s0" and output.type.shape[1] == 12
    x = _f(5, 3, 4)
    np.testing.assert_array_equal(run_graph(graph, [torch.from_numpy(x)]).numpy(), x.reshape(5, 12))


def test_unmappable_attribute_names_node_and_opset():
    nodes = [N("Slice", ["x", "st", "en", "ax", "sp"], name="reverse")]
    model = _model(nodes, {"x": _f(4)}, {"st": _i64([-1]), "en": _i64([-5]), "ax": _i64([0]), "sp": _i64([-1])}, ["y"], 13)
    with pytest.raises(UnsupportedOpError, match=r"'reverse' \(Slice, opset 13\).*step -1"):
        import_onnx(model)
