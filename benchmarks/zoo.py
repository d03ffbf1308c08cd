"""Model zoo: build and run well-known models nobody here wrote, as a new user would.

    python benchmarks/zoo.py --filter resnet18,bert --forms trace,onnx --out out/zoo/cpu.json
    python benchmarks/zoo.py --device cuda --jobs 1 --out $OUT/zoo-cuda.json
    python benchmarks/zoo.py --list

Each model (torchvision, Hugging Face transformers and timm; random weights, nothing is
downloaded) is exported in each *form*:

    trace   torch.jit.trace of the model (HF models with ``torchscript=True`` configs, so they
            return tuples; torchvision segmentation with ``strict=False``, so it returns its dict)
    script  torch.jit.script of the model
    onnx    torch.onnx.export with a dynamic batch dim (the dynamo exporter; the legacy
            TorchScript-based exporter if the dynamo one fails, or as ``--onnx-exporter`` says)

then built with the real packager (``packager.build.build``, what ``poros-pack build`` calls) with
a dynamic batch (``--input 1..4x...``; the build's own self-check is off, this script compares
instead), loaded with ``poros_runtime.load`` and compared with the *eager* Python model on fresh
inputs at the smallest and the largest batch, and timed against it at the largest batch.

Every (model, form) runs in its own subprocess with ``--timeout``, so a crash or a hang of one
does not stop the run; the subprocess records the stage it reached (export, build, load, run,
compare) in a JSON file as it goes, so a timeout still says where it stopped.

The table (and ``--out`` JSON) has, per model and form: ``built``, ``ran`` (the artifact ran and
matched eager within ``--tolerance``), the relative error against eager (norm-wise, worst of the
outputs and batches), the share of ops in engine segments, the number of segments, the build
time, the artifact's latency divided by eager's, and for a failure the stage, the exception's
class and the first line of its message.  Exit code 0 when the run completed (whatever failed
inside), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import datetime
import io
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

REPO = Path(__file__).resolve().parents[1]
SCHEMA_VERSION = 1
FORMS = ("trace", "script", "onnx")
STAGES = ("construct", "export", "build", "load", "run", "compare", "time")
EXIT_USAGE = 2


# --------------------------------------------------------------------------------------------
# The zoo: how to construct each model and its example input (nothing downloaded)


@dataclasses.dataclass(frozen=True)
class InputDef:
    """One forward argument: the shape without the batch dim, its dtype and, for int inputs,
    the exclusive upper bound of the random values (a vocabulary size)."""

    shape: tuple[int, ...]
    dtype: str = "float32"
    high: int = 0


@dataclasses.dataclass(frozen=True)
class ZooModel:
    name: str
    family: str      # torchvision | transformers | timm
    task: str        # classification | segmentation | detection | vision-transformer | nlp | audio
    construct: Callable[[], Any]
    inputs: tuple[InputDef, ...]
    trace_strict: bool = True
    max_batch: int = 4


def _image(size: int) -> tuple[InputDef, ...]:
    return (InputDef((3, size, size)),)


def _torchvision(name: str, **kwargs: Any) -> Callable[[], Any]:
    def construct():
        import torchvision

        return torchvision.models.get_model(name, weights=None, **kwargs)

    return construct


def _segmentation(name: str) -> Callable[[], Any]:
    def construct():
        import torchvision

        return torchvision.models.get_model(name, weights=None, weights_backbone=None, aux_loss=False)

    return construct


class _DetectionOnBatch:
    """Faster R-CNN takes a list of images; this takes one batch tensor and returns the list of
    per-image dicts (boxes, labels, scores), scriptable and traceable."""

    @staticmethod
    def construct():
        import torch
        import torchvision

        class DetectionOnBatch(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = torchvision.models.get_model(
                    "fasterrcnn_mobilenet_v3_large_320_fpn", weights=None, weights_backbone=None, num_classes=91)

            def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
                batch = [images[i] for i in range(images.shape[0])]
                if torch.jit.is_scripting():
                    return self.model(batch)[1]
                return self.model(batch)

        return DetectionOnBatch()


def _hf(model_class: str, config_class: str, **config: Any) -> Callable[[], Any]:
    def construct():
        import transformers

        config_object = getattr(transformers, config_class)(torchscript=True, **config)
        return getattr(transformers, model_class)(config_object)

    return construct


def _whisper_encoder():
    import transformers

    config = transformers.WhisperConfig(torchscript=True, d_model=256, encoder_layers=2, decoder_layers=2,
                                        encoder_attention_heads=4, decoder_attention_heads=4,
                                        encoder_ffn_dim=512, decoder_ffn_dim=512,
                                        num_mel_bins=80, max_source_positions=100)
    return transformers.WhisperModel(config).get_encoder()


def _timm(name: str, **kwargs: Any) -> Callable[[], Any]:
    def construct():
        import timm

        return timm.create_model(name, pretrained=False, **kwargs)

    return construct


_SMALL_TEXT = dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512)
_TOKENS = (InputDef((32,), "int64", 1000),)

ZOO: tuple[ZooModel, ...] = (
    # torchvision classification (64x64 where the architecture allows it, to keep time down)
    ZooModel("resnet18", "torchvision", "classification", _torchvision("resnet18"), _image(64)),
    ZooModel("resnet50", "torchvision", "classification", _torchvision("resnet50"), _image(64)),
    ZooModel("resnext50_32x4d", "torchvision", "classification", _torchvision("resnext50_32x4d"), _image(64)),
    ZooModel("mobilenet_v2", "torchvision", "classification", _torchvision("mobilenet_v2"), _image(64)),
    ZooModel("mobilenet_v3_large", "torchvision", "classification", _torchvision("mobilenet_v3_large"), _image(64)),
    ZooModel("mobilenet_v3_small", "torchvision", "classification", _torchvision("mobilenet_v3_small"), _image(64)),
    ZooModel("efficientnet_b0", "torchvision", "classification", _torchvision("efficientnet_b0"), _image(64)),
    ZooModel("efficientnet_v2_s", "torchvision", "classification", _torchvision("efficientnet_v2_s"), _image(64)),
    ZooModel("convnext_tiny", "torchvision", "classification", _torchvision("convnext_tiny"), _image(64)),
    ZooModel("regnet_y_400mf", "torchvision", "classification", _torchvision("regnet_y_400mf"), _image(64)),
    ZooModel("densenet121", "torchvision", "classification", _torchvision("densenet121"), _image(64)),
    ZooModel("squeezenet1_1", "torchvision", "classification", _torchvision("squeezenet1_1"), _image(64)),
    ZooModel("shufflenet_v2_x1_0", "torchvision", "classification", _torchvision("shufflenet_v2_x1_0"), _image(64)),
    ZooModel("mnasnet1_0", "torchvision", "classification", _torchvision("mnasnet1_0"), _image(64)),
    ZooModel("googlenet", "torchvision", "classification",
             _torchvision("googlenet", aux_logits=False, init_weights=True), _image(64)),
    ZooModel("inception_v3", "torchvision", "classification",
             _torchvision("inception_v3", aux_logits=False, init_weights=True), _image(96)),
    # torchvision vision transformers
    ZooModel("vit_b_16", "torchvision", "vision-transformer", _torchvision("vit_b_16", image_size=64), _image(64)),
    ZooModel("swin_t", "torchvision", "vision-transformer", _torchvision("swin_t"), _image(64)),
    # torchvision segmentation (dict outputs) and detection (lists of dicts)
    ZooModel("fcn_resnet50", "torchvision", "segmentation", _segmentation("fcn_resnet50"), _image(64), trace_strict=False),
    ZooModel("deeplabv3_mobilenet_v3_large", "torchvision", "segmentation",
             _segmentation("deeplabv3_mobilenet_v3_large"), _image(64), trace_strict=False),
    ZooModel("lraspp_mobilenet_v3_large", "torchvision", "segmentation",
             _segmentation("lraspp_mobilenet_v3_large"), _image(64), trace_strict=False),
    ZooModel("fasterrcnn_mobilenet_v3_large_320_fpn", "torchvision", "detection", _DetectionOnBatch.construct,
             _image(128), trace_strict=False, max_batch=2),
    # Hugging Face transformers (small configs of the real architectures)
    ZooModel("bert", "transformers", "nlp", _hf("BertModel", "BertConfig", vocab_size=1000, **_SMALL_TEXT), _TOKENS),
    ZooModel("distilbert", "transformers", "nlp",
             _hf("DistilBertModel", "DistilBertConfig", vocab_size=1000, dim=256, n_layers=4, n_heads=4, hidden_dim=512),
             _TOKENS),
    ZooModel("gpt2", "transformers", "nlp",
             _hf("GPT2Model", "GPT2Config", vocab_size=1000, n_embd=256, n_layer=4, n_head=4, n_positions=128), _TOKENS),
    ZooModel("t5_encoder", "transformers", "nlp",
             _hf("T5EncoderModel", "T5Config", vocab_size=1000, d_model=256, d_kv=64, d_ff=512, num_layers=4,
                 num_heads=4), _TOKENS),
    ZooModel("clip_vision", "transformers", "vision-transformer",
             _hf("CLIPVisionModel", "CLIPVisionConfig", image_size=64, patch_size=16, **_SMALL_TEXT), _image(64)),
    ZooModel("whisper_encoder", "transformers", "audio", _whisper_encoder, (InputDef((80, 200)),)),
    ZooModel("wav2vec2", "transformers", "audio",
             _hf("Wav2Vec2Model", "Wav2Vec2Config", **_SMALL_TEXT), (InputDef((4000,)),)),
    # timm
    ZooModel("timm_resnet18", "timm", "classification", _timm("resnet18"), _image(64)),
    ZooModel("timm_vit_tiny", "timm", "vision-transformer", _timm("vit_tiny_patch16_224", img_size=64), _image(64)),
    ZooModel("timm_efficientnet_b0", "timm", "classification", _timm("efficientnet_b0"), _image(64)),
    ZooModel("timm_convnext_atto", "timm", "classification", _timm("convnext_atto"), _image(64)),
)


def _zoo_by_name() -> dict[str, ZooModel]:
    return {model.name: model for model in ZOO}


def select(filters: Sequence[str]) -> list[ZooModel]:
    """Models whose name, family or task contains any of the comma-separated ``filters``
    (an exact name wins: ``resnet18`` does not also pick ``timm_resnet18``)."""
    if not filters:
        return list(ZOO)
    by_name = _zoo_by_name()
    chosen: list[ZooModel] = []
    for text in filters:
        matches = [by_name[text]] if text in by_name else [
            m for m in ZOO if text in m.name or text == m.family or text == m.task]
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


# --------------------------------------------------------------------------------------------
# The worker: one (model, form) in a subprocess


def _input_spec(model: ZooModel, definition: InputDef) -> str:
    return "x".join([f"1..{model.max_batch}", *map(str, definition.shape)]) + f":{definition.dtype}"


def _example_inputs(model: ZooModel, batch: int, seed: int):
    import torch

    generator = torch.Generator().manual_seed(seed)
    tensors = []
    for definition in model.inputs:
        shape = (batch, *definition.shape)
        if definition.dtype.startswith("int"):
            tensors.append(torch.randint(0, definition.high, shape, generator=generator,
                                         dtype=getattr(torch, definition.dtype)))
        else:
            tensors.append(torch.randn(shape, generator=generator, dtype=getattr(torch, definition.dtype)))
    return tensors


def _flatten(output: Any) -> list:
    """The tensors of an output in order: dicts (and HF ``ModelOutput``) by their values."""
    import torch

    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        return [t for value in output.values() for t in _flatten(value)]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in _flatten(item)]
    return []


def _relative_error(actual: list, expected: list) -> float:
    if len(actual) != len(expected):
        raise AssertionError(f"the artifact returned {len(actual)} tensors, eager {len(expected)}")
    worst = 0.0
    for got, want in zip(actual, expected):
        if tuple(got.shape) != tuple(want.shape):
            raise AssertionError(f"output shape {tuple(got.shape)} != eager {tuple(want.shape)}")
        got64, want64 = got.detach().cpu().double(), want.detach().cpu().double()
        norm = want64.norm().item()
        difference = (got64 - want64).norm().item()
        worst = max(worst, difference / norm if norm > 0 else difference)
    return worst


def _export(model: ZooModel, module, form: str, path: Path, onnx_exporter: str, record: dict) -> Path:
    import torch

    example = tuple(_example_inputs(model, 2, seed=0))
    if form == "trace":
        exported = torch.jit.trace(module, example, strict=model.trace_strict, check_trace=False)
        target = path.with_suffix(".pt")
        torch.jit.save(exported, str(target))
        return target
    if form == "script":
        exported = torch.jit.script(module)
        target = path.with_suffix(".pt")
        torch.jit.save(exported, str(target))
        return target
    target = path.with_suffix(".onnx")
    names = [f"input_{i}" for i in range(len(model.inputs))]
    dynamic_axes = {name: {0: "batch"} for name in names}
    errors = []
    for exporter in (("dynamo", "legacy") if onnx_exporter == "auto" else (onnx_exporter,)):
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                torch.onnx.export(module, example, str(target), input_names=names, dynamic_axes=dynamic_axes,
                                  dynamo=exporter == "dynamo", external_data=False)
            record["onnx_exporter"] = exporter
            return target
        except Exception as error:  # noqa: BLE001 - try the next exporter, report all
            errors.append(f"{exporter}: {type(error).__name__}: {_first_line(error)}")
    raise RuntimeError("torch.onnx.export failed: " + " | ".join(errors))


def _first_line(error: BaseException) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[0].strip()[:300] if lines else ""


def _median_ms(function: Callable[[], Any], iters: int, device: str) -> float:
    import torch

    samples = []
    for _ in range(iters):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        function()
        if device == "cuda":
            torch.cuda.synchronize()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def run_worker(name: str, form: str, device: str, workdir: Path, result_path: Path, options: dict) -> None:
    """Export, build, load, compare and time one model in one form; write ``result_path`` after
    every stage so the parent knows where a crash or a timeout happened."""
    import torch

    record: dict[str, Any] = {"model": name, "form": form, "device": device, "stage": "construct",
                              "built": False, "ran": False}

    def save() -> None:
        result_path.write_text(json.dumps(record, indent=1))

    def stage(name_: str) -> None:
        record["stage"] = name_
        save()

    warnings.filterwarnings("ignore")
    if options.get("threads"):
        torch.set_num_threads(options["threads"])
    model = _zoo_by_name()[name]
    try:
        stage("construct")
        torch.manual_seed(0)
        module = model.construct().eval()
        stage("export")
        with torch.no_grad():
            source = _export(model, module, form, workdir / f"{name}.{form}", options["onnx_exporter"], record)
        stage("build")
        from packager.build import BuildOptions, build
        from packager.spec import parse_input_spec

        specs = [_input_spec(model, definition) for definition in model.inputs]
        record["inputs"] = specs
        artifact = workdir / f"{name}.{form}.poros"
        report = build(source, artifact, BuildOptions(inputs=[parse_input_spec(s) for s in specs], device=device,
                                                      self_check=False))
        engine_ops = sum(segment["node_count"] for segment in report.segments)
        glue_ops = len(report.fallback_nodes)
        fallback_kinds: dict[str, int] = {}
        for node in report.fallback_nodes:
            fallback_kinds[node["op"]] = fallback_kinds.get(node["op"], 0) + 1
        record.update(built=True, build_seconds=round(report.seconds, 1), segments=len(report.segments),
                      engine_ops=engine_ops, glue_ops=glue_ops,
                      engine_op_percent=round(100.0 * engine_ops / max(engine_ops + glue_ops, 1), 1),
                      glue_op_kinds=dict(sorted(fallback_kinds.items(), key=lambda item: -item[1])),
                      artifact_bytes=report.artifact_bytes)
        stage("load")
        import poros_runtime

        loaded = poros_runtime.load(artifact, device=device)
        module = module.to(device)
        stage("run")
        errors = {}
        for batch in (1, model.max_batch):
            inputs = [t.to(device) for t in _example_inputs(model, batch, seed=batch)]
            with torch.no_grad():
                actual = _flatten(loaded(*inputs))
                stage("compare")
                expected = _flatten(module(*inputs))
            errors[batch] = _relative_error(actual, expected)
            stage("run")
        record["relative_error"] = max(errors.values())
        record["relative_error_per_batch"] = errors
        record["ran"] = record["relative_error"] <= options["tolerance"]
        if not record["ran"]:
            record["error"] = {"type": "Mismatch", "message":
                               f"relative error {record['relative_error']:.3g} > tolerance {options['tolerance']:g}"}
        stage("time")
        if options["iters"] > 0:
            inputs = [t.to(device) for t in _example_inputs(model, model.max_batch, seed=7)]
            with torch.no_grad():
                for _ in range(2):
                    loaded(*inputs)
                    module(*inputs)
                eager_ms = _median_ms(lambda: module(*inputs), options["iters"], device)
                poros_ms = _median_ms(lambda: loaded(*inputs), options["iters"], device)
            record.update(eager_ms=round(eager_ms, 3), poros_ms=round(poros_ms, 3),
                          latency_vs_eager=round(poros_ms / eager_ms, 3), latency_batch=model.max_batch)
        record["stage"] = "done"
    except Exception as error:  # noqa: BLE001 - the record says what failed, the parent goes on
        record["error"] = {"type": f"{type(error).__module__}.{type(error).__qualname__}",
                           "message": _first_line(error),
                           "traceback_tail": traceback.format_exc().splitlines()[-12:]}
    save()


# --------------------------------------------------------------------------------------------
# The parent: one subprocess per (model, form), a table and a JSON report


def _run_one(model: ZooModel, form: str, args: argparse.Namespace, workdir: Path) -> dict:
    case_dir = workdir / f"{model.name}.{form}"
    case_dir.mkdir(parents=True, exist_ok=True)
    result_path = case_dir / "result.json"
    options = {"tolerance": args.tolerance, "iters": args.iters, "threads": args.threads,
               "onnx_exporter": args.onnx_exporter}
    command = [sys.executable, str(Path(__file__).resolve()), "--_worker", model.name, form,
               "--device", args.device, "--_workdir", str(case_dir), "--_options", json.dumps(options)]
    started = time.perf_counter()
    log_path = case_dir / "log.txt"
    with open(log_path, "w") as log:
        try:
            done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=args.timeout,
                                  env={**os.environ, "PYTHONWARNINGS": "ignore"})
            returncode: int | None = done.returncode
        except subprocess.TimeoutExpired:
            returncode = None
    wall = round(time.perf_counter() - started, 1)
    record = json.loads(result_path.read_text()) if result_path.exists() else {
        "model": model.name, "form": form, "stage": "start", "built": False, "ran": False}
    record.update(family=model.family, task=model.task, wall_seconds=wall, log=str(log_path))
    if returncode is None:
        record["error"] = {"type": "Timeout", "message": f"no result after {args.timeout} s (stage {record['stage']})"}
    elif returncode != 0 and "error" not in record and record.get("stage") != "done":
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        record["error"] = {"type": "Crash", "message": f"exit code {returncode} in stage {record['stage']}: {tail[0][:200]}"}
    return record


def _format_table(records: list[dict]) -> str:
    header = ["model", "form", "built", "ran", "rel. error", "% ops in engines", "segments", "build s",
              "latency / eager", "failure (stage: type: message)"]
    rows = []
    for r in records:
        error = r.get("error")
        failure = ""
        if error:
            failure = f"{r.get('stage')}: {error['type'].rsplit('.', 1)[-1]}: {error['message']}"[:160]
        rows.append([
            r["model"], r["form"], "yes" if r.get("built") else "no", "yes" if r.get("ran") else "no",
            f"{r['relative_error']:.1e}" if "relative_error" in r else "",
            f"{r['engine_op_percent']:.0f}" if "engine_op_percent" in r else "",
            str(r.get("segments", "")), f"{r['build_seconds']:.0f}" if "build_seconds" in r else "",
            f"{r['latency_vs_eager']:.2f}" if "latency_vs_eager" in r else "", failure.replace("|", "/"),
        ])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="zoo.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build and run torchvision / transformers / timm models (random weights, nothing downloaded) "
                    "with poros-pack as trace, script and ONNX export with a dynamic batch, and compare "
                    "them with eager.",
        epilog="Examples:\n"
               "  python benchmarks/zoo.py --list\n"
               "  python benchmarks/zoo.py --filter resnet18,bert --forms trace,onnx --out out/zoo/cpu.json\n"
               "  python benchmarks/zoo.py --filter segmentation --device cuda --timeout 1200\n"
               "Results, per model and form, go to the table on stdout and to --out (JSON); each case's\n"
               "exported model, artifact and log stay under --workdir.  See benchmarks/README.md.")
    parser.add_argument("--filter", default="", help="comma-separated parts of model names, or a family "
                        "(torchvision, transformers, timm) or task (classification, segmentation, detection, "
                        "vision-transformer, nlp, audio); an exact model name selects only that model. Default: all")
    parser.add_argument("--forms", default=",".join(FORMS), help="comma-separated forms out of trace,script,onnx "
                        "(default: all three)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="build and run on this device")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per model and form (default 900)")
    parser.add_argument("--jobs", type=int, default=1, help="cases run in parallel (default 1; each build already "
                        "uses several threads)")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads in each case (default: torch's)")
    parser.add_argument("--iters", type=int, default=5, help="timed calls per variant for the latency (0: no timing)")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="relative error against eager that counts as "
                        "a match (default 1e-3, the build's own fp32 self-check tolerance)")
    parser.add_argument("--onnx-exporter", default="auto", choices=("auto", "dynamo", "legacy"),
                        help="torch.onnx.export flavour; auto: dynamo, then legacy if dynamo fails")
    parser.add_argument("--workdir", type=Path, default=REPO / "out" / "zoo",
                        help="where each case's model, artifact, result.json and log.txt go (default out/zoo)")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    parser.add_argument("--list", action="store_true", help="list the selected models and exit")
    parser.add_argument("--table", type=Path, metavar="JSON", help="print the table of an earlier --out report "
                        "(also one still being written) and exit")
    parser.add_argument("--_worker", nargs=2, metavar=("MODEL", "FORM"), help=argparse.SUPPRESS)
    parser.add_argument("--_workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--_options", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _machine(device: str) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from latency import git_info, machine_info

    return {"machine": machine_info(device), "git": git_info()}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    if args._worker:
        name, form = args._worker
        run_worker(name, form, args.device, args._workdir, args._workdir / "result.json", json.loads(args._options))
        return 0
    if args.table:
        print(_format_table(json.loads(args.table.read_text())["results"]))
        return 0
    forms = [f for f in args.forms.split(",") if f]
    unknown = [f for f in forms if f not in FORMS]
    if unknown:
        print(f"zoo.py: unknown form(s) {', '.join(unknown)}; choose from {', '.join(FORMS)}", file=sys.stderr)
        return EXIT_USAGE
    models = select([f for f in args.filter.split(",") if f])
    if not models:
        print(f"zoo.py: --filter {args.filter!r} selects no model; see --list", file=sys.stderr)
        return EXIT_USAGE
    if args.list:
        for model in models:
            specs = " ".join(f"--input {_input_spec(model, d)}" for d in model.inputs)
            print(f"{model.name:40s} {model.family:13s} {model.task:19s} {specs}")
        return 0
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("zoo.py: --device cuda but CUDA is not available here", file=sys.stderr)
            return EXIT_USAGE
    args.workdir.mkdir(parents=True, exist_ok=True)
    cases = [(model, form) for model in models for form in forms]
    started = datetime.datetime.now(datetime.timezone.utc)
    records: list[dict | None] = [None] * len(cases)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        futures = {pool.submit(_run_one, model, form, args, args.workdir): index
                   for index, (model, form) in enumerate(cases)}
        for future in concurrent.futures.as_completed(futures):
            record = future.result()
            records[futures[future]] = record
            status = "ok" if record.get("ran") else (
                f"FAILED at {record.get('stage')}: {record.get('error', {}).get('type', '?')}: "
                f"{record.get('error', {}).get('message', '')[:150]}")
            print(f"[{sum(r is not None for r in records)}/{len(cases)}] {record['model']} {record['form']}: "
                  f"{status} ({record['wall_seconds']:.0f} s)", file=sys.stderr, flush=True)
            if args.out:
                _write_report(args, started, [r for r in records if r is not None])
    done = [r for r in records if r is not None]
    print(_format_table(done))
    built = sum(r.get("built", False) for r in done)
    ran = sum(r.get("ran", False) for r in done)
    print(f"\n{len(done)} cases: {built} built, {ran} ran and matched eager (tolerance {args.tolerance:g})")
    if args.out:
        _write_report(args, started, done)
    return 0


def _write_report(args: argparse.Namespace, started: datetime.datetime, records: list[dict]) -> None:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"schema": SCHEMA_VERSION, "created": started.isoformat(timespec="seconds"),
              "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
              **_machine(args.device), "config": {k: str(v) for k, v in vars(args).items() if not k.startswith("_")},
              "results": records}
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    sys.exit(main())
