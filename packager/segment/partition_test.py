import pytest

from packager.errors import UsageError
from packager.ir import BOOL, INT, ListType, TensorType, verify
from packager.segment import partition
from packager.segment._testing import (
    TENSOR,
    GraphBuilder,
    check_partition,
    random_graph,
    segment_signature,
    test_capability,
)

UNSUPPORTED_SIN = "the test engine does not support aten::sin"


def _ops(segment):
    return [node.op for node in segment.nodes]


def _relu_sin_relu():
    builder = GraphBuilder()
    x = builder.input(name="x")
    first = builder.op("aten::relu", x)
    middle = builder.op("aten::sin", first)
    last = builder.op("aten::relu", middle)
    return builder.outputs(last), (first, middle, last)


def test_engine_glue_engine_alternation():
    graph, (first, middle, last) = _relu_sin_relu()
    result = partition(graph, test_capability)
    check_partition(graph, result)
    assert [_ops(segment) for segment in result.segments] == [["aten::relu"], ["aten::relu"]]
    seg0, seg1 = result.segments
    assert (seg0.inputs, seg0.outputs) == (list(graph.inputs), [first])
    assert (seg1.inputs, seg1.outputs) == ([middle], [last])
    assert list(result.fallback_reasons.values()) == [UNSUPPORTED_SIN]
    assert middle.producer.meta["fallback_reason"] == UNSUPPORTED_SIN


def test_diamond_through_an_unsupported_node_is_split():
    # a -> sin -> c and a -> c: one segment {a, c} would be a cycle through sin.
    builder = GraphBuilder()
    a = builder.op("aten::relu", builder.input())
    unsupported = builder.op("aten::sin", a)
    c = builder.add(a, unsupported)
    graph = builder.outputs(c)
    result = partition(graph, test_capability)
    check_partition(graph, result)
    assert [_ops(segment) for segment in result.segments] == [["aten::relu"], ["aten::add"]]
    assert result.segments[1].inputs == [a, unsupported]


def test_independent_branches_share_one_segment():
    builder = GraphBuilder()
    x, y = builder.input(), builder.input()
    left = builder.op("aten::sin", builder.op("aten::relu", x))
    right = builder.op("aten::sin", builder.op("aten::sigmoid", y))
    graph = builder.outputs(left, right)
    result = partition(graph, test_capability)
    check_partition(graph, result)
    assert [_ops(segment) for segment in result.segments] == [["aten::relu", "aten::sigmoid"]]


def test_shape_ints_made_and_used_inside_a_segment_stay_there():
    builder = GraphBuilder()
    x = builder.input()
    a = builder.op("aten::relu", x)
    rows = builder.op("aten::size", a, builder.constant(0, INT), overload="int", type_=INT)
    shape = builder.op("prim::ListConstruct", rows, builder.constant(-1, INT), type_=ListType(INT))
    out = builder.op("aten::relu", builder.op("aten::view", a, shape))
    graph = builder.outputs(out)
    result = partition(graph, test_capability)
    check_partition(graph, result)
    (segment,) = result.segments
    assert _ops(segment) == ["aten::relu", "aten::size", "prim::ListConstruct", "aten::view", "aten::relu"]
    assert (segment.inputs, segment.outputs) == ([x], [out])
    assert segment.size == 4  # the list plumbing does not count
    assert result.fallback_reasons == {}


def test_non_tensors_crossing_a_boundary_send_their_nodes_to_the_glue():
    builder = GraphBuilder()
    a = builder.op("aten::relu", builder.input())
    rows = builder.op("aten::size", a, builder.constant(0, INT), overload="int", type_=INT)
    fewer = builder.op("aten::sub", rows, builder.constant(1, INT), overload="int", type_=INT)
    shifted = builder.op("aten::add", a, fewer, overload="Scalar")
    graph = builder.outputs(shifted)
    result = partition(graph, test_capability)
    check_partition(graph, result)
    assert [_ops(segment) for segment in result.segments] == [["aten::relu"]]
    reasons = {node.op: reason for node, reason in result.fallback_reasons.items()}
    assert reasons["aten::size"] == (
        f"produces int %{rows.name} consumed outside the engine (engines return only tensors)"
    )
    assert reasons["aten::add"] == f"consumes int %{fewer.name} produced outside the engine (engines take only tensors)"
    assert reasons["aten::sub"] == "the test engine does not support aten::sub.int"


def test_min_segment_size_sends_small_segments_to_the_glue():
    builder = GraphBuilder()
    first = builder.op("aten::relu", builder.input())
    middle = builder.op("aten::sin", first)
    last = builder.op("aten::mul", builder.op("aten::relu", middle), middle, overload="Tensor")
    graph = builder.outputs(last)
    result = partition(graph, test_capability, min_segment_size=2)
    check_partition(graph, result)
    assert [_ops(segment) for segment in result.segments] == [["aten::relu", "aten::mul"]]
    assert result.fallback_reasons[first.producer] == "segment of 1 node is smaller than --min-segment-size 2"
    assert partition(graph, test_capability, min_segment_size=3).segments == []
    with pytest.raises(UsageError, match="min-segment-size"):
        partition(graph, test_capability, min_segment_size=0)


def test_fallback_ops_force_an_op_into_the_glue():
    builder = GraphBuilder()
    x = builder.input()
    product = builder.op("aten::mul", builder.op("aten::relu", x), x, overload="Tensor")
    graph = builder.outputs(builder.op("aten::relu", product))
    result = partition(graph, test_capability, fallback_ops=["aten::mul"])
    check_partition(graph, result)
    assert [_ops(segment) for segment in result.segments] == [["aten::relu"], ["aten::relu"]]
    assert result.fallback_reasons[product.producer] == "forced to fallback by --fallback-op aten::mul"
    # Partitioning again without the flag clears the reason.
    again = partition(graph, test_capability)
    assert len(again.segments) == 1 and "fallback_reason" not in product.producer.meta


def test_segments_are_formed_inside_if_branches():
    builder = GraphBuilder()
    x, flag = builder.input(), builder.input(BOOL)
    outer = builder.op("aten::relu", x)
    branch = builder.node("prim::If", (flag,))
    then_block, else_block = branch.add_block(), branch.add_block()
    inner = builder.op("aten::sin", builder.op("aten::relu", outer, block=then_block), block=then_block)
    then_block.set_returns([builder.op("aten::sigmoid", inner, block=then_block)])
    else_block.set_returns([builder.add(outer, x, else_block)])
    graph = builder.outputs(builder.op("aten::neg", branch.output))
    result = partition(graph, test_capability)
    check_partition(graph, result)
    assert [(_ops(s), s.block) for s in result.segments] == [
        (["aten::relu"], graph.block),
        (["aten::relu"], then_block),
        (["aten::sigmoid"], then_block),
        (["aten::add"], else_block),
        (["aten::neg"], graph.block),
    ]
    assert result.segments[1].inputs == [outer]  # a value of the enclosing block
    assert result.segments[3].inputs == [outer, x]
    assert "control flow (prim::If)" in result.fallback_reasons[branch]


def test_segments_are_formed_inside_loop_bodies():
    builder = GraphBuilder()
    x = builder.input()
    loop = builder.node("prim::Loop", (builder.constant(3, INT), builder.constant(True, BOOL), x))
    body = loop.add_block()
    iteration, carried = body.add_param(INT), body.add_param(TENSOR)
    product = builder.op("aten::mul", builder.op("aten::relu", carried, block=body), x, overload="Tensor", block=body)
    counted = builder.op("aten::add", product, iteration, overload="Scalar", block=body)
    body.set_returns([builder.constant(True, BOOL, body), builder.op("aten::sigmoid", counted, block=body)])
    graph = builder.outputs(loop.output)
    result = partition(graph, test_capability)
    check_partition(graph, result)
    assert [(_ops(s), s.block) for s in result.segments] == [
        (["aten::relu", "aten::mul"], body),
        (["aten::sigmoid"], body),
    ]
    assert result.segments[0].inputs == [carried, x]
    assert result.fallback_reasons[counted.producer].startswith(f"consumes int %{iteration.name}")


def test_no_segment_spans_an_in_place_op():
    # Without the barrier, the second relu (independent of the first) would join seg0 and be
    # moved before the add_ that changes its input.
    builder = GraphBuilder()
    x = builder.input()
    before = builder.op("aten::relu", x)
    builder.node("aten::add_", (x, before, builder.constant(1, INT)), overload="Tensor")
    after = builder.op("aten::relu", x)
    graph = builder.outputs(before, after)
    result = partition(graph, test_capability)
    check_partition(graph, result)
    assert [segment.nodes for segment in result.segments] == [[before.producer], [after.producer]]


FLAT = TensorType("float32", (6,))


def _everything(node):
    return None


def _view_flat(builder, value):
    return builder.op("aten::view", value, builder.constant([-1], ListType(INT)), type_=FLAT)


def test_a_view_written_in_the_glue_is_taken_in_the_glue():
    # h and its view v would both leave the engine; the glue writes v, the next engine reads h.
    # An engine returning a copy for v (fp16, TensorRT) would lose the write: the view runs in the glue.
    builder = GraphBuilder()
    h = builder.op("aten::relu", builder.input(name="x"))
    v = _view_flat(builder, h)
    builder.node("aten::relu_", (v,))
    graph = builder.outputs(builder.op("aten::sigmoid", h))
    result = partition(graph, test_capability)
    check_partition(graph, result)
    assert [_ops(segment) for segment in result.segments] == [["aten::relu"], ["aten::sigmoid"]]
    assert result.fallback_reasons[v.producer] == (
        f"its output %{v.name} would share memory with engine output %{h.name} across the engine boundary, "
        "and the model writes that memory in place: it runs in the glue so the write reaches every alias "
        "as in eager (an engine may return a copy)"
    )


def test_a_view_of_an_engine_input_written_in_the_glue_is_taken_in_the_glue():
    builder = GraphBuilder()
    x = builder.input(name="x")
    v = _view_flat(builder, x)
    doubled = builder.op("aten::mul", v, v, overload="Tensor", type_=FLAT)
    builder.node("aten::relu_", (v,))
    graph = builder.outputs(builder.op("aten::sigmoid", x), doubled)
    result = partition(graph, test_capability)
    check_partition(graph, result)
    assert [_ops(segment) for segment in result.segments] == [["aten::mul"], ["aten::sigmoid"]]
    assert f"share memory with engine input %{x.name}" in result.fallback_reasons[v.producer]


def test_shared_memory_that_nothing_writes_stays_in_the_engine():
    builder = GraphBuilder()
    h = builder.op("aten::relu", builder.input())
    v = _view_flat(builder, h)
    graph = builder.outputs(h, v)
    result = partition(graph, test_capability)
    check_partition(graph, result)
    assert [_ops(segment) for segment in result.segments] == [["aten::relu", "aten::view"]]
    assert result.segments[0].outputs == [h, v]


def test_chunks_written_in_the_glue_are_unpacked_in_the_glue():
    builder = GraphBuilder()
    h = builder.op("aten::relu", builder.input())
    two, zero = builder.constant(2, INT), builder.constant(0, INT)
    chunks = builder.op("aten::chunk", h, two, zero, type_=ListType(TENSOR))
    first, second = builder.node("prim::ListUnpack", (chunks,), (TENSOR, TENSOR)).outputs
    builder.node("aten::relu_", (first,))
    graph = builder.outputs(builder.op("aten::sigmoid", h), builder.op("aten::neg", second))
    result = partition(graph, _everything)
    check_partition(graph, result)
    assert [_ops(segment) for segment in result.segments] == [["aten::relu"], ["aten::sigmoid", "aten::neg"]]
    reasons = {node.op: reason for node, reason in result.fallback_reasons.items()}
    assert reasons["prim::ListUnpack"].startswith(f"its output %{first.name} would share memory with engine output")
    assert reasons["aten::chunk"].endswith(f"%{chunks.name} consumed outside the engine (engines return only tensors)")


def test_a_list_holding_an_input_and_a_fresh_result_shares_nothing():
    # cat copies: the list that holds x and h is no reason to refuse anything.
    builder = GraphBuilder()
    x = builder.input()
    h = builder.op("aten::relu", x)
    joined = builder.op("aten::cat", builder.op("prim::ListConstruct", x, h, type_=ListType(TENSOR)),
                        builder.constant(0, INT))
    builder.node("aten::relu_", (h,))
    graph = builder.outputs(joined, h)
    result = partition(graph, _everything)
    check_partition(graph, result)
    assert [_ops(segment) for segment in result.segments] == [["aten::relu", "prim::ListConstruct", "aten::cat"]]
    assert list(result.fallback_reasons) == [graph.block.nodes[-1]]


@pytest.mark.parametrize("seed", range(40))
def test_random_graphs_keep_the_invariants_and_are_deterministic(seed):
    graph = random_graph(seed)
    verify(graph)
    first = partition(graph.clone(), test_capability)
    copy = graph.clone()
    second = partition(copy, test_capability)
    check_partition(copy, second)
    assert segment_signature(first) == segment_signature(second)
    glue = [[(repr(node), reason) for node, reason in r.fallback_reasons.items()] for r in (first, second)]
    assert glue[0] == glue[1]
