"""The explicit registry the ``poros::execute_engine`` operator looks engines up in.

Keys are ``"<instance>/<segment id>"``: the instance is unique per loaded artifact (the runtime
writes it into the glue's ``poros_instance`` attribute), so two loaded artifacts never share a
key.  A loaded module's engines are registered together and unregistered together when the
module that owns them is garbage-collected.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .errors import InternalError, UsageError

if TYPE_CHECKING:
    import torch

__all__ = ["Engine", "EngineRegistry"]

# An engine takes the segment's input tensors and returns its output tensors.
Engine = Callable[[list["torch.Tensor"]], list["torch.Tensor"]]

_KEY_PART = re.compile(r"[A-Za-z0-9_.\-]+")


def _check_part(part: str, what: str) -> None:
    if not isinstance(part, str) or _KEY_PART.fullmatch(part) is None:
        raise UsageError(
            f"invalid engine {what} {part!r}: use only ASCII letters, digits and '_.-' "
            "(the registry key is '<instance>/<segment id>')"
        )


class EngineRegistry:
    """Maps ``"<instance>/<segment id>"`` to a callable engine.  Registering a key twice is an
    error; lookups are a single dict access so the execute path stays cheap."""

    __slots__ = ("_engines", "_lock")

    def __init__(self) -> None:
        self._engines: dict[str, Engine] = {}
        # Reentrant: a garbage collection triggered while the lock is held may run a
        # finalizer that unregisters another instance from the same thread.
        self._lock = threading.RLock()

    def register(self, key: str, engine: Engine) -> None:
        """Register one engine under ``key`` (``"<instance>/<segment id>"``)."""
        instance, separator, segment = str(key).partition("/")
        if not separator:
            raise UsageError(f"invalid engine key {key!r}: expected '<instance>/<segment id>'")
        self.register_instance(instance, {segment: engine})

    def register_instance(
        self, instance: str, engines: Mapping[str, Engine], owner: object | None = None
    ) -> None:
        """Register all of one instance's engines, all or nothing.

        With ``owner``, the engines are unregistered when ``owner`` is garbage-collected.
        """
        _check_part(instance, "instance")
        keys = {}
        for segment, engine in engines.items():
            _check_part(segment, "segment id")
            if not callable(engine):
                raise UsageError(f"engine for '{instance}/{segment}' is not callable: {engine!r}")
            keys[f"{instance}/{segment}"] = engine
        with self._lock:
            taken = sorted(key for key in keys if key in self._engines)
            if taken:
                raise UsageError(
                    f"engine key(s) {', '.join(taken)} already registered: every loaded "
                    "artifact needs its own instance name"
                )
            self._engines.update(keys)
        if owner is not None:
            weakref.finalize(owner, self.unregister_instance, instance)

    def unregister_instance(self, instance: str) -> None:
        """Remove every engine of ``instance`` (no error if there is none)."""
        prefix = instance + "/"
        with self._lock:
            for key in [key for key in self._engines if key.startswith(prefix)]:
                del self._engines[key]

    def lookup(self, key: str) -> Engine:
        """Return the engine registered under ``key``."""
        try:
            return self._engines[key]
        except KeyError:
            raise InternalError(
                f"no engine is registered under {key!r} (registered: "
                f"{', '.join(sorted(self._engines)) or 'none'}): the glue names a segment its "
                "artifact did not load, or the PorosModule that owned it was garbage-collected; "
                "keep the module returned by poros_runtime.load alive while calling its glue"
            ) from None

    def instances(self) -> list[str]:
        """The instances that have engines registered, sorted."""
        return sorted({key.partition("/")[0] for key in self._engines})

    def __contains__(self, key: object) -> bool:
        return key in self._engines

    def __len__(self) -> int:
        return len(self._engines)

    def __repr__(self) -> str:
        return f"EngineRegistry({sorted(self._engines)})"
