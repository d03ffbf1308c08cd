"""poros_runtime: load and run ``.poros`` archives, with torch and no compiler.

    import poros_runtime
    model = poros_runtime.load("model.poros")          # or load(path, device="cuda:1")
    output = model(x)                                   # checked against the signature
    fast = poros_runtime.load("model.poros", cuda_graphs=True)   # CUDA: replays CUDA graphs

``import poros_runtime`` stays light: torch is imported on first use of :func:`load`,
:class:`PorosModule` or the registries.  Errors are :mod:`poros_runtime.errors` (the shared
poros-pack hierarchy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors
from .errors import *  # noqa: F403  (the error classes are part of this package's API)

if TYPE_CHECKING:
    from ._engine_registry import EngineRegistry
    from ._loader import load
    from ._module import PorosModule
    from .executors import ExecutorRegistry

__all__ = ["load", "PorosModule", "EngineRegistry", "ExecutorRegistry", *errors.__all__]

_LAZY = {
    "load": "._loader",
    "PorosModule": "._module",
    "EngineRegistry": "._engine_registry",
    "ExecutorRegistry": ".executors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
