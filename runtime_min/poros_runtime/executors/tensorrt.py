"""Executor for TensorRT plans, the ``tensorrt`` and ``tensorrt-rtx`` backends.

A plan runs through the Python runtime that matches the library it was built with
(``requirements["library"]``): ``tensorrt`` (full TensorRT), ``tensorrt_lean`` (the lean
runtime, for version-compatible plans) or ``tensorrt_rtx`` (TensorRT for RTX).  The library is
imported lazily, only when a variant needs it on a CUDA device, so ``import poros_runtime``
works without any TensorRT installed.

Requirements this executor reads (written by the packager's TensorRT backend)::

    {"device_type": "cuda",
     "library": "tensorrt-rtx",                # or "tensorrt", "tensorrt-lean" ('_' also accepted)
     "library_version": "1.7.1.116",           # the builder's version
     "version_compatible": false,              # built with the version-compatible flag
     "compute_capabilities": ["8.0", "8.6", "8.9", "12.0"]}   # None or absent: any

Check order (each refusal is data, so the load plan can say why a variant was skipped): the
library is installed, the device is CUDA and available, its compute capability is listed, the
library version can deserialize the plan.  For TensorRT-RTX, ``load`` also asks the runtime
(``Runtime.get_engine_validity``) before deserializing, which catches what the recorded
requirements cannot (an old driver, a malformed plan).

Execution: one execution context per engine, guarded by a lock (contexts are not thread safe);
inputs are bound by the engine's input order, which is the segment's input order; each call
sets the input shapes (dynamic shapes), allocates outputs with torch on the engine's device and
enqueues on the caller's current CUDA stream without synchronizing.

Not verified by this project: the project's CI has no GPU, and its GPU machine (H100/H200) has
no full TensorRT and cannot run TensorRT-RTX plans (compute capability 9.0 is unsupported), so
``TensorRTEngine.__call__`` and ``TensorRTExecutor.load`` have never run here.  The tests cover
``check``'s refusals and the fallback to other variants.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import re
import threading
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import torch

from ..errors import ArtifactError, DeviceUnavailableError, RuntimeCompatError
from . import Incompatibility

__all__ = ["LIBRARIES", "TensorRTEngine", "TensorRTExecutor"]

_LOGGER = logging.getLogger("poros_runtime")

# Library import name -> the poros-runtime extra that installs it.
LIBRARIES = {
    "tensorrt": "tensorrt",
    "tensorrt_lean": "tensorrt-lean",
    "tensorrt_rtx": "tensorrt-rtx",
}
_LIBRARY_NAMES = {"tensorrt": "TensorRT", "tensorrt_lean": "TensorRT (lean runtime)",
                  "tensorrt_rtx": "TensorRT-RTX"}
# Libraries each backend's plans may name.
_BACKEND_LIBRARIES = {
    "tensorrt": ("tensorrt", "tensorrt_lean"),
    "tensorrt-rtx": ("tensorrt_rtx",),
}
_KNOWN_GPUS = {"9.0": "H100/H200", "10.0": "B200", "8.0": "A100"}
_VERSION = re.compile(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?")


def _version_parts(version: Any) -> tuple[int, ...] | None:
    match = _VERSION.match(version) if isinstance(version, str) else None
    if match is None:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def library_installed(library: str) -> bool:
    """Whether ``library`` can be imported here (without importing it)."""
    try:
        return importlib.util.find_spec(library) is not None
    except (ImportError, ValueError):
        return False


def import_library(library: str) -> ModuleType:
    return importlib.import_module(library)


def device_capability(device: torch.device) -> str:
    major, minor = torch.cuda.get_device_capability(device)
    return f"{major}.{minor}"


class TensorRTExecutor:
    """Checks TensorRT requirements and loads plans into :class:`TensorRTEngine`."""

    def __init__(self, backend: str) -> None:
        if backend not in _BACKEND_LIBRARIES:
            raise ValueError(f"no TensorRT flavour is called {backend!r}")
        self.backend = backend
        self._libraries = _BACKEND_LIBRARIES[backend]

    def check(
        self, requirements: Mapping[str, Any], device: torch.device, *, where: str
    ) -> Incompatibility | None:
        library = _library(requirements)
        if library not in self._libraries:
            raise ArtifactError(
                f"{where}: requirements['library'] is {requirements.get('library')!r}; a "
                f"{self.backend} plan names one of {', '.join(self._libraries)}: the manifest "
                "is malformed, rebuild the artifact"
            )
        flavour = _LIBRARY_NAMES[library]
        if not library_installed(library):
            return Incompatibility(
                RuntimeCompatError,
                f"{library} is not installed: pip install poros-runtime[{LIBRARIES[library]}]",
            )
        if device.type != "cuda":
            return Incompatibility(
                RuntimeCompatError,
                f"{flavour} engines run on CUDA GPUs only, and the artifact is loading on "
                f"{str(device)!r}",
            )
        if not torch.cuda.is_available():
            return Incompatibility(
                DeviceUnavailableError,
                f"{flavour} engines need a CUDA GPU, and this host has none "
                f"(torch.cuda.is_available() is False; torch {torch.__version__})",
            )
        capabilities = requirements.get("compute_capabilities")
        if capabilities:
            host = device_capability(device)
            if host not in [str(capability) for capability in capabilities]:
                gpu = _KNOWN_GPUS.get(host)
                named = f" ({gpu})" if gpu else ""
                return Incompatibility(
                    RuntimeCompatError,
                    f"{flavour} engines do not run on compute capability {host}{named}: this plan "
                    f"supports {', '.join(str(c) for c in capabilities)}",
                )
        return self._check_version(library, flavour, requirements, where)

    def _check_version(
        self, library: str, flavour: str, requirements: Mapping[str, Any], where: str
    ) -> Incompatibility | None:
        built = requirements.get("library_version")
        if built is None:
            return None
        built_parts = _version_parts(built)
        if built_parts is None:
            raise ArtifactError(
                f"{where}: requirements['library_version'] is {built!r}, not a version: the "
                "manifest is malformed, rebuild the artifact"
            )
        try:
            module = import_library(library)
        except ImportError as error:
            return Incompatibility(
                RuntimeCompatError,
                f"{library} is installed but cannot be imported ({error}): reinstall it with "
                f"pip install poros-runtime[{LIBRARIES[library]}]",
            )
        host = str(getattr(module, "__version__", ""))
        host_parts = _version_parts(host) or ()
        if requirements.get("version_compatible"):
            # Version-compatible plans run on the same major and any later minor.
            fits = host_parts[:1] == built_parts[:1] and host_parts >= built_parts
            rule = f"a {built_parts[0]}.x runtime not older than {built}"
        else:
            # A plain plan deserializes only on the release that built it.
            fits = host_parts[:3] == built_parts[:3]
            rule = f"{library} {'.'.join(map(str, built_parts[:3]))}"
        if not fits:
            return Incompatibility(
                RuntimeCompatError,
                f"{flavour} plan built with {library} {built}, but this host has {library} "
                f"{host or 'of unknown version'}: install {rule}, or rebuild the artifact",
            )
        return None

    def load(
        self, payload: bytes, requirements: Mapping[str, Any], device: torch.device, *, where: str
    ) -> TensorRTEngine:
        library = _library(requirements)
        module = import_library(library)
        logger = module.Logger(module.Logger.WARNING)
        with torch.cuda.device(device):
            runtime = module.Runtime(logger)
            if hasattr(runtime, "get_engine_validity"):
                _check_validity(module, runtime, payload, where)
            engine = runtime.deserialize_cuda_engine(payload)
        if engine is None:
            raise RuntimeCompatError(
                f"{where}: {library} could not deserialize the plan on {device} (its log above "
                "says why): rebuild the artifact for this GPU and library version"
            )
        return TensorRTEngine(module, runtime, engine, device, where)


def _library(requirements: Mapping[str, Any]) -> str | None:
    """The import name of the library a plan names (``"tensorrt-rtx"`` -> ``"tensorrt_rtx"``)."""
    library = requirements.get("library")
    return library.replace("-", "_") if isinstance(library, str) else None


def _check_validity(module: ModuleType, runtime: Any, payload: bytes, where: str) -> None:
    validity, diagnostics = runtime.get_engine_validity(payload)
    if validity == module.EngineValidity.VALID:
        return
    problems = [
        name.lower().replace("_", " ")
        for name, flag in module.EngineInvalidityDiagnostics.__members__.items()
        if int(diagnostics) & int(flag)
    ]
    described = ", ".join(problems) or f"diagnostics {int(diagnostics)}"
    if validity == module.EngineValidity.SUBOPTIMAL:
        _LOGGER.warning("%s: the plan runs on this GPU but suboptimally (%s)", where, described)
        return
    raise RuntimeCompatError(
        f"{where}: TensorRT-RTX says this plan cannot run here ({described}): update the "
        "driver, or rebuild the artifact for this GPU and library version"
    )


def _torch_dtype(module: ModuleType, trt_dtype: Any) -> torch.dtype:
    names = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16,
             "INT32": torch.int32, "INT64": torch.int64, "INT8": torch.int8, "UINT8": torch.uint8,
             "BOOL": torch.bool}
    for name, dtype in names.items():
        if trt_dtype == getattr(module.DataType, name, None):
            return dtype
    raise RuntimeCompatError(f"TensorRT tensor type {trt_dtype} has no torch equivalent")


class TensorRTEngine:
    """A deserialized plan with one execution context, used under a lock.  Calling it binds
    the inputs, sets their shapes, allocates the outputs and enqueues on the current stream."""

    def __init__(self, module: ModuleType, runtime: Any, engine: Any, device: torch.device,
                 where: str) -> None:
        # The runtime must outlive the engine it deserialized.
        self._runtime = runtime
        self._engine = engine
        self._context = engine.create_execution_context()
        self._device = device
        self._lock = threading.Lock()
        self.where = where
        names = [engine.get_tensor_name(index) for index in range(engine.num_io_tensors)]
        is_input = {name: engine.get_tensor_mode(name) == module.TensorIOMode.INPUT for name in names}
        self._inputs = [(name, _torch_dtype(module, engine.get_tensor_dtype(name)))
                        for name in names if is_input[name]]
        self._outputs = [(name, _torch_dtype(module, engine.get_tensor_dtype(name)))
                         for name in names if not is_input[name]]

    def __call__(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(inputs) != len(self._inputs):
            raise RuntimeCompatError(
                f"{self.where}: the plan takes {len(self._inputs)} inputs, the glue passed "
                f"{len(inputs)}: the artifact is inconsistent, rebuild it"
            )
        with self._lock:
            context = self._context
            # Converted inputs stay referenced until the enqueue; later reuse of their memory
            # is ordered after this engine by the stream.
            bound = []
            for (name, dtype), tensor in zip(self._inputs, inputs):
                tensor = tensor.to(device=self._device, dtype=dtype).contiguous()
                if not context.set_input_shape(name, tuple(tensor.shape)):
                    raise RuntimeCompatError(
                        f"{self.where}: input {name!r} of shape {tuple(tensor.shape)} is outside "
                        "the plan's optimization profile"
                    )
                context.set_tensor_address(name, tensor.data_ptr())
                bound.append(tensor)
            outputs = []
            for name, dtype in self._outputs:
                shape = tuple(context.get_tensor_shape(name))
                if any(dim < 0 for dim in shape):
                    raise RuntimeCompatError(
                        f"{self.where}: output {name!r} has a data-dependent shape {shape}, "
                        "which this executor does not support"
                    )
                output = torch.empty(shape, dtype=dtype, device=self._device)
                context.set_tensor_address(name, output.data_ptr())
                outputs.append(output)
            stream = torch.cuda.current_stream(self._device).cuda_stream
            if not context.execute_async_v3(stream):
                raise RuntimeCompatError(f"{self.where}: TensorRT could not enqueue the plan")
            return outputs

    def __repr__(self) -> str:
        return f"TensorRTEngine({self.where})"
