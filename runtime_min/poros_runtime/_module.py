"""PorosModule: a loaded artifact, called like the original model."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import Any

import torch

from ._signature import InputChecker

__all__ = ["PorosModule"]


class PorosModule:
    """A loaded ``.poros`` artifact.  ``module(*inputs)`` checks the inputs against the recorded
    signature, runs the glue (which calls the engines) under ``torch.no_grad()`` and returns what
    the original model returned: a tensor or a tuple of tensors.

    A plain callable, not a ``torch.nn.Module``: its engines are native code loaded for one
    device, so ``.to()``, ``.train()`` or ``.parameters()`` would have nothing true to do.  Keep
    it alive while you use it: when it is garbage-collected its engines are unregistered.

    Attributes: ``manifest`` (the archive's manifest, read-only by convention), ``signature``
    (``manifest["signature"]``), ``device`` (the ``torch.device`` it runs on), ``plan`` (one
    ``{"segment", "backend", "member", "reason", "skipped": [{"backend", "reason"}]}`` per
    segment: the variant chosen and the preferred ones this host could not run), ``instance``
    (its engine-registry name), ``path``.
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
    ) -> None:
        self.path = os.fspath(path)
        self.manifest = manifest
        self.device = device
        self.instance = instance
        self._glue = glue
        self._inputs = inputs
        self._plan = plan

    @property
    def signature(self) -> Mapping[str, Any]:
        return self.manifest["signature"]

    @property
    def plan(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self._plan)

    def __call__(self, *inputs: torch.Tensor) -> Any:
        self._inputs.check(inputs)
        with torch.no_grad():
            return self._glue(*inputs)

    def __repr__(self) -> str:
        backends = ", ".join(f"{entry['segment']}:{entry['backend']}" for entry in self._plan)
        return f"PorosModule({self.path!r}, device={self.device}, segments=[{backends}])"
