"""The format version this library reads and writes, and the compatibility rules (FORMAT.md §6).

A reader accepts every archive whose major version equals its own: minors only add optional
manifest fields, which an older reader ignores.  A feature an older reader must not ignore is
named in the manifest's ``required_features`` instead, and a reader refuses any name it does
not know.
"""

from __future__ import annotations

import re

from .errors import FormatVersionError

__all__ = [
    "FORMAT_VERSION",
    "FORMAT_VERSION_STRING",
    "SUPPORTED_FEATURES",
    "check_version",
    "check_required_features",
]

FORMAT_VERSION: tuple[int, int] = (1, 0)
FORMAT_VERSION_STRING: str = "1.0"

# Names a manifest may list in "required_features" that this reader understands.  Format 1.0
# defines none; a minor that introduces one adds its name here and documents it in FORMAT.md.
SUPPORTED_FEATURES: frozenset[str] = frozenset()

_VERSION_PATTERN = re.compile(r"(0|[1-9][0-9]{0,4})\.(0|[1-9][0-9]{0,4})")
_U16_MAX = 0xFFFF  # the header stores each part as a u16

_UPGRADE_ADVICE = (
    "upgrade poros-runtime (pip install -U poros-runtime poros-artifact) on this host, "
    "or rebuild the artifact with a poros-pack that writes format {supported}.x"
)


def check_version(found: str) -> tuple[int, int]:
    """Parse a ``"major.minor"`` format version and check that this reader can read it.

    Returns ``(major, minor)``.  Raises :class:`FormatVersionError` when the string is not a
    version or its major differs from :data:`FORMAT_VERSION`'s; a newer minor is accepted.
    """
    if not isinstance(found, str) or _VERSION_PATTERN.fullmatch(found) is None:
        raise FormatVersionError(
            f"format version {found!r} is not of the form 'major.minor' (e.g. "
            f"{FORMAT_VERSION_STRING!r}); the artifact's header or manifest is malformed: "
            "rebuild it with poros-pack"
        )
    major, minor = (int(part) for part in found.split("."))
    if major > _U16_MAX or minor > _U16_MAX:
        raise FormatVersionError(
            f"format version {found!r} is out of range (each part at most {_U16_MAX}); the "
            "artifact's manifest is malformed: rebuild it with poros-pack"
        )
    supported_major = FORMAT_VERSION[0]
    if major > supported_major:
        raise FormatVersionError(
            f"artifact uses .poros format {found}, but this reader (poros-artifact, format "
            f"{FORMAT_VERSION_STRING}) reads only format {supported_major}.x: "
            + _UPGRADE_ADVICE.format(supported=supported_major)
        )
    if major < supported_major:
        raise FormatVersionError(
            f"artifact uses the old .poros format {found}, but this reader (poros-artifact, "
            f"format {FORMAT_VERSION_STRING}) reads only format {supported_major}.x: rebuild "
            "the artifact with a current poros-pack, or use a poros-runtime release that "
            f"reads format {major}.x"
        )
    return major, minor


def check_required_features(required: list[str], *, where: str) -> None:
    """Refuse an archive that needs a feature this reader does not implement.

    ``where`` names the archive in the message.  ``required`` is already known to be a list of
    strings.
    """
    unknown = sorted(set(required) - SUPPORTED_FEATURES)
    if unknown:
        known = ", ".join(sorted(SUPPORTED_FEATURES)) or "none"
        raise FormatVersionError(
            f"{where}: the artifact requires format feature(s) {', '.join(map(repr, unknown))} "
            f"that this reader (format {FORMAT_VERSION_STRING}; known features: {known}) does "
            "not implement: " + _UPGRADE_ADVICE.format(supported=FORMAT_VERSION[0])
        )
