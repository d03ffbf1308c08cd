import torch

from packager.ir.types import BOOL, INT, NONE, STR
from packager.ir.verify import verify
from packager.lowering._testing import GraphBuilder, assert_same_results, op_counts, tensor_type
from packager.lowering.dead_code_elimination import DeadCodeElimination

T = tensor_type(2, 3)


def run_dce(graph):
    before = graph.clone()
    changed = DeadCodeElimination().run(graph)
    verify(graph)
    return before, changed


def test_removes_unused_chain_and_its_constants():
    b = GraphBuilder()
    x = b.input(T)
    dead = b.op("aten::add", x, 1.0, out=T, overload="Scalar")
    b.op("aten::mul", dead, dead, out=T, overload="Tensor")
    graph = b.returns(b.op("aten::relu", x, out=T))

    before, changed = run_dce(graph)

    assert changed
    assert op_counts(graph) == {"aten::relu": 1}
    assert_same_results(before, graph, [torch.randn(2, 3)])
    assert DeadCodeElimination().run(graph) is False


def test_keeps_side_effects_and_what_they_read():
    b = GraphBuilder()
    x = b.input(T)
    flag = b.input(BOOL)
    b.node("aten::warn", "careful", 2)
    if_node = b.node("prim::If", flag)
    raising = if_node.add_block()
    b.node("prim::RaiseException", b.const("boom", raising, STR), b.const(None, raising, NONE), block=raising)
    if_node.add_block()
    same = b.op("aten::eq", x, x, out=tensor_type(2, 3, dtype="bool"), overload="Tensor")
    b.node("aten::_assert_async", b.op("aten::all", same, out=tensor_type(dtype="bool")), "not NaN", overload="msg")
    graph = b.returns(x)

    before, changed = run_dce(graph)

    assert not changed
    assert op_counts(graph) == op_counts(before)
    assert_same_results(before, graph, [torch.randn(2, 3), False])


def test_keeps_in_place_write_to_graph_input():
    b = GraphBuilder()
    x = b.input(T)
    b.op("aten::add_", x, 1.0, out=T, overload="Scalar")
    graph = b.returns(b.op("aten::relu", x, out=T))

    before, changed = run_dce(graph)

    assert not changed
    assert op_counts(graph)["aten::add_"] == 1
    assert_same_results(before, graph, [torch.randn(2, 3)])


def test_keeps_in_place_write_through_a_view_of_a_live_value():
    b = GraphBuilder()
    x = b.input(T)
    fresh = b.op("aten::clone", x, None, out=T)
    flat = b.op("aten::view", fresh, [6], out=tensor_type(6))
    b.op("aten::mul_", flat, 2.0, out=tensor_type(6), overload="Scalar")
    graph = b.returns(fresh)

    before, changed = run_dce(graph)

    assert not changed
    assert op_counts(graph)["aten::mul_"] == 1
    assert_same_results(before, graph, [torch.randn(2, 3)])


def test_removes_in_place_writes_to_a_dead_local_tensor():
    b = GraphBuilder()
    x = b.input(T)
    scratch = b.op("aten::zeros_like", x, None, None, None, None, None, out=T)
    b.op("aten::add_", scratch, x, 1, out=T, overload="Tensor")
    graph = b.returns(b.op("aten::neg", x, out=T))

    before, changed = run_dce(graph)

    assert changed
    assert op_counts(graph) == {"aten::neg": 1}
    assert_same_results(before, graph, [torch.randn(2, 3)])


def test_prunes_unused_if_output_and_its_branch_work():
    b = GraphBuilder()
    x = b.input(T)
    flag = b.input(BOOL)
    if_node = b.node("prim::If", flag, out=[T, T])
    then_block, else_block = if_node.add_block(), if_node.add_block()
    then_block.set_returns([b.op("aten::relu", x, out=T, block=then_block),
                            b.op("aten::exp", x, out=T, block=then_block)])
    else_block.set_returns([b.op("aten::neg", x, out=T, block=else_block),
                            b.op("aten::sin", x, out=T, block=else_block)])
    graph = b.returns(if_node.outputs[0])

    before, changed = run_dce(graph)

    assert changed
    assert len(if_node.outputs) == 1
    assert op_counts(graph) == {"prim::If": 1, "aten::relu": 1, "aten::neg": 1}
    for taken in (True, False):
        assert_same_results(before, graph, [torch.randn(2, 3), taken])


def test_removes_if_with_nothing_live_inside():
    b = GraphBuilder()
    x = b.input(T)
    flag = b.input(BOOL)
    if_node = b.node("prim::If", flag, out=[T])
    for block in (if_node.add_block(), if_node.add_block()):
        block.set_returns([b.op("aten::relu", x, out=T, block=block)])
    graph = b.returns(x)

    before, changed = run_dce(graph)

    assert changed
    assert op_counts(graph) == {}
    assert_same_results(before, graph, [torch.randn(2, 3), True])


def test_prunes_unused_loop_carried_value():
    b = GraphBuilder()
    x = b.input(T)
    loop = b.node("prim::Loop", 3, True, x, x, out=[T, T])
    body = loop.add_block()
    body.add_param(INT)
    kept, dropped = body.add_param(T), body.add_param(T)
    body.set_returns([b.const(True, body), b.op("aten::relu", kept, out=T, block=body),
                      b.op("aten::exp", dropped, out=T, block=body)])
    graph = b.returns(loop.outputs[0])

    before, changed = run_dce(graph)

    assert changed
    assert len(loop.outputs) == 1 and len(loop.inputs) == 3 and len(body.params) == 2
    assert op_counts(graph) == {"prim::Constant": 3, "prim::Loop": 1, "aten::relu": 1}
    assert_same_results(before, graph, [torch.randn(2, 3)])


def test_keeps_loop_carried_value_read_by_a_live_node():
    b = GraphBuilder()
    x = b.input(T)
    loop = b.node("prim::Loop", 3, True, x, x, out=[T, T])
    body = loop.add_block()
    body.add_param(INT)
    total, step = body.add_param(T), body.add_param(T)
    body.set_returns([b.const(True, body), b.op("aten::add", total, step, 1, out=T, overload="Tensor", block=body),
                      b.op("aten::mul", step, 2.0, out=T, overload="Scalar", block=body)])
    graph = b.returns(loop.outputs[0])

    before, changed = run_dce(graph)

    assert not changed
    assert len(loop.outputs) == 2
    assert_same_results(before, graph, [torch.randn(2, 3)])
