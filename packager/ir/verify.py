"""Structural checks of an IR graph, run between passes (like ``torch.fx.Graph.lint``).

Checked: every node is owned by the block that lists it; every input is defined before its use
in the same block or in an enclosing one (SSA dominance for structured control flow); use lists
match the inputs exactly; ``prim::If`` and ``prim::Loop`` have the block structure their
semantics need; every value has a type.
"""

from __future__ import annotations

from packager.errors import InternalError
from packager.ir.graph import Block, Graph, Node, Usage, Value

__all__ = ["verify", "VerificationError"]


class VerificationError(InternalError):
    """The IR is malformed: a pass (or a front end) broke an invariant."""


def verify(graph: Graph) -> None:
    """Raise :class:`VerificationError` naming the first broken invariant."""
    _verify_block(graph.block, visible=set(), graph=graph)


def _fail(node: Node | None, message: str) -> None:
    where = f" at {node!r}" if node is not None else ""
    raise VerificationError(f"IR verification failed{where}: {message}")


def _check_value_uses(value: Value) -> None:
    for usage in value.uses:
        node, index = usage
        if index >= len(node.inputs) or node.inputs[index] is not value:
            _fail(node, f"%{value.name} records a use at input {index} that is not there (stale use list)")


def _check_inputs(node: Node, visible: set[int]) -> None:
    for index, value in enumerate(node.inputs):
        if id(value) not in visible:
            _fail(node, f"input {index} (%{value.name}) is not defined before this use in scope")
        if Usage(node, index) not in value.uses:
            _fail(node, f"input {index} (%{value.name}) does not record this use")


def _verify_block(block: Block, visible: set[int], graph: Graph) -> None:
    if block.graph is not graph:
        _fail(block.owner_node, "a block belongs to another graph")
    scope = set(visible)
    for param in block.params:
        if param.param_of is not block:
            _fail(block.owner_node, f"block param %{param.name} does not point back to its block")
        if param.type is None:
            _fail(block.owner_node, f"block param %{param.name} has no type")
        _check_value_uses(param)
        scope.add(id(param))
    seen_nodes: set[int] = set()
    for node in block.nodes:
        if id(node) in seen_nodes:
            _fail(node, "node listed twice in its block")
        seen_nodes.add(id(node))
        if node.owner is not block:
            _fail(node, "node's owner is not the block that lists it")
        _check_inputs(node, scope)
        _check_structure(node)
        for inner in node.blocks:
            if inner.owner_node is not node:
                _fail(node, "nested block does not point back to its node")
            _verify_block(inner, scope, graph)
        for index, value in enumerate(node.outputs):
            if value.producer is not node or value.index != index:
                _fail(node, f"output {index} (%{value.name}) does not point back to its producer")
            if value.type is None:
                _fail(node, f"output %{value.name} has no type")
            _check_value_uses(value)
            scope.add(id(value))
    _check_inputs(block.return_node, scope)


def _check_structure(node: Node) -> None:
    if node.op == "prim::If":
        if len(node.inputs) != 1 or len(node.blocks) != 2:
            _fail(node, "prim::If needs one condition input and two blocks")
        for block in node.blocks:
            if block.params:
                _fail(node, "prim::If blocks take no parameters")
            if len(block.returns) != len(node.outputs):
                _fail(node, f"prim::If block returns {len(block.returns)} values for {len(node.outputs)} outputs")
    elif node.op == "prim::Loop":
        carried = len(node.inputs) - 2
        if carried < 0 or len(node.blocks) != 1:
            _fail(node, "prim::Loop needs (max_trip_count, condition, *carried) and one block")
        body = node.blocks[0]
        if len(body.params) != carried + 1 or len(body.returns) != carried + 1 or len(node.outputs) != carried:
            _fail(node, "prim::Loop body must take (iteration, *carried) and return (condition, *carried)")
    elif node.blocks:
        _fail(node, f"{node.op} may not have nested blocks")
