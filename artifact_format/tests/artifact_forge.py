"""Helpers shared by the artifact tests: a small reference archive and a forger.

The forger rewrites an archive's manifest and header with correct checksums, to build files
that only a faulty or a future writer would produce (other versions, unknown features,
malformed member tables).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from poros_artifact import _manifest, write_artifact
from poros_artifact._container import HEADER_SIZE, decode_header, encode_header


def small_members() -> dict[str, bytes]:
    """One member of each kind: compressed, stored raw, empty, nested."""
    return {
        "glue.pt": b"glue graph " * 40,
        "engines/seg0.inductor.pt2": bytes(range(256)) + os.urandom(64),
        "engines/seg1.empty": b"",
        "weights.bin": b"\x00\x01" * 100,
    }


def small_manifest() -> dict[str, Any]:
    return {
        "producer": {"name": "poros-pack", "version": "0.1.0", "torch": "2.13.0+cpu"},
        "model": {"name": "tiny", "source_format": "torchscript"},
        "device": "cpu",
        "glue": {"member": "glue.pt", "fallback_nodes": []},
    }


def write_small(path: Path) -> bytes:
    write_artifact(path, small_manifest(), small_members())
    return path.read_bytes()


def forge(
    archive: bytes,
    edit: Callable[[dict[str, Any]], None],
    version: tuple[int, int] | None = None,
) -> bytes:
    """Return ``archive`` with its manifest edited in place by ``edit`` and checksums redone."""
    header = decode_header(archive[:HEADER_SIZE], len(archive), "forge input")
    manifest = json.loads(archive[header.manifest_start :])
    edit(manifest)
    manifest_bytes = _manifest.encode(manifest)
    data = archive[HEADER_SIZE : header.manifest_start]
    new_header = encode_header(
        version or header.format_version,
        len(data),
        len(manifest_bytes),
        hashlib.sha256(manifest_bytes).digest(),
    )
    return new_header + data + manifest_bytes
