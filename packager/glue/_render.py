"""IR types, constants and names as TorchScript source text.

Everything here is a pure function of its arguments, so the same graph always renders to the
same source bytes.
"""

from __future__ import annotations

import builtins
import keyword
import math
import re
from typing import Any, Callable

import torch

from packager.errors import BackendError
from packager.ir import IRType, ListType, OptionalType, ScalarType, TensorType, TupleType

__all__ = ["RESERVED_NAMES", "Names", "TensorWriter", "render_type", "render_literal", "same_rendered_type"]

# Names the generated source uses itself; a value never gets one of them.
RESERVED_NAMES = frozenset(
    set(keyword.kwlist)
    | set(keyword.softkwlist)
    | set(dir(builtins))
    | {"self", "torch", "Tensor", "Dict", "List", "Tuple", "Optional", "Union"}
)

# TorchScript spells these scalar types differently in annotations than in its graph printer.
_SCALAR_TYPE_NAMES = {
    "int": "int",
    "float": "float",
    "bool": "bool",
    "str": "str",
    "complex": "complex",
    "Device": "torch.device",
    "NoneType": "None",
    # dtypes, layouts and memory formats are ints inside TorchScript.
    "ScalarType": "int",
    "Layout": "int",
    "MemoryFormat": "int",
    # TorchScript canonicalises this Union to its `number` (schema `Scalar`) type.
    "Scalar": "Union[int, float, complex]",
    "number": "Union[int, float, complex]",
}

_NOT_IDENTIFIER = re.compile(r"[^0-9A-Za-z_]")


class Names:
    """Hands out Python identifiers, each at most once, derived from IR value names."""

    __slots__ = ("_taken",)

    def __init__(self, reserved: frozenset[str] = RESERVED_NAMES) -> None:
        self._taken = set(reserved)

    def fresh(self, base: str) -> str:
        stem = _NOT_IDENTIFIER.sub("_", base)
        # A leading underscore would make a private (or, with two, a name-mangled) name.
        if not stem or not stem[0].isalpha():
            stem = "v" + stem
        candidate = stem
        suffix = 2
        while candidate in self._taken:
            candidate = f"{stem}_{suffix}"
            suffix += 1
        self._taken.add(candidate)
        return candidate


def render_type(type_: IRType, where: str) -> str:
    """The TorchScript annotation for ``type_``; ``where`` names the value for error messages."""
    if isinstance(type_, TensorType):
        return "Tensor"
    if isinstance(type_, ScalarType):
        try:
            return _SCALAR_TYPE_NAMES[type_.name]
        except KeyError:
            pass
    elif isinstance(type_, ListType):
        return f"List[{render_type(type_.element, where)}]"
    elif isinstance(type_, OptionalType):
        return f"Optional[{render_type(type_.element, where)}]"
    elif isinstance(type_, TupleType):
        if not type_.elements:
            return "Tuple[()]"
        return "Tuple[" + ", ".join(render_type(e, where) for e in type_.elements) + "]"
    raise BackendError(
        f"{where}: the glue cannot declare a value of IR type {type_} in TorchScript; "
        "give the value a TorchScript type (int, float, bool, str, Device, Tensor, or "
        "lists, tuples and optionals of them) or keep it inside an engine segment"
    )


def same_rendered_type(first: IRType, second: IRType) -> bool:
    """Whether TorchScript would see the two IR types as the same annotation."""
    try:
        return render_type(first, "") == render_type(second, "")
    except BackendError:
        return False


# Writes a tensor constant (the glue stores tensors as buffers): tensor -> expression.
TensorWriter = Callable[[torch.Tensor], str]


def render_literal(value: Any, type_: IRType | None, where: str, tensor: TensorWriter | None = None) -> str:
    """A TorchScript expression for a constant; ``type_`` steers empty lists and int/float
    ambiguity (the IR type wins over the Python type of the value); ``tensor`` writes tensors."""
    if isinstance(value, torch.Tensor) and tensor is not None:
        return tensor(value)
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        if _is_float_type(type_):
            return _render_float(float(value))
        return repr(value)
    if isinstance(value, float):
        return _render_float(value)
    if isinstance(value, complex):
        return f"complex({_render_float(value.real)}, {_render_float(value.imag)})"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, torch.device):
        return f"torch.device({str(value)!r})"
    if isinstance(value, (torch.dtype, torch.layout, torch.memory_format)):
        # str() gives the public spelling: torch.float32, torch.strided, torch.channels_last.
        return str(value)
    if isinstance(value, (list, tuple)):
        return _render_sequence(value, type_, where, tensor)
    raise BackendError(
        f"{where}: the glue cannot write a constant of Python type {type(value).__name__} "
        f"({value!r:.80}); constants must be scalars, strings, None, devices, dtypes, "
        "tensors, or lists and tuples of them"
    )


def _render_sequence(value: list | tuple, type_: IRType | None, where: str, tensor: TensorWriter | None) -> str:
    if isinstance(type_, OptionalType):
        type_ = type_.element
    if isinstance(value, list):
        element_type = type_.element if isinstance(type_, ListType) else None
        if not value:
            if element_type is None:
                raise BackendError(
                    f"{where}: an empty list constant needs a list IR type (got {type_}) so the "
                    "glue can annotate it for TorchScript"
                )
            return f"torch.jit.annotate(List[{render_type(element_type, where)}], [])"
        return "[" + ", ".join(render_literal(v, element_type, where, tensor) for v in value) + "]"
    element_types: tuple[IRType | None, ...]
    if isinstance(type_, TupleType) and len(type_.elements) == len(value):
        element_types = type_.elements
    else:
        element_types = (None,) * len(value)
    items = [render_literal(v, t, where, tensor) for v, t in zip(value, element_types)]
    return "(" + items[0] + ",)" if len(items) == 1 else "(" + ", ".join(items) + ")"


def _is_float_type(type_: IRType | None) -> bool:
    if isinstance(type_, OptionalType):
        type_ = type_.element
    return isinstance(type_, ScalarType) and type_.name == "float"


def _render_float(value: float) -> str:
    if math.isnan(value):
        return 'float("nan")'
    if math.isinf(value):
        return 'float("inf")' if value > 0 else 'float("-inf")'
    return repr(value)
