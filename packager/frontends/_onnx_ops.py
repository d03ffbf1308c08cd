"""The ONNX -> ATen table: one handler per ONNX op type, registered on :data:`ONNX_TO_ATEN`.

A handler receives an :class:`~packager.frontends.onnx.OnnxNodeContext` (the ONNX node, its
inputs as IR values, its attributes, the opset, what is known at build time about each input) and
emits ATen nodes through ``ctx.aten(op, args, overload)``; it returns one IR value per ONNX output
(or raises through ``ctx.unsupported(reason)`` for an attribute variant it cannot map).

Arguments that ONNX passes as tensors but ATen wants as ints (``Reshape``'s shape, ``Slice``'s
starts, ``Unsqueeze``'s axes, ...) must be known at build time: initializers, ``Constant`` nodes,
sub-graphs folded at import, or shapes (``Shape`` of a tensor stays a list of ``aten::size``
ints, so ``x.view(x.size(0), -1)`` keeps a dynamic batch).

Every entry is tested against ``onnx.reference.ReferenceEvaluator`` in ``onnx_ops_test.py``.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from packager.errors import InternalError
from packager.ir.graph import Value

if TYPE_CHECKING:
    from packager.frontends.onnx import OnnxNodeContext

__all__ = ["OnnxOpTable", "ONNX_TO_ATEN", "OnnxHandler"]

OnnxHandler = Callable[["OnnxNodeContext"], "Value | Sequence[Value]"]

_OP_TYPE = re.compile(r"^[A-Z][A-Za-z0-9]*$")


class OnnxOpTable:
    """ONNX op types (default domain) -> handlers. Registering an op type twice is an error."""

    def __init__(self) -> None:
        self._handlers: dict[str, OnnxHandler] = {}

    def register(self, *op_types: str) -> Callable[[OnnxHandler], OnnxHandler]:
        for op_type in op_types:
            if not _OP_TYPE.match(op_type):
                raise InternalError(f"ONNX op types are CamelCase identifiers, got {op_type!r}")

        def decorate(handler: OnnxHandler) -> OnnxHandler:
            for op_type in op_types:
                if op_type in self._handlers:
                    raise InternalError(f"ONNX op {op_type!r} is already mapped by {self._handlers[op_type].__name__}")
                self._handlers[op_type] = handler
            return handler

        return decorate

    def get(self, op_type: str) -> OnnxHandler | None:
        return self._handlers.get(op_type)

    def __contains__(self, op_type: str) -> bool:
        return op_type in self._handlers

    def op_types(self) -> tuple[str, ...]:
        return tuple(sorted(self._handlers))


ONNX_TO_ATEN = OnnxOpTable()
_register = ONNX_TO_ATEN.register


# --------------------------------------------------------------------------- elementwise
_UNARY = {
    "Relu": "aten::relu", "Sigmoid": "aten::sigmoid", "Tanh": "aten::tanh", "Sqrt": "aten::sqrt",
    "Erf": "aten::erf", "Exp": "aten::exp", "Log": "aten::log", "Neg": "aten::neg", "Abs": "aten::abs",
    "Reciprocal": "aten::reciprocal", "Floor": "aten::floor", "Ceil": "aten::ceil", "Sin": "aten::sin",
    "Cos": "aten::cos", "Not": "aten::logical_not", "Sign": "aten::sign",
}


def _unary(ctx: "OnnxNodeContext") -> Value:
    return ctx.aten(_UNARY[ctx.op_type], [ctx.input(0)])


_register(*_UNARY)(_unary)

# ONNX's binary ops broadcast numpy-style, as ATen's Tensor overloads do.
_BINARY = {
    "Add": ("aten::add", "Tensor"), "Sub": ("aten::sub", "Tensor"), "Mul": ("aten::mul", "Tensor"),
    "Equal": ("aten::eq", "Tensor"), "Less": ("aten::lt", "Tensor"), "Greater": ("aten::gt", "Tensor"),
    "LessOrEqual": ("aten::le", "Tensor"), "GreaterOrEqual": ("aten::ge", "Tensor"),
    "And": ("aten::logical_and", ""), "Or": ("aten::logical_or", ""), "Xor": ("aten::logical_xor", ""),
}


def _binary(ctx: "OnnxNodeContext") -> Value:
    op, overload = _BINARY[ctx.op_type]
    return ctx.aten(op, [ctx.input(0), ctx.input(1)], overload)


_register(*_BINARY)(_binary)


@_register("Div")
def _div(ctx: "OnnxNodeContext") -> Value:
    if ctx.is_integer(0):
        # ONNX integer division truncates; aten::div.Tensor would return floats.
        return ctx.aten("aten::div", [ctx.input(0), ctx.input(1), "trunc"], "Tensor_mode")
    return ctx.aten("aten::div", [ctx.input(0), ctx.input(1)], "Tensor")


@_register("Pow")
def _pow(ctx: "OnnxNodeContext") -> Value:
    result = ctx.aten("aten::pow", [ctx.input(0), ctx.input(1)], "Tensor_Tensor")
    base, exponent = ctx.torch_dtype(0), ctx.torch_dtype(1)
    if base is not None and base != exponent:
        # ONNX's result has the base's type; torch promotes (int ** float -> float).
        result = ctx.aten("aten::to", [result, base, False, False], "dtype")
    return result


@_register("Max", "Min", "Sum", "Mean")
def _variadic(ctx: "OnnxNodeContext") -> Value:
    op = {"Max": "aten::maximum", "Min": "aten::minimum", "Sum": "aten::add", "Mean": "aten::add"}[ctx.op_type]
    overload = "Tensor" if ctx.op_type in ("Sum", "Mean") else ""
    result = ctx.input(0)
    for index in range(1, ctx.input_count):
        result = ctx.aten(op, [result, ctx.input(index)], overload)
    if ctx.op_type == "Mean":
        result = ctx.aten("aten::div", [result, float(ctx.input_count)], "Scalar")
    return result


@_register("LeakyRelu")
def _leaky_relu(ctx: "OnnxNodeContext") -> Value:
    return ctx.aten("aten::leaky_relu", [ctx.input(0), float(ctx.attr("alpha", 0.01))])


@_register("Elu")
def _elu(ctx: "OnnxNodeContext") -> Value:
    return ctx.aten("aten::elu", [ctx.input(0), float(ctx.attr("alpha", 1.0))])


@_register("HardSigmoid")
def _hard_sigmoid(ctx: "OnnxNodeContext") -> Value:
    alpha, beta = float(ctx.attr("alpha", 0.2)), float(ctx.attr("beta", 0.5))
    scaled = ctx.aten("aten::add", [ctx.aten("aten::mul", [ctx.input(0), alpha], "Scalar"), beta], "Scalar")
    return ctx.aten("aten::clamp", [scaled, 0.0, 1.0])


@_register("HardSwish")
def _hard_swish(ctx: "OnnxNodeContext") -> Value:
    return ctx.aten("aten::hardswish", [ctx.input(0)])


@_register("Softplus")
def _softplus(ctx: "OnnxNodeContext") -> Value:
    return ctx.aten("aten::softplus", [ctx.input(0)])


@_register("PRelu")
def _prelu(ctx: "OnnxNodeContext") -> Value:
    # ONNX broadcasts the slope numpy-style; aten::prelu wants it per channel, so spell it out.
    x, slope = ctx.input(0), ctx.input(1)
    negative = ctx.aten("aten::mul", [ctx.aten("aten::clamp", [x, None, 0.0]), slope], "Tensor")
    return ctx.aten("aten::add", [ctx.aten("aten::clamp", [x, 0.0, None]), negative], "Tensor")


@_register("Gelu")
def _gelu(ctx: "OnnxNodeContext") -> Value:
    approximate = ctx.attr("approximate", "none")
    if approximate not in ("none", "tanh"):
        ctx.unsupported(f"approximate={approximate!r} (expected 'none' or 'tanh')")
    return ctx.aten("aten::gelu", [ctx.input(0), approximate])


@_register("Clip")
def _clip(ctx: "OnnxNodeContext") -> Value:
    low, high = ctx.optional_input(1), ctx.optional_input(2)
    if low is None and high is None:
        return ctx.input(0)
    return ctx.aten("aten::clamp", [ctx.input(0), low, high], "Tensor")


@_register("Where")
def _where(ctx: "OnnxNodeContext") -> Value:
    return ctx.aten("aten::where", [ctx.input(0), ctx.input(1), ctx.input(2)], "self")


@_register("Cast")
def _cast(ctx: "OnnxNodeContext") -> Value:
    if ctx.shape_list(0) is not None and ctx.attr("to") == 7:  # int64 -> int64 of a shape: no-op
        return ctx.pass_shape_list(0)
    return ctx.aten("aten::to", [ctx.input(0), ctx.onnx_dtype(ctx.attr("to")), False, False], "dtype")


@_register("Identity", "Dropout")
def _identity(ctx: "OnnxNodeContext") -> Value:
    if ctx.op_type == "Dropout":
        ctx.require_unused_outputs(1, "the mask output")
        training = ctx.constant(2)
        if training is not None and bool(training):
            ctx.unsupported("training_mode=True (the packager builds inference graphs)")
    if ctx.shape_list(0) is not None:
        return ctx.pass_shape_list(0)
    return ctx.input(0)


# ------------------------------------------------------------------------ linear algebra
@_register("MatMul")
def _matmul(ctx: "OnnxNodeContext") -> Value:
    return ctx.aten("aten::matmul", [ctx.input(0), ctx.input(1)])


@_register("Gemm")
def _gemm(ctx: "OnnxNodeContext") -> Value:
    a, b = ctx.input(0), ctx.input(1)
    if ctx.attr("transA", 0):
        a = ctx.aten("aten::t", [a])
    if ctx.attr("transB", 0):
        b = ctx.aten("aten::t", [b])
    alpha, beta = float(ctx.attr("alpha", 1.0)), float(ctx.attr("beta", 1.0))
    c = ctx.optional_input(2)
    if c is None:
        product = ctx.aten("aten::mm", [a, b])
        return product if alpha == 1.0 else ctx.aten("aten::mul", [product, alpha], "Scalar")
    return ctx.aten("aten::addmm", [c, a, b, beta, alpha])


@_register("Einsum")
def _einsum(ctx: "OnnxNodeContext") -> Value:
    operands = ctx.tensor_list([ctx.input(index) for index in range(ctx.input_count)])
    return ctx.aten("aten::einsum", [ctx.attr("equation"), operands, None])


# ------------------------------------------------------------------------- convolutions
def _spatial_rank(ctx: "OnnxNodeContext") -> int:
    kernel = ctx.attr("kernel_shape")
    if kernel is not None:
        return len(kernel)
    rank = ctx.rank(1) if ctx.op_type in ("Conv", "ConvTranspose") else ctx.rank(0)
    return rank - 2


def _kernel_shape(ctx: "OnnxNodeContext", spatial: int) -> list[int]:
    kernel = ctx.attr("kernel_shape")
    if kernel is not None:
        return list(kernel)
    shape = ctx.static_shape(1)
    if shape is None:
        ctx.unsupported("no kernel_shape attribute and the weight's shape is not known at build time")
    return list(shape[2:2 + spatial])


def _symmetric_pads(ctx: "OnnxNodeContext", spatial: int, kernel: list[int], strides: list[int],
                    dilations: list[int]) -> tuple[list[int], list[int]]:
    """ONNX pads (or auto_pad) -> (begin pads, end pads), one per spatial dim."""
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if auto_pad in ("NOTSET", b"NOTSET"):
        pads = list(ctx.attr("pads", [0] * (2 * spatial)))
        return pads[:spatial], pads[spatial:]
    if auto_pad == "VALID":
        return [0] * spatial, [0] * spatial
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if any(stride != 1 for stride in strides):
            shape = ctx.static_shape(0)
            if shape is None:
                ctx.unsupported(f"auto_pad={auto_pad} with strides {strides} on an input of dynamic size")
            sizes = shape[2:]
        else:
            sizes = [1] * spatial
        begin, end = [], []
        for size, k, s, d in zip(sizes, kernel, strides, dilations, strict=True):
            output = -(-size // s)
            total = max((output - 1) * s + (k - 1) * d + 1 - size, 0)
            small, large = total // 2, total - total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else large)
            end.append(large if auto_pad == "SAME_UPPER" else small)
        return begin, end
    ctx.unsupported(f"auto_pad={auto_pad!r}")
    raise AssertionError


def _torch_pad_list(begin: Sequence[int], end: Sequence[int]) -> list[int]:
    """Per-dim (begin, end) for the trailing dims -> aten's pad list (last dim first)."""
    pads: list[int] = []
    for first, last in zip(reversed(begin), reversed(end)):
        pads += [first, last]
    return pads


@_register("Conv", "ConvTranspose")
def _conv(ctx: "OnnxNodeContext") -> Value:
    spatial = _spatial_rank(ctx)
    kernel = _kernel_shape(ctx, spatial)
    strides = list(ctx.attr("strides", [1] * spatial))
    dilations = list(ctx.attr("dilations", [1] * spatial))
    begin, end = _symmetric_pads(ctx, spatial, kernel, strides, dilations)
    x = ctx.input(0)
    transposed = ctx.op_type == "ConvTranspose"
    if transposed:
        if ctx.attr("output_shape") is not None:
            ctx.unsupported("the output_shape attribute (give pads and output_padding instead)")
        if begin != end:
            ctx.unsupported(f"asymmetric pads {begin + end}")
        output_padding = list(ctx.attr("output_padding", [0] * spatial))
    else:
        output_padding = [0] * spatial
        if begin != end:
            x = ctx.aten("aten::constant_pad_nd", [x, _torch_pad_list(begin, end), 0.0])
            begin = [0] * spatial
    return ctx.aten("aten::convolution", [
        x, ctx.input(1), ctx.optional_input(2), strides, begin, dilations, transposed, output_padding,
        int(ctx.attr("group", 1)),
    ])


@_register("BatchNormalization")
def _batch_norm(ctx: "OnnxNodeContext") -> Value:
    if ctx.attr("training_mode", 0):
        ctx.unsupported("training_mode=1 (the packager builds inference graphs)")
    ctx.require_unused_outputs(1, "the running mean/var outputs")
    return ctx.aten("aten::batch_norm", [
        ctx.input(0), ctx.input(1), ctx.input(2), ctx.input(3), ctx.input(4), False,
        float(ctx.attr("momentum", 0.9)), float(ctx.attr("epsilon", 1e-5)), False,
    ])


@_register("LayerNormalization")
def _layer_norm(ctx: "OnnxNodeContext") -> Value:
    ctx.require_unused_outputs(1, "the Mean/InvStdDev outputs")
    axis = ctx.attr("axis", -1)
    rank = ctx.rank(0)
    axis = axis + rank if axis < 0 else axis
    shape = ctx.static_shape(0, allow_partial=True)
    normalized = list(shape[axis:]) if shape is not None else []
    if not normalized or any(dim is None for dim in normalized):
        ctx.unsupported(f"normalized dims {axis}.. of the input have sizes unknown at build time")
    return ctx.aten("aten::layer_norm", [
        ctx.input(0), normalized, ctx.input(1), ctx.optional_input(2), float(ctx.attr("epsilon", 1e-5)), False,
    ])


# ------------------------------------------------------------------------------ softmax
@_register("Softmax", "LogSoftmax")
def _softmax(ctx: "OnnxNodeContext") -> Value:
    op = "aten::softmax" if ctx.op_type == "Softmax" else "aten::log_softmax"
    return ctx.aten(op, [ctx.input(0), int(ctx.attr("axis", -1)), None], "int")


# --------------------------------------------------------------------------- reductions
_REDUCTIONS = {
    "ReduceMean": ("aten::mean", "dim"), "ReduceSum": ("aten::sum", "dim_IntList"),
    "ReduceMax": ("aten::amax", ""), "ReduceMin": ("aten::amin", ""),
}


@_register(*_REDUCTIONS)
def _reduce(ctx: "OnnxNodeContext") -> Value:
    op, overload = _REDUCTIONS[ctx.op_type]
    keepdims = bool(ctx.attr("keepdims", 1))
    # Axes became an input in opset 13 for ReduceSum and in opset 18 for the others.
    axes = ctx.attr("axes")
    if axes is None and ctx.optional_input(1) is not None:
        axes = ctx.constant_ints(1, "axes")
    if not axes:
        if ctx.attr("noop_with_empty_axes", 0):
            return ctx.input(0)
        axes = list(range(ctx.rank(0)))
    arguments = [ctx.input(0), list(axes), keepdims]
    if op in ("aten::mean", "aten::sum"):
        arguments.append(None)
    return ctx.aten(op, arguments, overload)


@_register("ArgMax", "ArgMin")
def _arg_reduce(ctx: "OnnxNodeContext") -> Value:
    if ctx.attr("select_last_index", 0):
        ctx.unsupported("select_last_index=1")
    op = "aten::argmax" if ctx.op_type == "ArgMax" else "aten::argmin"
    return ctx.aten(op, [ctx.input(0), int(ctx.attr("axis", 0)), bool(ctx.attr("keepdims", 1))])


# ------------------------------------------------------------------------------ pooling
@_register("MaxPool", "AveragePool")
def _pool(ctx: "OnnxNodeContext") -> Value:
    ctx.require_unused_outputs(1, "the Indices output")
    spatial = _spatial_rank(ctx)
    if spatial not in (1, 2, 3):
        ctx.unsupported(f"{spatial} spatial dims (1 to 3 are supported)")
    kernel = list(ctx.attr("kernel_shape"))
    strides = list(ctx.attr("strides", [1] * spatial))
    dilations = list(ctx.attr("dilations", [1] * spatial))
    ceil_mode = bool(ctx.attr("ceil_mode", 0))
    begin, end = _symmetric_pads(ctx, spatial, kernel, strides, dilations)
    x = ctx.input(0)
    is_max = ctx.op_type == "MaxPool"
    fits = begin == end and all(2 * pad <= k for pad, k in zip(begin, kernel))
    if not fits:
        if ceil_mode:
            ctx.unsupported(f"ceil_mode=1 with pads {begin + end} that aten's pooling cannot express")
        if not is_max and not ctx.attr("count_include_pad", 0):
            ctx.unsupported(f"pads {begin + end} with count_include_pad=0")
        fill = -math.inf if is_max else 0.0
        x = ctx.aten("aten::constant_pad_nd", [x, _torch_pad_list(begin, end), fill])
        begin = [0] * spatial
    if is_max:
        if ctx.attr("storage_order", 0):
            ctx.unsupported("storage_order=1")
        return ctx.aten(f"aten::max_pool{spatial}d", [x, kernel, strides, begin, dilations, ceil_mode])
    if any(d != 1 for d in dilations):
        ctx.unsupported(f"dilations {dilations} for AveragePool")
    arguments = [x, kernel, strides, begin, ceil_mode, bool(ctx.attr("count_include_pad", 0))]
    if spatial > 1:
        arguments.append(None)
    return ctx.aten(f"aten::avg_pool{spatial}d", arguments)


@_register("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(ctx: "OnnxNodeContext") -> Value:
    dims = list(range(2, ctx.rank(0)))
    if ctx.op_type == "GlobalMaxPool":
        return ctx.aten("aten::amax", [ctx.input(0), dims, True])
    return ctx.aten("aten::mean", [ctx.input(0), dims, True, None], "dim")


# -------------------------------------------------------------------- shape and layout
@_register("Shape")
def _shape(ctx: "OnnxNodeContext") -> Value:
    rank = ctx.rank(0)
    start = ctx.attr("start", 0)
    end = ctx.attr("end", rank)
    return ctx.make_shape_list(ctx.sizes(0)[slice(start, end)])


@_register("Reshape")
def _reshape(ctx: "OnnxNodeContext") -> Value:
    shape = ctx.int_list(1, "shape")
    if not ctx.attr("allowzero", 0) and any(isinstance(d, int) and d == 0 for d in shape):
        sizes = ctx.sizes(0)
        shape = [sizes[i] if isinstance(d, int) and d == 0 else d for i, d in enumerate(shape)]
    return ctx.aten("aten::reshape", [ctx.input(0), ctx.int_list_value(shape)])


@_register("Flatten")
def _flatten(ctx: "OnnxNodeContext") -> Value:
    rank = ctx.rank(0)
    axis = ctx.attr("axis", 1)
    axis = axis + rank if axis < 0 else axis
    x = ctx.input(0)
    if axis == 0:
        return ctx.aten("aten::reshape", [x, [1, -1]])
    if axis == rank:
        return ctx.aten("aten::unsqueeze", [ctx.aten("aten::flatten", [x, 0, -1], "using_ints"), 1])
    inner = ctx.aten("aten::flatten", [x, axis, -1], "using_ints")
    return inner if axis == 1 else ctx.aten("aten::flatten", [inner, 0, axis - 1], "using_ints")


@_register("Transpose")
def _transpose(ctx: "OnnxNodeContext") -> Value:
    perm = ctx.attr("perm")
    if perm is None:
        perm = list(reversed(range(ctx.rank(0))))
    return ctx.aten("aten::permute", [ctx.input(0), list(perm)])


@_register("Unsqueeze")
def _unsqueeze(ctx: "OnnxNodeContext") -> Value:
    axes = ctx.attr("axes")
    if axes is None:
        axes = ctx.constant_ints(1, "axes")
    items = ctx.shape_list(0)
    if items is not None and ctx.rank(0) == 0 and list(axes) in ([0], [-1]):
        return ctx.make_shape_list(items)
    output_rank = ctx.rank(0) + len(axes)
    x = ctx.input(0)
    for axis in sorted(a + output_rank if a < 0 else a for a in axes):
        x = ctx.aten("aten::unsqueeze", [x, axis])
    return x


@_register("Squeeze")
def _squeeze(ctx: "OnnxNodeContext") -> Value:
    axes = ctx.attr("axes")
    if axes is None and ctx.optional_input(1) is not None:
        axes = ctx.constant_ints(1, "axes")
    if axes is None:
        return ctx.aten("aten::squeeze", [ctx.input(0)])
    return ctx.aten("aten::squeeze", [ctx.input(0), list(axes)], "dims")


@_register("Concat")
def _concat(ctx: "OnnxNodeContext") -> Value:
    axis = int(ctx.attr("axis"))
    lists = [ctx.shape_list(index) for index in range(ctx.input_count)]
    if all(items is not None for items in lists) and axis in (0, -1):
        return ctx.make_shape_list([item for items in lists for item in items])
    operands = ctx.tensor_list([ctx.input(index) for index in range(ctx.input_count)])
    return ctx.aten("aten::cat", [operands, axis])


@_register("Split")
def _split(ctx: "OnnxNodeContext") -> list[Value]:
    axis = int(ctx.attr("axis", 0))
    count = ctx.output_count
    sizes = ctx.attr("split")
    if sizes is None and ctx.optional_input(1) is not None:
        sizes = ctx.constant_ints(1, "split")
    x = ctx.input(0)
    if sizes is None:
        dim = ctx.static_shape(0, allow_partial=True)
        length = dim[axis] if dim is not None else None
        if length is None:
            ctx.unsupported("an even split of a dim whose size is unknown at build time")
        chunk = -(-length // count)
        sizes = [min(chunk, length - chunk * index) for index in range(count)]
    parts = ctx.aten("aten::split_with_sizes", [x, list(sizes), axis], list_output=True)
    return ctx.unpack(parts, count)


@_register("Slice")
def _slice(ctx: "OnnxNodeContext") -> Value:
    starts = ctx.constant_ints(1, "starts")
    ends = ctx.constant_ints(2, "ends")
    axes = ctx.constant_ints(3, "axes") if ctx.optional_input(3) is not None else list(range(len(starts)))
    steps = ctx.constant_ints(4, "steps") if ctx.optional_input(4) is not None else [1] * len(starts)
    items = ctx.shape_list(0)
    if items is not None and list(axes) in ([0], [-1]) and steps[0] > 0:
        return ctx.make_shape_list(items[slice(starts[0], ends[0], steps[0])])
    x = ctx.input(0)
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        if step <= 0:
            ctx.unsupported(f"step {step} on axis {axis} (aten::slice takes positive steps only)")
        x = ctx.aten("aten::slice", [x, axis, start, end, step], "Tensor")
    return x


@_register("Gather")
def _gather(ctx: "OnnxNodeContext") -> Value:
    axis = int(ctx.attr("axis", 0))
    items = ctx.shape_list(0)
    indices = ctx.constant(1)
    if items is not None and indices is not None and indices.ndim <= 1:
        picked = [items[int(i)] for i in indices.reshape(-1)]
        return ctx.make_shape_list(picked, scalar=indices.ndim == 0)
    rank = ctx.rank(0)
    axis = axis + rank if axis < 0 else axis
    index = ctx.input(1)
    if ctx.torch_dtype(1) != torch.int64:
        index = ctx.aten("aten::to", [index, torch.int64, False, False], "dtype")
    # A single advanced index at position ``axis`` puts the index's dims there: ONNX Gather.
    return ctx.aten("aten::index", [ctx.input(0), ctx.optional_tensor_list([None] * axis + [index])], "Tensor")


@_register("Expand")
def _expand(ctx: "OnnxNodeContext") -> Value:
    shape = ctx.int_list(1, "shape")
    rank = ctx.rank(0)
    # ONNX broadcasts both ways: a target 1 keeps the input's dim, which aten::expand spells -1.
    offset = len(shape) - rank
    if offset < 0:
        shape = [1] * -offset + list(shape)
        offset = 0
    target = [-1 if position >= offset and isinstance(d, int) and d == 1 else d for position, d in enumerate(shape)]
    return ctx.aten("aten::expand", [ctx.input(0), ctx.int_list_value(target), False])


@_register("Tile")
def _tile(ctx: "OnnxNodeContext") -> Value:
    return ctx.aten("aten::repeat", [ctx.input(0), ctx.int_list_value(ctx.int_list(1, "repeats"))])


@_register("Pad")
def _pad(ctx: "OnnxNodeContext") -> Value:
    mode = ctx.attr("mode", "constant")
    pads = ctx.constant_ints(1, "pads")
    rank = ctx.rank(0)
    axes = ctx.constant_ints(3, "axes") if ctx.optional_input(3) is not None else list(range(rank))
    axes = [a + rank if a < 0 else a for a in axes]
    begin, end = [0] * rank, [0] * rank
    for position, axis in enumerate(axes):
        begin[axis], end[axis] = pads[position], pads[len(axes) + position]
    value = ctx.constant(2)
    fill = float(value.reshape(-1)[0]) if value is not None and value.size else 0.0
    if ctx.optional_input(2) is not None and value is None:
        ctx.unsupported("a constant_value computed at run time")
    if mode == "constant":
        return ctx.aten("aten::constant_pad_nd", [ctx.input(0), _torch_pad_list(begin, end), fill])
    torch_mode = {"reflect": "reflect", "edge": "replicate", "wrap": "circular"}.get(mode)
    if torch_mode is None:
        ctx.unsupported(f"mode={mode!r}")
    padded = [i for i in range(rank) if begin[i] or end[i]]
    first = padded[0] if padded else rank
    return ctx.aten("aten::pad", [ctx.input(0), _torch_pad_list(begin[first:], end[first:]), torch_mode, None])


# ---------------------------------------------------------------------------- creation
@_register("Constant")
def _constant(ctx: "OnnxNodeContext") -> Value:
    return ctx.constant_tensor(ctx.constant_attribute())


@_register("ConstantOfShape")
def _constant_of_shape(ctx: "OnnxNodeContext") -> Value:
    fill = ctx.attr("value")
    array = np.zeros(1, dtype=np.float32) if fill is None else ctx.to_array(fill)
    dtype = torch.from_numpy(np.ascontiguousarray(array)).dtype
    scalar = array.reshape(-1)[0].item()
    shape = ctx.int_list_value(ctx.int_list(0, "shape"))
    return ctx.aten("aten::full", [shape, scalar, dtype, None, None, None])


@_register("Range")
def _range(ctx: "OnnxNodeContext") -> Value:
    start, limit, delta = (ctx.constant(index) for index in range(3))
    if start is None or limit is None or delta is None:
        ctx.unsupported("start, limit and delta computed at run time")
    return ctx.constant_tensor(np.arange(start.item(), limit.item(), delta.item(), dtype=start.dtype))


# ------------------------------------------------------------------------------ resize
_RESIZE_LINEAR = {1: "aten::upsample_linear1d", 2: "aten::upsample_bilinear2d", 3: "aten::upsample_trilinear3d"}


@_register("Resize")
def _resize(ctx: "OnnxNodeContext") -> Value:
    if ctx.attr("antialias", 0) or ctx.attr("exclude_outside", 0):
        ctx.unsupported("antialias or exclude_outside")
    if ctx.attr("axes") is not None:
        ctx.unsupported("the axes attribute")
    mode = ctx.attr("mode", "nearest")
    transform = ctx.attr("coordinate_transformation_mode", "half_pixel")
    nearest_mode = ctx.attr("nearest_mode", "round_prefer_floor")
    rank = ctx.rank(0)
    spatial = rank - 2
    scales = ctx.constant(2) if ctx.optional_input(2) is not None else None
    sizes = ctx.int_list(3, "sizes") if ctx.optional_input(3) is not None else None
    if scales is not None and scales.size == 0:
        scales = None
    if scales is None and sizes is None:
        ctx.unsupported("scales and sizes both missing or computed at run time")
    if scales is not None and any(float(s) != 1.0 for s in scales[:2]):
        ctx.unsupported(f"scales {list(scales)} that resize the batch or channel dims")
    if sizes is not None and len(sizes) != rank:
        ctx.unsupported(f"sizes {sizes} (one per input dim expected)")
    output_size = None if sizes is None else ctx.int_list_value(list(sizes[2:]))
    scale_factors = None if scales is None else [float(s) for s in scales[2:]]
    if mode == "nearest":
        if transform == "asymmetric" and nearest_mode == "floor":
            op = f"aten::upsample_nearest{spatial}d"
        elif transform in ("half_pixel", "pytorch_half_pixel") and nearest_mode == "round_prefer_ceil":
            op = f"aten::_upsample_nearest_exact{spatial}d"
        else:
            ctx.unsupported(f"nearest resize with coordinate_transformation_mode={transform!r} and "
                            f"nearest_mode={nearest_mode!r}")
        return ctx.aten(op, [ctx.input(0), output_size, scale_factors], "vec")
    if mode == "linear" and spatial in _RESIZE_LINEAR:
        if transform not in ("half_pixel", "pytorch_half_pixel", "align_corners"):
            ctx.unsupported(f"linear resize with coordinate_transformation_mode={transform!r}")
        align_corners = transform == "align_corners"
        return ctx.aten(_RESIZE_LINEAR[spatial], [ctx.input(0), output_size, align_corners, scale_factors], "vec")
    if mode == "cubic" and spatial == 2 and float(ctx.attr("cubic_coeff_a", -0.75)) == -0.75:
        if transform not in ("half_pixel", "pytorch_half_pixel", "align_corners"):
            ctx.unsupported(f"cubic resize with coordinate_transformation_mode={transform!r}")
        align_corners = transform == "align_corners"
        return ctx.aten("aten::upsample_bicubic2d", [ctx.input(0), output_size, align_corners, scale_factors], "vec")
    ctx.unsupported(f"mode={mode!r} on {spatial} spatial dims")
    raise AssertionError
