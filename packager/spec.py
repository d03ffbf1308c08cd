"""Input specifications: ``DIMxDIM...:DTYPE`` as given to ``poros-pack build --input``.

A dim is ``N`` (static), ``LO..HI`` or ``LO..OPT..HI`` (dynamic; OPT defaults to HI, the size
engines are tuned for and example inputs are built with). Example: ``1..8x3x224x224:float32``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packager.errors import UsageError
from packager.ir.types import DTYPE_NAMES

__all__ = ["DimSpec", "InputSpec", "parse_input_spec", "SPEC_HELP"]

SPEC_HELP = (
    "DIMxDIM...:DTYPE, one per forward argument in order; a dim is N, LO..HI or LO..OPT..HI; "
    f"DTYPE is one of {', '.join(DTYPE_NAMES)}. Example: 1..8x3x224x224:float32"
)

_DIM = re.compile(r"^(\d+)(?:\.\.(\d+))?(?:\.\.(\d+))?$")


@dataclass(frozen=True, slots=True)
class DimSpec:
    """One dimension: static when ``min == opt == max``."""

    min: int
    opt: int
    max: int

    @property
    def is_static(self) -> bool:
        return self.min == self.max

    def __str__(self) -> str:
        if self.is_static:
            return str(self.min)
        if self.opt == self.max:
            return f"{self.min}..{self.max}"
        return f"{self.min}..{self.opt}..{self.max}"


@dataclass(frozen=True, slots=True)
class InputSpec:
    dims: tuple[DimSpec, ...]
    dtype: str = "float32"

    @property
    def example_shape(self) -> tuple[int, ...]:
        return tuple(d.opt for d in self.dims)

    @property
    def is_static(self) -> bool:
        return all(d.is_static for d in self.dims)

    def __str__(self) -> str:
        return "x".join(str(d) for d in self.dims) + f":{self.dtype}"

    @classmethod
    def static(cls, shape, dtype: str = "float32") -> "InputSpec":
        return cls(tuple(DimSpec(n, n, n) for n in shape), dtype)


def _parse_dim(text: str, spec: str) -> DimSpec:
    match = _DIM.match(text)
    if not match:
        raise UsageError(f"--input {spec!r}: bad dimension {text!r}; expected N, LO..HI or LO..OPT..HI. {SPEC_HELP}")
    first, second, third = match.groups()
    if second is None:
        size = int(first)
        return DimSpec(size, size, size)
    low, high = int(first), int(third if third is not None else second)
    opt = int(second) if third is not None else high
    if not low <= opt <= high:
        raise UsageError(f"--input {spec!r}: dimension {text!r} needs LO <= OPT <= HI")
    if low == high:
        return DimSpec(low, low, low)
    return DimSpec(low, opt, high)


def parse_input_spec(spec: str) -> InputSpec:
    """Parse ``1..8x3x224x224:float32``; a missing ``:DTYPE`` means float32."""
    text = spec.strip()
    shape_text, _, dtype = text.partition(":")
    dtype = dtype.strip() or "float32"
    if dtype not in DTYPE_NAMES:
        raise UsageError(f"--input {spec!r}: unknown dtype {dtype!r}; use one of {', '.join(DTYPE_NAMES)}")
    if not shape_text:
        raise UsageError(f"--input {spec!r}: no dimensions. {SPEC_HELP}")
    dims = tuple(_parse_dim(part, spec) for part in shape_text.lower().split("x"))
    return InputSpec(dims, dtype)
