"""benchmarks/latency.py runs end to end on the CPU and writes a sane JSON report.

The script builds a real artifact (one Inductor compile of a tiny CNN, dynamic batch 1..2) and
times a handful of calls: this checks that the benchmark works and reports what it says, not
how fast anything is (timings in a unit test would only be noise).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "latency.py"


def _bench_folders() -> set[str]:
    return {name.name for name in Path(tempfile.gettempdir()).glob("poros-bench-*")}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    output = tmp_path_factory.mktemp("bench") / "latency.json"
    before = _bench_folders()
    command = [sys.executable, str(SCRIPT), "--model", "small_cnn", "--device", "cpu",
               "--batch", "1", "--batch", "2", "--dynamic-batch",
               "--iters", "3", "--repeats", "3", "--warmup", "2", "--quiet", "--json", str(output)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    left_behind = _bench_folders() - before
    assert not left_behind, f"the benchmark left its temporary folder(s) behind: {left_behind}"
    return json.loads(output.read_text()), done.stdout


def test_json_describes_machine_command_and_configuration(report):
    data, _ = report
    assert data["schema"] == 1
    machine = data["machine"]
    assert machine["device"] == "cpu" and machine["device_name"]
    assert machine["torch"] and machine["python"] and machine["cpu_count"] >= 1
    assert "latency.py" in data["command"] and "--dynamic-batch" in data["command"]
    assert "commit" in data["git"]
    config = data["config"]
    assert config["model"] == "small_cnn" and config["targets"] == ["inductor"] and config["precision"] == "fp32"
    assert config["batches"] == [1, 2] and config["iters"] == 3 and config["repeats"] == 3


def test_one_dynamic_batch_artifact_was_built_and_checked(report):
    data, _ = report
    (artifact,) = data["artifacts"]
    assert artifact["batches"] == [1, 2]
    assert artifact["input_specs"] == ["1..2x3x32x32:float32"]
    assert artifact["build_seconds"] > 0 and artifact["bytes"] > 0
    assert artifact["segments"] >= 1
    assert artifact["self_check"]["passed"] is True
    assert [step["backend"] for step in artifact["plan"]] == ["inductor"] * artifact["segments"]


def test_every_batch_has_sane_figures(report):
    data, table = report
    assert sorted(result["batch"] for result in data["results"]) == [1, 2]
    for result in data["results"]:
        assert set(result["latency"]) == {"eager", "torchscript", "poros"}  # no CUDA graph on the CPU
        for name, stats in result["latency"].items():
            assert len(stats["samples_ms"]) == 3, name
            assert all(sample > 0 for sample in stats["samples_ms"]), name
            assert 0 < stats["min_ms"] <= stats["median_ms"] <= stats["p90_ms"], name
        ratio = result["ratio"]
        assert ratio["poros/eager"] == pytest.approx(result["latency"]["poros"]["median_ms"] / result["latency"]["eager"]["median_ms"])
        assert ratio["poros/torchscript"] > 0
        errors = result["max_abs_error"]
        assert result["max_abs_output"] > 0
        assert 0 <= errors["poros_vs_eager"] < 1e-4
        assert 0 <= errors["torchscript_vs_eager"] < 1e-4
        assert f"\n    {result['batch']} " in table
    assert "poros/eager" in table and "max|poros-eager|" in table
