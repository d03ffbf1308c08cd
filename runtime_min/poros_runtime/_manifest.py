"""Typed access to manifest fields: a missing or malformed field is an ArtifactError that names
the field and the artifact."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import ArtifactError

__all__ = ["field"]


def field(mapping: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``mapping[key]``, checked to be an instance of ``kind``."""
    value = mapping.get(key) if isinstance(mapping, Mapping) else None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ArtifactError(
            f"{where}: manifest field {key!r} is missing or malformed (got {value!r}); rebuild "
            "the artifact with poros-pack"
        )
    return value
