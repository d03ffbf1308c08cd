"""Tests of the IR core: ownership, uses, edits, verify(), printer, clone, interpreter."""

import pytest
import torch

from packager.errors import InternalError
from packager.ir import (
    BOOL,
    INT,
    Graph,
    ScalarType,
    SymDim,
    TensorType,
    VerificationError,
    format_graph,
    run_graph,
    verify,
)
from packager.ir.graph import Usage

T = TensorType("float32", (SymDim("s0", 1, 8), 4))


def _constant(block, value, type_):
    return block.append_node("prim::Constant", (), (type_,), attrs={"value": value}).output


def _add_relu_graph():
    graph = Graph("add_relu")
    x = graph.add_input(T, "x")
    y = graph.add_input(T, "y")
    one = _constant(graph.block, 1, INT)
    add = graph.block.append_node("aten::add", (x, y, one), (T,), overload="Tensor")
    relu = graph.block.append_node("aten::relu", (add.output,), (T,))
    graph.block.set_returns([relu.output])
    return graph, x, y, add, relu


def test_uses_are_recorded_and_updated_by_node_edits():
    graph, x, y, add, relu = _add_relu_graph()
    assert x.uses == (Usage(add, 0),)
    assert add.output.uses == (Usage(relu, 0),)
    relu.replace_input_with(0, x)
    assert add.output.uses == ()
    assert Usage(relu, 0) in x.uses
    verify(graph)


def test_replace_all_uses_and_remove_node():
    graph, x, y, add, relu = _add_relu_graph()
    add.output.replace_all_uses_with(y)
    graph.block.remove_node(add)
    assert [n.op for n in graph.block.nodes] == ["prim::Constant", "aten::relu"]
    assert x.uses == ()
    verify(graph)


def test_removing_a_used_node_is_refused_without_changing_anything():
    graph, x, y, add, relu = _add_relu_graph()
    with pytest.raises(InternalError, match="still used"):
        graph.block.remove_node(add)
    assert add in graph.block.nodes
    verify(graph)


def test_verify_names_a_use_before_definition():
    graph, x, y, add, relu = _add_relu_graph()
    graph.block.move_node(relu, 0)
    with pytest.raises(VerificationError, match="not defined before this use"):
        verify(graph)


def test_verify_detects_a_value_from_a_sibling_branch():
    graph = Graph()
    x = graph.add_input(T)
    cond = _constant(graph.block, True, BOOL)
    if_node = graph.block.append_node("prim::If", (cond,), (T,))
    then_block, else_block = if_node.add_block(), if_node.add_block()
    inner = then_block.append_node("aten::relu", (x,), (T,)).output
    then_block.set_returns([inner])
    else_block.set_returns([inner])  # defined only in the other branch
    graph.block.set_returns([if_node.output])
    with pytest.raises(VerificationError, match="not defined"):
        verify(graph)


def test_verify_checks_loop_structure():
    graph = Graph()
    x = graph.add_input(T)
    trips = _constant(graph.block, 3, INT)
    cond = _constant(graph.block, True, BOOL)
    loop = graph.block.append_node("prim::Loop", (trips, cond, x), (T,))
    body = loop.add_block()
    body.add_param(INT)  # missing the carried parameter
    body.set_returns([cond, x])
    graph.block.set_returns([loop.output])
    with pytest.raises(VerificationError, match="prim::Loop body"):
        verify(graph)


def test_interpreter_runs_if_and_loop_with_torchscript_semantics():
    graph = Graph()
    x = graph.add_input(T, "x")
    trips = _constant(graph.block, 3, INT)
    cond = _constant(graph.block, True, BOOL)
    loop = graph.block.append_node("prim::Loop", (trips, cond, x), (T,))
    body = loop.add_block()
    body.add_param(INT, "i")
    carried = body.add_param(T, "acc")
    two = _constant(body, 2.0, ScalarType("float"))
    doubled = body.append_node("aten::mul", (carried, two), (T,), overload="Scalar").output
    body.set_returns([cond, doubled])
    graph.block.set_returns([loop.output])
    verify(graph)
    sample = torch.randn(3, 4)
    assert torch.equal(run_graph(graph, [sample]), sample * 8)


def test_clone_is_deep_and_verifies():
    graph, *_ = _add_relu_graph()
    copy = graph.clone()
    verify(copy)
    assert format_graph(copy) == format_graph(graph)
    copy.block.nodes[-1].replace_input_with(0, copy.inputs[0])
    assert format_graph(copy) != format_graph(graph)
    a, b = torch.randn(2, 4), torch.randn(2, 4)
    assert torch.equal(run_graph(graph, [a, b]), torch.relu(a + b))


def test_printer_shows_types_symbols_and_overloads():
    graph, *_ = _add_relu_graph()
    text = format_graph(graph)
    assert "graph add_relu(%x : Tensor(float32, [s0[1..8], 4])" in text
    assert "aten::add.Tensor(%x, %y, %" in text
    assert text.strip().endswith("return (%" + graph.outputs[0].name + ")")


def test_unqualified_op_names_are_rejected():
    graph = Graph()
    with pytest.raises(InternalError, match="schema-qualified"):
        graph.block.append_node("relu")


def test_removing_node_outputs_renumbers_the_rest():
    graph = Graph()
    node = graph.block.append_node("prim::Tuple", (), (INT, INT, INT))
    first, middle, last = node.outputs
    assert [v.index for v in node.outputs] == [0, 1, 2]
    assert all(v.producer is node and v.param_of is None for v in node.outputs)
    node.remove_output(1)
    assert node.outputs == [first, last]
    assert [v.index for v in node.outputs] == [0, 1]
    graph.block.append_node("aten::neg", (last,), (INT,))
    with pytest.raises(InternalError, match="cannot remove output 1, it still has uses"):
        node.remove_output(1)
    added = node.add_output(INT, "named")
    assert (added.name, added.index, added.producer) == ("named", 2, node)


def test_removing_block_params_renumbers_the_rest():
    graph = Graph()
    a, b, c = (graph.add_input(INT, name) for name in "abc")
    assert [v.index for v in graph.inputs] == [0, 1, 2]
    assert all(v.param_of is graph.block and v.producer is None for v in graph.inputs)
    graph.block.remove_param(0)
    assert graph.inputs == (b, c)
    assert [v.index for v in graph.inputs] == [0, 1]
    graph.block.append_node("aten::neg", (c,), (INT,))
    with pytest.raises(InternalError, match="block parameter %c still has uses"):
        graph.block.remove_param(1)
    fresh = graph.block.add_param(INT)
    assert fresh.index == 2 and fresh.name.isdigit()
