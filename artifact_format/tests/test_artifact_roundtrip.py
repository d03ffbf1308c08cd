"""Writing and reading .poros files: round trips, determinism, names, atomicity."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from artifact_forge import small_manifest, small_members, write_small

import poros_artifact
from poros_artifact import (
    FORMAT_VERSION,
    FORMAT_VERSION_STRING,
    MemberInfo,
    read_artifact,
    validate_member_name,
    write_artifact,
)
from poros_artifact import _writer
from poros_artifact.errors import ArtifactError, UsageError


@pytest.mark.parametrize("compress", [True, False])
def test_round_trip(tmp_path: Path, compress: bool) -> None:
    members = {
        **small_members(),
        "large/random.bin": os.urandom(4 << 20),
        "large/zeros.bin": bytes(1 << 20),
    }
    manifest = small_manifest()
    path = tmp_path / "model.poros"
    write_artifact(path, manifest, members, compress=compress)

    artifact = read_artifact(path)
    assert artifact.format_version == FORMAT_VERSION == (1, 0)
    assert artifact.member_names == tuple(sorted(members))
    for name, data in members.items():
        assert artifact.read_member(name) == data
    artifact.verify()
    assert artifact.manifest == manifest
    assert manifest["format_version"] == FORMAT_VERSION_STRING == "1.0"
    table = manifest["members"]
    assert table["large/random.bin"]["compression"] == "none"
    assert table["engines/seg1.empty"] == artifact.member_info("engines/seg1.empty").to_json()
    assert table["engines/seg1.empty"]["size"] == 0
    zeros = artifact.member_info("large/zeros.bin")
    assert isinstance(zeros, MemberInfo)
    if compress:
        assert zeros.compression == "zstd" and zeros.stored_size < zeros.size // 100
    else:
        assert {entry["compression"] for entry in table.values()} == {"none"}
    for entry in table.values():
        if entry["compression"] == "none":
            assert entry["stored_size"] == entry["size"]


def test_member_compressed_only_when_it_saves_five_percent(tmp_path: Path) -> None:
    random_part = os.urandom(10_000)
    members = {
        "saves_about_3_percent.bin": random_part + bytes(300),
        "saves_about_30_percent.bin": random_part + bytes(4_000),
    }
    manifest: dict = {}
    write_artifact(tmp_path / "m.poros", manifest, members)
    assert manifest["members"]["saves_about_3_percent.bin"]["compression"] == "none"
    assert manifest["members"]["saves_about_30_percent.bin"]["compression"] == "zstd"


def test_accepts_bytearray_and_memoryview(tmp_path: Path) -> None:
    path = tmp_path / "m.poros"
    write_artifact(path, {}, {"a": bytearray(b"abc"), "b": memoryview(b"defg")})
    artifact = read_artifact(path)
    assert artifact.read_member("a") == b"abc" and artifact.read_member("b") == b"defg"


def test_manifest_tuples_and_unicode_values_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "m.poros"
    write_artifact(path, {"model": {"name": "résnet-微", "dims": (1, 3)}}, {})
    manifest = read_artifact(path).manifest
    assert manifest["model"] == {"name": "résnet-微", "dims": [1, 3]}
    assert manifest["members"] == {}


def test_same_inputs_give_identical_bytes(tmp_path: Path) -> None:
    members = small_members()
    reordered_members = dict(reversed(list(members.items())))
    manifest = small_manifest()
    reordered_manifest = dict(reversed(list(manifest.items())))
    write_artifact(tmp_path / "a.poros", manifest, members)
    write_artifact(tmp_path / "b.poros", reordered_manifest, reordered_members)
    assert (tmp_path / "a.poros").read_bytes() == (tmp_path / "b.poros").read_bytes()


def test_manifest_members_given_by_caller_are_replaced(tmp_path: Path) -> None:
    manifest = {"members": {"stale": {"sha256": "0"}}}
    write_artifact(tmp_path / "m.poros", manifest, {"fresh": b"x"})
    assert list(manifest["members"]) == ["fresh"]
    assert read_artifact(tmp_path / "m.poros").member_names == ("fresh",)


BAD_NAMES = [
    "",
    "/abs/engine.pt2",
    "../escape",
    "engines/../../escape",
    "a//b",
    "a/",
    "./a",
    "a/./b",
    "engines\\seg0",
    "manifest.json",
    "trailing.",
    "has space",
    "-leading-dash",
    ".hidden",
    "modèle.pt",
    "引擎.bin",
    "nul\x00byte",
    "x" * 256,
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_member_name_refused_before_writing(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match="member name"):
        write_artifact(tmp_path / "m.poros", {}, {"ok.bin": b"1", name: b"2"})
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UsageError):
        validate_member_name(name)


@pytest.mark.parametrize(
    "names, problem",
    [
        (["Engine.pt2", "engine.pt2"], "differ only in case"),
        (["engines", "engines/seg0.pt2"], "both a file and a folder"),
    ],
)
def test_conflicting_member_names_refused(tmp_path: Path, names: list[str], problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        write_artifact(tmp_path / "m.poros", {}, {name: b"" for name in names})
    assert list(tmp_path.iterdir()) == []


def test_good_member_names_accepted() -> None:
    for name in ["glue.pt", "engines/seg0.inductor.pt2", "_a/b-c+d/e_f.0", "x" * 255]:
        validate_member_name(name)


@pytest.mark.parametrize(
    "manifest, members, problem",
    [
        ({"bad": object()}, {}, "not JSON"),
        ({"bad": {1: "int key"}}, {}, "keys must be str"),
        ({"bad": float("nan")}, {}, "JSON cannot hold"),
        ({"bad": {"nested": [{"s"}]}}, {}, r"manifest\['bad'\]\['nested'\]\[0\]"),
        ({"format_version": "1.1"}, {}, "leave the field out"),
        ({"required_features": ["sparse"]}, {}, "does not define"),
        ({}, {"a": "text, not bytes"}, "must be bytes"),
        ([], {}, "must be a dict"),
    ],
)
def test_invalid_input_refused_before_writing(
    tmp_path: Path, manifest: object, members: dict, problem: str
) -> None:
    with pytest.raises(UsageError, match=problem):
        write_artifact(tmp_path / "m.poros", manifest, members)
    assert list(tmp_path.iterdir()) == []


def test_failed_replace_leaves_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.poros"
    path.write_bytes(b"previous build")
    manifest = small_manifest()

    def refuse(source: str, destination: str) -> None:
        raise PermissionError(13, "Permission denied", destination)

    monkeypatch.setattr(_writer.os, "replace", refuse)
    with pytest.raises(ArtifactError, match="cannot write the artifact"):
        write_artifact(path, manifest, small_members())
    assert path.read_bytes() == b"previous build"
    assert [entry.name for entry in tmp_path.iterdir()] == ["m.poros"]
    assert "members" not in manifest and "format_version" not in manifest


@pytest.mark.parametrize("existing", [True, False])
def test_interrupt_mid_write_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    path = tmp_path / "m.poros"
    if existing:
        path.write_bytes(b"previous build")
    real_compress = _writer.compress_if_it_pays
    calls = []

    def interrupted_on_second_member(data: memoryview):
        calls.append(len(data))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_compress(data)

    monkeypatch.setattr(_writer, "compress_if_it_pays", interrupted_on_second_member)
    with pytest.raises(KeyboardInterrupt):
        write_artifact(path, {}, small_members())
    assert len(calls) == 2
    expected = ["m.poros"] if existing else []
    assert [entry.name for entry in tmp_path.iterdir()] == expected
    if existing:
        assert path.read_bytes() == b"previous build"


def test_interrupt_during_fsync_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.poros"

    def interrupted(descriptor: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(_writer.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_artifact(path, {}, small_members())
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_is_an_artifact_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="folder exists"):
        write_artifact(tmp_path / "absent" / "m.poros", {}, {})


def test_rewrite_replaces_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "m.poros"
    path.write_bytes(b"previous build")
    write_small(path)
    read_artifact(path).verify()
    assert [entry.name for entry in tmp_path.iterdir()] == ["m.poros"]


def test_unknown_member_is_an_artifact_error(tmp_path: Path) -> None:
    path = tmp_path / "m.poros"
    write_small(path)
    with pytest.raises(ArtifactError, match="no member 'glue.pth'.*'glue.pt'"):
        read_artifact(path).read_member("glue.pth")


def test_editing_the_returned_manifest_does_not_weaken_checks(tmp_path: Path) -> None:
    path = tmp_path / "m.poros"
    write_small(path)
    artifact = read_artifact(path)
    artifact.manifest["members"]["glue.pt"]["sha256"] = "0" * 64
    assert artifact.read_member("glue.pt") == small_members()["glue.pt"]


def test_replaced_file_is_reported_not_misread(tmp_path: Path) -> None:
    path = tmp_path / "m.poros"
    write_small(path)
    artifact = read_artifact(path)
    write_artifact(path, {}, {"glue.pt": b"another build"})
    with pytest.raises(ArtifactError, match="changed on disk"):
        artifact.read_member("glue.pt")


def test_public_api_is_stable_and_torch_free() -> None:
    assert poros_artifact.__all__ == [
        "FORMAT_VERSION",
        "FORMAT_VERSION_STRING",
        "SUPPORTED_FEATURES",
        "Artifact",
        "MemberInfo",
        "check_version",
        "read_artifact",
        "validate_member_name",
        "write_artifact",
    ]
    probe = (
        "import sys, poros_artifact, poros_artifact.errors; "
        "assert 'torch' not in sys.modules and 'zstandard' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", probe], check=True)
    package = Path(poros_artifact.__file__).parent
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                imported = [node.module or ""]
            else:
                continue
            assert not any(name.split(".")[0] == "torch" for name in imported), source
