"""Reading and making ``prim::Constant`` nodes, and TorchScript's integer encodings of enums.

TorchScript stores a ``ScalarType`` (dtype) or ``MemoryFormat`` argument as an ``int`` constant;
the front end may also hand us ``torch.dtype`` / ``torch.memory_format`` objects. The decoders
here accept both, so passes compare meanings, not encodings.
"""

from __future__ import annotations

from typing import Any

import torch

from packager.errors import InternalError
from packager.ir.graph import Node, Value
from packager.ir.types import BOOL, DEVICE, FLOAT, INT, NONE, STR, IRType, ListType, ScalarType, TensorType

__all__ = [
    "is_constant",
    "constant_value",
    "insert_constant",
    "type_of_constant",
    "dtype_name",
    "as_dtype",
    "as_memory_format",
    "constant_int_list",
]

# c10::ScalarType codes as TorchScript writes them (quantized types have no use here).
_DTYPE_CODES = {
    0: torch.uint8, 1: torch.int8, 2: torch.int16, 3: torch.int32, 4: torch.int64,
    5: torch.float16, 6: torch.float32, 7: torch.float64, 8: torch.complex32,
    9: torch.complex64, 10: torch.complex128, 11: torch.bool, 15: torch.bfloat16,
}

# The IR type of a dtype value, as the TorchScript front end writes it.
_DTYPE_VALUE = ScalarType("ScalarType")

# c10::MemoryFormat codes.
_MEMORY_FORMAT_CODES = {
    0: torch.contiguous_format, 1: torch.preserve_format,
    2: torch.channels_last, 3: torch.channels_last_3d,
}


def is_constant(value: Value) -> bool:
    return value.producer is not None and value.producer.op == "prim::Constant"


def constant_value(value: Value) -> Any:
    """The Python value of a ``prim::Constant`` output."""
    if not is_constant(value):
        raise InternalError(f"%{value.name} is not a prim::Constant output")
    return value.producer.attrs.get("value")


def type_of_constant(value: Any) -> IRType:
    """The IR type of a constant's Python value."""
    if isinstance(value, torch.Tensor):
        return TensorType(dtype_name(value.dtype), tuple(int(d) for d in value.shape))
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, torch.dtype):
        return _DTYPE_VALUE
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return FLOAT
    if isinstance(value, str):
        return STR
    if value is None:
        return NONE
    if isinstance(value, torch.device):
        return DEVICE
    if isinstance(value, list):
        element = type_of_constant(value[0]) if value else INT
        if isinstance(element, TensorType):
            element = TensorType()
        return ListType(element)
    return ScalarType(type(value).__name__)


def insert_constant(before: Node, value: Any, type_: IRType | None = None) -> Value:
    """A new ``prim::Constant`` holding ``value``, placed just before ``before`` in its block."""
    node = before.owner.insert_node_before(
        before, "prim::Constant", (), [type_ or type_of_constant(value)], attrs={"value": value}
    )
    return node.output


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` -> ``"float32"``, the name IR types use."""
    return str(dtype).removeprefix("torch.")


def as_dtype(value: Any) -> torch.dtype | None:
    """A dtype from a ``torch.dtype`` or TorchScript's int code; None for anything else."""
    if isinstance(value, torch.dtype):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return _DTYPE_CODES.get(value)
    return None


def as_memory_format(value: Any) -> torch.memory_format | None:
    """A memory format from ``torch.memory_format`` or TorchScript's int code; None otherwise."""
    if isinstance(value, torch.memory_format):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return _MEMORY_FORMAT_CODES.get(value)
    return None


def constant_int_list(value: Value) -> list[int] | None:
    """The ints of a constant ``int[]``: a list constant or a ``prim::ListConstruct`` of int
    constants; None when any element is not known at build time."""
    if is_constant(value):
        items = constant_value(value)
        if isinstance(items, (list, tuple)) and all(_is_int(item) for item in items):
            return list(items)
        return None
    producer = value.producer
    if producer is None or producer.op != "prim::ListConstruct":
        return None
    items = []
    for element in producer.inputs:
        if not is_constant(element) or not _is_int(constant_value(element)):
            return None
        items.append(constant_value(element))
    return items


def _is_int(item: Any) -> bool:
    return isinstance(item, int) and not isinstance(item, bool)
