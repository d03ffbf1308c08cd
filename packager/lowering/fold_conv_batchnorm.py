"""Fold an inference-mode batch norm into the convolution that feeds it.

Pattern: ``y = aten::batch_norm(conv(x, W, b, ...), gamma, beta, mean, var, training=False, _, eps, _)``
where ``conv`` is ``aten::conv1d`` / ``conv2d`` / ``conv3d`` or a non-transposed
``aten::_convolution`` / ``aten::convolution`` (what tracing produces).

Rewrite, per output channel ``c`` (computed in float64, stored in W's dtype)::

    scale[c] = gamma[c] / sqrt(var[c] + eps)
    W'[c]    = W[c] * scale[c]
    b'[c]    = (b[c] - mean[c]) * scale[c] + beta[c]        (b = 0 when the conv has no bias)

The conv gets ``W'`` and ``b'`` as new constants and the batch norm's users read the conv.

Checks (each failure is a reason, kept in ``node.meta["not_fused_reason"]`` on the batch norm and
in the lowering report): the batch norm runs in inference mode; the conv is not transposed; the
conv's output is used by the batch norm alone; W, b, gamma, beta, mean, var and eps are
constants (gamma, beta and b may be None); channel counts agree; W is floating point.

Invariant: ``conv'(x) == batch_norm(conv(x))`` up to float rounding (the folded weights round
once in W's dtype, the unfused pair rounds at each step: ~1e-6 relative in fp32).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from packager.ir.graph import Graph, Node, Value
from packager.lowering._constants import constant_value, insert_constant, is_constant
from packager.lowering.pass_manager import Pass

__all__ = ["FoldConvBatchNorm", "ConvBatchNorm", "FoldPlan", "match", "check", "rewrite", "CONV_OPS"]

CONV_OPS = frozenset({"aten::conv1d", "aten::conv2d", "aten::conv3d", "aten::_convolution", "aten::convolution"})

# Input positions in aten::batch_norm(input, weight, bias, running_mean, running_var, training,
# momentum, eps, cudnn_enabled) and in every conv op (input, weight, bias, ...).
_BN_WEIGHT, _BN_BIAS, _BN_MEAN, _BN_VAR, _BN_TRAINING, _BN_EPS = 1, 2, 3, 4, 5, 7
_CONV_WEIGHT, _CONV_BIAS, _CONV_TRANSPOSED = 1, 2, 6


@dataclass(frozen=True, slots=True)
class ConvBatchNorm:
    """A match of the pattern: the conv and the batch norm reading its output."""

    conv: Node
    batch_norm: Node


@dataclass(frozen=True, slots=True)
class FoldPlan:
    """A checked match with the new conv weight and bias to install."""

    match: ConvBatchNorm
    weight: torch.Tensor
    bias: torch.Tensor


class FoldConvBatchNorm(Pass):
    name = "fold_conv_batchnorm"

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in list(graph.walk()):
            if node.op != "aten::batch_norm":
                continue
            found = match(node)
            outcome = check(found) if isinstance(found, ConvBatchNorm) else found
            if isinstance(outcome, str):
                node.meta["not_fused_reason"] = outcome
                continue
            rewrite(outcome)
            changed = True
        return changed


def match(batch_norm: Node) -> ConvBatchNorm | str:
    """The conv feeding ``batch_norm``, or why there is none."""
    source = batch_norm.inputs[0]
    producer = source.producer
    if producer is None:
        return "its input is a graph or block input, not a convolution"
    if producer.op not in CONV_OPS:
        return f"its input comes from {producer.op}, not a convolution"
    return ConvBatchNorm(producer, batch_norm)


def check(found: ConvBatchNorm) -> FoldPlan | str:
    """The folded weights, or the reason the pair cannot be folded."""
    conv, batch_norm = found.conv, found.batch_norm
    training = _constant(batch_norm.inputs[_BN_TRAINING])
    if training is _NOT_CONSTANT:
        return "batch_norm training flag is not a constant"
    if training:
        return "batch_norm in training mode"
    if conv.op in ("aten::_convolution", "aten::convolution"):
        transposed = _constant(conv.inputs[_CONV_TRANSPOSED])
        if transposed is _NOT_CONSTANT:
            return "conv transposed flag is not a constant"
        if transposed:
            return "transposed convolution"
    users = conv.output.uses
    if len(users) != 1:
        return f"conv output has {len(users)} users"
    if users[0].node is not batch_norm or users[0].index != 0:
        return "conv output feeds the batch_norm as something other than its input"

    weight = _constant(conv.inputs[_CONV_WEIGHT])
    bias = _constant(conv.inputs[_CONV_BIAS])
    if not isinstance(weight, torch.Tensor):
        return "conv weight is not a constant"
    if bias is not None and not isinstance(bias, torch.Tensor):
        return "conv bias is not a constant"
    gamma = _constant(batch_norm.inputs[_BN_WEIGHT])
    beta = _constant(batch_norm.inputs[_BN_BIAS])
    if (gamma is not None and not isinstance(gamma, torch.Tensor)) or \
            (beta is not None and not isinstance(beta, torch.Tensor)):
        return "batch_norm weight or bias is not a constant"
    mean = _constant(batch_norm.inputs[_BN_MEAN])
    var = _constant(batch_norm.inputs[_BN_VAR])
    if not isinstance(mean, torch.Tensor) or not isinstance(var, torch.Tensor):
        return "batch_norm running stats are not constants"
    eps = _constant(batch_norm.inputs[_BN_EPS])
    if not isinstance(eps, (float, int)) or isinstance(eps, bool):
        return "batch_norm eps is not a constant"

    if not weight.is_floating_point():
        return f"conv weight dtype {weight.dtype} is not floating point"
    channels = weight.shape[0]
    for label, tensor in (("conv bias", bias), ("gamma", gamma), ("beta", beta), ("running_mean", mean),
                          ("running_var", var)):
        if tensor is not None and tensor.numel() != channels:
            return f"channel mismatch: conv has {channels} output channels, {label} has {tensor.numel()}"

    wide = torch.float64
    scale = _or_fill(gamma, channels, 1.0).to(wide) / torch.sqrt(var.to(wide) + eps)
    new_weight = weight.to(wide) * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    new_bias = (_or_fill(bias, channels, 0.0).to(wide) - mean.to(wide)) * scale + _or_fill(beta, channels, 0.0).to(wide)
    bias_dtype = bias.dtype if bias is not None else weight.dtype
    return FoldPlan(found, new_weight.to(weight.dtype).contiguous(), new_bias.to(bias_dtype))


def rewrite(plan: FoldPlan) -> None:
    """Give the conv the folded weights and let the batch norm's users read the conv."""
    conv, batch_norm = plan.match.conv, plan.match.batch_norm
    conv.replace_input_with(_CONV_WEIGHT, insert_constant(conv, plan.weight))
    conv.replace_input_with(_CONV_BIAS, insert_constant(conv, plan.bias))
    batch_norm.output.replace_all_uses_with(conv.output)
    batch_norm.owner.remove_node(batch_norm)


_NOT_CONSTANT = object()


def _constant(value: Value) -> object:
    return constant_value(value) if is_constant(value) else _NOT_CONSTANT


def _or_fill(tensor: torch.Tensor | None, channels: int, fill: float) -> torch.Tensor:
    return tensor.reshape(-1) if tensor is not None else torch.full((channels,), fill, dtype=torch.float64)
