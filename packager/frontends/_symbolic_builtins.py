"""Python versions of TorchScript builtins for shape inference on fake values.

Called through ``torch.ops``, a builtin that receives a size derived from a dynamic dim (a
``torch.SymInt``) converts it to a plain int and so pins the dim to its example value. These
versions keep such values symbolic: ``aten::mul.int(s0, 2)`` gives the expression ``2*s0``.
Also here: the polymorphic list builtins (``t[]`` schemas) that ``torch.ops`` cannot call from
Python at all, and arithmetic on 0-dim tensors that hold sizes (what a trace records for
``x.size(0) // 2``).
"""

from __future__ import annotations

import math
import operator
from typing import Any, Callable

import torch
from torch.fx.experimental.symbolic_shapes import statically_known_true

__all__ = [
    "SYMBOLIC",
    "NoSymbolicRule",
    "SYMBOLIC_SCALAR_OPS",
    "VALUE_AGNOSTIC_OPS",
    "LIST_OPS",
    "LIST_MUTATIONS",
    "SCALAR_TENSOR_OPS",
    "TENSOR_TO_SCALAR_OPS",
    "SCALAR_TO_TENSOR_OPS",
    "to_int",
    "to_float",
    "contains_symbolic",
]

SYMBOLIC = (torch.SymInt, torch.SymFloat, torch.SymBool)


class NoSymbolicRule(Exception):
    """A builtin got a shape-derived value and has no rule that keeps it symbolic."""


def contains_symbolic(value: Any) -> bool:
    if isinstance(value, SYMBOLIC):
        return True
    if isinstance(value, (list, tuple)):
        return any(contains_symbolic(item) for item in value)
    return False


def to_int(value: Any) -> Any:
    if isinstance(value, (int, torch.SymInt)) and not isinstance(value, bool):
        return value
    if isinstance(value, (torch.SymFloat, torch.SymBool)):
        return torch.sym_int(value)
    return int(value)


def to_float(value: Any) -> Any:
    return torch.sym_float(value) if isinstance(value, SYMBOLIC) else float(value)


def _sym_max(*args: Any) -> Any:
    values = list(args[0]) if len(args) == 1 else list(args)
    result = values[0]
    for value in values[1:]:
        result = torch.sym_max(result, value)
    return result


def _sym_min(*args: Any) -> Any:
    values = list(args[0]) if len(args) == 1 else list(args)
    result = values[0]
    for value in values[1:]:
        result = torch.sym_min(result, value)
    return result


def _range_length(low: Any, high: Any, step: Any) -> Any:
    if not isinstance(step, int) or step == 0:
        raise NoSymbolicRule("range() with a symbolic or zero step")
    if step > 0:
        return torch.sym_max(0, (high - low + step - 1) // step)
    return torch.sym_max(0, (low - high - step - 1) // (-step))


def _trunc_div(a: Any, b: Any) -> Any:
    if not isinstance(a, SYMBOLIC) and not isinstance(b, SYMBOLIC):
        if isinstance(a, float) or isinstance(b, float):
            return float(math.trunc(a / b))
        quotient = abs(a) // abs(b)
        return -quotient if (a < 0) != (b < 0) else quotient
    if isinstance(a, torch.SymInt) and isinstance(b, int) and b > 0 and statically_known_true(a >= 0):
        return a // b
    return torch.sym_int(a / b)


# TorchScript scalar builtins (``aten::add.int``, ``aten::floordiv.int``, ``prim::max.int``...).
SYMBOLIC_SCALAR_OPS: dict[str, Callable[..., Any]] = {
    "aten::add": operator.add,
    "aten::sub": operator.sub,
    "aten::mul": operator.mul,
    "aten::floordiv": operator.floordiv,
    "aten::div": operator.truediv,
    "aten::remainder": operator.mod,
    "aten::neg": operator.neg,
    "aten::pow": operator.pow,
    "aten::eq": operator.eq,
    "aten::ne": operator.ne,
    "aten::lt": operator.lt,
    "aten::gt": operator.gt,
    "aten::le": operator.le,
    "aten::ge": operator.ge,
    "aten::__and__": operator.and_,
    "aten::__or__": operator.or_,
    "aten::__not__": torch.sym_not,
    "aten::abs": abs,
    "aten::Int": to_int,
    "aten::Float": to_float,
    "aten::floor": math.floor,
    "aten::ceil": math.ceil,
    "aten::__range_length": _range_length,
    "aten::__derive_index": lambda index, start, step: start + index * step,
    "prim::max": _sym_max,
    "prim::min": _sym_min,
}

# Builtins that move values around without looking at them: symbolic values pass through.
VALUE_AGNOSTIC_OPS = frozenset({
    "prim::ListConstruct", "prim::TupleConstruct", "prim::ListUnpack", "prim::TupleUnpack",
    "prim::TupleIndex", "prim::unchecked_cast", "aten::__getitem__", "aten::len", "aten::list",
    "aten::format", "aten::str", "aten::warn", "aten::__is__", "aten::__isnot__",
})


def _list_slice(items: list, start: Any = None, end: Any = None, step: Any = 1) -> list:
    return items[start:end:step]


def _list_append(items: list, element: Any) -> list:
    items.append(element)
    return items


def _list_set_item(items: list, index: int, element: Any) -> list:
    items[index] = element
    return items


# Polymorphic list builtins (their overload names end in ``t``: ``aten::append.t``).
LIST_OPS: dict[str, Callable[..., Any]] = {
    "aten::slice": _list_slice,
    "aten::append": _list_append,
    "aten::add": lambda a, b: a + b,
    "aten::extend": lambda items, other: items.extend(other),
    "aten::insert": lambda items, index, element: items.insert(index, element),
    "aten::_set_item": _list_set_item,
    "aten::pop": lambda items, index=-1: items.pop(index),
    "aten::clear": lambda items: items.clear(),
    "aten::reverse": lambda items: items.reverse(),
    "aten::copy": list,
    "aten::mul": lambda items, times: items * times,
}

# The list builtins above that change a list's length in place.
LIST_MUTATIONS = frozenset({"aten::append", "aten::extend", "aten::insert", "aten::pop", "aten::clear"})

# ``aten::Int(tensor)`` and friends: a 0-dim tensor back to a Python scalar.
TENSOR_TO_SCALAR_OPS = frozenset({"aten::Int", "aten::Float", "aten::Bool", "aten::ScalarImplicit", "aten::item"})

# A Python scalar to a 0-dim tensor.
SCALAR_TO_TENSOR_OPS = frozenset({"prim::NumToTensor", "aten::tensor", "aten::scalar_tensor"})


def _alpha(values: list[Any]) -> Any:
    return values[2] if len(values) > 2 else 1


def _div(values: list[Any]) -> Any:
    mode = values[2] if len(values) > 2 else None
    if mode is None:
        return values[0] / values[1]
    if mode == "floor":
        return values[0] // values[1]
    return _trunc_div(values[0], values[1])


# Arithmetic on 0-dim tensors that hold sizes, on the values they hold (schema order).
SCALAR_TENSOR_OPS: dict[str, Callable[[list[Any]], Any]] = {
    "aten::add": lambda v: v[0] + v[1] * _alpha(v),
    "aten::sub": lambda v: v[0] - v[1] * _alpha(v),
    "aten::rsub": lambda v: v[1] - v[0] * _alpha(v),
    "aten::mul": lambda v: v[0] * v[1],
    "aten::div": _div,
    "aten::floor_divide": lambda v: v[0] // v[1],
    "aten::remainder": lambda v: v[0] % v[1],
    "aten::neg": lambda v: -v[0],
    "aten::to": lambda v: v[0],
    "aten::detach": lambda v: v[0],
    "aten::clone": lambda v: v[0],
}
