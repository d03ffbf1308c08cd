"""The one error hierarchy of poros-pack, shared by the packager, the runtime and the format.

It lives in the lowest-level distribution (stdlib only) so that the runtime, which must never
import the packager, raises the same types the packager does.  Every message says what went
wrong, where (file, node, segment, member) and what to do about it.
"""

from __future__ import annotations

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


class PorosError(Exception):
    """Base of every error poros-pack raises on purpose."""


class UsageError(PorosError, ValueError):
    """Bad command-line or API input (a malformed --input spec, a missing model file...)."""


class FrontendError(PorosError):
    """A model could not be imported into the IR."""


class UnsupportedOpError(FrontendError):
    """The model uses an operator or construct that poros-pack cannot represent."""


class LoweringError(PorosError):
    """A lowering pass failed; the message names the pass and the node."""


class PartitionError(PorosError):
    """Segmentation produced (or was asked for) something impossible."""


class BackendError(PorosError):
    """An engine backend failed to compile or serialize a segment."""


class ArtifactError(PorosError):
    """A .poros archive is unreadable, malformed or inconsistent."""


class IntegrityError(ArtifactError):
    """A member's bytes do not match the checksum recorded in the manifest (corruption).

    Also raised when the header, the manifest or the file's length do not match what the
    header records: the file was truncated or damaged after it was written.
    """


class FormatVersionError(ArtifactError):
    """The archive's format version cannot be read by this reader."""


class RuntimeCompatError(PorosError):
    """The archive is valid but this host cannot run it (torch version, device, library)."""


class DeviceUnavailableError(RuntimeCompatError):
    """The archive (or the caller) needs a device this host does not have."""


class InputMismatchError(PorosError, ValueError):
    """Inputs passed to a loaded model do not match its recorded signature."""


class InternalError(PorosError):
    """A bug in poros-pack itself; please report it with the model that triggered it."""
