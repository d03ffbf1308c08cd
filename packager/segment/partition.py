"""Partition a graph into engine segments; everything else stays in the TorchScript glue.

Invariants of the result, for every block (nested ``prim::If`` / ``prim::Loop`` bodies too):

* every non-constant node is in exactly one segment or in the glue; constants are in none
  (each segment gets its own copies when it is outlined);
* a segment lies in one block and is *convex*: no path leaves it and comes back through a node
  outside it, so replacing it by one engine call creates no cycle;
* no segment spans a node with side effects (see :func:`has_side_effects`), so outlining moves
  nodes only across pure ones;
* every segment input and output is a tensor (engines take and return tensors only);
* no memory the model writes in place is shared across a segment boundary (see below);
* the same graph gives the same segments: nothing depends on object ids or set order.

Algorithm, per block: walk the nodes in order. A supported node joins the segment of one of
its producers if that keeps the segment convex, else the latest open segment it does not depend
on, else starts a new one (open = not behind a side-effecting node). Then every node that would
pass a non-tensor across a segment boundary, or carry written memory across it, is refused and
the block is partitioned again, until nothing changes. Last, segments with fewer counted nodes
than ``min_segment_size``, and segments whose results nothing uses, go back to the glue.

Views across a boundary. An engine's outputs are only guaranteed to hold the right values, not
to share memory the way the ops inside it would in eager: an fp16/bf16 engine returns copies
(outputs are cast back), TensorRT always does, and the runtime hands AOTInductor a contiguous
copy of a strided input. Eager TorchScript, though, lets a write through one alias reach the
others (``v = h.view(-1); v.add_(1)`` changes ``h``), and in-place ops on views stay in the
glue. So the rule, from the ops' schemas (``Tensor(a)`` = shares memory with an argument):
a segment node whose tensor output leaves the segment and may share memory with a value
defined outside the segment (an engine input or a constant) or with another output of the
segment is refused, when the model writes that memory in place anywhere
(:meth:`AliasClasses.is_written`, over the whole graph). The view is then taken in the glue
and aliases exactly as in eager; the engine keeps its fresh results. Memory nothing writes
may be shared or not, nobody can tell: those views stay in engines and cost nothing. Outputs
are never cloned at run time (``poros_runtime.ops``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from packager.errors import InternalError, UsageError
from packager.ir import Block, Graph, Node, Value
from packager.ir.effects import STRUCTURAL_OPS, AliasClasses, may_alias, schema_of
from packager.segment._dataflow import CONSTANT_OP, boundary, is_constant, predecessors
from packager.segment.capability import Capability, all_of, deny_ops, has_side_effects, structural_rules

__all__ = ["Segment", "Partition", "partition", "PLUMBING_OPS"]

# Ops that only move values around; they do not count toward a segment's size.
PLUMBING_OPS = (
    "prim::ListConstruct",
    "prim::ListUnpack",
    "prim::TupleConstruct",
    "prim::TupleUnpack",
    "prim::TupleIndex",
)


@dataclass(eq=False)
class Segment:
    """Nodes of one block that become one engine.

    ``inputs`` are ordered by first use, ``outputs`` by definition; both are tensors.
    """

    id: str
    block: Block
    nodes: list[Node]
    inputs: list[Value]
    outputs: list[Value]

    @property
    def size(self) -> int:
        """The nodes that count toward ``--min-segment-size`` (list/tuple plumbing does not)."""
        return _counted_size(self.nodes)


@dataclass(eq=False)
class Partition:
    """Segments in program order, and why each glue node is not in one."""

    segments: list[Segment]
    fallback_reasons: dict[Node, str] = field(default_factory=dict)


def partition(
    graph: Graph,
    capability: Capability,
    *,
    min_segment_size: int = 1,
    fallback_ops: tuple[str, ...] | list[str] = (),
) -> Partition:
    """Propose engine segments for ``graph`` (see the module docstring).

    ``capability`` is the backend's; :func:`structural_rules` and ``fallback_ops`` (the
    ``--fallback-op`` names) are checked before it. Writes ``node.meta["fallback_reason"]`` on
    every glue node and removes it from every segment node.
    """
    if min_segment_size < 1:
        raise UsageError(f"--min-segment-size must be at least 1, got {min_segment_size}")
    check = all_of(
        structural_rules,
        deny_ops(fallback_ops),
        capability,
    )
    reasons: dict[int, str | None] = {}
    groups: list[tuple[Block, list[Node]]] = []
    _partition_block(graph.block, check, min_segment_size, reasons, groups, AliasClasses(graph))

    order = {id(node): index for index, node in enumerate(graph.walk())}
    groups.sort(key=lambda group: order[id(group[1][0])])
    segments = []
    for index, (block, nodes) in enumerate(groups):
        inputs, outputs = boundary(nodes)
        segments.append(Segment(f"seg{index}", block, nodes, inputs, outputs))

    fallback_reasons: dict[Node, str] = {}
    for node in graph.walk():
        reason = reasons.get(id(node))
        if reason is None:
            node.meta.pop("fallback_reason", None)
        else:
            node.meta["fallback_reason"] = reason
            fallback_reasons[node] = reason
    return Partition(segments, fallback_reasons)


def _partition_block(
    block: Block,
    check: Capability,
    min_segment_size: int,
    reasons: dict[int, str | None],
    groups: list[tuple[Block, list[Node]]],
    aliases: AliasClasses,
) -> None:
    """Fill ``reasons`` (id of node -> reason or None) and ``groups`` for ``block`` and the
    blocks nested in it; ``aliases`` are the whole graph's."""
    for node in block.nodes:
        if node.op == CONSTANT_OP:
            continue
        reason = check(node)
        if reason is not None and not isinstance(reason, str):
            raise InternalError(
                f"a capability returned {reason!r} for {node!r}; it must return None or a reason string"
            )
        reasons[id(node)] = reason
        for inner in node.blocks:
            _partition_block(inner, check, min_segment_size, reasons, groups, aliases)

    while True:
        proposed = _propose(block, reasons)
        refused = [
            (node, reason)
            for nodes in proposed
            for node, reason in (_boundary_violations(nodes) or _shared_memory_violations(nodes, aliases))
        ]
        if not refused:
            break
        for node, reason in refused:
            reasons[id(node)] = reason

    for nodes in proposed:
        size = _counted_size(nodes)
        if size < min_segment_size:
            noun = "node" if size == 1 else "nodes"
            reason = f"segment of {size} {noun} is smaller than --min-segment-size {min_segment_size}"
            _send_to_glue(nodes, reasons, reason)
        elif not boundary(nodes)[1]:
            _send_to_glue(nodes, reasons, "its segment computes nothing that is used (dead code)")
        else:
            groups.append((block, nodes))


def _propose(block: Block, reasons: dict[int, str | None]) -> list[list[Node]]:
    """Greedy convex segments of the supported nodes of ``block``, in block order.

    ``upstream[id(node)]`` is a bit mask of the segments holding ``node`` or one of its
    ancestors. A node may join segment ``s`` iff no producer outside ``s`` has ``s`` upstream:
    otherwise a path would leave ``s`` and come back. Nodes are visited in topological order,
    so a mask never changes once computed.
    """
    segments: list[list[Node]] = []
    is_open: list[bool] = []
    segment_of: dict[int, int] = {}
    upstream: dict[int, int] = {}
    for node in block.nodes:
        if node.op == CONSTANT_OP:
            continue
        producers = predecessors(node, block)
        mask = 0
        for producer in producers:
            mask |= upstream.get(id(producer), 0)
        if reasons[id(node)] is not None:
            upstream[id(node)] = mask
            if has_side_effects(node):
                is_open = [False] * len(is_open)
            continue
        target = _choose_segment(producers, mask, segment_of, upstream, is_open)
        if target is None:
            target = len(segments)
            segments.append([])
            is_open.append(True)
        segments[target].append(node)
        segment_of[id(node)] = target
        upstream[id(node)] = mask | (1 << target)
    return segments


def _choose_segment(
    producers: list[Node],
    mask: int,
    segment_of: dict[int, int],
    upstream: dict[int, int],
    is_open: list[bool],
) -> int | None:
    # A producer's segment first: the edge then stays inside the engine.
    for producer in producers:
        candidate = segment_of.get(id(producer))
        if candidate is None or not is_open[candidate]:
            continue
        reached = 0
        for other in producers:
            if segment_of.get(id(other)) != candidate:
                reached |= upstream.get(id(other), 0)
        if not reached >> candidate & 1:
            return candidate
    # Else the latest open segment the node does not depend on at all.
    for candidate in range(len(is_open) - 1, -1, -1):
        if is_open[candidate] and not mask >> candidate & 1:
            return candidate
    return None


def _boundary_violations(nodes: list[Node]) -> list[tuple[Node, str]]:
    """Segment nodes that pass a non-tensor across the boundary (constants are copied, so exempt)."""
    members = {id(node) for node in nodes}
    refused: list[tuple[Node, str]] = []
    for node in nodes:
        reason = _passes_non_tensor(node, members)
        if reason is not None:
            refused.append((node, reason))
    return refused


def _passes_non_tensor(node: Node, members: set[int]) -> str | None:
    for value in node.inputs:
        from_outside = value.producer is None or id(value.producer) not in members
        if from_outside and not value.is_tensor and not is_constant(value):
            return f"consumes {value.type} %{value.name} produced outside the engine (engines take only tensors)"
    for value in node.outputs:
        if not value.is_tensor and any(id(usage.node) not in members for usage in value.uses):
            return f"produces {value.type} %{value.name} consumed outside the engine (engines return only tensors)"
    return None


def _shared_memory_violations(nodes: list[Node], aliases: AliasClasses) -> list[tuple[Node, str]]:
    """Segment nodes whose output would carry written memory across the boundary: the output
    leaves the segment, the node makes it share memory with one of its inputs, that memory
    reaches a value defined outside the segment or another output, and the model writes it in
    place (see the module docstring)."""
    _, outputs = boundary(nodes)
    written = [output for output in outputs if aliases.is_written(output)]
    if not written:
        return []
    members = {id(node) for node in nodes}
    # id(value) -> the values whose memory it may be, for values made by a memory-sharing node
    # (views, containers); any other value is its own, fresh memory.
    memory: dict[int, dict[int, Value]] = {}

    def roots(value: Value) -> dict[int, Value]:
        return memory.get(id(value)) or {id(value): value}

    for node in nodes:
        for output, shared in _shares_memory_with(node):
            memory[id(output)] = {key: root for value in shared for key, root in roots(value).items()}
    holders: dict[int, list[Value]] = {}
    for output in outputs:
        for key in roots(output):
            holders.setdefault(key, []).append(output)

    refused: list[tuple[Node, str]] = []
    for output in written:
        if id(output) not in memory or any(node is output.producer for node, _ in refused):
            continue
        partner = None
        for key, root in memory[id(output)].items():
            if root.producer is None or id(root.producer) not in members:
                kind = "constant" if is_constant(root) else "engine input"
                partner = f"{kind} %{root.name}"
                break
            others = [holder for holder in holders[key] if holder is not output]
            if others:
                partner = f"engine output %{others[0].name}"
                break
        if partner is not None:
            refused.append((output.producer, (
                f"its output %{output.name} would share memory with {partner} across the engine "
                "boundary, and the model writes that memory in place: it runs in the glue so the "
                "write reaches every alias as in eager (an engine may return a copy)"
            )))
    return refused


def _shares_memory_with(node: Node) -> list[tuple[Value, list[Value]]]:
    """Each output of ``node`` that may share memory with some of its inputs, with those inputs:
    from the schema's alias annotations; containers and ops without a schema may share any."""
    inputs = [value for value in node.inputs if may_alias(value.type)]
    schema = None if node.op in STRUCTURAL_OPS else schema_of(node)
    if schema is None:
        return [(output, inputs) for output in node.outputs if may_alias(output.type) and inputs]
    shared: list[tuple[Value, list[Value]]] = []
    for output, returned in zip(node.outputs, schema.returns):
        if returned.alias_info is None or not may_alias(output.type):
            continue
        sets = returned.alias_info.before_set | returned.alias_info.after_set
        sources = [
            value
            for value, argument in zip(node.inputs, schema.arguments)
            if argument.alias_info is not None and may_alias(value.type)
            and _overlap(sets, argument.alias_info.before_set | argument.alias_info.after_set)
        ]
        if sources:
            shared.append((output, sources))
    return shared


def _overlap(first: set[str], second: set[str]) -> bool:
    return "*" in first or "*" in second or bool(first & second)


def _send_to_glue(nodes: list[Node], reasons: dict[int, str | None], reason: str) -> None:
    for node in nodes:
        reasons[id(node)] = reason


def _counted_size(nodes: list[Node]) -> int:
    return sum(1 for node in nodes if node.op not in PLUMBING_OPS)
