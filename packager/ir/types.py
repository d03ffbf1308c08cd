"""IR types: tensors with (possibly symbolic) shapes, TorchScript scalars, lists, tuples, optionals.

A dimension is either an ``int`` or a :class:`SymDim`: a symbolic expression over the graph's
input symbols (``"s0"``, ``"2*s0"``) with the range the build was asked to support.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

__all__ = [
    "SymDim",
    "Dim",
    "IRType",
    "TensorType",
    "ScalarType",
    "ListType",
    "TupleType",
    "OptionalType",
    "DTYPE_NAMES",
    "INT",
    "FLOAT",
    "BOOL",
    "STR",
    "NONE",
    "DEVICE",
]

# The dtypes the CLI accepts and the manifest records, by torch's own names.
DTYPE_NAMES = (
    "float32",
    "float16",
    "bfloat16",
    "float64",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint8",
    "bool",
    "complex64",
    "complex128",
)


@dataclass(frozen=True, slots=True)
class SymDim:
    """A symbolic dimension: ``expr`` over input symbols, valid for sizes in ``[min, max]``."""

    expr: str
    min: int | None = None
    max: int | None = None

    def __str__(self) -> str:
        if self.min is None and self.max is None:
            return self.expr
        upper = "inf" if self.max is None else str(self.max)
        return f"{self.expr}[{self.min}..{upper}]"


Dim = Union[int, SymDim]


class IRType:
    """Base of all IR types. Types are immutable values compared structurally."""

    __slots__ = ()

    @property
    def is_tensor(self) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class TensorType(IRType):
    """A tensor. ``dtype`` is a torch dtype name; ``shape`` is None when the rank is unknown."""

    dtype: str | None = None
    shape: tuple[Dim, ...] | None = None

    @property
    def is_tensor(self) -> bool:
        return True

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    @property
    def is_static(self) -> bool:
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)

    def __str__(self) -> str:
        dtype = self.dtype or "?"
        if self.shape is None:
            return f"Tensor({dtype})"
        dims = ", ".join(str(d) for d in self.shape)
        return f"Tensor({dtype}, [{dims}])"


@dataclass(frozen=True, slots=True)
class ScalarType(IRType):
    """A TorchScript non-tensor type by its TorchScript name: int, float, bool, str, Device, NoneType...

    ``symbol`` optionally records a symbolic value for ints derived from shapes (e.g. ``"s0"``).
    """

    name: str
    symbol: str | None = None

    def __str__(self) -> str:
        return self.name if self.symbol is None else f"{self.name}={self.symbol}"


@dataclass(frozen=True, slots=True)
class ListType(IRType):
    element: IRType

    def __str__(self) -> str:
        return f"{self.element}[]"


@dataclass(frozen=True, slots=True)
class TupleType(IRType):
    elements: tuple[IRType, ...]

    def __str__(self) -> str:
        return "(" + ", ".join(str(e) for e in self.elements) + ")"


@dataclass(frozen=True, slots=True)
class OptionalType(IRType):
    element: IRType

    def __str__(self) -> str:
        return f"{self.element}?"


INT = ScalarType("int")
FLOAT = ScalarType("float")
BOOL = ScalarType("bool")
STR = ScalarType("str")
NONE = ScalarType("NoneType")
DEVICE = ScalarType("Device")
