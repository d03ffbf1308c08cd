"""``load(path)``: read, verify, check, plan, load engines, load glue.

Integrity comes before deserialization, always: every member's sha256 is verified before any
engine or glue byte reaches a loader, because loading an engine executes native code.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Mapping

import torch
from poros_artifact import read_artifact

from . import ops
from ._manifest import field
from ._module import PorosModule
from ._engine_registry import Engine
from ._plan import VariantCheck, check_variants, choose_and_load, resolve_device
from ._signature import input_checker
from .errors import ArtifactError, RuntimeCompatError
from .executors import DEFAULT_EXECUTORS, ExecutorRegistry

__all__ = ["load"]

INSTANCE_ATTRIBUTE = "poros_instance"


def load(
    path: str | os.PathLike[str],
    device: str | torch.device | None = None,
    *,
    strict: bool = False,
    executors: ExecutorRegistry | None = None,
) -> PorosModule:
    """Load a ``.poros`` artifact and return a callable :class:`PorosModule`.

    ``device``: None runs on the artifact's device (``manifest["device"]``; CUDA means the
    current CUDA device); otherwise a device of that same type, e.g. ``"cuda:1"``.
    ``strict``: False (default) runs each segment with the first of its variants (in the
    artifact's order of preference) that this host can run, skipping the others with a logged
    reason (logger ``"poros_runtime"``); True raises ``RuntimeCompatError`` (naming the segment,
    the preferred variant and why) instead of falling back.  ``module.plan`` records the choices.
    ``executors``: the backend executors to use (default: :data:`DEFAULT_EXECUTORS`).

    Raises ``ArtifactError`` (unreadable or malformed), ``IntegrityError`` (a member's sha256
    does not match), ``FormatVersionError``, ``DeviceUnavailableError`` (the artifact needs a
    device this host lacks), ``RuntimeCompatError`` (torch version, device, backend mismatch).
    """
    # Opening checks the header, the manifest's checksum and the format version
    # (FormatVersionError); verify() then checks every member before anything is deserialized.
    artifact = read_artifact(path)
    artifact.verify()
    manifest = artifact.manifest
    where = f"artifact {artifact.path!r}"

    target = resolve_device(field(manifest, "device", str, where), device, where=where)
    if executors is None:
        executors = DEFAULT_EXECUTORS
    segments = check_variants(manifest, target, executors, strict=strict, where=where)
    inputs = input_checker(field(manifest, "signature", Mapping, where), target, where)
    glue_member = field(field(manifest, "glue", Mapping, where), "member", str, f"{where}, glue")

    def load_variant(variant: VariantCheck) -> Engine:
        assert variant.executor is not None, "check_variants gives an executor to runnable ones"
        return variant.executor.load(
            artifact.read_member(variant.member),
            variant.requirements,
            target,
            where=f"{where}, segment {segment.segment} ({variant.backend}, member "
            f"{variant.member!r})",
        )

    plan = []
    engines = {}
    for segment in segments:
        step, engine = choose_and_load(segment, load_variant, strict=strict)
        plan.append(step)
        engines[segment.segment] = engine
    glue = _load_glue(artifact.read_member(glue_member), target, f"{where}, glue {glue_member!r}")

    instance = f"poros-{uuid.uuid4().hex}"
    module = PorosModule(
        path=path,
        manifest=manifest,
        device=target,
        glue=glue,
        inputs=inputs,
        plan=[step.as_dict() for step in plan],
        instance=instance,
    )
    ops.ENGINES.register_instance(instance, engines, owner=module)
    # The attribute is a TorchScript attribute of the glue, read by its forward(); setting it
    # on the C++ module is what makes the scripted code see it.
    glue._c.setattr(INSTANCE_ATTRIBUTE, instance)
    return module


def _load_glue(payload: bytes, device: torch.device, where: str) -> torch.jit.ScriptModule:
    try:
        glue = torch.jit.load(io.BytesIO(payload), map_location=device)
    except RuntimeError as error:
        raise RuntimeCompatError(
            f"{where}: torch.jit.load failed on this host (torch {torch.__version__}): {error}; "
            "rebuild the artifact with this host's torch, or install the torch it was built with"
        ) from error
    if not glue._c.hasattr(INSTANCE_ATTRIBUTE) or not isinstance(
        glue._c.getattr(INSTANCE_ATTRIBUTE), str
    ):
        raise ArtifactError(
            f"{where}: the glue module has no str attribute {INSTANCE_ATTRIBUTE!r}, so its engine "
            "calls cannot be routed: rebuild the artifact with a poros-pack that follows "
            "docs/internals.md"
        )
    return glue
