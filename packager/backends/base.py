"""The engine backend contract: a segment goes in, one serialized :class:`EngineVariant` comes out.

Shaped like Polygraphy's loaders: the public :meth:`CompilingBackend.compile` checks what every
backend relies on (the segment's IR is well formed, its boundaries are typed tensors, every node
passes the backend's own capability predicate, device and precision are ones it knows), then
calls the backend's ``_compile_impl``.  Backends import their heavy libraries (torch._inductor,
tensorrt) inside ``_compile_impl`` so that importing :mod:`packager.backends` stays cheap.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from packager.backends._symbols import SymbolRange
from packager.errors import BackendError, InternalError, UsageError
from packager.ir.graph import Graph, Node, Value
from packager.ir.types import SymDim, TensorType
from packager.ir.verify import verify

__all__ = [
    "EngineVariant", "Backend", "CompilingBackend", "PRECISIONS", "check_segment_boundaries",
    "tensor_signature",
]

# Precisions a build may ask for, as the CLI spells them.
PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class EngineVariant:
    """One compiled form of one segment.

    ``requirements`` is what a host must offer to load it (written into the manifest and checked
    by the runtime before the payload is touched); ``meta`` is informative (compile seconds,
    input/output signature) and JSON-serializable.
    """

    backend: str
    payload: bytes = field(repr=False)
    requirements: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.payload)


@runtime_checkable
class Backend(Protocol):
    """What the partitioner and the build driver need from an engine backend."""

    name: str

    def capability(self, node: Node) -> str | None:
        """``None`` if this backend can compile ``node``, else the reason it cannot (a sentence)."""
        ...

    def compile(self, segment: Graph, *, device: str, precision: str, workdir: Path) -> EngineVariant:
        """Compile one outlined segment into an engine variant."""
        ...


class CompilingBackend(abc.ABC):
    """Base for backends: validates the request, then calls :meth:`_compile_impl`."""

    name: ClassVar[str]
    # Device types (``torch.device(...).type``) and precisions this backend can build for.
    device_types: ClassVar[tuple[str, ...]]
    precisions: ClassVar[tuple[str, ...]] = PRECISIONS

    @abc.abstractmethod
    def capability(self, node: Node) -> str | None:
        ...

    def compile(self, segment: Graph, *, device: str, precision: str, workdir: Path) -> EngineVariant:
        self._check_request(segment, device, precision)
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        variant = self._compile_impl(segment, device=device, precision=precision, workdir=workdir)
        if not isinstance(variant, EngineVariant) or variant.backend != self.name:
            raise InternalError(f"backend {self.name!r} returned {variant!r} instead of its own EngineVariant")
        return variant

    @abc.abstractmethod
    def _compile_impl(self, segment: Graph, *, device: str, precision: str, workdir: Path) -> EngineVariant:
        ...

    # ------------------------------------------------------------- validation
    def _check_request(self, segment: Graph, device: str, precision: str) -> None:
        where = f"segment {segment.name!r}"
        device_type = str(device).split(":", 1)[0]
        if device_type not in self.device_types:
            raise UsageError(
                f"{where}: the {self.name} backend builds for devices {', '.join(self.device_types)}, "
                f"not {device!r}"
            )
        if precision not in self.precisions:
            raise UsageError(
                f"{where}: unknown precision {precision!r} for the {self.name} backend; "
                f"use one of {', '.join(self.precisions)}"
            )
        verify(segment)
        check_segment_boundaries(segment)
        for node in segment.walk():
            reason = self.capability(node)
            if reason is not None:
                raise BackendError(
                    f"{where}: the {self.name} backend cannot compile {node!r}: {reason}. "
                    "The partitioner should have left this node in the TorchScript glue."
                )


def check_segment_boundaries(segment: Graph) -> None:
    """Every segment input and output is a tensor of known dtype and rank (docs/internals.md).

    A non-tensor boundary means the partitioner broke its contract (:class:`InternalError`); an
    untyped tensor means shape inference did not reach this value (:class:`BackendError`).
    """
    where = f"segment {segment.name!r}"
    if not segment.outputs:
        raise BackendError(f"{where} has no outputs; there is nothing to compile")
    for role, values in (("input", segment.inputs), ("output", segment.outputs)):
        for position, value in enumerate(values):
            if not isinstance(value.type, TensorType):
                raise InternalError(
                    f"{where}: {role} {position} (%{value.name}: {value.type}) is not a tensor; "
                    "segment boundaries must be tensors (the partitioner must keep non-tensor "
                    "values inside a segment or in the glue)"
                )
            if value.type.dtype is None or value.type.shape is None:
                raise BackendError(
                    f"{where}: {role} {position} (%{value.name}: {value.type}) has an unknown "
                    "dtype or rank; engines need typed boundaries. Run shape inference (or give "
                    "--input specs) before partitioning."
                )


def tensor_signature(values: tuple[Value, ...], ranges: dict[str, SymbolRange]) -> list[dict[str, Any]]:
    """The manifest form of typed tensor values: ``[{"name", "dtype", "dims"}]``.

    A dim is an ``int`` or ``{"symbol": expr}``; a plain symbol also gets its ``min`` / ``max``.
    """
    signature = []
    for value in values:
        assert isinstance(value.type, TensorType) and value.type.shape is not None
        dims: list[Any] = []
        for dim in value.type.shape:
            if not isinstance(dim, SymDim):
                dims.append(int(dim))
                continue
            entry: dict[str, Any] = {"symbol": dim.expr}
            if dim.expr in ranges:
                entry["min"] = ranges[dim.expr].min
                entry["max"] = ranges[dim.expr].max
            dims.append(entry)
        signature.append({"name": value.name, "dtype": value.type.dtype, "dims": dims})
    return signature
