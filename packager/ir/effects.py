"""What a node may do besides computing its outputs: side effects, in-place writes, aliasing.

Dead-code elimination, constant folding and no-op removal all need the same three answers:

* :func:`effects_of` -- does the node have an effect the caller can observe (raise, warn, print,
  call unknown code), and which of its inputs does it write in place?  The answer comes from the
  op's ATen schema (``Tensor(a!)`` marks a written argument); ops without a schema are assumed to
  do anything, unless they are one of the structural ``prim::`` ops listed here.
* :class:`AliasClasses` -- which values may share storage (a union-find over the whole graph,
  built from the schemas' alias annotations, container ops and control flow), and, per class,
  whether it is written in place, whether it holds a graph input or a constant (memory the
  caller or the next call sees), and whether it is returned from the graph.
* :func:`is_seeded_random` -- does the op draw random numbers (``torch.Tag.nondeterministic_seeded``)?

Everything errs on the side of "may": a wrong "no" would let a pass change what the model
computes, a wrong "yes" only keeps a node that could have gone.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Iterable

import torch

from packager.errors import UnsupportedOpError
from packager.ir.graph import Graph, Node, Value
from packager.ir.ops import PYTHON_BUILTINS, resolve_overload
from packager.ir.types import IRType, ListType, OptionalType, ScalarType, TensorType, TupleType

__all__ = [
    "SIDE_EFFECT_OPS",
    "NodeEffects",
    "effects_of",
    "schema_of",
    "is_seeded_random",
    "may_alias",
    "AliasClasses",
]

# Ops whose schema says nothing about what they do to the world.
SIDE_EFFECT_OPS = frozenset({
    "prim::RaiseException",
    "prim::Print",
    "aten::warn",
    "aten::_print",
    "aten::_assert_async",
    "aten::_assert_scalar",
    "aten::_assert_tensor_metadata",
    "aten::sym_constrain_range",
    "aten::sym_constrain_range_for_size",
    "aten::manual_seed",
    "aten::record_stream",
    "prim::SetAttr",
    "prim::CallMethod",
    "prim::CallFunction",
    "prim::Enter",
    "prim::Exit",
    "prim::AddStatValue",
    "prim::TimePoint",
    "prim::RecordFunction",
})

# Structural ops that compute their outputs from their inputs and nothing else. Some have no
# schema torch.ops can resolve; all of them may put an input inside an output (containers).
STRUCTURAL_OPS = frozenset({
    "prim::Constant",
    "prim::ListConstruct",
    "prim::TupleConstruct",
    "prim::DictConstruct",
    "prim::ListUnpack",
    "prim::TupleUnpack",
    "prim::TupleIndex",
    "prim::If",
    "prim::Loop",
})

# Namespaces whose ops we know through their schemas. ``poros::engine`` nodes are compiled
# segments: functional by construction (see docs/internals.md). Any other namespace is a custom
# op library whose effects we cannot see, so its ops are kept and assumed to write their inputs.
_KNOWN_NAMESPACES = frozenset({"aten", "prim", "poros"})

# TorchScript scalar types that hold no storage: aliasing them is meaningless.
_IMMUTABLE_SCALARS = frozenset({
    "int", "float", "bool", "str", "complex", "number", "Scalar", "NoneType", "Device",
    "ScalarType", "Layout", "MemoryFormat", "SymInt", "SymFloat", "SymBool",
})


@dataclass(frozen=True, slots=True)
class NodeEffects:
    """``side_effects``: observable beyond the outputs; ``writes``: indices of inputs written in place."""

    side_effects: bool
    writes: tuple[int, ...]


@functools.lru_cache(maxsize=None)
def _schema(op: str, overload: str) -> torch._C.FunctionSchema | None:
    try:
        return resolve_overload(op, overload)._schema
    except UnsupportedOpError:
        return None


def schema_of(node: Node) -> torch._C.FunctionSchema | None:
    """The node's ATen/prim schema, or None when torch.ops has no such overload."""
    if node.namespace not in ("aten", "prim"):
        return None
    return _schema(node.op, node.overload)


def effects_of(node: Node) -> NodeEffects:
    if node.op in SIDE_EFFECT_OPS:
        return NodeEffects(True, ())
    if node.namespace == "poros" or node.op in STRUCTURAL_OPS:
        return NodeEffects(False, ())
    if node.namespace not in _KNOWN_NAMESPACES:
        return NodeEffects(True, tuple(range(len(node.inputs))))
    schema = schema_of(node)
    if schema is None:
        if node.op in PYTHON_BUILTINS:
            return NodeEffects(False, ())
        return NodeEffects(True, tuple(range(len(node.inputs))))
    writes = tuple(
        index
        for index, argument in zip(range(len(node.inputs)), schema.arguments)
        if argument.alias_info is not None and argument.alias_info.is_write
    )
    return NodeEffects(False, writes)


def is_seeded_random(node: Node) -> bool:
    """Whether the op draws from the random generator (its result differs run to run)."""
    if node.namespace not in ("aten", "prim"):
        return False
    try:
        overload = resolve_overload(node.op, node.overload)
    except UnsupportedOpError:
        return False
    return torch.Tag.nondeterministic_seeded in overload.tags


def may_alias(type_: IRType) -> bool:
    """Whether a value of this type can share storage with another (tensors, containers)."""
    if isinstance(type_, TensorType):
        return True
    if isinstance(type_, ScalarType):
        return type_.name not in _IMMUTABLE_SCALARS
    if isinstance(type_, ListType):
        return True
    if isinstance(type_, TupleType):
        return any(may_alias(element) for element in type_.elements)
    if isinstance(type_, OptionalType):
        return may_alias(type_.element)
    return True


_WRITTEN = 1
_EXTERNAL = 2
_RETURNED = 4


class AliasClasses:
    """May-alias classes of the values of a graph, with per-class facts.

    Built once per pass run. Values created later (new constants) are their own class with no
    facts; a pass that makes two values one (replacing a no-op's output by its input) calls
    :meth:`merge` so the facts stay true for the rest of its run.
    """

    __slots__ = ("_parent", "_flags")

    def __init__(self, graph: Graph) -> None:
        self._parent: dict[Value, Value] = {}
        self._flags: dict[Value, int] = {}
        for value in graph.inputs:
            self._flag(value, _EXTERNAL)
        for value in graph.outputs:
            self._flag(value, _RETURNED)
        for node in graph.walk():
            self._add_node(node)

    # ------------------------------------------------------------------ queries
    def is_written(self, value: Value) -> bool:
        """Some node writes this value, or a value that may alias it, in place."""
        return bool(self._flags_of(value) & _WRITTEN)

    def is_external(self, value: Value) -> bool:
        """The value may alias a graph input or a constant (memory seen beyond this call)."""
        return bool(self._flags_of(value) & _EXTERNAL)

    def is_returned(self, value: Value) -> bool:
        """The value may alias a graph output."""
        return bool(self._flags_of(value) & _RETURNED)

    def class_key(self, value: Value) -> Value | None:
        """A representative equal for the values of one class; None for values that cannot alias."""
        if not may_alias(value.type):
            return None
        return self._find(value)

    # ---------------------------------------------------------------- updating
    def merge(self, first: Value, second: Value) -> None:
        if not (may_alias(first.type) and may_alias(second.type)):
            return
        first_root, second_root = self._find(first), self._find(second)
        if first_root is second_root:
            return
        self._parent[second_root] = first_root
        self._flags[first_root] = self._flags.get(first_root, 0) | self._flags.pop(second_root, 0)

    # ----------------------------------------------------------------- building
    def _add_node(self, node: Node) -> None:
        op = node.op
        if op == "prim::Constant":
            for value in node.outputs:
                self._flag(value, _EXTERNAL)
        elif op == "prim::If":
            for block in node.blocks:
                for output, returned in zip(node.outputs, block.returns):
                    self.merge(output, returned)
        elif op == "prim::Loop":
            body = node.blocks[0]
            for index, output in enumerate(node.outputs):
                self.merge(output, node.inputs[2 + index])
                self.merge(output, body.params[1 + index])
                self.merge(output, body.returns[1 + index])
        elif op in STRUCTURAL_OPS:
            self._merge_all([*node.inputs, *node.outputs])
        else:
            self._add_annotated(node)

    def _add_annotated(self, node: Node) -> None:
        effects = effects_of(node)
        for index in effects.writes:
            self._flag(node.inputs[index], _WRITTEN)
        schema = schema_of(node)
        if schema is None:
            # Unknown or polymorphic builtin: any output may alias any input.
            self._merge_all([*node.inputs, *node.outputs])
            return
        annotated: list[tuple[Value, set[str]]] = []
        for value, argument in zip(node.inputs, schema.arguments):
            if argument.alias_info is not None:
                annotated.append((value, argument.alias_info.before_set | argument.alias_info.after_set))
        for value, result in zip(node.outputs, schema.returns):
            if result.alias_info is not None:
                annotated.append((value, result.alias_info.before_set | result.alias_info.after_set))
        for position, (value, sets) in enumerate(annotated):
            for other, other_sets in annotated[position + 1:]:
                if "*" in sets or "*" in other_sets or sets & other_sets:
                    self.merge(value, other)

    def _merge_all(self, values: Iterable[Value]) -> None:
        mutable = [value for value in values if may_alias(value.type)]
        for value in mutable[1:]:
            self.merge(mutable[0], value)

    # ------------------------------------------------------------- union-find
    def _find(self, value: Value) -> Value:
        root = self._parent.setdefault(value, value)
        while root is not self._parent[root]:
            root = self._parent[root]
        while value is not root:  # path compression
            self._parent[value], value = root, self._parent[value]
        return root

    def _flag(self, value: Value, flag: int) -> None:
        if may_alias(value.type):
            root = self._find(value)
            self._flags[root] = self._flags.get(root, 0) | flag

    def _flags_of(self, value: Value) -> int:
        if not may_alias(value.type):
            return 0
        return self._flags.get(self._find(value), 0)
