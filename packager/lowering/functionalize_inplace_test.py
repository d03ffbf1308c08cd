from pathlib import Path

import pytest
import torch
import torch.nn as nn

from packager.frontends import import_torchscript
from packager.ir import run_graph
from packager.ir.types import BOOL, INT, ListType
from packager.ir.verify import verify
from packager.lowering import lower
from packager.lowering._testing import GraphBuilder, assert_same_results, op_counts, tensor_type
from packager.lowering.functionalize_inplace import ALLOCATING_COMPOSITE_OPS, FunctionalizeInplace
from packager.spec import parse_input_spec

T = tensor_type(2, 3)
IMAGE = tensor_type(2, 3, 8, 8)
FEATURES = tensor_type(2, 4, 6, 6)
REASON = "not_functionalized_reason"


def functionalize(graph):
    before = graph.clone()
    changed = FunctionalizeInplace().run(graph)
    verify(graph)
    return before, changed


def conv(b, x, channels_in, channels_out, out, seed):
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(channels_out, channels_in, 3, 3, generator=generator)
    bias = torch.randn(channels_out, generator=generator)
    return b.op("aten::conv2d", x, weight, bias, [1, 1], [0, 0], [1, 1], 1, out=out)


def test_relu_between_convolutions_becomes_functional():
    b = GraphBuilder()
    x = b.input(IMAGE)
    features = conv(b, x, 3, 4, FEATURES, seed=0)
    activated = b.op("aten::relu_", features, out=FEATURES)
    graph = b.returns(conv(b, activated, 4, 2, tensor_type(2, 2, 4, 4), seed=1))

    before, changed = functionalize(graph)

    assert changed
    assert op_counts(graph)["aten::relu"] == 1 and "aten::relu_" not in op_counts(graph)
    relu = next(node for node in graph.walk() if node.op == "aten::relu")
    assert relu.inputs[0] is features and relu.output.name == activated.name
    assert_same_results(before, graph, [torch.randn(2, 3, 8, 8)])
    assert FunctionalizeInplace().run(graph) is False


@pytest.mark.parametrize(
    "op, overload, arguments, functional_overload",
    [
        ("aten::relu_", "", (), ""),
        ("aten::sigmoid_", "", (), ""),
        ("aten::silu_", "", (), ""),
        ("aten::gelu_", "", ("tanh",), ""),
        ("aten::hardtanh_", "", (0.0, 6.0), ""),
        ("aten::clamp_", "", (-0.5, None), ""),
        ("aten::add_", "Scalar", (2.0, 1), "Scalar"),
        ("aten::add_", "Tensor", (torch.randn(3), 2), "Tensor"),
        ("aten::mul_", "Tensor", (torch.randn(2, 3),), "Tensor"),
        ("aten::masked_fill_", "Scalar", (torch.tensor([True, False, True]), 0.0), "Scalar"),
        # Twins under another overload name, found by their arguments.
        ("aten::floor_divide_", "Tensor", (torch.full((2, 3), 0.7),), ""),
        ("aten::pow_", "Scalar", (2.0,), "Tensor_Scalar"),
    ],
)
def test_rewrites_in_place_op_to_its_out_of_place_form(op, overload, arguments, functional_overload):
    b = GraphBuilder()
    x = b.input(T)
    fresh = b.op("aten::tanh", x, out=T)
    written = b.op(op, fresh, *arguments, out=T, overload=overload)
    graph = b.returns(b.op("aten::neg", written, out=T))

    before, changed = functionalize(graph)

    assert changed
    (node,) = [node for node in graph.walk() if node.op == op[:-1]]
    assert node.overload == functional_overload
    assert op not in op_counts(graph)
    assert_same_results(before, graph, [torch.randn(2, 3)])


def test_chain_of_in_place_ops_on_one_tensor_becomes_functional():
    """torchvision's BasicBlock tail: ``out += identity; out = relu_(out)``."""
    b = GraphBuilder()
    x = b.input(T)
    fresh = b.op("aten::mul", x, 2.0, out=T, overload="Scalar")
    summed = b.op("aten::add_", fresh, x, 1, out=T, overload="Tensor")
    graph = b.returns(b.op("aten::relu_", summed, out=T))

    before, changed = functionalize(graph)

    assert changed
    assert op_counts(graph) == {"aten::mul": 1, "aten::add": 1, "aten::relu": 1, "prim::Constant": 2}
    assert_same_results(before, graph, [torch.randn(2, 3)])


def test_in_place_view_op_becomes_its_view():
    b = GraphBuilder()
    x = b.input(T)
    fresh = b.op("aten::relu", x, out=T)
    graph = b.returns(b.op("aten::unsqueeze_", fresh, 0, out=tensor_type(1, 2, 3)))

    before, changed = functionalize(graph)

    assert changed
    assert "aten::unsqueeze" in op_counts(graph)
    assert_same_results(before, graph, [torch.randn(2, 3)])


def test_in_place_op_in_a_branch_on_a_value_from_outside():
    b = GraphBuilder()
    x = b.input(T)
    flag = b.input(BOOL)
    fresh = b.op("aten::neg", x, out=T)
    branch = b.node("prim::If", flag, out=[T])
    then_block, else_block = branch.add_block(), branch.add_block()
    then_block.set_returns([b.op("aten::relu_", fresh, out=T, block=then_block)])
    else_block.set_returns([b.op("aten::sigmoid", x, out=T, block=else_block)])
    graph = b.returns(branch.output)

    before, changed = functionalize(graph)

    assert changed
    assert "aten::relu_" not in op_counts(graph)
    for flag_value in (True, False):
        assert_same_results(before, graph, [torch.randn(2, 3), flag_value])


# ------------------------------------------------------------------------------- refusals
def refused(graph, op="aten::relu_"):
    before, changed = functionalize(graph)
    assert not changed
    assert op_counts(graph) == op_counts(before)
    return next(node for node in graph.walk() if node.op == op).meta[REASON], before


def test_keeps_a_write_to_a_graph_input():
    b = GraphBuilder()
    x = b.input(T, "x")
    graph = b.returns(b.op("aten::relu_", x, out=T))

    reason, _ = refused(graph)

    assert reason == "it writes graph input %x, which the caller sees"


def test_keeps_a_write_to_a_constant():
    b = GraphBuilder()
    x = b.input(T)
    weight = b.const(torch.randn(2, 3))
    graph = b.returns(b.op("aten::add", x, b.op("aten::relu_", weight, out=T), 1, out=T, overload="Tensor"))

    reason, _ = refused(graph)

    assert reason.startswith("it writes the constant")


def test_keeps_a_write_to_a_value_with_another_use():
    b = GraphBuilder()
    x = b.input(T)
    fresh = b.op("aten::neg", x, out=T)
    activated = b.op("aten::relu_", fresh, out=T)
    # The add reads `fresh` after the write: in place it sees the relu's result.
    graph = b.returns(b.op("aten::add", fresh, activated, 1, out=T, overload="Tensor"))

    reason, before = refused(graph)

    assert reason == f"%{fresh.name} is also read by aten::add.Tensor, which could see the write"
    assert_same_results(before, graph, [torch.randn(2, 3)])


def test_keeps_a_write_to_a_returned_value():
    b = GraphBuilder()
    x = b.input(T)
    fresh = b.op("aten::neg", x, out=T)
    graph = b.returns(fresh, b.op("aten::relu_", fresh, out=T))

    reason, _ = refused(graph)

    assert "returned" in reason


def test_keeps_a_write_through_a_view():
    b = GraphBuilder()
    x = b.input(T)
    fresh = b.op("aten::neg", x, out=T)
    viewed = b.op("aten::view", fresh, [3, 2], out=tensor_type(3, 2))
    b.op("aten::relu_", viewed, out=tensor_type(3, 2))
    graph = b.returns(fresh)  # the write shows through the view in `fresh`

    reason, before = refused(graph)

    assert reason == f"it writes %{viewed.name} from aten::view, which may share memory with its input"
    assert_same_results(before, graph, [torch.randn(2, 3)])


def test_keeps_a_write_to_a_composite_that_returns_its_input():
    b = GraphBuilder()
    x = b.input(T)
    same = b.op("aten::type_as", x, x, out=T)  # x itself: no conversion is needed
    graph = b.returns(b.op("aten::relu_", same, out=T))

    reason, _ = refused(graph)

    assert reason == (f"it writes %{same.name} from aten::type_as, a composite op that may return its "
                      "input itself")


def test_keeps_a_write_from_an_op_without_schema():
    b = GraphBuilder()
    x = b.input(T)
    pair = b.node("prim::ListUnpack", b.op("prim::ListConstruct", x, x, out=ListType(T)), out=[T, T])
    graph = b.returns(b.op("aten::relu_", pair.outputs[0], out=T))

    reason, _ = refused(graph)

    assert "whose aliasing is not known" in reason


def test_keeps_a_write_in_a_loop_to_a_value_from_outside():
    b = GraphBuilder()
    x = b.input(T)
    fresh = b.op("aten::neg", x, out=T)
    loop = b.node("prim::Loop", 3, True, x, out=[T])
    body = loop.add_block()
    body.add_param(INT)
    carried = body.add_param(T)
    accumulated = b.op("aten::add_", fresh, 1.0, 1, out=T, overload="Scalar", block=body)
    body.set_returns([b.const(True, body), b.op("aten::add", carried, accumulated, 1, out=T, overload="Tensor",
                                                block=body)])
    graph = b.returns(loop.output)

    reason, before = refused(graph, "aten::add_")

    assert "each iteration sees the previous one's write" in reason
    assert_same_results(before, graph, [torch.randn(2, 3)])


def test_keeps_a_write_whose_out_of_place_form_would_widen_the_dtype():
    half = tensor_type(2, 3, dtype="float16")
    b = GraphBuilder()
    x = b.input(half)
    fresh = b.op("aten::neg", x, out=half)
    graph = b.returns(b.op("aten::add_", fresh, torch.randn(2, 3), 1, out=half, overload="Tensor"))

    reason, before = refused(graph, "aten::add_")

    assert reason == "aten::add.Tensor would return float32, not float16 like the in-place op"
    assert_same_results(before, graph, [torch.randn(2, 3).half()])


def test_keeps_an_in_place_op_without_an_out_of_place_form():
    b = GraphBuilder()
    x = b.input(T)
    fresh = b.op("aten::neg", x, out=T)
    graph = b.returns(b.op("aten::fill_diagonal_", fresh, 1.0, False, out=T))

    reason, _ = refused(graph, "aten::fill_diagonal_")

    assert reason == "aten::fill_diagonal_ has no out-of-place form aten::fill_diagonal with the same arguments"


def _example(op):
    """A call of ``op`` on inputs where it could hand one back unchanged (unit kernels, identity
    weights, output size equal to input size), as (function, arguments)."""
    aten = torch.ops.aten
    image, kernel, eye = torch.randn(1, 2, 4, 4), torch.ones(2, 1, 1, 1), torch.eye(4)
    line, volume = torch.randn(1, 2, 4), torch.randn(1, 2, 2, 2, 2)
    calls = {
        "aten::conv1d": (aten.conv1d, line, torch.ones(2, 1, 1), None, [1], [0], [1], 2),
        "aten::conv2d": (aten.conv2d, image, kernel, None, [1, 1], [0, 0], [1, 1], 2),
        "aten::conv3d": (aten.conv3d, volume, torch.ones(2, 1, 1, 1, 1), None, [1, 1, 1], [0, 0, 0], [1, 1, 1], 2),
        "aten::_convolution_mode": (aten._convolution_mode, image, kernel, None, [1, 1], "same", [1, 1], 2),
        "aten::conv_transpose1d": (aten.conv_transpose1d, line, torch.ones(2, 1, 1), None, [1], [0], [0], 2),
        "aten::conv_transpose2d": (aten.conv_transpose2d.input, image, kernel, None, [1, 1], [0, 0], [0, 0], 2),
        "aten::conv_transpose3d": (aten.conv_transpose3d.input, volume, torch.ones(2, 1, 1, 1, 1), None,
                                   [1, 1, 1], [0, 0, 0], [0, 0, 0], 2),
        "aten::batch_norm": (aten.batch_norm, image, None, None, torch.zeros(2), torch.ones(2), False, 0.1, 0.0,
                             False),
        "aten::instance_norm": (aten.instance_norm, image, None, None, None, None, True, 0.1, 1e-5, False),
        "aten::group_norm": (aten.group_norm, image, 1),
        "aten::layer_norm": (aten.layer_norm, image, [4]),
        "aten::linear": (aten.linear, eye, eye),
        "aten::matmul": (aten.matmul, eye, eye),
        "aten::max_pool1d": (aten.max_pool1d, line, [1]),
        "aten::max_pool2d": (aten.max_pool2d, image, [1, 1]),
        "aten::max_pool3d": (aten.max_pool3d, volume, [1, 1, 1]),
        "aten::adaptive_avg_pool1d": (aten.adaptive_avg_pool1d, line, [4]),
        "aten::adaptive_avg_pool2d": (aten.adaptive_avg_pool2d, image, [4, 4]),
        "aten::adaptive_avg_pool3d": (aten.adaptive_avg_pool3d, volume, [2, 2, 2]),
        "aten::softmax": (aten.softmax.int, image, -1),
        "aten::log_softmax": (aten.log_softmax.int, image, -1),
        "aten::scaled_dot_product_attention": (aten.scaled_dot_product_attention, image, image, image),
    }
    function, *arguments = calls[op]
    return function, arguments


@pytest.mark.parametrize("op", sorted(ALLOCATING_COMPOSITE_OPS))
def test_listed_composites_are_composites_that_allocate(op):
    """Each entry needs the list (it is a composite) and deserves it (it returns new memory
    even where it could hand back its input)."""
    function, arguments = _example(op)
    overload = function if isinstance(function, torch._ops.OpOverload) else function.default
    assert overload.has_kernel_for_dispatch_key(torch._C.DispatchKey.CompositeImplicitAutograd)
    with torch.no_grad():
        result = function(*arguments)
    inputs = {argument.untyped_storage().data_ptr() for argument in arguments if isinstance(argument, torch.Tensor)}
    assert result.untyped_storage().data_ptr() not in inputs


# ------------------------------------------------------------------------ through the front end
class ConvBlock(nn.Sequential):
    def __init__(self) -> None:
        super().__init__(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.Conv2d(8, 4, 3))


class BasicBlock(nn.Module):
    """torchvision's ResNet block: in-place ReLUs and ``out += identity``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


def _randomize_statistics(module):
    with torch.no_grad():
        for norm in module.modules():
            if isinstance(norm, nn.BatchNorm2d):
                norm.running_mean.uniform_(-0.5, 0.5)
                norm.running_var.uniform_(0.5, 2.0)
    return module.eval()


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("model, channels", [(ConvBlock, 3), (BasicBlock, 4)])
@pytest.mark.parametrize("export", ["script", "trace"])
def test_imported_model_has_no_in_place_ops_after_lowering(model, channels, export, tmp_path: Path):
    torch.manual_seed(0)
    module = _randomize_statistics(model())
    example = torch.randn(2, channels, 16, 16)
    exported = torch.jit.script(module) if export == "script" else torch.jit.trace(module, example)
    path = tmp_path / "model.pt"
    torch.jit.save(exported, str(path))
    graph = import_torchscript(path, [parse_input_spec(f"1..4x{channels}x16x16")])
    assert "aten::relu_" in op_counts(graph)

    report = lower(graph)

    assert report.converged
    in_place = [node.kind for node in graph.walk() if node.op.endswith("_")]
    assert in_place == [], in_place
    assert not [note for note in report.notes if note.key == REASON]
    for batch in (1, 3):
        inputs = torch.randn(batch, channels, 16, 16)
        with torch.no_grad():
            expected = exported(inputs.clone())
        # BN folded into the conv rounds differently: fp32, a few ulps (see fold_conv_batchnorm_test).
        torch.testing.assert_close(run_graph(graph, [inputs]), expected, rtol=1e-5, atol=1e-5)
