"""Executor for AOTInductor packages (``.pt2``), the ``inductor`` backend.

Loading needs only libtorch: the package carries a compiled wrapper ``.so`` that
``torch._C._aoti.AOTIModelPackageLoader`` extracts and loads.  This module never imports
``torch._inductor`` (the compiler).

What the packager must produce: ``torch._inductor.aoti_compile_and_package`` output with the
constants inside the ``.so`` (the default), inputs and outputs a flat list of tensors, compiled
by the same torch major.minor that will load it.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import zipfile
from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

import torch

from ..errors import ArtifactError, RuntimeCompatError
from . import Incompatibility

__all__ = ["InductorEngine", "InductorExecutor", "torch_major_minor"]

_VERSION = re.compile(r"(\d+)\.(\d+)")
_MODEL_FOLDER = re.compile(r"(?:^|/)data/aotinductor/([^/]+)/")
# x86 vector ISAs in increasing order; a package built for one runs on it and above.
_X86_ISA_ORDER = ("DEFAULT", "AVX2", "AVX512")


def torch_major_minor(version: str) -> str | None:
    """``"2.13.0+cpu"`` -> ``"2.13"``; None when ``version`` does not start with major.minor."""
    match = _VERSION.match(version) if isinstance(version, str) else None
    return f"{match[1]}.{match[2]}" if match else None


class InductorEngine:
    """A loaded AOTInductor package.  Calling it runs the compiled model on the caller's
    current stream, with no host synchronization, so a CUDA graph can capture it.

    The package is loaded in AOTInductor's single-threaded mode: its default mode waits on a
    CUDA event of the previous run, which is not allowed while a stream is capturing.  The
    lock restores thread safety on the host side (uncontended, it costs ~0.1 us).
    """

    __slots__ = ("_loader", "_lock", "where")

    def __init__(self, loader: Any, where: str) -> None:
        self._loader = loader
        self._lock = threading.Lock()
        self.where = where

    def __call__(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        # AOTInductor code indexes inputs with the strides seen at export (contiguous) and does
        # not check them; the glue can hand over views (a reshape of a chunk, a transpose).
        inputs = [tensor.contiguous() for tensor in inputs]
        with self._lock:
            return self._loader.run(inputs)

    def __repr__(self) -> str:
        return f"InductorEngine({self.where})"


class InductorExecutor:
    """Checks inductor requirements and loads ``.pt2`` bytes into :class:`InductorEngine`."""

    backend = "inductor"

    def check(
        self, requirements: Mapping[str, Any], device: torch.device, *, where: str
    ) -> Incompatibility | None:
        built_for = requirements.get("device_type")
        if built_for != device.type:
            return Incompatibility(
                RuntimeCompatError,
                f"compiled for device type {built_for!r}, but the artifact is loading on "
                f"{device.type!r}: rebuild it with --device {device.type}",
            )
        built_with = torch_major_minor(requirements.get("torch"))
        if built_with is None:
            raise ArtifactError(
                f"{where}: requirements['torch'] is {requirements.get('torch')!r}, not a "
                "'major.minor' torch version: the manifest is malformed, rebuild the artifact"
            )
        host = torch_major_minor(torch.__version__)
        if built_with != host:
            return Incompatibility(
                RuntimeCompatError,
                f"AOTInductor engine built with torch {built_with}, but this host has torch "
                f"{torch.__version__} ({host}); AOTInductor packages load only on the torch "
                f"major.minor that compiled them: rebuild the artifact with torch {host}, or "
                f"install torch {built_with}.* on this host",
            )
        if device.type == "cuda":
            return _check_cuda(requirements, device)
        return None

    def load(
        self, payload: bytes, requirements: Mapping[str, Any], device: torch.device, *, where: str
    ) -> InductorEngine:
        loader_class = getattr(getattr(torch._C, "_aoti", None), "AOTIModelPackageLoader", None)
        if loader_class is None:
            raise RuntimeCompatError(
                f"{where}: this torch build ({torch.__version__}) has no AOTInductor runtime "
                "(torch._C._aoti.AOTIModelPackageLoader): install an official torch build"
            )
        # The loader reads a path, not bytes; the folder is private (0o700) and removed as soon
        # as the loader has extracted what it needs.
        with tempfile.TemporaryDirectory(prefix="poros-aoti-") as folder:
            path = os.path.join(folder, "engine.pt2")
            with open(path, "wb") as file:
                file.write(payload)
            model_name = _model_name(path, where)
            _check_package_metadata(loader_class, path, model_name, device, where)
            try:
                loader = _construct_loader(loader_class, path, model_name, device)
            except RuntimeError as error:
                raise RuntimeCompatError(
                    f"{where}: AOTInductor could not load the engine on {device} ({error}); "
                    f"rebuild the artifact on a machine matching this host (torch "
                    f"{torch.__version__})"
                ) from error
        return InductorEngine(loader, where)


def _check_cuda(requirements: Mapping[str, Any], device: torch.device) -> Incompatibility | None:
    built_cuda = requirements.get("cuda")
    host_cuda = torch.version.cuda
    if built_cuda and host_cuda and str(built_cuda).split(".")[0] != host_cuda.split(".")[0]:
        return Incompatibility(
            RuntimeCompatError,
            f"AOTInductor engine built with CUDA {built_cuda}, but this host's torch uses CUDA "
            f"{host_cuda}: rebuild the artifact with a torch built for CUDA {host_cuda}",
        )
    built_capability = requirements.get("compute_capability")
    if built_capability:
        major, minor = torch.cuda.get_device_capability(device)
        host_capability = f"{major}.{minor}"
        # Exact match: Triton kernels are cubins for one architecture (sm_90a, sm_100a...).
        if str(built_capability) != host_capability:
            return Incompatibility(
                RuntimeCompatError,
                f"AOTInductor engine compiled for compute capability {built_capability}, but "
                f"{device} ({torch.cuda.get_device_name(device)}) has {host_capability}: rebuild "
                "the artifact on a GPU of this compute capability",
            )
    return None


def _model_name(path: str, where: str) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile as error:
        raise ArtifactError(
            f"{where}: not an AOTInductor package ({error}); rebuild the artifact"
        ) from error
    models = sorted({match[1] for name in names if (match := _MODEL_FOLDER.search(name))})
    if len(models) != 1:
        raise ArtifactError(
            f"{where}: expected one AOTInductor model in the package, found "
            f"{models or 'none'}; the packager must write one aoti_compile_and_package output "
            "per engine variant"
        )
    if any(name.endswith("weights_config.json") for name in names):
        raise ArtifactError(
            f"{where}: the package keeps its weights outside the compiled .so, which this "
            "runtime does not load; rebuild with the constants inside the .so (the default)"
        )
    return models[0]


def _check_package_metadata(
    loader_class: Any, path: str, model_name: str, device: torch.device, where: str
) -> None:
    read_metadata = getattr(loader_class, "load_metadata_from_package", None)
    if read_metadata is None:
        return
    metadata = read_metadata(path, model_name)
    package_device = metadata.get("AOTI_DEVICE_KEY")
    if package_device and package_device != device.type:
        raise ArtifactError(
            f"{where}: the package was compiled for {package_device!r} but the manifest says "
            f"{device.type!r}; the artifact is inconsistent: rebuild it"
        )
    if device.type == "cpu":
        _check_cpu_isa(metadata.get("AOTI_CPU_ISA", ""), where)


def _check_cpu_isa(built_isa: str, where: str) -> None:
    # Running kernels compiled for a wider vector ISA than the CPU has dies with SIGILL, with
    # no message at all: refuse it here instead.
    host_isa = torch.backends.cpu.get_cpu_capability()
    built, host = built_isa.upper(), host_isa.upper()
    if built in _X86_ISA_ORDER and host in _X86_ISA_ORDER:
        if _X86_ISA_ORDER.index(built) > _X86_ISA_ORDER.index(host):
            raise RuntimeCompatError(
                f"{where}: the CPU kernels were compiled for {built_isa}, but this CPU supports "
                f"only {host_isa}: rebuild the artifact on a machine whose CPU has no more than "
                f"{host_isa}"
            )


def _construct_loader(
    loader_class: Any, path: str, model_name: str, device: torch.device
) -> Any:
    device_index = device.index if device.index is not None else -1
    # (path, name, run_single_threaded, num_runners, device_index) in torch 2.7 to 2.14 (2.11
    # and 2.13 checked); older bindings take fewer arguments and load on the current device,
    # which the context sets.  The two-argument form runs multi-threaded: still correct, but
    # not capturable by CUDA graphs.
    signatures = (
        (path, model_name, True, 1, device_index),
        (path, model_name, True, 1),
        (path, model_name),
    )
    current_device = torch.cuda.device(device) if device.type == "cuda" else nullcontext()
    with current_device:
        for arguments in signatures[:-1]:
            try:
                return loader_class(*arguments)
            except TypeError:
                continue
        return loader_class(*signatures[-1])
