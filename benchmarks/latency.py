"""Latency benchmark: eager PyTorch vs frozen TorchScript vs a poros artifact, in one process.

    python benchmarks/latency.py --model resnet50 --device cuda --precision fp16 \\
        --batch 1 --batch 32 --json out/resnet50-fp16.json

For the chosen model it traces a TorchScript ``.pt``, builds it into a ``.poros`` artifact with
the real packager (``packager.build.build``, what ``poros-pack build`` calls; one artifact per
batch size, or one with a dynamic batch range with ``--dynamic-batch``), loads it with
``poros_runtime.load`` and times, on the same inputs and in the same process:

    eager        the ``nn.Module`` in the benchmark precision
    torchscript  the traced ``.pt`` loaded with ``torch.jit.load``, cast, ``torch.jit.freeze``d
    poros        the artifact loaded with ``poros_runtime.load``
    poros_graph  (cuda only; ``--no-cuda-graph`` to skip) the artifact loaded with
                 ``poros_runtime.load(..., cuda_graphs=True)``: input copy, replay of the
                 captured glue call and output copy per call
    cuda_graph   (cuda only; ``--no-cuda-graph`` to skip) the eager module captured once in a
                 CUDA graph and replayed (its inputs sit in the graph's static buffers)

Each variant is warmed up, then timed ``--repeats`` times over a block of ``--iters`` calls (the
variants take turns block by block, so drift in clock speed or load hits them alike); a block's
time divided by ``--iters`` is one sample, and the table shows the median and the 90th
percentile of the samples.  On cuda a block is timed with CUDA events recorded around it and
waited for, so the figure covers the GPU work of every call in the block.  See
``benchmarks/README.md`` for the JSON layout.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
SCHEMA_VERSION = 1
EXIT_USAGE = 2
EXIT_FAILED = 1
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
VARIANTS = ("eager", "torchscript", "poros", "poros_graph", "cuda_graph")


def _import_project() -> None:
    """Make ``packager`` / ``poros_runtime`` importable from a plain checkout (the GPU machine may
    run the script without ``pip install -e``): fall back to the source folders."""
    try:
        import packager  # noqa: F401
        import poros_runtime  # noqa: F401
    except ImportError:
        for folder in (REPO / "artifact_format", REPO / "runtime_min", REPO):
            if str(folder) not in sys.path:
                sys.path.insert(0, str(folder))


# --------------------------------------------------------------------------------------------
# Models (built here, nothing downloaded; weights are random but seeded)


class SmallCNN(nn.Module):
    """Conv + BatchNorm + ReLU stem, one residual block, strided convs, pooling, a classifier."""

    def __init__(self, width: int = 16, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                                   nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width))
        self.down = nn.Sequential(nn.Conv2d(width, 2 * width, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(),
                                  nn.Conv2d(2 * width, 4 * width, 3, 2, 1, bias=False), nn.BatchNorm2d(4 * width), nn.ReLU())
        self.fc = nn.Linear(4 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(x + self.block(x))
        x = self.down(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class EncoderBlock(nn.Module):
    """Pre-norm transformer block with hand-written multi-head attention (traces to plain ATen)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, dim = x.size(0), x.size(1), x.size(2)
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        q = q.reshape(batch, seq, self.heads, dim // self.heads).transpose(1, 2)
        k = k.reshape(batch, seq, self.heads, dim // self.heads).transpose(1, 2)
        v = v.reshape(batch, seq, self.heads, dim // self.heads).transpose(1, 2)
        attended = F.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(attended.transpose(1, 2).reshape(batch, seq, dim))
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    """Token embedding + learned positions + encoder blocks + mean pooling + classifier."""

    def __init__(self, vocab: int = 1000, dim: int = 256, heads: int = 8, layers: int = 4,
                 max_len: int = 512, classes: int = 10) -> None:
        super().__init__()
        self.vocab = vocab
        self.embed = nn.Embedding(vocab, dim)
        self.position = nn.Parameter(torch.randn(max_len, dim) * 0.02)
        self.blocks = nn.Sequential(*[EncoderBlock(dim, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) * math.sqrt(self.embed.embedding_dim)
        x = x + self.position[: tokens.size(1)]
        x = self.norm(self.blocks(x))
        return self.head(x.mean(dim=1))


@dataclass
class ModelCase:
    name: str
    module: nn.Module
    # Per forward argument: the shape without the batch dim, the dtype, and for integer
    # inputs the exclusive upper bound of the values (token ids).
    inputs: list[tuple[tuple[int, ...], torch.dtype, int | None]]

    def input_spec(self, batch: str) -> list[str]:
        """``poros-pack build --input`` specs with ``batch`` (``"4"`` or ``"1..32"``) first."""
        return ["x".join([batch, *map(str, shape)]) + ":" + str(dtype).removeprefix("torch.")
                for shape, dtype, _ in self.inputs]

    def make_inputs(self, batch: int, device: str, seed: int = 0) -> list[torch.Tensor]:
        generator = torch.Generator().manual_seed(seed + batch)
        tensors = []
        for shape, dtype, high in self.inputs:
            if dtype.is_floating_point:
                tensor = torch.randn((batch, *shape), generator=generator).to(dtype)
            else:
                tensor = torch.randint(0, high or 2, (batch, *shape), generator=generator, dtype=dtype)
            tensors.append(tensor.to(device))
        return tensors


def _randomize_batchnorm(model: nn.Module) -> nn.Module:
    """Non-trivial running statistics, so conv+BatchNorm folding computes something real."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    return model


def make_case(name: str, *, image_size: int | None, seq_len: int | None) -> ModelCase:
    torch.manual_seed(0)
    if name in ("resnet18", "resnet50"):
        try:
            import torchvision
        except ImportError:
            _die(f"--model {name} needs torchvision, which this Python cannot import "
                 f"({sys.executable}); install torchvision or use --model small_cnn")
        model = getattr(torchvision.models, name)(weights=None)
        size = image_size or 224
        return ModelCase(name, _randomize_batchnorm(model).eval(), [((3, size, size), torch.float32, None)])
    if name == "small_cnn":
        size = image_size or 32
        return ModelCase(name, _randomize_batchnorm(SmallCNN()).eval(), [((3, size, size), torch.float32, None)])
    if name == "transformer":
        length = seq_len or 128
        model = Transformer(max_len=max(512, length))
        return ModelCase(name, model.eval(), [((length,), torch.int64, model.vocab)])
    _die(f"unknown --model {name!r}")


# --------------------------------------------------------------------------------------------
# Timing


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _time_block(function: Callable[[], Any], iters: int, cuda: bool) -> float:
    """Milliseconds per call over a block of ``iters`` calls."""
    if cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for _ in range(iters):
            function()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / iters
    started = time.perf_counter()
    for _ in range(iters):
        function()
    return (time.perf_counter() - started) * 1e3 / iters


def _flatten(output: Any) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [tensor for item in output for tensor in _flatten(item)]
    return []


def _max_abs_error(actual: Any, expected: Any) -> float:
    actual, expected = _flatten(actual), _flatten(expected)
    if len(actual) != len(expected):
        raise RuntimeError(f"outputs differ in count: {len(actual)} vs {len(expected)}")
    return max((float((a.detach().double().cpu() - e.detach().double().cpu()).abs().max()) for a, e in zip(actual, expected)),
               default=0.0)


def _max_abs(output: Any) -> float:
    return max((float(t.detach().double().abs().max()) for t in _flatten(output)), default=0.0)


def _cuda_graph_runner(module: nn.Module, inputs: Sequence[torch.Tensor]) -> Callable[[], Any]:
    """Capture ``module(*inputs)`` once; the runner replays it on the captured (static) inputs."""
    static_inputs = [tensor.clone() for tensor in inputs]
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):  # let lazy initialisation (cuDNN plans, allocator) happen before capture
            module(*static_inputs)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_output = module(*static_inputs)

    def replay() -> Any:
        graph.replay()
        return static_output

    # Keep the graph (and its memory pool) and the static inputs alive with the runner: freed
    # inputs would go back to the caching allocator, and replays would read whatever reuses
    # that memory (NaN outputs, or out-of-range token ids and a device-side assert).
    replay.graph = graph
    replay.inputs = static_inputs
    return replay


# --------------------------------------------------------------------------------------------
# Machine description


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "device": device,
        "device_name": torch.cuda.get_device_name(0) if device == "cuda" else _cpu_name(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if device == "cuda":
        major, minor = torch.cuda.get_device_capability(0)
        info["compute_capability"] = f"{major}.{minor}"
    try:
        import torchvision

        info["torchvision"] = torchvision.__version__
    except ImportError:
        info["torchvision"] = None
    return info


def git_info() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    # Only this checkout's own repository: a copy without .git inside another repository (as
    # on the GPU machine) would otherwise report the enclosing repository's commit.
    top = git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != REPO.resolve():
        return {"commit": None, "dirty": None}
    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


# --------------------------------------------------------------------------------------------
# The benchmark


def _die(message: str, code: int = EXIT_USAGE) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks/latency.py",
        description="Latency of eager PyTorch, frozen TorchScript and a poros artifact, side by side.")
    parser.add_argument("--model", choices=("resnet50", "resnet18", "small_cnn", "transformer"), default="small_cnn",
                        help="resnet18/resnet50 come from torchvision (random weights) (default: small_cnn)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="(default: cpu)")
    parser.add_argument("--precision", choices=tuple(DTYPES), default="fp32",
                        help="passed to the build (engines compute in it); eager and TorchScript run in this dtype "
                             "(default: fp32)")
    parser.add_argument("--target", dest="targets", action="append", default=None, metavar="BACKEND",
                        help="engine backend, repeatable in order of preference, as in poros-pack build "
                             "(default: inductor)")
    parser.add_argument("--batch", dest="batches", action="append", type=int, default=None, metavar="N",
                        help="batch size, repeatable (default: 1)")
    parser.add_argument("--iters", type=int, default=100, help="calls per timed block (default: 100)")
    parser.add_argument("--repeats", type=int, default=10, help="timed blocks per variant and batch size (default: 10)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls per variant and batch size first (default: 10)")
    parser.add_argument("--dynamic-batch", action="store_true",
                        help="build one artifact whose batch dim ranges over min..max of --batch "
                             "(default: one static artifact per batch size)")
    parser.add_argument("--image-size", type=int, default=None, help="CNN input height = width (resnet 224, small_cnn 32)")
    parser.add_argument("--seq-len", type=int, default=None, help="transformer sequence length (128)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--no-check", action="store_true", help="skip the build's self-check (not counted otherwise: "
                                                                  "build time includes it, as in poros-pack build)")
    parser.add_argument("--fresh-inductor-cache", action="store_true",
                        help="compile with an empty Inductor/Triton cache (in the temporary folder, removed at "
                             "exit), so the build time is a cold build's; default: torch's usual cache")
    parser.add_argument("--no-cuda-graph", action="store_true",
                        help="on cuda, time neither eager + CUDA graph nor the artifact with cuda_graphs=True")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the .pt and .poros files here (default: a temporary folder, removed at exit)")
    parser.add_argument("--json", type=Path, default=None, help="write every figure as JSON to this path")
    parser.add_argument("--quiet", action="store_true", help="no build progress lines")
    args = parser.parse_args(argv)
    args.targets = args.targets or ["inductor"]
    args.batches = list(dict.fromkeys(args.batches or [1]))
    for name in ("iters", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must be at least 0")
    if any(batch < 1 for batch in args.batches):
        parser.error("--batch must be at least 1")
    return args


def _check_environment(args: argparse.Namespace) -> None:
    if args.device == "cuda" and not torch.cuda.is_available():
        reason = ("this torch is a CPU-only build" if torch.version.cuda is None
                  else "no CUDA device is visible (driver, CUDA_VISIBLE_DEVICES?)")
        _die(f"--device cuda asked for, but CUDA is not available: {reason} "
             f"(torch {torch.__version__}); run on a GPU machine or use --device cpu")
    if args.json is not None and not args.json.parent.exists():
        _die(f"--json {str(args.json)!r}: folder {str(args.json.parent)!r} does not exist")
    if args.workdir is not None and not args.workdir.is_dir():
        _die(f"--workdir {str(args.workdir)!r} is not an existing folder")


def _progress(quiet: bool) -> Callable[[str, str], None]:
    started = time.perf_counter()

    def report(stage: str, detail: str) -> None:
        if not quiet:
            print(f"  [{time.perf_counter() - started:6.1f}s] {stage:<9} {detail}", file=sys.stderr, flush=True)

    return report


def build_artifacts(args, case: ModelCase, model_path: Path, workdir: Path) -> list[dict[str, Any]]:
    """One artifact per batch size, or one covering all of them with ``--dynamic-batch``."""
    from packager.build import BuildOptions, build
    from packager.spec import parse_input_spec

    if args.dynamic_batch:
        low, high = min(args.batches), max(args.batches)
        plans = [(list(args.batches), str(low) if low == high else f"{low}..{high}")]
    else:
        plans = [([batch], str(batch)) for batch in args.batches]
    artifacts = []
    for batches, batch_dim in plans:
        specs = case.input_spec(batch_dim)
        output = workdir / f"{case.name}.{args.precision}.b{batch_dim.replace('..', '-')}.poros"
        options = BuildOptions(inputs=[parse_input_spec(spec) for spec in specs], device=args.device,
                               target=list(args.targets), precision=args.precision, self_check=not args.no_check)
        print(f"building {output.name} (--input {' '.join(specs)}, --target {' --target '.join(args.targets)}, "
              f"--precision {args.precision}) ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        report = build(model_path, output, options, progress=_progress(args.quiet))
        seconds = time.perf_counter() - started
        check = report.self_check
        artifacts.append({
            "path": output,
            "batches": batches,
            "input_specs": specs,
            "build_seconds": round(seconds, 3),
            "bytes": output.stat().st_size,
            "segments": len(report.segments),
            "engine_ops": sum(segment["node_count"] for segment in report.segments),
            "glue_nodes": len(report.fallback_nodes),
            "self_check": None if check is None else {k: check.get(k) for k in ("passed", "relative_error", "tolerance", "skipped")},
        })
    return artifacts


def _sample_stats(samples: list[float]) -> dict[str, Any]:
    return {"median_ms": statistics.median(samples), "p90_ms": _percentile(samples, 0.9),
            "min_ms": min(samples), "samples_ms": samples}


def measure(args, case: ModelCase, model_path: Path, artifacts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    import poros_runtime

    device, dtype, cuda = args.device, DTYPES[args.precision], args.device == "cuda"
    reference = case.module.to(device)  # fp32, for the error of low-precision runs
    eager = copy.deepcopy(case.module).to(device=device, dtype=dtype).eval()
    scripted = torch.jit.load(str(model_path), map_location=device).to(dtype).eval()
    frozen = torch.jit.freeze(scripted)

    def cast(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        return [t.to(dtype) if t.is_floating_point() else t for t in tensors]

    graphs = cuda and not args.no_cuda_graph
    results = []
    for artifact in artifacts:
        poros = poros_runtime.load(artifact["path"], device=device)
        artifact["plan"] = [{"segment": step["segment"], "backend": step["backend"], "reason": step["reason"]}
                            for step in poros.plan]
        # A second load of the same artifact, replaying CUDA graphs (one per batch size).
        poros_graph = poros_runtime.load(artifact["path"], device=device, cuda_graphs=True) if graphs else None
        for batch in artifact["batches"]:
            inputs = case.make_inputs(batch, device)   # the model's dtypes: what the artifact takes
            low = cast(inputs)                         # the same values in the benchmark dtype
            runners: dict[str, Callable[[], Any]] = {
                "eager": lambda: eager(*low),
                "torchscript": lambda: frozen(*low),
                "poros": lambda: poros(*inputs),
            }
            if poros_graph is not None:
                runners["poros_graph"] = lambda: poros_graph(*inputs)
            with torch.no_grad():
                if graphs:
                    runners["cuda_graph"] = _cuda_graph_runner(eager, low)
                outputs = {}
                for name, run in runners.items():
                    for _ in range(args.warmup):
                        run()
                    outputs[name] = run()
                if cuda:
                    torch.cuda.synchronize()
                samples: dict[str, list[float]] = {name: [] for name in runners}
                for _ in range(args.repeats):
                    for name, run in runners.items():  # take turns block by block
                        samples[name].append(_time_block(run, args.iters, cuda))
                expected32 = reference(*inputs) if dtype != torch.float32 else None
            latency = {name: _sample_stats(values) for name, values in samples.items()}
            poros_median = latency["poros"]["median_ms"]
            errors = {f"{name}_vs_eager": _max_abs_error(outputs[name], outputs["eager"])
                      for name in runners if name != "eager"}
            if dtype != torch.float32:
                errors["poros_vs_fp32_eager"] = _max_abs_error(outputs["poros"], expected32)
                errors["eager_vs_fp32_eager"] = _max_abs_error(outputs["eager"], expected32)
            results.append({
                "batch": batch,
                "artifact": artifacts.index(artifact),
                "latency": latency,
                "ratio": {
                    "poros/eager": poros_median / latency["eager"]["median_ms"],
                    "poros/torchscript": poros_median / latency["torchscript"]["median_ms"],
                    **({"poros/cuda_graph": poros_median / latency["cuda_graph"]["median_ms"]}
                       if "cuda_graph" in latency else {}),
                    **({"poros_graph/eager": latency["poros_graph"]["median_ms"] / latency["eager"]["median_ms"],
                        "poros_graph/poros": latency["poros_graph"]["median_ms"] / poros_median,
                        "poros_graph/cuda_graph": latency["poros_graph"]["median_ms"] / latency["cuda_graph"]["median_ms"]}
                       if "poros_graph" in latency else {}),
                },
                "max_abs_error": errors,
                "max_abs_output": _max_abs(outputs["eager"]),
                "throughput_per_s": {name: batch * 1e3 / stats["median_ms"] for name, stats in latency.items()},
            })
        if poros_graph is not None:
            # What the runtime did: shapes captured, replays, and why not, if a capture failed
            # (then poros_graph timed plain calls).
            artifact["cuda_graphs"] = poros_graph.cuda_graphs
    return results


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


def print_report(report: dict[str, Any]) -> None:
    machine, config = report["machine"], report["config"]
    print(f"machine   {machine['device_name']} ({machine['device']}), {machine['cpu_count']} CPUs, "
          f"{machine['torch_threads']} torch threads; torch {machine['torch']}, Python {machine['python']}")
    print(f"model     {config['model']}  precision {config['precision']}  targets {' + '.join(config['targets'])}  "
          f"{'dynamic batch' if config['dynamic_batch'] else 'one artifact per batch'}")
    print(f"timing    median and p90 of {config['repeats']} blocks of {config['iters']} calls "
          f"(after {config['warmup']} warm-up calls), ms per call")
    for index, artifact in enumerate(report["artifacts"]):
        backends = ", ".join(f"{step['segment']}:{step['backend']}" for step in artifact.get("plan", []))
        print(f"artifact  #{index} --input {' '.join(artifact['input_specs'])}: built in {artifact['build_seconds']:.1f}s, "
              f"{_size(artifact['bytes'])}, {artifact['segments']} engine segment(s), {artifact['glue_nodes']} glue node(s)"
              f"{'; runs ' + backends if backends else ''}")
        graphs = artifact.get("cuda_graphs")
        if graphs:
            disabled = graphs["disabled"]
            print(f"          cuda_graphs=True: {graphs['captures']} capture(s), {graphs['replays']} replays, "
                  f"{graphs['eager_calls']} calls without a graph"
                  f"{'; capture failed, so poros_graph timed plain calls: ' + disabled['reason'] if disabled else ''}")
    names = [name for name in VARIANTS if any(name in r["latency"] for r in report["results"])]
    graph_ratio = any("poros_graph/eager" in r["ratio"] for r in report["results"])
    headers = (["batch"] + [f"{name} med / p90" for name in names] + ["poros/eager", "poros/ts"]
               + (["graph/eager"] if graph_ratio else []) + ["max|poros-eager|"])
    rows = []
    for result in report["results"]:
        row = [str(result["batch"])]
        for name in names:
            stats = result["latency"].get(name)
            row.append(f"{stats['median_ms']:.3f} / {stats['p90_ms']:.3f}" if stats else "-")
        row += [f"{result['ratio']['poros/eager']:.2f}x", f"{result['ratio']['poros/torchscript']:.2f}x"]
        if graph_ratio:
            ratio = result["ratio"].get("poros_graph/eager")
            row.append("-" if ratio is None else f"{ratio:.2f}x")
        row.append(f"{result['max_abs_error']['poros_vs_eager']:.2e}")
        rows.append(row)
    widths = [max(len(header), *(len(row[i]) for row in rows)) for i, header in enumerate(headers)]
    print()
    print("  ".join(header.rjust(width) for header, width in zip(headers, widths)))
    print("  ".join("-" * width for width in widths))
    for row in rows:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths)))
    if config["precision"] != "fp32":
        print("(errors vs fp32 eager: " + ", ".join(
            f"batch {r['batch']}: poros {r['max_abs_error']['poros_vs_fp32_eager']:.2e}, "
            f"eager {r['max_abs_error']['eager_vs_fp32_eager']:.2e}" for r in report["results"]) + ")")


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = machine_info(args.device)  # before the work, so the load average is the background load
    case = make_case(args.model, image_size=args.image_size, seq_len=args.seq_len)
    with tempfile.TemporaryDirectory(prefix="poros-bench-") as temporary:
        workdir = args.workdir or Path(temporary)
        if args.fresh_inductor_cache:
            # Read by Inductor (and Triton) whenever they look for their cache; nothing of torch's
            # compiler has been imported yet in this process, so no cached path is stale.
            cache = Path(temporary) / "inductor-cache"
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache)
            os.environ["TRITON_CACHE_DIR"] = str(cache / "triton")
        model_path = workdir / f"{case.name}.pt"
        example = case.make_inputs(max(2, min(args.batches)), "cpu")
        with torch.no_grad():
            torch.jit.save(torch.jit.trace(case.module, tuple(example)), str(model_path))
        artifacts = build_artifacts(args, case, model_path, workdir)
        print("measuring ...", file=sys.stderr, flush=True)
        results = measure(args, case, model_path, artifacts)
    for artifact in artifacts:
        artifact["path"] = str(artifact["path"]) if args.workdir else artifact["path"].name
    return {
        "schema": SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": shlex.join([sys.executable, *sys.argv]),
        "git": git_info(),
        "machine": machine,
        "config": {
            "model": args.model, "device": args.device, "precision": args.precision, "targets": args.targets,
            "batches": args.batches, "iters": args.iters, "repeats": args.repeats, "warmup": args.warmup,
            "dynamic_batch": args.dynamic_batch, "self_check": not args.no_check,
            "fresh_inductor_cache": args.fresh_inductor_cache,
            "input_shapes": [[*shape] for shape, _, _ in case.inputs],
            "input_dtypes": [str(dtype).removeprefix("torch.") for _, dtype, _ in case.inputs],
            "cuda_graph": args.device == "cuda" and not args.no_cuda_graph,
        },
        "artifacts": artifacts,
        "results": results,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    _check_environment(args)
    # TorchScript is the glue format by design (torch >=2.13 marks it deprecated); torch's
    # own pytree internals warn during export. Neither says anything about the figures.
    warnings.filterwarnings("ignore", message=r"`torch\.jit", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    _import_project()
    try:
        from packager.errors import PorosError
        import poros_runtime  # noqa: F401
    except ImportError as error:
        _die(f"cannot import the project ({error}); install it with "
             "pip install -e ./artifact_format -e ./runtime_min -e . (from the repository root)")

    try:
        report = run(args)
    except PorosError as error:
        print(f"error: the build or load failed: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print_report(report)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
