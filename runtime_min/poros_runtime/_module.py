"""PorosModule: a loaded artifact, called like the original model."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from ._signature import InputChecker

if TYPE_CHECKING:
    from ._cuda_graphs import GraphRunner

__all__ = ["PorosModule"]


class PorosModule:
    """A loaded ``.poros`` artifact.  ``module(*inputs)`` checks the inputs against the recorded
    signature, runs the glue (which calls the engines) under ``torch.no_grad()`` and returns what
    the original model returned: a tensor or a tuple of tensors.

    Loaded with ``cuda_graphs=True`` (see :func:`poros_runtime.load`), calls go through
    :class:`~poros_runtime._cuda_graphs.GraphRunner`: the same check first, then one CUDA graph
    replay per call for input shapes already captured.

    A plain callable, not a ``torch.nn.Module``: its engines are native code loaded for one
    device, so ``.to()``, ``.train()`` or ``.parameters()`` would have nothing true to do.  Keep
    it alive while you use it: when it is garbage-collected its engines are unregistered.

    Attributes: ``manifest`` (the archive's manifest, read-only by convention), ``signature``
    (``manifest["signature"]``), ``device`` (the ``torch.device`` it runs on), ``plan`` (one
    ``{"segment", "backend", "member", "reason", "skipped": [{"backend", "reason"}]}`` per
    segment: the variant chosen and the preferred ones this host could not run), ``instance``
    (its engine-registry name), ``path``, ``cuda_graphs`` (None, or the CUDA graph status).
    """

    def __init__(
        self,
        *,
        path: str | os.PathLike[str],
        manifest: Mapping[str, Any],
        device: torch.device,
        glue: torch.jit.ScriptModule,
        inputs: InputChecker,
        plan: list[dict[str, Any]],
        instance: str,
        graphs: GraphRunner | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.manifest = manifest
        self.device = device
        self.instance = instance
        self._glue = glue
        self._inputs = inputs
        self._plan = plan
        self._graphs = graphs

    @property
    def signature(self) -> Mapping[str, Any]:
        return self.manifest["signature"]

    @property
    def plan(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self._plan)

    @property
    def cuda_graphs(self) -> dict[str, Any] | None:
        """None unless loaded with ``cuda_graphs=True``; then a snapshot of the CUDA graph
        state: ``graph_outputs``, ``max_graphs``, ``captured`` (the input shapes of each graph
        held, least recently used first), the counts ``captures``, ``replays``, ``evictions``,
        ``eager_calls`` (calls run without a graph), and ``disabled`` (None, or ``{"shapes",
        "reason"}`` of the capture that failed, after which no more graphs are captured)."""
        return None if self._graphs is None else self._graphs.status()

    def __call__(self, *inputs: torch.Tensor) -> Any:
        self._inputs.check(inputs)
        with torch.no_grad():
            if self._graphs is not None:
                return self._graphs(inputs)
            return self._glue(*inputs)

    def __repr__(self) -> str:
        backends = ", ".join(f"{entry['segment']}:{entry['backend']}" for entry in self._plan)
        graphs = "" if self._graphs is None else ", cuda_graphs=True"
        return (f"PorosModule({self.path!r}, device={self.device}, segments=[{backends}]"
                f"{graphs})")
