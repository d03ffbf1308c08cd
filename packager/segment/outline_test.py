import pytest
import torch

from packager.errors import PartitionError
from packager.ir import BOOL, INT, format_graph, run_graph, verify
from packager.segment import ENGINE_OP, Segment, outline, partition
from packager.segment._testing import (
    TENSOR,
    GraphBuilder,
    random_graph,
    run_outlined,
    same_results,
    test_capability,
)


def _glue_ops(graph):
    return [node.op for node in graph.block.nodes]


def _relu_sin_relu():
    builder = GraphBuilder()
    x = builder.input(name="x")
    middle = builder.op("aten::sin", builder.op("aten::relu", x))
    return builder.outputs(builder.op("aten::relu", middle))


def _fresh(inputs):
    # Graphs may write to their inputs in place: give each run its own copies.
    return [value.clone() if isinstance(value, torch.Tensor) else value for value in inputs]


def _check_equivalent(original, outlined, engines, inputs):
    expected = run_graph(original, _fresh(inputs))
    actual = run_outlined(outlined, engines, _fresh(inputs))
    assert same_results(expected, actual)


def test_relu_sin_relu_becomes_engine_glue_engine():
    graph = _relu_sin_relu()
    original = graph.clone()
    engines = outline(graph, partition(graph, test_capability))
    assert _glue_ops(graph) == [ENGINE_OP, "aten::sin", ENGINE_OP]
    first, sin, second = graph.block.nodes
    assert first.attrs == {"segment": "seg0"} and second.attrs == {"segment": "seg1"}
    assert first.inputs == graph.inputs and sin.inputs == tuple(first.outputs)
    assert graph.outputs == tuple(second.outputs)
    assert sorted(engines) == ["seg0", "seg1"]
    for segment_id, engine in engines.items():
        assert engine.meta["segment_id"] == segment_id
        assert [node.op for node in engine.block.nodes] == ["aten::relu"]
        assert all(value.is_tensor for value in (*engine.inputs, *engine.outputs))
    assert [value.name for value in engines["seg0"].inputs] == ["x"]  # names are kept
    _check_equivalent(original, graph, engines, [torch.randn(2, 3)])


def test_constants_are_copied_into_engines_and_dropped_from_the_glue_when_unused():
    builder = GraphBuilder()
    x = builder.input()
    weight = builder.constant(torch.randn(2, 3), TENSOR)
    one = builder.constant(1, INT)
    left = builder.op("aten::mul", builder.op("aten::relu", x), weight, overload="Tensor")
    middle = builder.op("aten::sub", left, x, one, overload="Tensor")  # glue, uses `one`
    right = builder.op("aten::mul", middle, weight, overload="Tensor")
    graph = builder.outputs(right)
    original = graph.clone()
    engines = outline(graph, partition(graph, test_capability))
    # The weight is gone from the glue; `one` stays because the glue still uses it.
    assert _glue_ops(graph) == ["prim::Constant", ENGINE_OP, "aten::sub", ENGINE_OP]
    assert graph.block.nodes[0].attrs["value"] == 1
    for engine in engines.values():
        constants = [node for node in engine.block.nodes if node.op == "prim::Constant"]
        assert len(constants) == 1 and constants[0].attrs["value"] is weight.producer.attrs["value"]
    _check_equivalent(original, graph, engines, [torch.randn(2, 3)])


def test_independent_branches_are_reordered_around_one_engine():
    builder = GraphBuilder()
    x, y = builder.input(), builder.input()
    left = builder.op("aten::sin", builder.op("aten::relu", x))
    right = builder.op("aten::sin", builder.op("aten::sigmoid", y))
    graph = builder.outputs(left, right)
    original = graph.clone()
    engines = outline(graph, partition(graph, test_capability))
    assert _glue_ops(graph) == [ENGINE_OP, "aten::sin", "aten::sin"]
    assert len(graph.block.nodes[0].outputs) == 2
    _check_equivalent(original, graph, engines, [torch.randn(2, 3), torch.randn(2, 3)])


def test_control_flow_bodies_are_outlined():
    builder = GraphBuilder()
    x, flag = builder.input(), builder.input(BOOL)
    branch = builder.node("prim::If", (flag,))
    then_block, else_block = branch.add_block(), branch.add_block()
    then_block.set_returns([builder.op("aten::sin", builder.op("aten::relu", x, block=then_block), block=then_block)])
    else_block.set_returns([builder.add(x, x, else_block)])
    loop = builder.node("prim::Loop", (builder.constant(2, INT), builder.constant(True, BOOL), branch.output))
    body = loop.add_block()
    body.add_param(INT)
    carried = body.add_param(TENSOR)
    step = builder.op("aten::sin", builder.op("aten::mul", carried, x, overload="Tensor", block=body), block=body)
    body.set_returns([builder.constant(True, BOOL, body), builder.op("aten::sigmoid", step, block=body)])
    graph = builder.outputs(loop.output)
    original = graph.clone()
    engines = outline(graph, partition(graph, test_capability))
    assert [node.op for node in then_block.nodes] == [ENGINE_OP, "aten::sin"]
    assert [node.op for node in else_block.nodes] == [ENGINE_OP]  # its alpha constant moved inside
    assert [node.op for node in body.nodes] == [ENGINE_OP, "aten::sin", "prim::Constant", ENGINE_OP]
    assert len(engines) == 4
    for flag_value in (True, False):
        _check_equivalent(original, graph, engines, [torch.randn(2, 3), torch.tensor(flag_value)])


def test_nothing_moves_across_an_in_place_write():
    builder = GraphBuilder()
    x = builder.input()
    before = builder.op("aten::relu", x)
    builder.node("aten::add_", (x, before, builder.constant(1, INT)), overload="Tensor")
    after = builder.op("aten::sigmoid", x)
    graph = builder.outputs(before, after)
    original = graph.clone()
    engines = outline(graph, partition(graph, test_capability))
    assert _glue_ops(graph) == [ENGINE_OP, "prim::Constant", "aten::add_", ENGINE_OP]
    _check_equivalent(original, graph, engines, [torch.randn(2, 3)])


@pytest.mark.parametrize("seed", range(40))
def test_random_graphs_compute_exactly_the_same_after_outlining(seed):
    graph = random_graph(seed)
    original = graph.clone()
    result = partition(graph, test_capability)
    engines = outline(graph, result)
    assert sorted(engines) == sorted(segment.id for segment in result.segments)
    assert sum(1 for node in graph.walk() if node.op == ENGINE_OP) == len(engines)
    generator = torch.Generator().manual_seed(seed)
    x, y = torch.randn(2, 3, generator=generator), torch.randn(2, 3, generator=generator)
    for flag in (True, False):
        _check_equivalent(original, graph, engines, [x, y, flag])


def test_a_stale_partition_is_refused_and_the_graph_left_alone():
    graph = _relu_sin_relu()
    result = partition(graph, test_capability)
    outline(graph, result)
    before = format_graph(graph)
    with pytest.raises(PartitionError, match="no longer in the segment's block"):
        outline(graph, result)
    assert format_graph(graph) == before


def test_a_non_convex_segment_is_refused():
    builder = GraphBuilder()
    a = builder.op("aten::relu", builder.input())
    unsupported = builder.op("aten::sin", a)
    c = builder.op("aten::mul", a, unsupported, overload="Tensor")
    graph = builder.outputs(c)
    nodes = [a.producer, c.producer]
    cyclic = partition(graph, test_capability)
    cyclic.segments = [Segment("seg0", graph.block, nodes, [graph.inputs[0], unsupported], [a, c])]
    before = format_graph(graph)
    with pytest.raises(PartitionError, match="cycle"):
        outline(graph, cyclic)
    assert format_graph(graph) == before
    verify(graph)


def test_a_non_tensor_boundary_is_refused():
    builder = GraphBuilder()
    x = builder.input()
    rows = builder.op("aten::size", x, builder.constant(0, INT), overload="int", type_=INT)
    graph = builder.outputs(rows)
    result = partition(graph, test_capability)
    assert result.segments == []
    result.segments = [Segment("seg0", graph.block, [rows.producer], [x], [rows])]
    with pytest.raises(PartitionError, match="only tensors"):
        outline(graph, result)


class _LoopBranchView(torch.nn.Module):
    def forward(self, x):
        y = torch.relu(x)
        for i in range(3):
            y = torch.sin(y) * x + i
        if bool(y.sum() > 0):
            y = torch.relu(y)
        return torch.sigmoid(y.view(y.size(0), -1))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_a_scripted_model_computes_the_same_after_outlining():
    torchscript = pytest.importorskip("packager.frontends.torchscript")
    spec = pytest.importorskip("packager.spec")
    model = torch.jit.script(_LoopBranchView())
    graph = torchscript.import_torchscript(model, [spec.parse_input_spec("2x3x4:float32")])
    original = graph.clone()
    engines = outline(graph, partition(graph, test_capability))
    assert engines and all(node.op != "aten::relu" for node in graph.walk())
    _check_equivalent(original, graph, engines, [torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0))])
