"""Helpers for the pass tests: build small IR graphs by hand, compare graphs by running them.

Graphs are built with the IR API directly (no front end), so a pass test fails only when the
pass or the IR is wrong.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import torch

from packager.ir.graph import Block, Graph, Node, Value
from packager.ir.interpreter import run_graph
from packager.ir.types import IRType, TensorType
from packager.lowering._constants import type_of_constant

__all__ = ["GraphBuilder", "tensor_type", "op_counts", "assert_same_results"]


def tensor_type(*shape: int, dtype: str = "float32") -> TensorType:
    return TensorType(dtype, tuple(shape))


class GraphBuilder:
    """Appends nodes to a block (the graph's top block unless told otherwise).

    Arguments of :meth:`op` may be :class:`Value` objects or Python values; the latter become
    ``prim::Constant`` nodes in the same block, just before the op.
    """

    def __init__(self, name: str = "test") -> None:
        self.graph = Graph(name)

    def input(self, type_: IRType, name: str | None = None) -> Value:
        return self.graph.add_input(type_, name)

    def const(self, value: Any, block: Block | None = None, type_: IRType | None = None) -> Value:
        target = block or self.graph.block
        node = target.append_node("prim::Constant", (), [type_ or type_of_constant(value)], attrs={"value": value})
        return node.output

    def node(
        self,
        op: str,
        *arguments: Any,
        out: IRType | Sequence[IRType] = (),
        overload: str = "",
        block: Block | None = None,
    ) -> Node:
        target = block or self.graph.block
        inputs = [arg if isinstance(arg, Value) else self.const(arg, target) for arg in arguments]
        types = [out] if isinstance(out, IRType) else list(out)
        return target.append_node(op, inputs, types, overload=overload)

    def op(self, op: str, *arguments: Any, out: IRType, overload: str = "", block: Block | None = None) -> Value:
        return self.node(op, *arguments, out=out, overload=overload, block=block).output

    def returns(self, *values: Value) -> Graph:
        self.graph.block.set_returns(list(values))
        return self.graph


def op_counts(graph: Graph) -> Counter[str]:
    """How many nodes of each op the graph has, nested blocks included."""
    return Counter(node.op for node in graph.walk())


def assert_same_results(
    before: Graph, after: Graph, inputs: Sequence[Any], rtol: float = 0.0, atol: float = 0.0
) -> None:
    """Both graphs give the same outputs on ``inputs`` (exactly, unless tolerances are given).

    Inputs and constants are copied per run so an in-place op in one graph (or in one run)
    cannot leak into the other.
    """
    expected = run_graph(_with_own_constants(before), [_clone(value) for value in inputs])
    actual = run_graph(_with_own_constants(after), [_clone(value) for value in inputs])
    _assert_close(actual, expected, rtol, atol, "output")


def _assert_close(actual: Any, expected: Any, rtol: float, atol: float, where: str) -> None:
    # Not torch.testing.assert_close: its first call imports torch.distributed (seconds).
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor), f"{where}: expected a tensor, got {type(actual).__name__}"
        assert (actual.dtype, actual.shape) == (expected.dtype, expected.shape), (
            f"{where}: expected {expected.dtype}{list(expected.shape)}, got {actual.dtype}{list(actual.shape)}")
        if rtol == 0 and atol == 0:
            assert torch.equal(actual, expected), f"{where}: values differ"
        else:
            worst = (actual.double() - expected.double()).abs().max().item() if actual.numel() else 0.0
            assert torch.allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True), (
                f"{where}: values differ beyond rtol={rtol}, atol={atol} (largest difference {worst})")
    elif isinstance(expected, (list, tuple)):
        assert type(actual) is type(expected) and len(actual) == len(expected), f"{where}: structure differs"
        for index, (got, want) in enumerate(zip(actual, expected)):
            _assert_close(got, want, rtol, atol, f"{where}[{index}]")
    else:
        assert actual == expected, f"{where}: expected {expected!r}, got {actual!r}"


def _with_own_constants(graph: Graph) -> Graph:
    copy = graph.clone()
    for node in copy.walk():
        if node.op == "prim::Constant" and isinstance(node.attrs.get("value"), torch.Tensor):
            node.attrs["value"] = node.attrs["value"].clone()
    return copy


def _clone(value: Any) -> Any:
    return value.clone() if isinstance(value, torch.Tensor) else value
