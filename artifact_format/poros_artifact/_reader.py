"""Opening and reading a .poros file (FORMAT.md §2, §7).

Opening reads only the header and the manifest and checks everything they record: magic,
header checksums, format version, required features, the manifest's checksum, the file's
length and the member table.  Member blobs are read later, one at a time, and each is checked
against its sha256 before its bytes are returned, so no deserializer ever sees unverified bytes.

The file is not held open: each read reopens it and checks that it is still the file that was
opened (same device, inode, size and modification time), so an artifact needs no closing and a
file replaced by a new build is reported instead of being read at stale offsets.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

from . import _manifest
from ._compression import decompress
from ._container import HEADER_SIZE, RECOPY_ADVICE, Header, decode_header
from ._manifest import MemberInfo
from ._names import artifact_path
from .errors import ArtifactError, IntegrityError

__all__ = ["Artifact", "read_artifact"]


def read_artifact(path: str | os.PathLike[str]) -> Artifact:
    """Open the .poros file at ``path`` and check its header and manifest (not the blobs).

    Raises :class:`ArtifactError` (missing file, not a .poros file, malformed manifest),
    :class:`IntegrityError` (truncated or corrupted header or manifest) or
    :class:`FormatVersionError` (a format version or required feature this reader lacks).
    """
    return Artifact(artifact_path(path))


class Artifact:
    """An opened .poros file: its manifest, and verified access to its members."""

    __slots__ = ("path", "_where", "_identity", "_header", "_manifest", "_members")

    def __init__(self, path: str) -> None:
        """Prefer :func:`read_artifact`, which also checks the type of ``path``."""
        self.path = path
        self._where = repr(path)
        with _open(path, self._where) as file:
            status = os.fstat(file.fileno())
            self._identity = _identity(status)
            head = _read_range(file, 0, min(status.st_size, HEADER_SIZE), self._where)
            self._header = decode_header(head, status.st_size, self._where)
            self._manifest = self._read_manifest(file)
        version = "{}.{}".format(*self._header.format_version)
        _manifest.check_container_fields(self._manifest, version, self._where)
        self._members = _manifest.parse_members(
            self._manifest, self._header.data_length, self._where
        )

    @property
    def manifest(self) -> dict[str, Any]:
        """The parsed manifest.  Changing it changes nothing in the file or in verification."""
        return self._manifest

    @property
    def format_version(self) -> tuple[int, int]:
        """The file's ``(major, minor)`` format version."""
        return self._header.format_version

    @property
    def member_names(self) -> tuple[str, ...]:
        """Every member's name, sorted."""
        return tuple(self._members)

    def member_info(self, name: str) -> MemberInfo:
        """The manifest's record of member ``name``; :class:`ArtifactError` when there is none."""
        info = self._members.get(name)
        if info is None:
            listed = ", ".join(map(repr, self.member_names[:20]))
            more = f" and {len(self._members) - 20} more" if len(self._members) > 20 else ""
            raise ArtifactError(
                f"{self._where} has no member {name!r}; its members are: {listed or 'none'}{more}"
            )
        return info

    def read_member(self, name: str) -> bytes:
        """Return member ``name``'s bytes after checking them against the manifest's sha256.

        Raises :class:`IntegrityError` (naming the member) when they do not match.
        """
        info = self.member_info(name)
        with self._reopen() as file:
            return self._read_verified(file, info)

    def verify(self) -> None:
        """Check every member against its recorded size and sha256; raise on the first mismatch.

        Holds one member's bytes in memory at a time.
        """
        with self._reopen() as file:
            for info in self._members.values():
                self._read_verified(file, info)

    def __repr__(self) -> str:
        version = "{}.{}".format(*self.format_version)
        return f"<Artifact {self._where} format {version}, {len(self._members)} members>"

    def _read_manifest(self, file: BinaryIO) -> dict[str, Any]:
        header: Header = self._header
        raw = _read_range(file, header.manifest_start, header.manifest_length, self._where)
        if hashlib.sha256(raw).digest() != header.manifest_sha256:
            raise IntegrityError(
                f"{self._where}: the manifest is corrupted (its sha256 does not match the "
                f"header's); {RECOPY_ADVICE}"
            )
        return _manifest.decode(raw, self._where)

    def _read_verified(self, file: BinaryIO, info: MemberInfo) -> bytes:
        where = f"{self._where}: member {info.name!r}"
        stored = _read_range(file, self._header.data_start + info.offset, info.stored_size, where)
        if info.compression == "zstd":
            data = decompress(stored, info.size, where=where, advice=RECOPY_ADVICE)
        else:
            data = stored
        digest = hashlib.sha256(data).hexdigest()
        if digest != info.sha256:
            raise IntegrityError(
                f"{where} is corrupted: its sha256 is {digest[:16]}... but the manifest records "
                f"{info.sha256[:16]}...; {RECOPY_ADVICE}"
            )
        return data

    @contextmanager
    def _reopen(self) -> Iterator[BinaryIO]:
        with _open(self.path, self._where) as file:
            if _identity(os.fstat(file.fileno())) != self._identity:
                raise ArtifactError(
                    f"{self._where} changed on disk since it was opened (a new build replaced "
                    "it?); open it again with read_artifact"
                )
            yield file


def _identity(status: os.stat_result) -> tuple[int, int, int, int]:
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)


@contextmanager
def _open(path: str, where: str) -> Iterator[BinaryIO]:
    try:
        file = open(path, "rb", buffering=0)
    except FileNotFoundError:
        raise ArtifactError(
            f"no artifact at {where}: the file does not exist; check the path (an artifact is "
            "made with `poros-pack build MODEL -o MODEL.poros`)"
        ) from None
    except IsADirectoryError:
        raise ArtifactError(
            f"{where} is a folder, not a .poros artifact file; pass the path of the .poros file"
        ) from None
    except OSError as exc:
        raise ArtifactError(f"cannot open the artifact {where}: {exc.strerror or exc}") from None
    with file:
        yield file


def _read_range(file: BinaryIO, start: int, length: int, where: str) -> bytes:
    """Read exactly ``length`` bytes at ``start``; a short read means the file was truncated."""
    chunks = []
    remaining = length
    try:
        file.seek(start)
        while remaining:
            chunk = file.read(remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except OSError as exc:
        raise ArtifactError(f"cannot read {where}: {exc.strerror or exc}") from None
    if remaining:
        raise IntegrityError(
            f"{where}: the file ends {remaining} bytes early (truncated); {RECOPY_ADVICE}"
        )
    return b"".join(chunks)
