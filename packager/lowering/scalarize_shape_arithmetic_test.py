from pathlib import Path

import pytest
import torch
import torch.nn as nn

from packager.frontends import import_torchscript
from packager.ir import run_graph
from packager.ir.types import BOOL, INT, ListType, ScalarType, SymDim, TensorType
from packager.ir.verify import verify
from packager.lowering import lower
from packager.lowering._testing import GraphBuilder, assert_same_results, op_counts
from packager.lowering.scalarize_shape_arithmetic import ScalarizeShapeArithmetic
from packager.spec import parse_input_spec

SHAPE = TensorType("int64", ())
REASON = "not_scalarized_reason"
BATCH = SymDim("s0", 1, 8)


def scalarize(graph):
    before = graph.clone()
    changed = ScalarizeShapeArithmetic().run(graph)
    verify(graph)
    return before, changed


def as_tensor(b, number):
    return b.op("prim::NumToTensor", number, out=SHAPE, overload="Scalar")


def nodes(graph, op, overload=None):
    return [node for node in graph.walk() if node.op == op and overload in (None, node.overload)]


def test_traced_halving_of_a_size_becomes_int_floordiv():
    """``x.view(x.size(0) // 2, -1)`` as traced: through a 0-dim tensor and back."""
    b = GraphBuilder()
    x = b.input(TensorType("float32", (BATCH, 4)))
    batch = b.op("aten::size", x, 0, out=ScalarType("int", "s0"), overload="int")
    halved = b.op("aten::floor_divide", as_tensor(b, batch), torch.tensor(2), out=SHAPE)
    rows = b.op("aten::Int", halved, out=ScalarType("int", "s0 // 2"), overload="Tensor")
    shape = b.op("prim::ListConstruct", rows, -1, out=ListType(INT))
    graph = b.returns(b.op("aten::view", x, shape, out=TensorType("float32", (SymDim("s0 // 2"), 8))))

    before, changed = scalarize(graph)

    assert changed
    assert "aten::Int" not in op_counts(graph)
    (floordiv,) = nodes(graph, "aten::floordiv", "int")
    assert floordiv.inputs[0] is batch
    assert floordiv.output.type == ScalarType("int", "s0 // 2")
    assert shape.producer.inputs[0] is floordiv.output
    for rows_in in (2, 4, 6):
        assert_same_results(before, graph, [torch.randn(rows_in, 4)])
    assert ScalarizeShapeArithmetic().run(graph) is False


def test_int_of_num_to_tensor_is_the_number():
    b = GraphBuilder()
    n = b.input(INT, "n")
    graph = b.returns(b.op("aten::Int", as_tensor(b, n), out=ScalarType("int", "s0"), overload="Tensor"))

    _, changed = scalarize(graph)

    assert changed
    assert graph.outputs[0] is n
    assert n.type == ScalarType("int", "s0")  # the symbol the front end found for the read


@pytest.mark.parametrize(
    "op, overload, extra, int_op, symbol",
    [
        ("aten::floor_divide", "", (), "aten::floordiv", "n // m"),
        ("aten::div", "Tensor_mode", ("floor",), "aten::floordiv", "n // m"),
        ("aten::mul", "Tensor", (), "aten::mul", "n * m"),
        ("aten::add", "Tensor", (1,), "aten::add", "n + m"),
        ("aten::sub", "Tensor", (1,), "aten::sub", "n - m"),
        ("aten::remainder", "Tensor", (), "aten::remainder", "n % m"),
    ],
)
def test_tensor_arithmetic_of_two_numbers_becomes_int_arithmetic(op, overload, extra, int_op, symbol):
    b = GraphBuilder()
    n, m = b.input(ScalarType("int", "n")), b.input(ScalarType("int", "m"))
    combined = b.op(op, as_tensor(b, n), as_tensor(b, m), *extra, out=SHAPE, overload=overload)
    graph = b.returns(b.op("aten::Int", combined, out=INT, overload="Tensor"))

    before, changed = scalarize(graph)

    assert changed
    (node,) = nodes(graph, int_op, "int")
    assert node.inputs == (n, m)
    assert node.output.type == ScalarType("int", symbol)
    for n_value, m_value in [(7, 2), (-7, 2), (7, -2), (-7, -3), (0, 5)]:  # floor and sign rules agree
        assert_same_results(before, graph, [n_value, m_value])


@pytest.mark.parametrize(
    "op, overload, extra, int_op",
    [
        ("aten::floor_divide", "Scalar", (), "aten::floordiv"),
        ("aten::div", "Scalar_mode", ("floor",), "aten::floordiv"),
        ("aten::mul", "Scalar", (), "aten::mul"),
        ("aten::add", "Scalar", (1,), "aten::add"),
        ("aten::sub", "Scalar", (1,), "aten::sub"),
        ("aten::remainder", "Scalar", (), "aten::remainder"),
    ],
)
def test_tensor_arithmetic_with_an_int_becomes_int_arithmetic(op, overload, extra, int_op):
    b = GraphBuilder()
    n = b.input(ScalarType("int", "s0"))
    combined = b.op(op, as_tensor(b, n), -3, *extra, out=SHAPE, overload=overload)
    graph = b.returns(b.op("aten::Int", combined, out=INT, overload="Tensor"))

    before, changed = scalarize(graph)

    assert changed
    (node,) = nodes(graph, int_op, "int")
    assert node.inputs[0] is n and node.inputs[1].producer.attrs["value"] == -3
    for value in (-5, 0, 7):
        assert_same_results(before, graph, [value])


def test_nested_chain_shares_results_and_builds_the_expression():
    """``(s0 * s1 - 1) // 4`` read twice: one int chain, the tensors left to DCE."""
    b = GraphBuilder()
    n, m = b.input(ScalarType("int", "s0")), b.input(ScalarType("int", "s1"))
    product = b.op("aten::mul", as_tensor(b, n), as_tensor(b, m), out=SHAPE, overload="Tensor")
    less = b.op("aten::sub", product, torch.tensor(1), 1, out=SHAPE, overload="Tensor")
    quarter = b.op("aten::floor_divide", less, 4, out=SHAPE, overload="Scalar")
    first = b.op("aten::Int", quarter, out=INT, overload="Tensor")
    second = b.op("aten::ScalarImplicit", quarter, out=ScalarType("Scalar"))
    graph = b.returns(first, second)

    before, changed = scalarize(graph)

    assert changed
    assert graph.outputs[0] is graph.outputs[1]
    assert graph.outputs[0].type == ScalarType("int", "((s0 * s1) - 1) // 4")
    assert [op_counts(graph)[op] for op in ("aten::mul", "aten::sub", "aten::floordiv")] == [2, 2, 1]
    for values in [(3, 5), (1, 1), (8, 2)]:
        assert_same_results(before, graph, list(values))


def test_tensor_with_other_uses_stays_for_them():
    b = GraphBuilder()
    x = b.input(TensorType("float32", (BATCH, 3)))
    batch = b.op("aten::size", x, 0, out=ScalarType("int", "s0"), overload="int")
    doubled = b.op("aten::mul", as_tensor(b, batch), 2, out=SHAPE, overload="Scalar")
    scaled = b.op("aten::mul", x, doubled, out=TensorType("float32", (BATCH, 3)), overload="Tensor")
    graph = b.returns(scaled, b.op("aten::Int", doubled, out=INT, overload="Tensor"))

    before, changed = scalarize(graph)

    assert changed
    assert op_counts(graph)["aten::mul"] == 3  # the tensor one and the scaling stay, plus mul.int
    assert scaled.producer.inputs[1] is doubled
    assert graph.outputs[1].producer.op == "aten::mul" and graph.outputs[1].producer.overload == "int"
    assert_same_results(before, graph, [torch.randn(5, 3)])


def test_read_inside_a_branch_of_a_size_computed_outside():
    b = GraphBuilder()
    n = b.input(ScalarType("int", "s0"))
    flag = b.input(BOOL)
    halved = b.op("aten::floor_divide", as_tensor(b, n), 2, out=SHAPE, overload="Scalar")
    branch = b.node("prim::If", flag, out=[INT])
    then_block, else_block = branch.add_block(), branch.add_block()
    then_block.set_returns([b.op("aten::Int", halved, out=INT, overload="Tensor", block=then_block)])
    else_block.set_returns([b.const(0, else_block)])
    graph = b.returns(branch.output)

    before, changed = scalarize(graph)

    assert changed
    assert "aten::Int" not in op_counts(graph)
    for flag_value in (True, False):
        assert_same_results(before, graph, [9, flag_value])


# ------------------------------------------------------------------------------- refusals
def refused(graph, op="aten::Int"):
    before, changed = scalarize(graph)
    assert not changed
    assert op_counts(graph) == op_counts(before)
    return nodes(graph, op)[0].meta[REASON]


def test_keeps_a_read_of_tensor_data():
    b = GraphBuilder()
    x = b.input(TensorType("int64", (BATCH,)))
    total = b.op("aten::sum", x, None, out=SHAPE)
    graph = b.returns(b.op("aten::Int", total, out=INT, overload="Tensor"))

    assert refused(graph) == f"%{total.name} comes from aten::sum, which is not shape arithmetic"


def test_keeps_a_read_of_an_input_tensor():
    b = GraphBuilder()
    count = b.input(SHAPE, "count")
    graph = b.returns(b.op("aten::Int", count, out=INT, overload="Tensor"))

    assert refused(graph) == "%count is a graph or block input, not computed from sizes"


def test_keeps_a_read_of_a_float_tensor():
    b = GraphBuilder()
    n = b.input(INT)
    scaled = b.op("aten::mul", as_tensor(b, n), 0.5, out=TensorType("float32", ()), overload="Scalar")
    graph = b.returns(b.op("aten::Int", scaled, out=INT, overload="Tensor"))

    assert refused(graph) == f"%{scaled.name} is Tensor(float32, []), not a 0-dim int64 tensor"


def test_keeps_a_read_with_alpha_or_truncating_division():
    b = GraphBuilder()
    n = b.input(INT)
    scaled = b.op("aten::add", as_tensor(b, n), 3, 2, out=SHAPE, overload="Scalar")
    truncated = b.op("aten::div", as_tensor(b, n), 2, "trunc", out=SHAPE, overload="Scalar_mode")
    b.returns(b.op("aten::Int", scaled, out=INT, overload="Tensor"),
              b.op("aten::Int", truncated, out=INT, overload="Tensor"))
    graph = b.graph

    scalarize(graph)

    reasons = [node.meta[REASON] for node in nodes(graph, "aten::Int")]
    assert reasons == ["aten::add.Scalar scales its second operand (alpha is not the constant 1)",
                       "aten::div.Scalar_mode does not round down (rounding_mode is not the constant 'floor')"]


def test_keeps_a_read_of_a_tensor_written_in_place():
    b = GraphBuilder()
    n = b.input(INT)
    counter = as_tensor(b, n)
    b.op("aten::add_", counter, 1, 1, out=SHAPE, overload="Scalar")
    graph = b.returns(b.op("aten::Int", counter, out=INT, overload="Tensor"))

    reason = refused(graph)

    assert reason == f"%{counter.name} (or a tensor sharing its memory) is written in place"


def test_keeps_a_read_of_arithmetic_with_a_number_that_may_be_a_float():
    b = GraphBuilder()
    n = b.input(INT)
    scalar = b.input(ScalarType("Scalar"), "factor")
    scaled = b.op("aten::mul", as_tensor(b, n), scalar, out=SHAPE, overload="Scalar")
    graph = b.returns(b.op("aten::Int", scaled, out=INT, overload="Tensor"))

    assert refused(graph) == "aten::mul.Scalar takes %factor (Scalar), not an int"


# ------------------------------------------------------------------------ through the front end
class HalvesChannels(nn.Module):
    def forward(self, x):
        grouped = x.view(x.size(0), x.size(1) // 2, 2, -1).relu()
        return grouped.reshape(x.size(0) * (x.size(1) // 2), 2 * x.size(2))


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_traced_shape_arithmetic_reads_sizes_as_ints(tmp_path: Path):
    module = torch.jit.trace(HalvesChannels(), torch.randn(2, 8, 4))
    path = tmp_path / "halves.pt"
    torch.jit.save(module, str(path))
    graph = import_torchscript(path, [parse_input_spec("1..4x4..16x4..6")])
    computed = [node for node in nodes(graph, "aten::Int") if node.inputs[0].producer.op != "prim::NumToTensor"]
    assert computed, "the trace should read sizes back from tensor arithmetic"

    report = lower(graph)

    assert report.converged
    assert "aten::Int" not in op_counts(graph)
    assert "prim::NumToTensor" not in op_counts(graph)  # dead once nothing reads the tensors
    assert not [note for note in report.notes if note.key == REASON]
    for shape in [(1, 4, 4), (3, 10, 5), (4, 16, 6)]:
        inputs = torch.randn(shape)
        torch.testing.assert_close(run_graph(graph, [inputs]), module(inputs), rtol=0, atol=0)
