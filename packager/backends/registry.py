"""An explicit registry of engine backends by name (no hidden global state keyed by object ids).

Registering a name twice is an error; asking for an unknown name lists the known ones.  The
default instance, with the built-in backends, is built in :mod:`packager.backends`; tests and
tools may build their own.
"""

from __future__ import annotations

import re
from typing import Iterable, Iterator

from packager.backends.base import Backend
from packager.errors import UsageError

__all__ = ["BackendRegistry"]

_NAME = re.compile(r"[a-z][a-z0-9_-]*")


class BackendRegistry:
    """Backends by name, in registration order (so listings are deterministic)."""

    __slots__ = ("_backends",)

    def __init__(self, backends: Iterable[Backend] = ()) -> None:
        self._backends: dict[str, Backend] = {}
        for backend in backends:
            self.register(backend)

    def register(self, backend: Backend) -> None:
        if not isinstance(backend, Backend):
            raise UsageError(
                f"{backend!r} is not an engine backend: it needs a 'name', a "
                "'capability(node)' and a 'compile(segment, *, device, precision, workdir)'"
            )
        name = backend.name
        if not isinstance(name, str) or _NAME.fullmatch(name) is None:
            raise UsageError(f"backend name {name!r} must be lower-case letters, digits and '_'")
        if name in self._backends:
            raise UsageError(
                f"a backend named {name!r} is already registered ({self._backends[name]!r}); "
                "each backend name must be registered once"
            )
        self._backends[name] = backend

    def get(self, name: str) -> Backend:
        try:
            return self._backends[name]
        except KeyError:
            known = ", ".join(self._backends) or "none"
            raise UsageError(f"unknown backend {name!r}; known backends: {known}") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._backends)

    def __contains__(self, name: object) -> bool:
        return name in self._backends

    def __iter__(self) -> Iterator[Backend]:
        return iter(tuple(self._backends.values()))

    def __len__(self) -> int:
        return len(self._backends)

    def __repr__(self) -> str:
        return f"BackendRegistry({list(self._backends)})"
