"""The TensorRT backends: segment -> ONNX (``packager.backends.onnx_emit``) -> TensorRT plan.

Two flavours with one API (DESIGN.md, decision 3):

- ``tensorrt`` (datacenter TensorRT, ``import tensorrt``): building needs the library and an
  NVIDIA GPU on the build host; the plan runs on GPUs of the build GPU's compute capability.
- ``tensorrt-rtx`` (``import tensorrt_rtx``): builds on a CPU-only host; the plan is compiled
  just in time on the RTX-class GPUs it was built for.  By default those are the compute
  capabilities ``tensorrt_rtx.ComputeCapability`` enumerates from 8.0 up (1.7: 8.0, 8.6, 8.9,
  12.0, 12.1; it also lists 7.5, left out because it cannot compile fp32 GEMMs for Turing).
  9.0 (H100/H200) is not among them: TensorRT-RTX refuses those GPUs.

Capability: a node is taken only if the ONNX emitter can emit it and the flavour's ONNX parser
accepts the one-node model emitted for it (the node plus copies of its ``prim::Constant``
inputs; other inputs become graph inputs).  Parser verdicts are cached per op, overload, input
dtypes/ranks, constant non-tensor input values and attrs, so a model pays one probe per
distinct use.

Build: one optimization profile per engine; each dynamic dim's (min, opt, max) comes from
``segment.meta["symbols"]`` (derived expressions such as ``2*s0`` evaluated per role with
``_symbols.evaluate_dim``; every symbol needs a max).  Networks are strongly typed (TensorRT-RTX
has no FP16/BF16 builder flags); ``fp16`` / ``bf16`` cast the emitted ONNX model
(``_tensorrt_precision``), so engine boundaries keep the IR's dtypes.

Not verified here: no machine of this project can *run* these plans (no TensorRT-RTX-capable
GPU; datacenter TensorRT is not installable), so engine execution is untested.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol, Sequence

from packager.backends._symbols import SymbolRange, evaluate_dim, symbol_ranges
from packager.backends._tensorrt_build import FLAVOURS, build_plan, import_library, parser_rejection
from packager.backends.base import CompilingBackend, EngineVariant, tensor_signature
from packager.errors import BackendError, InternalError, UsageError
from packager.ir.graph import Graph, Node, copy_node_into
from packager.ir.types import SymDim, TensorType

__all__ = ["TensorRTBackend", "OnnxEmitter"]

ONNX_OPSET = 17
_LOW_PRECISION = {"fp16": "float16", "bf16": "bfloat16"}
_EMITTER_MODULE = "packager.backends.onnx_emit"


class OnnxEmitter(Protocol):
    """What the backend needs from the IR -> ONNX emitter."""

    def emit_onnx(self, segment: Graph, *, opset: int = ONNX_OPSET) -> Any: ...

    def emission_capability(self, node: Node) -> str | None: ...


class TensorRTBackend(CompilingBackend):
    """``TensorRTBackend("tensorrt")`` or ``TensorRTBackend("tensorrt-rtx")``.

    ``compute_capabilities`` (TensorRT-RTX only) narrows the JIT targets; ``emitter`` replaces
    :mod:`packager.backends.onnx_emit` (tests).
    """

    device_types = ("cuda",)

    def __init__(
        self,
        flavour: str,
        *,
        compute_capabilities: Sequence[str] | None = None,
        version_compatible: bool = False,
        optimization_level: int | None = None,
        emitter: OnnxEmitter | None = None,
    ) -> None:
        flavour = flavour.replace("_", "-")
        if flavour not in FLAVOURS:
            raise UsageError(f"unknown TensorRT flavour {flavour!r}; use one of {', '.join(FLAVOURS)}")
        if compute_capabilities is not None and flavour != "tensorrt-rtx":
            raise UsageError(
                "compute_capabilities applies to tensorrt-rtx only; datacenter TensorRT builds for "
                "the build host's GPU"
            )
        self.flavour = flavour
        # The name is what --target takes and what the manifest records: "tensorrt" or "tensorrt-rtx".
        self.name = flavour.replace("_", "-")
        # TensorRT-RTX builds on any host (no GPU needed); its plans always target NVIDIA GPUs,
        # whatever --device the rest of the artifact is built for.
        self.builds_without_device = flavour == "tensorrt-rtx"
        self.compute_capabilities = tuple(compute_capabilities) if compute_capabilities is not None else None
        self.version_compatible = version_compatible
        self.optimization_level = optimization_level
        self._emitter = emitter
        self._probe_cache: dict[Any, str | None] = {}

    def __repr__(self) -> str:
        return f"TensorRTBackend({self.flavour!r})"

    def check_installed(self) -> None:
        """BackendError (saying what to install) when this flavour's library is missing."""
        import_library(self.flavour)

    # ------------------------------------------------------------- capability
    def capability(self, node: Node) -> str | None:
        emitter = self._load_emitter()
        if emitter is None:
            return "ONNX emission is not available (packager.backends.onnx_emit is not installed)"
        reason = emitter.emission_capability(node)
        if reason is not None:
            return reason
        key = _probe_key(node)
        if key not in self._probe_cache:
            self._probe_cache[key] = self._parser_probe(node, emitter)
        return self._probe_cache[key]

    def _parser_probe(self, node: Node, emitter: OnnxEmitter) -> str | None:
        try:
            trt = import_library(self.flavour)
        except BackendError as error:
            return str(error)
        probe = _one_node_segment(node)
        if isinstance(probe, str):
            return probe
        if not probe.outputs:
            return None  # nothing reaches the parser (e.g. a constant list): the emitter decides
        try:
            model = emitter.emit_onnx(probe, opset=ONNX_OPSET)
        except BackendError as error:
            return f"ONNX emission failed: {error}"
        return parser_rejection(trt, model)

    def _load_emitter(self) -> OnnxEmitter | None:
        if self._emitter is None:
            try:
                module = importlib.import_module(_EMITTER_MODULE)
            except ModuleNotFoundError as error:
                if error.name != _EMITTER_MODULE:
                    raise
                return None
            # A package still being written (no __init__ exports yet) is not an emitter.
            if not all(hasattr(module, api) for api in ("emit_onnx", "emission_capability")):
                return None
            self._emitter = module
        return self._emitter

    # ---------------------------------------------------------------- compile
    def _compile_impl(self, segment: Graph, *, device: str, precision: str, workdir: Path) -> EngineVariant:
        trt = import_library(self.flavour)
        emitter = self._load_emitter()
        if emitter is None:
            raise BackendError(
                f"segment {segment.name!r}: ONNX emission not available ({_EMITTER_MODULE} is not "
                f"installed); the {self.flavour} backend compiles from ONNX"
            )
        capability = self._build_target(segment, device)
        model = emitter.emit_onnx(segment, opset=ONNX_OPSET)
        if precision in _LOW_PRECISION:
            from packager.backends._tensorrt_precision import lower_float_precision

            model = lower_float_precision(model, _LOW_PRECISION[precision])
        return self.compile_onnx(segment, model, precision=precision, build_compute_capability=capability,
                                 trt=trt, workdir=workdir)

    def compile_onnx(self, segment: Graph, model, *, precision: str, build_compute_capability: str | None = None,
                     trt=None, workdir: Path | None = None) -> EngineVariant:
        """Build the plan of ``model`` (already emitted and precision-cast) for ``segment``.

        Network inputs match segment inputs by name, else by position; their profile shapes
        come from the segment's types and symbol ranges.
        """
        trt = trt or import_library(self.flavour)
        ranges = symbol_ranges(segment)
        shapes = _profile_shapes(segment, model, ranges)
        targets = self._compute_capabilities(trt, build_compute_capability)
        try:
            built = build_plan(
                trt, model, input_shapes=shapes,
                compute_capabilities=targets if self.flavour == "tensorrt-rtx" else (),
                version_compatible=self.version_compatible,
                optimization_level=self.optimization_level,
            )
        except BackendError as error:
            hint = (" (version-compatible plans need the lean runtime library, libnvinfer_lean)"
                    if self.version_compatible else "")
            raise BackendError(f"segment {segment.name!r}: {error}{hint}") from error
        if workdir is not None:
            (Path(workdir) / f"{_file_stem(segment.name)}.{self.name}.plan").write_bytes(built.plan)
        return EngineVariant(
            backend=self.name,
            payload=built.plan,
            requirements={
                "device_type": "cuda",
                "library": self.flavour,
                "library_version": trt.__version__,
                "compute_capabilities": targets,
                "version_compatible": self.version_compatible,
                "builder_options": {
                    "strongly_typed": True,
                    "precision": precision,
                    "tf32": True,
                    "optimization_level": self.optimization_level,
                    "onnx_opset": ONNX_OPSET,
                },
                "torch": None,
            },
            meta={
                "build_seconds": round(built.build_seconds, 3),
                "precision": precision,
                "onnx_parser_version": trt.get_nv_onnx_parser_version(),
                "engine_inputs": built.input_names,
                "engine_outputs": built.output_names,
                "profile": built.profile,
                "inputs": tensor_signature(segment.inputs, ranges),
                "outputs": tensor_signature(segment.outputs, ranges),
                "builder_warnings": built.warnings,
            },
        )

    def _build_target(self, segment: Graph, device: str) -> str | None:
        """Datacenter TensorRT: the build GPU's compute capability (BackendError without one)."""
        if self.flavour != "tensorrt":
            return None
        import torch

        if not torch.cuda.is_available():
            raise BackendError(
                f"segment {segment.name!r}: the tensorrt backend needs an NVIDIA GPU on the build "
                f"host and this one has none usable (device {device!r}); build on a GPU machine, or "
                "use --target tensorrt-rtx, which builds on CPU"
            )
        torch_device = torch.device(device)
        major, minor = torch.cuda.get_device_capability(torch_device)
        return f"{major}.{minor}"

    def _compute_capabilities(self, trt, build_compute_capability: str | None) -> list[str]:
        if self.flavour == "tensorrt":
            if build_compute_capability is None:
                raise InternalError("datacenter TensorRT builds need the build GPU's compute capability")
            return [build_compute_capability]
        from packager.backends._tensorrt_build import default_compute_capabilities, supported_compute_capabilities

        known = supported_compute_capabilities(trt)
        if self.compute_capabilities is None:
            return default_compute_capabilities(trt)
        unknown = [c for c in self.compute_capabilities if c not in known]
        if unknown:
            raise BackendError(
                f"{trt.__name__} {trt.__version__} cannot target compute capabilities {unknown}; "
                f"it knows {known}"
            )
        return list(self.compute_capabilities)


def _profile_shapes(segment: Graph, model, ranges: dict[str, SymbolRange]) -> dict[str, tuple]:
    """(min, opt, max) per ONNX graph input, from the segment input it stands for."""
    onnx_inputs = [value.name for value in model.graph.input
                   if value.name not in {init.name for init in model.graph.initializer}]
    if len(onnx_inputs) != len(segment.inputs):
        raise BackendError(
            f"segment {segment.name!r}: the emitted ONNX model has {len(onnx_inputs)} inputs, the "
            f"segment {len(segment.inputs)}; the emitter must keep one graph input per segment input"
        )
    by_name = {value.name: value for value in segment.inputs}
    names_match = all(name in by_name for name in onnx_inputs)
    shapes = {}
    for position, name in enumerate(onnx_inputs):
        value = by_name[name] if names_match else segment.inputs[position]
        assert isinstance(value.type, TensorType) and value.type.shape is not None
        if all(not isinstance(dim, SymDim) for dim in value.type.shape):
            continue
        per_role = []
        for role in ("min", "opt", "max"):
            sizes = {}
            for symbol, symbol_range in ranges.items():
                size = getattr(symbol_range, role)
                if size is None:
                    raise BackendError(
                        f"segment {segment.name!r}: symbol {symbol!r} has no max; TensorRT "
                        "optimization profiles need one (give --input ranges with a max)"
                    )
                sizes[symbol] = size
            per_role.append(tuple(
                evaluate_dim(dim.expr, sizes) if isinstance(dim, SymDim) else int(dim)
                for dim in value.type.shape
            ))
        shapes[name] = tuple(per_role)
    return shapes


def _one_node_segment(node: Node) -> Graph | str:
    """A segment holding only ``node``: constant inputs copied, typed tensors as graph inputs."""
    graph = Graph(f"probe_{node.op.replace('::', '_')}")
    graph.meta["symbols"] = dict(node.graph.meta.get("symbols") or {}) if node.owner is not None else {}
    mapping: dict[int, Any] = {}
    for value in node.inputs:
        if id(value) in mapping:
            continue
        producer = value.producer
        if producer is not None and producer.op == "prim::Constant":
            copy_node_into(producer, graph.block, mapping)
        elif isinstance(value.type, TensorType) and value.type.dtype and value.type.shape is not None:
            mapping[id(value)] = graph.add_input(value.type, value.name)
        else:
            return (
                f"input %{value.name} ({value.type}) is neither a constant nor a typed tensor, so "
                "the TensorRT parser cannot be probed for this node"
            )
    try:
        copied = copy_node_into(node, graph.block, mapping)
    except InternalError:
        return "the node uses values from an enclosing block, so it cannot be probed on its own"
    graph.block.set_returns([v for v in copied.outputs if isinstance(v.type, TensorType)])
    return graph


def _probe_key(node: Node) -> tuple:
    inputs = []
    for value in node.inputs:
        producer = value.producer
        if isinstance(value.type, TensorType):
            rank = None if value.type.shape is None else len(value.type.shape)
            inputs.append(("tensor", value.type.dtype, rank))
        elif producer is not None and producer.op == "prim::Constant":
            inputs.append(("constant", repr(producer.attrs.get("value"))))
        else:
            inputs.append(("value", str(value.type)))
    outputs = tuple(str(v.type) for v in node.outputs)
    attrs = tuple(sorted((k, repr(v)) for k, v in node.attrs.items()))
    return (node.op, node.overload, tuple(inputs), outputs, attrs)


def _file_stem(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-." else "_" for c in name) or "segment"
