"""Outline segments: each becomes a standalone engine graph and one ``poros::engine`` node.

Rewrite, for every segment S of a block B::

    nodes(S) in B   ->   %outs = poros::engine[segment=S.id](*inputs(S))

with every use of ``outputs(S)`` outside S rewired to ``%outs``, and the engine graph
``G_S(*inputs(S)) -> outputs(S)`` made of copies of S's nodes and of the constants they use.

Invariant: running the outlined graph, with each engine call running ``G_S``, gives exactly the
results of the original graph. To keep it, each block is put back in a topological order of its
glue nodes and engine calls, the original order as far as the dependencies allow, and nothing is
moved across a node with side effects. Constants left without uses in the glue are removed.

Everything is checked before the graph is touched: a stale or impossible partition raises
:class:`PartitionError` and leaves the graph as it was.
"""

from __future__ import annotations

import heapq

from packager.errors import InternalError, PartitionError
from packager.ir import Block, Graph, Node, Value, copy_node_into, verify
from packager.segment._dataflow import CONSTANT_OP, boundary, is_constant, predecessors
from packager.segment.capability import has_side_effects, structural_rules
from packager.segment.partition import Partition, Segment

__all__ = ["outline", "ENGINE_OP"]

ENGINE_OP = "poros::engine"


def outline(graph: Graph, partition: Partition) -> dict[str, Graph]:
    """Replace each segment of ``partition`` by an engine call; returns ``{segment id: engine graph}``.

    ``partition`` must come from :func:`partition` on this graph, unchanged since; it describes
    nodes that no longer exist afterwards.
    """
    segments = partition.segments
    _check_segments(graph, segments)
    by_block: list[tuple[Block, list[Segment]]] = []
    for segment in segments:
        for block, members in by_block:
            if block is segment.block:
                members.append(segment)
                break
        else:
            by_block.append((segment.block, [segment]))
    orders = [(block, _unit_order(block, members)) for block, members in by_block]
    engines = {segment.id: _engine_graph(segment) for segment in segments}
    constants = _constants_used(segments)

    # Engine calls are appended (_reorder places them); every block is edited in one batch, as
    # removing or inserting a node costs a pass over its block.
    engine_nodes = {segment.id: _append_engine(segment) for segment in segments}
    replaced = {
        id(old): new for segment in segments for old, new in zip(segment.outputs, engine_nodes[segment.id].outputs)
    }
    for segment in segments:
        _rewire(segment, engine_nodes[segment.id], replaced)
    for block, members in by_block:
        block.remove_nodes([node for segment in members for node in segment.nodes])
    for block, units in orders:
        _reorder(block, [engine_nodes[unit.id] if isinstance(unit, Segment) else unit for unit in units])
    _remove_unused(constants)

    verify(graph)
    for engine in engines.values():
        verify(engine)
    return engines


def _check_segments(graph: Graph, segments: list[Segment]) -> None:
    """Refuse a partition that does not describe ``graph`` as it is now."""
    seen_ids: set[str] = set()
    owner: dict[int, str] = {}
    for segment in segments:
        where = f"segment {segment.id}"
        if segment.id in seen_ids:
            raise PartitionError(f"{where}: two segments have this id; partition the graph again")
        seen_ids.add(segment.id)
        if segment.block.graph is not graph:
            raise PartitionError(f"{where} belongs to another graph; partition this graph and outline that partition")
        if not segment.nodes:
            raise PartitionError(f"{where} has no nodes; partition the graph again")
        last_position = -1
        for node in segment.nodes:
            position = _position(segment.block, node)
            if position is None:
                raise PartitionError(
                    f"{where}: {node!r} is no longer in the segment's block; the partition is stale, partition again"
                )
            if id(node) in owner:
                raise PartitionError(f"{where}: {node!r} is also in segment {owner[id(node)]}")
            owner[id(node)] = segment.id
            if position <= last_position:
                raise PartitionError(f"{where}: nodes are not listed in block order; partition the graph again")
            last_position = position
            refusal = "is a constant (segments copy constants)" if node.op == CONSTANT_OP else structural_rules(node)
            if refusal is not None:
                raise PartitionError(f"{where}: {node!r} cannot be in an engine: {refusal}")
        inputs, outputs = boundary(segment.nodes)
        if not (_same_values(inputs, segment.inputs) and _same_values(outputs, segment.outputs)):
            raise PartitionError(
                f"{where}: its inputs or outputs changed since partitioning; partition the graph again"
            )
        for kind, values in (("input", inputs), ("output", outputs)):
            for value in values:
                if not value.is_tensor:
                    raise PartitionError(
                        f"{where}: {kind} %{value.name} is {value.type}, but engines take and return only tensors"
                    )


def _position(block: Block, node: Node) -> int | None:
    if node.owner is not block:
        return None
    try:
        return block.position(node)
    except InternalError:
        return None


def _same_values(left: list[Value], right: list[Value]) -> bool:
    return len(left) == len(right) and all(a is b for a, b in zip(left, right))


def _unit_order(block: Block, segments: list[Segment]) -> list[Node | Segment]:
    """A topological order of ``block``'s units (glue nodes and segments), closest to the original.

    Nodes with side effects split the block into regions that are ordered one after another;
    within a region, Kahn's algorithm always emits the ready unit that came first (a segment
    comes where its first node was), so an order that is already topological is kept as is.
    """
    segment_of = {id(node): segment for segment in segments for node in segment.nodes}
    units: list[Node | Segment] = []
    unit_index: dict[int, int] = {}
    regions: list[list[int]] = [[]]
    region_of_unit: list[int] = []
    for node in block.nodes:
        segment = segment_of.get(id(node))
        unit = node if segment is None else segment
        barrier = segment is None and has_side_effects(node)
        if barrier:
            regions.append([])
        if id(unit) in unit_index:
            if region_of_unit[unit_index[id(unit)]] != len(regions) - 1:
                raise PartitionError(
                    f"segment {segment.id} spans a node with side effects; nothing may move across it, "
                    "so partition the graph again"
                )
        else:
            unit_index[id(unit)] = len(units)
            units.append(unit)
            region_of_unit.append(len(regions) - 1)
            regions[-1].append(unit_index[id(unit)])
        if barrier:
            regions.append([])

    successors: list[list[int]] = [[] for _ in units]
    waiting_on = [0] * len(units)
    for node in block.nodes:
        here = unit_index[id(segment_of.get(id(node), node))]
        for producer in predecessors(node, block):
            there = unit_index[id(segment_of.get(id(producer), producer))]
            if there != here and region_of_unit[there] == region_of_unit[here] and here not in successors[there]:
                successors[there].append(here)
                waiting_on[here] += 1

    order: list[Node | Segment] = []
    for region in regions:
        ready = [index for index in region if waiting_on[index] == 0]
        heapq.heapify(ready)
        emitted = 0
        while ready:
            index = heapq.heappop(ready)
            order.append(units[index])
            emitted += 1
            for successor in successors[index]:
                waiting_on[successor] -= 1
                if waiting_on[successor] == 0:
                    heapq.heappush(ready, successor)
        if emitted != len(region):
            stuck = [units[index].id for index in region if isinstance(units[index], Segment) and waiting_on[index]]
            raise PartitionError(
                f"segments {', '.join(stuck)} would form a cycle through glue nodes (a segment is not convex); "
                "partition the graph again"
            )
    return order


def _engine_graph(segment: Segment) -> Graph:
    """A standalone graph computing the segment: its inputs as params, its outputs as returns."""
    engine = Graph(segment.id)
    mapping: dict[int, Value] = {}
    for value in segment.inputs:
        param = engine.add_input(value.type, value.name)
        param.meta = dict(value.meta)
        mapping[id(value)] = param
    for node in segment.nodes:
        for value in node.inputs:
            if id(value) not in mapping and is_constant(value):
                copy_node_into(value.producer, engine.block, mapping)
        copy_node_into(node, engine.block, mapping)
    engine.block.set_returns([mapping[id(value)] for value in segment.outputs])
    # copy_node_into keeps the names but not the graph's fresh-name counter; cloning re-derives it.
    engine = engine.clone()
    engine.meta["segment_id"] = segment.id
    return engine


def _constants_used(segments: list[Segment]) -> list[Node]:
    constants: list[Node] = []
    seen: set[int] = set()
    for segment in segments:
        for node in segment.nodes:
            for value in node.inputs:
                if is_constant(value) and id(value.producer) not in seen:
                    seen.add(id(value.producer))
                    constants.append(value.producer)
    return constants


def _append_engine(segment: Segment) -> Node:
    """The engine call, at the end of the segment's block for now, with one output per
    segment output (same name and type)."""
    engine = segment.block.append_node(ENGINE_OP, attrs={"segment": segment.id})
    for value in segment.outputs:
        engine.add_output(value.type, value.name).meta = dict(value.meta)
    return engine


def _rewire(segment: Segment, engine: Node, replaced: dict[int, Value]) -> None:
    """Feed the engine call the segment's inputs (engine outputs where another segment made
    them: ``replaced`` maps the id of every segment output to its engine output) and move every
    use of the segment's outputs outside the segment onto the engine's."""
    engine.set_inputs([replaced.get(id(value), value) for value in segment.inputs])
    members = {id(node) for node in segment.nodes}
    for value, replacement in zip(segment.outputs, engine.outputs):
        for usage in value.uses:
            if id(usage.node) not in members:
                usage.node.replace_input_with(usage.index, replacement)


def _remove_unused(constants: list[Node]) -> None:
    """Remove the constants that no longer have a use, one batch per block."""
    by_block: list[tuple[Block, list[Node]]] = []
    for constant in constants:
        if any(value.uses for value in constant.outputs):
            continue
        for block, unused in by_block:
            if block is constant.owner:
                unused.append(constant)
                break
        else:
            by_block.append((constant.owner, [constant]))
    for block, unused in by_block:
        block.remove_nodes(unused)


def _reorder(block: Block, target: list[Node]) -> None:
    if len(target) != len(block.nodes):
        raise InternalError(f"reordering a block of {len(block.nodes)} nodes into {len(target)} places")
    for position, node in enumerate(target):
        if block.nodes[position] is not node:
            block.move_node(node, position)
