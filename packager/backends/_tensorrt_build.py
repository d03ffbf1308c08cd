"""ONNX model -> TensorRT network (ONNX parser) -> serialized plan, for both TensorRT flavours.

Works on ``onnx.ModelProto`` only; it knows nothing of the IR, so it is testable with
hand-made models.  The TensorRT module is passed in (``tensorrt`` or ``tensorrt_rtx``: the
Python APIs used here are the same in both).  Networks are always created strongly typed
(TensorRT-RTX has no other kind); low precision is a rewrite of the model
(:mod:`packager.backends._tensorrt_precision`).

Messages the library logs at warning level or worse are collected, so that a failed parse or
build says why in the :class:`BackendError` instead of only on stderr.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from packager.errors import BackendError

__all__ = [
    "FLAVOURS", "PlanBuild", "ProfileShapes", "build_plan", "import_library", "parse_onnx",
    "parser_rejection",
]

# flavour -> (import name, distribution to install, what the flavour needs to build)
FLAVOURS = {
    "tensorrt": ("tensorrt", "tensorrt", "TensorRT and an NVIDIA GPU on the build host"),
    "tensorrt-rtx": ("tensorrt_rtx", "tensorrt-rtx-cu13", "TensorRT-RTX (builds on a CPU-only host)"),
}


def import_library(flavour: str):
    """The TensorRT module of ``flavour``, or a BackendError saying how to get it."""
    module_name, distribution, needs = FLAVOURS[flavour]
    try:
        return __import__(module_name)
    except ImportError as error:
        hint = (
            " Datacenter TensorRT cannot be installed on this host; build on a GPU machine with "
            "TensorRT, or use --target tensorrt-rtx, which builds on CPU."
            if flavour == "tensorrt" else ""
        )
        raise BackendError(
            f"the {flavour} backend needs {needs}, but the Python module {module_name!r} is not "
            f"installed here ({error}). Install {distribution!r}.{hint}"
        ) from error


# (min, opt, max) shapes of one network input.
ProfileShapes = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]


@dataclass
class PlanBuild:
    """A built plan and what the build knew about it (all JSON-friendly except ``plan``)."""

    plan: bytes
    input_names: list[str]
    output_names: list[str]
    profile: dict[str, dict[str, list[int]]]
    build_seconds: float
    warnings: list[str] = field(default_factory=list)


_LOGGERS: dict[str, Any] = {}


def _collecting_logger(trt):
    """One logger per TensorRT module for the whole process: TensorRT keeps the first logger it
    is given and ignores (with a warning) any other.  Callers read the messages logged after
    they started (``len(logger.messages)`` before, slice after)."""
    if trt.__name__ not in _LOGGERS:
        _LOGGERS[trt.__name__] = _new_collecting_logger(trt)
    return _LOGGERS[trt.__name__]


def _new_collecting_logger(trt):
    class CollectingLogger(trt.ILogger):
        """Keeps warnings and errors for our messages instead of printing them."""

        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages: list[str] = []

        def log(self, severity, message) -> None:
            # "Thread context has not been set" is logged as fatal by TensorRT-RTX on every call
            # from Python and means nothing to the user.
            if severity <= trt.ILogger.WARNING and "Thread context has not been set" not in message:
                self.messages.append(f"{severity.name}: {message}")

    return CollectingLogger()


def parse_onnx(trt, model) -> tuple[Any, Any, Any, Any]:
    """``(logger, builder, network, parser)`` for ``model``; BackendError with the parser's
    errors if it does not parse."""
    logger = _collecting_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model.SerializeToString()):
        raise BackendError(
            f"the {trt.__name__} ONNX parser rejected the model: {_parser_errors(parser)}. Keep the "
            "op it names in the glue (the partitioner's fallback_ops), or use another backend."
        )
    return logger, builder, network, parser


def parser_rejection(trt, model) -> str | None:
    """``None`` if the parser takes ``model``, else the parser's reason (a sentence)."""
    logger = _collecting_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if parser.parse(model.SerializeToString()):
        return None
    return f"the {trt.__name__} ONNX parser rejects it: {_parser_errors(parser)}"


def _parser_errors(parser) -> str:
    errors = []
    for index in range(parser.num_errors):
        error = parser.get_error(index)
        where = f"{error.node_operator()} (node {error.node()}): " if error.node_operator() else ""
        description = error.desc()
        if description in ("", "false"):
            # The parser's op checkers report a bare "false" for ops they do not implement.
            description = "unsupported operator or attribute combination"
        errors.append(f"{where}{description}")
    return "; ".join(errors) or "no reason given"


def build_plan(
    trt,
    model,
    *,
    input_shapes: Mapping[str, ProfileShapes],
    compute_capabilities: Sequence[str] = (),
    version_compatible: bool = False,
    tf32: bool = True,
    optimization_level: int | None = None,
) -> PlanBuild:
    """Parse ``model`` and build one serialized plan with one optimization profile.

    ``input_shapes`` gives (min, opt, max) for every network input that has a dynamic dim
    (static inputs may be given too; they are checked).  ``compute_capabilities`` ("8.6", ...)
    are TensorRT-RTX build targets; empty means the library's default.
    """
    started = time.perf_counter()
    logger, builder, network, _ = parse_onnx(trt, model)
    first_message = len(logger.messages)
    config = builder.create_builder_config()
    input_names = [network.get_input(i).name for i in range(network.num_inputs)]
    output_names = [network.get_output(i).name for i in range(network.num_outputs)]
    profile_record: dict[str, dict[str, list[int]]] = {}
    profile = builder.create_optimization_profile()
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        dims = tuple(tensor.shape)
        shapes = input_shapes.get(tensor.name)
        if shapes is None:
            if any(d < 0 for d in dims):
                raise BackendError(
                    f"network input {tensor.name!r} has dynamic shape {dims} but no (min, opt, max) "
                    "shapes were given; every dynamic dim needs a range"
                )
            continue
        for role, shape in zip(("min", "opt", "max"), shapes):
            if len(shape) != len(dims) or any(d >= 0 and d != s for d, s in zip(dims, shape)):
                raise BackendError(
                    f"network input {tensor.name!r}: the {role} profile shape {tuple(shape)} does not "
                    f"match the network's shape {dims} (-1 = dynamic)"
                )
        profile.set_shape(tensor.name, *shapes)
        profile_record[tensor.name] = {role: list(s) for role, s in zip(("min", "opt", "max"), shapes)}
    if profile_record:
        config.add_optimization_profile(profile)
    if compute_capabilities:
        config.num_compute_capabilities = len(compute_capabilities)
        for index, capability in enumerate(compute_capabilities):
            member = getattr(trt.ComputeCapability, "SM" + capability.replace(".", ""), None)
            if member is None or not config.set_compute_capability(member, index):
                raise BackendError(
                    f"{trt.__name__} {trt.__version__} cannot build for compute capability "
                    f"{capability}; it knows {supported_compute_capabilities(trt)}"
                )
    if version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if not tf32:
        config.clear_flag(trt.BuilderFlag.TF32)
    if optimization_level is not None:
        config.builder_optimization_level = optimization_level
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(
            f"{trt.__name__} {trt.__version__} could not build the engine: "
            f"{'; '.join(logger.messages[first_message:]) or 'no message logged'}"
        )
    plan = bytes(memoryview(serialized))
    return PlanBuild(
        plan=plan,
        input_names=input_names,
        output_names=output_names,
        profile=profile_record,
        build_seconds=time.perf_counter() - started,
        warnings=logger.messages[first_message:],
    )


def supported_compute_capabilities(trt) -> list[str]:
    """Compute capabilities TensorRT-RTX can target, as the library enumerates them
    (1.7: ``ComputeCapability.SM75`` ... ``SM121``; ``NONE`` / ``CURRENT`` are not targets)."""
    capabilities = []
    for name, member in trt.ComputeCapability.__members__.items():
        if name.startswith("SM"):
            value = int(member)
            capabilities.append((value // 10, value % 10))
    return [f"{major}.{minor}" for major, minor in sorted(capabilities)]


def default_compute_capabilities(trt) -> list[str]:
    """The targets a TensorRT-RTX build uses unless told otherwise: every enumerated capability
    from 8.0 (Ampere) up.  7.5 (Turing) is left out because tensorrt_rtx 1.7 cannot compile
    float32 GEMMs for it ("Cannot compile operation ... for Turing (SM75): FP32 GEMM is not
    supported"), so one Turing target would fail every fp32 model with a MatMul or Gemm."""
    return [c for c in supported_compute_capabilities(trt) if tuple(map(int, c.split("."))) >= (8, 0)]
