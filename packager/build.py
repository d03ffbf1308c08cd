"""The build pipeline: model file -> IR -> lowering -> partition -> engines + glue -> .poros.

``build()`` is what ``poros-pack build`` calls. Each stage reports progress through a callback;
nothing is written at the output path unless every stage, including the self-check (the artifact
is loaded with the runtime and compared with the original model), succeeds.

Several targets (``--target tensorrt-rtx --target inductor``) give each engine segment one
variant per target, stored as ``engines/<segment>.<backend>.<ext>`` in the order given, which is
the runtime's order of preference.  Partitioning uses one capability for all of them: a node
goes into an engine segment only if *every* target supports it, so every variant of a segment
computes the same subgraph with the same boundaries and the glue can call any of them.  The
price: a node only one target supports stays in the glue.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
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

__all__ = ["BuildOptions", "BuildReport", "build", "known_targets", "DEVICES", "PRECISIONS", "random_inputs", "flatten_tensors"]

# The target that packages the whole model as glue; it excludes every engine target.
TORCHSCRIPT_TARGET = "torchscript"
# Member file extension per backend; a backend may also say so with a ``member_extension``.
_MEMBER_EXTENSIONS = {"inductor": "pt2", "tensorrt": "plan", "tensorrt-rtx": "plan"}
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
    # One target name or several, in order of preference (each segment gets one variant each).
    target: str | Sequence[str] = "inductor"
    precision: str = "fp32"
    min_segment_size: int = 1
    fallback_ops: Sequence[str] = ()
    self_check: bool = True

    @property
    def targets(self) -> tuple[str, ...]:
        return (self.target,) if isinstance(self.target, str) else tuple(self.target)


def known_targets() -> tuple[str, ...]:
    """Every ``--target`` name: the registered engine backends, then ``torchscript``."""
    from packager.backends import default_registry

    return (*default_registry.names(), TORCHSCRIPT_TARGET)


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
    targets = options.targets
    if not targets:
        raise UsageError("give at least one --target")
    for target in targets:
        if target not in known_targets():
            raise UsageError(f"unknown --target {target!r}; known targets: {', '.join(known_targets())}")
    if len(set(targets)) != len(targets):
        raise UsageError(f"--target {' '.join(targets)}: each target may be given once")
    if TORCHSCRIPT_TARGET in targets and len(targets) > 1:
        raise UsageError("--target torchscript packages the whole model as glue and cannot be combined with engine targets")
    if options.device not in DEVICES:
        raise UsageError(f"unknown --device {options.device!r}; choose one of {', '.join(DEVICES)}")
    if options.precision not in PRECISIONS:
        raise UsageError(f"unknown --precision {options.precision!r}; choose one of {', '.join(PRECISIONS)}")
    if options.min_segment_size < 1:
        raise UsageError("--min-segment-size must be at least 1")
    if not options.inputs and _source_format(model) == "torchscript":
        raise UsageError("at least one --input SPEC is needed (one per forward argument), e.g. --input 1..8x3x224x224:float32")
    for op in options.fallback_ops:
        if "::" not in op:
            raise UsageError(f"--fallback-op {op!r}: give a schema-qualified op name such as aten::{op}")
    if options.device == "cuda" and not torch.cuda.is_available() and _targets_needing_the_device(targets):
        needing = ", ".join(_targets_needing_the_device(targets))
        raise UsageError(f"--device cuda needs a CUDA GPU on the build machine ({needing} compiles for the GPU it sees); build on a GPU host or use --device cpu")
    if options.device == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        raise UsageError("--device xpu needs an Intel XPU on the build machine; build on an XPU host or use --device cpu")
    _check_targets_installed(targets)


def _check_targets_installed(targets: Sequence[str]) -> None:
    """A target whose library is missing is an error before anything is imported: without it
    every node would be refused and the artifact would hold no engine of that target."""
    from packager.backends import get_backend

    for target in targets:
        if target == TORCHSCRIPT_TARGET:
            continue
        check = getattr(get_backend(target), "check_installed", None)
        if check is not None:
            try:
                check()
            except BackendError as error:
                raise BackendError(f"--target {target}: {error}") from error


def _targets_needing_the_device(targets: Sequence[str]) -> list[str]:
    """Targets that compile for a GPU present on the build machine (a backend that builds without
    one, like TensorRT-RTX, says so with ``builds_without_device = True``)."""
    from packager.backends import get_backend

    return [target for target in targets if target != TORCHSCRIPT_TARGET
            and not getattr(get_backend(target), "builds_without_device", False)]


def _engine_device(backend: Any, device: str) -> str:
    """The device a backend compiles for: ``--device``, except for backends that build without
    one and whose engines only ever run on their own device type (TensorRT-RTX -> cuda); the
    runtime skips such a variant on a host that cannot run it."""
    device_types = getattr(backend, "device_types", (device,))
    if getattr(backend, "builds_without_device", False) and device.split(":")[0] not in device_types:
        return device_types[0]
    return device


def _member_name(segment_id: str, backend: Any) -> str:
    extension = getattr(backend, "member_extension", None) or _MEMBER_EXTENSIONS.get(backend.name, "bin")
    return f"engines/{segment_id}.{backend.name}.{extension}"


def _capability_of_all(backends: Sequence[Any]):
    """Supported only if every backend supports the node; a refusal names its backend when
    there are several, so ``inspect`` says which target kept the node in the glue."""
    if len(backends) == 1:
        return backends[0].capability

    def capability(node) -> str | None:
        for backend in backends:
            reason = backend.capability(node)
            if reason is not None:
                return f"{backend.name}: {reason}"
        return None

    return capability


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


def flatten_tensors(output: Any) -> list[torch.Tensor]:
    """The tensors of a model output (a tensor, or nested tuples and lists of them), in order."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in flatten_tensors(item)]
    return []


def _as_real64(tensor: torch.Tensor) -> torch.Tensor:
    """float64 on the CPU; a complex tensor as its (real, imaginary) pairs, not its real part."""
    tensor = tensor.detach().cpu()
    return torch.view_as_real(tensor.to(torch.complex128)) if tensor.is_complex() else tensor.double()


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    actual64, expected64 = _as_real64(actual), _as_real64(expected)
    denominator = expected64.norm().item()
    difference = (actual64 - expected64).norm().item()
    return difference / denominator if denominator > 0 else difference


def _source_format(model: Path) -> str:
    """``onnx`` for ``*.onnx`` files, else ``torchscript`` (whose front end names other formats)."""
    return "onnx" if model.suffix.lower() == ".onnx" else "torchscript"


def _reference_runner(model: Path, source_format: str, input_names: Sequence[str], device: str):
    """The original model as a callable on torch tensors: TorchScript itself, or the ONNX
    reference evaluator (``onnx.reference``, exact but slow: fine for a self-check)."""
    if source_format == "torchscript":
        return torch.jit.load(str(model), map_location=device).eval()
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(str(model))

    def run(*inputs: torch.Tensor):
        feeds = {name: tensor.detach().cpu().numpy() for name, tensor in zip(input_names, inputs)}
        outputs = [torch.from_numpy(array).to(device) for array in evaluator.run(None, feeds)]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    return run


def _specs_from_graph(graph: Graph) -> list[InputSpec]:
    """Static input specs read off an imported graph (ONNX models with fully static inputs)."""
    specs = []
    for value in graph.inputs:
        type_ = value.type
        if not isinstance(type_, TensorType) or not type_.is_static or type_.dtype is None:
            raise UsageError(f"input {value.name!r} has no static shape in the model; pass --input for every input")
        specs.append(InputSpec.static(type_.shape, type_.dtype))
    return specs


def _self_check(artifact_path: Path, model: Path, options: BuildOptions,
                source_format: str = "torchscript", input_names: Sequence[str] = ()) -> dict[str, Any]:
    """Load the fresh artifact with the runtime and compare it with the original model.

    The runtime loads it as a user would (``strict=False``): each segment runs the first variant
    this host can run, so variants it cannot run (a TensorRT-RTX plan on a CPU host) are not
    checked here; the result's ``plan`` says which ran.  When no variant of some segment can run
    here, or the device is absent, the self-check is skipped and the result says why.
    """
    import poros_runtime
    from poros_runtime.errors import RuntimeCompatError

    try:
        # The build reports the plan itself; the runtime's per-segment log lines would name the
        # staging file, which the user never sees.
        runtime_logger = logging.getLogger("poros_runtime")
        previous_level = runtime_logger.level
        runtime_logger.setLevel(logging.ERROR)
        try:
            loaded = poros_runtime.load(artifact_path, device=options.device, strict=False)
        finally:
            runtime_logger.setLevel(previous_level)
    except RuntimeCompatError as error:
        return {"skipped": f"this host cannot run the artifact ({error})", "passed": None, "plan": []}
    reference = _reference_runner(model, source_format, input_names, options.device)
    errors: dict[str, float] = {}
    sizes = ["opt"] if all(spec.is_static for spec in options.inputs) else ["min", "opt", "max"]
    worst = 0.0
    for size in sizes:
        inputs = random_inputs(options.inputs, device=options.device, sizes=size)
        with torch.no_grad():
            expected = flatten_tensors(reference(*inputs))
            actual = flatten_tensors(loaded(*inputs))
        if len(actual) != len(expected):
            raise BackendError(f"self-check: the artifact returned {len(actual)} tensors, the model {len(expected)}")
        error = max((_relative_error(a, e) for a, e in zip(actual, expected)), default=0.0)
        errors[size] = error
        worst = max(worst, error)
    tolerance = SELF_CHECK_TOLERANCE[options.precision]
    result = {"relative_error": errors, "tolerance": tolerance, "passed": worst <= tolerance, "plan": loaded.plan}
    if worst > tolerance:
        raise BackendError(
            f"self-check failed: the artifact differs from the model by a relative error of {worst:.3g} "
            f"(tolerance {tolerance:g} for {options.precision}); nothing was written. Try --precision fp32, "
            "or --fallback-op for the op you suspect, and please report the model"
        )
    return result


def build(model: str | os.PathLike, output: str | os.PathLike, options: BuildOptions,
          progress: ProgressCallback = _no_progress) -> BuildReport:
    """Package ``model`` (a TorchScript file, or an ``.onnx`` model) into the archive ``output``."""
    from poros_artifact import write_artifact

    from packager.backends import get_backend
    from packager.frontends import import_onnx, import_torchscript
    from packager.glue import build_glue, save_glue
    from packager.lowering import lower
    from packager.segment import all_of, deny_ops, outline, partition

    started = time.perf_counter()
    model, output = Path(model), Path(output)
    _validate(model, output, options)

    source_format = _source_format(model)
    given = ", ".join(str(s) for s in options.inputs) or "shapes from the model"
    progress("import", f"importing {model.name} ({source_format}; {given})")
    if source_format == "onnx":
        graph = import_onnx(model, list(options.inputs) or None, name=model.stem)
        if not options.inputs:
            options = dataclasses.replace(options, inputs=_specs_from_graph(graph))
    else:
        graph = import_torchscript(model, options.inputs, name=model.stem)
    verify(graph)
    node_count = graph.node_count()
    signature = _signature(graph, options.inputs)

    progress("lower", f"lowering {node_count} nodes")
    lowering_report = lower(graph)
    verify(graph)

    engines: dict[str, Graph] = {}
    backends = []
    if options.targets == (TORCHSCRIPT_TARGET,):
        reason = "--target torchscript: the whole model runs as TorchScript glue"
        for node in graph.walk():
            if node.op != "prim::Constant":
                node.meta["fallback_reason"] = reason
    else:
        backends = [get_backend(target) for target in options.targets]
        names = " + ".join(backend.name for backend in backends)
        progress("partition", f"partitioning for {names}" + (" (nodes all of them support)" if len(backends) > 1 else ""))
        capability = all_of(deny_ops(options.fallback_ops), _capability_of_all(backends))
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
            variants = []
            for backend in backends:
                progress("compile", f"compiling {segment_id} with {backend.name} ({len(counted)} nodes) [{index + 1}/{len(engines)}]")
                segment_started = time.perf_counter()
                backend_dir = Path(workdir) / segment_id / backend.name
                backend_dir.mkdir(parents=True)
                variant = backend.compile(segment, device=_engine_device(backend, options.device),
                                          precision=options.precision, workdir=backend_dir)
                member = _member_name(segment_id, backend)
                members[member] = variant.payload
                variants.append({
                    "backend": variant.backend,
                    "member": member,
                    "bytes": len(variant.payload),
                    "requirements": variant.requirements,
                    "compile_seconds": round(time.perf_counter() - segment_started, 3),
                })
            ops: dict[str, int] = {}
            for node in counted:
                ops[node.kind] = ops.get(node.kind, 0) + 1
            segment_entries.append({
                "id": segment_id,
                "node_count": len(counted),
                "ops": dict(sorted(ops.items())),
                "inputs": [_value_entry(v, symbols) for v in segment.inputs],
                "outputs": [_value_entry(v, symbols) for v in segment.outputs],
                "variants": variants,
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
            "source_format": source_format,
            "source_sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
        },
        "device": options.device,
        "build": {
            "targets": list(options.targets),
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
                         fallback_nodes=fallback_nodes, lowering=lowering_report.to_dict())
    staging = output.with_name(f".{output.name}.{os.getpid()}.check")
    try:
        write_artifact(staging, manifest, members)
        if options.self_check:
            progress("check", "loading the artifact with poros_runtime and comparing with the model")
            report.self_check = _self_check(staging, model, options, source_format,
                                             graph.meta.get("input_names") or [v.name for v in graph.inputs])
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
