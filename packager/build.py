"""The build pipeline: model file -> IR -> lowering -> partition -> engines + glue -> .poros.

``build()`` is what ``poros-pack build`` calls. Each stage reports progress through a callback;
nothing is written at the output path unless every stage, including the self-check (the artifact
is loaded with the runtime and compared with the original model), succeeds.
"""

from __future__ import annotations

import hashlib
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

import packager
from packager.errors import BackendError, UsageError
from packager.ir import Graph, ListType, TensorType, TupleType, Value, verify
from packager.ir.types import SymDim
from packager.spec import InputSpec

__all__ = ["BuildOptions", "BuildReport", "build", "TARGETS", "DEVICES", "PRECISIONS", "random_inputs"]

TARGETS = ("inductor", "torchscript")
DEVICES = ("cpu", "cuda", "xpu")
PRECISIONS = ("fp32", "fp16", "bf16")

# Norm-wise relative error ||artifact - original|| / ||original|| accepted by the self-check.
# fp32: Inductor reorders reductions and fuses ops (observed ~1e-6); 1e-3 leaves room for deep
# models. fp16/bf16 engines keep ~3 significant digits per op, compounded over many layers.
SELF_CHECK_TOLERANCE = {"fp32": 1e-3, "fp16": 5e-2, "bf16": 1e-1}

ProgressCallback = Callable[[str, str], None]


@dataclass
class BuildOptions:
    inputs: Sequence[InputSpec]
    device: str = "cpu"
    target: str = "inductor"
    precision: str = "fp32"
    min_segment_size: int = 1
    fallback_ops: Sequence[str] = ()
    self_check: bool = True


@dataclass
class BuildReport:
    output: Path
    node_count: int
    segments: list[dict[str, Any]] = field(default_factory=list)
    fallback_nodes: list[dict[str, str]] = field(default_factory=list)
    lowering: dict[str, Any] = field(default_factory=dict)
    self_check: dict[str, Any] | None = None
    seconds: float = 0.0
    artifact_bytes: int = 0


def _no_progress(stage: str, detail: str) -> None:
    return None


def _validate(model: Path, output: Path, options: BuildOptions) -> None:
    if not model.exists():
        raise UsageError(f"model file {str(model)!r} does not exist; pass the path of a torch.jit.save'd model")
    if model.is_dir():
        raise UsageError(f"{str(model)!r} is a directory; pass the path of a torch.jit.save'd model file")
    if output.resolve() == model.resolve():
        raise UsageError("the output path is the model file itself; choose another -o path")
    if not output.parent.exists():
        raise UsageError(f"output directory {str(output.parent)!r} does not exist; create it first")
    if options.target not in TARGETS:
        raise UsageError(f"unknown --target {options.target!r}; choose one of {', '.join(TARGETS)}")
    if options.device not in DEVICES:
        raise UsageError(f"unknown --device {options.device!r}; choose one of {', '.join(DEVICES)}")
    if options.precision not in PRECISIONS:
        raise UsageError(f"unknown --precision {options.precision!r}; choose one of {', '.join(PRECISIONS)}")
    if options.min_segment_size < 1:
        raise UsageError("--min-segment-size must be at least 1")
    if not options.inputs:
        raise UsageError("at least one --input SPEC is needed (one per forward argument), e.g. --input 1..8x3x224x224:float32")
    for op in options.fallback_ops:
        if "::" not in op:
            raise UsageError(f"--fallback-op {op!r}: give a schema-qualified op name such as aten::{op}")
    if options.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda needs a CUDA GPU on the build machine (AOTInductor compiles for the GPU it sees); build on a GPU host or use --device cpu")
    if options.device == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        raise UsageError("--device xpu needs an Intel XPU on the build machine; build on an XPU host or use --device cpu")


def _dims_to_manifest(shape, symbols: dict[str, dict[str, int]]) -> list:
    dims: list[Any] = []
    for dim in shape:
        if isinstance(dim, SymDim):
            entry: dict[str, Any] = {"symbol": dim.expr}
            if dim.expr in symbols:
                entry.update(symbols[dim.expr])
            dims.append(entry)
        else:
            dims.append(int(dim))
    return dims


def _output_entries(value_type, symbols) -> tuple[list[dict], Any]:
    """Flatten the graph's output type into signature entries plus the nested structure."""
    entries: list[dict] = []

    def visit(type_) -> Any:
        if isinstance(type_, TensorType):
            entry = {"name": f"output{len(entries)}", "dtype": type_.dtype}
            if type_.shape is not None:
                entry["dims"] = _dims_to_manifest(type_.shape, symbols)
            entries.append(entry)
            return "tensor"
        if isinstance(type_, TupleType):
            return [visit(element) for element in type_.elements]
        if isinstance(type_, ListType):
            return {"list": str(type_.element)}
        return str(type_)

    structure = visit(value_type)
    return entries, structure


def _signature(graph: Graph, specs: Sequence[InputSpec]) -> dict[str, Any]:
    symbols = graph.meta.get("symbols", {})
    names = graph.meta.get("input_names") or [v.name for v in graph.inputs]
    inputs = []
    for name, value, spec in zip(names, graph.inputs, specs, strict=True):
        shape = value.type.shape if isinstance(value.type, TensorType) and value.type.shape is not None else ()
        inputs.append({"name": name, "dtype": spec.dtype, "dims": _dims_to_manifest(shape, symbols)})
    outputs: list[dict] = []
    structures = []
    for value in graph.outputs:
        entries, structure = _output_entries(value.type, symbols)
        for entry in entries:
            entry["name"] = f"output{len(outputs)}"
            outputs.append(entry)
        structures.append(structure)
    structure = structures[0] if len(structures) == 1 else structures
    return {"inputs": inputs, "outputs": outputs, "output_structure": structure}


def random_inputs(specs: Sequence[InputSpec], *, device: str = "cpu", seed: int = 0, sizes: str = "opt") -> list[torch.Tensor]:
    """Inputs matching ``specs`` (at each dim's opt, min or max size): normal floats, small ints."""
    generator = torch.Generator().manual_seed(seed)
    tensors = []
    for spec in specs:
        shape = [getattr(dim, sizes) for dim in spec.dims]
        dtype = getattr(torch, spec.dtype)
        if dtype.is_floating_point or dtype.is_complex:
            tensor = torch.randn(shape, generator=generator).to(dtype)
        elif dtype == torch.bool:
            tensor = torch.rand(shape, generator=generator) > 0.5
        else:
            # Small non-negative ints stay valid as indices (embeddings, gathers) for any table.
            tensor = torch.randint(0, 2, shape, generator=generator, dtype=dtype)
        tensors.append(tensor.to(device))
    return tensors


def _flatten(output: Any) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in _flatten(item)]
    return []


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    actual64, expected64 = actual.detach().double().cpu(), expected.detach().double().cpu()
    if expected64.is_complex() or actual64.is_complex():
        actual64, expected64 = torch.view_as_real(actual64.cfloat()).double(), torch.view_as_real(expected64.cfloat()).double()
    denominator = expected64.norm().item()
    difference = (actual64 - expected64).norm().item()
    return difference / denominator if denominator > 0 else difference


def _self_check(artifact_path: Path, model: Path, options: BuildOptions) -> dict[str, Any]:
    """Load the fresh artifact with the runtime and compare it with the original model."""
    import poros_runtime

    reference = torch.jit.load(str(model), map_location=options.device).eval()
    loaded = poros_runtime.load(artifact_path, device=options.device)
    errors: dict[str, float] = {}
    sizes = ["opt"] if all(spec.is_static for spec in options.inputs) else ["min", "opt", "max"]
    worst = 0.0
    for size in sizes:
        inputs = random_inputs(options.inputs, device=options.device, sizes=size)
        with torch.no_grad():
            expected = _flatten(reference(*inputs))
            actual = _flatten(loaded(*inputs))
        if len(actual) != len(expected):
            raise BackendError(f"self-check: the artifact returned {len(actual)} tensors, the model {len(expected)}")
        error = max((_relative_error(a, e) for a, e in zip(actual, expected)), default=0.0)
        errors[size] = error
        worst = max(worst, error)
    tolerance = SELF_CHECK_TOLERANCE[options.precision]
    result = {"relative_error": errors, "tolerance": tolerance, "passed": worst <= tolerance}
    if worst > tolerance:
        raise BackendError(
            f"self-check failed: the artifact differs from the model by a relative error of {worst:.3g} "
            f"(tolerance {tolerance:g} for {options.precision}); nothing was written. Try --precision fp32, "
            "or --fallback-op for the op you suspect, and please report the model"
        )
    return result


def build(model: str | os.PathLike, output: str | os.PathLike, options: BuildOptions,
          progress: ProgressCallback = _no_progress) -> BuildReport:
    """Package ``model`` (a TorchScript file) into the archive ``output``."""
    from poros_artifact import write_artifact

    from packager.backends import get_backend
    from packager.frontends import import_torchscript
    from packager.glue import build_glue, save_glue
    from packager.lowering import lower
    from packager.segment import all_of, deny_ops, outline, partition

    started = time.perf_counter()
    model, output = Path(model), Path(output)
    _validate(model, output, options)

    progress("import", f"importing {model.name} ({', '.join(str(s) for s in options.inputs)})")
    graph = import_torchscript(model, options.inputs, name=model.stem)
    verify(graph)
    node_count = graph.node_count()
    signature = _signature(graph, options.inputs)

    progress("lower", f"lowering {node_count} nodes")
    lowering_report = lower(graph)
    verify(graph)

    engines: dict[str, Graph] = {}
    backend = None
    if options.target == "torchscript":
        reason = "--target torchscript: the whole model runs as TorchScript glue"
        for node in graph.walk():
            if node.op != "prim::Constant":
                node.meta["fallback_reason"] = reason
    else:
        backend = get_backend(options.target)
        progress("partition", f"partitioning for {backend.name}")
        capability = all_of(deny_ops(options.fallback_ops), backend.capability)
        parts = partition(graph, capability, min_segment_size=options.min_segment_size)
        engines = outline(graph, parts)
        verify(graph)

    fallback_nodes = [
        {"node": f"%{node.outputs[0].name}" if node.outputs else node.op, "op": node.kind,
         "reason": node.meta.get("fallback_reason") or _default_reason(node)}
        for node in graph.walk()
        if node.op not in ("prim::Constant", "poros::engine")
    ]

    members: dict[str, bytes] = {}
    segment_entries: list[dict[str, Any]] = []
    symbols = graph.meta.get("symbols", {})
    with tempfile.TemporaryDirectory(prefix="poros-build-") as workdir:
        for index, (segment_id, segment) in enumerate(engines.items()):
            segment.meta["symbols"] = symbols
            counted = [n for n in segment.walk() if n.op != "prim::Constant"]
            progress("compile", f"compiling {segment_id} with {backend.name} ({len(counted)} nodes) [{index + 1}/{len(engines)}]")
            segment_started = time.perf_counter()
            seg_dir = Path(workdir) / segment_id
            seg_dir.mkdir()
            variant = backend.compile(segment, device=options.device, precision=options.precision, workdir=seg_dir)
            member = f"engines/{segment_id}.{variant.backend}.pt2"
            members[member] = variant.payload
            ops: dict[str, int] = {}
            for node in counted:
                ops[node.kind] = ops.get(node.kind, 0) + 1
            segment_entries.append({
                "id": segment_id,
                "node_count": len(counted),
                "ops": dict(sorted(ops.items())),
                "inputs": [_value_entry(v, symbols) for v in segment.inputs],
                "outputs": [_value_entry(v, symbols) for v in segment.outputs],
                "variants": [{
                    "backend": variant.backend,
                    "member": member,
                    "bytes": len(variant.payload),
                    "requirements": variant.requirements,
                    "compile_seconds": round(time.perf_counter() - segment_started, 3),
                }],
            })

    progress("glue", "generating TorchScript glue")
    glue = build_glue(graph, device=options.device)
    members["glue.pt"] = save_glue(glue)
    members["glue_source.py"] = glue.source.encode()

    manifest = {
        "producer": {
            "name": "poros-pack",
            "version": packager.__version__,
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "python": platform.python_version(),
        },
        "model": {
            "name": model.stem,
            "source_format": "torchscript",
            "source_sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
        },
        "device": options.device,
        "build": {
            "target": options.target,
            "precision": options.precision,
            "min_segment_size": options.min_segment_size,
            "fallback_ops": list(options.fallback_ops),
            "inputs": [str(s) for s in options.inputs],
        },
        "signature": signature,
        "glue": {"member": "glue.pt", "source_member": "glue_source.py", "fallback_nodes": fallback_nodes},
        "segments": segment_entries,
    }

    progress("write", f"writing {output}")
    report = BuildReport(output=output, node_count=node_count, segments=segment_entries,
                         fallback_nodes=fallback_nodes, lowering=_report_dict(lowering_report))
    staging = output.with_name(f".{output.name}.{os.getpid()}.check")
    try:
        write_artifact(staging, manifest, members)
        if options.self_check:
            progress("check", "loading the artifact with poros_runtime and comparing with the model")
            report.self_check = _self_check(staging, model, options)
        os.replace(staging, output)
    finally:
        if staging.exists():
            staging.unlink()
    report.artifact_bytes = output.stat().st_size
    report.seconds = time.perf_counter() - started
    return report


def _default_reason(node) -> str:
    if node.op in ("prim::If", "prim::Loop"):
        return "control flow runs in the glue; its blocks are partitioned separately"
    return "not selected for an engine"


def _value_entry(value: Value, symbols) -> dict[str, Any]:
    type_ = value.type
    if isinstance(type_, TensorType):
        entry: dict[str, Any] = {"dtype": type_.dtype}
        if type_.shape is not None:
            entry["dims"] = _dims_to_manifest(type_.shape, symbols)
        return entry
    return {"type": str(type_)}


def _report_dict(report: Any) -> dict[str, Any]:
    if report is None:
        return {}
    if hasattr(report, "to_dict"):
        return report.to_dict()
    if hasattr(report, "__dict__"):
        return {k: v for k, v in vars(report).items() if isinstance(v, (int, float, str, list, dict))}
    return {}

