import pytest
import torch

from packager.ir.types import TensorType
from packager.ir.verify import verify
from packager.lowering._testing import GraphBuilder, assert_same_results, op_counts, tensor_type
from packager.lowering.fold_conv_batchnorm import FoldConvBatchNorm

# The folded conv rounds W * scale once in fp32; the unfused pair rounds after the conv and again
# in the normalization, so results differ by a few ulps of the activations (~1e-6 relative).
RTOL = ATOL = 1e-5


def batch_norm_params(channels, generator):
    return dict(
        gamma=torch.rand(channels, generator=generator) + 0.5,
        beta=torch.randn(channels, generator=generator),
        mean=torch.randn(channels, generator=generator),
        var=torch.rand(channels, generator=generator) + 0.5,
    )


def add_batch_norm(b, source, params, out, training=False, gamma=None):
    return b.op(
        "aten::batch_norm", source,
        params["gamma"] if gamma is None else gamma, params["beta"], params["mean"], params["var"],
        training, 0.1, 1e-5, False, out=out,
    )


def conv_graph(spatial_rank, conv_op, with_bias, generator):
    channels_in, channels_out, size = 3, 4, 5
    spatial = (size,) * spatial_rank
    kernel = (3,) * spatial_rank
    in_type = tensor_type(2, channels_in, *spatial)
    out_type = tensor_type(2, channels_out, *(size - 2 for _ in spatial))
    weight = torch.randn(channels_out, channels_in, *kernel, generator=generator)
    bias = torch.randn(channels_out, generator=generator) if with_bias else None
    ones, zeros = [1] * spatial_rank, [0] * spatial_rank
    b = GraphBuilder()
    x = b.input(in_type)
    if conv_op == "aten::_convolution":
        conv = b.op(conv_op, x, weight, bias, ones, zeros, ones, False, zeros, 1, False, False, True, True,
                    out=out_type)
    else:
        conv = b.op(conv_op, x, weight, bias, ones, zeros, ones, 1, out=out_type)
    normalized = add_batch_norm(b, conv, batch_norm_params(channels_out, generator), out_type)
    graph = b.returns(b.op("aten::relu", normalized, out=out_type))
    return graph, in_type


@pytest.mark.parametrize(
    "spatial_rank, conv_op, with_bias",
    [
        (1, "aten::conv1d", True),
        (2, "aten::conv2d", False),
        (3, "aten::conv3d", True),
        (2, "aten::_convolution", True),
        (2, "aten::_convolution", False),
    ],
)
def test_folds_batch_norm_into_conv(spatial_rank, conv_op, with_bias):
    generator = torch.Generator().manual_seed(0)
    graph, in_type = conv_graph(spatial_rank, conv_op, with_bias, generator)
    before = graph.clone()

    changed = FoldConvBatchNorm().run(graph)
    verify(graph)

    assert changed
    counts = op_counts(graph)
    assert counts[conv_op] == 1 and counts["aten::relu"] == 1 and "aten::batch_norm" not in counts
    relu = next(node for node in graph.walk() if node.op == "aten::relu")
    assert relu.inputs[0].producer.op == conv_op
    assert_same_results(before, graph, [torch.randn(*in_type.shape, generator=generator)], rtol=RTOL, atol=ATOL)
    assert FoldConvBatchNorm().run(graph) is False


def fold_refused(graph):
    before = graph.clone()
    changed = FoldConvBatchNorm().run(graph)
    verify(graph)
    assert not changed
    assert op_counts(graph) == op_counts(before)
    return next(node for node in graph.walk() if node.op == "aten::batch_norm").meta["not_fused_reason"]


CONV_IN, CONV_OUT = tensor_type(1, 3, 6, 6), tensor_type(1, 4, 4, 4)


def test_records_training_mode():
    generator = torch.Generator().manual_seed(1)
    b = GraphBuilder()
    conv = b.op("aten::conv2d", b.input(CONV_IN), torch.randn(4, 3, 3, 3), None, [1, 1], [0, 0], [1, 1], 1,
                out=CONV_OUT)
    graph = b.returns(add_batch_norm(b, conv, batch_norm_params(4, generator), CONV_OUT, training=True))

    assert fold_refused(graph) == "batch_norm in training mode"


def test_records_conv_output_with_two_users():
    generator = torch.Generator().manual_seed(2)
    b = GraphBuilder()
    conv = b.op("aten::conv2d", b.input(CONV_IN), torch.randn(4, 3, 3, 3), None, [1, 1], [0, 0], [1, 1], 1,
                out=CONV_OUT)
    normalized = add_batch_norm(b, conv, batch_norm_params(4, generator), CONV_OUT)
    graph = b.returns(b.op("aten::add", normalized, conv, 1, out=CONV_OUT, overload="Tensor"))

    assert fold_refused(graph) == "conv output has 2 users"


def test_records_weights_that_are_not_constants():
    generator = torch.Generator().manual_seed(3)
    b = GraphBuilder()
    x = b.input(CONV_IN)
    weight = b.input(tensor_type(4, 3, 3, 3))
    conv = b.op("aten::conv2d", x, weight, None, [1, 1], [0, 0], [1, 1], 1, out=CONV_OUT)
    graph = b.returns(add_batch_norm(b, conv, batch_norm_params(4, generator), CONV_OUT))

    assert fold_refused(graph) == "conv weight is not a constant"


def test_records_batch_norm_not_fed_by_a_conv():
    generator = torch.Generator().manual_seed(4)
    b = GraphBuilder()
    activated = b.op("aten::relu", b.input(CONV_OUT), out=CONV_OUT)
    graph = b.returns(add_batch_norm(b, activated, batch_norm_params(4, generator), CONV_OUT))

    assert fold_refused(graph) == "its input comes from aten::relu, not a convolution"


def test_records_transposed_convolution():
    generator = torch.Generator().manual_seed(5)
    b = GraphBuilder()
    out_type = TensorType("float32", (1, 4, 8, 8))
    conv = b.op("aten::_convolution", b.input(CONV_IN), torch.randn(3, 4, 3, 3), None, [1, 1], [0, 0], [1, 1],
                True, [0, 0], 1, False, False, True, True, out=out_type)
    graph = b.returns(add_batch_norm(b, conv, batch_norm_params(4, generator), out_type))

    assert fold_refused(graph) == "transposed convolution"
