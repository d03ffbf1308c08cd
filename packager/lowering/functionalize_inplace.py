"""Rewrite in-place ATen ops into their out-of-place forms where nobody can see the difference.

Rewrite: ``y = aten::<name>_.<overload>(x, *rest)`` -> ``y' = aten::<name>.<overload>(x, *rest)``,
every use of ``y`` reads ``y'``, the in-place node goes. ``nn.ReLU(inplace=True)`` is the common
case (``aten::relu_`` after a conv or batch norm); engines must be functional, so without this
every in-place op splits an engine in two around a glue node.

Pattern, from the schemas (``torch.ops``), never from a list of names: the op's schema writes its
first argument and nothing else (``Tensor(a!) self``) and returns it; an overload of
``aten::<name>`` takes the same arguments (types, keyword-only flags, names after ``self``) and
returns one tensor that is new or a view of ``self``. The overload of the same name is tried
first (``add_.Tensor`` -> ``add.Tensor``); others are found by their arguments
(``floor_divide_.Tensor`` -> ``floor_divide``, ``pow_.Scalar`` -> ``pow.Tensor_Scalar``).

Checks, all of which must hold (the first that fails is kept in
``node.meta["not_functionalized_reason"]`` and shown by ``poros-pack inspect``):

* ``x`` is not a graph input or block parameter (the caller, or the next loop iteration, would
  see the write) and not a constant (weights are shared between runs);
* ``x`` is the output of a node whose schema says that output shares memory with none of its
  inputs (no ``Tensor(a)`` annotation). Nodes without a schema (``prim::ListUnpack``,
  ``prim::If``...) are unknown and refused. ``CompositeImplicitAutograd`` ops are refused too
  unless listed in :data:`ALLOCATING_COMPOSITE_OPS`: some of them return their input itself
  despite an unannotated schema (``dropout`` with ``train=False``, ``type_as`` to the same dtype,
  ``atleast_1d``, ``sum_to_size``);
* ``x`` has no use besides this node (no other reader, no view taken earlier, not returned), so
  nothing can observe the write;
* no ``prim::Loop`` body lies between the node and the block defining ``x`` (each iteration would
  see the previous one's write);
* the out-of-place form returns the dtype the in-place op kept (``x_fp16.add_(y_fp32)`` stays
  fp16, ``x_fp16.add(y_fp32)`` would not): checked by running it on meta tensors shaped like
  the IR types, with representative values for arguments not known at build time.

Invariant: on every input for which the original graph runs without error, the rewritten graph
computes the same outputs and leaves its inputs and constants in the same state. (An in-place op
that would fail, say on a broadcast that grows ``x``, may succeed once out of place.)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch

from packager.errors import UnsupportedOpError
from packager.ir.graph import Graph, Node, Value
from packager.ir.ops import resolve_overload, split_arguments
from packager.ir.types import ListType, OptionalType, ScalarType, TensorType
from packager.lowering._constants import constant_value, is_constant
from packager.ir.effects import schema_of
from packager.lowering.pass_manager import Pass

__all__ = ["FunctionalizeInplace", "ALLOCATING_COMPOSITE_OPS", "Functionalization", "match", "check", "rewrite"]

REASON_KEY = "not_functionalized_reason"

# CompositeImplicitAutograd ops (no kernel of their own: they decompose when called) whose
# result is always a fresh tensor. Only for these does an unannotated schema prove it, because
# a composite may hand back its input as is. Each entry is checked by the test beside this file.
ALLOCATING_COMPOSITE_OPS = frozenset({
    "aten::conv1d", "aten::conv2d", "aten::conv3d", "aten::_convolution_mode",
    "aten::conv_transpose1d", "aten::conv_transpose2d", "aten::conv_transpose3d",
    "aten::batch_norm", "aten::instance_norm", "aten::group_norm", "aten::layer_norm",
    "aten::linear", "aten::matmul",
    "aten::max_pool1d", "aten::max_pool2d", "aten::max_pool3d",
    "aten::adaptive_avg_pool1d", "aten::adaptive_avg_pool2d", "aten::adaptive_avg_pool3d",
    "aten::softmax", "aten::log_softmax", "aten::scaled_dot_product_attention",
})


@dataclass(frozen=True, slots=True)
class Functionalization:
    """A checked in-place node and the out-of-place overload that replaces it."""

    node: Node
    functional_op: str
    functional_overload: str


class FunctionalizeInplace(Pass):
    name = "functionalize_inplace"

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in list(graph.walk()):
            found = match(node)
            if found is None:
                continue
            outcome = found if isinstance(found, str) else check(node, *found)
            if isinstance(outcome, str):
                node.meta[REASON_KEY] = outcome
                continue
            rewrite(outcome)
            changed = True
        return changed


# ------------------------------------------------------------------------------------ match
def match(node: Node) -> tuple[str, str] | str | None:
    """For an in-place ATen node, its out-of-place op and overload (``("aten::add", "Tensor")``)
    or, when it has none, why not; None when ``node`` is not an in-place op."""
    if node.namespace != "aten" or len(node.outputs) != 1:
        return None
    name = node.op.split("::", 1)[1]
    if not name.endswith("_") or name.startswith("__"):
        return None
    if not _writes_only_self(node.op, node.overload):
        return None
    functional = _functional_twin(node.op, node.overload)
    if functional is None:
        return f"{node.kind} has no out-of-place form {node.op[:-1]} with the same arguments"
    return functional


@functools.lru_cache(maxsize=None)
def _writes_only_self(op: str, overload: str) -> bool:
    """Whether the schema writes argument 0 alone and returns it."""
    try:
        schema = resolve_overload(op, overload)._schema
    except UnsupportedOpError:
        return False
    written = [index for index, argument in enumerate(schema.arguments)
               if argument.alias_info is not None and argument.alias_info.is_write]
    if written != [0] or len(schema.returns) != 1:
        return False
    returned = schema.returns[0].alias_info
    return returned is not None and returned.before_set == schema.arguments[0].alias_info.before_set


@functools.lru_cache(maxsize=None)
def _functional_twin(op: str, overload: str) -> tuple[str, str] | None:
    """The overload of ``op`` minus its ``_`` that takes the same arguments: the one of the same
    name, else the one whose arguments match (``floor_divide_.Tensor`` -> ``floor_divide``,
    ``pow_.Scalar`` -> ``pow.Tensor_Scalar``)."""
    inplace = resolve_overload(op, overload)._schema
    namespace, name = op[:-1].split("::", 1)
    try:
        candidates = getattr(getattr(torch.ops, namespace), name).overloads()
    except AttributeError:
        return None
    ordered = ([overload or "default"] if (overload or "default") in candidates else []) + sorted(candidates)
    for candidate in ordered:
        functional = resolve_overload(op[:-1], "" if candidate == "default" else candidate)._schema
        if _same_arguments(inplace, functional) and _returns_new_or_view_of_self(functional):
            return op[:-1], functional.overload_name
    return None


def _same_arguments(inplace: torch._C.FunctionSchema, functional: torch._C.FunctionSchema) -> bool:
    """Same types and keyword-only flags in the same order; same names after the first (which
    is ``self`` in one and may be ``input`` in the other)."""
    if len(inplace.arguments) != len(functional.arguments):
        return False
    for position, (mine, theirs) in enumerate(zip(inplace.arguments, functional.arguments)):
        if (str(mine.type), mine.kwarg_only) != (str(theirs.type), theirs.kwarg_only):
            return False
        if position > 0 and mine.name != theirs.name:
            return False
    return not any(argument.alias_info is not None and argument.alias_info.is_write
                   for argument in functional.arguments)


def _returns_new_or_view_of_self(functional: torch._C.FunctionSchema) -> bool:
    """One tensor, new or a view of ``self`` (``unsqueeze_`` -> ``unsqueeze``)."""
    if len(functional.returns) != 1 or str(functional.returns[0].type) != "Tensor":
        return False
    returned, self_alias = functional.returns[0].alias_info, functional.arguments[0].alias_info
    return returned is None or (
        self_alias is not None and not returned.is_write and returned.before_set == self_alias.before_set
    )


# ------------------------------------------------------------------------------------ check
def check(node: Node, functional_op: str, functional_overload: str) -> Functionalization | str:
    """The rewrite to do, or why ``node`` must stay in place."""
    target = node.inputs[0]
    reason = (_fresh_reason(target) or _other_use_reason(target, node) or _loop_reason(target, node)
              or _dtype_reason(node, functional_op, functional_overload))
    if reason is not None:
        return reason
    return Functionalization(node, functional_op, functional_overload)


def _fresh_reason(target: Value) -> str | None:
    """Why ``target`` may share memory with another value (or outlive one run), if it may."""
    producer = target.producer
    if producer is None:
        block = target.param_of
        if block is not None and block.owner_node is None:
            return f"it writes graph input %{target.name}, which the caller sees"
        return f"it writes %{target.name}, a parameter of a {block.owner_node.op} block"
    if producer.op == "prim::Constant":
        return f"it writes the constant %{target.name}, which later runs would see changed"
    schema = schema_of(producer)
    if schema is None or target.index >= len(schema.returns):
        return f"it writes %{target.name} from {producer.kind}, whose aliasing is not known"
    if schema.returns[target.index].alias_info is not None:
        return f"it writes %{target.name} from {producer.kind}, which may share memory with its input"
    if producer.op not in ALLOCATING_COMPOSITE_OPS and _is_composite(producer):
        return (f"it writes %{target.name} from {producer.kind}, a composite op that may return "
                "its input itself")
    return None


def _is_composite(node: Node) -> bool:
    overload = resolve_overload(node.op, node.overload)
    return overload.has_kernel_for_dispatch_key(torch._C.DispatchKey.CompositeImplicitAutograd)


def _other_use_reason(target: Value, node: Node) -> str | None:
    for usage in target.uses:
        if usage.node is node:
            continue
        if usage.node.op == "prim::Return":
            return f"%{target.name} is also returned from its block, so the write is visible"
        return f"%{target.name} is also read by {usage.node.kind}, which could see the write"
    return None


def _loop_reason(target: Value, node: Node) -> str | None:
    block = node.owner
    while block is not target.owner_block:
        loop = block.owner_node
        if loop is None:
            return f"%{target.name} is not defined in a block enclosing {node.kind}"
        if loop.op == "prim::Loop":
            return (f"it runs in a prim::Loop body and writes %{target.name} from outside the loop: "
                    "each iteration sees the previous one's write")
        block = loop.owner
    return None


def _dtype_reason(node: Node, functional_op: str, functional_overload: str) -> str | None:
    """Why the out-of-place op might not return the dtype the in-place op keeps, if it might."""
    kept = node.output.type
    if not isinstance(kept, TensorType) or kept.dtype is None:
        return f"the dtype of %{node.output.name} is not known"
    functional = resolve_overload(functional_op, functional_overload)
    self_dtype = getattr(torch, kept.dtype)
    try:
        values = [_meta_value(value, self_dtype) for value in node.inputs]
        args, kwargs = split_arguments(functional, values)
        result = functional(*args, **kwargs)
    except _Unknown as unknown:
        return f"cannot check the out-of-place result's dtype: {unknown}"
    except Exception as error:  # noqa: BLE001 - a kernel refusing meta inputs: keep the op
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return f"cannot check the out-of-place result's dtype ({type(error).__name__}: {first_line})"
    if result.dtype != self_dtype:
        suffix = f".{functional_overload}" if functional_overload else ""
        return (f"{functional_op}{suffix} would return "
                f"{str(result.dtype).removeprefix('torch.')}, not {kept.dtype} like the in-place op")
    return None


class _Unknown(Exception):
    """An argument has no build-time stand-in."""


def _meta_value(value: Value, self_dtype: torch.dtype) -> Any:
    """A stand-in for ``value`` on the meta device: same dtype and rank (all sizes 1, which
    broadcast with anything), the constant itself, or a representative number of its kind.
    Numbers never change the result dtype within the kind of ``self``, so any value does."""
    type_ = value.type
    if is_constant(value) and not isinstance(constant_value(value), torch.Tensor):
        return constant_value(value)
    if isinstance(type_, OptionalType):
        type_ = type_.element
    if isinstance(type_, TensorType):
        if type_.dtype is None or type_.shape is None:
            raise _Unknown(f"%{value.name} has no known dtype or rank")
        return torch.empty((1,) * len(type_.shape), dtype=getattr(torch, type_.dtype), device="meta")
    if isinstance(type_, ScalarType):
        if type_.name == "int":
            return 1
        if type_.name == "float":
            return 1.0
        if type_.name == "bool":
            return True
        if type_.name in ("Scalar", "number"):
            return True if self_dtype == torch.bool else 1
    if isinstance(type_, ListType) and value.producer is not None and value.producer.op == "prim::ListConstruct":
        return [_meta_value(element, self_dtype) for element in value.producer.inputs]
    raise _Unknown(f"%{value.name} ({type_}) is not known at build time")


# ---------------------------------------------------------------------------------- rewrite
def rewrite(plan: Functionalization) -> None:
    node = plan.node
    block = node.owner
    replacement = block.insert_node_before(node, plan.functional_op, node.inputs, [node.output.type],
                                           plan.functional_overload)
    replacement.meta.update({key: value for key, value in node.meta.items() if key != REASON_KEY})
    name = node.output.name
    node.output.replace_all_uses_with(replacement.output)
    block.remove_node(node)
    replacement.output.name = name
