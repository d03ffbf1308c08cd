"""Per-member zstd compression (FORMAT.md §5).

``zstandard`` is imported on first use, so reading an archive of uncompressed members never
loads it.
"""

from __future__ import annotations

from .errors import IntegrityError

__all__ = ["ZSTD_LEVEL", "compress_if_it_pays", "decompress"]

# Not part of the format: any level reads back the same.  10 is a good ratio at a speed that
# keeps building a multi-hundred-megabyte artifact in seconds.
ZSTD_LEVEL = 10
# Store compressed only when that saves at least 5%: below that, the reader's decompression time
# costs more than the bytes it saves.
_MAX_STORED_PERCENT = 95


def compress_if_it_pays(data: memoryview) -> tuple[str, bytes | memoryview]:
    """Return ``("zstd", frame)`` if the frame is at most 95% of ``data``, else ``("none", data)``."""
    if len(data) == 0:
        return "none", data
    import zstandard

    compressor = zstandard.ZstdCompressor(
        level=ZSTD_LEVEL, write_content_size=True, write_checksum=True, threads=0
    )
    frame = compressor.compress(data)
    if len(frame) * 100 <= len(data) * _MAX_STORED_PERCENT:
        return "zstd", frame
    return "none", data


def decompress(stored: bytes, size: int, *, where: str, advice: str) -> bytes:
    """Decompress one zstd frame holding exactly ``size`` bytes; anything else is corruption.

    The frame's declared content size is checked against the manifest before decompressing, so
    a damaged frame header cannot make the decompressor allocate more than ``size`` bytes.
    """
    import zstandard

    try:
        declared = zstandard.frame_content_size(stored)
        if declared != size:
            raise IntegrityError(
                f"{where}: its zstd frame declares {declared} bytes but the manifest records "
                f"{size} (the member is corrupted); {advice}"
            )
        data = zstandard.ZstdDecompressor().decompress(
            stored, max_output_size=size, allow_extra_data=False
        )
    except zstandard.ZstdError as exc:
        raise IntegrityError(
            f"{where}: its zstd data does not decompress ({exc}); the member is corrupted; {advice}"
        ) from None
    if len(data) != size:
        raise IntegrityError(
            f"{where}: decompressed to {len(data)} bytes but the manifest records {size} (the "
            f"member is corrupted); {advice}"
        )
    return data
