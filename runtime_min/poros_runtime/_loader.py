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
from ._cuda_graphs import DEFAULT_MAX_GRAPHS, GraphRunner, check_device, check_options
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
    cuda_graphs: bool = False,
    graph_outputs: str = "copy",
    max_graphs: int = DEFAULT_MAX_GRAPHS,
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

    ``cuda_graphs``: True replays each call from a CUDA graph (CUDA devices only): the first call
    with given input shapes runs the glue 3 times on a side stream (warm-up), then records one
    whole call (glue and engines) into a ``torch.cuda.CUDAGraph`` on static input buffers; every
    call with those shapes then copies its inputs into the buffers and replays the graph, one
    launch instead of one per kernel.  Graphs are keyed by the input shapes only (dtypes and
    device are fixed by the signature; inputs of any strides are copied into contiguous
    buffers).  Inputs are still checked against the signature first, on every call.
    ``graph_outputs``: ``"copy"`` (default) returns fresh tensors (a device copy of the graph's
    outputs, made on the caller's stream), so outputs kept across calls stay valid.
    ``"reuse"`` returns the graph's own output buffers and saves those copies: they are
    overwritten by the module's next call (any shapes; they may even alias its input buffers),
    so clone what you keep, and use it with one caller at a time.
    ``max_graphs``: graphs kept per module (default 16), least recently used evicted beyond it
    and captured again when their shapes return; the first eviction logs a WARNING.  A module's
    graphs share one memory pool (their replays never overlap), so working memory is not paid
    per graph; static inputs and outputs are.
    What cannot be captured: a glue call that waits for the GPU (data-dependent control flow,
    ``if tensor``, ``.item()``) or does anything else a CUDA graph cannot record.  The capture
    is then ended cleanly and the call runs without a graph; one WARNING on
    ``"poros_runtime"`` says why, ``module.cuda_graphs["disabled"]`` records it, and the module
    captures no more graphs (those captured before keep replaying).  Calls are thread-safe: a
    lock per module serializes capture, input copies and replay, and a call on a different
    stream than the previous replay waits for it.  A capture holds that lock for a few calls'
    time.  Differences from plain calls: outputs never alias the caller's inputs, and in-place
    writes the model makes to its inputs go to the graph's buffers, not the caller's tensors.
    With ``cuda_graphs=False`` the other two are checked but unused.  ``cuda_graphs=True`` on a
    non-CUDA device raises ``UsageError``, as do invalid values of the three options.

    Raises ``ArtifactError`` (unreadable or malformed), ``IntegrityError`` (a member's sha256
    does not match), ``FormatVersionError``, ``DeviceUnavailableError`` (the artifact needs a
    device this host lacks), ``RuntimeCompatError`` (torch version, device, backend mismatch),
    ``UsageError`` (the CUDA graph options; checked before the file is read, except the device).
    """
    check_options(cuda_graphs, graph_outputs, max_graphs)
    # Opening checks the header, the manifest's checksum and the format version
    # (FormatVersionError); verify() then checks every member before anything is deserialized.
    artifact = read_artifact(path)
    artifact.verify()
    manifest = artifact.manifest
    where = f"artifact {artifact.path!r}"

    target = resolve_device(field(manifest, "device", str, where), device, where=where)
    if cuda_graphs:
        check_device(target, where)
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
    graphs = None
    if cuda_graphs:
        graphs = GraphRunner(glue, target, graph_outputs=graph_outputs, max_graphs=max_graphs,
                             label=where)
    module = PorosModule(
        path=path,
        manifest=manifest,
        device=target,
        glue=glue,
        inputs=inputs,
        plan=[step.as_dict() for step in plan],
        instance=instance,
        graphs=graphs,
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
