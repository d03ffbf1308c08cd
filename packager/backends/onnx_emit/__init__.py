"""ONNX emission for engine backends: an IR segment -> ``onnx.ModelProto`` through one explicit
ATen -> ONNX table (``_table.py``), for the TensorRT ONNX parser (decision 3, DESIGN.md)."""

from packager.backends.onnx_emit._table import EMISSION_TABLE, EmissionEntry, EmissionTable, ShapeTensor
from packager.backends.onnx_emit.emitter import OPSETS, emission_capability, emit_onnx

__all__ = [
    "emit_onnx", "emission_capability", "EMISSION_TABLE", "EmissionTable", "EmissionEntry", "ShapeTensor",
    "OPSETS",
]
