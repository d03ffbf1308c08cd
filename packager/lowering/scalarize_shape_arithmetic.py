"""Turn shape arithmetic done on 0-dim tensors back into int arithmetic.

``torch.jit.trace`` records ``x.size(1) // 2`` as tensor math: ``t = prim::NumToTensor(n)``,
``u = aten::floor_divide(t, 2)``, then ``aten::Int(u)`` where a size is needed. Engines cannot
read a computed tensor's value into a number (data-dependent, a host sync), so that chain would
pin the sizes into the glue and split engines. This pass reads sizes straight from the ints.

Rewrite, for ``r = aten::Int(u)`` (also ``aten::IntImplicit``, ``aten::ScalarImplicit``): build
the int expression of ``u`` and let every use of ``r`` read it; the tensor ops stay for their
other uses (dead-code elimination removes them when there are none). The expression of a tensor:

* ``prim::NumToTensor(n)`` -> ``n`` (an ``int``);
* a 0-dim int64 tensor constant ``c`` -> the int constant ``c.item()``;
* ``op(a, b)`` -> ``<int op>(expr(a), expr(b))`` with ``aten::floor_divide`` and
  ``aten::div(rounding_mode='floor')`` -> ``aten::floordiv.int``, ``aten::mul`` -> ``aten::mul.int``,
  ``aten::add`` / ``aten::sub`` (``alpha`` the constant 1) -> ``aten::add.int`` / ``aten::sub.int``,
  ``aten::remainder`` -> ``aten::remainder.int``; ``b`` is a tensor (as above) or an ``int``
  (a constant or an int value).

Checks: every tensor in the chain is a 0-dim int64 tensor by its IR type and nothing writes it in
place; anything else (a graph input, ``aten::sum`` of data, a float) keeps the ``aten::Int``, with
the reason in ``node.meta["not_scalarized_reason"]``. Each new int gets the symbol of its
expression (``ScalarType("int", symbol="s1 // 2")``), the one the front end inferred for the
``aten::Int`` it replaces when there is one, so later passes still match sizes to dims.

Invariant: every use reads the same number as before. int64 tensor arithmetic and int
arithmetic agree on sizes: both floor (``floor_divide`` and ``//``; ``remainder`` and ``%`` take
the divisor's sign), and both raise on division by zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import torch

from packager.ir.graph import Graph, Node, Value
from packager.ir.types import INT, ScalarType, TensorType
from packager.lowering._constants import constant_value, is_constant
from packager.ir.effects import AliasClasses
from packager.lowering.pass_manager import Pass

__all__ = ["ScalarizeShapeArithmetic", "READ_OPS", "ARITHMETIC_OPS"]

REASON_KEY = "not_scalarized_reason"

# Ops that read a 0-dim tensor into a number, by op and overload.
READ_OPS = {"aten::Int": "Tensor", "aten::IntImplicit": "", "aten::ScalarImplicit": ""}

# Tensor arithmetic (op, overload) -> the int op (overload "int") and its Python operator.
ARITHMETIC_OPS: dict[tuple[str, str], tuple[str, str]] = {
    ("aten::floor_divide", ""): ("aten::floordiv", "//"),
    ("aten::floor_divide", "Scalar"): ("aten::floordiv", "//"),
    ("aten::div", "Tensor_mode"): ("aten::floordiv", "//"),
    ("aten::div", "Scalar_mode"): ("aten::floordiv", "//"),
    ("aten::mul", "Tensor"): ("aten::mul", "*"),
    ("aten::mul", "Scalar"): ("aten::mul", "*"),
    ("aten::add", "Tensor"): ("aten::add", "+"),
    ("aten::add", "Scalar"): ("aten::add", "+"),
    ("aten::sub", "Tensor"): ("aten::sub", "-"),
    ("aten::sub", "Scalar"): ("aten::sub", "-"),
    ("aten::remainder", "Tensor"): ("aten::remainder", "%"),
    ("aten::remainder", "Scalar"): ("aten::remainder", "%"),
}

_SHAPE_TENSOR = TensorType("int64", ())


# ---------------------------------------------------------------------------- the plan
@dataclass(frozen=True, slots=True)
class _Number:
    """An int the graph already has: an int input of an op, or ``n`` of ``prim::NumToTensor(n)``."""

    value: Value


@dataclass(frozen=True, slots=True)
class _ConstantTensor:
    """A 0-dim int64 tensor constant, to become an int constant."""

    tensor: Value
    number: int


@dataclass(frozen=True, slots=True)
class _Arithmetic:
    """``tensor = op(left, right)``, to become ``int_op.int(left, right)``."""

    tensor: Value
    int_op: str
    symbol: str | None
    left: "_Plan"
    right: "_Plan"


_Plan = Union[_Number, _ConstantTensor, _Arithmetic]


class ScalarizeShapeArithmetic(Pass):
    name = "scalarize_shape_arithmetic"

    def run(self, graph: Graph) -> bool:
        aliases = AliasClasses(graph)
        made: dict[Value, Value] = {}  # tensor -> the int made for it in this run
        changed = False
        for node in list(graph.walk()):
            if READ_OPS.get(node.op) != node.overload or not node.inputs[0].is_tensor:
                continue
            plan = plan_for(node.inputs[0], aliases)
            if isinstance(plan, str):
                node.meta[REASON_KEY] = plan
                continue
            number = _materialize(plan, made)
            _adopt_symbol(number, node.output, created=isinstance(plan, _Arithmetic))
            node.output.replace_all_uses_with(number)
            node.owner.remove_node(node)
            changed = True
        return changed


# ---------------------------------------------------------------------------- checks
def plan_for(tensor: Value, aliases: AliasClasses) -> _Plan | str:
    """How to compute ``tensor``'s value as an int, or why it cannot be."""
    if tensor.type != _SHAPE_TENSOR:
        return f"%{tensor.name} is {tensor.type}, not a 0-dim int64 tensor"
    if aliases.is_written(tensor):
        return f"%{tensor.name} (or a tensor sharing its memory) is written in place"
    producer = tensor.producer
    if producer is None:
        return f"%{tensor.name} is a graph or block input, not computed from sizes"
    if producer.op == "prim::NumToTensor":
        number = producer.inputs[0]
        if not _is_int(number):
            return f"prim::NumToTensor reads %{number.name} ({number.type}), not an int"
        return _Number(number)
    if producer.op == "prim::Constant":
        value = constant_value(tensor)
        if not isinstance(value, torch.Tensor) or value.dtype != torch.int64 or value.dim() != 0:
            return f"the constant %{tensor.name} is not a 0-dim int64 tensor"
        return _ConstantTensor(tensor, int(value.item()))
    arithmetic = ARITHMETIC_OPS.get((producer.op, producer.overload))
    if arithmetic is None:
        return f"%{tensor.name} comes from {producer.kind}, which is not shape arithmetic"
    refused = _arguments_reason(producer)
    if refused is not None:
        return refused
    int_op, operator = arithmetic
    operands = []
    for operand in producer.inputs[:2]:
        plan = plan_for(operand, aliases) if operand.is_tensor else _scalar_plan(operand, producer)
        if isinstance(plan, str):
            return plan
        operands.append(plan)
    left, right = operands
    left_symbol, right_symbol = _symbol_of(left), _symbol_of(right)
    symbol = None
    if left_symbol is not None and right_symbol is not None:
        symbol = f"{_wrapped(left_symbol)} {operator} {_wrapped(right_symbol)}"
    return _Arithmetic(tensor, int_op, symbol, left, right)


def _arguments_reason(node: Node) -> str | None:
    """Why the arguments after the two operands make this more than plain int arithmetic."""
    if node.op in ("aten::add", "aten::sub"):
        alpha = node.inputs[2] if len(node.inputs) > 2 else None
        if alpha is not None and not (is_constant(alpha) and _is_plain_int(constant_value(alpha), 1)):
            return f"{node.kind} scales its second operand (alpha is not the constant 1)"
    if node.op == "aten::div":
        mode = node.inputs[2]
        if not is_constant(mode) or constant_value(mode) != "floor":
            return f"{node.kind} does not round down (rounding_mode is not the constant 'floor')"
    return None


def _scalar_plan(value: Value, node: Node) -> _Plan | str:
    if _is_int(value) or (is_constant(value) and _is_plain_int(constant_value(value))):
        return _Number(value)
    return f"{node.kind} takes %{value.name} ({value.type}), not an int"


def _is_int(value: Value) -> bool:
    return isinstance(value.type, ScalarType) and value.type.name == "int"


def _is_plain_int(value: object, equal_to: int | None = None) -> bool:
    if not isinstance(value, int) or isinstance(value, bool):
        return False
    return equal_to is None or value == equal_to


def _symbol_of(plan: _Plan) -> str | None:
    if isinstance(plan, _ConstantTensor):
        return str(plan.number)
    if isinstance(plan, _Arithmetic):
        return plan.symbol
    value = plan.value
    if is_constant(value):
        return str(constant_value(value))
    return value.type.symbol


def _wrapped(expression: str) -> str:
    return expression if expression.isidentifier() or expression.isdigit() else f"({expression})"


# --------------------------------------------------------------------------- rewrite
def _materialize(plan: _Plan, made: dict[Value, Value]) -> Value:
    """The int value of ``plan``, creating nodes next to the tensors they stand for (so each
    dominates every place its tensor does)."""
    if isinstance(plan, _Number):
        return plan.value
    existing = made.get(plan.tensor)
    if existing is not None:
        return existing
    producer = plan.tensor.producer
    block = producer.owner
    if isinstance(plan, _ConstantTensor):
        node = block.insert_node(block.position(producer) + 1, "prim::Constant", (), [INT],
                                 attrs={"value": plan.number})
    else:
        left, right = _materialize(plan.left, made), _materialize(plan.right, made)
        node = block.insert_node(block.position(producer) + 1, plan.int_op, (left, right),
                                 [ScalarType("int", plan.symbol)], "int")
    made[plan.tensor] = node.output
    return node.output


def _adopt_symbol(number: Value, read: Value, *, created: bool) -> None:
    """Give ``number`` the symbol the front end inferred for the read it replaces: the
    front end's form is canonical (``2*s0``, not ``s0 * 2``). An int the graph already had keeps
    its own symbol if it has one."""
    symbol = read.type.symbol if isinstance(read.type, ScalarType) else None
    if symbol is None or not isinstance(number.type, ScalarType):
        return
    if created or number.type.symbol is None:
        number.type = ScalarType("int", symbol)
