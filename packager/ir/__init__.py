"""The common IR: a typed SSA graph in the ATen vocabulary (see docs/internals.md)."""

from packager.ir.graph import RETURN_OP, Block, Graph, Node, Usage, Value, copy_block_body, copy_node_into
from packager.ir.interpreter import run_graph
from packager.ir.printer import format_graph
from packager.ir.types import (
    BOOL,
    DEVICE,
    DTYPE_NAMES,
    FLOAT,
    INT,
    NONE,
    STR,
    Dim,
    IRType,
    ListType,
    OptionalType,
    ScalarType,
    SymDim,
    TensorType,
    TupleType,
)
from packager.ir.verify import VerificationError, verify

__all__ = [
    "Block", "Graph", "Node", "Usage", "Value", "RETURN_OP", "copy_block_body", "copy_node_into",
    "run_graph", "format_graph", "verify", "VerificationError",
    "IRType", "TensorType", "ScalarType", "ListType", "TupleType", "OptionalType", "SymDim", "Dim",
    "DTYPE_NAMES", "INT", "FLOAT", "BOOL", "STR", "NONE", "DEVICE",
]
