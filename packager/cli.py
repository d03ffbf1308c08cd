"""The ``poros-pack`` command line: ``build``, ``inspect`` and ``verify``."""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import click

import packager
from packager.build import known_targets
from packager.errors import InternalError, PorosError, UsageError
from packager.spec import SPEC_HELP, parse_input_spec

__all__ = ["main"]

EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_INTERNAL = 3


class _StageProgress:
    """Prints one line per build stage to stderr with the time the previous stage took."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.started = time.perf_counter()
        self.stage_started = self.started
        self.open_line = False

    def __call__(self, stage: str, detail: str) -> None:
        if self.quiet:
            return
        now = time.perf_counter()
        if self.open_line:
            click.echo(f" done ({now - self.stage_started:.1f}s)", err=True)
        click.echo(f"[{now - self.started:6.1f}s] {stage:<9} {detail} ...", err=True, nl=False)
        self.open_line = True
        self.stage_started = now

    def finish(self, failed: bool = False) -> None:
        if self.open_line and not self.quiet:
            outcome = "failed" if failed else "done"
            click.echo(f" {outcome} ({time.perf_counter() - self.stage_started:.1f}s)", err=True)
        self.open_line = False


def _fail(error: BaseException) -> None:
    if isinstance(error, UsageError):
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_USAGE)
    if isinstance(error, InternalError):
        click.echo(f"internal error (a bug in poros-pack, please report it): {error}", err=True)
        sys.exit(EXIT_INTERNAL)
    click.echo(f"error: {type(error).__name__}: {error}", err=True)
    sys.exit(EXIT_FAILED)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(packager.__version__, prog_name="poros-pack")
def main() -> None:
    """Package a TorchScript or ONNX model into a .poros archive of engines plus TorchScript glue.

    \b
    Build:    poros-pack build model.pt -o model.poros --input 1..8x3x224x224:float32
    Inspect:  poros-pack inspect model.poros
    Verify:   poros-pack verify model.poros      (load and run it on this host)
    Run it:   python -c "import poros_runtime; m = poros_runtime.load('model.poros')"
    """
    # torch >=2.13 marks TorchScript (our glue format, by design) deprecated and its own pytree
    # internals warn during export; neither is actionable for a user of this command.
    warnings.filterwarnings("ignore", message=r"`torch\.jit", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(copyreg|torch\..*)")


@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Path of the .poros archive to write (written atomically: nothing appears on failure).")
@click.option("-i", "--input", "inputs", multiple=True, metavar="SPEC",
              help=f"Input specification, repeat per forward argument: {SPEC_HELP}")
@click.option("--device", type=click.Choice(["cpu", "cuda", "xpu"]), default="cpu", show_default=True,
              help="Device the engines are compiled for and the artifact runs on.")
@click.option("--target", "targets", type=click.Choice(known_targets()), multiple=True, default=("inductor",),
              show_default=True,
              help="Engine backend, repeatable in order of preference (--target tensorrt-rtx --target inductor): "
                   "each segment gets one variant per target, and holds only ops every target supports. "
                   "'torchscript' packages the whole model as glue (no engines) and excludes the others.")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16"]), default="fp32", show_default=True,
              help="Compute precision inside engines; inputs and outputs keep the model's dtypes.")
@click.option("--min-segment-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="Engine segments with fewer ops than this go back to the glue.")
@click.option("--fallback-op", "fallback_ops", multiple=True, metavar="OP",
              help="Force an op into the TorchScript glue, e.g. --fallback-op aten::softmax (repeatable).")
@click.option("--no-check", is_flag=True,
              help="Skip the self-check (load the artifact with poros_runtime and compare with the model).")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
def build(model: Path, output: Path, inputs: tuple[str, ...], device: str, targets: tuple[str, ...], precision: str,
          min_segment_size: int, fallback_ops: tuple[str, ...], no_check: bool, quiet: bool) -> None:
    """Build MODEL into the archive given by -o.

    MODEL is a torch.jit.save'd TorchScript file, or an ONNX model (*.onnx, opset 13..21; its
    --input specs may be omitted when every input shape in the model is static).
    """
    from packager.build import BuildOptions
    from packager.build import build as run_build

    progress = _StageProgress(quiet)
    try:
        options = BuildOptions(
            inputs=[parse_input_spec(spec) for spec in inputs],
            device=device,
            target=targets,
            precision=precision,
            min_segment_size=min_segment_size,
            fallback_ops=fallback_ops,
            self_check=not no_check,
        )
        report = run_build(model, output, options, progress=progress)
    except PorosError as error:
        progress.finish(failed=True)
        _fail(error)
    except KeyboardInterrupt:
        progress.finish(failed=True)
        click.echo("interrupted: nothing was written", err=True)
        sys.exit(130)
    except Exception as error:  # a bug of ours or of a library: say so, keep the traceback
        progress.finish(failed=True)
        import traceback

        traceback.print_exc()
        click.echo(f"internal error (nothing was written; please report it with the model): "
                   f"{type(error).__name__}: {error}", err=True)
        sys.exit(EXIT_INTERNAL)
    progress.finish()
    if quiet:
        return
    engine_nodes = sum(s["node_count"] for s in report.segments)
    click.echo(
        f"wrote {report.output} ({_size(report.artifact_bytes)}) in {report.seconds:.1f}s: "
        f"{len(report.segments)} engine segment(s) holding {engine_nodes} ops, "
        f"{len(report.fallback_nodes)} glue node(s)"
    )
    if report.self_check and report.self_check.get("skipped"):
        click.echo(f"self-check skipped: {report.self_check['skipped']}")
    elif report.self_check:
        errors = ", ".join(f"{k} {v:.2e}" for k, v in report.self_check["relative_error"].items())
        click.echo(f"self-check passed: relative error vs the model {errors} (tolerance {report.self_check['tolerance']:g})")
        _echo_plan(report.self_check["plan"], heading="checked on this host with")


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} B"


def _dims_text(dims: list[Any]) -> str:
    parts = []
    for dim in dims:
        if isinstance(dim, dict):
            if "min" in dim:
                parts.append(f"{dim['symbol']}={dim['min']}..{dim['max']}")
            else:
                parts.append(str(dim["symbol"]))
        else:
            parts.append(str(dim))
    return "[" + ", ".join(parts) + "]"


def _echo_plan(plan: list[dict[str, Any]], heading: str) -> None:
    for step in plan:
        click.echo(f"  {heading} {step['segment']}: {step['backend']} ({step['reason']})")


def summarize(manifest: dict[str, Any], path: Path, size: int) -> dict[str, Any]:
    """The facts ``inspect`` shows, as plain data: one entry per segment variant, in the
    artifact's order of preference (``preference`` 0 is the variant a host tries first)."""
    segments = []
    for segment in manifest.get("segments", []):
        for preference, variant in enumerate(segment.get("variants", [])):
            requirements = variant.get("requirements", {})
            segments.append({
                "id": segment["id"],
                "backend": variant["backend"],
                "preference": preference,
                "member": variant["member"],
                "device": requirements.get("device_type"),
                "nodes": segment.get("node_count"),
                "bytes": manifest["members"].get(variant["member"], {}).get("size"),
                "requirements": requirements,
                "ops": segment.get("ops", {}),
            })
    return {
        "path": str(path),
        "bytes": size,
        "format_version": manifest.get("format_version"),
        "producer": manifest.get("producer", {}),
        "model": manifest.get("model", {}),
        "device": manifest.get("device"),
        "build": manifest.get("build", {}),
        "signature": manifest.get("signature", {}),
        "segments": segments,
        "glue_nodes": manifest.get("glue", {}).get("fallback_nodes", []),
    }


@main.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--source", is_flag=True, help="Also print the generated TorchScript glue source.")
def inspect(artifact: Path, as_json: bool, source: bool) -> None:
    """Show what ARTIFACT holds: format, producer, signature, segments and glue nodes."""
    from poros_artifact import read_artifact

    try:
        archive = read_artifact(artifact)
        archive.verify()
        info = summarize(archive.manifest, artifact, artifact.stat().st_size)
        glue_source = None
        if source:
            member = archive.manifest.get("glue", {}).get("source_member")
            glue_source = archive.read_member(member).decode() if member else None
    except PorosError as error:
        _fail(error)
    if as_json:
        if glue_source is not None:
            info["glue_source"] = glue_source
        click.echo(json.dumps(info, indent=2, sort_keys=True))
        return
    producer = info["producer"]
    build_info = info["build"]
    click.echo(f"{info['path']}  ({_size(info['bytes'])}, format {info['format_version']}, checksums OK)")
    click.echo(f"producer   {producer.get('name')} {producer.get('version')}, torch {producer.get('torch')}, "
               f"CUDA {producer.get('cuda') or 'none'}, Python {producer.get('python')}")
    click.echo(f"model      {info['model'].get('name')} ({info['model'].get('source_format')})")
    targets = build_info.get("targets") or [build_info.get("target")]
    click.echo(f"device     {info['device']}   targets {' + '.join(map(str, targets))}   precision {build_info.get('precision')}")
    click.echo("inputs")
    for entry in info["signature"].get("inputs", []):
        click.echo(f"  {entry['name']:<12} {entry['dtype']:<9} {_dims_text(entry.get('dims', []))}")
    click.echo(f"outputs    (structure: {json.dumps(info['signature'].get('output_structure'))})")
    for entry in info["signature"].get("outputs", []):
        click.echo(f"  {entry['name']:<12} {entry.get('dtype') or '?':<9} {_dims_text(entry.get('dims', []))}")
    segment_ids = list(dict.fromkeys(segment["id"] for segment in info["segments"]))
    click.echo(f"segments ({len(segment_ids)}; variants in order of preference)")
    for segment in info["segments"]:
        requirements = segment["requirements"]
        needs = ", ".join(f"{k} {_requirement_text(v)}" for k, v in requirements.items()
                          if v is not None and k != "device_type")
        click.echo(f"  {segment['id']:<6} {segment['preference'] + 1}. {segment['backend']:<12} "
                   f"{segment['device'] or '?':<5} {segment['nodes']:>5} ops  {_size(segment['bytes'] or 0):>10}  "
                   f"needs {needs}")
    click.echo(f"glue nodes ({len(info['glue_nodes'])})")
    for node in info["glue_nodes"]:
        click.echo(f"  {node['node']:<8} {node['op']:<28} {node['reason']}")
    if glue_source:
        click.echo("glue source")
        click.echo(glue_source)


def _requirement_text(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


@main.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--device", default=None, metavar="DEVICE",
              help="Device to load on (e.g. cpu, cuda, cuda:1); default: the artifact's device.")
@click.option("--strict", is_flag=True,
              help="Fail if a segment's preferred variant cannot run here, instead of falling back.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random inputs.")
def verify(artifact: Path, device: str | None, strict: bool, seed: int) -> None:
    """Load ARTIFACT on this host, say which variant each segment uses and why, and run it on
    random inputs matching its signature (at the min, opt and max sizes of dynamic dims)."""
    from packager.build import flatten_tensors, random_inputs

    try:
        import poros_runtime
        import torch

        module = poros_runtime.load(artifact, device=device, strict=strict)
        click.echo(f"{artifact}: loaded on {module.device} ({'strict' if strict else 'falling back where needed'})")
        for step in module.plan:
            click.echo(f"  {step['segment']}: {step['backend']} -- {step['reason']}")
        specs = _input_specs(module.signature)
        sizes = ["opt"] if all(spec.is_static for spec in specs) else ["min", "opt", "max"]
        for size in sizes:
            inputs = random_inputs(specs, device=str(module.device), seed=seed, sizes=size)
            outputs = module(*inputs)
            shapes = [list(tensor.shape) for tensor in flatten_tensors(outputs)]
            finite = all(torch.isfinite(t).all().item() for t in flatten_tensors(outputs) if t.is_floating_point())
            click.echo(f"  run at {size:<3} inputs {[list(t.shape) for t in inputs]} -> outputs {shapes}"
                       + ("" if finite else "  (non-finite values)"))
    except PorosError as error:
        _fail(error)
    click.echo("verify passed")


def _input_specs(signature: dict[str, Any]) -> list[Any]:
    """The signature's inputs as InputSpecs (a dim's recorded min/opt/max, or its fixed size)."""
    specs = []
    for entry in signature["inputs"]:
        dims = []
        for dim in entry["dims"]:
            if isinstance(dim, dict):
                dims.append(f"{dim['min']}..{dim.get('opt', dim['max'])}..{dim['max']}")
            else:
                dims.append(str(dim))
        specs.append(parse_input_spec("x".join(dims) + f":{entry['dtype']}"))
    return specs


if __name__ == "__main__":  # pragma: no cover
    main()
