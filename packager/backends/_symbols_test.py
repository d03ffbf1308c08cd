"""Symbol ranges from the segment's symbol table and SymDims; dimension expressions."""

from __future__ import annotations

import pytest

from packager.backends._symbols import SymbolRange, evaluate_dim, symbol_ranges
from packager.errors import BackendError
from packager.ir import Graph, SymDim, TensorType
from packager.spec import DimSpec


def graph_with_input(*shape, symbols=None) -> Graph:
    graph = Graph("seg")
    if symbols is not None:
        graph.meta["symbols"] = symbols
    graph.add_input(TensorType("float32", shape))
    return graph


def test_table_entries_win_and_opt_defaults_to_max():
    graph = graph_with_input(SymDim("s0", 1, 99), SymDim("s1", 2, 16), symbols={"s0": {"min": 1, "opt": 4, "max": 8}})
    assert symbol_ranges(graph) == {"s0": SymbolRange(1, 4, 8), "s1": SymbolRange(2, 16, 16)}


def test_dimspec_entries_are_accepted():
    graph = graph_with_input(SymDim("s0"), symbols={"s0": DimSpec(1, 2, 8)})
    assert symbol_ranges(graph) == {"s0": SymbolRange(1, 2, 8)}


def test_input_symbol_without_any_range_is_an_error():
    with pytest.raises(BackendError, match="'s0' has no range"):
        symbol_ranges(graph_with_input(SymDim("s0"), 3))


def test_inconsistent_table_entry_is_an_error():
    with pytest.raises(BackendError, match="min <= opt <= max"):
        symbol_ranges(graph_with_input(SymDim("s0"), symbols={"s0": {"min": 4, "opt": 2, "max": 8}}))


@pytest.mark.parametrize(
    "expr, value",
    [("s0", 4), ("2*s0", 8), ("s0+1", 5), ("s0//2", 2), ("s0*s1", 12), ("-(s0-s1) % 5", 4)],
)
def test_evaluate_dim(expr, value):
    assert evaluate_dim(expr, {"s0": 4, "s1": 3}) == value


@pytest.mark.parametrize("expr", ["s0**2", "s0/2", "f(s0)", "s9", "2*"])
def test_evaluate_dim_refuses_anything_else(expr):
    with pytest.raises(BackendError):
        evaluate_dim(expr, {"s0": 4})
