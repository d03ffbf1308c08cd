"""Hand-built graphs, a test capability and invariant checks shared by this package's tests."""

from __future__ import annotations

import random
from typing import Any

import torch

from packager.ir import BOOL, INT, Block, Graph, IRType, ListType, Node, TensorType, Value, run_graph
from packager.segment.outline import ENGINE_OP
from packager.segment.partition import Partition

SHAPE = (2, 3)
TENSOR = TensorType("float32", SHAPE)

# What the test engine runs: a few compute ops and the helpers that carry shapes.
SUPPORTED = (
    "aten::relu", "aten::sigmoid", "aten::neg", "aten::add", "aten::mul", "aten::matmul",
    "aten::size", "aten::view", "aten::Int", "prim::ListConstruct", "prim::NumToTensor",
)


def test_capability(node: Node) -> str | None:
    return None if node.op in SUPPORTED else f"the test engine does not support {node.kind}"


test_capability.__test__ = False  # a capability, not a pytest test


class GraphBuilder:
    """Terse construction of IR graphs; every op defaults to one float32 [2, 3] output."""

    def __init__(self, name: str = "test") -> None:
        self.graph = Graph(name)

    def input(self, type_: IRType = TENSOR, name: str | None = None) -> Value:
        return self.graph.add_input(type_, name)

    def constant(self, value: Any, type_: IRType, block: Block | None = None) -> Value:
        return self.node("prim::Constant", (), (type_,), attrs={"value": value}, block=block).output

    def node(self, op: str, inputs=(), output_types=(TENSOR,), overload: str = "", attrs=None,
             block: Block | None = None) -> Node:
        return (block or self.graph.block).append_node(op, inputs, output_types, overload, attrs)

    def op(self, op: str, *inputs: Value, overload: str = "", type_: IRType = TENSOR,
           block: Block | None = None) -> Value:
        return self.node(op, inputs, (type_,), overload, block=block).output

    def add(self, left: Value, right: Value, block: Block | None = None) -> Value:
        alpha = self.constant(1, INT, block)
        return self.op("aten::add", left, right, alpha, overload="Tensor", block=block)

    def outputs(self, *values: Value) -> Graph:
        self.graph.block.set_returns(values)
        return self.graph


# ------------------------------------------------------------------------------------ checks
def users_in_block(node: Node, block: Block) -> list[Node]:
    """Nodes of ``block`` that use an output of ``node`` (uses nested in their blocks count)."""
    users: list[Node] = []
    for value in node.outputs:
        for usage in value.uses:
            user: Node | None = usage.node
            while user is not None and user.owner is not block:
                user = user.owner.owner_node
            if user is not None and user is not block.return_node and all(user is not u for u in users):
                users.append(user)
    return users


def check_partition(graph: Graph, result: Partition) -> None:
    """Assert the partition invariants of docs/internals.md and partition.py."""
    placed: dict[int, str] = {}
    for index, segment in enumerate(result.segments):
        assert segment.id == f"seg{index}"
        positions = [segment.block.nodes.index(node) for node in segment.nodes]
        assert positions == sorted(positions), f"{segment.id} nodes are not in block order"
        for node in segment.nodes:
            assert node.op != "prim::Constant"
            assert id(node) not in placed, f"{node!r} is in {placed[id(node)]} and {segment.id}"
            placed[id(node)] = segment.id
            assert "fallback_reason" not in node.meta
        for value in [*segment.inputs, *segment.outputs]:
            assert value.is_tensor, f"{segment.id} passes {value!r} across its boundary"
        _check_convex(segment.block, segment.nodes, segment.id)
    for node in graph.walk():
        in_glue = node in result.fallback_reasons
        if node.op == "prim::Constant":
            assert not in_glue and id(node) not in placed
        else:
            assert in_glue != (id(node) in placed), f"{node!r} must be in exactly one place"
            if in_glue:
                assert node.meta["fallback_reason"] == result.fallback_reasons[node]
    walk_order = [id(node) for node in graph.walk()]
    firsts = [walk_order.index(id(segment.nodes[0])) for segment in result.segments]
    assert firsts == sorted(firsts), "segment ids are not in program order"


def _check_convex(block: Block, nodes: list[Node], segment_id: str) -> None:
    """No path leaves the segment and comes back (by reachability over the block's nodes)."""
    members = {id(node) for node in nodes}
    frontier = [user for node in nodes for user in users_in_block(node, block) if id(user) not in members]
    seen: set[int] = set()
    while frontier:
        node = frontier.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for user in users_in_block(node, block):
            assert id(user) not in members, f"{segment_id} is not convex: it reaches {user!r} through {node!r}"
            frontier.append(user)


def segment_signature(result: Partition) -> list[list[str]]:
    return [[repr(node) for node in segment.nodes] for segment in result.segments]


def run_outlined(graph: Graph, engines: dict[str, Graph], inputs: list[Any]) -> Any:
    """Run an outlined graph, each engine call running its engine graph with the interpreter."""

    def engine_call(node: Node, values: list[Any]) -> list[Any]:
        assert node.op == ENGINE_OP
        result = run_graph(engines[node.attrs["segment"]], values)
        return [result] if len(node.outputs) == 1 else list(result)

    return run_graph(graph, inputs, engine_call=engine_call)


def same_results(left: Any, right: Any) -> bool:
    if isinstance(left, tuple):
        return isinstance(right, tuple) and len(left) == len(right) and all(map(same_results, left, right))
    if isinstance(left, torch.Tensor):
        # Exact equality, where NaN (random graphs overflow now and then) equals NaN.
        return (
            isinstance(right, torch.Tensor)
            and left.dtype == right.dtype
            and left.shape == right.shape
            and torch.equal(left.isnan(), right.isnan())
            and torch.equal(left.nan_to_num(0.0), right.nan_to_num(0.0))
        )
    return left == right


# ------------------------------------------------------------------------------ random graphs
def random_graph(seed: int) -> Graph:
    """A random graph over float32 [2, 3] tensors mixing supported and unsupported ops, ints
    crossing boundaries, in-place ops, and ``prim::If`` / ``prim::Loop`` with nested bodies.
    Inputs: two tensors and a bool."""
    rng = random.Random(seed)
    builder = GraphBuilder(f"random{seed}")
    pool = [builder.input(), builder.input()]
    flag = builder.input(BOOL)
    _random_body(rng, builder, builder.graph.block, pool, flag, depth=0)
    picks = [pool[-1], pool[rng.randrange(len(pool))]]
    return builder.outputs(*picks)


def _random_body(rng: random.Random, builder: GraphBuilder, block: Block, pool: list[Value], flag: Value,
                 depth: int, ints: tuple[Value, ...] = ()) -> None:
    def pick() -> Value:
        return pool[-1 - min(int(rng.expovariate(0.5)), len(pool) - 1)]

    for _ in range(rng.randint(3, 9)):
        choice = rng.random()
        if choice < 0.35:
            op = rng.choice(("aten::relu", "aten::sigmoid", "aten::neg", "aten::sin"))
            pool.append(builder.op(op, pick(), block=block))
        elif choice < 0.55:
            if rng.random() < 0.5:
                pool.append(builder.add(pick(), pick(), block))
            else:
                pool.append(builder.op("aten::mul", pick(), pick(), overload="Tensor", block=block))
        elif choice < 0.62:
            dim = builder.constant(1, INT, block)
            pool.append(builder.op("aten::cumsum", pick(), dim, block=block))
        elif choice < 0.7:
            zero = builder.constant(0, INT, block)
            rows = builder.op("aten::size", pick(), zero, overload="int", type_=INT, block=block)
            if rng.random() < 0.5:
                one = builder.constant(1, INT, block)
                rows = builder.op("aten::sub", rows, one, overload="int", type_=INT, block=block)
            minus_one = builder.constant(-1, INT, block)
            shape = builder.op("prim::ListConstruct", rows, minus_one, type_=ListType(INT), block=block)
            if rng.random() < 0.5 and rows.producer.op == "aten::size":
                pool.append(builder.op("aten::view", pick(), shape, block=block))
            else:
                pool.append(builder.op("aten::add", pick(), rows, overload="Scalar", block=block))
        elif choice < 0.75:
            one = builder.constant(1, INT, block)
            target = pool[-1] if pool[-1].producer is not None else builder.op("aten::relu", pick(), block=block)
            builder.node("aten::add_", (target, pick(), one), overload="Tensor", block=block)
        elif choice < 0.8 and ints:
            pool.append(builder.op("aten::add", pick(), rng.choice(ints), overload="Scalar", block=block))
        elif choice < 0.9 and depth < 2:
            node = builder.node("prim::If", (flag,), block=block)
            for _ in range(2):
                branch = node.add_block()
                branch_pool = list(pool)
                _random_body(rng, builder, branch, branch_pool, flag, depth + 1, ints)
                branch.set_returns([branch_pool[-1]])
            pool.append(node.output)
        elif depth < 2:
            trips = builder.constant(3, INT, block)
            true = builder.constant(True, BOOL, block)
            node = builder.node("prim::Loop", (trips, true, pick()), block=block)
            body = node.add_block()
            iteration = body.add_param(INT)
            carried = body.add_param(TENSOR)
            body_pool = [*pool, carried]
            _random_body(rng, builder, body, body_pool, flag, depth + 1, (*ints, iteration))
            body.set_returns([builder.constant(True, BOOL, body), body_pool[-1]])
            pool.append(node.output)
