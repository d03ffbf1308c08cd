"""Writing a .poros file atomically (FORMAT.md §2, §7).

Everything that can be checked without writing is checked first (names, member types, the
manifest's JSON-ness).  The file is then streamed to a temporary file in the destination's
folder -- one member's compressed copy in memory at a time -- synced, and renamed over the
destination, so a reader sees either the old file or the complete new one, never a torn write.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Mapping
from typing import Any, BinaryIO

from . import _manifest
from ._compression import compress_if_it_pays
from ._container import HEADER_SIZE, encode_header
from ._names import artifact_path, member_names_problem
from ._version import FORMAT_VERSION, FORMAT_VERSION_STRING, SUPPORTED_FEATURES
from .errors import ArtifactError, UsageError

__all__ = ["write_artifact"]


def write_artifact(
    path: str | os.PathLike[str],
    manifest: dict[str, Any],
    members: Mapping[str, bytes],
    *,
    compress: bool = True,
) -> None:
    """Write ``manifest`` and ``members`` to a new .poros file at ``path``, atomically.

    On success ``manifest["format_version"]`` is set if it was absent and ``manifest["members"]``
    holds the member table (see FORMAT.md §3).  On any failure, KeyboardInterrupt included, no
    file is left at ``path`` (a file already there is left untouched) and no temporary file is
    left behind.  Raises :class:`UsageError` for invalid input (before anything is written) and
    :class:`ArtifactError` when the file system refuses the write.
    """
    destination = artifact_path(path)
    _check_manifest(manifest)
    views = _check_members(members)
    document = {key: value for key, value in manifest.items() if key != "members"}
    document.setdefault("format_version", FORMAT_VERSION_STRING)
    try:
        table = _write_atomically(destination, document, views, compress)
    except OSError as exc:
        raise ArtifactError(
            f"cannot write the artifact {destination!r}: {exc.strerror or exc}"
            f"{f' ({exc.filename})' if exc.filename else ''}; check that its folder exists and "
            "is writable and that the disk has free space"
        ) from exc
    manifest.setdefault("format_version", FORMAT_VERSION_STRING)
    manifest["members"] = table


def _check_manifest(manifest: object) -> None:
    if not isinstance(manifest, dict):
        raise UsageError(f"the manifest must be a dict, not {type(manifest).__name__}")
    content = {key: value for key, value in manifest.items() if key != "members"}
    problem = _manifest.json_problem(content)
    if problem is not None:
        raise UsageError(f"the manifest cannot be written as JSON: {problem}")
    version = manifest.get("format_version", FORMAT_VERSION_STRING)
    if version != FORMAT_VERSION_STRING:
        raise UsageError(
            f"the manifest's format_version is {version!r}, but this writer writes format "
            f"{FORMAT_VERSION_STRING}: leave the field out (the writer fills it in)"
        )
    required = manifest.get("required_features", [])
    if not isinstance(required, (list, tuple)) or not all(isinstance(f, str) for f in required):
        raise UsageError(
            f"the manifest's required_features must be a list of str, not {required!r}"
        )
    unknown = sorted(set(required) - SUPPORTED_FEATURES)
    if unknown:
        raise UsageError(
            f"the manifest requires format feature(s) {unknown} that format "
            f"{FORMAT_VERSION_STRING} does not define; no reader could open the artifact"
        )


def _check_members(members: object) -> dict[str, memoryview]:
    if not isinstance(members, Mapping):
        raise UsageError(
            f"members must be a mapping of name -> bytes, not {type(members).__name__}"
        )
    problem = member_names_problem(members)
    if problem is not None:
        raise UsageError(f"{problem}; rename the member")
    views: dict[str, memoryview] = {}
    for name in sorted(members):
        value = members[name]
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise UsageError(
                f"member {name!r} must be bytes, bytearray or memoryview, not "
                f"{type(value).__name__}"
            )
        view = memoryview(value)
        if not view.c_contiguous:
            raise UsageError(f"member {name!r} is a non-contiguous memoryview; pass bytes")
        views[name] = view.cast("B") if view.format != "B" or view.ndim != 1 else view
    return views


def _write_atomically(
    destination: str, document: dict[str, Any], views: dict[str, memoryview], compress: bool
) -> dict[str, dict[str, Any]]:
    folder = os.path.dirname(os.path.abspath(destination))
    descriptor, temporary = _create_temporary(folder, os.path.basename(destination))
    try:
        with open(descriptor, "wb") as file:
            table = _write_body(file, document, views, compress)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, destination)
    except BaseException:
        _remove_if_present(temporary)
        raise
    _sync_folder(folder)
    return table


def _write_body(
    file: BinaryIO, document: dict[str, Any], views: dict[str, memoryview], compress: bool
) -> dict[str, dict[str, Any]]:
    """Write placeholder header, blobs, manifest, then the real header; return the table."""
    file.write(bytes(HEADER_SIZE))
    table: dict[str, dict[str, Any]] = {}
    offset = 0
    for name, view in views.items():
        compression, stored = compress_if_it_pays(view) if compress else ("none", view)
        file.write(stored)
        info = _manifest.MemberInfo(
            name=name,
            sha256=hashlib.sha256(view).hexdigest(),
            size=len(view),
            compression=compression,
            stored_size=len(stored),
            offset=offset,
        )
        table[name] = info.to_json()
        offset += info.stored_size
    manifest_bytes = _manifest.encode({**document, "members": table})
    file.write(manifest_bytes)
    file.seek(0)
    file.write(
        encode_header(
            FORMAT_VERSION, offset, len(manifest_bytes), hashlib.sha256(manifest_bytes).digest()
        )
    )
    return table


def _create_temporary(folder: str, base_name: str) -> tuple[int, str]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temporary = os.path.join(folder, f".{base_name}.{secrets.token_hex(6)}.tmp")
        try:
            # 0o666 lets the umask decide the final permissions, as for any new file.
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:
            continue


def _remove_if_present(path: str) -> None:
    # Never let a failed clean-up hide the error that made it necessary.
    try:
        os.unlink(path)
    except OSError:
        pass


def _sync_folder(folder: str) -> None:
    """Make the rename durable; not every platform or file system can sync a folder."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
