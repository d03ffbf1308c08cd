"""ONNX front end: an ``.onnx`` file (or a ``ModelProto``) -> the IR.

Steps:

1. load with ``onnx.load`` (external data is read from the model's folder); check the default
   domain's opset: 13 to 21 are taken as they are, an older model is converted to opset 13 with
   ``onnx.version_converter``, anything else is refused naming the opset.
2. input shapes: one :class:`InputSpec` per graph input (initializers are not inputs), or, with
   no specs, the shapes the model declares; a symbolic dim then needs a spec with a range. The
   specs are written back into the model and ONNX's own shape inference runs, so that handlers
   know ranks, static sizes and element types (``Flatten``'s axis, integer ``Div``, ...).
3. every node goes through the ONNX -> ATen table (:mod:`packager.frontends._onnx_ops`). A node
   whose inputs are all known at build time is folded with ``onnx.reference`` instead (shape
   arithmetic, small constant sub-graphs); ``Shape`` of a tensor with dynamic dims stays a list
   of ``aten::size`` ints until an op needs a tensor. An op outside the table is an
   :class:`UnsupportedOpError` listing every such node; it is never dropped.
4. types and shapes: :mod:`packager.frontends._shape_inference`, as for TorchScript.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnx
import onnx.checker
import onnx.numpy_helper
import onnx.reference
import onnx.shape_inference
import onnx.version_converter
import torch
from google.protobuf.message import DecodeError

from packager.errors import FrontendError, UnsupportedOpError, UsageError
from packager.frontends._onnx_ops import ONNX_TO_ATEN
from packager.frontends._shape_inference import infer_types
from packager.frontends.torchscript import DTYPE_VALUE
from packager.ir.graph import Graph, Value
from packager.ir.types import BOOL, FLOAT, INT, NONE, STR, IRType, ListType, OptionalType, TensorType
from packager.ir.verify import verify
from packager.spec import DimSpec, InputSpec

__all__ = ["import_onnx", "OnnxNodeContext", "MIN_OPSET", "MAX_OPSET"]

MIN_OPSET = 13
MAX_OPSET = 21
_DEFAULT_DOMAINS = ("", "ai.onnx")
# Folded outputs larger than this stay computed at run time (keeps big tensors out of the graph).
_MAX_FOLDED_ELEMENTS = 1 << 16

_ONNX_TO_TORCH = {
    onnx.TensorProto.FLOAT: torch.float32, onnx.TensorProto.FLOAT16: torch.float16,
    onnx.TensorProto.BFLOAT16: torch.bfloat16, onnx.TensorProto.DOUBLE: torch.float64,
    onnx.TensorProto.INT64: torch.int64, onnx.TensorProto.INT32: torch.int32,
    onnx.TensorProto.INT16: torch.int16, onnx.TensorProto.INT8: torch.int8,
    onnx.TensorProto.UINT8: torch.uint8, onnx.TensorProto.BOOL: torch.bool,
    onnx.TensorProto.COMPLEX64: torch.complex64, onnx.TensorProto.COMPLEX128: torch.complex128,
}
_TORCH_TO_ONNX = {dtype: code for code, dtype in _ONNX_TO_TORCH.items()}


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def import_onnx(
    model: str | os.PathLike | onnx.ModelProto,
    inputs: Sequence[InputSpec] | None = None,
    *,
    name: str | None = None,
) -> Graph:
    """Import an ONNX model into a typed IR graph.

    ``inputs`` holds one :class:`InputSpec` per graph input (initializers excluded), in order;
    None uses the shapes the model declares, which must then be static. Dynamic dims become the
    graph's symbols (``graph.meta["symbols"]``).
    """
    proto, origin, default_name = _load(model)
    proto = _normalize_opset(proto, origin)
    graph_inputs = _graph_inputs(proto)
    specs = _input_specs(graph_inputs, inputs, origin)
    _declare_input_shapes(graph_inputs, specs)
    known = _onnx_value_info(proto)
    graph = _Importer(proto, known, origin, name or default_name).run(graph_inputs, specs)
    graph.meta["source_format"] = "onnx"
    infer_types(graph, specs)
    verify(graph)
    return graph


# ------------------------------------------------------------------------------ loading
def _load(model) -> tuple[onnx.ModelProto, str, str]:
    if isinstance(model, onnx.ModelProto):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)  # specs are written into the inputs: never edit the caller's proto
        label = model.graph.name or "onnx_model"
        return copy, f"ONNX model {label!r}", label
    if not isinstance(model, (str, os.PathLike)):
        raise UsageError(f"model must be a path or an onnx.ModelProto, got {type(model).__name__}")
    path = Path(model)
    if not path.exists():
        raise UsageError(f"model file {str(path)!r} does not exist; pass the path of an .onnx model")
    if path.is_dir():
        raise UsageError(f"{str(path)!r} is a directory; pass the path of an .onnx model file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError) as error:
        raise FrontendError(f"{str(path)!r} is not an ONNX model (onnx.load said: {_first_line(error)}); "
                            "pass a file written by onnx.save or torch.onnx.export") from error
    if not proto.graph.output or not proto.opset_import:
        raise FrontendError(f"{str(path)!r} is not an ONNX model (no graph outputs or no opset); "
                            "pass a file written by onnx.save or torch.onnx.export")
    try:
        onnx.load_external_data_for_model(proto, str(path.parent))
    except (OSError, ValueError, onnx.checker.ValidationError) as error:
        raise FrontendError(f"{str(path)!r}: cannot read its external data from {str(path.parent)!r}: "
                            f"{_first_line(error)}; keep the data files next to the model") from error
    return proto, str(path), path.stem


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _default_opset(proto: onnx.ModelProto) -> int | None:
    for entry in proto.opset_import:
        if entry.domain in _DEFAULT_DOMAINS:
            return entry.version
    return None


def _normalize_opset(proto: onnx.ModelProto, origin: str) -> onnx.ModelProto:
    opset = _default_opset(proto)
    if opset is None:
        raise FrontendError(f"{origin} imports no default-domain (ai.onnx) opset; the packager maps ONNX ops "
                            f"of opsets {MIN_OPSET} to {MAX_OPSET}")
    if MIN_OPSET <= opset <= MAX_OPSET:
        return proto
    if opset > MAX_OPSET:
        raise FrontendError(f"{origin} uses opset {opset}; supported opsets are {MIN_OPSET} to {MAX_OPSET}. "
                            f"Export it with opset_version={MAX_OPSET} or lower")
    try:
        return onnx.version_converter.convert_version(proto, MIN_OPSET)
    except Exception as error:  # noqa: BLE001 - the converter raises RuntimeError, ValueError, C++ errors
        raise FrontendError(f"{origin} uses opset {opset}, and onnx's version converter could not bring it "
                            f"to opset {MIN_OPSET} ({_first_line(error)}); supported opsets are {MIN_OPSET} to "
                            f"{MAX_OPSET}. Re-export the model with a newer opset") from error


# ------------------------------------------------------------------------------- inputs
def _graph_inputs(proto: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    initializers = {tensor.name for tensor in proto.graph.initializer}
    return [value for value in proto.graph.input if value.name not in initializers]


def _declared_dims(value: onnx.ValueInfoProto) -> list[int | str | None] | None:
    """The model's declared dims: int, dim_param name, or None (unknown); None if no shape."""
    tensor_type = value.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    dims: list[int | str | None] = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(dim.dim_value)
        elif dim.HasField("dim_param") and dim.dim_param:
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return dims


def _declared_dtype(value: onnx.ValueInfoProto, origin: str) -> str:
    if not value.type.HasField("tensor_type"):
        raise UnsupportedOpError(f"{origin}: input {value.name!r} is not a tensor (sequences, maps and optionals "
                                 "are not supported as model inputs)")
    dtype = _ONNX_TO_TORCH.get(value.type.tensor_type.elem_type)
    if dtype is None:
        element = onnx.TensorProto.DataType.Name(value.type.tensor_type.elem_type)
        raise UnsupportedOpError(f"{origin}: input {value.name!r} has element type {element}, which the packager "
                                 "does not support")
    return _dtype_name(dtype)


def _input_specs(graph_inputs, inputs, origin: str) -> list[InputSpec]:
    names = [value.name for value in graph_inputs]
    if inputs is None:
        return [_spec_from_model(value, origin) for value in graph_inputs]
    specs = list(inputs)
    for spec in specs:
        if not isinstance(spec, InputSpec):
            raise UsageError(f"inputs must be InputSpec objects (see packager.spec.parse_input_spec), got {spec!r}")
    if len(specs) != len(graph_inputs):
        raise UsageError(f"{origin} has {len(graph_inputs)} input(s) ({', '.join(names) or 'none'}) but "
                         f"{len(specs)} input spec(s) were given; pass one --input per model input, in order")
    for value, spec in zip(graph_inputs, specs):
        dtype = _declared_dtype(value, origin)
        if spec.dtype != dtype:
            raise UsageError(f"{origin}: input {value.name!r} is {dtype} but its --input says {spec.dtype}; "
                             f"write --input {'x'.join(str(d) for d in spec.dims)}:{dtype}")
        declared = _declared_dims(value)
        if declared is None:
            continue
        if len(declared) != len(spec.dims):
            raise UsageError(f"{origin}: input {value.name!r} has rank {len(declared)} but its --input {spec} "
                             f"has {len(spec.dims)} dims")
    return specs


def _spec_from_model(value: onnx.ValueInfoProto, origin: str) -> InputSpec:
    dtype = _declared_dtype(value, origin)
    declared = _declared_dims(value)
    if declared is None:
        raise UsageError(f"{origin}: input {value.name!r} declares no shape; pass --input with its shape "
                         f"(e.g. 1..8x3x224x224:{dtype})")
    dims = []
    for index, dim in enumerate(declared):
        if not isinstance(dim, int) or dim <= 0:
            label = f"symbolic dim {dim!r}" if isinstance(dim, str) else "an unknown dim"
            raise UsageError(f"{origin}: input {value.name!r} has {label} at position {index}; pass --input with "
                             f"a range for it, one per model input (e.g. LO..HI for that dim)")
        dims.append(DimSpec(dim, dim, dim))
    return InputSpec(tuple(dims), dtype)


def _declare_input_shapes(graph_inputs, specs: list[InputSpec]) -> None:
    """Write the specs into the model's inputs (dynamic dims as ``s<k>``, as the symbols are named)."""
    symbol = 0
    for value, spec in zip(graph_inputs, specs):
        value.type.tensor_type.elem_type = _TORCH_TO_ONNX[getattr(torch, spec.dtype)]
        shape = value.type.tensor_type.shape
        shape.ClearField("dim")
        for dim in spec.dims:
            entry = shape.dim.add()
            if dim.is_static:
                entry.dim_value = dim.min
            else:
                entry.dim_param = f"s{symbol}"
                symbol += 1


class _OnnxValueInfo:
    """What ONNX's shape inference knows about a value: element type and dims (None = unknown)."""

    __slots__ = ("elem_type", "dims")

    def __init__(self, elem_type: int, dims: tuple[int | None, ...] | None) -> None:
        self.elem_type = elem_type
        self.dims = dims


def _onnx_value_info(proto: onnx.ModelProto) -> dict[str, _OnnxValueInfo]:
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - ONNX inference is advisory; handlers ask only what they need
        inferred = proto
    known: dict[str, _OnnxValueInfo] = {}
    graph = inferred.graph
    for value in list(graph.value_info) + list(graph.input) + list(graph.output):
        if not value.type.HasField("tensor_type"):
            continue
        tensor_type = value.type.tensor_type
        dims = None
        if tensor_type.HasField("shape"):
            dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim)
        known[value.name] = _OnnxValueInfo(tensor_type.elem_type, dims)
    return known


# ----------------------------------------------------------------------------- import
class _ShapeList:
    """A 1-D int64 tensor (or a 0-d one, ``scalar``) kept as ints and ``aten::size`` values."""

    __slots__ = ("items", "scalar")

    def __init__(self, items: list[int | Value], scalar: bool = False) -> None:
        self.items = items
        self.scalar = scalar

    @property
    def is_constant(self) -> bool:
        return all(isinstance(item, int) for item in self.items)

    def array(self) -> np.ndarray:
        array = np.array(self.items, dtype=np.int64)
        return array.reshape(()) if self.scalar else array


class _Importer:
    def __init__(self, proto: onnx.ModelProto, known: dict[str, _OnnxValueInfo], origin: str, name: str) -> None:
        self.proto = proto
        self.known = known
        self.origin = origin
        self.opset = _default_opset(proto)
        self.graph = Graph(name)
        # ONNX value name -> an IR value, a build-time array, or a shape list.
        self.values: dict[str, Value | np.ndarray | _ShapeList] = {}
        self.scalar_constants: dict[tuple[str, str], Value] = {}
        self.current_source = ""

    def run(self, graph_inputs, specs: list[InputSpec]) -> Graph:
        self._check_supported()
        for tensor in self.proto.graph.initializer:
            self.values[tensor.name] = onnx.numpy_helper.to_array(tensor)
        names = []
        for value, spec in zip(graph_inputs, specs):
            name = value.name if not value.name.isdigit() else f"input_{value.name}"
            self.values[value.name] = self.graph.add_input(TensorType(spec.dtype), name)
            names.append(value.name)
        self.graph.meta["input_names"] = names
        for index, node in enumerate(self.proto.graph.node):
            self._import_node(node, index)
        self.graph.block.set_returns([self.materialize(output.name) for output in self.proto.graph.output])
        self.graph.meta["output_names"] = [output.name for output in self.proto.graph.output]
        return self.graph

    def _check_supported(self) -> None:
        problems = []
        for node in self.proto.graph.node:
            if node.domain not in _DEFAULT_DOMAINS:
                problems.append(f"{node.op_type} (domain {node.domain!r}) at node {node.name!r}")
            elif node.op_type not in ONNX_TO_ATEN:
                problems.append(f"{node.op_type} at node {node.name!r}")
        if problems:
            listing = "\n".join(f"  - {problem}" for problem in problems[:10])
            more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
            raise UnsupportedOpError(
                f"{self.origin} (opset {self.opset}): {len(problems)} node(s) use ONNX ops with no mapping "
                f"onto ATen:\n{listing}{more}\nSupported ops: {', '.join(ONNX_TO_ATEN.op_types())}"
            )

    # --------------------------------------------------------------------- values
    def materialize(self, name: str) -> Value:
        """The IR value of an ONNX value, emitting a constant or a shape tensor on first use."""
        if name not in self.values:
            raise FrontendError(f"{self.origin}: value {name!r} is used before it is defined (the ONNX graph is "
                                "not topologically sorted, or a sub-graph reads an outer value)")
        entry = self.values[name]
        if isinstance(entry, Value):
            return entry
        if isinstance(entry, _ShapeList) and not entry.is_constant:
            value = self._shape_tensor(entry)
        else:
            array = entry.array() if isinstance(entry, _ShapeList) else entry
            value = self.constant_tensor(array)
        self.values[name] = value
        return value

    def constant_tensor(self, array: np.ndarray) -> Value:
        tensor = torch.from_numpy(np.array(array, copy=True))
        node = self.graph.block.append_node("prim::Constant", (), (), attrs={"value": tensor})
        return node.add_output(TensorType(_dtype_name(tensor.dtype), tuple(tensor.shape)))

    def constant(self, value: Any) -> Value:
        """A prim::Constant for a Python argument (scalar, list of ints/floats, str, None, dtype)."""
        if isinstance(value, torch.dtype):
            type_: IRType = DTYPE_VALUE
        elif value is None:
            type_ = NONE
        elif isinstance(value, bool):
            type_ = BOOL
        elif isinstance(value, int):
            type_ = INT
        elif isinstance(value, float):
            type_ = FLOAT
        elif isinstance(value, str):
            type_ = STR
        elif isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            type_ = ListType(INT)
            value = [int(v) for v in value]
        elif isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
            type_ = ListType(FLOAT)
            value = [float(v) for v in value]
        else:
            raise FrontendError(f"{self.origin}: cannot make a constant of {value!r}")
        key = (str(type_), repr(value))
        if key not in self.scalar_constants:
            node = self.graph.block.append_node("prim::Constant", (), (type_,), attrs={"value": value})
            self.scalar_constants[key] = node.output
        return self.scalar_constants[key]

    def _shape_tensor(self, shape_list: _ShapeList) -> Value:
        items = [self.append("aten::scalar_tensor", [item, torch.int64, None, None, None], "", TensorType())
                 for item in shape_list.items]
        if shape_list.scalar:
            return items[0]
        listed = self.graph.block.append_node("prim::ListConstruct", items, (ListType(TensorType()),)).output
        return self.append("aten::stack", [listed, 0], "", TensorType())

    def append(self, op: str, args: Sequence[Any], overload: str, output_type: IRType) -> Value:
        inputs = [arg if isinstance(arg, Value) else self.constant(arg) for arg in args]
        node = self.graph.block.append_node(op, inputs, (output_type,), overload)
        node.meta["source"] = self.current_source
        return node.output

    # ---------------------------------------------------------------------- nodes
    def _import_node(self, node: onnx.NodeProto, index: int) -> None:
        label = node.name or f"#{index}"
        self.current_source = f"ONNX node {label!r} ({node.op_type})"
        context = OnnxNodeContext(self, node, label)
        if node.op_type != "Constant" and self._fold(node, context):
            return
        results = ONNX_TO_ATEN.get(node.op_type)(context)
        if isinstance(results, (Value, _ShapeList, np.ndarray)):
            results = [results]
        for output, result in zip(node.output, results):
            if output:
                self.values[output] = result

    def _fold(self, node: onnx.NodeProto, context: "OnnxNodeContext") -> bool:
        """Evaluate a node whose inputs are all known at build time with onnx.reference."""
        arrays = [context.constant(i) if name else None for i, name in enumerate(node.input)]
        if any(array is None for array, name in zip(arrays, node.input) if name) or not any(node.input):
            return False
        if any(array.size > _MAX_FOLDED_ELEMENTS for array in arrays if array is not None):
            return False
        feeds = {name: array for name, array in zip(node.input, arrays) if name}
        inputs = [onnx.helper.make_tensor_value_info(name, onnx.helper.np_dtype_to_tensor_dtype(array.dtype), array.shape)
                  for name, array in feeds.items()]
        outputs = [onnx.helper.make_empty_tensor_value_info(name) for name in node.output if name]
        single = onnx.helper.make_model(
            onnx.helper.make_graph([node], "fold", inputs, outputs),
            opset_imports=[onnx.helper.make_opsetid("", self.opset)],
        )
        try:
            results = onnx.reference.ReferenceEvaluator(single).run(None, feeds)
        except Exception:  # noqa: BLE001 - not foldable here: map it as usual, which reports real problems
            return False
        if any(np.asarray(result).size > _MAX_FOLDED_ELEMENTS for result in results):
            return False
        for name, result in zip([n for n in node.output if n], results):
            self.values[name] = np.asarray(result)
        return True


class OnnxNodeContext:
    """What a handler of the ONNX -> ATen table sees of one ONNX node."""

    def __init__(self, importer: _Importer, node: onnx.NodeProto, label: str) -> None:
        self._importer = importer
        self.node = node
        self.label = label
        self.op_type = node.op_type
        self.opset = importer.opset
        self.attrs = {attribute.name: onnx.helper.get_attribute_value(attribute) for attribute in node.attribute}
        for key, value in self.attrs.items():
            if isinstance(value, bytes):
                self.attrs[key] = value.decode()
            elif isinstance(value, list) and value and isinstance(value[0], bytes):
                self.attrs[key] = [item.decode() for item in value]

    # ----------------------------------------------------------------- the node
    @property
    def input_count(self) -> int:
        return len(self.node.input)

    @property
    def output_count(self) -> int:
        return len(self.node.output)

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    def unsupported(self, reason: str) -> None:
        raise UnsupportedOpError(
            f"{self._importer.origin}: ONNX node {self.label!r} ({self.op_type}, opset {self.opset}) cannot be "
            f"mapped onto ATen: {reason}"
        )

    def require_unused_outputs(self, first: int, what: str) -> None:
        if any(self.node.output[first:]):
            self.unsupported(f"{what} is used; only the first output is supported")

    # --------------------------------------------------------------------- inputs
    def _name(self, index: int) -> str:
        return self.node.input[index] if index < len(self.node.input) else ""

    def input(self, index: int) -> Value:
        name = self._name(index)
        if not name:
            self.unsupported(f"input {index} is required")
        return self._importer.materialize(name)

    def optional_input(self, index: int) -> Value | None:
        return self.input(index) if self._name(index) else None

    def constant(self, index: int) -> np.ndarray | None:
        """The input's value if it is known at build time."""
        entry = self._importer.values.get(self._name(index))
        if isinstance(entry, np.ndarray):
            return entry
        if isinstance(entry, _ShapeList) and entry.is_constant:
            return entry.array()
        if isinstance(entry, Value) and entry.producer is not None and entry.producer.op == "prim::Constant":
            value = entry.producer.attrs["value"]
            return value.numpy() if isinstance(value, torch.Tensor) else None
        return None

    def constant_ints(self, index: int, what: str) -> list[int]:
        array = self.constant(index)
        if array is None:
            self.unsupported(f"its {what} input is computed at run time; it must be known at build time")
        return [int(item) for item in array.reshape(-1)]

    def shape_list(self, index: int) -> list[int | Value] | None:
        entry = self._importer.values.get(self._name(index))
        if isinstance(entry, _ShapeList):
            return list(entry.items)
        array = self.constant(index)
        if array is not None and array.ndim == 1 and array.dtype == np.int64:
            return [int(item) for item in array]
        return None

    def int_list(self, index: int, what: str) -> list[int | Value]:
        items = self.shape_list(index)
        if items is None:
            items = self.constant_ints(index, what)
        return items

    def pass_shape_list(self, index: int) -> _ShapeList:
        return self._importer.values[self._name(index)]

    def make_shape_list(self, items: list[int | Value], scalar: bool = False) -> _ShapeList:
        return _ShapeList(list(items), scalar)

    # --------------------------------------------------------------- build-time facts
    def _info(self, index: int) -> _OnnxValueInfo | None:
        return self._importer.known.get(self._name(index))

    def rank(self, index: int) -> int:
        entry = self._importer.values.get(self._name(index))
        if isinstance(entry, _ShapeList):
            return 0 if entry.scalar else 1
        if isinstance(entry, np.ndarray):
            return entry.ndim
        info = self._info(index)
        if info is None or info.dims is None:
            self.unsupported(f"the rank of input {index} ({self._name(index)!r}) is unknown at build time")
        return len(info.dims)

    def static_shape(self, index: int, allow_partial: bool = False) -> tuple[int | None, ...] | None:
        array = self.constant(index)
        if array is not None:
            return tuple(array.shape)
        info = self._info(index)
        if info is None or info.dims is None:
            return None
        if not allow_partial and any(dim is None for dim in info.dims):
            return None
        return info.dims

    def sizes(self, index: int) -> list[int | Value]:
        """The input's dims: ints where static, ``aten::size`` values where dynamic."""
        shape = self.static_shape(index, allow_partial=True)
        if shape is None:
            shape = (None,) * self.rank(index)
        x = None
        sizes: list[int | Value] = []
        for dim, size in enumerate(shape):
            if size is not None:
                sizes.append(size)
                continue
            x = x if x is not None else self.input(index)
            sizes.append(self.aten("aten::size", [x, dim], "int", output_type=INT))
        return sizes

    def torch_dtype(self, index: int) -> torch.dtype | None:
        array = self.constant(index)
        if array is not None:
            return torch.from_numpy(np.ascontiguousarray(array)).dtype
        entry = self._importer.values.get(self._name(index))
        if isinstance(entry, _ShapeList):
            return torch.int64
        if isinstance(entry, Value) and isinstance(entry.type, TensorType) and entry.type.dtype:
            return getattr(torch, entry.type.dtype)
        info = self._info(index)
        return None if info is None else _ONNX_TO_TORCH.get(info.elem_type)

    def is_integer(self, index: int) -> bool:
        dtype = self.torch_dtype(index)
        return dtype is not None and not dtype.is_floating_point and not dtype.is_complex and dtype != torch.bool

    def onnx_dtype(self, code: int) -> torch.dtype:
        dtype = _ONNX_TO_TORCH.get(code)
        if dtype is None:
            self.unsupported(f"element type {onnx.TensorProto.DataType.Name(code)}")
        return dtype

    def to_array(self, tensor: onnx.TensorProto) -> np.ndarray:
        return onnx.numpy_helper.to_array(tensor)

    def constant_attribute(self) -> np.ndarray:
        for key, value in self.attrs.items():
            if key == "value":
                return self.to_array(value)
            if key in ("value_float", "value_int"):
                return np.array(value, dtype=np.float32 if key == "value_float" else np.int64)
            if key in ("value_floats", "value_ints"):
                return np.array(value, dtype=np.float32 if key == "value_floats" else np.int64)
        self.unsupported(f"attributes {sorted(self.attrs)} (sparse and string constants are not supported)")
        raise AssertionError

    # ------------------------------------------------------------------- emitting
    def aten(self, op: str, args: Sequence[Any], overload: str = "", *, list_output: bool = False,
             output_type: IRType | None = None) -> Value:
        """Append ``op.overload(*args)``; Python arguments become prim::Constant nodes."""
        if output_type is None:
            output_type = ListType(TensorType()) if list_output else TensorType()
        return self._importer.append(op, args, overload, output_type)

    def constant_tensor(self, array: np.ndarray) -> np.ndarray:
        """A build-time tensor: emitted as a prim::Constant when an op uses it, folded through otherwise."""
        return np.asarray(array)

    def int_list_value(self, items: Sequence[int | Value]) -> Value:
        if all(isinstance(item, int) for item in items):
            return self._importer.constant([int(item) for item in items])
        values = [item if isinstance(item, Value) else self._importer.constant(int(item)) for item in items]
        return self._importer.graph.block.append_node("prim::ListConstruct", values, (ListType(INT),)).output

    def tensor_list(self, values: Sequence[Value]) -> Value:
        block = self._importer.graph.block
        return block.append_node("prim::ListConstruct", list(values), (ListType(TensorType()),)).output

    def optional_tensor_list(self, values: Sequence[Value | None]) -> Value:
        items = [value if value is not None else self._importer.constant(None) for value in values]
        block = self._importer.graph.block
        return block.append_node("prim::ListConstruct", items, (ListType(OptionalType(TensorType())),)).output

    def unpack(self, listed: Value, count: int) -> list[Value]:
        block = self._importer.graph.block
        return list(block.append_node("prim::ListUnpack", [listed], [TensorType()] * count).outputs)
