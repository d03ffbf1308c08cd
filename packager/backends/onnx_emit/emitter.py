"""IR segment -> ONNX ``ModelProto``, node by node through the ATen -> ONNX table (``_table.py``).

* segment params -> graph inputs and segment returns -> graph outputs, named after the IR values;
  a static dim is a ``dim_value``, a symbolic one a ``dim_param`` holding its expression
  (``"s0"``, ``"2*s0"``), so the TensorRT builder can make profiles from the symbol table;
* tensor constants -> initializers (named after the IR value); scalar and list constants are
  consumed while emitting (they become attributes or small int64 initializers);
* shape arithmetic (``aten::size``, int arithmetic, lists of ints with symbolic entries,
  ``prim::NumToTensor`` / ``aten::Int``) -> ``Shape`` / ``Gather`` / ``Concat`` / int64 math when a
  size is symbolic, folded to constants when it is static.

Every node must pass :func:`emission_capability` first; the partitioner asks the same function,
so a node refused here never reaches the emitter. Each emitted model passes
``onnx.checker.check_model(model, full_check=True)`` (the tests check it for every table entry).
"""

from __future__ import annotations

from typing import Any

import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from packager.backends.base import check_segment_boundaries
from packager.backends.onnx_emit._table import EMISSION_TABLE, ShapeTensor
from packager.errors import BackendError, InternalError, PorosError, UsageError
from packager.ir.graph import Graph, Node, Value
from packager.ir.ops import resolve_overload
from packager.ir.types import SymDim, TensorType

__all__ = ["emit_onnx", "emission_capability", "Emission", "OPSETS", "ONNX_DTYPES"]

# Opsets the table is written for (LayerNormalization needs 17; ReduceMean's axes move from an
# attribute to an input at 18, which Emission.reduce handles).
OPSETS = range(17, 22)

ONNX_DTYPES = {
    "float32": TensorProto.FLOAT,
    "float16": TensorProto.FLOAT16,
    "bfloat16": TensorProto.BFLOAT16,
    "float64": TensorProto.DOUBLE,
    "int64": TensorProto.INT64,
    "int32": TensorProto.INT32,
    "int16": TensorProto.INT16,
    "int8": TensorProto.INT8,
    "uint8": TensorProto.UINT8,
    "bool": TensorProto.BOOL,
}

_TORCH_DTYPES = {name: getattr(torch, name) for name in ONNX_DTYPES}


def emission_capability(node: Node) -> str | None:
    """None if the emitter translates ``node`` to ONNX, else why not (one sentence)."""
    entry = EMISSION_TABLE.lookup(node)
    if entry is None:
        return f"{node.kind} has no ONNX emitter"
    for value in (*node.inputs, *node.outputs):
        if not isinstance(value.type, TensorType):
            continue
        if value.type.dtype not in ONNX_DTYPES:
            return f"{node.kind}: tensor %{value.name} has dtype {value.type.dtype or 'unknown'}, which ONNX emission does not take"
        if value.type.shape is None:
            return f"{node.kind}: tensor %{value.name} has an unknown rank; ONNX emission needs ranks from shape inference"
    for position in entry.constant_args:
        if position < len(node.inputs) and not _known_at_build_time(node.inputs[position]):
            return f"{node.kind} needs a constant {_argument_name(node, position)} to emit ONNX"
    return None if entry.check is None else entry.check(node)


def emit_onnx(segment: Graph, *, opset: int = 17) -> onnx.ModelProto:
    """The ONNX model of an outlined segment (tensor params and returns)."""
    if opset not in OPSETS:
        raise UsageError(f"ONNX emission supports opsets {OPSETS.start} to {OPSETS.stop - 1}, not {opset}")
    check_segment_boundaries(segment)
    emission = Emission(segment, opset)
    for node in segment.block.nodes:
        reason = emission_capability(node)
        if reason is not None:
            raise BackendError(
                f"segment {segment.name!r}: cannot emit {node!r} as ONNX: {reason}. The partitioner "
                "should have left this node in the TorchScript glue."
            )
        try:
            EMISSION_TABLE.lookup(node).emit(emission, node)
        except PorosError:
            raise
        except Exception as error:
            raise InternalError(f"segment {segment.name!r}: emitting {node!r} failed: {error}") from error
    return emission.model()


def _known_at_build_time(value: Value) -> bool:
    producer = value.producer
    if producer is None:
        return False
    if producer.op == "prim::Constant":
        return True
    return producer.op == "prim::ListConstruct" and all(
        item.producer is not None and item.producer.op == "prim::Constant" for item in producer.inputs
    )


def _argument_name(node: Node, position: int) -> str:
    try:
        return f"'{resolve_overload(node.op, node.overload)._schema.arguments[position].name}' argument"
    except (PorosError, IndexError):
        return f"argument {position}"


def _value_info(name: str, value: Value) -> onnx.ValueInfoProto:
    dims = [dim.expr if isinstance(dim, SymDim) else int(dim) for dim in value.type.shape]
    return helper.make_tensor_value_info(name, ONNX_DTYPES[value.type.dtype], dims)


def _tensor_proto(name: str, tensor: torch.Tensor) -> onnx.TensorProto:
    tensor = tensor.detach().cpu().contiguous()
    if tensor.dtype == torch.bfloat16:
        raw = tensor.view(torch.int16).numpy().tobytes()
        return helper.make_tensor(name, TensorProto.BFLOAT16, list(tensor.shape), raw, raw=True)
    return numpy_helper.from_array(tensor.numpy(), name)


class Emission:
    """The ONNX graph being built, and what each IR value became (see ``_table.py``)."""

    def __init__(self, segment: Graph, opset: int) -> None:
        self.segment = segment
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._values: dict[int, Any] = {}
        self._names: set[str] = {value.name for value in segment.inputs}
        self._constants: dict[tuple, str] = {}
        # ONNX names produced by a node of this emission and not yet read by another one: the
        # ones bind() may rename after the IR value they become.
        self._producer_of: dict[str, tuple[onnx.NodeProto, int]] = {}
        self._read: set[str] = set()
        self._outputs = {id(value) for value in segment.outputs}
        for value in segment.inputs:
            self._values[id(value)] = value.name

    # ------------------------------------------------------------ IR values
    def bind(self, value: Value, item: Any) -> None:
        """``value`` is ``item`` (an ONNX name for a tensor, else see ``_table.py``)."""
        if value.is_tensor and isinstance(item, str):
            item = self._rename(item, value.name)
        self._values[id(value)] = item

    def lookup(self, value: Value) -> Any:
        try:
            return self._values[id(value)]
        except KeyError:
            raise InternalError(f"%{value.name} was used before the emitter bound it") from None

    def tensor(self, value: Value) -> str:
        item = self.lookup(value)
        if not isinstance(item, str):
            raise InternalError(f"%{value.name} should be an ONNX tensor, got {item!r}")
        return item

    def is_known(self, value: Value) -> bool:
        return not value.is_tensor and not isinstance(self.lookup(value), ShapeTensor)

    def known(self, value: Value) -> Any:
        item = self.lookup(value)
        if value.is_tensor or isinstance(item, ShapeTensor):
            raise InternalError(f"%{value.name} should be known at build time")
        return item

    def dtype(self, value: Value) -> str:
        return value.type.dtype

    def rank(self, value: Value) -> int:
        return len(value.type.shape)

    def constant(self, node: Node) -> Any:
        value = node.attrs.get("value")
        if not isinstance(value, torch.Tensor):
            return value
        name = self._fresh(node.output.name)
        self.initializers.append(_tensor_proto(name, value))
        return name

    # --------------------------------------------------------------- nodes
    def add_node(self, op_type: str, inputs: list[str], outputs: int = 1, **attributes: Any) -> list[str]:
        names = [self._fresh(f"{op_type}_{len(self.nodes)}") for _ in range(outputs)]
        node = helper.make_node(op_type, inputs, names, **attributes)
        self.nodes.append(node)
        self._read.update(inputs)
        for index, name in enumerate(names):
            self._producer_of[name] = (node, index)
        return names

    def op(self, op_type: str, inputs: list[str], **attributes: Any) -> str:
        return self.add_node(op_type, inputs, 1, **attributes)[0]

    def cast(self, name: str, source: str, target: str) -> str:
        return name if source == target else self.op("Cast", [name], to=ONNX_DTYPES[target])

    def reduce(self, op_type: str, x: str, axes: list[int], keepdims: int) -> str:
        if not axes:
            return self.op(op_type, [x], keepdims=keepdims)
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.op(op_type, [x, self.ints(axes)], keepdims=keepdims)
        return self.op(op_type, [x], axes=axes, keepdims=keepdims)

    # ------------------------------------------------------------- constants
    def onnx_dtype(self, dtype: str) -> int:
        return ONNX_DTYPES[dtype]

    def tensor_attribute(self, number: Any, dtype: str) -> onnx.TensorProto:
        return _tensor_proto("value", torch.tensor([number], dtype=_TORCH_DTYPES[dtype]))

    def scalar(self, number: Any, dtype: str) -> str:
        """A 0-d initializer holding ``number`` as ``dtype``."""
        return self._initializer(("scalar", dtype, repr(number)), torch.tensor(number, dtype=_TORCH_DTYPES[dtype]))

    def ints(self, values: list[int]) -> str:
        """A 1-d int64 initializer."""
        return self._initializer(("ints", tuple(values)), torch.tensor(list(values), dtype=torch.int64))

    def filled(self, shape: tuple | list, fill: float, dtype: str) -> str:
        return self._initializer(("filled", tuple(shape), fill, dtype), torch.full(tuple(shape), fill, dtype=_TORCH_DTYPES[dtype]))

    def _initializer(self, key: tuple, tensor: torch.Tensor) -> str:
        if key not in self._constants:
            name = self._fresh("const")
            self.initializers.append(_tensor_proto(name, tensor))
            self._constants[key] = name
        return self._constants[key]

    # -------------------------------------------------------- shape arithmetic
    def int_tensor(self, item: Any) -> str:
        """An int64 1-d ONNX tensor for an int, an int list or a :class:`ShapeTensor`."""
        if isinstance(item, ShapeTensor):
            return item.name
        if isinstance(item, (list, tuple)):
            if any(isinstance(element, ShapeTensor) for element in item):
                return self.concat_ints(list(item))
            return self.ints(list(item))
        return self.ints([int(item)])

    def concat_ints(self, items: list[Any]) -> str:
        return self.op("Concat", [self.int_tensor(item) for item in items], axis=0)

    def operand(self, value: Value, dtype: str) -> str:
        """A tensor, a run-time int or a constant number as an ONNX operand of type ``dtype``."""
        if value.is_tensor:
            return self.cast(self.tensor(value), self.dtype(value), dtype)
        item = self.lookup(value)
        if isinstance(item, ShapeTensor):
            return self.cast(self.op("Reshape", [item.name, self.ints([])]), "int64", dtype)
        return self.scalar(item, dtype)

    def dims(self, value: Value, start: int, end: int) -> str | None:
        """``shape[start:end]`` of a tensor as an int64 tensor (a constant when static), None if empty."""
        if start >= end:
            return None
        sizes = value.type.shape[start:end]
        if all(isinstance(size, int) for size in sizes):
            return self.ints(list(sizes))
        return self.op("Shape", [self.tensor(value)], start=start, end=end)

    # ---------------------------------------------------------------- naming
    def _fresh(self, hint: str) -> str:
        name, counter = hint, 0
        while name in self._names:
            counter += 1
            name = f"{hint}_{counter}"
        self._names.add(name)
        return name

    def _rename(self, name: str, wanted: str) -> str:
        """Give a just-produced ONNX value the IR value's name, so the ONNX model reads like the IR."""
        producer = self._producer_of.get(name)
        if producer is None or name in self._read or name == wanted or wanted in self._names:
            return name
        node, index = producer
        node.output[index] = wanted
        del self._producer_of[name]
        self._names.add(wanted)
        self._producer_of[wanted] = producer
        return wanted

    # ------------------------------------------------------------------ model
    def model(self) -> onnx.ModelProto:
        inputs = [_value_info(value.name, value) for value in self.segment.inputs]
        outputs = []
        used: set[str] = set()
        input_names = {value.name for value in self.segment.inputs}
        initializer_names = {tensor.name for tensor in self.initializers}
        for value in self.segment.outputs:
            name = self.tensor(value)
            if name != value.name or name in used or name in input_names or name in initializer_names:
                # ONNX output names must be unique and must be produced by a node.
                target = self._fresh(value.name if value.name not in self._names else f"{value.name}_output")
                name = self.op("Identity", [name])
                self.nodes[-1].output[0] = target
                name = target
            used.add(name)
            outputs.append(_value_info(name, value))
        graph = helper.make_graph(self.nodes, self.segment.name, inputs, outputs, self.initializers)
        opsets = [helper.make_opsetid("", self.opset)]
        return helper.make_model(
            graph, opset_imports=opsets, producer_name="poros-pack",
            ir_version=helper.find_min_ir_version_for(opsets),
        )
