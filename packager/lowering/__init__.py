"""Lowering: rewrite passes over the IR between import and partitioning (see docs/internals.md).

Each pass lives in its own module with its test beside it; :func:`lower` runs the standard
pipeline (:func:`default_passes`) to a fixed point and returns a :class:`LoweringReport`.
"""

from packager.lowering.constant_folding import ConstantFolding
from packager.lowering.dead_code_elimination import DeadCodeElimination
from packager.lowering.fold_conv_batchnorm import FoldConvBatchNorm
from packager.lowering.functionalize_inplace import FunctionalizeInplace
from packager.lowering.pass_manager import LoweringReport, NodeNote, Pass, PassManager, PassRun
from packager.lowering.pipeline import default_passes, lower
from packager.lowering.remove_noops import RemoveNoops
from packager.lowering.scalarize_shape_arithmetic import ScalarizeShapeArithmetic

__all__ = [
    "lower",
    "default_passes",
    "Pass",
    "PassManager",
    "PassRun",
    "NodeNote",
    "LoweringReport",
    "ConstantFolding",
    "DeadCodeElimination",
    "FoldConvBatchNorm",
    "FunctionalizeInplace",
    "RemoveNoops",
    "ScalarizeShapeArithmetic",
]
