"""Engine executors: one per backend name, found through an explicit :class:`ExecutorRegistry`.

An executor first *checks* a variant's recorded requirements against this host (returning why
not as data, so the load plan can say why a variant was skipped), then *loads* the engine bytes
into a callable engine.  Executors are created lazily, the first time a variant needs them, so
a backend's library (TensorRT, ...) is imported only when an artifact uses it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import RuntimeCompatError, UsageError

if TYPE_CHECKING:
    import torch

    from .._engine_registry import Engine

__all__ = ["Executor", "ExecutorRegistry", "Incompatibility", "DEFAULT_EXECUTORS"]


@dataclass(frozen=True)
class Incompatibility:
    """Why this host cannot run a variant: the error class to raise and a sentence that says
    what differs and what to do."""

    error: type[RuntimeCompatError]
    reason: str


class Executor(Protocol):
    """Loads the engines of one backend."""

    backend: str

    def check(
        self, requirements: Mapping[str, Any], device: torch.device, *, where: str
    ) -> Incompatibility | None:
        """Return None when this host can run a variant with these requirements on ``device``,
        else why not.  Raises :class:`~poros_runtime.errors.ArtifactError` on malformed
        requirements.  ``where`` names the variant in messages."""
        ...

    def load(
        self, payload: bytes, requirements: Mapping[str, Any], device: torch.device, *, where: str
    ) -> Engine:
        """Deserialize verified engine bytes into an engine bound to ``device``."""
        ...


_BACKEND_NAME = re.compile(r"[a-z][a-z0-9_]*(?:-[a-z0-9_]+)*")


class ExecutorRegistry:
    """Backend name -> executor factory.  Registering a name twice is an error."""

    __slots__ = ("_factories", "_executors")

    def __init__(self) -> None:
        self._factories: dict[str, Callable[[], Executor]] = {}
        self._executors: dict[str, Executor] = {}

    def register(self, backend: str, factory: Callable[[], Executor]) -> None:
        """Register ``factory`` (called once, on first use) as the executor of ``backend``."""
        if not isinstance(backend, str) or _BACKEND_NAME.fullmatch(backend) is None:
            raise UsageError(
                f"invalid backend name {backend!r}: use lowercase ASCII letters, digits, '_' and "
                "inner '-', starting with a letter"
            )
        if backend in self._factories:
            raise UsageError(f"an executor for backend {backend!r} is already registered")
        self._factories[backend] = factory

    def get(self, backend: str) -> Executor | None:
        """The executor of ``backend``, or None when no executor is registered for it."""
        executor = self._executors.get(backend)
        if executor is None:
            factory = self._factories.get(backend)
            if factory is None:
                return None
            executor = self._executors[backend] = factory()
        return executor

    def backends(self) -> list[str]:
        """Registered backend names, sorted."""
        return sorted(self._factories)

    def __contains__(self, backend: object) -> bool:
        return backend in self._factories

    def __repr__(self) -> str:
        return f"ExecutorRegistry({self.backends()})"


def _inductor_executor() -> Executor:
    from .inductor import InductorExecutor

    return InductorExecutor()


def _tensorrt_executor(backend: str) -> Callable[[], Executor]:
    def create() -> Executor:
        from .tensorrt import TensorRTExecutor

        return TensorRTExecutor(backend)

    return create


DEFAULT_EXECUTORS = ExecutorRegistry()
DEFAULT_EXECUTORS.register("inductor", _inductor_executor)
DEFAULT_EXECUTORS.register("tensorrt", _tensorrt_executor("tensorrt"))
DEFAULT_EXECUTORS.register("tensorrt-rtx", _tensorrt_executor("tensorrt-rtx"))
