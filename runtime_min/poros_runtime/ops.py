"""Registers ``poros::execute_engine``, the one operator through which glue calls engines.

Schema: ``poros::execute_engine(Tensor[] inputs, str engine) -> Tensor[]``.  The glue calls it
as ``torch.ops.poros.execute_engine(xs, self.poros_instance + "/seg0")``; the implementation
looks ``engine`` up in :data:`ENGINES` and calls it.  The packager imports this module before
scripting glue so that TorchScript can resolve the operator; the runtime imports it before
``torch.jit.load``.  Importing (or reloading) it any number of times registers the operator
once.

Outputs are returned as the engine made them, never cloned: they may share memory with an
input or with each other (AOTInductor returns views and pass-through inputs as eager would).
That is safe because the partitioner leaves in the glue every view whose memory the model
writes in place (see ``packager/segment/partition.py``); memory nothing writes may be shared.
"""

from __future__ import annotations

import torch

from ._engine_registry import EngineRegistry

__all__ = ["ENGINES", "OPERATOR", "SCHEMA", "is_registered"]

OPERATOR = "poros::execute_engine"
SCHEMA = "execute_engine(Tensor[] inputs, str engine) -> Tensor[]"


def is_registered() -> bool:
    """Whether ``torch.ops.poros.execute_engine`` resolves in this process."""
    return hasattr(torch.ops.poros, "execute_engine")


def _execute_engine(inputs: list[torch.Tensor], engine: str) -> list[torch.Tensor]:
    return ENGINES.lookup(engine)(inputs)


def _register_operator() -> torch.library.Library | None:
    if is_registered():
        return None
    library = torch.library.Library("poros", "FRAGMENT")
    library.define(SCHEMA)
    # CompositeExplicitAutograd: one kernel for every device, called once per engine call.
    # Engines are opaque to autograd; the runtime calls the glue under torch.no_grad().
    library.impl("execute_engine", _execute_engine, "CompositeExplicitAutograd")
    return library


# importlib.reload re-runs this file in the same namespace: keep the registry and the Library
# object of the first run (dropping the Library would unregister the operator).
if "_LIBRARY" not in globals():
    ENGINES = EngineRegistry()
    _LIBRARY = _register_operator()
