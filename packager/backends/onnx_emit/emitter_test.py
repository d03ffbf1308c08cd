"""ONNX emission, per table entry: a hand-built IR segment is emitted, checked with
``onnx.checker.check_model(full_check=True)``, run with ``onnx.reference.ReferenceEvaluator`` and
compared with the eager IR interpreter.

Tolerance: rtol = atol = 1e-5 in fp32. The two sides compute the same formula with different
kernels (numpy vs ATen: other summation orders in matmul/conv/reductions, other erf/tanh/exp
approximations); on these small inputs (values ~1, reductions over <= 200 terms) that moves
results by a few fp32 ulps (~1e-7 relative each), well under 1e-5, while a wrong axis, padding,
scale or formula moves them by far more than 1e-5.

Inputs include the values an op treats specially (halves for rounding, NaN / infinities / signed
zeros, negative integer division, division by zero, pooling sizes where torch's ``ceil_mode``
drops a window). onnx.reference's grouped ConvTranspose is wrong in onnx 1.23, so the reference
run replaces it with per-group ``group=1`` runs (:class:`ConvTranspose`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import onnx
import pytest
import torch
from onnx.reference import ReferenceEvaluator
from onnx.reference.ops.op_conv_transpose import ConvTranspose as _ReferenceConvTranspose

from packager.backends.onnx_emit import EMISSION_TABLE, EmissionEntry, EmissionTable, emission_capability, emit_onnx
from packager.errors import BackendError, InternalError
from packager.ir.graph import Graph
from packager.ir.interpreter import run_node
from packager.ir.types import INT, ListType, ScalarType, SymDim, TensorType
from packager.lowering._constants import dtype_name
from packager.lowering._testing import GraphBuilder, tensor_type

RTOL = ATOL = 1e-5
FLOAT = TensorType("float32", (2, 3))
ANY = TensorType()  # placeholder output type; _infer_types fills it in from an eager run
TENSORS = ListType(TensorType())


@dataclass
class Case:
    name: str
    build: Callable[[GraphBuilder], tuple[list, list[torch.Tensor]]]
    opset: int = 17
    extra_inputs: list[list[torch.Tensor]] = field(default_factory=list)


def _randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=_GENERATOR)


_GENERATOR = torch.Generator().manual_seed(0)


def _unary(op: str, positive: bool = False, *arguments: Any) -> Callable:
    def build(b: GraphBuilder):
        x = b.input(tensor_type(2, 3, 4))
        data = _randn(2, 3, 4)
        return [b.op(op, x, *arguments, out=ANY)], [data.abs() + 0.1 if positive else data]

    return build


def _binary(op: str, overload: str, other: Any, *arguments: Any, left_dtype=torch.float32) -> Callable:
    def build(b: GraphBuilder):
        left = (_randn(2, 3).abs() + 0.5).to(left_dtype) if left_dtype.is_floating_point else torch.randint(1, 9, (2, 3))
        x = b.input(tensor_type(*left.shape, dtype=dtype_name(left.dtype)))
        inputs = [left]
        if isinstance(other, torch.Tensor):
            second = b.input(tensor_type(*other.shape, dtype=dtype_name(other.dtype)))
            inputs.append(other)
        else:
            second = other
        return [b.op(op, x, second, *arguments, out=ANY, overload=overload)], inputs

    return build


def _single(op: str, shapes: list[tuple], *arguments: Any, overload: str = "", dtypes: tuple = ()) -> Callable:
    """``op(input0, ..., *arguments)`` with random fp32 inputs of ``shapes``."""

    def build(b: GraphBuilder):
        data = [_randn(*shape) for shape in shapes]
        for index, dtype in enumerate(dtypes):
            if dtype is not None:
                data[index] = data[index].abs().mul(5).to(dtype)
        values = [b.input(tensor_type(*t.shape, dtype=dtype_name(t.dtype))) for t in data]
        return [b.op(op, *values, *arguments, out=ANY, overload=overload)], data

    return build


def _with_weights(op: str, input_shape: tuple, weights: list[Any], *arguments: Any, overload: str = "") -> Callable:
    """``op(input, *weights, *arguments)``: weights are constant tensors (initializers) or None."""

    def build(b: GraphBuilder):
        x = b.input(tensor_type(*input_shape))
        return [b.op(op, x, *weights, *arguments, out=ANY, overload=overload)], [_randn(*input_shape)]

    return build


@dataclass
class In:
    """An argument of :func:`_call` that is a graph input fed with ``data``."""

    data: torch.Tensor


def _call(op: str, *arguments: Any, overload: str = "", parts: int = 1) -> Callable:
    """``op(*arguments)``: :class:`In` arguments are graph inputs (fed their data), the others
    constants; ``parts`` outputs."""

    def build(b: GraphBuilder):
        values, data = [], []
        for argument in arguments:
            if isinstance(argument, In):
                values.append(b.input(tensor_type(*argument.data.shape, dtype=dtype_name(argument.data.dtype))))
                data.append(argument.data)
            else:
                values.append(argument)
        node = b.node(op, *values, out=[ANY] * parts, overload=overload)
        return list(node.outputs), data

    return build


def _split(op: str, *arguments: Any, overload: str = "", parts: int) -> Callable:
    def build(b: GraphBuilder):
        x = b.input(tensor_type(4, 7))
        pieces = b.op(op, x, *arguments, out=TENSORS, overload=overload)
        unpack = b.node("prim::ListUnpack", pieces, out=[ANY] * parts)
        return list(unpack.outputs), [_randn(4, 7)]

    return build


def _cat(b: GraphBuilder):
    x, y = b.input(tensor_type(2, 3)), b.input(tensor_type(2, 5))
    items = b.op("prim::ListConstruct", x, y, out=TENSORS)
    return [b.op("aten::cat", items, -1, out=ANY)], [_randn(2, 3), _randn(2, 5)]


def _reshape_from_static_size(b: GraphBuilder):
    x = b.input(tensor_type(2, 3, 4))
    batch = b.op("aten::size", x, 0, out=INT, overload="int")
    size = b.op("prim::ListConstruct", batch, -1, out=ListType(INT))
    return [b.op("aten::reshape", x, size, out=ANY)], [_randn(2, 3, 4)]


def _embedding(b: GraphBuilder):
    indices = b.input(tensor_type(2, 3, dtype="int64"))
    weight = b.const(_randn(10, 4))
    return [b.op("aten::embedding", weight, indices, -1, False, False, out=ANY)], [torch.randint(0, 10, (2, 3))]


def _attention(query: tuple, key: tuple, causal: bool = False, mask: torch.Tensor | None = None, scale=None) -> Callable:
    def build(b: GraphBuilder):
        data = [_randn(*query), _randn(*key), _randn(*key)]
        values = [b.input(tensor_type(*t.shape)) for t in data]
        mask_value = None if mask is None else b.const(mask)
        out = b.op("aten::scaled_dot_product_attention", *values, mask_value, 0.0, causal, scale, False, out=ANY)
        return [out], data

    return build


def _addmm(b: GraphBuilder):
    bias, first, second = (b.input(tensor_type(*shape)) for shape in ((4,), (2, 3), (3, 4)))
    return [b.op("aten::addmm", bias, first, second, 0.5, 2.0, out=ANY)], [_randn(4), _randn(2, 3), _randn(3, 4)]


def _dynamic_view(b: GraphBuilder):
    """x.view(x.size(0), -1) as TorchScript's tracer writes it (NumToTensor + Int), then linear."""
    batch = SymDim("s0", 1, 8)
    x = b.input(TensorType("float32", (batch, 3, 4, 4)))
    size = b.op("aten::size", x, 0, out=ScalarType("int", "s0"), overload="int")
    wrapped = b.op("prim::NumToTensor", size, out=TensorType("int64", ()))
    number = b.op("aten::Int", wrapped, out=ScalarType("int", "s0"), overload="Tensor")
    flat = b.op("aten::view", x, b.op("prim::ListConstruct", number, -1, out=ListType(INT)),
                out=TensorType("float32", (batch, 48)))
    out = b.op("aten::linear", flat, b.const(_randn(5, 48)), b.const(_randn(5)), out=TensorType("float32", (batch, 5)))
    return [out, flat], [_randn(2, 3, 4, 4)]


def _dynamic_shape_arithmetic(b: GraphBuilder):
    """sizes = x.size(); n, c, h, w = sizes; view(n + 1 - 1, c * 2, h // 2 * w); and numbers from
    sizes used as operands (ScalarImplicit, NumToTensor) and list indexing."""
    batch = SymDim("s0", 1, 8)
    x = b.input(TensorType("float32", (batch, 2, 4, 3)))
    sizes = b.op("aten::size", x, out=ListType(INT))
    n, c, h, w = b.node("prim::ListUnpack", sizes, out=[INT] * 4).outputs
    first = b.op("aten::__getitem__", sizes, 0, out=INT, overload="t")
    rows = b.op("aten::sub", b.op("aten::add", first, 1, out=INT, overload="int"), 1, out=INT, overload="int")
    channels = b.op("aten::mul", c, 2, out=INT, overload="int")
    rest = b.op("aten::mul", b.op("aten::floordiv", h, 2, out=INT, overload="int"), w, out=INT, overload="int")
    shape = b.op("prim::ListConstruct", rows, channels, rest, out=ListType(INT))
    viewed = b.op("aten::view", x, shape, out=TensorType("float32", (batch, 4, 6)))
    batch_tensor = b.op("prim::NumToTensor", n, out=TensorType("int64", ()))
    as_scalar = b.op("aten::ScalarImplicit", batch_tensor, out=ScalarType("Scalar"))
    scaled = b.op("aten::mul", viewed, as_scalar, out=TensorType("float32", (batch, 4, 6)), overload="Scalar")
    shifted = b.op("aten::add", scaled, batch_tensor, 1, out=TensorType("float32", (batch, 4, 6)), overload="Tensor")
    picked = b.op("aten::slice", shifted, 0, 1, n, 1, out=TensorType("float32", (SymDim("s0 - 1"), 4, 6)),
                  overload="Tensor")
    return [picked], [_randn(3, 2, 4, 3)]


def _dynamic_flatten_and_select(b: GraphBuilder):
    batch = SymDim("s0", 1, 8)
    x = b.input(TensorType("float32", (2, batch, 3, 2)))
    flat = b.op("aten::flatten", x, 1, 2, out=TensorType("float32", (2, SymDim("3*s0"), 2)), overload="using_ints")
    last = b.op("aten::size", x, 1, out=ScalarType("int", "s0"), overload="int")
    index = b.op("aten::sub", last, 1, out=INT, overload="int")
    picked = b.op("aten::select", x, 1, index, out=TensorType("float32", (2, 3, 2)), overload="int")
    return [flat, picked], [_randn(2, 4, 3, 2)]


CONV_WEIGHT, CONV_BIAS = _randn(4, 3, 3, 3), _randn(4)
STATS = [_randn(3), _randn(3), _randn(3), _randn(3).abs() + 0.5]
NAN, INF = float("nan"), float("inf")
# Halves (round to even), signed zeros, NaN and infinities where the op treats them specially.
HALVES = torch.tensor([[-2.5, -1.5, -0.5, 0.5], [1.5, 2.5, -1.7, 1.2], [0.0, -0.0, 3.49, -3.51]])
SPECIALS = torch.tensor([[NAN, -0.0, 0.0, -3.0], [2.0, INF, -INF, 1e-30]])
# Dividends and divisors for rounded division: signs mixed, quotients that round up to a whole
# number in fp32 (1 / 0.1: torch gives 9 with rounding_mode="floor"), exact multiples, division by zero.
DIVIDEND = torch.tensor([[1.0, -1.0, 7.5, -7.5, 0.3, -0.3], [6.0, -6.0, 5.0, 0.0, -2.0, 0.5]])
DIVISOR = torch.tensor([[0.1, 0.1, 2.0, 2.0, -0.7, -0.7], [3.0, 3.0, 0.0, 0.0, 0.0, -0.25]])
INT_DIVIDEND = torch.tensor([[7, -7, 7, -7, 0, 6], [-6, 1, -1, 9, -9, 5]])
INT_DIVISOR = torch.tensor([[2, 2, -2, -2, 3, -3], [4, -5, 5, 3, 4, -1]])
SMALL_INTS = torch.tensor([[3, -2, 0, 5], [2, 2, -7, 1], [0, 4, 2, -1]])
MASK = torch.tensor([[True, False, True, False], [False, False, True, True], [True, True, False, False]])

CASES = [
    Case("relu", _unary("aten::relu")),
    Case("sigmoid", _unary("aten::sigmoid")),
    Case("tanh", _unary("aten::tanh")),
    Case("exp", _unary("aten::exp")),
    Case("erf", _unary("aten::erf")),
    Case("neg", _unary("aten::neg")),
    Case("sqrt", _unary("aten::sqrt", True)),
    Case("rsqrt", _unary("aten::rsqrt", True)),
    Case("silu", _unary("aten::silu")),
    Case("gelu", _unary("aten::gelu", False, "none")),
    Case("gelu_tanh", _unary("aten::gelu", False, "tanh")),
    Case("hardtanh", _unary("aten::hardtanh", False, -0.5, 0.5)),
    Case("clamp_max", _unary("aten::clamp", False, None, 0.3)),
    Case("clamp_min", _unary("aten::clamp", False, -0.2, None)),
    Case("dropout_eval", _unary("aten::dropout", False, 0.5, False)),
    Case("contiguous", _unary("aten::contiguous", False, torch.contiguous_format)),
    Case("clone", _unary("aten::clone", False, None)),
    Case("detach", _unary("aten::detach")),
    Case("add_alpha_broadcast", _binary("aten::add", "Tensor", _randn(3), 2)),
    Case("add_scalar", _binary("aten::add", "Scalar", 1.5, 2)),
    Case("sub", _binary("aten::sub", "Tensor", _randn(2, 1), 1)),
    Case("sub_scalar", _binary("aten::sub", "Scalar", 3, 1)),
    Case("mul_int_by_float", _binary("aten::mul", "Tensor", _randn(2, 3), left_dtype=torch.int64)),
    Case("mul_scalar", _binary("aten::mul", "Scalar", -0.25)),
    Case("div_int_true_division", _binary("aten::div", "Tensor", torch.tensor([2, 3, 4]), left_dtype=torch.int64)),
    Case("div_scalar", _binary("aten::div", "Scalar", 4.0)),
    Case("pow_tensor", _binary("aten::pow", "Tensor_Tensor", _randn(2, 3))),
    Case("pow_scalar", _binary("aten::pow", "Tensor_Scalar", 2)),
    Case("to_dtype", _single("aten::to", [(2, 3)], torch.float64, False, False, None, overload="dtype")),
    Case("to_int_truncates", _single("aten::to", [(2, 3)], torch.int32, False, False, None, overload="dtype")),
    Case("to_device", _single("aten::to", [(2, 3)], torch.device("cpu"), torch.float16, False, False, None,
                              overload="device")),
    Case("to_other", _single("aten::to", [(2, 3), (1,)], False, False, None, overload="other",
                             dtypes=(None, torch.int64))),
    Case("to_dtype_layout", _single("aten::to", [(2, 3)], torch.float64, None, None, None, False, False, None,
                                    overload="dtype_layout")),
    Case("to_prim_dtype", _single("aten::to", [(2, 3)], 7, False, False, overload="prim_dtype")),
    Case("type_as", _single("aten::type_as", [(2, 3), (1,)], dtypes=(None, torch.int64))),
    Case("matmul_broadcast", _single("aten::matmul", [(2, 3, 4), (4, 5)])),
    Case("bmm", _single("aten::bmm", [(2, 3, 4), (2, 4, 5)])),
    Case("linear", _with_weights("aten::linear", (2, 3, 6), [_randn(5, 6), _randn(5)])),
    Case("linear_no_bias", _with_weights("aten::linear", (2, 6), [_randn(5, 6), None])),
    Case("addmm", _addmm),
    Case("conv2d", _with_weights("aten::conv2d", (1, 3, 7, 7), [CONV_WEIGHT, CONV_BIAS], [1], [1], [1], 1)),
    Case("conv2d_stride_dilation", _with_weights("aten::conv2d", (1, 3, 9, 9), [CONV_WEIGHT, None],
                                                 [2, 1], [0, 2], [2, 2], 1)),
    Case("conv2d_groups", _with_weights("aten::conv2d", (1, 4, 6, 6), [_randn(4, 2, 3, 3), None], [1], [0], [1], 2)),
    Case("conv1d", _with_weights("aten::conv1d", (1, 3, 8), [_randn(2, 3, 3), _randn(2)], [1], [1], [1], 1)),
    Case("conv3d", _with_weights("aten::conv3d", (1, 2, 4, 4, 4), [_randn(2, 2, 2, 2, 2), None], [1], [0], [1], 1)),
    Case("convolution", _with_weights("aten::convolution", (1, 3, 8, 8), [CONV_WEIGHT, CONV_BIAS],
                                      [2, 2], [1, 1], [1, 1], False, [0, 0], 1)),
    Case("_convolution", _with_weights("aten::_convolution", (1, 3, 8, 8), [CONV_WEIGHT, None],
                                       [1, 1], [0, 0], [1, 1], False, [0, 0], 1, False, False, True, True)),
    Case("batch_norm", _with_weights("aten::batch_norm", (2, 3, 4, 4), STATS, False, 0.1, 1e-5, True)),
    Case("batch_norm_no_affine", _with_weights("aten::batch_norm", (2, 3, 4), [None, None, *STATS[2:]],
                                               False, 0.1, 1e-3, True)),
    Case("layer_norm", _with_weights("aten::layer_norm", (2, 3, 8), [[8], _randn(8), _randn(8)], 1e-5, True)),
    Case("layer_norm_2d_no_affine", _with_weights("aten::layer_norm", (2, 3, 4), [[3, 4], None, None], 1e-5, True)),
    Case("softmax", _single("aten::softmax", [(2, 3, 5)], -1, None, overload="int")),
    Case("softmax_dtype", _single("aten::softmax", [(2, 5)], 0, torch.float64, overload="int")),
    Case("log_softmax", _single("aten::log_softmax", [(2, 3, 5)], 1, None, overload="int")),
    Case("max_pool2d", _single("aten::max_pool2d", [(1, 2, 6, 6)], [2, 2], [2, 2], [0, 0], [1, 1], False)),
    Case("max_pool2d_padded", _single("aten::max_pool2d", [(1, 2, 7, 7)], [3], [], [1], [1], False)),
    Case("avg_pool2d", _single("aten::avg_pool2d", [(1, 2, 6, 6)], [2, 2], [], [0, 0], False, True, None)),
    Case("avg_pool2d_excluding_pad", _single("aten::avg_pool2d", [(1, 2, 5, 5)], [3, 3], [2, 2], [1, 1],
                                             False, False, None)),
    Case("adaptive_avg_pool2d", _single("aten::adaptive_avg_pool2d", [(2, 3, 4, 5)], [1, 1])),
    Case("view", _single("aten::view", [(2, 3, 4)], [6, -1])),
    Case("reshape_static_size", _reshape_from_static_size),
    Case("flatten", _single("aten::flatten", [(2, 3, 4, 5)], 1, -1, overload="using_ints")),
    Case("flatten_middle", _single("aten::flatten", [(2, 3, 4, 5)], 1, 2, overload="using_ints")),
    Case("permute", _single("aten::permute", [(2, 3, 4)], [2, 0, -2])),
    Case("transpose", _single("aten::transpose", [(2, 3, 4)], 0, -1, overload="int")),
    Case("unsqueeze", _single("aten::unsqueeze", [(2, 3)], -1)),
    Case("squeeze", _single("aten::squeeze", [(2, 1, 3, 1)])),
    Case("squeeze_dim", _single("aten::squeeze", [(2, 1, 3)], -2, overload="dim")),
    Case("squeeze_dim_not_one", _single("aten::squeeze", [(2, 1, 3)], 0, overload="dim")),
    Case("squeeze_dims", _single("aten::squeeze", [(2, 1, 3, 1)], [0, 1, 3], overload="dims")),
    Case("cat", _cat),
    Case("slice_step", _single("aten::slice", [(4, 7)], 1, 1, None, 2, overload="Tensor")),
    Case("slice_negative_end", _single("aten::slice", [(4, 7)], 0, None, -1, 1, overload="Tensor")),
    Case("select", _single("aten::select", [(2, 3, 4)], 1, -1, overload="int")),
    Case("chunk_uneven", _split("aten::chunk", 3, 1, parts=3)),
    Case("split", _split("aten::split", 2, 0, overload="Tensor", parts=2)),
    Case("split_sizes", _split("aten::split", [3, 4], 1, overload="sizes", parts=2)),
    Case("split_with_sizes", _split("aten::split_with_sizes", [1, 5, 1], -1, parts=3)),
    Case("embedding", _embedding),
    Case("mean_dim", _single("aten::mean", [(2, 3, 4)], [-1], True, None, overload="dim")),
    Case("mean_dim_opset18", _single("aten::mean", [(2, 3, 4)], [0, 2], False, None, overload="dim"), opset=18),
    Case("sum_dim", _single("aten::sum", [(2, 3, 4)], [0, 2], False, None, overload="dim_IntList")),
    Case("sdpa", _attention((2, 2, 5, 4), (2, 2, 6, 4))),
    Case("sdpa_causal", _attention((1, 2, 5, 4), (1, 2, 5, 4), causal=True)),
    Case("sdpa_causal_rectangular", _attention((1, 3, 4), (1, 6, 4), causal=True, scale=0.3)),
    Case("sdpa_float_mask", _attention((2, 3, 4), (2, 5, 4), mask=_randn(3, 5))),
    Case("sdpa_bool_mask", _attention((2, 3, 4), (2, 5, 4), mask=torch.tensor([[True] * 5, [True, False] * 2 + [True],
                                                                               [False] * 4 + [True]]))),
    # unary
    Case("abs", _unary("aten::abs")),
    Case("abs_int", _call("aten::abs", In(SMALL_INTS))),
    Case("neg_int", _call("aten::neg", In(SMALL_INTS))),
    Case("log", _unary("aten::log", True)),
    Case("exp_of_int_is_float", _call("aten::exp", In(SMALL_INTS))),
    Case("sin", _unary("aten::sin")),
    Case("cos", _unary("aten::cos")),
    Case("reciprocal", _unary("aten::reciprocal", True)),
    Case("floor", _call("aten::floor", In(HALVES))),
    Case("floor_int_unchanged", _call("aten::floor", In(SMALL_INTS))),
    Case("ceil", _call("aten::ceil", In(HALVES))),
    Case("round_half_to_even", _call("aten::round", In(HALVES))),
    Case("round_decimals", _call("aten::round", In(HALVES * 0.37), 2, overload="decimals")),
    Case("round_negative_decimals", _call("aten::round", In(HALVES * 37), -1, overload="decimals")),
    Case("round_decimals_half", _call("aten::round", In((HALVES * 0.37).half()), 1, overload="decimals")),
    Case("sign_nan_zero_inf", _call("aten::sign", In(SPECIALS))),
    Case("sign_int", _call("aten::sign", In(SMALL_INTS))),
    Case("hardswish", _call("aten::hardswish", In(_randn(3, 8) * 3))),
    Case("hardsigmoid", _call("aten::hardsigmoid", In(_randn(3, 8) * 3))),
    Case("elu", _unary("aten::elu", False, 0.5, 1, 1)),
    Case("elu_scaled", _unary("aten::elu", False, 0.7, 2.0, 0.5)),
    # clamp
    Case("clamp_int_by_floats", _call("aten::clamp", In(SMALL_INTS), 0.5, 3.5)),
    Case("clamp_min_scalar", _unary("aten::clamp_min", False, -0.2)),
    Case("clamp_max_scalar", _unary("aten::clamp_max", False, 0.3)),
    Case("clamp_tensor_bounds", _call("aten::clamp", In(_randn(2, 3)), In(_randn(3) - 0.5), In(_randn(2, 1) + 0.5),
                                      overload="Tensor")),
    Case("clamp_tensor_min_above_max", _call("aten::clamp", In(_randn(2, 3)), In(torch.full((3,), 0.5)),
                                             In(torch.full((2, 1), -0.5)), overload="Tensor")),
    Case("clamp_tensor_max_only", _call("aten::clamp", In(_randn(2, 3)), None, In(_randn(3)), overload="Tensor")),
    Case("clamp_tensor_int", _call("aten::clamp", In(SMALL_INTS), In(torch.tensor([0, 1, -1, 2])), None,
                                   overload="Tensor")),
    Case("clamp_min_tensor", _call("aten::clamp_min", In(_randn(2, 3)), In(_randn(2, 3)), overload="Tensor")),
    Case("clamp_max_tensor_float_bound", _call("aten::clamp_max", In(SMALL_INTS),
                                               In(torch.tensor([0.5, 1.5, -2.0, 3.0])), overload="Tensor")),
    # binary
    Case("pow_scalar_base", _call("aten::pow", 2.0, In(_randn(2, 3)), overload="Scalar")),
    Case("minimum", _single("aten::minimum", [(2, 3), (3,)])),
    Case("maximum_int_float", _call("aten::maximum", In(SMALL_INTS), In(_randn(4)))),
    Case("min_other", _single("aten::min", [(2, 3), (2, 1)], overload="other")),
    Case("max_other", _single("aten::max", [(2, 3), (2, 3)], overload="other")),
    Case("div_floor", _call("aten::div", In(DIVIDEND), In(DIVISOR), "floor", overload="Tensor_mode")),
    Case("div_trunc", _call("aten::div", In(DIVIDEND), In(DIVISOR), "trunc", overload="Tensor_mode")),
    Case("div_floor_int", _call("aten::div", In(INT_DIVIDEND), In(INT_DIVISOR), "floor", overload="Tensor_mode")),
    Case("div_trunc_int", _call("aten::div", In(INT_DIVIDEND), In(INT_DIVISOR), "trunc", overload="Tensor_mode")),
    Case("div_floor_int32", _call("aten::div", In(INT_DIVIDEND.int()), In(INT_DIVISOR.int()), "floor",
                                  overload="Tensor_mode")),
    Case("div_mode_none_int", _call("aten::div", In(INT_DIVIDEND), In(INT_DIVISOR), None, overload="Tensor_mode")),
    Case("div_floor_int_by_float", _call("aten::div", In(INT_DIVIDEND), In(DIVISOR), "floor", overload="Tensor_mode")),
    Case("div_scalar_floor_int", _call("aten::div", In(INT_DIVIDEND), -4, "floor", overload="Scalar_mode")),
    Case("div_scalar_trunc", _call("aten::div", In(DIVIDEND), 0.7, "trunc", overload="Scalar_mode")),
    Case("floor_divide", _call("aten::floor_divide", In(DIVIDEND), In(DIVISOR))),
    Case("floor_divide_scalar_int", _call("aten::floor_divide", In(INT_DIVIDEND), 3, overload="Scalar")),
    # comparisons and logic
    Case("eq", _call("aten::eq", In(HALVES), In(HALVES.round()), overload="Tensor")),
    Case("ne_scalar_int", _call("aten::ne", In(SMALL_INTS), 2, overload="Scalar")),
    Case("lt_int_float", _call("aten::lt", In(SMALL_INTS), In(_randn(4) * 3), overload="Tensor")),
    Case("le_scalar", _call("aten::le", In(HALVES), -0.5, overload="Scalar")),
    Case("gt_bool", _call("aten::gt", In(MASK), In(MASK.flip(0)), overload="Tensor")),
    Case("ge_int_by_float_scalar", _call("aten::ge", In(SMALL_INTS), 2.5, overload="Scalar")),
    Case("eq_scalar_nan", _call("aten::eq", In(SPECIALS), 0, overload="Scalar")),
    Case("ne_nan", _call("aten::ne", In(SPECIALS), In(SPECIALS), overload="Tensor")),
    Case("lt_scalar_int_by_float", _call("aten::lt", In(SMALL_INTS), 1.5, overload="Scalar")),
    Case("le_half_by_0d_int", _call("aten::le", In(HALVES.half()), In(torch.tensor(1)), overload="Tensor")),
    Case("gt_scalar_bool_by_int", _call("aten::gt", In(MASK), 0, overload="Scalar")),
    Case("ge_int64_int32", _call("aten::ge", In(SMALL_INTS.int()), In(SMALL_INTS.flip(1)), overload="Tensor")),
    Case("logical_not", _call("aten::logical_not", In(MASK))),
    Case("logical_not_float_nan", _call("aten::logical_not", In(SPECIALS))),
    Case("logical_and", _call("aten::logical_and", In(MASK), In(MASK.flip(1)))),
    Case("logical_or_float", _call("aten::logical_or", In(SPECIALS[:, :2]), In(MASK[:2, :2]))),
    Case("logical_xor_int", _call("aten::logical_xor", In(SMALL_INTS), In(MASK))),
    Case("where", _call("aten::where", In(MASK), In(_randn(3, 4)), In(SMALL_INTS), overload="self")),
    Case("where_scalar_self", _call("aten::where", In(MASK), 1.5, In(_randn(4)), overload="ScalarSelf")),
    Case("where_scalar_other_int", _call("aten::where", In(MASK), In(SMALL_INTS), -1, overload="ScalarOther")),
    Case("where_scalars", _call("aten::where", In(MASK), 1.0, 0.0, overload="Scalar")),
    # scans and indices
    Case("cumsum", _single("aten::cumsum", [(2, 3, 4)], 1, None)),
    Case("cumsum_int32_to_int64", _call("aten::cumsum", In(SMALL_INTS.int()), -1, None)),
    Case("cumsum_dtype", _single("aten::cumsum", [(2, 5)], 0, torch.float64)),
    Case("argmax_keepdim", _single("aten::argmax", [(2, 3, 4)], 1, True)),
    Case("argmax_flat", _single("aten::argmax", [(2, 3, 4)], None, False)),
    Case("argmin_first_of_ties", _call("aten::argmin", In(SMALL_INTS.abs()), -1, False)),
    Case("argmin_flat_keepdim", _single("aten::argmin", [(2, 3, 4)], None, True)),
    Case("topk", _call("aten::topk", In(_randn(3, 6)), 3, -1, True, True, parts=2)),
    Case("topk_smallest", _call("aten::topk", In(_randn(4, 3)), 2, 0, False, True, parts=2)),
    Case("topk_1d", _call("aten::topk", In(_randn(7)), 3, 0, True, True, parts=2)),
    Case("argmax_1d", _call("aten::argmax", In(_randn(7)), 0, True)),
    # transposed convolution, string padding
    Case("conv_transpose1d", _call("aten::conv_transpose1d", In(_randn(1, 3, 6)), _randn(3, 2, 3), _randn(2),
                                   [2], [1], [1], 1, [1])),
    Case("conv_transpose2d_groups_output_padding", _call(
        "aten::conv_transpose2d", In(_randn(2, 4, 5, 4)), _randn(4, 3, 3, 2), _randn(6),
        [2, 3], [1, 0], [1, 2], 2, [1], overload="input")),
    Case("conv_transpose2d_groups_dilation", _call(
        "aten::conv_transpose2d", In(_randn(1, 4, 5, 4)), _randn(4, 2, 3, 2), _randn(4),
        [1], [2, 1], [0], 2, [2, 3], overload="input")),
    Case("conv_transpose3d", _call("aten::conv_transpose3d", In(_randn(1, 2, 3, 3, 3)), _randn(2, 2, 2, 2, 2), None,
                                   [1], [0], [0], 1, [1], overload="input")),
    Case("convolution_transposed", _with_weights("aten::convolution", (1, 3, 4, 4), [_randn(3, 4, 3, 3), _randn(4)],
                                                 [2, 2], [1, 1], [1, 1], True, [1, 1], 1)),
    Case("_convolution_transposed_depthwise", _with_weights(
        "aten::_convolution", (1, 4, 4, 4), [_randn(4, 1, 3, 3), None],
        [2, 1], [0, 1], [1, 1], True, [1, 0], 4, False, False, True, True)),
    Case("conv2d_same_even_kernel_dilated", _call("aten::conv2d", In(_randn(1, 3, 7, 8)), _randn(4, 3, 4, 2),
                                                  _randn(4), [1], "same", [1, 2], 1, overload="padding")),
    Case("conv1d_valid", _call("aten::conv1d", In(_randn(1, 3, 8)), _randn(2, 3, 3), None, [2], "valid", [1], 1,
                               overload="padding")),
    Case("conv3d_same_groups", _call("aten::conv3d", In(_randn(1, 2, 4, 4, 5)), _randn(4, 1, 3, 2, 3), None, [1],
                                     "same", [1], 2, overload="padding")),
    # pooling: ceil_mode on sizes where torch drops a last window that would start in the padding
    # (5 wide, kernel 2, stride 2, pad 1: 3 outputs, where ceil((5 + 2 - 2) / 2) + 1 = 4) and where
    # the last window runs past the padding
    Case("max_pool2d_ceil_drops_window", _single("aten::max_pool2d", [(1, 2, 5, 5)], [2, 2], [2, 2], [1, 1], [1, 1],
                                                 True)),
    Case("max_pool2d_ceil_overhang", _single("aten::max_pool2d", [(1, 2, 6, 7)], [3, 3], [2, 2], [1, 1], [1, 1],
                                             True)),
    Case("max_pool2d_ceil_drops_window_tall", _single("aten::max_pool2d", [(1, 2, 10, 6)], [3, 2], [4, 3], [1, 0],
                                                      [1, 1], True)),
    Case("avg_pool2d_ceil_drops_window", _single("aten::avg_pool2d", [(1, 2, 5, 5)], [2, 2], [2, 2], [1, 1],
                                                 True, True, None)),
    Case("avg_pool2d_ceil_counting_pad_overhang", _single("aten::avg_pool2d", [(1, 2, 6, 7)], [3, 3], [2, 2], [1, 1],
                                                          True, True, None)),
    Case("avg_pool2d_ceil_excluding_pad_overhang", _single("aten::avg_pool2d", [(1, 2, 6, 7)], [3, 3], [2, 2], [1, 1],
                                                           True, False, None)),
    Case("avg_pool2d_ceil_no_pad_overhang", _single("aten::avg_pool2d", [(1, 2, 6, 7)], [3, 3], [2, 2], [0, 0],
                                                    True, True, None)),
    Case("avg_pool2d_ceil_no_change", _single("aten::avg_pool2d", [(1, 2, 6, 6)], [2, 2], [], [0, 0],
                                              True, True, None)),
    Case("adaptive_avg_pool2d_dividing", _single("aten::adaptive_avg_pool2d", [(2, 3, 4, 6)], [2, 3])),
    Case("dynamic_view", _dynamic_view, extra_inputs=[[_randn(5, 3, 4, 4)]]),
    Case("dynamic_shape_arithmetic", _dynamic_shape_arithmetic, extra_inputs=[[_randn(1, 2, 4, 3)]]),
    Case("dynamic_flatten_select", _dynamic_flatten_and_select, extra_inputs=[[_randn(2, 7, 3, 2)]]),
]


def build_case(case: Case) -> tuple[Graph, list[torch.Tensor]]:
    builder = GraphBuilder(case.name)
    outputs, inputs = case.build(builder)
    graph = builder.returns(*outputs)
    _run_eager(graph, inputs, fill_types=True)
    return graph, inputs


def _run_eager(graph: Graph, inputs: list[torch.Tensor], fill_types: bool = False) -> list[Any]:
    """The graph's outputs from the IR interpreter, node by node; ``fill_types`` replaces the
    placeholder output types (static cases) with what eager torch computed.

    ``prim::NumToTensor`` is executed here because ``packager.ir.interpreter`` has no rule for
    it (it is not a ``torch.ops`` operator); TorchScript makes a 0-d tensor of the number.
    """
    env: dict[int, Any] = {id(value): data.clone() for value, data in zip(graph.inputs, inputs)}
    for node in graph.block.nodes:
        arguments = [env[id(v)] for v in node.inputs]
        results = [torch.tensor(arguments[0])] if node.op == "prim::NumToTensor" else run_node(node, arguments)
        for value, result in zip(node.outputs, results):
            env[id(value)] = result
            if fill_types and value.type == ANY:
                value.type = TensorType(dtype_name(result.dtype), tuple(result.shape))
    return [env[id(value)] for value in graph.outputs]


class ConvTranspose(_ReferenceConvTranspose):
    """onnx.reference's ConvTranspose with ``group > 1`` (onnx 1.23) slices the weight by output
    channels and fails or computes something else; this runs each group as its own
    ``group=1`` ConvTranspose, which is the operator's definition: group ``g`` maps input channels
    ``g * C / G ...`` through weight rows ``g * C / G ...`` to output channels ``g * M / G ...``."""

    def _run(self, X, W, B=None, **attributes):  # noqa: N803 (ONNX's input names)
        group = attributes.pop("group", None) or 1
        if group == 1:
            return super()._run(X, W, B, group=1, **attributes)
        pieces = [super(ConvTranspose, self)._run(x, w, None, group=1, **attributes)[0]
                  for x, w in zip(np.split(X, group, axis=1), np.split(W, group, axis=0))]
        result = np.concatenate(pieces, axis=1)
        if B is not None:
            result = result + B.reshape(1, -1, *[1] * (result.ndim - 2))
        return (result.astype(X.dtype),)


def _run_onnx(model: onnx.ModelProto, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    feeds = {info.name: data.numpy() for info, data in zip(model.graph.input, inputs)}
    with np.errstate(divide="ignore", invalid="ignore"):  # division by zero is part of some cases
        results = ReferenceEvaluator(model, new_ops=[ConvTranspose]).run(None, feeds)
    return [torch.from_numpy(np.asarray(result)) for result in results]


def _assert_matches_eager(graph: Graph, model: onnx.ModelProto, inputs: list[torch.Tensor]) -> None:
    expected = _run_eager(graph, inputs)
    actual = _run_onnx(model, inputs)
    assert len(actual) == len(expected)
    for index, (got, want) in enumerate(zip(actual, expected)):
        assert got.dtype == want.dtype and got.shape == want.shape, (
            f"output {index}: ONNX gave {got.dtype}{list(got.shape)}, eager {want.dtype}{list(want.shape)}")
        assert torch.allclose(got, want, rtol=RTOL, atol=ATOL, equal_nan=True), (
            f"output {index}: largest difference {(got.double() - want.double()).abs().max().item()}")


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_emitted_model_checks_and_matches_eager(case: Case) -> None:
    graph, inputs = build_case(case)
    for node in graph.walk():
        assert emission_capability(node) is None, f"{node!r}: {emission_capability(node)}"
    model = emit_onnx(graph, opset=case.opset)
    onnx.checker.check_model(model, full_check=True)
    for batch in [inputs, *case.extra_inputs]:
        _assert_matches_eager(graph, model, batch)


def test_every_table_entry_has_a_numeric_case() -> None:
    covered = set()
    for case in CASES:
        graph, _ = build_case(case)
        covered.update(node.kind for node in graph.walk())
    missing = [key for key in EMISSION_TABLE.keys() if key not in covered]
    assert not missing, f"table entries without a test case: {missing}"


def test_boundaries_are_named_after_ir_values_with_symbolic_dims() -> None:
    graph, _ = build_case(next(case for case in CASES if case.name == "dynamic_view"))
    model = emit_onnx(graph)
    assert [info.name for info in model.graph.input] == [value.name for value in graph.inputs]
    assert [info.name for info in model.graph.output] == [value.name for value in graph.outputs]
    input_dims = model.graph.input[0].type.tensor_type.shape.dim
    assert input_dims[0].dim_param == "s0" and [d.dim_value for d in input_dims[1:]] == [3, 4, 4]
    assert [init.name for init in model.graph.initializer if init.dims == [5, 48]], "weight is an initializer"


def test_graph_input_returned_twice_gets_distinct_output_names() -> None:
    builder = GraphBuilder("passthrough")
    x = builder.input(tensor_type(2, 3), "x")
    graph = builder.returns(x, x)
    model = emit_onnx(graph)
    onnx.checker.check_model(model, full_check=True)
    names = [info.name for info in model.graph.output]
    assert len(set(names)) == 2 and "x" not in names
    _assert_matches_eager(graph, model, [_randn(2, 3)])


def _node_of(op: str, *arguments: Any, overload: str = "", input_type: TensorType | None = None):
    builder = GraphBuilder("refused")
    x = builder.input(input_type or tensor_type(2, 3))
    node = builder.node(op, x, *arguments, out=FLOAT, overload=overload)
    builder.returns(node.outputs[0])
    return builder.graph, node


@pytest.mark.parametrize(("op", "overload", "arguments", "reason"), [
    ("aten::fft_rfft", "", (None, -1, None), "aten::fft_rfft has no ONNX emitter"),
    ("aten::view", "dtype", (torch.int32,), "aten::view.dtype has no ONNX emitter"),
    ("aten::dropout", "", (0.5, True), "aten::dropout is emitted only with train=False"),
    ("aten::gelu", "", ("erf",), "aten::gelu needs a constant approximate='none' or 'tanh'"),
    ("aten::adaptive_avg_pool2d", "", ([3, 3],), "an output size of 1 or one that divides static input sizes"),
    ("aten::avg_pool2d", "", ([2], [2], [0], True, True, 3), "emitted only with divisor_override=None"),
    ("aten::div", "Scalar_mode", (2, "round"), "needs a constant rounding_mode None, 'trunc' or 'floor'"),
    ("aten::topk", "", (2, -1, True, False), "aten::topk is emitted only with sorted=True"),
    ("aten::conv2d", "padding", (torch.ones(2, 2, 3, 3), None, [2], "same", [1], 1), "only with stride 1"),
    ("aten::clamp", "", (None, None), "aten::clamp needs at least one bound"),
    ("aten::max_pool2d", "", ([2], [2], [0], [2], False), "TensorRT's ONNX parser refuses dilated pooling"),
    ("aten::conv_transpose2d", "input", (torch.ones(2, 2, 3, 3), None, [2], [0], [0], 1, [2]),
     "'Strided & Dilated Deconv are currently not supported'"),
    ("aten::convolution", "", (torch.ones(2, 2, 3, 3), None, [1, 2], [0], [2, 1], True, [0], 1),
     "a transposed convolution both strided and dilated is not emitted"),
])
def test_capability_reasons(op: str, overload: str, arguments: tuple, reason: str) -> None:
    graph, node = _node_of(op, *arguments, overload=overload, input_type=tensor_type(1, 2, 4, 4))
    assert reason in emission_capability(node)
    with pytest.raises(BackendError, match="cannot emit"):
        emit_onnx(graph)


def test_capability_reasons_for_non_constant_arguments() -> None:
    builder = GraphBuilder("computed")
    x = builder.input(tensor_type(2, 3))
    dims = builder.op("prim::ListConstruct", builder.op("aten::dim", x, out=INT), out=ListType(INT))
    permute = builder.node("aten::permute", x, dims, out=FLOAT)
    size_list = builder.op("aten::list", builder.op("aten::size", x, out=ListType(INT)), out=ListType(INT), overload="t")
    view = builder.node("aten::view", x, size_list, out=FLOAT)
    assert emission_capability(permute) == "aten::permute needs a constant 'dims' argument to emit ONNX"
    assert emission_capability(view) == "aten::view needs a constant or shape-derived size list"


def test_capability_reasons_for_data_dependent_and_symbolic_cases() -> None:
    builder = GraphBuilder("dynamic")
    x = builder.input(TensorType("float32", (SymDim("s0", 1, 4), 3)))
    squeeze = builder.node("aten::squeeze", x, 0, out=FLOAT, overload="dim")
    assert "symbolic dimension" in emission_capability(squeeze)
    number = builder.node("aten::Int", builder.op("aten::sum", x, None, out=TensorType("float32", ())), out=INT, overload="Tensor")
    assert "data-dependent" in emission_capability(number)
    chunk = builder.node("aten::chunk", x, 2, 0, out=TENSORS)
    assert "static size" in emission_capability(chunk)
    image = builder.input(TensorType("float32", (1, 2, SymDim("s1", 4, 8), 8)))
    ceil_pool = builder.node("aten::max_pool2d", image, [2], [2], [0], [1], True, out=FLOAT)
    assert "ceil_mode=True needs static spatial sizes" in emission_capability(ceil_pool)
    floor_pool = builder.node("aten::max_pool2d", image, [2], [2], [0], [1], False, out=FLOAT)
    assert emission_capability(floor_pool) is None
    adaptive = builder.node("aten::adaptive_avg_pool2d", image, [2, 2], out=FLOAT)
    assert "divides static input sizes" in emission_capability(adaptive)
    unbatched = builder.node("aten::adaptive_avg_pool2d", builder.input(tensor_type(2, 4, 4)), [1, 1], out=FLOAT)
    assert "batched (N, C, H, W)" in emission_capability(unbatched)
    integers = builder.input(tensor_type(2, 3, dtype="int64"))
    assert "floating-point" in emission_capability(builder.node("aten::hardswish", integers, out=FLOAT))


def test_duplicate_registration_is_an_error() -> None:
    table = EmissionTable()
    table.add(EmissionEntry("aten::relu", lambda emission, node: None))
    with pytest.raises(InternalError, match="already has an entry"):
        table.add(EmissionEntry("aten::relu", lambda emission, node: None))
    with pytest.raises(InternalError, match="must look like"):
        table.add(EmissionEntry("relu", lambda emission, node: None))
