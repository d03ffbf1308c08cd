"""Which IR nodes the inductor backend compiles, and why it refuses the others.

Rules, checked in this order (the first that refuses gives the reason):

1. control flow (``prim::If``, ``prim::Loop``) and side effects (exceptions, prints, warnings)
   stay in the glue;
2. of the ``prim::`` ops only the structural helpers in :data:`STRUCTURAL_PRIM_OPS` are
   compiled; other namespaces (``quantized::``, ``poros::``, custom ops) are refused;
3. no complex tensors in or out (Inductor generates no complex kernels), no FFT operators;
4. no random operators (an engine would not follow torch's generator state); ``dropout`` with a
   constant ``train=False`` is allowed (it is the identity);
5. no operators whose output shape or value depends on tensor data
   (:data:`DATA_DEPENDENT_OPS`, boolean-mask indexing, ``aten::Int`` of a computed tensor);
6. shape arithmetic is compiled when it is in :data:`packager.backends._fx.SHAPE_HELPERS`;
   other ops with no tensor input or output stay in the glue;
7. the op must resolve to a ``torch.ops`` overload and must not write to its inputs (in-place
   and ``out=`` forms must be rewritten to their functional forms before partitioning).

Every refusal is a sentence that ``poros-pack inspect`` shows next to the node.
"""

from __future__ import annotations

from packager.backends._fx import reads_number_from_tensor, shape_helper
from packager.errors import PorosError
from packager.ir.effects import SIDE_EFFECT_OPS
from packager.ir.graph import Node, Value
from packager.ir.ops import resolve_overload
from packager.ir.types import IRType, ListType, OptionalType, TensorType, TupleType

__all__ = [
    "inductor_capability",
    "STRUCTURAL_PRIM_OPS",
    "FFT_OPS",
    "RANDOM_OPS",
    "DROPOUT_OPS",
    "DATA_DEPENDENT_OPS",
]

BACKEND = "the inductor backend"

STRUCTURAL_PRIM_OPS = frozenset({
    "prim::Constant",
    "prim::ListConstruct",
    "prim::ListUnpack",
    "prim::TupleConstruct",
    "prim::TupleUnpack",
    "prim::NumToTensor",
})

CONTROL_FLOW_OPS = frozenset({"prim::If", "prim::Loop"})


FFT_OPS = frozenset({"aten::stft", "aten::istft", "aten::_fft_r2c", "aten::_fft_c2r", "aten::_fft_c2c"})

RANDOM_OPS = frozenset({
    "aten::rand", "aten::rand_like", "aten::randn", "aten::randn_like", "aten::randint",
    "aten::randint_like", "aten::randperm", "aten::bernoulli", "aten::multinomial",
    "aten::normal", "aten::poisson", "aten::binomial", "aten::rrelu", "aten::rrelu_with_noise",
    "aten::native_dropout", "aten::uniform", "aten::exponential", "aten::geometric",
    "aten::log_normal", "aten::cauchy", "aten::random", "aten::_standard_gamma",
    "aten::_sample_dirichlet",
})

# Dropout family: (input, p, train); random only when train is true.
DROPOUT_OPS = frozenset({"aten::dropout", "aten::feature_dropout", "aten::alpha_dropout", "aten::feature_alpha_dropout"})

# Output shape (or a returned Python value) depends on the values in a tensor.
DATA_DEPENDENT_OPS = frozenset({
    "aten::nonzero", "aten::nonzero_numpy", "aten::argwhere", "aten::masked_select",
    "aten::unique", "aten::_unique", "aten::_unique2", "aten::unique_consecutive",
    "aten::unique_dim", "aten::unique_dim_consecutive", "aten::bincount",
    "aten::item", "aten::_local_scalar_dense", "aten::tolist", "aten::is_nonzero",
    "aten::equal", "aten::allclose",
})

# repeat_interleave with a tensor of repeats has a data-dependent length.
_DATA_DEPENDENT_OVERLOADS = {"aten::repeat_interleave": frozenset({"Tensor", "self_Tensor"})}

# Indexing ops whose index list may hold boolean masks (x[mask]): data-dependent shapes.
_MASKABLE_INDEX_OPS = frozenset({"aten::index", "aten::index_put", "aten::_index_put_impl"})


def inductor_capability(node: Node) -> str | None:
    """None if the inductor backend compiles ``node``, else why not (one sentence)."""
    op = node.op
    if op in CONTROL_FLOW_OPS:
        return f"control flow ({op}) is not compiled into engines; it runs in the TorchScript glue"
    if op in SIDE_EFFECT_OPS:
        return f"{op} has side effects (exceptions, prints, warnings) that must run in the glue"
    namespace = node.namespace
    if namespace == "prim" and op not in STRUCTURAL_PRIM_OPS:
        return (
            f"{op} is not one of the prim helpers {BACKEND} translates "
            f"({', '.join(sorted(STRUCTURAL_PRIM_OPS))})"
        )
    if namespace not in ("aten", "prim"):
        return f"only aten:: operators (and prim helpers) are compiled by {BACKEND}; {op} stays in the glue"
    for reason_check in (_complex_reason, _fft_reason, _random_reason, _data_dependent_reason):
        reason = reason_check(node)
        if reason is not None:
            return reason
    if namespace == "prim" or shape_helper(node) is not None or reads_number_from_tensor(node):
        return None
    if not any(_carries_tensor(v.type) for v in (*node.inputs, *node.outputs)):
        return (
            f"{node.kind} works on Python values only, not tensors; {BACKEND} traces only the "
            "shape arithmetic it knows (aten::size, aten::mul.int, ...), the rest runs in the glue"
        )
    try:
        overload = resolve_overload(op, node.overload)
    except PorosError as error:
        return str(error)
    if any(argument.alias_info is not None and argument.alias_info.is_write for argument in overload._schema.arguments):
        functional = f" (e.g. {op[:-1]})" if op.endswith("_") else ""
        return (
            f"{node.kind} writes to its inputs in place; engines must be functional: rewrite it to "
            f"its out-of-place form{functional} before partitioning"
        )
    return None


def _is_complex(type_: IRType) -> bool:
    if isinstance(type_, TensorType):
        return type_.dtype is not None and type_.dtype.startswith("complex")
    if isinstance(type_, (ListType, OptionalType)):
        return _is_complex(type_.element)
    if isinstance(type_, TupleType):
        return any(_is_complex(element) for element in type_.elements)
    return False


def _carries_tensor(type_: IRType) -> bool:
    if isinstance(type_, TensorType):
        return True
    if isinstance(type_, (ListType, OptionalType)):
        return _carries_tensor(type_.element)
    if isinstance(type_, TupleType):
        return any(_carries_tensor(element) for element in type_.elements)
    return False


def _origin(value: Value) -> str:
    if value.producer is not None:
        return f"{value.producer.op} output"
    return f"input %{value.name}"


def _complex_reason(node: Node) -> str | None:
    complex_value = next((v for v in (*node.inputs, *node.outputs) if _is_complex(v.type)), None)
    origin = None if complex_value is None else _origin(complex_value)
    if origin is None and node.op == "prim::Constant":
        value = node.attrs.get("value")
        if getattr(value, "is_complex", lambda: False)():
            origin = "prim::Constant"
    if origin is None:
        return None
    return (
        f"complex tensors ({origin}) are not supported by {BACKEND} "
        "(Inductor generates no complex kernels); they stay in the glue"
    )


def _fft_reason(node: Node) -> str | None:
    if node.op.startswith("aten::fft_") or node.op in FFT_OPS:
        return f"FFT operators ({node.op}) are not supported by {BACKEND}; they stay in the glue"
    return None


def _random_reason(node: Node) -> str | None:
    random = node.op in RANDOM_OPS
    if node.op in DROPOUT_OPS:
        train = node.inputs[2] if len(node.inputs) > 2 else None
        constant_false = (
            train is not None
            and train.producer is not None
            and train.producer.op == "prim::Constant"
            and train.producer.attrs.get("value") is False
        )
        random = not constant_false
    if not random:
        return None
    return (
        f"{node.op} draws random numbers; inside an engine it would not follow torch's generator "
        "state (torch.manual_seed), so it stays in the glue"
    )


def _data_dependent_reason(node: Node) -> str | None:
    if node.op in DATA_DEPENDENT_OPS or node.overload in _DATA_DEPENDENT_OVERLOADS.get(node.op, ()):
        return (
            f"{node.kind} has an output shape or value that depends on tensor data, which "
            f"{BACKEND} cannot compile ahead of time; it stays in the glue"
        )
    if node.op in _MASKABLE_INDEX_OPS and len(node.inputs) > 1 and _has_boolean_index(node.inputs[1]):
        return (
            f"{node.kind} with a boolean mask index selects a data-dependent number of elements; "
            "it stays in the glue"
        )
    if reads_number_from_tensor(node):
        source = node.inputs[0].producer
        if source is None or source.op != "prim::NumToTensor":
            return (
                f"{node.kind} reads a computed tensor's value into a Python number (data-dependent, "
                "a host sync); lowering should turn tensor shape arithmetic into int arithmetic"
            )
    return None


def _has_boolean_index(indices: Value) -> bool:
    producer = indices.producer
    candidates = producer.inputs if producer is not None and producer.op == "prim::ListConstruct" else (indices,)
    return any(_is_boolean_tensor(value.type) for value in candidates)


def _is_boolean_tensor(type_: IRType) -> bool:
    if isinstance(type_, TensorType):
        return type_.dtype in ("bool", "uint8")
    if isinstance(type_, (ListType, OptionalType)):
        return _is_boolean_tensor(type_.element)
    return False
