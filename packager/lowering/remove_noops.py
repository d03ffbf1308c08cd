"""Remove ops that return their input unchanged (in inference, on the one run device).

Rewrite: ``y = op(x, ...)`` -> every use of ``y`` reads ``x``; the node goes. Candidates, each with
the check that makes it a no-op:

* ``aten::dropout`` / ``feature_dropout`` / ``alpha_dropout`` / ``feature_alpha_dropout`` (and
  their in-place ``_`` forms): the ``train`` argument is the constant False;
* ``aten::detach``, ``aten::alias``, ``aten::lift_fresh``: always (same storage, no autograd here);
* ``prim::unchecked_cast``: when it does not refine the type later nodes see (an
  ``Optional[Tensor]`` cast to ``Tensor`` stays: the glue's TorchScript needs the refinement);
* ``aten::to`` (``dtype``, ``dtype_layout``, ``other``) and ``aten::type_as``: same dtype per the
  IR types, ``copy=False``, memory format kept, no device given (``to.device`` stays: IR types
  carry no device), and for ``other`` / ``type_as`` both tensors follow the run device;
* ``aten::view`` / ``aten::reshape``: the requested shape equals the input's IR shape, a size
  matching a symbolic dim by its symbol (``x.view(x.size(0), -1)`` on ``[s0, 8]``), with one
  ``-1`` allowed in place of a dim;
* ``aten::contiguous`` (contiguous format) and ``aten::clone`` (memory format kept): these copy,
  so they go only when nothing observes the copy -- no in-place write reaches the input or the
  output; no stride-sensitive op (``aten::view``, ``aten::stride``...) is reachable from the
  output before a layout-resetting op (``aten::linear``, ``aten::matmul``...); and the output is
  not a graph output that would then alias a graph input, a constant or another output.

``nn.Identity`` leaves nothing after the front end inlines its ``forward``; what remains of it
is one of the aliases above.

"Follows the run device": a graph input, a tensor constant (weights move to the artifact's one
device), or the result of an op with a tensor input that follows and no explicit ``device=``.
A tensor made by a factory op (``aten::zeros(...)``, ``prim::NumToTensor``) does not: for it
``type_as(x)`` is the move to x's device, not a no-op.

Invariant: for every input the graph computes the same outputs (same values, dtypes and
devices). A candidate that might be a no-op but could not be proven one keeps the reason in
``node.meta["not_removed_reason"]``; one that plainly does work (a real conversion) stays silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from packager.ir.graph import Graph, Node, Value
from packager.ir.types import ScalarType, SymDim, TensorType
from packager.lowering._constants import (
    as_dtype,
    as_memory_format,
    constant_int_list,
    constant_value,
    dtype_name,
    is_constant,
)
from packager.ir.effects import AliasClasses, effects_of, schema_of
from packager.lowering.pass_manager import Pass

__all__ = ["RemoveNoops", "NOOP_OPS", "Keep"]

_DROPOUT_OPS = frozenset({
    "aten::dropout", "aten::dropout_", "aten::feature_dropout", "aten::feature_dropout_",
    "aten::alpha_dropout", "aten::alpha_dropout_", "aten::feature_alpha_dropout",
    "aten::feature_alpha_dropout_",
})
_ALIAS_OPS = frozenset({"aten::detach", "aten::alias", "aten::lift_fresh"})

# Ops whose result depends on the strides of an input (a view fails on a non-contiguous one).
_STRIDE_SENSITIVE_OPS = frozenset({
    "aten::view", "aten::view_as", "aten::_unsafe_view", "aten::as_strided", "aten::stride",
    "aten::is_contiguous", "aten::data_ptr", "aten::set_",
})
# Ops whose output layout does not depend on their inputs' strides (fresh, contiguous results).
_LAYOUT_RESETTING_OPS = frozenset({
    "aten::linear", "aten::matmul", "aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm",
    "aten::mv", "aten::addmv", "aten::dot",
})


class _Context:
    """Facts shared by the checks of one run."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.aliases = AliasClasses(graph)
        self.follows: dict[Value, bool] = {}


@dataclass(frozen=True, slots=True)
class Keep:
    """A failed check. ``noted`` is False when there is nothing worth telling the user (the op
    plainly does work: a real conversion or reshape); then no note is left on the node."""

    reason: str
    noted: bool = True


def _quiet(reason: str) -> Keep:
    return Keep(reason, noted=False)


def _noted(reason: str) -> Keep:
    return Keep(reason)


Check = Callable[[Node, _Context], Keep | None]


class RemoveNoops(Pass):
    name = "remove_noops"

    def run(self, graph: Graph) -> bool:
        context = _Context(graph)
        changed = False
        for node in list(graph.walk()):
            check = NOOP_OPS.get(node.op)
            if check is None:
                continue
            kept = check(node, context)
            if kept is not None:
                if kept.noted:
                    node.meta["not_removed_reason"] = kept.reason
                continue
            source = node.inputs[0]
            context.aliases.merge(source, node.output)
            node.output.replace_all_uses_with(source)
            node.owner.remove_node(node)
            changed = True
        return changed


# --------------------------------------------------------------------------- checks
def _dropout(node: Node, context: _Context) -> Keep | None:
    train = node.inputs[2]
    if not is_constant(train):
        return _noted("its train flag is not a constant")
    if constant_value(train) is not False:
        return _quiet("dropout in training mode")
    return None


def _alias(node: Node, context: _Context) -> Keep | None:
    return None


def _unchecked_cast(node: Node, context: _Context) -> Keep | None:
    source, result = node.inputs[0].type, node.output.type
    if source == result or (isinstance(source, TensorType) and isinstance(result, TensorType)):
        return None
    return _quiet(f"it refines {source} to {result}, which later nodes rely on")


def _to(node: Node, context: _Context) -> Keep | None:
    if node.overload == "device":
        return _noted("it names a device, and IR types do not say where the input lives")
    if node.overload not in ("dtype", "dtype_layout", "other"):
        return _noted(f"aten::to.{node.overload} is not checked for identity")
    arguments = _arguments(node)
    copy = _known(arguments["copy"])
    if copy is _UNKNOWN:
        return _noted("its copy flag is not a constant")
    if copy:
        return _quiet("it asks for a copy")
    kept = _layout_kept(arguments["memory_format"])
    if kept is not None:
        return kept
    if node.overload == "other":
        return _same_dtype_and_device(node.inputs[0], node.inputs[1], context)
    if node.overload == "dtype_layout":
        if _known(arguments["device"]) is not None:
            return _noted("it names a device, and IR types do not say where the input lives")
        layout, pin_memory = _known(arguments["layout"]), _known(arguments["pin_memory"])
        if layout is _UNKNOWN or pin_memory is _UNKNOWN:
            return _noted("its layout or pin_memory argument is not a constant")
        if layout is not None and layout not in (torch.strided, _STRIDED_LAYOUT_CODE):
            return _quiet("it changes the layout")
        if pin_memory:
            return _quiet("it pins memory")
        if _known(arguments["dtype"]) is None:
            return None
    return _matches_dtype(node.inputs[0], _known(arguments["dtype"]))


def _type_as(node: Node, context: _Context) -> Keep | None:
    return _same_dtype_and_device(node.inputs[0], node.inputs[1], context)


def _view(node: Node, context: _Context) -> Keep | None:
    type_ = node.inputs[0].type
    sizes = _requested_sizes(node.inputs[1])
    if sizes is None or not isinstance(type_, TensorType) or type_.shape is None:
        return _quiet("the input's rank or the requested rank is unknown")
    shape = type_.shape
    if len(sizes) != len(shape):
        return _quiet(f"it changes the rank from {len(shape)} to {len(sizes)}")
    inferred = [index for index, size in enumerate(sizes) if size == -1]
    if len(inferred) > 1:
        return _quiet("more than one -1 in the requested shape")
    unproven = None
    for index, (size, dim) in enumerate(zip(sizes, shape)):
        if index in inferred:
            continue
        if isinstance(size, int) and isinstance(dim, int):
            if size != dim:
                return _quiet(f"dim {index}: requested {size}, input has {dim}")
        elif not (isinstance(dim, SymDim) and size == dim.expr):
            unproven = unproven or _noted(f"dim {index}: cannot show that the requested size equals {dim}")
    if inferred and any(_may_be_zero(dim) for index, dim in enumerate(shape) if index not in inferred):
        # view(-1, 0) of an empty tensor raises; the input alone would not.
        return _noted("a -1 next to a dim that may be zero is ambiguous")
    return unproven


def _may_be_zero(dim: int | SymDim) -> bool:
    if isinstance(dim, int):
        return dim == 0
    return dim.min is None or dim.min <= 0


def _requested_sizes(shape: Value) -> list[int | str | None] | None:
    """A view's requested sizes: an int, the symbol (``"s0"``) an int value is known to equal,
    or None when neither is known; None for the whole list when even its length is unknown."""
    constant = constant_int_list(shape)
    if constant is not None:
        return constant
    producer = shape.producer
    if producer is None or producer.op != "prim::ListConstruct":
        return None
    sizes: list[int | str | None] = []
    for element in producer.inputs:
        if is_constant(element) and isinstance(constant_value(element), int):
            sizes.append(constant_value(element))
        elif isinstance(element.type, ScalarType) and element.type.symbol is not None:
            sizes.append(element.type.symbol)
        else:
            sizes.append(None)
    return sizes


def _contiguous(node: Node, context: _Context) -> Keep | None:
    memory_format = _known(node.inputs[1]) if len(node.inputs) > 1 else torch.contiguous_format
    if memory_format is _UNKNOWN:
        return _noted("its memory format is not a constant")
    if as_memory_format(memory_format) is not torch.contiguous_format:
        return _quiet("it asks for a memory format other than contiguous")
    return _copy_is_unobserved(node, context)


def _clone(node: Node, context: _Context) -> Keep | None:
    kept = _layout_kept(node.inputs[1]) if len(node.inputs) > 1 else None
    return kept if kept is not None else _copy_is_unobserved(node, context)


NOOP_OPS: dict[str, Check] = {
    **{op: _dropout for op in sorted(_DROPOUT_OPS)},
    **{op: _alias for op in sorted(_ALIAS_OPS)},
    "prim::unchecked_cast": _unchecked_cast,
    "aten::to": _to,
    "aten::type_as": _type_as,
    "aten::view": _view,
    "aten::reshape": _view,
    "aten::contiguous": _contiguous,
    "aten::clone": _clone,
}


# --------------------------------------------------------------------------- helpers
_UNKNOWN = object()
_STRIDED_LAYOUT_CODE = 0  # TorchScript's int for torch.strided


def _known(value: Value) -> Any:
    return constant_value(value) if is_constant(value) else _UNKNOWN


def _arguments(node: Node) -> dict[str, Value]:
    schema = schema_of(node)
    if schema is None:
        return {}
    return {argument.name: value for argument, value in zip(schema.arguments, node.inputs)}


def _layout_kept(memory_format: Value) -> Keep | None:
    """None when a ``MemoryFormat?`` argument keeps the input's layout (None or preserve)."""
    chosen = _known(memory_format)
    if chosen is _UNKNOWN:
        return _noted("its memory format is not a constant")
    if chosen is None or as_memory_format(chosen) is torch.preserve_format:
        return None
    return _quiet("it changes the memory format")


def _matches_dtype(source: Value, wanted: Any) -> Keep | None:
    dtype = as_dtype(wanted)
    if dtype is None:
        return _noted("the target dtype is not a constant")
    have = source.type.dtype if isinstance(source.type, TensorType) else None
    if have is None:
        return _noted("the input's dtype is unknown")
    if have != dtype_name(dtype):
        return _quiet(f"it converts {have} to {dtype_name(dtype)}")
    return None


def _same_dtype_and_device(source: Value, other: Value, context: _Context) -> Keep | None:
    have = source.type.dtype if isinstance(source.type, TensorType) else None
    want = other.type.dtype if isinstance(other.type, TensorType) else None
    if have is None or want is None:
        return _noted("a dtype is unknown")
    if have != want:
        return _quiet(f"it converts {have} to {want}")
    for value in (source, other):
        if not _follows_run_device(value, context):
            return _noted(f"%{value.name} may live on another device than the run device")
    return None


def _follows_run_device(value: Value, context: _Context) -> bool:
    """Whether the tensor surely lives on the artifact's run device (see the module docstring)."""
    pending = [value]
    while pending:
        current = pending[-1]
        if current in context.follows:
            pending.pop()
            continue
        verdict = _follows_directly(current)
        if verdict is not None:
            context.follows[current] = verdict
            pending.pop()
            continue
        sources = [v for v in current.producer.inputs if isinstance(v.type, TensorType)]
        unresolved = [v for v in sources if v not in context.follows]
        if unresolved:
            pending.extend(unresolved)
            continue
        context.follows[current] = any(context.follows[v] for v in sources)
        pending.pop()
    return context.follows[value]


def _follows_directly(value: Value) -> bool | None:
    """The answer when it does not depend on the producer's inputs; None when it does."""
    if value.producer is None:
        block = value.param_of
        return block is not None and block.owner_node is None
    producer = value.producer
    if producer.op == "prim::Constant":
        return isinstance(constant_value(value), torch.Tensor)
    if producer.blocks or effects_of(producer).side_effects:
        return False
    schema = schema_of(producer)
    if schema is None:
        return False
    for argument, input_value in zip(schema.arguments, producer.inputs):
        if str(argument.type) in ("Device", "Optional[Device]") and _known(input_value) is not None:
            return False
    if not any(isinstance(v.type, TensorType) for v in producer.inputs):
        return False
    return None


def _copy_is_unobserved(node: Node, context: _Context) -> Keep | None:
    source, copy = node.inputs[0], node.output
    aliases = context.aliases
    if aliases.is_written(source) or aliases.is_written(copy):
        return _noted("the input or the copy is written in place, so the copy is observable")
    sensitive = _stride_sensitive_user(copy)
    if sensitive is not None:
        return _noted(f"its output reaches {sensitive.op}, which depends on the copy's layout")
    # For contiguous the input and the result are one alias class (it may return its input),
    # so a contiguous whose result is returned always stays: conservative, and rare.
    if aliases.is_returned(copy) and (aliases.is_external(source) or aliases.is_returned(source)):
        return _noted("the copy is a graph output and its input may be a graph input, a constant or another output")
    return None


def _stride_sensitive_user(value: Value) -> Node | None:
    """A stride-sensitive node fed by ``value`` before any layout-resetting op, if there is one."""
    seen: set[Value] = set()
    pending = [value]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        for usage in current.uses:
            user = usage.node
            if user.op in _STRIDE_SENSITIVE_OPS:
                return user
            if user.op in _LAYOUT_RESETTING_OPS:
                continue
            if user.op == "prim::Return":
                owner = _return_owner(user)
                if owner is not None:
                    pending.extend(owner.outputs)
                    if owner.op == "prim::Loop":
                        pending.extend(owner.blocks[0].params)
                continue
            pending.extend(user.outputs)
            for inner in user.blocks:
                pending.extend(inner.params)
    return None


def _return_owner(return_node: Node) -> Node | None:
    """The If/Loop whose block ends with ``return_node`` (None for the graph's own return)."""
    return return_node.owner.owner_node
