"""Dataflow seen from one block: which nodes of the block feed a node, and what crosses the
boundary of a set of nodes.

A node with nested blocks (``prim::If`` / ``prim::Loop``) counts as using every value its blocks
use, their returns included, so an edge into a body is an edge into the control-flow node.
"""

from __future__ import annotations

from typing import Iterator

from packager.ir import Block, Node, Value

__all__ = ["CONSTANT_OP", "is_constant", "values_used_by", "predecessors", "boundary"]

CONSTANT_OP = "prim::Constant"


def is_constant(value: Value) -> bool:
    """Whether ``value`` is the output of a ``prim::Constant`` (copied, never passed across)."""
    return value.producer is not None and value.producer.op == CONSTANT_OP


def values_used_by(node: Node) -> Iterator[Value]:
    """The inputs of ``node``, then of every node and block return nested in it, in order."""
    yield from node.inputs
    for block in node.blocks:
        for inner in block.nodes:
            yield from values_used_by(inner)
        yield from block.returns


def predecessors(node: Node, block: Block) -> list[Node]:
    """The nodes of ``block`` that define a value ``node`` uses, each once, in first-use order.

    Values defined outside ``block`` (its params, enclosing blocks) or inside ``node``'s own
    blocks are not edges within ``block``.
    """
    found: list[Node] = []
    seen: set[int] = set()
    for value in values_used_by(node):
        producer = value.producer
        if producer is not None and producer.owner is block and id(producer) not in seen:
            seen.add(id(producer))
            found.append(producer)
    return found


def boundary(nodes: list[Node]) -> tuple[list[Value], list[Value]]:
    """``(inputs, outputs)`` of a set of nodes of one block, constants excluded from the inputs.

    Inputs are the values the nodes use but do not define, in order of first use; outputs are
    the values they define that something else uses (another node, a nested block, a block
    return), in definition order.
    """
    members = {id(node) for node in nodes}
    inputs: list[Value] = []
    seen_inputs: set[int] = set()
    outputs: list[Value] = []
    for node in nodes:
        for value in node.inputs:
            defined_inside = value.producer is not None and id(value.producer) in members
            if defined_inside or is_constant(value) or id(value) in seen_inputs:
                continue
            seen_inputs.add(id(value))
            inputs.append(value)
        for value in node.outputs:
            if any(id(usage.node) not in members for usage in value.uses):
                outputs.append(value)
    return inputs, outputs
