"""The fixed binary header of a .poros file (FORMAT.md §2) and recognition of other files.

Layout (little-endian)::

    offset size  field
         0    8  magic b"POROSPK\\0"                  } prefix: frozen for every major, so any
         8    2  format major (u16)                   } reader can check it and name the
        10    2  format minor (u16)                   } version it found
        12    4  crc32 of bytes 0..12                 }
        16    8  data section length D (u64)
        24    8  manifest length M (u64)
        32   32  sha256 of the manifest bytes
        64    4  reserved, zero
        68    4  crc32 of bytes 16..68
        72    D  data section: member blobs
    72 + D    M  manifest: UTF-8 JSON

and the file ends exactly at ``72 + D + M``.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from ._version import check_version
from .errors import ArtifactError, IntegrityError

__all__ = ["MAGIC", "HEADER_SIZE", "Header", "encode_header", "decode_header"]

MAGIC = b"POROSPK\0"
_PREFIX = struct.Struct("<8sHHI")
_BODY = struct.Struct("<QQ32sII")
HEADER_SIZE = _PREFIX.size + _BODY.size
_PREFIX_CHECKED = _PREFIX.size - 4
_BODY_CHECKED = _BODY.size - 4

RECOPY_ADVICE = "re-copy the artifact from where it was built, or rebuild it with poros-pack build"


@dataclass(frozen=True, slots=True)
class Header:
    format_version: tuple[int, int]
    data_length: int
    manifest_length: int
    manifest_sha256: bytes

    @property
    def data_start(self) -> int:
        return HEADER_SIZE

    @property
    def manifest_start(self) -> int:
        return HEADER_SIZE + self.data_length

    @property
    def file_size(self) -> int:
        return HEADER_SIZE + self.data_length + self.manifest_length


def encode_header(
    format_version: tuple[int, int], data_length: int, manifest_length: int, manifest_sha256: bytes
) -> bytes:
    major, minor = format_version
    prefix_fields = _PREFIX.pack(MAGIC, major, minor, 0)[:_PREFIX_CHECKED]
    prefix = prefix_fields + struct.pack("<I", zlib.crc32(prefix_fields))
    body_fields = _BODY.pack(data_length, manifest_length, manifest_sha256, 0, 0)[:_BODY_CHECKED]
    body = body_fields + struct.pack("<I", zlib.crc32(body_fields))
    return prefix + body


def decode_header(head: bytes, file_size: int, where: str) -> Header:
    """Check the header, the format version and the file length; touch nothing else.

    ``head`` is the first ``min(file_size, HEADER_SIZE)`` bytes of the file; ``where`` names the
    file in messages.  Order matters: the magic first (is this our file at all?), then the
    prefix checksum (so a damaged version field reads as damage, not as a version skew), then
    the version (so a newer major is refused before its header layout is interpreted).
    """
    if file_size == 0:
        raise ArtifactError(
            f"{where} is empty (0 bytes), not a .poros artifact: the build or the copy did not "
            f"complete; {RECOPY_ADVICE}"
        )
    if head[: len(MAGIC)] != MAGIC[: len(head)]:
        _raise_not_an_artifact(head, where)
    if file_size < _PREFIX.size:
        raise IntegrityError(
            f"{where} is truncated: {file_size} bytes, shorter than the {HEADER_SIZE}-byte "
            f".poros header; {RECOPY_ADVICE}"
        )
    _, major, minor, prefix_crc = _PREFIX.unpack_from(head)
    if zlib.crc32(head[:_PREFIX_CHECKED]) != prefix_crc:
        raise IntegrityError(
            f"{where}: the .poros header (version field, bytes 0..16) is corrupted (checksum "
            f"mismatch); {RECOPY_ADVICE}"
        )
    format_version = check_version(f"{major}.{minor}")
    if file_size < HEADER_SIZE:
        raise IntegrityError(
            f"{where} is truncated: {file_size} bytes, shorter than the {HEADER_SIZE}-byte "
            f".poros header; {RECOPY_ADVICE}"
        )
    body = head[_PREFIX.size : HEADER_SIZE]
    data_length, manifest_length, manifest_sha256, reserved, body_crc = _BODY.unpack(body)
    if zlib.crc32(body[:_BODY_CHECKED]) != body_crc or reserved != 0:
        raise IntegrityError(
            f"{where}: the .poros header (section lengths and manifest checksum, bytes "
            f"16..{HEADER_SIZE}) is corrupted (checksum mismatch); {RECOPY_ADVICE}"
        )
    header = Header(format_version, data_length, manifest_length, manifest_sha256)
    if file_size < header.file_size:
        raise IntegrityError(
            f"{where} is truncated: the header records {header.file_size} bytes but the file "
            f"has {file_size} ({header.file_size - file_size} missing); {RECOPY_ADVICE}"
        )
    if file_size > header.file_size:
        raise IntegrityError(
            f"{where} has {file_size - header.file_size} unexpected bytes after its end (the "
            f"header records {header.file_size} bytes, the file has {file_size}); "
            f"{RECOPY_ADVICE}"
        )
    return header


def _raise_not_an_artifact(head: bytes, where: str) -> None:
    matching = sum(a == b for a, b in zip(head[: len(MAGIC)], MAGIC))
    if len(head) >= len(MAGIC) and matching >= len(MAGIC) - 2:
        raise IntegrityError(
            f"{where}: the .poros magic bytes at the start of the file are damaged "
            f"(found {head[: len(MAGIC)]!r}); {RECOPY_ADVICE}"
        )
    raise ArtifactError(
        f"{where} is not a .poros artifact: it looks like {_describe(head)}. Pass the .poros "
        "file that `poros-pack build MODEL -o MODEL.poros` writes (build one from this file "
        "first if it is the model)"
    )


def _describe(head: bytes) -> str:
    """Name the kind of file a mistaken path most likely points to."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return (
            "a zip archive (a TorchScript module from torch.jit.save, a torch.export / "
            "AOTInductor .pt2 package or a torch.save checkpoint)"
        )
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "a Python pickle (a legacy torch.save checkpoint)"
    if len(head) >= 2 and head[0] == 0x08 and 1 <= head[1] <= 32:
        return "an ONNX model (a protobuf starting with ir_version)"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "a zstd-compressed file (decompress it first if it wraps a .poros artifact)"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip-compressed file (decompress it first if it wraps a .poros artifact)"
    if head.startswith(b"\x7fELF"):
        return "a native shared library or executable (ELF)"
    if head.lstrip()[:1] in (b"{", b"["):
        return "a JSON text file (a manifest alone is not an artifact)"
    return f"an unknown kind of file (first bytes {head[:8].hex(' ')})"
