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

An entry never emits something that computes otherwise than eager torch; where ONNX's operator
differs, the entry writes torch's formula out (``sign`` of NaN, ``div`` with
``rounding_mode='floor'``, ``ceil_mode`` pooling as floor-mode pooling with extra end padding).
Known gaps, each a ``check`` reason the partitioner records (the node stays in the TorchScript
glue): kinds with no entry; pooling other than 2-D on a batched input; ``ceil_mode`` pooling over
symbolic spatial sizes; dilated max pooling (TensorRT's ONNX parser refuses it); a transposed
convolution both strided and dilated (the TensorRT-RTX builder refuses it); ``avg_pool2d`` with
``divisor_override``; ``adaptive_avg_pool2d`` to sizes other than 1 or divisors of static input
sizes; unsorted ``topk``; ``gelu`` other than 'none' / 'tanh'; training-mode batch norm and
dropout; attention with GQA or dropout; squeezing or splitting along symbolic dims; reading a
computed tensor into a number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

import torch

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


def _constant_list(value: Value) -> list | None:
    """A constant list (a ``prim::Constant`` or a ``prim::ListConstruct`` of constants), else None."""
    known, items = _constant_of(value)
    if known:
        return [items] if isinstance(items, int) else items if isinstance(items, list) else None
    producer = value.producer
    if producer is None or producer.op != "prim::ListConstruct":
        return None
    pairs = [_constant_of(item) for item in producer.inputs]
    return [item for _, item in pairs] if all(known for known, _ in pairs) else None


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
_FLOATING = ("float32", "float16", "bfloat16", "float64")


def _input_as_output(emission: Emission, node: Node, position: int = 0) -> str:
    """Input ``position`` cast to the output's dtype (torch's type promotion, already computed by
    shape inference: ``exp`` of an int tensor is float, ``cumsum`` of int32 is int64, ...)."""
    source = node.inputs[position]
    return emission.cast(emission.tensor(source), emission.dtype(source), emission.dtype(node.output))


def _floating_input(node: Node) -> str | None:
    dtype = node.inputs[0].type.dtype if isinstance(node.inputs[0].type, TensorType) else None
    if dtype not in _FLOATING:
        return f"{node.kind} is emitted only for floating-point tensors"
    return None


def _not_bool(node: Node) -> str | None:
    if isinstance(node.inputs[0].type, TensorType) and node.inputs[0].type.dtype == "bool":
        return f"{node.kind} of a bool tensor has no ONNX emitter"
    return None


def _nonzero_rank(node: Node) -> str | None:
    shape = _shape(node.inputs[0])
    if not shape:
        return f"{node.kind} of a 0-d tensor has no ONNX emitter"
    return None


_UNARY = {
    "aten::relu": "Relu",
    "aten::sigmoid": "Sigmoid",
    "aten::tanh": "Tanh",
    "aten::exp": "Exp",
    "aten::erf": "Erf",
    "aten::neg": "Neg",
    "aten::sqrt": "Sqrt",
    "aten::abs": "Abs",
    "aten::log": "Log",
    "aten::sin": "Sin",
    "aten::cos": "Cos",
    "aten::reciprocal": "Reciprocal",
}


def _unary(op_type: str) -> EmitFunction:
    def emit(emission: Emission, node: Node) -> None:
        emission.bind(node.output, emission.op(op_type, [_input_as_output(emission, node)]))

    return emit


for _key, _op_type in _UNARY.items():
    register(_key)(_unary(_op_type))


def _rounding(op_type: str) -> EmitFunction:
    """ONNX Floor / Ceil / Round take floats only; torch returns integer tensors unchanged.
    ONNX Round rounds halves to even, as ``torch.round`` does."""

    def emit(emission: Emission, node: Node) -> None:
        x = emission.tensor(node.inputs[0])
        floating = emission.dtype(node.inputs[0]) in _FLOATING
        emission.bind(node.output, emission.op(op_type if floating else "Identity", [x]))

    return emit


for _key, _op_type in {"aten::floor": "Floor", "aten::ceil": "Ceil", "aten::round": "Round"}.items():
    register(_key, check=_not_bool)(_rounding(_op_type))


@register("aten::round.decimals", constant_args=(1,), check=_floating_input)
def _round_decimals(emission: Emission, node: Node) -> None:
    """torch: ``round(x * 10^d) / 10^d``, or ``round(x / 10^-d) * 10^-d`` when ``d < 0``, computed
    in float32 for float16 / bfloat16 inputs (torch's opmath type)."""
    dtype = emission.dtype(node.inputs[0])
    compute = "float32" if dtype in ("float16", "bfloat16") else dtype
    x = emission.cast(emission.tensor(node.inputs[0]), dtype, compute)
    decimals = int(emission.known(node.inputs[1]))
    if decimals == 0:
        emission.bind(node.output, emission.cast(emission.op("Round", [x]), compute, dtype))
        return
    scale = emission.scalar(10.0 ** abs(decimals), compute)
    inward, outward = ("Mul", "Div") if decimals > 0 else ("Div", "Mul")
    rounded = emission.op(outward, [emission.op("Round", [emission.op(inward, [x, scale])]), scale])
    emission.bind(node.output, emission.cast(rounded, compute, dtype))


@register("aten::sign", check=_not_bool)
def _sign(emission: Emission, node: Node) -> None:
    """``(x > 0) - (x < 0)``: 0 for NaN as in torch (ONNX Sign gives NaN there)."""
    x = emission.tensor(node.inputs[0])
    zero = emission.scalar(0, emission.dtype(node.inputs[0]))
    dtype = emission.dtype(node.output)
    positive, negative = (emission.cast(emission.op(op_type, [x, zero]), "bool", dtype)
                          for op_type in ("Greater", "Less"))
    emission.bind(node.output, emission.op("Sub", [positive, negative]))


@register("aten::rsqrt")
def _rsqrt(emission: Emission, node: Node) -> None:
    x = _input_as_output(emission, node)
    emission.bind(node.output, emission.op("Reciprocal", [emission.op("Sqrt", [x])]))


@register("aten::silu")
def _silu(emission: Emission, node: Node) -> None:
    x = emission.tensor(node.inputs[0])
    emission.bind(node.output, emission.op("Mul", [x, emission.op("Sigmoid", [x])]))


@register("aten::hardsigmoid", check=_floating_input)
def _hardsigmoid(emission: Emission, node: Node) -> None:
    """torch: ``clamp(x + 3, 0, 6) / 6``, which is ONNX ``HardSigmoid(alpha=1/6, beta=1/2)``."""
    emission.bind(node.output, emission.op("HardSigmoid", [emission.tensor(node.inputs[0])], alpha=1 / 6, beta=0.5))


@register("aten::hardswish", check=_floating_input)
def _hardswish(emission: Emission, node: Node) -> None:
    """torch: ``x * clamp(x + 3, 0, 6) / 6``, which is ONNX HardSwish."""
    emission.bind(node.output, emission.op("HardSwish", [emission.tensor(node.inputs[0])]))


@register("aten::elu", constant_args=(1, 2, 3), check=_floating_input)
def _elu(emission: Emission, node: Node) -> None:
    """torch: ``scale * x`` for ``x > 0``, else ``scale * alpha * (exp(input_scale * x) - 1)``:
    ONNX Elu when both scales are 1, else written out."""
    alpha, scale, input_scale = (float(emission.known(node.inputs[position])) if position < len(node.inputs) else 1.0
                                 for position in (1, 2, 3))
    x = emission.tensor(node.inputs[0])
    if scale == 1.0 and input_scale == 1.0:
        emission.bind(node.output, emission.op("Elu", [x], alpha=alpha))
        return
    dtype = emission.dtype(node.inputs[0])
    exponential = emission.op("Exp", [emission.op("Mul", [x, emission.scalar(input_scale, dtype)])])
    negative = emission.op("Mul", [emission.op("Sub", [exponential, emission.scalar(1.0, dtype)]),
                                   emission.scalar(alpha * scale, dtype)])
    positive = emission.op("Mul", [x, emission.scalar(scale, dtype)])
    emission.bind(node.output, emission.op("Where", [emission.op("Greater", [x, emission.scalar(0.0, dtype)]),
                                                      positive, negative]))


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


# Positions of (min, max) per clamp kind; None: that bound does not exist for the kind.
_CLAMP_BOUNDS = {
    "aten::clamp": (1, 2), "aten::clamp.Tensor": (1, 2),
    "aten::clamp_min": (1, None), "aten::clamp_min.Tensor": (1, None),
    "aten::clamp_max": (None, 1), "aten::clamp_max.Tensor": (None, 1),
}


def _clamp_check(node: Node) -> str | None:
    if node.kind.endswith(".Tensor"):
        return None
    if not any(position is not None and _constant_of(node.inputs[position]) != (True, None)
               for position in _CLAMP_BOUNDS[node.kind]):
        return f"{node.kind} needs at least one bound"
    return None


def _clamp(emission: Emission, node: Node) -> None:
    """``min(max(x, low), high)`` in the output's dtype (torch promotes: an int tensor clamped by a
    float is float; ``high`` wins where ``low > high``, in torch and in ONNX Clip alike). Constant
    bounds of a float tensor become ONNX Clip, anything else Max / Min."""
    dtype = emission.dtype(node.output)
    x = _input_as_output(emission, node)
    bounds = []
    for position in _CLAMP_BOUNDS[node.kind]:
        value = None if position is None else node.inputs[position]
        if value is not None and not value.is_tensor and emission.lookup(value) is None:
            value = None
        bounds.append(value)
    constant = all(value is None or (not value.is_tensor and emission.is_known(value)) for value in bounds)
    if constant and dtype in _FLOATING:
        names = ["" if value is None else emission.scalar(emission.known(value), dtype) for value in bounds]
        emission.bind(node.output, emission.op("Clip", [x, *names]))
        return
    for op_type, value in zip(("Max", "Min"), bounds):
        if value is not None:
            x = emission.op(op_type, [x, emission.operand(value, dtype)])
    emission.bind(node.output, x)


register("aten::clamp", constant_args=(1, 2), check=_clamp_check)(_clamp)
register("aten::clamp_min", "aten::clamp_max", constant_args=(1,), check=_clamp_check)(_clamp)
register("aten::clamp.Tensor", "aten::clamp_min.Tensor", "aten::clamp_max.Tensor")(_clamp)


_BINARY = {
    "aten::add.Tensor": "Add", "aten::add.Scalar": "Add",
    "aten::sub.Tensor": "Sub", "aten::sub.Scalar": "Sub",
    "aten::mul.Tensor": "Mul", "aten::mul.Scalar": "Mul",
    "aten::div.Tensor": "Div", "aten::div.Scalar": "Div",
    "aten::pow.Tensor_Tensor": "Pow", "aten::pow.Tensor_Scalar": "Pow", "aten::pow.Scalar": "Pow",
    "aten::minimum": "Min", "aten::min.other": "Min",
    "aten::maximum": "Max", "aten::max.other": "Max",
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


def _rounding_mode(node: Node) -> str | None:
    known, mode = _constant_of(node.inputs[2])
    if not known or mode not in (None, "trunc", "floor"):
        return f"{node.kind} needs a constant rounding_mode None, 'trunc' or 'floor'"
    if isinstance(node.output.type, TensorType) and node.output.type.dtype == "bool":
        return f"{node.kind} of bool tensors has no ONNX emitter"
    return None


def _divide(emission: Emission, node: Node, mode: str | None) -> str:
    """``a / b`` rounded like torch, in the output's dtype.

    * integers: ``(a - mod(a, b)) / b``, an exact division whatever way the runtime rounds integer
      Div (the ONNX spec leaves it open, onnx/onnx#4016), with ONNX Mod taking the dividend's sign
      (fmod=1) for ``trunc``, the divisor's (fmod=0) for ``floor``;
    * floats: ``trunc`` rounds the quotient toward zero; ``floor`` is torch's formula (not
      ``floor(a / b)``, which differs when the quotient rounds up to a whole number: torch gives
      ``1 // 0.1 == 9``): ``mod = fmod(a, b)``, ``div = (a - mod) / b``, minus 1 when ``mod`` is
      non-zero with a sign other than ``b``'s, floored and rounded to the nearest whole number;
      a zero result takes the sign of ``a / b``; ``b == 0`` gives ``a / b``.
    """
    dtype = emission.dtype(node.output)
    a, b = (emission.operand(value, dtype) for value in node.inputs[:2])
    if dtype not in _FLOATING:
        remainder = emission.op("Mod", [a, b], fmod=int(mode == "trunc"))
        return emission.op("Div", [emission.op("Sub", [a, remainder]), b])
    quotient = emission.op("Div", [a, b])
    if mode is None:
        return quotient
    zero = emission.scalar(0.0, dtype)
    if mode == "trunc":
        negative = emission.op("Less", [quotient, zero])
        return emission.op("Where", [negative, emission.op("Ceil", [quotient]), emission.op("Floor", [quotient])])
    one = emission.scalar(1.0, dtype)
    mod = emission.op("Mod", [a, b], fmod=1)
    div = emission.op("Div", [emission.op("Sub", [a, mod]), b])
    signs_differ = emission.op("Xor", [emission.op("Less", [b, zero]), emission.op("Less", [mod, zero])])
    adjust = emission.op("And", [emission.op("Not", [emission.op("Equal", [mod, zero])]), signs_differ])
    div = emission.op("Where", [adjust, emission.op("Sub", [div, one]), div])
    floored = emission.op("Floor", [div])
    round_up = emission.op("Greater", [emission.op("Sub", [div, floored]), emission.scalar(0.5, dtype)])
    floored = emission.op("Where", [round_up, emission.op("Add", [floored, one]), floored])
    signed_zero = emission.op("Mul", [quotient, zero])
    result = emission.op("Where", [emission.op("Equal", [div, zero]), signed_zero, floored])
    return emission.op("Where", [emission.op("Equal", [b, zero]), quotient, result])


@register("aten::div.Tensor_mode", "aten::div.Scalar_mode", constant_args=(2,), check=_rounding_mode)
def _div_mode(emission: Emission, node: Node) -> None:
    emission.bind(node.output, _divide(emission, node, emission.known(node.inputs[2])))


@register("aten::floor_divide", "aten::floor_divide.Scalar", check=_not_bool)
def _floor_divide(emission: Emission, node: Node) -> None:
    emission.bind(node.output, _divide(emission, node, "floor"))


# ----------------------------------------------------------------- comparisons, logic
def _common_dtype(emission: Emission, values: list[Value]) -> str:
    """The dtype torch compares two operands in (``torch.result_type``: a 0-d tensor or a number
    does not promote a tensor of the same category)."""
    operands: list[Any] = []
    for value in values:
        if value.is_tensor:
            shape = (1,) if emission.rank(value) else ()
            operands.append(torch.empty(shape, dtype=getattr(torch, emission.dtype(value))))
        else:
            item = emission.lookup(value)
            operands.append(0 if isinstance(item, ShapeTensor) else item)
    return str(torch.result_type(*operands)).removeprefix("torch.")


_COMPARISONS = {
    "eq": "Equal", "ne": "Equal", "lt": "Less", "le": "LessOrEqual", "gt": "Greater", "ge": "GreaterOrEqual",
}


def _comparison(op_type: str, negate: bool) -> EmitFunction:
    def emit(emission: Emission, node: Node) -> None:
        dtype = _common_dtype(emission, list(node.inputs[:2]))
        if dtype == "bool" and op_type != "Equal":
            dtype = "int32"  # ONNX orders numbers only; False < True as 0 < 1
        result = emission.op(op_type, [emission.operand(value, dtype) for value in node.inputs[:2]])
        if negate:
            result = emission.op("Not", [result])
        emission.bind(node.output, emission.cast(result, "bool", emission.dtype(node.output)))

    return emit


for _name, _op_type in _COMPARISONS.items():
    register(f"aten::{_name}.Tensor", f"aten::{_name}.Scalar")(_comparison(_op_type, negate=_name == "ne"))


def _truth(emission: Emission, value: Value) -> str:
    """A tensor as bool, the way torch's logical ops read it: non-zero (NaN included) is true."""
    name, dtype = emission.tensor(value), emission.dtype(value)
    if dtype == "bool":
        return name
    return emission.op("Not", [emission.op("Equal", [name, emission.scalar(0, dtype)])])


@register("aten::logical_not")
def _logical_not(emission: Emission, node: Node) -> None:
    result = emission.op("Not", [_truth(emission, node.inputs[0])])
    emission.bind(node.output, emission.cast(result, "bool", emission.dtype(node.output)))


def _logical(op_type: str) -> EmitFunction:
    def emit(emission: Emission, node: Node) -> None:
        result = emission.op(op_type, [_truth(emission, value) for value in node.inputs[:2]])
        emission.bind(node.output, emission.cast(result, "bool", emission.dtype(node.output)))

    return emit


for _key, _op_type in {"aten::logical_and": "And", "aten::logical_or": "Or", "aten::logical_xor": "Xor"}.items():
    register(_key)(_logical(_op_type))


@register("aten::where.self", "aten::where.ScalarSelf", "aten::where.ScalarOther", "aten::where.Scalar")
def _where(emission: Emission, node: Node) -> None:
    """Either branch may be a number; both are cast to the output's (promoted) dtype."""
    dtype = emission.dtype(node.output)
    condition = emission.cast(emission.tensor(node.inputs[0]), emission.dtype(node.inputs[0]), "bool")
    branches = [emission.operand(value, dtype) for value in node.inputs[1:3]]
    emission.bind(node.output, emission.op("Where", [condition, *branches]))


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
def _spatial(values: int | list[int], count: int) -> list[int]:
    values = [values] if isinstance(values, int) else list(values)
    return values * count if len(values) == 1 else values


def _same_pads(node: Node, dilations: list[int]) -> list[int]:
    """torch's ``padding='same'``: ``dilation * (kernel - 1)`` in all, the odd one on the end side."""
    totals = [dilation * (kernel - 1) for dilation, kernel in zip(dilations, _shape(node.inputs[1])[2:])]
    return [total // 2 for total in totals] + [total - total // 2 for total in totals]


def _conv(stride: int, padding: int, dilation: int, groups: int, output_padding: int | None = None) -> EmitFunction:
    """ONNX Conv, or ConvTranspose when ``output_padding`` is given (weights keep torch's layouts:
    ``(out, in / groups, *kernel)`` and ``(in, out / groups, *kernel)``, which are ONNX's)."""

    def emit(emission: Emission, node: Node) -> None:
        spatial = emission.rank(node.inputs[1]) - 2
        dilations = _spatial(emission.known(node.inputs[dilation]), spatial)
        padding_value = emission.known(node.inputs[padding])
        if padding_value == "valid":
            pads = [0] * (2 * spatial)
        elif padding_value == "same":
            pads = _same_pads(node, dilations)
        else:
            pads = _spatial(padding_value, spatial) * 2
        inputs = [emission.tensor(node.inputs[0]), emission.tensor(node.inputs[1])]
        if node.inputs[2].is_tensor:
            inputs.append(emission.tensor(node.inputs[2]))
        attributes = {
            "strides": _spatial(emission.known(node.inputs[stride]), spatial),
            "pads": pads,
            "dilations": dilations,
            "group": int(emission.known(node.inputs[groups])),
        }
        if output_padding is not None:
            attributes["output_padding"] = _spatial(emission.known(node.inputs[output_padding]), spatial)
        op_type = "Conv" if output_padding is None else "ConvTranspose"
        emission.bind(node.output, emission.op(op_type, inputs, **attributes))

    return emit


def _string_padding(node: Node) -> str | None:
    _, mode = _constant_of(node.inputs[4])
    if mode not in ("same", "valid"):
        return f"{node.kind} with padding={mode!r} has no ONNX emitter (torch takes 'same' or 'valid')"
    kernel = _shape(node.inputs[1])
    if mode == "same" and (kernel is None or not all(isinstance(size, int) for size in kernel[2:])):
        return f"{node.kind} with padding='same' needs a static kernel size"
    if mode == "same" and any(step != 1 for step in _constant_list(node.inputs[3]) or [1]):
        return f"{node.kind} with padding='same' is emitted only with stride 1 (as torch requires)"
    return None


register("aten::conv1d", "aten::conv2d", "aten::conv3d", constant_args=(3, 4, 5, 6), check=_not_a_string(4))(
    _conv(3, 4, 5, 6))
register("aten::conv1d.padding", "aten::conv2d.padding", "aten::conv3d.padding", constant_args=(3, 4, 5, 6),
         check=_string_padding)(_conv(3, 4, 5, 6))


def _transposed_conv_check(stride: int, dilation: int) -> Check:
    def check(node: Node) -> str | None:
        if node.op in ("aten::convolution", "aten::_convolution") and not _constant_of(node.inputs[6])[1]:
            return None
        strides, dilations = _constant_list(node.inputs[stride]) or [], _constant_list(node.inputs[dilation]) or []
        if any(step != 1 for step in strides) and any(size != 1 for size in dilations):
            return (f"{node.kind}: a transposed convolution both strided and dilated is not emitted (the "
                    "TensorRT-RTX builder refuses it: 'Strided & Dilated Deconv are currently not supported')")
        return None

    return check


# conv_transpose*d(input, weight, bias, stride, padding, output_padding, groups, dilation)
register("aten::conv_transpose1d", "aten::conv_transpose2d.input", "aten::conv_transpose3d.input",
         constant_args=(3, 4, 5, 6, 7), check=_transposed_conv_check(3, 7))(_conv(3, 4, 7, 6, output_padding=5))


@register("aten::convolution", "aten::_convolution", constant_args=(3, 4, 5, 6, 7, 8),
          check=_transposed_conv_check(3, 5))
def _convolution(emission: Emission, node: Node) -> None:
    """(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups, ...)."""
    transposed = bool(emission.known(node.inputs[6]))
    _conv(3, 4, 5, 8, output_padding=7 if transposed else None)(emission, node)


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
def _pool_check(ceil_position: int, *more: Check) -> Check:
    """A batched 4-D input (ONNX pools every dim after N, C), and static spatial sizes when
    ``ceil_mode`` is set (the extra end padding below is computed from them)."""

    def check(node: Node) -> str | None:
        shape = _shape(node.inputs[0])
        if shape is None or len(shape) != 4:
            return f"{node.kind} is emitted only for a batched (N, C, H, W) input"
        known, ceil_mode = _constant_of(node.inputs[ceil_position])
        if known and ceil_mode and not all(isinstance(size, int) for size in shape[2:]):
            return f"{node.kind} with ceil_mode=True needs static spatial sizes to emit ONNX"
        return _all_of(*more)(node)

    return check


def _ceil_extra(node: Node, kernel: list[int], stride: list[int], pads: list[int], dilations: list[int]) -> list[int]:
    """The end padding to add per spatial dim so that floor-mode ONNX pooling gives torch's
    ``ceil_mode=True`` windows.

    torch's ceil-mode size is ``ceil((size + 2 * pad - reach) / stride) + 1``, less one when the
    last window would start in the end padding (``(out - 1) * stride >= size + pad``); its last
    window may run past the padding, clipped. ONNX's ``ceil_mode`` attribute is not used: which
    windows it drops is not settled among implementations (TensorRT-RTX's parser sizes
    ``ceil_mode=1`` pooling without the drop: 5 wide, kernel 2, stride 2, pad 1 gives 4 outputs
    where torch gives 3). Extra end padding in floor mode pins the same windows everywhere: max
    pooling ignores padding, average pooling is emitted so that the extra padding is never counted.
    """
    extra = []
    for size, window, step, pad, dilation in zip(_shape(node.inputs[0])[2:], kernel, stride, pads, dilations):
        reach = dilation * (window - 1) + 1
        out = (size + 2 * pad - reach + step - 1) // step + 1
        if (out - 1) * step >= size + pad:
            out -= 1
        extra.append(max(0, (out - 1) * step + reach - (size + 2 * pad)))
    return extra


def _undilated(node: Node) -> str | None:
    dilations = _constant_list(node.inputs[4])
    if dilations is None or any(dilation != 1 for dilation in dilations):
        return f"{node.kind} is emitted only with dilation 1 (TensorRT's ONNX parser refuses dilated pooling)"
    return None


@register("aten::max_pool2d", constant_args=(1, 2, 3, 4, 5), check=_pool_check(5, _undilated))
def _max_pool(emission: Emission, node: Node) -> None:
    """(self, kernel_size, stride, padding, dilation, ceil_mode); see :func:`_ceil_extra`."""
    kernel = _spatial(emission.known(node.inputs[1]), 2)
    stride = _spatial(emission.known(node.inputs[2]) or kernel, 2)
    pads = _spatial(emission.known(node.inputs[3]), 2)
    dilations = _spatial(emission.known(node.inputs[4]), 2)
    extra = _ceil_extra(node, kernel, stride, pads, dilations) if emission.known(node.inputs[5]) else [0, 0]
    emission.bind(node.output, emission.op(
        "MaxPool", [emission.tensor(node.inputs[0])], kernel_shape=kernel, strides=stride,
        pads=pads + [pad + more for pad, more in zip(pads, extra)], dilations=dilations,
    ))


@register("aten::avg_pool2d", constant_args=(1, 2, 3, 4, 5, 6),
          check=_pool_check(4, _argument_is(6, None, "divisor_override=None")))
def _avg_pool(emission: Emission, node: Node) -> None:
    """(self, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override).

    torch divides by the window clipped to input + padding (``count_include_pad``) or to the input.
    With ``ceil_mode`` windows running past the padding (:func:`_ceil_extra`), ONNX counts the
    extra end padding only with ``count_include_pad=0``, so: without padding, or not counting it,
    the extra padding is added with ``count_include_pad=0``; counting real padding, that padding
    becomes zeros (ONNX Pad) counted as input, and the extra padding is added with
    ``count_include_pad=0``."""
    x = emission.tensor(node.inputs[0])
    kernel = _spatial(emission.known(node.inputs[1]), 2)
    stride = _spatial(emission.known(node.inputs[2]) or kernel, 2)
    pads = _spatial(emission.known(node.inputs[3]), 2)
    count_include_pad = int(bool(emission.known(node.inputs[5])))
    extra = _ceil_extra(node, kernel, stride, pads, [1, 1]) if emission.known(node.inputs[4]) else [0, 0]
    if any(extra):
        if count_include_pad and any(pads):
            zero = emission.scalar(0, emission.dtype(node.inputs[0]))
            x = emission.op("Pad", [x, emission.ints([0, 0, *pads, 0, 0, *pads]), zero], mode="constant")
            pads = [0, 0]
        count_include_pad = 0
    emission.bind(node.output, emission.op(
        "AveragePool", [x], kernel_shape=kernel, strides=stride,
        pads=pads + [pad + more for pad, more in zip(pads, extra)], count_include_pad=count_include_pad,
    ))


def _adaptive_sizes(node: Node) -> tuple[list[int], list] | None:
    """(output sizes, input spatial sizes) of an adaptive pool, None when the sizes are not constant."""
    output = _constant_list(node.inputs[1])
    shape = _shape(node.inputs[0])
    if output is None or shape is None or len(shape) != 4:
        return None
    return _spatial(output, 2), list(shape[2:])


def _adaptive_check(node: Node) -> str | None:
    sizes = _adaptive_sizes(node)
    if sizes is not None:
        output, spatial = sizes
        if output == [1, 1] or all(isinstance(size, int) and out > 0 and size % out == 0
                                   for out, size in zip(output, spatial)):
            return None
    return ("aten::adaptive_avg_pool2d is emitted only for a batched (N, C, H, W) input and an output size "
            "of 1 or one that divides static input sizes")


@register("aten::adaptive_avg_pool2d", constant_args=(1,), check=_adaptive_check)
def _adaptive_avg_pool(emission: Emission, node: Node) -> None:
    """Output 1: GlobalAveragePool; output dividing the input: torch's windows are then the
    non-overlapping ``input / output`` blocks, an AveragePool with that kernel and stride."""
    output, spatial = _adaptive_sizes(node)
    x = emission.tensor(node.inputs[0])
    if output == [1, 1]:
        emission.bind(node.output, emission.op("GlobalAveragePool", [x]))
        return
    kernel = [size // out for size, out in zip(spatial, output)]
    emission.bind(node.output, emission.op("AveragePool", [x], kernel_shape=kernel, strides=kernel))


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


@register("aten::cumsum", constant_args=(1, 2), check=_nonzero_rank)
def _cumsum(emission: Emission, node: Node) -> None:
    """(self, dim, dtype): summed in the output's dtype (``dtype``, else int64 for integers as in torch)."""
    axis = emission.known(node.inputs[1]) % emission.rank(node.inputs[0])
    x = _input_as_output(emission, node)
    emission.bind(node.output, emission.op("CumSum", [x, emission.scalar(axis, "int64")]))


@register("aten::argmax", "aten::argmin", constant_args=(1, 2), check=_all_of(_not_bool, _nonzero_rank))
def _arg_extremum(emission: Emission, node: Node) -> None:
    """(self, dim, keepdim): the first index of the extremum (``select_last_index=0``), as torch
    gives; ``dim=None`` searches the flattened tensor (all-ones shape with ``keepdim``)."""
    op_type = "ArgMax" if node.op == "aten::argmax" else "ArgMin"
    x = emission.tensor(node.inputs[0])
    rank = emission.rank(node.inputs[0])
    dim, keepdim = emission.known(node.inputs[1]), bool(emission.known(node.inputs[2]))
    if dim is None or rank == 1:
        # As one row: TensorRT's parser takes ArgMax / ArgMin of 2-D and larger tensors only.
        row = emission.op("Reshape", [x, emission.ints([1, -1])])
        index = emission.op(op_type, [row], axis=1, keepdims=0, select_last_index=0)
        emission.bind(node.output, emission.op("Reshape", [index, emission.ints([1] * rank if keepdim else [])]))
        return
    emission.bind(node.output, emission.op(op_type, [x], axis=dim % rank, keepdims=int(keepdim), select_last_index=0))


_SORTED = _argument_is(4, True, "sorted=True (the order of an unsorted top-k is left to each implementation)")


@register("aten::topk", constant_args=(1, 2, 3, 4), check=_all_of(_nonzero_rank, _SORTED))
def _topk(emission: Emission, node: Node) -> None:
    """(self, k, dim, largest, sorted) -> (values, indices), sorted. Equal values may come in
    another index order than torch's (which torch does not fix either: CPU and CUDA differ)."""
    rank = emission.rank(node.inputs[0])
    k, dim, largest = (emission.known(v) for v in node.inputs[1:4])
    values, indices = emission.add_node("TopK", [emission.tensor(node.inputs[0]), emission.ints([int(k)])], 2,
                                        axis=dim % rank, largest=int(bool(largest)), sorted=1)
    emission.bind(node.outputs[0], values)
    emission.bind(node.outputs[1], indices)


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
