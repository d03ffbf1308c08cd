"""Engine backends: a segment of the IR in, a serialized engine variant out.

``default_registry`` holds the built-in backends; :func:`get_backend` looks one up by name.
The backend contract is in ``docs/internals.md`` and :mod:`packager.backends.base`.
"""

from packager.backends.base import Backend, CompilingBackend, EngineVariant, PRECISIONS
from packager.backends.inductor import InductorBackend
from packager.backends.registry import BackendRegistry
from packager.backends.tensorrt import TensorRTBackend

__all__ = [
    "Backend",
    "BackendRegistry",
    "CompilingBackend",
    "EngineVariant",
    "InductorBackend",
    "PRECISIONS",
    "TensorRTBackend",
    "default_registry",
    "get_backend",
]

default_registry = BackendRegistry([InductorBackend(), TensorRTBackend("tensorrt"), TensorRTBackend("tensorrt-rtx")])


def get_backend(name: str) -> Backend:
    """The registered backend called ``name`` (UsageError listing the known ones otherwise)."""
    return default_registry.get(name)
