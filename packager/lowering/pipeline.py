"""The standard lowering pipeline and the one call the packager makes: :func:`lower`.

Order within a round: read traced shape arithmetic from ints instead of 0-dim tensors (so the
sizes fold with the rest), fold constants (turns flags such as dropout's ``train`` and weight
preprocessing into constants), drop no-ops (so a conv and its batch norm become adjacent, and
an in-place op sees the node that really made its input), make in-place ops out-of-place where
nobody can tell, fold batch norms into convs, then remove what became dead. The pass manager
repeats the round until nothing changes, so the order only decides how many rounds that takes.

These live apart from ``pass_manager.py`` because the passes import :class:`Pass` from there.
"""

from __future__ import annotations

from typing import Sequence

from packager.ir.graph import Graph
from packager.lowering.constant_folding import ConstantFolding
from packager.lowering.dead_code_elimination import DeadCodeElimination
from packager.lowering.fold_conv_batchnorm import FoldConvBatchNorm
from packager.lowering.functionalize_inplace import FunctionalizeInplace
from packager.lowering.pass_manager import LoweringReport, Pass, PassManager
from packager.lowering.remove_noops import RemoveNoops
from packager.lowering.scalarize_shape_arithmetic import ScalarizeShapeArithmetic

__all__ = ["default_passes", "lower"]


def default_passes() -> list[Pass]:
    """A fresh list of fresh pass objects, in pipeline order."""
    return [
        ScalarizeShapeArithmetic(),
        ConstantFolding(),
        RemoveNoops(),
        FunctionalizeInplace(),
        FoldConvBatchNorm(),
        DeadCodeElimination(),
    ]


def lower(
    graph: Graph,
    *,
    passes: Sequence[Pass] | None = None,
    max_iterations: int = 10,
    verify_each: bool = True,
) -> LoweringReport:
    """Rewrite ``graph`` in place with ``passes`` (default: :func:`default_passes`) until nothing
    changes; raises :class:`packager.errors.LoweringError` naming the pass that failed."""
    manager = PassManager(
        default_passes() if passes is None else passes,
        max_iterations=max_iterations,
        verify_each=verify_each,
    )
    return manager.run(graph)
