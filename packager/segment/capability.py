"""Capabilities: which nodes an engine may take, and, when it may not, why.

A :data:`Capability` maps a node to ``None`` (the engine can run it) or to a sentence saying why
not; that sentence becomes ``node.meta["fallback_reason"]`` and what ``poros-pack inspect``
shows. Capabilities are plain functions, composed with :func:`all_of`; they must not depend on
anything but the node, so the same model always gives the same segments.

:func:`structural_rules` holds what is true of every engine, whatever the backend:
control flow, engine calls and side effects stay in the glue. :func:`partition` applies it
before the backend's capability. Constants are never asked about: each segment gets its own
copies of the constants it uses.
"""

from __future__ import annotations

import functools
from typing import Callable, Iterable

import torch

from packager.errors import PorosError, UsageError
from packager.ir import Node
from packager.ir.effects import SIDE_EFFECT_OPS
from packager.ir.ops import resolve_overload

__all__ = [
    "Capability",
    "all_of",
    "deny_ops",
    "FALLBACK_OP_REASON",
    "structural_rules",
    "has_side_effects",
    "mutates_input",
    "CONTROL_FLOW_OPS",
    "EFFECT_OPS",
]

Capability = Callable[[Node], "str | None"]

CONTROL_FLOW_OPS = ("prim::If", "prim::Loop")

# Ops that exist for what they do to the world (one list, shared with lowering).
EFFECT_OPS = SIDE_EFFECT_OPS


def all_of(*capabilities: Capability) -> Capability:
    """Supported only if every capability supports the node; the first refusal's reason wins."""

    def capability(node: Node) -> str | None:
        for check in capabilities:
            reason = check(node)
            if reason is not None:
                return reason
        return None

    return capability


FALLBACK_OP_REASON = "forced to fallback by --fallback-op {op}"


def deny_ops(ops: Iterable[str], reason: str = FALLBACK_OP_REASON) -> Capability:
    """Refuse the listed ops; ``reason`` may contain ``{op}``, filled with the name as listed
    (the default is the ``--fallback-op`` sentence).

    A name without an overload (``aten::add``) matches every overload; ``aten::add.Tensor``
    matches that overload only.
    """
    names = tuple(ops)
    for name in names:
        if "::" not in name:
            raise UsageError(f"op names are schema-qualified, like 'aten::relu' or 'aten::add.Tensor'; got {name!r}")

    def capability(node: Node) -> str | None:
        for name in (node.kind, node.op):
            if name in names:
                return reason.format(op=name)
        return None

    return capability


def structural_rules(node: Node) -> str | None:
    """The rules common to every engine (see the module docstring)."""
    if node.op in CONTROL_FLOW_OPS or node.blocks:
        return f"control flow ({node.op}) runs in the glue; the nodes in its blocks are partitioned on their own"
    if node.namespace == "poros":
        return f"{node.op} is already an engine call"
    if mutates_input(node):
        return (
            f"{node.kind} writes to its input in place; in-place ops run in the glue "
            "(a lowering pass that makes them functional lets an engine take them)"
        )
    if node.op in EFFECT_OPS or not node.outputs:
        return f"{node.kind} is run for its side effects, which stay in the glue"
    return None


def has_side_effects(node: Node) -> bool:
    """Whether running ``node`` (or anything nested in it) does more than define its outputs:
    an effect op, no outputs at all, a write to an input, or a draw from torch's generator
    (moving it would change which numbers the other draws get).

    Such nodes are barriers: nothing may be moved across them, so no segment spans one.
    """
    return any(
        inner.op in EFFECT_OPS or not inner.outputs or mutates_input(inner) or _draws_random(inner.op, inner.overload)
        for inner in node.walk()
    )


def mutates_input(node: Node) -> bool:
    """Whether the op's schema marks an argument as written to (``Tensor(a!)``: ``add_``, ``out=``)."""
    return _schema_writes(node.op, node.overload)


@functools.lru_cache(maxsize=None)
def _schema_writes(op: str, overload: str) -> bool:
    namespace, name = op.split("::", 1)
    if namespace == "prim":
        return op == "prim::SetAttr"
    try:
        schema = resolve_overload(op, overload)._schema
    except PorosError:
        # Not registered in this torch: fall back on ATen's naming convention (``relu_``).
        return name.endswith("_") and not name.startswith("__")
    return any(argument.alias_info is not None and argument.alias_info.is_write for argument in schema.arguments)


@functools.lru_cache(maxsize=None)
def _draws_random(op: str, overload: str) -> bool:
    if op.startswith("prim::"):
        return False
    try:
        tags = resolve_overload(op, overload).tags
    except PorosError:
        return False
    return torch.Tag.nondeterministic_seeded in tags
