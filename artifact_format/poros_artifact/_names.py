"""Member naming rules (FORMAT.md §4).

A member name is a relative POSIX path whose components use a portable ASCII alphabet, so that
any member can be written to any file system (``poros-pack inspect --extract``, a runtime that
hands a member to a loader by path) without escaping the target folder or colliding with
another member.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from .errors import UsageError

__all__ = ["validate_member_name", "member_names_problem", "MAX_NAME_LENGTH", "RESERVED_NAMES"]

MAX_NAME_LENGTH = 1024
MAX_COMPONENT_LENGTH = 255
# Tools that unpack an archive write the manifest next to the members under this name.
RESERVED_NAMES = frozenset({"manifest.json"})

# Starts with a letter, digit or "_"; never ends with "." (Windows strips trailing dots).
_COMPONENT = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._+-]*[A-Za-z0-9_+-])?")

_ALPHABET_RULE = (
    "each '/'-separated component must use only ASCII letters, digits and '._+-', start with a "
    "letter, digit or '_', and not end with '.'"
)


def _name_problem(name: object) -> str | None:
    """Return why ``name`` is not a valid member name, or None when it is."""
    if not isinstance(name, str):
        return f"a member name must be a str, not {type(name).__name__}"
    if not name:
        return "a member name must not be empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"a member name must be at most {MAX_NAME_LENGTH} characters"
    if name.startswith("/"):
        return "a member name must be a relative path, not an absolute one"
    if "\\" in name:
        return "a member name uses '/' as its only separator; '\\' is not allowed"
    if name in RESERVED_NAMES:
        return f"{name!r} is reserved for the manifest"
    for component in name.split("/"):
        if component in ("", ".", ".."):
            return "a member name must not contain empty, '.' or '..' path components"
        if len(component) > MAX_COMPONENT_LENGTH:
            return f"a path component must be at most {MAX_COMPONENT_LENGTH} characters"
        if _COMPONENT.fullmatch(component) is None:
            return _ALPHABET_RULE
    return None


def validate_member_name(name: str) -> None:
    """Raise :class:`UsageError` when ``name`` breaks the member naming rules."""
    problem = _name_problem(name)
    if problem is not None:
        raise UsageError(f"invalid member name {name!r}: {problem}; rename the member")


def member_names_problem(names: Iterable[str]) -> str | None:
    """Return why this set of member names is not valid, or None when it is.

    Every name must pass :func:`validate_member_name`.  Between names: no two may differ only in
    ASCII case (they would collide on case-insensitive file systems), and no name may be a
    folder of another (``a`` and ``a/b`` cannot both be files).
    """
    by_folded: dict[str, str] = {}
    for name in names:
        problem = _name_problem(name)
        if problem is not None:
            return f"invalid member name {name!r}: {problem}"
        folded = name.lower()
        if folded in by_folded:
            return (
                f"member names {by_folded[folded]!r} and {name!r} differ only in case and would "
                "collide on case-insensitive file systems"
            )
        by_folded[folded] = name
    for folded, name in by_folded.items():
        parts = folded.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder in by_folded:
                return (
                    f"member {by_folded[folder]!r} is also used as a folder by member {name!r}; "
                    "a name cannot be both a file and a folder"
                )
    return None


def artifact_path(path: object) -> str:
    """``path`` as a str (the reader and the writer take str or os.PathLike, never bytes)."""
    try:
        location = os.fspath(path)
    except TypeError:
        raise UsageError(
            f"the artifact path must be a str or os.PathLike, not {type(path).__name__}"
        ) from None
    if isinstance(location, bytes):
        raise UsageError(f"the artifact path must be a str, not bytes ({location!r})")
    return location
