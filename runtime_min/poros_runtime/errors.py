"""The poros-pack error hierarchy, re-exported from :mod:`poros_artifact.errors`.

The runtime raises the same classes as the packager and the format library, so a caller can
catch ``poros_runtime.errors.PorosError`` (or a subclass) whatever layer failed.
"""

from __future__ import annotations

from poros_artifact.errors import (
    ArtifactError,
    BackendError,
    DeviceUnavailableError,
    FormatVersionError,
    FrontendError,
    InputMismatchError,
    IntegrityError,
    InternalError,
    LoweringError,
    PartitionError,
    PorosError,
    RuntimeCompatError,
    UnsupportedOpError,
    UsageError,
)

__all__ = [
    "PorosError",
    "UsageError",
    "FrontendError",
    "UnsupportedOpError",
    "LoweringError",
    "PartitionError",
    "BackendError",
    "ArtifactError",
    "IntegrityError",
    "FormatVersionError",
    "RuntimeCompatError",
    "DeviceUnavailableError",
    "InputMismatchError",
    "InternalError",
]
