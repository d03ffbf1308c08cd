"""Dead-code elimination: remove every node whose work nobody can observe.

Rewrite: mark what is live, remove the rest. Live are the graph outputs; nodes with side
effects (``prim::RaiseException``, ``aten::warn``, ``prim::Print``, unknown custom ops...); every
node that computes an input of a live node; the ``prim::If`` / ``prim::Loop`` around a live node;
and every in-place write whose target may alias a graph input, a constant, or any value a live
node reads (aliasing from the schemas, see ``packager/ir/effects.py``). Nodes not marked are removed, in
nested blocks too. Outputs of ``prim::If`` that are not live are removed with their branch
returns; loop-carried values of ``prim::Loop`` that are not live (unused after the loop and not
read by a live node inside it) are removed with their input, body parameter and body return.

Invariant: for every input the graph computes the same outputs, raises the same exceptions,
emits the same warnings and leaves its inputs and constants in the same state. Random ops whose
results are unused are removed (later draws may differ; inference does not depend on the
generator's position).
"""

from __future__ import annotations

from packager.ir.graph import Block, Graph, Node, Value
from packager.ir.effects import AliasClasses, effects_of
from packager.lowering.pass_manager import Pass

__all__ = ["DeadCodeElimination"]


class DeadCodeElimination(Pass):
    name = "dead_code_elimination"

    def run(self, graph: Graph) -> bool:
        liveness = _Liveness(graph)
        detached = _detach_dead_slots(graph.block, liveness)
        removed = _sweep(graph.block, liveness)
        for node, dead in detached:
            _remove_slots(node, dead)
        return removed or bool(detached)


class _Liveness:
    """Which nodes, values and control-flow slots are live (a worklist fixed point)."""

    def __init__(self, graph: Graph) -> None:
        self.nodes: set[Node] = set()
        self.values: set[Value] = set()
        self.slots: set[tuple[Node, int]] = set()  # (If/Loop node, output index)
        self._aliases = AliasClasses(graph)
        self._live_classes: set[Value] = set()
        self._writers_by_class: dict[Value, list[Node]] = {}
        self._stack: list[Node | Value | tuple[Node, int]] = []

        for value in graph.outputs:
            self._want_value(value)
        for node in graph.walk():
            effects = effects_of(node)
            if effects.side_effects:
                self._want_node(node)
            for index in effects.writes:
                key = self._aliases.class_key(node.inputs[index])
                if key is None:
                    continue
                self._writers_by_class.setdefault(key, []).append(node)
                if self._aliases.is_external(node.inputs[index]):
                    self._want_node(node)
        self._drain()

    def node_is_live(self, node: Node) -> bool:
        return node in self.nodes

    def slot_is_live(self, node: Node, index: int) -> bool:
        return (node, index) in self.slots

    # ------------------------------------------------------------ worklist
    def _want_node(self, node: Node) -> None:
        if node not in self.nodes:
            self.nodes.add(node)
            self._stack.append(node)

    def _want_value(self, value: Value) -> None:
        if value not in self.values:
            self.values.add(value)
            self._stack.append(value)

    def _want_slot(self, node: Node, index: int) -> None:
        if (node, index) not in self.slots:
            self.slots.add((node, index))
            self._stack.append((node, index))

    def _drain(self) -> None:
        while self._stack:
            item = self._stack.pop()
            if isinstance(item, Node):
                self._visit_node(item)
            elif isinstance(item, Value):
                self._visit_value(item)
            else:
                self._visit_slot(*item)

    def _visit_node(self, node: Node) -> None:
        if node.op == "prim::If":
            self._want_value(node.inputs[0])
        elif node.op == "prim::Loop":
            self._want_value(node.inputs[0])
            self._want_value(node.inputs[1])
            self._want_value(node.blocks[0].returns[0])
        else:
            for value in node.inputs:
                self._want_value(value)
        enclosing = node.owner.owner_node
        if enclosing is not None:
            self._want_node(enclosing)

    def _visit_value(self, value: Value) -> None:
        key = self._aliases.class_key(value)
        if key is not None and key not in self._live_classes:
            self._live_classes.add(key)
            for writer in self._writers_by_class.get(key, ()):
                self._want_node(writer)
        producer = value.producer
        if producer is not None:
            self._want_node(producer)
            if producer.op in ("prim::If", "prim::Loop"):
                self._want_slot(producer, value.index)
            return
        block = value.param_of
        loop = block.owner_node if block is not None else None
        if loop is not None and loop.op == "prim::Loop" and value.index >= 1:
            self._want_slot(loop, value.index - 1)

    def _visit_slot(self, node: Node, index: int) -> None:
        self._want_node(node)
        if node.op == "prim::If":
            for block in node.blocks:
                self._want_value(block.returns[index])
        else:
            self._want_value(node.inputs[2 + index])
            self._want_value(node.blocks[0].returns[1 + index])


def _detach_dead_slots(block: Block, liveness: _Liveness) -> list[tuple[Node, list[int]]]:
    """Detach dead If outputs / loop-carried values from the block returns and loop inputs that
    feed them, so the sweep can remove the nodes computing them. Returns (node, dead indices)
    for :func:`_remove_slots` to finish once the users are gone."""
    detached: list[tuple[Node, list[int]]] = []
    for node in block.nodes:
        if not liveness.node_is_live(node):
            continue
        for inner in node.blocks:
            detached.extend(_detach_dead_slots(inner, liveness))
        if node.op not in ("prim::If", "prim::Loop"):
            continue
        dead = [index for index in range(len(node.outputs)) if not liveness.slot_is_live(node, index)]
        if not dead:
            continue
        if node.op == "prim::If":
            for inner in node.blocks:
                inner.set_returns([v for i, v in enumerate(inner.returns) if i not in dead])
        else:
            body = node.blocks[0]
            body.set_returns([v for i, v in enumerate(body.returns) if i - 1 not in dead])
            node.set_inputs([v for i, v in enumerate(node.inputs) if i - 2 not in dead])
        detached.append((node, dead))
    return detached


def _sweep(block: Block, liveness: _Liveness) -> bool:
    """Remove dead nodes, innermost blocks first (an inner dead node may use an outer one)."""
    changed = False
    for node in block.nodes:
        if liveness.node_is_live(node):
            for inner in node.blocks:
                changed = _sweep(inner, liveness) or changed
    dead = [node for node in block.nodes if not liveness.node_is_live(node)]
    if dead:
        block.remove_nodes(dead)
        changed = True
    return changed


def _remove_slots(node: Node, dead: list[int]) -> None:
    for index in reversed(dead):
        if node.op == "prim::Loop":
            node.blocks[0].remove_param(1 + index)
        node.remove_output(index)
