"""The IR core: Graph / Block / Node / Value, a small typed SSA graph in the ATen vocabulary.

Ownership rules (checked by :func:`packager.ir.verify.verify`):

* a :class:`Graph` owns one top :class:`Block`; a :class:`Block` owns its params, its nodes (in
  program order) and a ``prim::Return`` node whose inputs are the block's returns;
* a :class:`Node` owns its outputs and its nested blocks (``prim::If`` / ``prim::Loop``);
* a :class:`Value` records every place it is used as a :class:`Usage`; only :class:`Node`
  edits that record (``node.replace_input_with``), so the use lists never go stale.

Nodes are created through their block (``block.append_node``) so that every value gets a name
unique within its graph.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, NamedTuple, Sequence

from packager.errors import InternalError
from packager.ir.types import IRType

__all__ = ["Usage", "Value", "Node", "Block", "Graph", "RETURN_OP"]

RETURN_OP = "prim::Return"


class Usage(NamedTuple):
    """``node.inputs[index]`` is the value."""

    node: "Node"
    index: int


class Value:
    """An SSA value: a node output or a block parameter."""

    __slots__ = ("name", "type", "producer", "index", "param_of", "_uses", "meta")

    def __init__(self, name: str, type: IRType) -> None:
        self.name = name
        self.type = type
        self.producer: Node | None = None
        self.index = 0
        self.param_of: Block | None = None
        self._uses: list[Usage] = []
        self.meta: dict[str, Any] = {}

    @property
    def uses(self) -> tuple[Usage, ...]:
        return tuple(self._uses)

    @property
    def is_tensor(self) -> bool:
        return self.type.is_tensor

    @property
    def owner_block(self) -> "Block":
        """The block in which this value is defined."""
        if self.producer is not None:
            return self.producer.owner
        assert self.param_of is not None
        return self.param_of

    def replace_all_uses_with(self, other: "Value") -> None:
        if other is self:
            return
        for usage in list(self._uses):
            usage.node.replace_input_with(usage.index, other)

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"


class Node:
    """One operation. ``op`` is schema-qualified (``aten::conv2d``); ``overload`` names the
    schema overload (``"Tensor"`` for ``aten::add.Tensor``; ``""`` for the default one)."""

    __slots__ = ("op", "overload", "_inputs", "outputs", "attrs", "blocks", "owner", "meta")

    def __init__(
        self,
        owner: "Block",
        op: str,
        inputs: Sequence[Value],
        output_types: Sequence[IRType],
        overload: str = "",
        attrs: dict[str, Any] | None = None,
    ) -> None:
        if "::" not in op:
            raise InternalError(f"IR op names are schema-qualified (like 'aten::add'), got {op!r}")
        self.op = op
        self.overload = overload
        self.owner = owner
        self.attrs: dict[str, Any] = dict(attrs or {})
        self.meta: dict[str, Any] = {}
        self.blocks: list[Block] = []
        self._inputs: list[Value] = []
        for value in inputs:
            self._append_input(value)
        self.outputs: list[Value] = []
        for type_ in output_types:
            self.add_output(type_)

    # ----------------------------------------------------------------- inputs
    @property
    def inputs(self) -> tuple[Value, ...]:
        return tuple(self._inputs)

    def _append_input(self, value: Value) -> None:
        if not isinstance(value, Value):
            raise InternalError(f"{self.op}: input must be a Value, got {type(value).__name__}")
        value._uses.append(Usage(self, len(self._inputs)))
        self._inputs.append(value)

    def add_input(self, value: Value) -> None:
        self._append_input(value)

    def replace_input_with(self, index: int, value: Value) -> None:
        old = self._inputs[index]
        old._uses.remove(Usage(self, index))
        value._uses.append(Usage(self, index))
        self._inputs[index] = value

    def set_inputs(self, values: Sequence[Value]) -> None:
        self.drop_inputs()
        for value in values:
            self._append_input(value)

    def drop_inputs(self) -> None:
        for index, value in enumerate(self._inputs):
            value._uses.remove(Usage(self, index))
        self._inputs = []

    # ---------------------------------------------------------------- outputs
    def add_output(self, type_: IRType, name: str | None = None) -> Value:
        value = _append_value(self.outputs, type_, name, self.owner.graph)
        value.producer = self
        return value

    def remove_output(self, index: int) -> None:
        if self.outputs[index].uses:
            raise InternalError(f"{self}: cannot remove output {index}, it still has uses")
        _remove_value(self.outputs, index)

    @property
    def output(self) -> Value:
        if len(self.outputs) != 1:
            raise InternalError(f"{self.op} has {len(self.outputs)} outputs, expected exactly 1")
        return self.outputs[0]

    # ----------------------------------------------------------------- blocks
    def add_block(self) -> "Block":
        block = Block(self.owner.graph, owner_node=self)
        self.blocks.append(block)
        return block

    # ------------------------------------------------------------------- misc
    @property
    def kind(self) -> str:
        """``op`` with its overload, e.g. ``aten::add.Tensor``."""
        return f"{self.op}.{self.overload}" if self.overload else self.op

    @property
    def namespace(self) -> str:
        return self.op.split("::", 1)[0]

    @property
    def graph(self) -> "Graph":
        return self.owner.graph

    def walk(self) -> Iterator["Node"]:
        """This node, then every node nested in its blocks (pre-order)."""
        yield self
        for block in self.blocks:
            yield from block.walk()

    def is_before(self, other: "Node") -> bool:
        """Whether ``self`` comes before ``other`` in the same block."""
        if self.owner is not other.owner:
            raise InternalError("is_before compares nodes of one block")
        return self.owner.position(self) < self.owner.position(other)

    def __repr__(self) -> str:
        outs = ", ".join(f"%{v.name}" for v in self.outputs)
        ins = ", ".join(f"%{v.name}" for v in self._inputs)
        return f"{outs} = {self.kind}({ins})"


class Block:
    """An ordered list of nodes with parameters and returns."""

    __slots__ = ("graph", "owner_node", "params", "nodes", "return_node", "_positions")

    def __init__(self, graph: "Graph", owner_node: Node | None = None) -> None:
        self.graph = graph
        self.owner_node = owner_node
        self.params: list[Value] = []
        self.nodes: list[Node] = []
        self.return_node = Node(self, RETURN_OP, (), ())
        self._positions: dict[int, int] | None = None

    # ------------------------------------------------------------ parameters
    def add_param(self, type_: IRType, name: str | None = None) -> Value:
        value = _append_value(self.params, type_, name, self.graph)
        value.param_of = self
        return value

    def remove_param(self, index: int) -> None:
        if self.params[index].uses:
            raise InternalError(f"block parameter %{self.params[index].name} still has uses")
        _remove_value(self.params, index)

    # --------------------------------------------------------------- returns
    @property
    def returns(self) -> tuple[Value, ...]:
        return self.return_node.inputs

    def set_returns(self, values: Sequence[Value]) -> None:
        self.return_node.set_inputs(values)

    def add_return(self, value: Value) -> None:
        self.return_node.add_input(value)

    # ----------------------------------------------------------------- nodes
    def _make(self, op, inputs, output_types, overload, attrs) -> Node:
        return Node(self, op, inputs, output_types, overload=overload, attrs=attrs)

    def append_node(
        self,
        op: str,
        inputs: Sequence[Value] = (),
        output_types: Sequence[IRType] = (),
        overload: str = "",
        attrs: dict[str, Any] | None = None,
    ) -> Node:
        node = self._make(op, inputs, output_types, overload, attrs)
        self.nodes.append(node)
        self._positions = None
        return node

    def insert_node(
        self,
        position: int,
        op: str,
        inputs: Sequence[Value] = (),
        output_types: Sequence[IRType] = (),
        overload: str = "",
        attrs: dict[str, Any] | None = None,
    ) -> Node:
        node = self._make(op, inputs, output_types, overload, attrs)
        self.nodes.insert(position, node)
        self._positions = None
        return node

    def insert_node_before(self, anchor: Node, op: str, inputs=(), output_types=(), overload="", attrs=None) -> Node:
        return self.insert_node(self.position(anchor), op, inputs, output_types, overload, attrs)

    def position(self, node: Node) -> int:
        if self._positions is None:
            self._positions = {id(n): i for i, n in enumerate(self.nodes)}
        try:
            return self._positions[id(node)]
        except KeyError:
            raise InternalError(f"node {node!r} is not in this block") from None

    def remove_node(self, node: Node) -> None:
        """Remove an unused node (its outputs must have no uses)."""
        self.remove_nodes([node])

    def remove_nodes(self, nodes: Iterable[Node]) -> None:
        """Remove several nodes at once; none of their outputs may be used by a node that stays."""
        doomed = {id(n): n for n in nodes}
        for node in doomed.values():
            if node.owner is not self:
                raise InternalError(f"{node!r} is not in this block")
            for value in node.outputs:
                for usage in value.uses:
                    user = _outermost_in(usage.node, self)
                    if user is None or id(user) not in doomed:
                        raise InternalError(
                            f"cannot remove {node!r}: %{value.name} is still used by {usage.node!r}"
                        )
        for node in doomed.values():
            for inner in node.walk():
                inner.drop_inputs()
                for block in inner.blocks:
                    block.return_node.drop_inputs()
        self.nodes = [n for n in self.nodes if id(n) not in doomed]
        self._positions = None

    def move_node(self, node: Node, position: int) -> None:
        """Move ``node`` (already in this block) to ``position`` in the list without it."""
        self.nodes.remove(node)
        self.nodes.insert(position, node)
        self._positions = None

    def walk(self) -> Iterator[Node]:
        """Every node in this block and in the blocks nested in it, pre-order."""
        for node in list(self.nodes):
            yield from node.walk()

    def __repr__(self) -> str:
        return f"<Block with {len(self.nodes)} nodes>"


# Node outputs and block params are both position-indexed value lists: ``value.index`` is the
# value's position in its list. These two helpers keep that true; the caller sets the owner link
# (``producer`` / ``param_of``) and checks that a value is unused before removing it.
def _append_value(values: list[Value], type_: IRType, name: str | None, graph: "Graph") -> Value:
    value = Value(name or graph.fresh_name(), type_)
    value.index = len(values)
    values.append(value)
    return value


def _remove_value(values: list[Value], index: int) -> None:
    del values[index]
    for position, value in enumerate(values):
        value.index = position


def _outermost_in(node: Node, block: Block) -> Node | None:
    """The ancestor of ``node`` (or ``node`` itself) that sits directly in ``block``."""
    current: Node | None = node
    while current is not None:
        if current.owner is block:
            return current
        current = current.owner.owner_node
    return None


class Graph:
    """A whole program: a top block whose params are the inputs and whose returns are the outputs."""

    __slots__ = ("name", "block", "meta", "_counter")

    def __init__(self, name: str = "graph") -> None:
        self.name = name
        self._counter = 0
        self.meta: dict[str, Any] = {}
        self.block = Block(self)

    def fresh_name(self) -> str:
        name = str(self._counter)
        self._counter += 1
        return name

    @property
    def inputs(self) -> tuple[Value, ...]:
        return tuple(self.block.params)

    @property
    def outputs(self) -> tuple[Value, ...]:
        return self.block.returns

    def add_input(self, type_: IRType, name: str | None = None) -> Value:
        return self.block.add_param(type_, name)

    def walk(self) -> Iterator[Node]:
        return self.block.walk()

    def node_count(self) -> int:
        return sum(1 for _ in self.walk())

    def clone(self) -> "Graph":
        """A deep copy; attribute values (constants, weights) are shared, not copied."""
        copy = Graph(self.name)
        copy.meta = dict(self.meta)
        mapping: dict[int, Value] = {}
        for param in self.block.params:
            new = copy.block.add_param(param.type, param.name)
            new.meta = dict(param.meta)
            mapping[id(param)] = new
        copy_block_body(self.block, copy.block, mapping)
        copy._counter = max(self._counter, copy._counter)
        return copy

    def __str__(self) -> str:
        from packager.ir.printer import format_graph

        return format_graph(self)


def copy_node_into(node: Node, block: Block, mapping: dict[int, Value], position: int | None = None) -> Node:
    """Copy ``node`` (with its nested blocks) into ``block``; inputs are translated through
    ``mapping`` (id of old value -> new value), which is extended with the copy's outputs."""
    try:
        inputs = [mapping[id(v)] for v in node.inputs]
    except KeyError:
        missing = [v for v in node.inputs if id(v) not in mapping]
        raise InternalError(f"copy of {node!r}: no mapping for input %{missing[0].name}") from None
    keep_names = block.graph is not node.graph
    if position is None:
        new = block.append_node(node.op, inputs, (), node.overload, node.attrs)
    else:
        new = block.insert_node(position, node.op, inputs, (), node.overload, node.attrs)
    new.meta = dict(node.meta)
    for value in node.outputs:
        out = new.add_output(value.type, value.name if keep_names else None)
        out.meta = dict(value.meta)
        if keep_names:
            block.graph._counter = max(block.graph._counter, _numeric(value.name) + 1)
        mapping[id(value)] = out
    for inner in node.blocks:
        new_block = new.add_block()
        for param in inner.params:
            mapping[id(param)] = new_block.add_param(param.type, param.name if keep_names else None)
            if keep_names:
                block.graph._counter = max(block.graph._counter, _numeric(param.name) + 1)
        copy_block_body(inner, new_block, mapping)
    return new


def copy_block_body(source: Block, target: Block, mapping: dict[int, Value]) -> None:
    """Copy the nodes and returns of ``source`` into ``target`` (params must be mapped already)."""
    for node in source.nodes:
        copy_node_into(node, target, mapping)
    target.set_returns([mapping[id(v)] for v in source.returns])
    if target.graph is not source.graph:
        _bump_counter(target.graph)


def _bump_counter(graph: Graph) -> None:
    """After copying names from another graph, make fresh names start past every numeric name."""
    highest = graph._counter - 1
    for value in graph.block.params:
        highest = max(highest, _numeric(value.name))
    for node in graph.walk():
        for value in node.outputs:
            highest = max(highest, _numeric(value.name))
        for block in node.blocks:
            for value in block.params:
                highest = max(highest, _numeric(value.name))
    graph._counter = highest + 1


def _numeric(name: str) -> int:
    return int(name) if name.isdigit() else -1
