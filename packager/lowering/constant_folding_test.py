import torch

from packager.ir.types import BOOL, INT, ListType, SymDim, TensorType
from packager.ir.verify import verify
from packager.lowering._testing import GraphBuilder, assert_same_results, op_counts, tensor_type
from packager.lowering.constant_folding import ConstantFolding
from packager.lowering.dead_code_elimination import DeadCodeElimination

T = tensor_type(2, 3)


def fold(graph, **options):
    before = graph.clone()
    changed = ConstantFolding(**options).run(graph)
    verify(graph)
    DeadCodeElimination().run(graph)
    verify(graph)
    return before, changed


def constants(graph):
    return [node.attrs["value"] for node in graph.walk() if node.op == "prim::Constant"]


def test_folds_arithmetic_on_weights():
    b = GraphBuilder()
    x = b.input(T)
    weight = torch.randn(3, 2)
    transposed = b.op("aten::t", weight, out=T)
    scaled = b.op("aten::mul", transposed, 0.5, out=T, overload="Scalar")
    graph = b.returns(b.op("aten::add", x, scaled, 1, out=T, overload="Tensor"))

    before, changed = fold(graph)

    assert changed
    assert op_counts(graph) == {"aten::add": 1, "prim::Constant": 2}
    folded = next(value for value in constants(graph) if isinstance(value, torch.Tensor))
    assert folded.shape == (2, 3) and folded._base is None
    assert_same_results(before, graph, [torch.randn(2, 3)])
    assert ConstantFolding().run(graph) is False


def test_folds_shape_arithmetic_when_dims_are_static():
    b = GraphBuilder()
    x = b.input(TensorType("float32", (SymDim("s0", 1, 8), 6)))
    columns = b.op("aten::size", x, 1, out=INT, overload="int")
    as_tensor = b.op("prim::NumToTensor", columns, out=tensor_type(dtype="int64"), overload="Scalar")
    halved = b.op("aten::floor_divide", as_tensor, 2, out=tensor_type(dtype="int64"), overload="Scalar")
    half = b.op("aten::Int", halved, out=INT, overload="Tensor")
    shape = b.op("prim::ListConstruct", -1, half, out=ListType(INT))
    batch = b.op("aten::size", x, 0, out=INT, overload="int")
    graph = b.returns(b.op("aten::view", x, shape, out=tensor_type()), batch)

    before, changed = fold(graph)

    assert changed
    assert op_counts(graph) == {"aten::size": 1, "aten::view": 1, "prim::Constant": 2}
    assert [-1, 3] in constants(graph)
    assert_same_results(before, graph, [torch.randn(4, 6)])


def test_inlines_if_with_constant_condition():
    b = GraphBuilder()
    x = b.input(T)
    if_node = b.node("prim::If", True, out=[T])
    then_block, else_block = if_node.add_block(), if_node.add_block()
    then_block.set_returns([b.op("aten::relu", x, out=T, block=then_block)])
    else_block.set_returns([b.op("aten::neg", x, out=T, block=else_block)])
    graph = b.returns(b.op("aten::exp", if_node.output, out=T))

    before, changed = fold(graph)

    assert changed
    assert op_counts(graph) == {"aten::relu": 1, "aten::exp": 1}
    assert_same_results(before, graph, [torch.randn(2, 3)])


def test_removes_loop_that_runs_zero_times():
    b = GraphBuilder()
    x = b.input(T)
    loop = b.node("prim::Loop", 0, True, x, out=[T])
    body = loop.add_block()
    body.add_param(INT)
    carried = body.add_param(T)
    body.set_returns([b.const(True, body), b.op("aten::relu", carried, out=T, block=body)])
    graph = b.returns(loop.output)

    before, changed = fold(graph)

    assert changed
    assert op_counts(graph) == {}
    assert_same_results(before, graph, [torch.randn(2, 3)])


def test_does_not_fold_random_or_default_dependent_ops():
    b = GraphBuilder()
    x = b.input(T)
    noise = b.op("aten::rand", [2, 3], torch.float32, None, "cpu", None, out=T)
    dropped = b.op("aten::dropout", torch.ones(2, 3), 0.5, True, out=T)
    zeros = b.op("aten::zeros", [2, 3], None, None, None, None, out=T)
    total = b.op("aten::add", b.op("aten::add", noise, dropped, 1, out=T, overload="Tensor"), zeros, 1,
                 out=T, overload="Tensor")
    graph = b.returns(b.op("aten::mul", x, total, out=T, overload="Tensor"))

    before, changed = fold(graph)

    assert not changed
    assert op_counts(graph) == op_counts(before)
    reasons = {node.op: node.meta.get("not_folded_reason") for node in graph.walk()}
    # Random draws are plainly run-time work: no note. Defaults could surprise: a note.
    assert reasons["aten::rand"] is None and reasons["aten::dropout"] is None
    assert reasons["aten::zeros"] == "it allocates with the default dtype, which the run time may set differently"


def test_does_not_fold_reads_of_a_constant_written_in_place():
    b = GraphBuilder()
    x = b.input(T)
    state = b.const(torch.zeros(2, 3))
    doubled = b.op("aten::mul", state, 2.0, out=T, overload="Scalar")
    b.op("aten::add_", state, x, 1, out=T, overload="Tensor")
    graph = b.returns(b.op("aten::add", doubled, state, 1, out=T, overload="Tensor"))

    before, changed = fold(graph)

    assert not changed
    assert op_counts(graph)["aten::mul"] == 1
    assert "written in place" in next(n for n in graph.walk() if n.op == "aten::mul").meta["not_folded_reason"]
    assert_same_results(before, graph, [torch.randn(2, 3)])


def test_does_not_store_an_expansion_past_the_cap():
    b = GraphBuilder()
    x = b.input(tensor_type(64, 64))
    row = torch.randn(1, 64)
    # Unknown output shape: the size is predicted on the meta device, nothing is allocated.
    big = b.op("aten::expand", row, [64, 64], False, out=TensorType("float32"))
    graph = b.returns(b.op("aten::add", x, big, 1, out=tensor_type(64, 64), overload="Tensor"))

    before, changed = fold(graph, max_elements=1000)

    assert not changed
    expand = next(n for n in graph.walk() if n.op == "aten::expand")
    assert "4096 elements" in expand.meta["not_folded_reason"]
    assert_same_results(before, graph, [torch.randn(64, 64)])


def test_does_not_fold_size_of_a_dynamic_dim_or_an_if_on_an_input():
    b = GraphBuilder()
    x = b.input(TensorType("float32", (SymDim("s0", 1, 8), 3)))
    flag = b.input(BOOL)
    batch = b.op("aten::size", x, 0, out=INT, overload="int")
    if_node = b.node("prim::If", flag, out=[INT])
    for block in (if_node.add_block(), if_node.add_block()):
        block.set_returns([batch])
    graph = b.returns(if_node.output)

    before, changed = fold(graph)

    assert not changed
    assert op_counts(graph) == op_counts(before)
    assert_same_results(before, graph, [torch.randn(5, 3), True])
