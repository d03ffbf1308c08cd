"""Decide, before loading anything, where the artifact runs and which variant runs each segment.

The device comes from the artifact (``manifest["device"]``) and may be narrowed by the caller
(``load(path, device="cuda:1")``).  Each segment lists engine variants in the packager's order of
preference; the plan takes the first one whose executor exists here and whose requirements this
host meets, and records why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ._manifest import field
from .errors import ArtifactError, DeviceUnavailableError, PorosError, RuntimeCompatError
from .executors import Executor, ExecutorRegistry, Incompatibility

__all__ = ["PlannedSegment", "resolve_device", "plan_segments"]

_DEVICE_HOST_KIND = {"cuda": "a GPU host with CUDA", "xpu": "an Intel GPU (XPU) host"}


@dataclass(frozen=True)
class PlannedSegment:
    """The variant chosen for one segment."""

    segment: str
    backend: str
    member: str
    requirements: Mapping[str, Any]
    executor: Executor
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"segment": self.segment, "backend": self.backend, "reason": self.reason}


def _device_available(device_type: str) -> bool:
    if device_type == "cpu":
        return True
    backend_module = getattr(torch, device_type, None)
    is_available = getattr(backend_module, "is_available", None)
    return bool(is_available is not None and is_available())


def resolve_device(artifact_device: str, requested: Any, *, where: str) -> torch.device:
    """The device to load on: ``requested`` (checked against the artifact) or the artifact's."""
    try:
        device = torch.device(artifact_device if requested is None else requested)
    except (RuntimeError, TypeError) as error:
        raise RuntimeCompatError(
            f"{where}: device {requested!r} is not a torch device ({error}); pass e.g. 'cpu', "
            "'cuda' or 'cuda:0'"
        ) from error
    if device.type != artifact_device:
        raise RuntimeCompatError(
            f"{where}: the artifact was built for device {artifact_device!r}, but load() was "
            f"asked for {str(device)!r}: load it with device=None (or a {artifact_device} "
            f"device), or rebuild it with --device {device.type}"
        )
    if not _device_available(device.type):
        host_kind = _DEVICE_HOST_KIND.get(device.type, f"a host with a {device.type} device")
        raise DeviceUnavailableError(
            f"{where}: the artifact needs {device.type.upper()}, but this host has none "
            f"(torch.{device.type}.is_available() is False; torch {torch.__version__}): run it "
            f"on {host_kind}, or rebuild it with --device cpu"
        )
    if device.type != "cpu":
        backend_module = getattr(torch, device.type)
        count = backend_module.device_count()
        if device.index is None:
            device = torch.device(device.type, backend_module.current_device())
        elif device.index >= count:
            raise DeviceUnavailableError(
                f"{where}: {device} was requested, but this host has {count} {device.type} "
                f"device(s): pass an index below {count}"
            )
    return device


def _choice_reason(skipped: list[tuple[str, Incompatibility]]) -> str:
    if not skipped:
        return "the artifact's preferred variant; this host meets its requirements"
    details = "; ".join(f"{backend} skipped: {problem.reason}" for backend, problem in skipped)
    return f"the first variant this host can run ({details})"


def plan_segments(
    manifest: Mapping[str, Any],
    device: torch.device,
    executors: ExecutorRegistry,
    *,
    where: str,
) -> list[PlannedSegment]:
    """Choose one variant per segment, or raise the most specific error saying why none fits."""
    plan: list[PlannedSegment] = []
    seen: set[str] = set()
    for segment in field(manifest, "segments", list, where):
        segment_id = field(segment, "id", str, where)
        if segment_id in seen:
            raise ArtifactError(f"{where}: segment id {segment_id!r} appears twice; rebuild it")
        seen.add(segment_id)
        segment_where = f"{where}, segment {segment_id}"
        skipped: list[tuple[str, Incompatibility]] = []
        for variant in field(segment, "variants", list, segment_where):
            backend = field(variant, "backend", str, segment_where)
            variant_where = f"{segment_where} ({backend} variant)"
            member = field(variant, "member", str, variant_where)
            requirements = field(variant, "requirements", Mapping, variant_where)
            executor = executors.get(backend)
            if executor is None:
                problem = Incompatibility(
                    RuntimeCompatError,
                    f"this poros-runtime has no executor for backend {backend!r} (it has "
                    f"{', '.join(executors.backends()) or 'none'}): install the poros-runtime "
                    "extra that provides it, or rebuild with a backend this host has",
                )
            else:
                problem = executor.check(requirements, device, where=variant_where)
            if problem is not None:
                skipped.append((backend, problem))
                continue
            plan.append(
                PlannedSegment(
                    segment_id, backend, member, requirements, executor, _choice_reason(skipped)
                )
            )
            break
        else:
            raise _no_variant_error(segment_where, skipped)
    return plan


def _no_variant_error(where: str, skipped: list[tuple[str, Incompatibility]]) -> PorosError:
    if not skipped:
        return ArtifactError(f"{where}: the segment lists no engine variant; rebuild the artifact")
    classes = {problem.error for _, problem in skipped}
    error_class = classes.pop() if len(classes) == 1 else RuntimeCompatError
    if len(skipped) == 1:
        return error_class(f"{where}: {skipped[0][1].reason}")
    details = "; ".join(f"{backend}: {problem.reason}" for backend, problem in skipped)
    return error_class(f"{where}: no engine variant can run on this host: {details}")
