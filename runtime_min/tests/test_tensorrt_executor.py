"""The TensorRT executor's checks: every reason a host cannot run a TensorRT plan.

Execution of plans is not tested anywhere in this project: CI has no GPU, and the GPU machine
(H100/H200) has no full TensorRT and cannot run TensorRT-RTX plans (compute capability 9.0).
A CUDA host is simulated here by replacing ``torch.cuda.is_available`` and the executor's
compute-capability probe; the library version by a stand-in module.
"""

from __future__ import annotations

import types

import pytest
import torch

from poros_runtime.errors import ArtifactError, DeviceUnavailableError, RuntimeCompatError
from poros_runtime.executors import DEFAULT_EXECUTORS
from poros_runtime.executors import tensorrt as tensorrt_executor

RTX = {"device_type": "cuda", "library": "tensorrt_rtx", "library_version": "1.7.1.116",
       "version_compatible": False, "compute_capabilities": ["8.0", "8.6", "8.9", "12.0"]}
CUDA = torch.device("cuda", 0)
WHERE = "artifact 'm.poros', segment seg0 (tensorrt-rtx variant)"


@pytest.fixture
def cuda_host(monkeypatch: pytest.MonkeyPatch):
    """A host with one GPU of compute capability 8.9 and tensorrt_rtx 1.7.1.116 installed."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(tensorrt_executor, "device_capability", lambda device: "8.9")
    monkeypatch.setattr(tensorrt_executor, "library_installed", lambda library: True)
    library = types.SimpleNamespace(__version__="1.7.1.116")
    monkeypatch.setattr(tensorrt_executor, "import_library", lambda name: library)
    return library


def check(requirements, device=CUDA, backend="tensorrt-rtx"):
    return DEFAULT_EXECUTORS.get(backend).check(requirements, device, where=WHERE)


def test_both_flavours_are_registered() -> None:
    assert {"tensorrt", "tensorrt-rtx"} <= set(DEFAULT_EXECUTORS.backends())
    assert DEFAULT_EXECUTORS.get("tensorrt-rtx").backend == "tensorrt-rtx"


def test_a_matching_host_is_accepted(cuda_host) -> None:
    assert check(RTX) is None
    assert check({**RTX, "library": "tensorrt_rtx"}) is None


def test_a_missing_library_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tensorrt_executor, "library_installed", lambda library: False)
    problem = check(RTX)
    assert problem.error is RuntimeCompatError
    assert problem.reason == "tensorrt_rtx is not installed: pip install poros-runtime[tensorrt-rtx]"
    lean = check({**RTX, "library": "tensorrt_lean"}, backend="tensorrt")
    assert "pip install poros-runtime[tensorrt-lean]" in lean.reason


def test_a_cpu_device_is_refused_without_importing_the_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tensorrt_executor, "library_installed", lambda library: True)
    imported = []
    monkeypatch.setattr(tensorrt_executor, "import_library", imported.append)
    problem = check(RTX, device=torch.device("cpu"))
    assert "run on CUDA GPUs only" in problem.reason and "'cpu'" in problem.reason
    assert imported == []


def test_a_host_without_cuda_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tensorrt_executor, "library_installed", lambda library: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    problem = check(RTX)
    assert problem.error is DeviceUnavailableError
    assert "need a CUDA GPU" in problem.reason


def test_an_unsupported_compute_capability_names_the_gpu(
    cuda_host, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tensorrt_executor, "device_capability", lambda device: "9.0")
    problem = check(RTX)
    assert problem.error is RuntimeCompatError
    assert problem.reason.startswith(
        "TensorRT-RTX engines do not run on compute capability 9.0 (H100/H200)"
    )
    assert "8.0, 8.6, 8.9, 12.0" in problem.reason


@pytest.mark.parametrize(
    ("host", "version_compatible", "accepted"),
    [
        ("1.7.1.116", False, True),
        ("1.7.1.200", False, True),
        ("1.6.0", False, False),
        ("1.8.0", False, False),
        ("1.8.0", True, True),
        ("1.6.0", True, False),
        ("2.0.0", True, False),
    ],
)
def test_library_versions(cuda_host, host: str, version_compatible: bool, accepted: bool) -> None:
    cuda_host.__version__ = host
    problem = check({**RTX, "version_compatible": version_compatible})
    if accepted:
        assert problem is None
    else:
        assert f"built with tensorrt_rtx 1.7.1.116, but this host has tensorrt_rtx {host}" in (
            problem.reason
        )


@pytest.mark.parametrize(
    "requirements",
    [{**RTX, "library": "tensorrt"}, {**RTX, "library": None}, {**RTX, "library_version": "x"}],
)
def test_malformed_requirements_are_artifact_errors(cuda_host, requirements) -> None:
    with pytest.raises(ArtifactError, match="malformed"):
        check(requirements)


def test_tensorrt_rtx_validity_check_refuses_a_malformed_plan() -> None:
    """The real TensorRT-RTX runtime answers the validity question without a GPU."""
    trt = pytest.importorskip("tensorrt_rtx")
    runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
    with pytest.raises(RuntimeCompatError, match="cannot run here .*malformed engine"):
        tensorrt_executor._check_validity(trt, runtime, b"\x00" * 256, WHERE)

