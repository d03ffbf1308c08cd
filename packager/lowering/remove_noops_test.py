import pytest
import torch

from packager.ir.types import BOOL, INT, ListType, OptionalType, ScalarType, SymDim, TensorType
from packager.ir.verify import verify
from packager.lowering._testing import GraphBuilder, assert_same_results, op_counts, tensor_type
from packager.lowering.remove_noops import RemoveNoops

T = tensor_type(2, 3)


def remove(graph):
    before = graph.clone()
    changed = RemoveNoops().run(graph)
    verify(graph)
    return before, changed


def single(op, *arguments, out=T, overload="", input_type=T):
    """x -> op(x, *arguments) -> relu -> output."""
    b = GraphBuilder()
    x = b.input(input_type)
    result = b.op(op, x, *arguments, out=out, overload=overload)
    return b.returns(b.op("aten::relu", result, out=out))


@pytest.mark.parametrize(
    "op, arguments, overload",
    [
        ("aten::dropout", (0.5, False), ""),
        ("aten::dropout_", (0.5, False), ""),
        ("aten::feature_dropout", (0.2, False), ""),
        ("aten::detach", (), ""),
        ("aten::alias", (), ""),
        ("aten::contiguous", (0,), ""),
        ("aten::clone", (None,), ""),
        ("aten::to", (6, False, False, None), "dtype"),
        ("aten::to", (torch.float32, False, False, None), "dtype"),
        ("aten::to", (None, None, None, None, False, False, None), "dtype_layout"),
        ("aten::view", ([2, 3],), ""),
        ("aten::reshape", ([-1, 3],), ""),
        ("prim::unchecked_cast", (), ""),
    ],
)
def test_removes_noop(op, arguments, overload):
    graph = single(op, *arguments, overload=overload)

    before, changed = remove(graph)

    assert changed
    assert op not in op_counts(graph)
    relu = next(node for node in graph.walk() if node.op == "aten::relu")
    assert relu.inputs[0] is graph.inputs[0]
    assert_same_results(before, graph, [torch.randn(2, 3)])
    assert RemoveNoops().run(graph) is False


def test_removes_type_as_between_tensors_on_the_run_device():
    b = GraphBuilder()
    x = b.input(T)
    weight = b.const(torch.randn(2, 3))
    graph = b.returns(b.op("aten::add", b.op("aten::type_as", x, weight, out=T), weight, 1, out=T, overload="Tensor"))

    before, changed = remove(graph)

    assert changed
    assert "aten::type_as" not in op_counts(graph)
    assert_same_results(before, graph, [torch.randn(2, 3)])


def test_removes_view_to_same_shape_with_a_dynamic_batch():
    batch = SymDim("s0", 1, 8)
    b = GraphBuilder()
    x = b.input(TensorType("float32", (batch, 3)))
    shape = b.op("prim::ListConstruct", -1, 3, out=ListType(INT))
    graph = b.returns(b.op("aten::view", x, shape, out=TensorType("float32", (batch, 3))))

    before, changed = remove(graph)

    assert changed
    assert graph.outputs[0] is graph.inputs[0]
    assert_same_results(before, graph, [torch.randn(5, 3)])


def test_removes_view_whose_sizes_match_symbolic_dims_by_symbol():
    batch = SymDim("s0", 1, 8)
    b = GraphBuilder()
    x = b.input(TensorType("float32", (batch, 4, 2)))
    pooled = b.op("aten::relu", x, out=TensorType("float32", (batch, 4, 2)))
    size = b.op("aten::size", x, 0, out=ScalarType("int", symbol="s0"), overload="int")
    shape = b.op("prim::ListConstruct", size, 4, -1, out=ListType(INT))
    graph = b.returns(b.op("aten::view", pooled, shape, out=TensorType("float32", (batch, 4, 2))))

    before, changed = remove(graph)

    assert changed
    assert "aten::view" not in op_counts(graph)
    assert_same_results(before, graph, [torch.randn(3, 4, 2)])


def test_removes_contiguous_whose_layout_is_reset_before_a_view():
    b = GraphBuilder()
    x = b.input(T)
    dense = b.op("aten::contiguous", b.op("aten::t", x, out=tensor_type(3, 2)), 0, out=tensor_type(3, 2))
    projected = b.op("aten::linear", dense, torch.randn(4, 2), None, out=tensor_type(3, 4))
    graph = b.returns(b.op("aten::view", projected, [12], out=tensor_type(12)))

    before, changed = remove(graph)

    assert changed
    assert "aten::contiguous" not in op_counts(graph)
    assert_same_results(before, graph, [torch.randn(2, 3)])


def refused(graph, op):
    before, changed = remove(graph)
    assert not changed
    assert op_counts(graph) == op_counts(before)
    return next(node for node in graph.walk() if node.op == op).meta.get("not_removed_reason"), before


# Ops that plainly do work stay without a note: there is nothing to explain to the user.
@pytest.mark.parametrize(
    "op, arguments, overload, out",
    [
        ("aten::dropout", (0.5, True), "", T),
        ("aten::to", (torch.float16, False, False, None), "dtype", tensor_type(2, 3, dtype="float16")),
        ("aten::view", ([3, 2],), "", tensor_type(3, 2)),
        ("aten::clone", (2,), "", T),
    ],
)
def test_keeps_an_op_that_does_work(op, arguments, overload, out):
    reason, _ = refused(single(op, *arguments, overload=overload, out=out), op)
    assert reason is None


def test_explains_a_to_whose_copy_flag_is_unknown():
    b = GraphBuilder()
    x = b.input(T)
    copy = b.input(BOOL)
    graph = b.returns(b.op("aten::to", x, 6, False, copy, None, out=T, overload="dtype"))

    reason, _ = refused(graph, "aten::to")

    assert reason == "its copy flag is not a constant"


def test_explains_a_view_it_cannot_prove_the_same():
    batch = SymDim("s0", 1, 8)
    b = GraphBuilder()
    x = b.input(TensorType("float32", (batch, 3)))
    rows = b.input(INT)
    shape = b.op("prim::ListConstruct", rows, 3, out=ListType(INT))
    graph = b.returns(b.op("aten::view", x, shape, out=TensorType("float32", (batch, 3))))

    reason, _ = refused(graph, "aten::view")

    assert reason == "dim 0: cannot show that the requested size equals s0[1..8]"


def test_keeps_contiguous_before_a_view():
    b = GraphBuilder()
    x = b.input(T)
    transposed = b.op("aten::transpose", x, 0, 1, out=tensor_type(3, 2), overload="int")
    dense = b.op("aten::contiguous", b.op("aten::relu", transposed, out=tensor_type(3, 2)), 0, out=tensor_type(3, 2))
    graph = b.returns(b.op("aten::view", dense, [6], out=tensor_type(6)))

    reason, before = refused(graph, "aten::contiguous")

    assert reason == "its output reaches aten::view, which depends on the copy's layout"
    assert_same_results(before, graph, [torch.randn(2, 3)])


def test_keeps_a_clone_written_in_place():
    b = GraphBuilder()
    x = b.input(T)
    copy = b.op("aten::clone", x, None, out=T)
    b.op("aten::add_", copy, 1.0, out=T, overload="Scalar")
    graph = b.returns(b.op("aten::add", x, copy, 1, out=T, overload="Tensor"))

    reason, before = refused(graph, "aten::clone")

    assert "written in place" in reason
    assert_same_results(before, graph, [torch.randn(2, 3)])


def test_keeps_a_clone_of_an_input_that_is_returned():
    b = GraphBuilder()
    x = b.input(T)
    graph = b.returns(b.op("aten::clone", x, None, out=T))

    reason, _ = refused(graph, "aten::clone")

    assert reason.startswith("the copy is a graph output")


def test_keeps_unchecked_cast_that_refines_optional():
    b = GraphBuilder()
    maybe = b.input(OptionalType(T))
    graph = b.returns(b.op("prim::unchecked_cast", maybe, out=T))

    reason, _ = refused(graph, "prim::unchecked_cast")

    assert reason is None


def test_keeps_type_as_that_moves_a_factory_tensor():
    b = GraphBuilder()
    x = b.input(T)
    mask = b.op("aten::ones", [2, 3], None, None, None, None, out=T)
    graph = b.returns(b.op("aten::mul", x, b.op("aten::type_as", mask, x, out=T), out=T, overload="Tensor"))

    reason, before = refused(graph, "aten::type_as")

    assert "may live on another device" in reason
    assert_same_results(before, graph, [torch.randn(2, 3)])
