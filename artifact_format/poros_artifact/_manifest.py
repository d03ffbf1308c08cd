"""The manifest's canonical encoding, its strict decoding and the member table (FORMAT.md §3)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from ._names import member_names_problem
from ._version import check_required_features
from .errors import ArtifactError

__all__ = [
    "MemberInfo",
    "COMPRESSIONS",
    "json_problem",
    "encode",
    "decode",
    "check_container_fields",
    "parse_members",
]

COMPRESSIONS = ("none", "zstd")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_REBUILD_ADVICE = "rebuild the artifact with poros-pack build (and report this as a bug)"


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """One entry of the manifest's ``members`` table.

    ``size`` and ``sha256`` describe the member's bytes as handed to the writer; ``stored_size``
    is the length of its blob in the data section, which starts ``offset`` bytes into it.
    """

    name: str
    sha256: str
    size: int
    compression: str
    stored_size: int
    offset: int

    def to_json(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "size": self.size,
            "compression": self.compression,
            "stored_size": self.stored_size,
            "offset": self.offset,
        }


def json_problem(value: object, where: str = "manifest") -> str | None:
    """Return why ``value`` does not survive a JSON round trip unchanged, or None.

    Tuples are accepted (they read back as lists); everything else must be a dict with str
    keys, a list, a str, an int, a finite float, a bool or None.
    """
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} is {value!r}, which JSON cannot hold"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where} has a key {key!r} of type {type(key).__name__}; keys must be str"
            problem = json_problem(item, f"{where}[{key!r}]")
            if problem is not None:
                return problem
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            problem = json_problem(item, f"{where}[{index}]")
            if problem is not None:
                return problem
        return None
    return (
        f"{where} is a {type(value).__name__}, which is not JSON (use str, int, float, bool, "
        "None, list or dict)"
    )


def encode(manifest: dict[str, Any]) -> bytes:
    """The canonical bytes: sorted keys, no whitespace, ASCII only (non-ASCII as \\u escapes)."""
    return json.dumps(
        manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads would silently keep the last of two equal keys.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def decode(raw: bytes, where: str) -> dict[str, Any]:
    """Parse manifest bytes whose checksum already matched; malformed means a faulty writer."""
    try:
        manifest = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_reject_duplicate_keys,
            parse_constant=_reject_constant,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ArtifactError(
            f"{where}: the manifest is not valid JSON ({exc}); {_REBUILD_ADVICE}"
        ) from None
    if not isinstance(manifest, dict):
        raise ArtifactError(
            f"{where}: the manifest is a JSON {type(manifest).__name__}, not an object; "
            + _REBUILD_ADVICE
        )
    return manifest


def check_container_fields(manifest: dict[str, Any], header_version: str, where: str) -> None:
    """Check the fields the container itself relies on, except ``members``."""
    found = manifest.get("format_version")
    if found != header_version:
        raise ArtifactError(
            f"{where}: the header says format {header_version} but the manifest's "
            f"format_version is {found!r}; {_REBUILD_ADVICE}"
        )
    required = manifest.get("required_features", [])
    if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
        raise ArtifactError(
            f"{where}: the manifest's required_features must be a list of str, not {required!r}; "
            + _REBUILD_ADVICE
        )
    check_required_features(required, where=where)


def parse_members(manifest: dict[str, Any], data_length: int, where: str) -> dict[str, MemberInfo]:
    """Validate the ``members`` table against the data section; return it keyed by name.

    Beyond each entry's own fields, the blobs must tile the data section exactly (in offset
    order, each starts where the previous one ends, the last ends at ``data_length``), so every
    byte of the file is covered by some checksum.
    """
    table = manifest.get("members")
    if not isinstance(table, dict):
        raise ArtifactError(
            f"{where}: the manifest has no 'members' object; {_REBUILD_ADVICE}"
        )
    problem = member_names_problem(table)
    if problem is not None:
        raise ArtifactError(f"{where}: the manifest lists an {problem}; {_REBUILD_ADVICE}")
    members = {name: _parse_entry(name, entry, where) for name, entry in sorted(table.items())}
    position = 0
    for info in sorted(members.values(), key=lambda info: (info.offset, info.stored_size)):
        if info.offset != position:
            raise ArtifactError(
                f"{where}: member {info.name!r} starts at data offset {info.offset}, but the "
                f"previous member ends at {position} (blobs must be contiguous); "
                + _REBUILD_ADVICE
            )
        position += info.stored_size
    if position != data_length:
        raise ArtifactError(
            f"{where}: the members cover {position} bytes but the data section has "
            f"{data_length}; {_REBUILD_ADVICE}"
        )
    return members


def _parse_entry(name: str, entry: object, where: str) -> MemberInfo:
    def bad(field: str, rule: str) -> ArtifactError:
        value = entry.get(field) if isinstance(entry, dict) else None
        return ArtifactError(
            f"{where}: member {name!r} has an invalid {field!r} ({value!r}; {rule}); "
            + _REBUILD_ADVICE
        )

    if not isinstance(entry, dict):
        raise ArtifactError(
            f"{where}: the manifest entry of member {name!r} is not an object; {_REBUILD_ADVICE}"
        )
    sha256 = entry.get("sha256")
    if not isinstance(sha256, str) or _SHA256_HEX.fullmatch(sha256) is None:
        raise bad("sha256", "expected 64 lowercase hex digits")
    counts = {}
    for field in ("size", "stored_size", "offset"):
        value = entry.get(field)
        if type(value) is not int or value < 0:
            raise bad(field, "expected an int >= 0")
        counts[field] = value
    compression = entry.get("compression")
    if compression not in COMPRESSIONS:
        raise bad("compression", f"expected one of {', '.join(COMPRESSIONS)}")
    if compression == "none" and counts["stored_size"] != counts["size"]:
        raise bad("stored_size", "an uncompressed member stores exactly 'size' bytes")
    return MemberInfo(
        name, sha256, counts["size"], compression, counts["stored_size"], counts["offset"]
    )
