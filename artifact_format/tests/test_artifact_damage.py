"""Damaged, foreign and incompatible files: every one gives a typed error, never a raw one."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import zipfile
from pathlib import Path

import pytest
from artifact_forge import forge, write_small

from poros_artifact import check_version, read_artifact
from poros_artifact._container import HEADER_SIZE, decode_header, encode_header
from poros_artifact.errors import ArtifactError, FormatVersionError, IntegrityError


def flip_in_place(path: Path, position: int, mask: int) -> None:
    """XOR one byte without rewriting the file (rewriting a file per case is slow on ext4)."""
    with open(path, "r+b", buffering=0) as file:
        file.seek(position)
        value = file.read(1)[0]
        file.seek(position)
        file.write(bytes([value ^ mask]))


def open_and_verify(path: Path) -> None:
    read_artifact(path).verify()


def blob_ranges(archive: bytes, path: Path) -> dict[str, range]:
    """The file positions of each member's stored bytes."""
    path.write_bytes(archive)
    artifact = read_artifact(path)
    ranges = {}
    for name in artifact.member_names:
        info = artifact.member_info(name)
        start = HEADER_SIZE + info.offset
        ranges[name] = range(start, start + info.stored_size)
    return ranges


def test_small_archive_has_every_kind_of_member(tmp_path: Path) -> None:
    archive = write_small(tmp_path / "m.poros")
    compressions = {
        name: read_artifact(tmp_path / "m.poros").member_info(name).compression
        for name in read_artifact(tmp_path / "m.poros").member_names
    }
    assert set(compressions.values()) == {"zstd", "none"}
    assert len(archive) < 1500


def test_truncation_at_every_length_is_a_typed_error(tmp_path: Path) -> None:
    damaged = tmp_path / "m.poros"
    archive = write_small(damaged)
    # Shorten one file in place, longest first: rewriting a file per length is slow on ext4.
    for length in reversed(range(len(archive))):
        os.truncate(damaged, length)
        with pytest.raises(ArtifactError) as caught:
            read_artifact(damaged)
        if length > 0:
            assert type(caught.value) is IntegrityError, (length, caught.value)
            assert "truncated" in str(caught.value) or "corrupted" in str(caught.value)


def test_trailing_bytes_are_an_integrity_error(tmp_path: Path) -> None:
    archive = write_small(tmp_path / "m.poros")
    (tmp_path / "m.poros").write_bytes(archive + b"\0")
    with pytest.raises(IntegrityError, match="1 unexpected bytes after its end"):
        read_artifact(tmp_path / "m.poros")


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_flipped_byte_anywhere_is_a_typed_error(tmp_path: Path, mask: int) -> None:
    archive = write_small(tmp_path / "m.poros")
    ranges = blob_ranges(archive, tmp_path / "m.poros")
    owner = {position: name for name, span in ranges.items() for position in span}
    damaged = tmp_path / "m.poros"
    for position in range(len(archive)):
        flip_in_place(damaged, position, mask)
        if position in owner:
            artifact = read_artifact(damaged)  # blobs are not read on open
            with pytest.raises(IntegrityError) as caught:
                artifact.verify()
            assert repr(owner[position]) in str(caught.value), (position, caught.value)
            with pytest.raises(IntegrityError):
                artifact.read_member(owner[position])
        else:
            with pytest.raises(ArtifactError) as caught:
                open_and_verify(damaged)
            if position >= 8:  # past the magic, damage is always recognised as damage
                assert type(caught.value) is IntegrityError, (position, caught.value)
        flip_in_place(damaged, position, mask)
    read_artifact(damaged).verify()


def test_damaged_member_leaves_other_members_readable(tmp_path: Path) -> None:
    archive = write_small(tmp_path / "m.poros")
    span = blob_ranges(archive, tmp_path / "m.poros")["glue.pt"]
    flipped = bytearray(archive)
    flipped[span.start + 3] ^= 0x10
    (tmp_path / "m.poros").write_bytes(flipped)
    artifact = read_artifact(tmp_path / "m.poros")
    with pytest.raises(IntegrityError, match=r"member 'glue.pt'.*re-copy the artifact"):
        artifact.read_member("glue.pt")
    assert artifact.read_member("weights.bin") == b"\x00\x01" * 100


def test_file_truncated_after_open_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "m.poros"
    archive = write_small(path)
    artifact = read_artifact(path)
    with open(path, "r+b") as file:
        file.truncate(len(archive) // 2)
    with pytest.raises(ArtifactError):
        artifact.verify()


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        # A fixed timestamp: the bytes end up in the test id, which must not change between
        # pytest-xdist workers collecting at different seconds.
        archive.writestr(zipfile.ZipInfo("model/data.pkl", date_time=(2026, 1, 1, 0, 0, 0)), b"not really")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "content, looks_like",
    [
        (zip_bytes(), "zip archive"),
        (b"\x08\x08\x12\x07pytorch\x1a\x052.13.0", "ONNX model"),
        (pickle.dumps({"weights": [1, 2]}, protocol=2), "pickle"),
        (b'{"format_version": "1.0"}', "JSON text"),
        (b"\x7fELF\x02\x01\x01" + bytes(64), "shared library"),
        (b"\x28\xb5\x2f\xfd" + bytes(20), "zstd-compressed"),
        (bytes(range(7, 200)), "unknown kind of file"),
        (b"Q", "unknown kind of file"),
    ],
    ids=["zip", "onnx", "pickle", "json", "elf", "zstd", "random", "one-byte"],
)
def test_foreign_file_is_named_and_refused(tmp_path: Path, content: bytes, looks_like: str) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(ArtifactError, match="not a .poros artifact") as caught:
        read_artifact(path)
    assert type(caught.value) is ArtifactError
    assert looks_like in str(caught.value) and "poros-pack build" in str(caught.value)


def test_random_bytes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "noise.poros"
    for _ in range(50):
        path.write_bytes(os.urandom(300))
        with pytest.raises(ArtifactError):
            open_and_verify(path)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m.poros").write_bytes(b"")
    with pytest.raises(ArtifactError, match="is empty"):
        read_artifact(tmp_path / "m.poros")


def test_missing_file_and_folder_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="absent.poros.*does not exist"):
        read_artifact(tmp_path / "absent.poros")
    with pytest.raises(ArtifactError, match="is a folder"):
        read_artifact(tmp_path)


def test_check_version_rules() -> None:
    assert check_version("1.0") == (1, 0)
    assert check_version("1.7") == (1, 7)
    with pytest.raises(FormatVersionError) as caught:
        check_version("2.0")
    message = str(caught.value)
    assert "2.0" in message and "1.x" in message
    assert "upgrade poros-runtime" in message and "rebuild" in message
    with pytest.raises(FormatVersionError, match="old .poros format 0.9.*rebuild"):
        check_version("0.9")
    for malformed in ["1", "1.0.0", "01.0", "1.x", "", " 1.0", "v1.0"]:
        with pytest.raises(FormatVersionError, match="not of the form"):
            check_version(malformed)
    with pytest.raises(FormatVersionError, match="out of range"):
        check_version("1.70000")


def set_version(text: str):
    def edit(manifest: dict) -> None:
        manifest["format_version"] = text

    return edit


def test_newer_major_is_refused_with_both_versions(tmp_path: Path) -> None:
    archive = write_small(tmp_path / "m.poros")
    (tmp_path / "m.poros").write_bytes(forge(archive, set_version("2.0"), version=(2, 0)))
    with pytest.raises(FormatVersionError, match=r"format 2\.0.*reads only format 1\.x.*upgrade"):
        read_artifact(tmp_path / "m.poros")


def test_newer_major_is_refused_before_its_header_is_interpreted(tmp_path: Path) -> None:
    archive = forge(write_small(tmp_path / "m.poros"), lambda manifest: None, version=(3, 1))
    future = archive[:16] + os.urandom(100)  # a future major may lay out the rest differently
    (tmp_path / "m.poros").write_bytes(future)
    with pytest.raises(FormatVersionError, match="3.1"):
        read_artifact(tmp_path / "m.poros")


def test_newer_minor_with_optional_fields_is_read(tmp_path: Path) -> None:
    archive = write_small(tmp_path / "m.poros")

    def add_optional_fields(manifest: dict) -> None:
        manifest["format_version"] = "1.3"
        manifest["build_log"] = {"seconds": 1.5}
        manifest["members"]["glue.pt"]["alignment"] = 64

    (tmp_path / "m.poros").write_bytes(forge(archive, add_optional_fields, version=(1, 3)))
    artifact = read_artifact(tmp_path / "m.poros")
    assert artifact.format_version == (1, 3)
    assert artifact.manifest["build_log"] == {"seconds": 1.5}
    artifact.verify()


def test_unknown_required_feature_is_refused(tmp_path: Path) -> None:
    archive = write_small(tmp_path / "m.poros")

    def require_feature(manifest: dict) -> None:
        manifest["format_version"] = "1.1"
        manifest["required_features"] = ["sparse_weights"]

    (tmp_path / "m.poros").write_bytes(forge(archive, require_feature, version=(1, 1)))
    with pytest.raises(FormatVersionError, match="'sparse_weights'.*upgrade poros-runtime"):
        read_artifact(tmp_path / "m.poros")


def test_empty_required_features_is_accepted(tmp_path: Path) -> None:
    archive = write_small(tmp_path / "m.poros")
    edited = forge(archive, lambda manifest: manifest.update(required_features=[]))
    (tmp_path / "m.poros").write_bytes(edited)
    read_artifact(tmp_path / "m.poros").verify()


def test_header_and_manifest_versions_must_agree(tmp_path: Path) -> None:
    archive = write_small(tmp_path / "m.poros")
    (tmp_path / "m.poros").write_bytes(forge(archive, set_version("1.1")))
    with pytest.raises(ArtifactError, match="header says format 1.0.*'1.1'"):
        read_artifact(tmp_path / "m.poros")


def rename_member(old: str, new: str):
    def edit(manifest: dict) -> None:
        manifest["members"][new] = manifest["members"].pop(old)

    return edit


def shift_offset(name: str, delta: int):
    def edit(manifest: dict) -> None:
        manifest["members"][name]["offset"] += delta

    return edit


@pytest.mark.parametrize(
    "edit, problem",
    [
        (rename_member("glue.pt", "../glue.pt"), "invalid member name '../glue.pt'"),
        (rename_member("glue.pt", "/etc/glue.pt"), "relative path"),
        (rename_member("glue.pt", "Weights.bin"), "differ only in case"),
        (shift_offset("weights.bin", 1), "must be contiguous"),
        (lambda manifest: manifest["members"].pop("weights.bin"), "data section has"),
        (lambda manifest: manifest.pop("members"), "no 'members' object"),
        (lambda manifest: manifest.pop("format_version"), "format_version is None"),
        (lambda manifest: manifest["members"]["glue.pt"].update(size=-1), "'size'"),
        (lambda manifest: manifest["members"]["glue.pt"].update(size=True), "'size'"),
        (lambda manifest: manifest["members"]["glue.pt"].update(sha256="AB" * 32), "'sha256'"),
        (lambda manifest: manifest["members"]["glue.pt"].update(compression="lz4"), "one of"),
        (
            lambda manifest: manifest["members"]["engines/seg0.inductor.pt2"].update(size=7),
            "exactly 'size'",
        ),
        (lambda manifest: manifest.update(required_features="x"), "list of str"),
    ],
)
def test_malformed_manifest_is_refused_on_open(tmp_path: Path, edit, problem: str) -> None:
    archive = write_small(tmp_path / "m.poros")
    header = decode_header(archive[:HEADER_SIZE], len(archive), "test")
    assert header.format_version == (1, 0)
    (tmp_path / "m.poros").write_bytes(forge(archive, edit))
    with pytest.raises(ArtifactError, match=problem) as caught:
        read_artifact(tmp_path / "m.poros")
    assert type(caught.value) is ArtifactError
    assert "rebuild" in str(caught.value)


@pytest.mark.parametrize(
    "manifest_bytes, problem",
    [
        (b'{"format_version":"1.0","members":{},"a":1,"a":2}', "duplicate key 'a'"),
        (b'{"format_version":"1.0","members":{},"a":NaN}', "NaN"),
        (b'["format_version"]', "not an object"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[" * 100_000, "not valid JSON"),
    ],
)
def test_invalid_manifest_json_is_refused(
    tmp_path: Path, manifest_bytes: bytes, problem: str
) -> None:
    header = encode_header((1, 0), 0, len(manifest_bytes), hashlib.sha256(manifest_bytes).digest())
    (tmp_path / "m.poros").write_bytes(header + manifest_bytes)
    with pytest.raises(ArtifactError, match=problem):
        read_artifact(tmp_path / "m.poros")
