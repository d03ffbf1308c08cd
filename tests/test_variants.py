"""Multi-variant artifacts: ``--target`` repeated, one variant per target and segment, and a
runtime that runs the first variant this host can run.

The artifact carries a real TensorRT-RTX plan first and an AOTInductor CPU variant second
(``--target tensorrt-rtx --target inductor``): TensorRT-RTX builds on this CPU-only host, its
plans only run on RTX-class GPUs. The runtime's TensorRT executor refuses that variant on this
host before touching its bytes and runs the inductor one. (Running a TensorRT plan is not
verified by this project at all: no GPU in CI, and the GPU machine, compute capability 9.0,
cannot run TensorRT-RTX plans.)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from packager.build import BuildOptions, build
from packager.cli import main
from packager.spec import parse_input_spec
from poros_runtime.errors import RuntimeCompatError
from tests import models

# fp32 end to end; AOTInductor reorders the matmul accumulation (~1e-6 relative), STYLE.md §9.
RELATIVE_TOLERANCE = 1e-4

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning")


@pytest.fixture(scope="module")
def two_variant_artifact(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX builds the first variant (CI installs it)")
    directory = tmp_path_factory.mktemp("variants")
    model = models.save_two_in_tuple_out(directory / "m.pt")
    artifact = directory / "m.poros"
    options = BuildOptions(inputs=[parse_input_spec("1..4x8"), parse_input_spec("1..4x6")],
                           target=["tensorrt-rtx", "inductor"])
    report = build(model, artifact, options)
    return model, artifact, report


def test_every_segment_carries_both_variants_in_the_order_given(two_variant_artifact) -> None:
    _, _, report = two_variant_artifact
    assert report.segments
    for segment in report.segments:
        assert [variant["backend"] for variant in segment["variants"]] == ["tensorrt-rtx", "inductor"]
        assert [variant["member"] for variant in segment["variants"]] == [
            f"engines/{segment['id']}.tensorrt-rtx.plan", f"engines/{segment['id']}.inductor.pt2"]
        plan = segment["variants"][0]
        assert plan["bytes"] > 10_000 and plan["requirements"]["library"] == "tensorrt-rtx"


def test_a_node_goes_to_an_engine_only_if_every_target_supports_it(tmp_path) -> None:
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX is one of the targets (CI installs it)")
    model = models.save_fft(tmp_path / "fft.pt")
    options = BuildOptions(inputs=[parse_input_spec("1..4x4x16")], target=["tensorrt-rtx", "inductor"])
    report = build(model, tmp_path / "fft.poros", options)
    reasons = {node["op"]: node["reason"] for node in report.fallback_nodes}
    # Targets are asked in the order given; the first refusal is the reason recorded.
    assert reasons["aten::fft_rfft"] == "tensorrt-rtx: aten::fft_rfft has no ONNX emitter"
    # abs has an emitter, but not for the complex spectrum it gets here.
    assert reasons["aten::abs"].startswith("tensorrt-rtx: aten::abs: tensor ")
    assert "complex64, which ONNX emission does not take" in reasons["aten::abs"]


def test_the_self_check_ran_the_variant_this_host_can_run(two_variant_artifact) -> None:
    _, _, report = two_variant_artifact
    assert report.self_check["passed"] is True
    assert {step["backend"] for step in report.self_check["plan"]} == {"inductor"}


def test_load_on_a_cpu_host_falls_back_to_inductor_and_says_why(two_variant_artifact, caplog) -> None:
    import poros_runtime

    model_path, artifact, _ = two_variant_artifact
    with caplog.at_level(logging.INFO, logger="poros_runtime"):
        loaded = poros_runtime.load(artifact)
    for step in loaded.plan:
        assert step["backend"] == "inductor"
        [skipped] = step["skipped"]
        assert skipped["backend"] == "tensorrt-rtx"
        assert "run on CUDA GPUs only" in skipped["reason"] or "not installed" in skipped["reason"]
    fallbacks = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(fallbacks) == len(loaded.plan)
    assert all("running the inductor variant" in r.getMessage() and "tensorrt-rtx skipped" in r.getMessage()
               for r in fallbacks)

    reference = torch.jit.load(str(model_path)).eval()
    for batch in (1, 3, 4):
        x, y = torch.randn(batch, 8), torch.randn(batch, 6)
        with torch.no_grad():
            expected = reference(x, y)
        actual = loaded(x, y)
        for got, want in zip(actual, expected, strict=True):
            error = (got - want).abs().max().item() / max(1.0, want.abs().max().item())
            assert error <= RELATIVE_TOLERANCE, (batch, error)


def test_strict_load_refuses_to_degrade(two_variant_artifact) -> None:
    import poros_runtime

    _, artifact, _ = two_variant_artifact
    with pytest.raises(RuntimeCompatError) as raised:
        poros_runtime.load(artifact, strict=True)
    message = str(raised.value)
    assert "segment seg0" in message and "strict load" in message
    assert "preferred variant tensorrt-rtx (engines/seg0.tensorrt-rtx.plan)" in message
    assert "strict=False to fall back to the inductor variant" in message


def test_cli_verify_prints_the_plan_and_runs_it(two_variant_artifact) -> None:
    _, artifact, _ = two_variant_artifact
    result = CliRunner().invoke(main, ["verify", str(artifact)])
    assert result.exit_code == 0, result.output
    assert "seg0: inductor -- the first variant this host can run (tensorrt-rtx skipped:" in result.output
    for size in ("min", "opt", "max"):
        assert f"run at {size}" in result.output
    assert "outputs [[4, 8], [4, 16]]" in result.output
    assert "verify passed" in result.output

    strict = CliRunner().invoke(main, ["verify", str(artifact), "--strict"])
    assert strict.exit_code == 1, strict.output
    assert "RuntimeCompatError" in strict.output and "preferred variant tensorrt-rtx" in strict.output


def test_cli_inspect_lists_both_variants_with_requirements(two_variant_artifact) -> None:
    _, artifact, _ = two_variant_artifact
    info = json.loads(CliRunner().invoke(main, ["inspect", str(artifact), "--json"]).output)
    assert info["build"]["targets"] == ["tensorrt-rtx", "inductor"]
    seg0 = [variant for variant in info["segments"] if variant["id"] == "seg0"]
    assert [(v["backend"], v["preference"]) for v in seg0] == [("tensorrt-rtx", 0), ("inductor", 1)]
    requirements = seg0[0]["requirements"]
    assert requirements["library"] == "tensorrt-rtx" and requirements["device_type"] == "cuda"
    assert "9.0" not in requirements["compute_capabilities"]
    assert seg0[1]["requirements"]["device_type"] == "cpu"

    text = CliRunner().invoke(main, ["inspect", str(artifact)]).output
    assert "targets tensorrt-rtx + inductor" in text
    assert "1. tensorrt-rtx" in text and "2. inductor" in text
    assert "compute_capabilities 8.0, 8.6, 8.9, 12.0" in text


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        (["torchscript", "inductor"], "cannot be combined"),
        (["inductor", "inductor"], "each target may be given once"),
        (["no_such_backend"], "known targets: inductor"),
    ],
)
def test_target_combinations_that_make_no_sense_are_usage_errors(tmp_path: Path, targets, message) -> None:
    from packager.errors import UsageError

    model = models.save_two_in_tuple_out(tmp_path / "m.pt")
    options = BuildOptions(inputs=[parse_input_spec("2x8"), parse_input_spec("2x6")], target=targets)
    with pytest.raises(UsageError, match=message):
        build(model, tmp_path / "m.poros", options)
    assert not (tmp_path / "m.poros").exists()


def test_a_target_whose_library_is_missing_fails_before_the_build_and_writes_nothing(tmp_path) -> None:
    """Without TensorRT-RTX every node would be refused and the artifact would silently hold no
    engine of the target the user asked for: the build must say what to install instead."""
    import subprocess
    import sys
    import textwrap

    model = models.save_two_in_tuple_out(tmp_path / "m.pt")
    output = tmp_path / "m.poros"
    child = textwrap.dedent(f"""
        import importlib.abc, sys
        class Missing(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "tensorrt_rtx" or name.startswith("tensorrt_rtx"):
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                return None
        sys.meta_path.insert(0, Missing())
        from packager.cli import main
        main(["build", {str(model)!r}, "-o", {str(output)!r}, "--input", "1..4x8", "--input", "1..4x6",
              "--target", "tensorrt-rtx", "--target", "inductor"])
    """)
    completed = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300)
    assert completed.returncode != 0
    assert "--target tensorrt-rtx: the tensorrt-rtx backend needs TensorRT-RTX" in completed.stderr
    assert "Install 'tensorrt-rtx-cu13'" in completed.stderr
    assert "importing" not in completed.stderr  # failed before the model was imported (progress)
    assert not output.exists()
