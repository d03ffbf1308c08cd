"""An eager reference interpreter for the IR.

It executes every node with torch (``packager.ir.ops.call_node``), structural prim ops in Python,
and ``prim::If`` / ``prim::Loop`` with TorchScript semantics. Tests compare passes, partitions
and engines against it; constant folding uses it for single nodes.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from packager.errors import InternalError
from packager.ir.graph import Block, Graph, Node, Value
from packager.ir.ops import call_node

__all__ = ["run_graph", "run_block", "run_node", "EngineCall"]

# Executes a ``poros::engine`` node: (node, input values) -> list of output values.
EngineCall = Callable[[Node, list[Any]], list[Any]]


def run_graph(graph: Graph, inputs: Sequence[Any], engine_call: EngineCall | None = None) -> Any:
    """Run ``graph`` on ``inputs``; returns one value if the graph has one output, else a tuple."""
    if len(inputs) != len(graph.inputs):
        raise InternalError(f"graph takes {len(graph.inputs)} inputs, got {len(inputs)}")
    results = run_block(graph.block, list(inputs), {}, engine_call)
    return results[0] if len(results) == 1 else tuple(results)


def run_block(block: Block, args: list[Any], env: dict[int, Any], engine_call: EngineCall | None = None) -> list[Any]:
    for param, arg in zip(block.params, args, strict=True):
        env[id(param)] = arg
    for node in block.nodes:
        outputs = run_node(node, [env[id(v)] for v in node.inputs], env, engine_call)
        for value, result in zip(node.outputs, outputs, strict=True):
            env[id(value)] = result
    return [env[id(v)] for v in block.returns]


def run_node(node: Node, values: list[Any], env: dict[int, Any] | None = None,
             engine_call: EngineCall | None = None) -> list[Any]:
    """Execute one node; returns its outputs as a list (one entry per IR output)."""
    op = node.op
    if op == "prim::Constant":
        return [node.attrs["value"]]
    if op == "prim::ListConstruct":
        return [list(values)]
    if op == "prim::TupleConstruct":
        return [tuple(values)]
    if op in ("prim::ListUnpack", "prim::TupleUnpack"):
        (sequence,) = values
        if len(sequence) != len(node.outputs):
            raise RuntimeError(f"{op}: expected {len(node.outputs)} elements, got {len(sequence)}")
        return list(sequence)
    if op == "prim::If":
        env = {} if env is None else env
        branch = node.blocks[0] if bool(values[0]) else node.blocks[1]
        return run_block(branch, [], env, engine_call)
    if op == "prim::Loop":
        env = {} if env is None else env
        max_trips, condition, *carried = values
        body = node.blocks[0]
        iteration = 0
        while bool(condition) and iteration < max_trips:
            condition, *carried = run_block(body, [iteration, *carried], env, engine_call)
            iteration += 1
        return carried
    if op == "poros::engine":
        if engine_call is None:
            raise InternalError("the graph has poros::engine nodes; pass engine_call to run it")
        return list(engine_call(node, values))
    result = call_node(node, values)
    if len(node.outputs) == 1:
        return [result]
    if len(node.outputs) == 0:
        return []
    return list(result)
