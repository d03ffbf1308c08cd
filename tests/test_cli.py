"""The poros-pack command line: build, inspect, exit codes, and nothing left behind on failure."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from packager.build import BuildOptions, build
from packager.cli import main
from packager.spec import parse_input_spec
from tests import models


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cli")
    model = models.save_fft(directory / "fft.pt")
    artifact = directory / "fft.poros"
    result = CliRunner().invoke(main, ["build", str(model), "-o", str(artifact), "--input", "1..4x4x16:float32"])
    assert result.exit_code == 0, result.output
    return model, artifact, result


def test_build_reports_progress_and_a_passed_self_check(built):
    _, artifact, result = built
    assert artifact.exists()
    for stage in ("import", "lower", "partition", "compile", "glue", "write", "check"):
        assert stage in result.output, f"no progress line for {stage}: {result.output}"
    assert "self-check passed" in result.output
    assert "2 engine segment(s)" in result.output


def test_inspect_shows_signature_segments_and_glue_reasons(built):
    _, artifact, _ = built
    text = CliRunner().invoke(main, ["inspect", str(artifact)])
    assert text.exit_code == 0, text.output
    assert "format 1.0, checksums OK" in text.output
    assert "s0=1..4" in text.output
    assert "seg0" in text.output and "seg1" in text.output and "inductor" in text.output
    assert "aten::fft_rfft" in text.output

    as_json = CliRunner().invoke(main, ["inspect", str(artifact), "--json"])
    info = json.loads(as_json.output)
    assert info["format_version"] == "1.0"
    assert info["signature"]["inputs"][0]["dims"][0] == {"symbol": "s0", "min": 1, "opt": 4, "max": 4}
    assert [s["id"] for s in info["segments"]] == ["seg0", "seg1"]
    assert all(s["backend"] == "inductor" and s["device"] == "cpu" and s["nodes"] > 0 for s in info["segments"])
    fft = [n for n in info["glue_nodes"] if n["op"].startswith("aten::fft_rfft")]
    assert fft and fft[0]["reason"]


def test_inspect_of_a_corrupted_artifact_fails_with_a_typed_error(built, tmp_path):
    _, artifact, _ = built
    damaged = tmp_path / "damaged.poros"
    data = bytearray(artifact.read_bytes())
    data[len(data) // 3] ^= 0xFF
    damaged.write_bytes(bytes(data))
    result = CliRunner().invoke(main, ["inspect", str(damaged)])
    assert result.exit_code == 1
    assert "IntegrityError" in result.output or "ArtifactError" in result.output


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["build", "missing.pt", "-o", "x.poros", "--input", "2x3"], "does not exist"),
        (["build", "{model}", "-o", "x.poros", "--input", "2xx3"], "bad dimension"),
        (["build", "{model}", "-o", "x.poros"], "at least one --input"),
        (["build", "{model}", "-o", "x.poros", "--input", "2x4x16:float32", "--fallback-op", "softmax"], "aten::softmax"),
        (["inspect", "missing.poros"], "missing.poros"),
    ],
)
def test_bad_usage_exits_2_or_1_with_a_message_and_writes_nothing(built, tmp_path, monkeypatch, arguments, message):
    model, _, _ = built
    monkeypatch.chdir(tmp_path)
    arguments = [a.replace("{model}", str(model)) for a in arguments]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code in (1, 2), result.output
    assert message in result.output
    assert not (tmp_path / "x.poros").exists()


def test_wrong_input_count_is_a_usage_error(built, tmp_path):
    model, _, _ = built
    result = CliRunner().invoke(main, ["build", str(model), "-o", str(tmp_path / "x.poros"),
                                       "--input", "2x4x16", "--input", "2x4x16"])
    assert result.exit_code == 2
    assert not (tmp_path / "x.poros").exists()


@pytest.mark.parametrize("stage", ["compile", "glue", "write", "check"])
def test_an_interrupted_build_leaves_nothing_at_the_output_path(tmp_path, stage):
    model = models.save_two_in_tuple_out(tmp_path / "m.pt")
    output = tmp_path / "m.poros"
    output.write_bytes(b"previous artifact")

    def interrupt(current, detail):
        if current == stage:
            raise KeyboardInterrupt

    options = BuildOptions(inputs=[parse_input_spec("2x8"), parse_input_spec("2x6")])
    with pytest.raises(KeyboardInterrupt):
        build(model, output, options, progress=interrupt)
    assert output.read_bytes() == b"previous artifact"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.poros", "m.pt"]
