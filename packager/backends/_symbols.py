"""Symbolic dimensions of a segment's boundary: ranges per symbol and sizes of expressions.

The build driver puts the model's symbol table in ``segment.meta["symbols"]``, e.g.
``{"s0": {"min": 1, "opt": 4, "max": 8}}`` (dict entries, or objects with ``min``/``opt``/``max``
attributes such as :class:`packager.spec.DimSpec`).  A plain symbol missing from the table falls
back to the range its :class:`SymDim` carries, with ``opt`` = ``max`` like ``--input`` specs.
Dimension expressions (``"2*s0"``, ``"s0+1"``, ``"s0//2"``, ``"s0*s1"``) are evaluated with
integer arithmetic only.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass
from typing import Any, Mapping

from packager.errors import BackendError
from packager.ir.graph import Graph
from packager.ir.types import SymDim, TensorType

__all__ = ["SymbolRange", "symbol_ranges", "evaluate_dim", "is_plain_symbol"]


@dataclass(frozen=True, slots=True)
class SymbolRange:
    """Sizes a symbol takes: ``min <= opt <= max`` (``max`` None = unbounded)."""

    min: int
    opt: int
    max: int | None


def is_plain_symbol(expr: str) -> bool:
    return expr.isidentifier()


def symbol_ranges(segment: Graph) -> dict[str, SymbolRange]:
    """The range of every plain symbol of the segment's inputs (and of its outputs where known),
    from the symbol table first."""
    table = segment.meta.get("symbols") or {}
    ranges: dict[str, SymbolRange] = {}
    for name, entry in table.items():
        ranges[name] = _from_table(segment, name, entry)
    for is_input, values in ((True, segment.inputs), (False, segment.outputs)):
        for value in values:
            if not isinstance(value.type, TensorType) or value.type.shape is None:
                continue
            for dim in value.type.shape:
                if not isinstance(dim, SymDim) or not is_plain_symbol(dim.expr) or dim.expr in ranges:
                    continue
                # An input symbol needs a range to build example inputs; an output may carry a
                # symbol export invents (a data-dependent size) that has none.
                if is_input or dim.min is not None or dim.max is not None:
                    ranges[dim.expr] = _from_dim(segment, dim)
    return ranges


def _field(entry: Any, key: str) -> Any:
    return entry.get(key) if isinstance(entry, dict) else getattr(entry, key, None)


def _from_table(segment: Graph, name: str, entry: Any) -> SymbolRange:
    low, opt, high = _field(entry, "min"), _field(entry, "opt"), _field(entry, "max")
    if low is None and high is None:
        raise BackendError(
            f"segment {segment.name!r}: symbol table entry {name!r} = {entry!r} has neither min nor "
            "max; give each symbol {'min': ..., 'opt': ..., 'max': ...}"
        )
    low = 0 if low is None else int(low)
    high = None if high is None else int(high)
    opt = int(opt) if opt is not None else (high if high is not None else max(low, 2))
    if opt < low or (high is not None and not opt <= high):
        raise BackendError(
            f"segment {segment.name!r}: symbol {name!r} needs min <= opt <= max, got {entry!r}"
        )
    return SymbolRange(low, opt, high)


def _from_dim(segment: Graph, dim: SymDim) -> SymbolRange:
    if dim.min is None and dim.max is None:
        raise BackendError(
            f"segment {segment.name!r}: dimension {dim.expr!r} has no range: neither "
            "segment.meta['symbols'] nor the SymDim gives its min/max"
        )
    low = 0 if dim.min is None else dim.min
    opt = dim.max if dim.max is not None else max(low, 2)
    return SymbolRange(low, opt, dim.max)


_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}


def evaluate_dim(expr: str, sizes: Mapping[str, Any]) -> Any:
    """The value of a dimension expression for the given symbol values: an ``int`` for integer
    sizes; other values that support ``+ - * // %`` (``torch.export.Dim``) work too."""

    def walk(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in sizes:
                raise BackendError(f"dimension {expr!r} uses symbol {node.id!r}, which has no range")
            return sizes[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        raise BackendError(
            f"dimension expression {expr!r} is not integer arithmetic over symbols "
            "(allowed: + - * // % and parentheses)"
        )

    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        raise BackendError(f"dimension expression {expr!r} does not parse") from None
    return walk(tree)
