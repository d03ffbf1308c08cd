"""From IR op names to callables: ``torch.ops`` overloads plus Python versions of the
TorchScript builtins that ``torch.ops`` cannot call from Python (polymorphic list ops)."""

from __future__ import annotations

import math
import operator
from typing import Any, Callable

import torch

from packager.errors import UnsupportedOpError
from packager.ir.graph import Node

__all__ = ["resolve_overload", "call_node", "PYTHON_BUILTINS", "split_arguments"]


def resolve_overload(op: str, overload: str = "") -> torch._ops.OpOverload:
    """``("aten::add", "Tensor")`` -> ``torch.ops.aten.add.Tensor``."""
    namespace, name = op.split("::", 1)
    try:
        packet = getattr(getattr(torch.ops, namespace), name)
        return getattr(packet, overload or "default")
    except (AttributeError, RuntimeError):
        suffix = f".{overload}" if overload else ""
        raise UnsupportedOpError(
            f"operator {op}{suffix} is not registered in this torch ({torch.__version__}); "
            "the model may need a newer torch or a custom-op library loaded before building"
        ) from None


def split_arguments(overload: torch._ops.OpOverload, values: list[Any]) -> tuple[list, dict]:
    """Positional values in schema order -> (args, kwargs), keyword-only args passed by name."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for argument, value in zip(overload._schema.arguments, values):
        if argument.kwarg_only:
            kwargs[argument.name] = value
        else:
            args.append(value)
    return args, kwargs


def _getitem(container, index):
    return container[index]


def _raise(message="Exception", *rest):
    raise RuntimeError(f"model raised: {message}")


# TorchScript builtins whose schemas use type variables (``t[]``) and so cannot be called through
# torch.ops from Python, and a few prim ops with no torch.ops binding at all.
PYTHON_BUILTINS: dict[str, Callable[..., Any]] = {
    "aten::__getitem__": _getitem,
    "aten::len": len,
    "aten::__is__": operator.is_,
    "aten::__isnot__": operator.is_not,
    "aten::__not__": operator.not_,
    "aten::__contains__": lambda container, item: item in container,
    "aten::list": list,
    "aten::warn": lambda *args: None,
    "aten::format": lambda fmt, *args: fmt.format(*args),
    "aten::str": str,
    "aten::dim": lambda tensor: tensor.dim(),
    "aten::numel": lambda tensor: tensor.numel(),
    "aten::floor": lambda x: math.floor(x) if not isinstance(x, torch.Tensor) else torch.floor(x),
    "aten::ceil": lambda x: math.ceil(x) if not isinstance(x, torch.Tensor) else torch.ceil(x),
    "prim::device": lambda tensor: tensor.device,
    "prim::dtype": lambda tensor: tensor.dtype,
    "prim::layout": lambda tensor: tensor.layout,
    "prim::is_cuda": lambda tensor: tensor.is_cuda,
    "prim::shape": lambda tensor: list(tensor.shape),
    "prim::unchecked_cast": lambda value: value,
    "prim::Uninitialized": lambda: None,
    "prim::RaiseException": _raise,
    "prim::min": lambda *args: min(args[0]) if len(args) == 1 else min(args),
    "prim::max": lambda *args: max(args[0]) if len(args) == 1 else max(args),
    "prim::TupleIndex": _getitem,
    # TorchScript wraps an int as a 0-dim int64 tensor and a float as a 0-dim float64 one.
    "prim::NumToTensor": lambda number: torch.tensor(number),
    "prim::Print": lambda *args: print(*args),
    "aten::append": lambda items, item: items.append(item) or items,
    "aten::extend": lambda items, more: items.extend(more),
    "aten::add.t": operator.add,
    "aten::slice.t": lambda items, start=None, end=None, step=1: items[start:end:step],
    "aten::insert.t": lambda items, index, item: items.insert(index, item),
    "aten::_set_item.t": lambda items, index, item: items.__setitem__(index, item) or items,
    "aten::pop.t": lambda items, index=-1: items.pop(index),
    "aten::clear.t": lambda items: items.clear(),
    "aten::reverse.t": lambda items: items.reverse(),
    "aten::copy.t": lambda items: list(items),
    "aten::mul.left_t": operator.mul,
    "aten::eq.int_list": operator.eq,
}

# Builtins that take their polymorphic form only for some overloads; others go to torch.ops.
_POLYMORPHIC_OVERLOADS = {"t", "str", "Tensor_list", "int_list", "list", "Dict_str", "tuple"}
# Builtins whose Python version serves every overload.
_ANY_OVERLOAD = frozenset({"aten::len", "aten::__getitem__", "aten::__is__", "aten::__isnot__", "aten::__not__",
                           "aten::warn", "aten::format", "aten::dim", "aten::numel"})


def call_node(node: Node, values: list[Any]) -> Any:
    """Execute a plain (non-structural) node on Python/torch values; returns the op's result."""
    exact = PYTHON_BUILTINS.get(node.kind)
    if exact is not None and node.overload:
        return exact(*values)
    builtin = PYTHON_BUILTINS.get(node.op)
    if builtin is not None and (node.namespace == "prim" or not node.overload
                                or node.overload in _POLYMORPHIC_OVERLOADS or node.op in _ANY_OVERLOAD):
        return builtin(*values)
    overload = resolve_overload(node.op, node.overload)
    args, kwargs = split_arguments(overload, values)
    return overload(*args, **kwargs)
