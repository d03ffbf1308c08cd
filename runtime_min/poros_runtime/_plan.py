"""Decide, before loading anything, where the artifact runs and which variant runs each segment.

The device comes from the artifact (``manifest["device"]``) and may be narrowed by the caller
(``load(path, device="cuda:1")``).  Each segment lists engine variants in the packager's order of
preference; the plan takes the first one whose executor exists here, whose requirements this
host meets and whose loader accepts it, records why the ones before it were skipped and logs
the choice (logger ``"poros_runtime"``: INFO for the preferred variant, WARNING for a fallback).
With ``strict`` the preferred variant must run, or the load fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ._manifest import field
from .errors import ArtifactError, DeviceUnavailableError, PorosError, RuntimeCompatError
from .executors import Executor, ExecutorRegistry, Incompatibility

if TYPE_CHECKING:
    from ._engine_registry import Engine

__all__ = [
    "PlannedSegment", "SegmentVariants", "VariantCheck", "check_variants", "choose_and_load",
    "resolve_device",
]

_LOGGER = logging.getLogger("poros_runtime")

_DEVICE_HOST_KIND = {"cuda": "a GPU host with CUDA", "xpu": "an Intel GPU (XPU) host"}


@dataclass(frozen=True)
class VariantCheck:
    """One variant of a segment, checked against this host: ``problem`` is None when it can run."""

    backend: str
    member: str
    requirements: Mapping[str, Any]
    executor: Executor | None
    problem: Incompatibility | None


@dataclass(frozen=True)
class SegmentVariants:
    """A segment's variants in the packager's order of preference, each checked."""

    segment: str
    where: str
    variants: tuple[VariantCheck, ...]


@dataclass(frozen=True)
class PlannedSegment:
    """The variant chosen for one segment, and the preferred ones skipped on the way."""

    segment: str
    backend: str
    member: str
    reason: str
    skipped: tuple[tuple[str, str], ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "segment": self.segment,
            "backend": self.backend,
            "member": self.member,
            "reason": self.reason,
            "skipped": [{"backend": backend, "reason": reason} for backend, reason in self.skipped],
        }


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


def check_variants(
    manifest: Mapping[str, Any],
    device: torch.device,
    executors: ExecutorRegistry,
    *,
    strict: bool,
    where: str,
) -> list[SegmentVariants]:
    """Check every variant of every segment against this host, before anything is loaded.

    Raises when a segment has no variant this host can run, or, with ``strict``, when its
    preferred variant cannot run: the error names the segment, the variant and why.
    """
    checked: list[SegmentVariants] = []
    seen: set[str] = set()
    for segment in field(manifest, "segments", list, where):
        segment_id = field(segment, "id", str, where)
        if segment_id in seen:
            raise ArtifactError(f"{where}: segment id {segment_id!r} appears twice; rebuild it")
        seen.add(segment_id)
        segment_where = f"{where}, segment {segment_id}"
        variants = tuple(
            _check_variant(variant, device, executors, segment_where)
            for variant in field(segment, "variants", list, segment_where)
        )
        if not variants:
            raise ArtifactError(
                f"{segment_where}: the segment lists no engine variant; rebuild the artifact"
            )
        preferred = variants[0]
        if strict and preferred.problem is not None:
            raise strict_error(segment_where, preferred, preferred.problem, variants[1:])
        if all(variant.problem is not None for variant in variants):
            raise _no_variant_error(
                segment_where, [(variant.backend, variant.problem) for variant in variants]
            )
        checked.append(SegmentVariants(segment_id, segment_where, variants))
    return checked


def _check_variant(
    variant: Any, device: torch.device, executors: ExecutorRegistry, segment_where: str
) -> VariantCheck:
    backend = field(variant, "backend", str, segment_where)
    variant_where = f"{segment_where} ({backend} variant)"
    member = field(variant, "member", str, variant_where)
    requirements = field(variant, "requirements", Mapping, variant_where)
    executor = executors.get(backend)
    if executor is None:
        problem: Incompatibility | None = Incompatibility(
            RuntimeCompatError,
            f"this poros-runtime has no executor for backend {backend!r} (it has "
            f"{', '.join(executors.backends()) or 'none'}): install the poros-runtime "
            "extra that provides it, or rebuild with a backend this host has",
        )
    else:
        problem = executor.check(requirements, device, where=variant_where)
    return VariantCheck(backend, member, requirements, executor, problem)


def strict_error(
    where: str, preferred: VariantCheck, problem: Incompatibility, others: tuple[VariantCheck, ...]
) -> RuntimeCompatError:
    fallback = ", ".join(variant.backend for variant in others)
    hint = (
        f"load with strict=False to fall back to the {fallback} variant"
        if fallback
        else "the artifact has no other variant for it"
    )
    return problem.error(
        f"{where}: strict load: the preferred variant {preferred.backend} "
        f"({preferred.member}) cannot run on this host: {problem.reason}; {hint}"
    )


def choose_and_load(
    segment: SegmentVariants,
    load_variant: Callable[[VariantCheck], Engine],
    *,
    strict: bool,
) -> tuple[PlannedSegment, Engine]:
    """Load the first variant of ``segment`` that this host can run, and log the choice.

    A variant whose loader refuses it (``RuntimeCompatError``, e.g. TensorRT-RTX's validity check
    of the plan) is skipped like one whose requirements do not match, unless ``strict``.
    """
    skipped: list[tuple[str, Incompatibility]] = []
    for index, variant in enumerate(segment.variants):
        problem = variant.problem
        if problem is None:
            try:
                engine = load_variant(variant)
            except RuntimeCompatError as error:
                problem = Incompatibility(type(error), str(error))
                if strict and index == 0:
                    raise strict_error(segment.where, variant, problem, segment.variants[1:]) from error
            else:
                planned = PlannedSegment(
                    segment.segment,
                    variant.backend,
                    variant.member,
                    _choice_reason(skipped),
                    tuple((backend, skip.reason) for backend, skip in skipped),
                )
                level = logging.WARNING if skipped else logging.INFO
                _LOGGER.log(
                    level, "%s: running the %s variant: %s", segment.where, variant.backend,
                    planned.reason,
                )
                return planned, engine
        skipped.append((variant.backend, problem))
    raise _no_variant_error(segment.where, skipped)


def _no_variant_error(where: str, skipped: list[tuple[str, Incompatibility]]) -> PorosError:
    if not skipped:
        return ArtifactError(f"{where}: the segment lists no engine variant; rebuild the artifact")
    classes = {problem.error for _, problem in skipped}
    error_class = classes.pop() if len(classes) == 1 else RuntimeCompatError
    if len(skipped) == 1:
        return error_class(f"{where}: {skipped[0][1].reason}")
    details = "; ".join(f"{backend}: {problem.reason}" for backend, problem in skipped)
    return error_class(f"{where}: no engine variant can run on this host: {details}")
