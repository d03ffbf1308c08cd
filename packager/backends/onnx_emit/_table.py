"""The ATen -> ONNX table: one explicit entry per IR node kind the emitter translates.

Keys are node kinds exactly as the IR spells them: ``"aten::add.Tensor"`` for an overload,
``"aten::relu"`` for the default overload (there is no wildcard: an overload nobody registered,
such as ``aten::view.dtype``, has no emitter). Registering a key twice is an error.

An entry is the function that emits the node plus what must hold for it to apply:

* ``constant_args``: input positions whose value must be known when emitting (a
  ``prim::Constant``, or a ``prim::ListConstruct`` of constants), because they become ONNX
  attributes (strides, axes, epsilon, ...);
* ``check``: further conditions on the node (``training`` is false, padding is not a string, ...),
  returning the reason when they do not hold.

Values seen by the emit functions (see :class:`packager.backends.onnx_emit.emitter.Emission`):
a tensor is the name of an ONNX value; a constant scalar or list is its Python value; an int or
int list computed from shapes is a :class:`ShapeTensor` (an int64 ONNX tensor of shape ``[1]``
or ``[n]``); a list of tensors is a Python list of ONNX names.

Shape arithmetic assumes non-negative sizes: ``aten::floordiv.int`` becomes ONNX ``Div``, which
truncates; for sizes (>= 0) truncation and flooring agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

from packager.errors import InternalError
from packager.ir.graph import Node, Value
from packager.ir.types import TensorType

if TYPE_CHECKING:
    from packager.backends.onnx_emit.emitter import Emission

__all__ = ["ShapeTensor", "EmissionEntry", "EmissionTable", "EMISSION_TABLE"]

EmitFunction = Callable[["Emission", Node], None]
Check = Callable[[Node], "str | None"]


@dataclass(frozen=True, slots=True)
class ShapeTensor:
    """An int (``scalar``: shape ``[1]``) or an int list (shape ``[n]``) known only at run time,
    held in an int64 ONNX tensor named ``name``."""

    name: str
    scalar: bool


@dataclass(frozen=True, slots=True)
class EmissionEntry:
    key: str
    emit: EmitFunction
    constant_args: tuple[int, ...] = ()
    check: Check | None = None


class EmissionTable:
    """Emitters by node kind, in registration order."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[str, EmissionEntry] = {}

    def register(self, *keys: str, constant_args: tuple[int, ...] = (), check: Check | None = None):
        """Decorator: ``@table.register("aten::relu")`` registers the decorated emit function."""

        def decorate(emit: EmitFunction) -> EmitFunction:
            for key in keys:
                self.add(EmissionEntry(key, emit, constant_args, check))
            return emit

        return decorate

    def add(self, entry: EmissionEntry) -> None:
        namespace, _, name = entry.key.partition("::")
        if not namespace or not name or name.count(".") > 1:
            raise InternalError(f"emission table key {entry.key!r} must look like 'aten::op' or 'aten::op.overload'")
        if entry.key in self._entries:
            raise InternalError(f"the ONNX emission table already has an entry for {entry.key!r}; register each kind once")
        self._entries[entry.key] = entry

    def lookup(self, node: Node) -> EmissionEntry | None:
        return self._entries.get(node.kind)

    def keys(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[EmissionEntry]:
        return iter(tuple(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)


EMISSION_TABLE = EmissionTable()
register = EMISSION_TABLE.register


# ----------------------------------------------------------------------------- checks
def _constant_of(value: Value) -> tuple[bool, Any]:
    producer = value.producer
    if producer is not None and producer.op == "prim::Constant":
        return True, producer.attrs.get("value")
    return False, None


def _argument_is(position: int, expected: Any, what: str) -> Check:
    def check(node: Node) -> str | None:
        known, value = _constant_of(node.inputs[position]) if position < len(node.inputs) else (True, expected)
        if not known or value != expected:
            return f"{node.kind} is emitted only with {what}"
        return None

    return check


def _all_of(*checks: Check) -> Check:
    def check(node: Node) -> str | None:
        for one in checks:
            reason = one(node)
            if reason is not None:
                return reason
        return None

    return check


def _not_a_string(position: int) -> Check:
    def check(node: Node) -> str | None:
        known, value = _constant_of(node.inputs[position])
        if known and isinstance(value, str):
            return f"{node.kind} with padding={value!r} has no ONNX emitter; give explicit padding sizes"
        return None

    return check


def _shape_list_argument(position: int) -> Check:
    """A size list must be known at build time or built from ints the segment computes from shapes."""

    def check(node: Node) -> str | None:
        producer = node.inputs[position].producer
        if producer is None or producer.op not in ("prim::Constant", "prim::ListConstruct", "aten::size"):
            return f"{node.op} needs a constant or shape-derived size list"
        return None

    return check


def _from_num_to_tensor(node: Node) -> str | None:
    producer = node.inputs[0].producer
    if producer is None or producer.op != "prim::NumToTensor":
        return (
            f"{node.kind} reads a computed tensor's value into a number (data-dependent); only "
            "numbers wrapped by prim::NumToTensor in the same segment are emitted"
        )
    return None


def _static_dim(tensor_position: int, dim_position: int) -> Check:
    def check(node: Node) -> str | None:
        shape = _shape(node.inputs[tensor_position])
        known, dim = _constant_of(node.inputs[dim_position])
        if shape is None or not known or not isinstance(shape[dim], int):
            return f"{node.kind} needs a static size along its split dimension to emit ONNX Split"
        return None

    return check


def _shape(value: Value) -> tuple | None:
    return value.type.shape if isinstance(value.type, TensorType) else None


def _scalar_bounds(node: Node) -> str | None:
    for value in node.inputs[1:]:
        if value.is_tensor:
            return f"{node.kind} with tensor bounds has no ONNX emitter (ONNX Clip takes scalar bounds)"
    return None


# -------------------------------------------------------------------- structural ops
@register("prim::Constant")
def _constant(emission: Emission, node: Node) -> None:
    emission.bind(node.output, emission.constant(node))


@register("prim::ListConstruct")
def _list_construct(emission: Emission, node: Node) -> None:
    items = [emission.lookup(value) for value in node.inputs]
    if node.inputs and all(value.is_tensor for value in node.inputs):
        emission.bind(node.output, items)
    elif any(isinstance(item, ShapeTensor) for item in items):
        emission.bind(node.output, ShapeTensor(emission.concat_ints(items), scalar=False))
    else:
        emission.bind(node.output, items)


@register("prim::ListUnpack")
def _list_unpack(emission: Emission, node: Node) -> None:
    items = emission.lookup(node.inputs[0])
    if isinstance(items, ShapeTensor):
        items = [ShapeTensor(emission.op("Gather", [items.name, emission.ints([index])], axis=0), scalar=True)
                 for index in range(len(node.outputs))]
    if len(items) != len(node.outputs):
        raise InternalError(f"{node!r}: the list has {len(items)} elements, the node unpacks {len(node.outputs)}")
    for value, item in zip(node.outputs, items):
        emission.bind(value, item)


@register("prim::NumToTensor")
def _num_to_tensor(emission: Emission, node: Node) -> None:
    number = emission.lookup(node.inputs[0])
    dtype = emission.dtype(node.output)
    if isinstance(number, ShapeTensor):
        scalar = emission.op("Reshape", [number.name, emission.ints([])])
        emission.bind(node.output, emission.cast(scalar, "int64", dtype))
    else:
        emission.bind(node.output, emission.scalar(number, dtype))


@register("aten::Int.Tensor", "aten::ScalarImplicit", check=_from_num_to_tensor)
def _number_of_tensor(emission: Emission, node: Node) -> None:
    emission.bind(node.output, emission.lookup(node.inputs[0].producer.inputs[0]))


@register("aten::size")
def _size(emission: Emission, node: Node) -> None:
    shape = _shape(node.inputs[0])
    if shape is not None and all(isinstance(dim, int) for dim in shape):
        emission.bind(node.output, list(shape))
    else:
        emission.bind(node.output, ShapeTensor(emission.op("Shape", [emission.tensor(node.inputs[0])]), scalar=False))


@register("aten::size.int", constant_args=(1,))
def _size_of_dim(emission: Emission, node: Node) -> None:
    rank = emission.rank(node.inputs[0])
    dim = emission.known(node.inputs[1]) % rank
    size = _shape(node.inputs[0])[dim]
    if isinstance(size, int):
        emission.bind(node.output, size)
    else:
        name = emission.op("Shape", [emission.tensor(node.inputs[0])], start=dim, end=dim + 1)
        emission.bind(node.output, ShapeTensor(name, scalar=True))


@register("aten::__getitem__.t", constant_args=(1,))
def _getitem(emission: Emission, node: Node) -> None:
    items = emission.lookup(node.inputs[0])
    index = emission.known(node.inputs[1])
    if isinstance(items, ShapeTensor):
        emission.bind(node.output, ShapeTensor(emission.op("Gather", [items.name, emission.ints([index])], axis=0), True))
    else:
        emission.bind(node.output, items[index])


_INT_ARITHMETIC = {
    "aten::add.int": ("Add", lambda a, b: a + b),
    "aten::sub.int": ("Sub", lambda a, b: a - b),
    "aten::mul.int": ("Mul", lambda a, b: a * b),
    "aten::floordiv.int": ("Div", lambda a, b: a // b),
}


def _int_arithmetic(op_type: str, fold: Callable[[int, int], int]) -> EmitFunction:
    def emit(emission: Emission, node: Node) -> None:
        left, right = (emission.lookup(value) for value in node.inputs)
        if not isinstance(left, ShapeTensor) and not isinstance(right, ShapeTensor):
            emission.bind(node.output, fold(left, right))
        else:
            name = emission.op(op_type, [emission.int_tensor(left), emission.int_tensor(right)])
            emission.bind(node.output, ShapeTensor(name, scalar=True))

    return emit


for _key, (_op_type, _fold) in _INT_ARITHMETIC.items():
    register(_key)(_int_arithmetic(_op_type, _fold))


# ---------------------------------------------------------------- elementwise ops
_UNARY = {
    "aten::relu": "Relu",
    "aten::sigmoid": "Sigmoid",
    "aten::tanh": "Tanh",
    "aten::exp": "Exp",
    "aten::erf": "Erf",
    "aten::neg": "Neg",
    "aten::sqrt": "Sqrt",
}


def _unary(op_type: str) -> EmitFunction:
    def emit(emission: Emission, node: Node) -> None:
        emission.bind(node.output, emission.op(op_type, [emission.tensor(node.inputs[0])]))

    return emit


for _key, _op_type in _UNARY.items():
    register(_key)(_unary(_op_type))


@register("aten::rsqrt")
def _rsqrt(emission: Emission, node: Node) -> None:
    emission.bind(node.output, emission.op("Reciprocal", [emission.op("Sqrt", [emission.tensor(node.inputs[0])])]))


@register("aten::silu")
def _silu(emission: Emission, node: Node) -> None:
    x = emission.tensor(node.inputs[0])
    emission.bind(node.output, emission.op("Mul", [x, emission.op("Sigmoid", [x])]))


def _gelu_check(node: Node) -> str | None:
    known, approximate = _constant_of(node.inputs[1]) if len(node.inputs) > 1 else (True, "none")
    if not known or approximate not in ("none", "tanh"):
        return "aten::gelu needs a constant approximate='none' or 'tanh'"
    return None


@register("aten::gelu", constant_args=(1,), check=_gelu_check)
def _gelu(emission: Emission, node: Node) -> None:
    """none: ``x/2 * (1 + erf(x/sqrt(2)))``; tanh: ``x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))``."""
    x = emission.tensor(node.inputs[0])
    dtype = emission.dtype(node.inputs[0])
    if len(node.inputs) < 2 or emission.known(node.inputs[1]) == "none":
        inner = emission.op("Erf", [emission.op("Mul", [x, emission.scalar(1 / math.sqrt(2), dtype)])])
    else:
        cube = emission.op("Mul", [emission.op("Mul", [x, x]), x])
        polynomial = emission.op("Add", [x, emission.op("Mul", [cube, emission.scalar(0.044715, dtype)])])
        inner = emission.op("Tanh", [emission.op("Mul", [polynomial, emission.scalar(math.sqrt(2 / math.pi), dtype)])])
    half_x = emission.op("Mul", [x, emission.scalar(0.5, dtype)])
    emission.bind(node.output, emission.op("Mul", [half_x, emission.op("Add", [inner, emission.scalar(1.0, dtype)])]))


@register("aten::hardtanh", constant_args=(1, 2))
def _hardtanh(emission: Emission, node: Node) -> None:
    dtype = emission.dtype(node.inputs[0])
    low, high = (emission.scalar(emission.known(value), dtype) for value in node.inputs[1:3])
    emission.bind(node.output, emission.op("Clip", [emission.tensor(node.inputs[0]), low, high]))


@register("aten::clamp", constant_args=(1, 2), check=_scalar_bounds)
def _clamp(emission: Emission, node: Node) -> None:
    dtype = emission.dtype(node.inputs[0])
    bounds = [emission.known(value) for value in node.inputs[1:3]]
    names = ["" if bound is None else emission.scalar(bound, dtype) for bound in bounds]
    emission.bind(node.output, emission.op("Clip", [emission.tensor(node.inputs[0]), *names]))


_BINARY = {
    "aten::add.Tensor": "Add", "aten::add.Scalar": "Add",
    "aten::sub.Tensor": "Sub", "aten::sub.Scalar": "Sub",
    "aten::mul.Tensor": "Mul", "aten::mul.Scalar": "Mul",
    "aten::div.Tensor": "Div", "aten::div.Scalar": "Div",
    "aten::pow.Tensor_Tensor": "Pow", "aten::pow.Tensor_Scalar": "Pow",
}


def _binary(op_type: str) -> EmitFunction:
    """Operands are cast to the output's dtype first: that is torch's type promotion, already
    computed by shape inference (e.g. int / int -> float for ``aten::div``)."""

    def emit(emission: Emission, node: Node) -> None:
        dtype = emission.dtype(node.output)
        left = emission.operand(node.inputs[0], dtype)
        right_value = node.inputs[1]
        has_alpha = node.op in ("aten::add", "aten::sub") and len(node.inputs) > 2
        alpha = emission.known(node.inputs[2]) if has_alpha else 1
        if not right_value.is_tensor and emission.is_known(right_value):
            right = emission.scalar(emission.known(right_value) * alpha, dtype)
        else:
            right = emission.operand(right_value, dtype)
            if alpha != 1:
                right = emission.op("Mul", [right, emission.scalar(alpha, dtype)])
        emission.bind(node.output, emission.op(op_type, [left, right]))

    return emit


for _key, _op_type in _BINARY.items():
    _alpha = (2,) if _key.startswith(("aten::add", "aten::sub")) else ()
    register(_key, constant_args=_alpha)(_binary(_op_type))


# ------------------------------------------------------------------- no-op and casts
@register("aten::contiguous")
@register("aten::clone")
@register("aten::detach")
@register("aten::dropout", check=_argument_is(2, False, "train=False (dropout is then the identity)"))
def _identity(emission: Emission, node: Node) -> None:
    emission.bind(node.output, emission.op("Identity", [emission.tensor(node.inputs[0])]))


@register("aten::to.dtype", "aten::to.device", "aten::to.other", "aten::to.dtype_layout", "aten::to.prim_dtype",
          "aten::type_as")
def _cast(emission: Emission, node: Node) -> None:
    """Every ``to`` form converts to the dtype shape inference recorded on the output (device and
    memory-format arguments mean nothing inside an engine)."""
    source = node.inputs[0]
    emission.bind(node.output, emission.cast(emission.tensor(source), emission.dtype(source), emission.dtype(node.output)))


# --------------------------------------------------------------------- linear algebra
@register("aten::matmul")
@register("aten::bmm")
def _matmul(emission: Emission, node: Node) -> None:
    emission.bind(node.output, emission.op("MatMul", [emission.tensor(v) for v in node.inputs[:2]]))


@register("aten::linear")
def _linear(emission: Emission, node: Node) -> None:
    """``x @ W^T + b``, with MatMul (Gemm would need a 2-D ``x``)."""
    weight_t = emission.op("Transpose", [emission.tensor(node.inputs[1])], perm=[1, 0])
    product = emission.op("MatMul", [emission.tensor(node.inputs[0]), weight_t])
    if len(node.inputs) > 2 and node.inputs[2].is_tensor:
        product = emission.op("Add", [product, emission.tensor(node.inputs[2])])
    emission.bind(node.output, product)


@register("aten::addmm", constant_args=(3, 4))
def _addmm(emission: Emission, node: Node) -> None:
    """``beta * self + alpha * (mat1 @ mat2)`` is ONNX Gemm (C broadcasts unidirectionally)."""
    bias, mat1, mat2 = (emission.tensor(v) for v in node.inputs[:3])
    beta, alpha = (float(emission.known(v)) for v in node.inputs[3:5])
    emission.bind(node.output, emission.op("Gemm", [mat1, mat2, bias], alpha=alpha, beta=beta))


# ----------------------------------------------------------------------- convolution
def _spatial(values: list[int], count: int) -> list[int]:
    return list(values) * count if len(values) == 1 else list(values)


def _conv(stride: int, padding: int, dilation: int, groups: int) -> EmitFunction:
    def emit(emission: Emission, node: Node) -> None:
        spatial = emission.rank(node.inputs[1]) - 2
        pads = _spatial(emission.known(node.inputs[padding]), spatial)
        inputs = [emission.tensor(node.inputs[0]), emission.tensor(node.inputs[1])]
        if node.inputs[2].is_tensor:
            inputs.append(emission.tensor(node.inputs[2]))
        emission.bind(node.output, emission.op(
            "Conv", inputs,
            strides=_spatial(emission.known(node.inputs[stride]), spatial),
            pads=pads + pads,
            dilations=_spatial(emission.known(node.inputs[dilation]), spatial),
            group=int(emission.known(node.inputs[groups])),
        ))

    return emit


register("aten::conv1d", "aten::conv2d", "aten::conv3d", constant_args=(3, 4, 5, 6), check=_not_a_string(4))(
    _conv(3, 4, 5, 6))
_NOT_TRANSPOSED = _argument_is(6, False, "transposed=False (transposed convolution is not emitted yet)")
register("aten::convolution", "aten::_convolution", constant_args=(3, 4, 5, 6, 8), check=_NOT_TRANSPOSED)(
    _conv(3, 4, 5, 8))


# ---------------------------------------------------------------------- normalization
def _batch_norm_check(node: Node) -> str | None:
    if any(not node.inputs[i].is_tensor for i in (3, 4)):
        return "aten::batch_norm is emitted only with running statistics (eval mode)"
    return _argument_is(5, False, "training=False (inference batch norm)")(node)


@register("aten::batch_norm", constant_args=(5, 7), check=_batch_norm_check)
def _batch_norm(emission: Emission, node: Node) -> None:
    dtype = emission.dtype(node.inputs[0])
    channels = _shape(node.inputs[3])
    scale, bias = (emission.tensor(v) if v.is_tensor else emission.filled(channels, fill, dtype)
                   for v, fill in ((node.inputs[1], 1.0), (node.inputs[2], 0.0)))
    emission.bind(node.output, emission.op(
        "BatchNormalization",
        [emission.tensor(node.inputs[0]), scale, bias, emission.tensor(node.inputs[3]), emission.tensor(node.inputs[4])],
        epsilon=float(emission.known(node.inputs[7])),
    ))


@register("aten::layer_norm", constant_args=(1, 4))
def _layer_norm(emission: Emission, node: Node) -> None:
    dtype = emission.dtype(node.inputs[0])
    normalized = list(emission.known(node.inputs[1]))
    scale, bias = (emission.tensor(v) if v.is_tensor else emission.filled(normalized, fill, dtype)
                   for v, fill in ((node.inputs[2], 1.0), (node.inputs[3], 0.0)))
    emission.bind(node.output, emission.op(
        "LayerNormalization", [emission.tensor(node.inputs[0]), scale, bias],
        axis=-len(normalized), epsilon=float(emission.known(node.inputs[4])),
    ))


def _softmax(op_type: str) -> EmitFunction:
    def emit(emission: Emission, node: Node) -> None:
        source = node.inputs[0]
        x = emission.cast(emission.tensor(source), emission.dtype(source), emission.dtype(node.output))
        emission.bind(node.output, emission.op(op_type, [x], axis=int(emission.known(node.inputs[1]))))

    return emit


register("aten::softmax.int", constant_args=(1, 2))(_softmax("Softmax"))
register("aten::log_softmax.int", constant_args=(1, 2))(_softmax("LogSoftmax"))


# --------------------------------------------------------------------------- pooling
_NO_CEIL_MODE = _argument_is(4, False, "ceil_mode=False")


@register("aten::max_pool2d", constant_args=(1, 2, 3, 4, 5), check=_argument_is(5, False, "ceil_mode=False"))
def _max_pool(emission: Emission, node: Node) -> None:
    kernel = _spatial(emission.known(node.inputs[1]), 2)
    stride = _spatial(emission.known(node.inputs[2]) or kernel, 2)
    pads = _spatial(emission.known(node.inputs[3]), 2)
    emission.bind(node.output, emission.op(
        "MaxPool", [emission.tensor(node.inputs[0])], kernel_shape=kernel, strides=stride, pads=pads + pads,
        dilations=_spatial(emission.known(node.inputs[4]), 2),
    ))


def _avg_pool_check(node: Node) -> str | None:
    return _all_of(_NO_CEIL_MODE, _argument_is(6, None, "divisor_override=None"))(node)


@register("aten::avg_pool2d", constant_args=(1, 2, 3, 4, 5, 6), check=_avg_pool_check)
def _avg_pool(emission: Emission, node: Node) -> None:
    kernel = _spatial(emission.known(node.inputs[1]), 2)
    stride = _spatial(emission.known(node.inputs[2]) or kernel, 2)
    pads = _spatial(emission.known(node.inputs[3]), 2)
    emission.bind(node.output, emission.op(
        "AveragePool", [emission.tensor(node.inputs[0])], kernel_shape=kernel, strides=stride, pads=pads + pads,
        count_include_pad=int(bool(emission.known(node.inputs[5]))),
    ))


def _global_output(node: Node) -> str | None:
    known, size = _constant_of(node.inputs[1])
    if node.inputs[1].producer is not None and node.inputs[1].producer.op == "prim::ListConstruct":
        items = [_constant_of(v) for v in node.inputs[1].producer.inputs]
        known, size = all(k for k, _ in items), [v for _, v in items]
    if not known or _spatial(size if isinstance(size, list) else [size], 2) != [1, 1]:
        return "aten::adaptive_avg_pool2d is emitted only for output size 1 (global average pooling)"
    return None


@register("aten::adaptive_avg_pool2d", constant_args=(1,), check=_global_output)
def _adaptive_avg_pool(emission: Emission, node: Node) -> None:
    emission.bind(node.output, emission.op("GlobalAveragePool", [emission.tensor(node.inputs[0])]))


# ----------------------------------------------------------------------- shape ops
@register("aten::view", "aten::reshape", check=_shape_list_argument(1))
def _reshape(emission: Emission, node: Node) -> None:
    emission.bind(node.output, emission.op("Reshape", [emission.tensor(node.inputs[0]),
                                                       emission.int_tensor(emission.lookup(node.inputs[1]))]))


@register("aten::flatten.using_ints", constant_args=(1, 2))
def _flatten(emission: Emission, node: Node) -> None:
    """Reshape to ``shape[:start] + [-1] + shape[end + 1:]`` (ONNX Flatten always gives 2-D)."""
    source = node.inputs[0]
    rank = emission.rank(source)
    if rank == 0:
        emission.bind(node.output, emission.op("Reshape", [emission.tensor(source), emission.ints([1])]))
        return
    start, end = (emission.known(v) % rank for v in node.inputs[1:3])
    pieces = [emission.dims(source, 0, start), emission.ints([-1]), emission.dims(source, end + 1, rank)]
    target = emission.op("Concat", [piece for piece in pieces if piece is not None], axis=0)
    emission.bind(node.output, emission.op("Reshape", [emission.tensor(source), target]))


@register("aten::permute", constant_args=(1,))
def _permute(emission: Emission, node: Node) -> None:
    rank = emission.rank(node.inputs[0])
    perm = [dim % rank for dim in emission.known(node.inputs[1])]
    emission.bind(node.output, emission.op("Transpose", [emission.tensor(node.inputs[0])], perm=perm))


@register("aten::transpose.int", constant_args=(1, 2))
def _transpose(emission: Emission, node: Node) -> None:
    rank = emission.rank(node.inputs[0])
    first, second = (emission.known(v) % rank for v in node.inputs[1:3])
    perm = list(range(rank))
    perm[first], perm[second] = perm[second], perm[first]
    emission.bind(node.output, emission.op("Transpose", [emission.tensor(node.inputs[0])], perm=perm))


@register("aten::unsqueeze", constant_args=(1,))
def _unsqueeze(emission: Emission, node: Node) -> None:
    axis = emission.known(node.inputs[1]) % (emission.rank(node.inputs[0]) + 1)
    emission.bind(node.output, emission.op("Unsqueeze", [emission.tensor(node.inputs[0]), emission.ints([axis])]))


def _squeeze_dims(node: Node) -> list[int] | None:
    """The dims torch squeezes, from the IR shape: a size-1 dim is squeezed, another is kept;
    None when a named dim is symbolic (then whether it is squeezed depends on the input)."""
    shape = _shape(node.inputs[0])
    if node.kind == "aten::squeeze":
        if any(not isinstance(size, int) for size in shape):
            return None
        return [dim for dim, size in enumerate(shape) if size == 1]
    _, dims = _constant_of(node.inputs[1])
    dims = [dims] if isinstance(dims, int) else list(dims)
    if not shape:
        return []
    dims = [dim % len(shape) for dim in dims]
    if any(not isinstance(shape[dim], int) for dim in dims):
        return None
    return [dim for dim in dims if shape[dim] == 1]


def _squeeze_check(node: Node) -> str | None:
    if _shape(node.inputs[0]) is None or _squeeze_dims(node) is None:
        return f"{node.kind} of a symbolic dimension squeezes or not depending on the input size; it needs static sizes"
    return None


@register("aten::squeeze", check=_squeeze_check)
@register("aten::squeeze.dim", "aten::squeeze.dims", constant_args=(1,), check=_squeeze_check)
def _squeeze(emission: Emission, node: Node) -> None:
    dims = _squeeze_dims(node)
    x = emission.tensor(node.inputs[0])
    emission.bind(node.output, emission.op("Squeeze", [x, emission.ints(dims)]) if dims else emission.op("Identity", [x]))


@register("aten::cat", constant_args=(1,))
def _cat(emission: Emission, node: Node) -> None:
    rank = emission.rank(node.output)
    emission.bind(node.output, emission.op("Concat", list(emission.lookup(node.inputs[0])),
                                           axis=emission.known(node.inputs[1]) % rank))


@register("aten::slice.Tensor", constant_args=(1, 4))
def _slice(emission: Emission, node: Node) -> None:
    start, end = (emission.lookup(v) for v in node.inputs[2:4])
    start = 0 if start is None else start
    end = 2**63 - 1 if end is None else end
    dim = emission.known(node.inputs[1]) % emission.rank(node.inputs[0])
    emission.bind(node.output, emission.op("Slice", [
        emission.tensor(node.inputs[0]), emission.int_tensor(start), emission.int_tensor(end),
        emission.ints([dim]), emission.ints([emission.known(node.inputs[4])]),
    ]))


@register("aten::select.int", constant_args=(1,))
def _select(emission: Emission, node: Node) -> None:
    index = emission.lookup(node.inputs[2])
    index = emission.op("Reshape", [index.name, emission.ints([])]) if isinstance(index, ShapeTensor) else emission.scalar(index, "int64")
    emission.bind(node.output, emission.op("Gather", [emission.tensor(node.inputs[0]), index],
                                           axis=emission.known(node.inputs[1]) % emission.rank(node.inputs[0])))


def _split_sizes(node: Node, emission: Emission) -> tuple[list[int], int]:
    source = node.inputs[0]
    dim = emission.known(node.inputs[2]) % emission.rank(source)
    length = _shape(source)[dim]
    argument = emission.known(node.inputs[1])
    if node.kind == "aten::chunk":
        step = -(-length // argument)
        argument = step
    if isinstance(argument, int):
        return [min(argument, length - start) for start in range(0, length, argument)], dim
    return list(argument), dim


@register("aten::chunk", "aten::split.Tensor", "aten::split.sizes", "aten::split_with_sizes",
          constant_args=(1, 2), check=_static_dim(0, 2))
def _split(emission: Emission, node: Node) -> None:
    sizes, dim = _split_sizes(node, emission)
    outputs = emission.add_node("Split", [emission.tensor(node.inputs[0]), emission.ints(sizes)], len(sizes), axis=dim)
    emission.bind(node.output, outputs)


@register("aten::embedding")
def _embedding(emission: Emission, node: Node) -> None:
    emission.bind(node.output, emission.op("Gather", [emission.tensor(node.inputs[0]), emission.tensor(node.inputs[1])], axis=0))


# ------------------------------------------------------------------------ reductions
def _reduce(op_type: str) -> EmitFunction:
    def emit(emission: Emission, node: Node) -> None:
        source = node.inputs[0]
        rank = emission.rank(source)
        dims = emission.known(node.inputs[1])
        dims = list(range(rank)) if dims is None else [dims] if isinstance(dims, int) else list(dims)
        x = emission.cast(emission.tensor(source), emission.dtype(source), emission.dtype(node.output))
        keepdims = int(bool(emission.known(node.inputs[2])))
        axes = [dim % rank for dim in dims] if rank else []
        emission.bind(node.output, emission.reduce(op_type, x, axes, keepdims))

    return emit


register("aten::mean.dim", constant_args=(1, 2, 3))(_reduce("ReduceMean"))
register("aten::sum.dim_IntList", constant_args=(1, 2, 3))(_reduce("ReduceSum"))


# ------------------------------------------------------------------------- attention
def _attention_check(node: Node) -> str | None:
    query, key = _shape(node.inputs[0]), _shape(node.inputs[1])
    known_scale, scale = _constant_of(node.inputs[6]) if len(node.inputs) > 6 else (True, None)
    if scale is None and (query is None or not isinstance(query[-1], int)):
        return "aten::scaled_dot_product_attention needs a static head size (or an explicit scale)"
    if query is None or key is None or query[-1] != key[-1] or len(query) != len(key):
        return "aten::scaled_dot_product_attention is emitted only with matching query/key ranks and head sizes (no GQA)"
    if len(node.inputs) > 7 and _constant_of(node.inputs[7]) != (True, False):
        return "aten::scaled_dot_product_attention is emitted only with enable_gqa=False"
    return _argument_is(4, 0.0, "dropout_p=0.0")(node)


@register("aten::scaled_dot_product_attention", constant_args=(4, 5, 6, 7), check=_attention_check)
def _attention(emission: Emission, node: Node) -> None:
    """``softmax(q @ k^T * scale + mask) @ v``; ``is_causal`` masks with ``tril(ones(L, S))``
    (the top-left-aligned mask torch uses)."""
    query, key, value = (emission.tensor(v) for v in node.inputs[:3])
    dtype = emission.dtype(node.inputs[0])
    rank = emission.rank(node.inputs[0])
    scale = emission.known(node.inputs[6]) if len(node.inputs) > 6 else None
    if scale is None:
        scale = 1 / math.sqrt(_shape(node.inputs[0])[-1])
    perm = list(range(rank))
    perm[-1], perm[-2] = perm[-2], perm[-1]
    key_t = emission.op("Transpose", [key], perm=perm)
    scores = emission.op("Mul", [emission.op("MatMul", [query, key_t]), emission.scalar(scale, dtype)])
    mask = node.inputs[3]
    if mask.is_tensor:
        mask_name = emission.tensor(mask)
        if emission.dtype(mask) == "bool":
            scores = emission.op("Where", [mask_name, scores, emission.scalar(-math.inf, dtype)])
        else:
            scores = emission.op("Add", [scores, mask_name])
    if emission.known(node.inputs[5]):
        square = emission.op("Slice", [emission.op("Shape", [scores]), emission.ints([-2]), emission.ints([2**63 - 1])])
        ones = emission.op("ConstantOfShape", [square], value=emission.tensor_attribute(1, "int64"))
        keep = emission.op("Cast", [emission.op("Trilu", [ones], upper=0)], to=emission.onnx_dtype("bool"))
        scores = emission.op("Where", [keep, scores, emission.scalar(-math.inf, dtype)])
    weights = emission.op("Softmax", [scores], axis=-1)
    emission.bind(node.output, emission.op("MatMul", [weights, value]))
