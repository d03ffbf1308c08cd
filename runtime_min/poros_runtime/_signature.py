"""Check call inputs against the artifact's recorded input signature.

Only metadata is read (dtype, shape, device): no tensor values, no host synchronization, so
the check can sit in front of a captured CUDA graph.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ._manifest import field
from .errors import ArtifactError, InputMismatchError

__all__ = ["SymbolicDim", "InputSpec", "InputChecker"]

_REBUILD_HINT = "or rebuild the artifact with poros-pack for the inputs you need"


@dataclass(frozen=True, slots=True)
class SymbolicDim:
    """A dynamic dimension: ``symbol`` takes one size in ``[min, max]`` across all inputs."""

    symbol: str
    min: int
    max: int | None

    def __str__(self) -> str:
        upper = "inf" if self.max is None else self.max
        return f"{self.symbol}[{self.min}..{upper}]"


@dataclass(frozen=True, slots=True)
class InputSpec:
    name: str
    dtype: torch.dtype
    dims: tuple[int | SymbolicDim, ...]

    def shape_text(self) -> str:
        return "[" + ", ".join(str(dim) for dim in self.dims) + "]"


def _parse_dim(dim: Any, where: str) -> int | SymbolicDim:
    if isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0:
        return dim
    symbol = field(dim, "symbol", str, where)
    low = dim.get("min", 0)
    high = dim.get("max")
    if not isinstance(low, int) or not (high is None or isinstance(high, int)):
        raise ArtifactError(
            f"{where}: dynamic dim {dim!r} has a non-integer range; rebuild the artifact"
        )
    if high is not None and high < low:
        raise ArtifactError(f"{where}: dynamic dim {dim!r} has max < min; rebuild the artifact")
    return SymbolicDim(symbol, low, high)


def parse_inputs(inputs: Sequence[Any], where: str) -> tuple[InputSpec, ...]:
    """``manifest["signature"]["inputs"]`` -> input specs."""
    specs = []
    for index, entry in enumerate(inputs):
        entry_where = f"{where}, signature input #{index}"
        name = field(entry, "name", str, entry_where)
        dtype_name = field(entry, "dtype", str, entry_where)
        dtype = getattr(torch, dtype_name, None)
        if not isinstance(dtype, torch.dtype):
            raise ArtifactError(
                f"{entry_where}: dtype {dtype_name!r} is not a torch dtype; rebuild the artifact"
            )
        dims = tuple(_parse_dim(dim, entry_where) for dim in field(entry, "dims", list, where))
        specs.append(InputSpec(name, dtype, dims))
    return tuple(specs)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


class InputChecker:
    """Validates one call's positional inputs; raises :class:`InputMismatchError` naming the
    input, what was expected, what came, and what to do."""

    __slots__ = ("specs", "device")

    def __init__(self, specs: tuple[InputSpec, ...], device: torch.device) -> None:
        self.specs = specs
        self.device = device

    def check(self, inputs: Sequence[Any]) -> None:
        if len(inputs) != len(self.specs):
            names = ", ".join(spec.name for spec in self.specs)
            raise InputMismatchError(
                f"the model takes {len(self.specs)} input(s) ({names}), got {len(inputs)}: pass "
                "exactly these tensors, positionally, in this order"
            )
        bound: dict[str, tuple[int, str, int]] = {}
        for index, (spec, value) in enumerate(zip(self.specs, inputs)):
            self._check_one(index, spec, value, bound)

    def _check_one(
        self,
        index: int,
        spec: InputSpec,
        value: Any,
        bound: dict[str, tuple[int, str, int]],
    ) -> None:
        label = f"input {spec.name!r} (#{index})"
        if not isinstance(value, torch.Tensor):
            raise InputMismatchError(
                f"{label}: expected a torch.Tensor of dtype {_dtype_name(spec.dtype)} and shape "
                f"{spec.shape_text()}, got {type(value).__name__}: pass a tensor"
            )
        if value.dtype != spec.dtype:
            raise InputMismatchError(
                f"{label}: expected dtype {_dtype_name(spec.dtype)}, got "
                f"{_dtype_name(value.dtype)}: convert it with .to({spec.dtype}), {_REBUILD_HINT}"
            )
        if value.dim() != len(spec.dims):
            raise InputMismatchError(
                f"{label}: expected rank {len(spec.dims)} (shape {spec.shape_text()}), got rank "
                f"{value.dim()} (shape {list(value.shape)}): reshape it, {_REBUILD_HINT}"
            )
        if value.device != self.device:
            reload_hint = (
                f", or load the artifact with device='{value.device}'"
                if value.device.type == self.device.type
                else ""
            )
            raise InputMismatchError(
                f"{label}: expected a tensor on {self.device}, got one on {value.device}: move it "
                f"with .to('{self.device}'){reload_hint}"
            )
        for axis, (dim, size) in enumerate(zip(spec.dims, value.shape)):
            if isinstance(dim, int):
                if size != dim:
                    raise InputMismatchError(
                        f"{label}: dim {axis} must be {dim} (shape {spec.shape_text()}), got "
                        f"{size} (shape {list(value.shape)}): this dim is static in the "
                        f"artifact; pass size {dim}, {_REBUILD_HINT}"
                    )
                continue
            if size < dim.min or (dim.max is not None and size > dim.max):
                raise InputMismatchError(
                    f"{label}: dim {axis} ({dim.symbol}) must be within [{dim.min}, "
                    f"{'inf' if dim.max is None else dim.max}], got {size} (shape "
                    f"{list(value.shape)}): split or pad the batch to fit, {_REBUILD_HINT}"
                )
            first = bound.setdefault(dim.symbol, (size, spec.name, axis))
            if first[0] != size:
                raise InputMismatchError(
                    f"{label}: dim {axis} is {size}, but it shares symbol {dim.symbol} with dim "
                    f"{first[2]} of input {first[1]!r}, which is {first[0]}: inputs that share "
                    "a symbol must agree on its size"
                )


def input_checker(signature: Mapping[str, Any], device: torch.device, where: str) -> InputChecker:
    """Build the checker for ``manifest["signature"]``."""
    inputs = field(signature, "inputs", list, f"{where}, signature")
    return InputChecker(parse_inputs(inputs, where), device)
