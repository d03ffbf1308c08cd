"""ONNX front end: an ``.onnx`` file (or a ``ModelProto``) -> the IR.

Steps:

1. load with ``onnx.load`` (external data is read from the model's folder); check the default
   domain's opset: 13 to 21 are taken as they are, an older model is converted to opset 13 with
   ``onnx.version_converter``, anything else is refused naming the opset.
2. input shapes: one :class:`InputSpec` per graph input (initializers are not inputs), or, with
   no specs, the shapes the model declares; a symbolic dim then needs a spec with a range. The
   specs are written back into the model and ONNX's own shape inference runs, so that handlers
   know ranks, static sizes and element types (``Flatten``'s axis, integer ``Div``, ...).
3. every node goes through the ONNX -> ATen table (:mod:`packager.frontends._onnx_ops`), except
   ``If`` and ``Loop`` (below). A node whose inputs are all known at build time is folded with
   ``onnx.reference`` instead (shape arithmetic, small constant sub-graphs; an If/Loop only when
   the outer values its sub-graphs read are known too); ``Shape`` of a tensor with dynamic dims
   stays a list of ``aten::size`` ints until an op needs a tensor. An op outside the table,
   anywhere in the model or its sub-graphs, is an :class:`UnsupportedOpError` listing every such
   node with the If/Loop it sits in; it is never dropped.
4. types and shapes: :mod:`packager.frontends._shape_inference`, as for TorchScript.

Control flow becomes the IR a scripted model gives (TorchScript's conventions):

* ``If(cond)`` -> ``prim::If(aten::Bool.Tensor(cond))`` with a block per branch. A condition
  known at build time imports only the taken branch, inline (no ``prim::If``). Branch outputs
  must agree in rank and dtype; other differences (sizes) become joined dims in shape inference.
* ``Loop(M, cond, v...)`` -> ``prim::Loop(M, cond, *v)``: ``M`` an int (an ``aten::size`` int
  stays one; omitted: 9223372036854775807, as TorchScript writes ``while``), ``cond`` a bool
  (omitted: ``True``). In the body the iteration number is the block's int parameter (a 0-d int64
  tensor where an op uses it) and the condition input is ``true`` (the body runs only then).
  Scan outputs are built as TorchScript builds a list in a loop: ``prim::ListConstruct`` before
  it, ``aten::append.t`` in the body, ``aten::stack(list, 0)`` after it. A loop known at build
  time to run no iteration passes its carried values through (refused if it has scan outputs);
  one with scan outputs that runs none at run time fails there, as ``onnx.reference`` does.
* Sub-graphs read enclosing values by name (innermost scope first) and have their own
  initializers and ``Constant`` nodes; a build-time value first used inside a block is emitted
  there. ONNX keeps no shapes inside sub-graphs, so its shape inference runs on each one alone
  (loop-carried dims that change from one trip to the next become unknown), and again over the
  nodes after an If/Loop whose outputs it left untyped, from what the import found out.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

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
from packager.ir.graph import Block, Graph, Value
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
    return _info_table(inferred.graph)


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


# TorchScript's trip count for a loop without one (``while``): the largest int64.
_UNBOUNDED_TRIPS = 9223372036854775807
_CONTROL_FLOW = ("If", "Loop")
# The value fed to onnx.reference for an omitted Loop condition when folding (see _fold).
_TRUE_NAME = "poros::true"
# Loops with more trips than this (or no trip count) are not folded, even when everything is known.
_MAX_FOLDED_TRIPS = 1024
# Passes over a Loop body's ONNX shape inference until the carried dims settle.
_MAX_BODY_INFERENCE_PASSES = 4


def _subgraphs(node: onnx.NodeProto) -> list[tuple[str, onnx.GraphProto]]:
    """The node's graph attributes, as (attribute name, graph)."""
    found = []
    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.GRAPH:
            found.append((attribute.name, attribute.g))
        elif attribute.type == onnx.AttributeProto.GRAPHS:
            found.extend((attribute.name, graph) for graph in attribute.graphs)
    return found


def _has_scan_outputs(node: onnx.NodeProto) -> bool:
    """Whether ``node`` or a node in its sub-graphs is a Loop with scan outputs."""
    if node.op_type == "Loop":
        body = next((graph for name, graph in _subgraphs(node) if name == "body"), None)
        if body is not None and len(body.output) > len(body.input) - 1:
            return True
    return any(_has_scan_outputs(inner) for _, graph in _subgraphs(node) for inner in graph.node)


def _with_loop_conditions(node: onnx.NodeProto) -> onnx.NodeProto:
    """A copy of ``node`` where every Loop (the node, or in its sub-graphs) without a condition
    input reads :data:`_TRUE_NAME` instead: onnx.reference runs no iteration of a Loop whose
    condition is omitted, where the spec says it is true."""
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    pending = [copy]
    while pending:
        current = pending.pop()
        if current.op_type == "Loop" and (len(current.input) < 2 or not current.input[1]):
            while len(current.input) < 2:
                current.input.append("")
            current.input[1] = _TRUE_NAME
        for _, graph in _subgraphs(current):
            pending.extend(graph.node)
    return copy


def _free_names(graph: onnx.GraphProto) -> set[str]:
    """Names a (sub)graph reads from enclosing scopes: used, and defined neither in it nor in its
    own sub-graphs' enclosing part."""
    defined = {value.name for value in graph.input}
    defined.update(tensor.name for tensor in graph.initializer)
    defined.update(tensor.values.name for tensor in graph.sparse_initializer)
    free: set[str] = set()
    for node in graph.node:
        free.update(name for name in node.input if name and name not in defined)
        for _, inner in _subgraphs(node):
            free.update(_free_names(inner) - defined)
        defined.update(name for name in node.output if name)
    free.update(value.name for value in graph.output if value.name not in defined)
    return free


def _value_info(value: onnx.ValueInfoProto) -> _OnnxValueInfo | None:
    if not value.type.HasField("tensor_type"):
        return None
    tensor_type = value.type.tensor_type
    dims = None
    if tensor_type.HasField("shape"):
        dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim)
    return _OnnxValueInfo(tensor_type.elem_type, dims)


def _info_table(graph: onnx.GraphProto) -> dict[str, _OnnxValueInfo]:
    known: dict[str, _OnnxValueInfo] = {}
    for value in list(graph.value_info) + list(graph.input) + list(graph.output):
        info = _value_info(value)
        if info is not None:
            known[value.name] = info
    return known


class _Scope:
    """One (sub)graph being imported: its ONNX names, what ONNX's shape inference knows about
    them, and the IR block its nodes go to. Lookups go outwards (innermost first), as ONNX
    sub-graphs see the values of every enclosing graph."""

    __slots__ = ("values", "known", "block", "parent", "where")

    def __init__(self, block: Block, known: dict[str, _OnnxValueInfo], parent: "_Scope | None" = None,
                 where: str = "") -> None:
        # ONNX value name -> an IR value, a build-time array, or a shape list.
        self.values: dict[str, Value | np.ndarray | _ShapeList] = {}
        self.known = known
        self.block = block
        self.parent = parent
        self.where = where  # "the body of Loop 'l'"; "" for the main graph

    def find(self, name: str) -> "Value | np.ndarray | _ShapeList | None":
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.values:
                return scope.values[name]
            scope = scope.parent
        return None

    def info(self, name: str) -> _OnnxValueInfo | None:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.known:
                return scope.known[name]
            scope = scope.parent
        return None

    def nesting(self) -> str:
        """`` (inside the body of Loop 'l', inside the then_branch of If 'i')``; "" at the top."""
        places = []
        scope: _Scope | None = self
        while scope is not None:
            if scope.where:
                places.append(scope.where)
            scope = scope.parent
        return f" (inside {', inside '.join(places)})" if places else ""


class _Importer:
    def __init__(self, proto: onnx.ModelProto, known: dict[str, _OnnxValueInfo], origin: str, name: str) -> None:
        self.proto = proto
        self.origin = origin
        self.opset = _default_opset(proto)
        self.graph = Graph(name)
        self.scope = _Scope(self.graph.block, known)
        self.scalar_constants: dict[tuple[int, str, str], Value] = {}
        self.current_source = ""
        self.learned = False  # set by learn(): ONNX's inference of the nodes after it is redone

    @property
    def block(self) -> Block:
        """The block nodes are emitted into (that of the innermost sub-graph being imported)."""
        return self.scope.block

    def run(self, graph_inputs, specs: list[InputSpec]) -> Graph:
        self._check_supported()
        for tensor in self.proto.graph.initializer:
            self.scope.values[tensor.name] = onnx.numpy_helper.to_array(tensor)
        names = []
        for value, spec in zip(graph_inputs, specs):
            name = value.name if not value.name.isdigit() else f"input_{value.name}"
            self.scope.values[value.name] = self.graph.add_input(TensorType(spec.dtype), name)
            names.append(value.name)
        self.graph.meta["input_names"] = names
        self._import_nodes(self.proto.graph)
        self.graph.block.set_returns([self.materialize(output.name) for output in self.proto.graph.output])
        self.graph.meta["output_names"] = [output.name for output in self.proto.graph.output]
        return self.graph

    def _check_supported(self) -> None:
        problems = _unsupported_nodes(self.proto.graph)
        if problems:
            listing = "\n".join(f"  - {problem}" for problem in problems[:10])
            more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
            supported = sorted(ONNX_TO_ATEN.op_types() + _CONTROL_FLOW)
            raise UnsupportedOpError(
                f"{self.origin} (opset {self.opset}): {len(problems)} node(s) use ONNX ops with no mapping "
                f"onto ATen:\n{listing}{more}\nSupported ops: {', '.join(supported)}"
            )

    # --------------------------------------------------------------------- values
    def lookup(self, name: str) -> "Value | np.ndarray | _ShapeList | None":
        return self.scope.find(name) if name else None

    def entry(self, name: str) -> "Value | np.ndarray | _ShapeList":
        entry = self.lookup(name)
        if entry is None:
            raise FrontendError(f"{self.origin}: value {name!r} is used{self.scope.nesting()} before it is defined "
                                "(the ONNX graph is not topologically sorted, or a sub-graph reads a value that no "
                                "enclosing graph defines)")
        return entry

    def materialize(self, name: str) -> Value:
        """The IR value of an ONNX value, emitting a constant or a shape tensor on first use.

        What is emitted goes into the current block and is remembered in the current scope only,
        so a value first used inside a branch or a loop body is not taken for one defined outside."""
        entry = self.entry(name)
        if isinstance(entry, Value):
            return entry
        if isinstance(entry, _ShapeList) and not entry.is_constant:
            value = self._shape_tensor(entry)
        else:
            array = entry.array() if isinstance(entry, _ShapeList) else entry
            value = self.constant_tensor(array)
        self.scope.values[name] = value
        return value

    def constant_tensor(self, array: np.ndarray) -> Value:
        tensor = torch.from_numpy(np.array(array, copy=True))
        node = self.block.append_node("prim::Constant", (), (), attrs={"value": tensor})
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
        # One per block: a constant made inside a branch is not visible after the If.
        key = (id(self.block), str(type_), repr(value))
        if key not in self.scalar_constants:
            node = self.block.append_node("prim::Constant", (), (type_,), attrs={"value": value})
            self.scalar_constants[key] = node.output
        return self.scalar_constants[key]

    def _shape_tensor(self, shape_list: _ShapeList) -> Value:
        items = [self.append("aten::scalar_tensor", [item, torch.int64, None, None, None], "", TensorType())
                 for item in shape_list.items]
        if shape_list.scalar:
            return items[0]
        listed = self.block.append_node("prim::ListConstruct", items, (ListType(TensorType()),)).output
        return self.append("aten::stack", [listed, 0], "", TensorType())

    def append(self, op: str, args: Sequence[Any], overload: str, output_type: IRType) -> Value:
        inputs = [arg if isinstance(arg, Value) else self.constant(arg) for arg in args]
        node = self.block.append_node(op, inputs, (output_type,), overload)
        node.meta["source"] = self.current_source
        return node.output

    def build_time_array(self, name: str) -> np.ndarray | None:
        """The value of ``name`` if it is known at build time."""
        entry = self.lookup(name)
        if isinstance(entry, np.ndarray):
            return entry
        if isinstance(entry, _ShapeList) and entry.is_constant:
            return entry.array()
        if isinstance(entry, Value) and entry.producer is not None and entry.producer.op == "prim::Constant":
            value = entry.producer.attrs["value"]
            return value.numpy() if isinstance(value, torch.Tensor) else None
        return None

    def onnx_facts(self, name: str) -> tuple[int, tuple[int | None, ...] | None] | None:
        """(ONNX element type, dims or None) of a value, from what is known at build time."""
        entry = self.lookup(name)
        if isinstance(entry, np.ndarray):
            return onnx.helper.np_dtype_to_tensor_dtype(entry.dtype), tuple(entry.shape)
        if isinstance(entry, _ShapeList):
            return onnx.TensorProto.INT64, (() if entry.scalar else (len(entry.items),))
        info = self.scope.info(name)
        if info is not None:
            return info.elem_type, info.dims
        if isinstance(entry, Value) and isinstance(entry.type, TensorType) and entry.type.dtype:
            code = _TORCH_TO_ONNX.get(getattr(torch, entry.type.dtype))
            shape = entry.type.shape
            dims = None if shape is None else tuple(d if isinstance(d, int) else None for d in shape)
            return (code, dims) if code is not None else None
        return None

    # ---------------------------------------------------------------------- nodes
    def _import_node(self, node: onnx.NodeProto, index: int) -> None:
        label = node.name or f"#{index}"
        self.current_source = f"ONNX node {label!r} ({node.op_type}){self.scope.nesting()}"
        context = OnnxNodeContext(self, node, label)
        if node.op_type != "Constant" and self._fold(node, context):
            return
        if node.op_type == "If":
            results = self._import_if(context)
        elif node.op_type == "Loop":
            results = self._import_loop(context)
        else:
            results = ONNX_TO_ATEN.get(node.op_type)(context)
        if isinstance(results, (Value, _ShapeList, np.ndarray)):
            results = [results]
        for output, result in zip(node.output, results):
            if output:
                self.scope.values[output] = result

    def _fold(self, node: onnx.NodeProto, context: "OnnxNodeContext") -> bool:
        """Evaluate a node whose inputs are all known at build time with onnx.reference.

        A node with sub-graphs (If, Loop) is folded only when every outer value its sub-graphs
        read is known too; those values are fed to the evaluator as extra graph inputs."""
        arrays = [context.constant(i) if name else None for i, name in enumerate(node.input)]
        if any(array is None for array, name in zip(arrays, node.input) if name) or not any(node.input):
            return False
        feeds = {name: array for name, array in zip(node.input, arrays) if name}
        for _, subgraph in _subgraphs(node):
            for name in sorted(_free_names(subgraph) - set(feeds)):
                array = self.build_time_array(name)
                if array is None:
                    return False
                feeds[name] = array
        if _subgraphs(node):
            if _has_scan_outputs(node):
                return False  # onnx.reference concatenates scan outputs (np.vstack) instead of stacking them
            trips = feeds.get(node.input[0]) if node.op_type == "Loop" else None
            if node.op_type == "Loop" and (trips is None or int(trips.reshape(-1)[0]) > _MAX_FOLDED_TRIPS):
                return False  # an unbounded or long loop would run in onnx.reference's Python at build time
            node = _with_loop_conditions(node)
            feeds[_TRUE_NAME] = np.array(True)
        if any(array.size > _MAX_FOLDED_ELEMENTS for array in feeds.values()):
            return False
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
            self.scope.values[name] = np.asarray(result)
        return True

    # --------------------------------------------------------------- control flow
    def _subgraph_info(self, graph: onnx.GraphProto,
                       inputs: Sequence[tuple[str, int, tuple[int | None, ...] | None]] = (),
                       ) -> dict[str, _OnnxValueInfo]:
        """ONNX's shape inference over a sub-graph alone (ONNX keeps no value_info inside
        sub-graphs): its inputs typed as given, the outer values it reads typed from what is
        known about them."""
        declared = [onnx.helper.make_tensor_value_info(name, elem, dims) for name, elem, dims in inputs]
        initializers = list(graph.initializer)
        for name in sorted(_free_names(graph)):
            array = self.build_time_array(name)
            if array is not None and array.size <= _MAX_FOLDED_ELEMENTS:
                # With its data, so that ONNX propagates it (a Reshape's shape, a Slice's ends).
                initializers.append(onnx.numpy_helper.from_array(np.ascontiguousarray(array), name))
                continue
            facts = self.onnx_facts(name)
            if facts is not None and facts[0]:
                declared.append(onnx.helper.make_tensor_value_info(name, facts[0], facts[1]))
        model = onnx.helper.make_model(
            onnx.helper.make_graph(list(graph.node), graph.name or "subgraph", declared, list(graph.output),
                                   initializers),
            opset_imports=list(self.proto.opset_import),
        )
        model.ir_version = max(self.proto.ir_version, 7)  # initializers need not be inputs
        try:
            inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
        except Exception:  # noqa: BLE001 - advisory, as for the main graph
            inferred = model
        return _info_table(inferred.graph)

    def _enter(self, block: Block, known: dict[str, _OnnxValueInfo], where: str,
               graph: onnx.GraphProto) -> "_Scope":
        scope = _Scope(block, known, self.scope, where)
        for tensor in graph.initializer:
            scope.values[tensor.name] = onnx.numpy_helper.to_array(tensor)
        if graph.sparse_initializer:
            raise UnsupportedOpError(f"{self.origin}: {where} has sparse initializers, which are not supported")
        self.scope = scope
        return scope

    def _import_subgraph(self, graph: onnx.GraphProto, block: Block, where: str,
                         known: dict[str, _OnnxValueInfo], bindings: dict[str, Any],
                         finish: "Callable[[_Scope], list[Any]]") -> list[Any]:
        """Import ``graph``'s nodes into ``block`` in a scope nested in the current one (names of
        ``bindings`` bound first: the sub-graph's inputs); returns ``finish(scope)``, called
        while the scope is still current."""
        outer, source = self.scope, self.current_source
        scope = self._enter(block, known, where, graph)
        scope.values.update(bindings)
        try:
            self._import_nodes(graph)
            self.current_source = source
            return finish(scope)
        finally:
            self.scope, self.current_source = outer, source

    def learn(self, name: str, facts: tuple[int, tuple[int | None, ...] | None] | None) -> None:
        """Record what the import found out about a value that ONNX's own inference left unknown
        (the outputs of If and Loop, often), so that handlers of later nodes see its rank."""
        if not name or facts is None or not facts[0] or facts[1] is None:
            return
        current = self.scope.info(name)
        if current is None or current.dims is None:
            self.scope.known[name] = _OnnxValueInfo(facts[0], facts[1])
            self.learned = True

    def _refresh_known(self, graph: onnx.GraphProto, start: int) -> None:
        """ONNX's inference over ``graph``'s nodes from ``start`` on, from what the import knows
        now: after an If or Loop whose outputs ONNX left untyped, so were the values computed
        from them."""
        rest = onnx.helper.make_graph(list(graph.node[start:]), graph.name or "rest", [], list(graph.output))
        for name, info in self._subgraph_info(rest).items():
            current = self.scope.info(name)
            if info.dims is not None and (current is None or current.dims is None):
                self.scope.known[name] = info

    def _import_nodes(self, graph: onnx.GraphProto) -> None:
        for index, node in enumerate(graph.node):
            self._import_node(node, index)
            if self.learned:
                self.learned = False
                self._refresh_known(graph, index + 1)

    def to_bool(self, name: str, context: "OnnxNodeContext", what: str) -> Value:
        """A one-element bool tensor as a TorchScript ``bool`` (``aten::Bool.Tensor``, as
        ``if bool(t):`` scripts); a build-time one becomes a constant."""
        array = self.build_time_array(name)
        if array is not None:
            if array.size != 1:
                context.unsupported(f"its {what} has {array.size} elements (one expected)")
            return self.constant(bool(array.reshape(-1)[0]))
        return self.append("aten::Bool", [self.materialize(name)], "Tensor", BOOL)

    def to_int(self, name: str, context: "OnnxNodeContext", what: str) -> Value:
        """A one-element int tensor as a TorchScript ``int``; a shape entry stays the ``aten::size``
        int it is (``range(x.size(0))``)."""
        array = self.build_time_array(name)
        if array is not None:
            if array.size != 1:
                context.unsupported(f"its {what} has {array.size} elements (one expected)")
            return self.constant(int(array.reshape(-1)[0]))
        entry = self.lookup(name)
        if isinstance(entry, _ShapeList) and len(entry.items) == 1 and isinstance(entry.items[0], Value):
            return entry.items[0]
        return self.append("aten::Int", [self.materialize(name)], "Tensor", INT)

    def _import_if(self, context: "OnnxNodeContext") -> list[Any]:
        node = context.node
        branches = [("then_branch", context.attr("then_branch")), ("else_branch", context.attr("else_branch"))]
        if any(graph is None for _, graph in branches):
            context.unsupported("a then_branch or else_branch attribute is missing")
        for attribute, graph in branches:
            if len(graph.output) != len(node.output):
                context.unsupported(f"its {attribute} returns {len(graph.output)} values for "
                                    f"{len(node.output)} outputs")
            if graph.input:
                context.unsupported(f"its {attribute} declares inputs (If branches take none)")
        condition = context.constant(0)
        if condition is not None:
            if condition.size != 1:
                context.unsupported(f"its condition has {condition.size} elements (one expected)")
            # Known at build time: only the taken branch is imported, inline.
            attribute, graph = branches[0] if bool(condition.reshape(-1)[0]) else branches[1]
            where = f"the {attribute} of If {context.label!r}"

            def inline(scope: _Scope) -> list[Any]:
                return [(self.entry(output.name), self.onnx_facts(output.name)) for output in graph.output]

            taken = self._import_subgraph(graph, self.block, where, self._subgraph_info(graph), {}, inline)
            for name, (_, facts) in zip(node.output, taken):
                self.learn(name, facts)
            return [entry for entry, _ in taken]
        flag = self.to_bool(node.input[0], context, "condition")
        if_node = self.block.append_node("prim::If", [flag], [TensorType()] * len(node.output))
        if_node.meta["source"] = self.current_source
        facts = []
        for attribute, graph in branches:
            block = if_node.add_block()
            where = f"the {attribute} of If {context.label!r}"

            def finish(scope: _Scope, graph: onnx.GraphProto = graph) -> list[Any]:
                facts.append([self.onnx_facts(output.name) or (0, None) for output in graph.output])
                return [self.materialize(output.name) for output in graph.output]

            block.set_returns(self._import_subgraph(graph, block, where, self._subgraph_info(graph), {}, finish))
        for index, (name, (then_elem, then_dims), (else_elem, else_dims)) in enumerate(zip(node.output, *facts)):
            if then_dims is not None and else_dims is not None and len(then_dims) != len(else_dims):
                context.unsupported(f"output {index} has rank {len(then_dims)} in then_branch and {len(else_dims)} "
                                    "in else_branch; the branches must give tensors of one rank")
            if then_elem and else_elem and then_elem != else_elem:
                names = [onnx.TensorProto.DataType.Name(elem) for elem in (then_elem, else_elem)]
                context.unsupported(f"output {index} is {names[0]} in then_branch and {names[1]} in else_branch")
            if then_dims is not None and else_dims is not None:
                self.learn(name, (then_elem, tuple(t if t == e else None for t, e in zip(then_dims, else_dims))))
        return list(if_node.outputs)

    def _body_info(self, body: onnx.GraphProto, condition_dims: tuple[int, ...],
                   carried: list[tuple[int, tuple[int | None, ...] | None]],
                   ) -> tuple[dict[str, _OnnxValueInfo], list[tuple[int, tuple[int | None, ...] | None]]]:
        """ONNX shape inference of a Loop body; carried dims that change from one iteration to the
        next become unknown (a fixed point over a few passes). Returns what is known in the body
        and the carried values' (element type, dims) over every iteration."""
        names = [value.name for value in body.input]
        for _ in range(_MAX_BODY_INFERENCE_PASSES):
            inputs = [(names[0], onnx.TensorProto.INT64, ()), (names[1], onnx.TensorProto.BOOL, condition_dims)]
            inputs += [(name, elem, dims) for name, (elem, dims) in zip(names[2:], carried)]
            known = self._subgraph_info(body, inputs)
            widened = []
            for (elem, dims), output in zip(carried, body.output[1:]):
                after = known.get(output.name)
                if dims is not None and (after is None or after.dims is None or len(after.dims) != len(dims)):
                    widened.append((elem, (None,) * len(dims)))
                elif dims is not None:
                    widened.append((elem, tuple(d if d == a else None for d, a in zip(dims, after.dims))))
                else:
                    widened.append((elem, dims))
            if widened == carried:
                return known, carried
            carried = widened
        return known, [(elem, None) for elem, _ in carried]

    def _import_loop(self, context: "OnnxNodeContext") -> list[Any]:
        node = context.node
        body = context.attr("body")
        if body is None:
            context.unsupported("the body attribute is missing")
        inputs = list(node.input) + [""] * max(0, 2 - len(node.input))
        trip_name, condition_name, initial_names = inputs[0], inputs[1], inputs[2:]
        count = len(initial_names)
        scans = len(body.output) - 1 - count
        if len(body.input) != count + 2 or scans < 0:
            context.unsupported(f"its body takes {len(body.input)} inputs and returns {len(body.output)} values for "
                                f"{count} loop-carried value(s) (expected {count + 2} inputs and at least "
                                f"{count + 1} outputs)")
        if len(node.output) > count + scans:
            context.unsupported(f"it has {len(node.output)} outputs for {count} carried and {scans} scan outputs")
        if any(not name for name in initial_names):
            context.unsupported("an empty loop-carried input name")
        outputs = list(node.output) + [""] * (count + scans - len(node.output))
        known_trips = self.build_time_array(trip_name)
        known_condition = self.build_time_array(condition_name)
        if ((known_trips is not None and known_trips.size == 1 and int(known_trips.reshape(-1)[0]) <= 0)
                or (known_condition is not None and known_condition.size == 1
                    and not bool(known_condition.reshape(-1)[0]))):
            # Known at build time to run no iteration: the carried values go through unchanged.
            if any(outputs[count:]):
                context.unsupported("it runs no iteration (its trip count or condition is known at build time) "
                                    "and has scan outputs, whose per-iteration shape is then unknown")
            return [self.entry(name) for name in initial_names]
        trips = (self.to_int(trip_name, context, "trip count M") if trip_name
                 else self.constant(_UNBOUNDED_TRIPS))
        condition = self.to_bool(condition_name, context, "condition") if condition_name else self.constant(True)
        initial = [self.materialize(name) for name in initial_names]
        # Scan outputs, as TorchScript builds a list in a loop: a list made before the loop,
        # aten::append in the body, aten::stack after it (the per-iteration values on a new axis 0).
        lists = [self.block.append_node("prim::ListConstruct", (), (ListType(TensorType()),)).output
                 if outputs[count + k] else None for k in range(scans)]
        loop = self.block.append_node("prim::Loop", [trips, condition, *initial], [TensorType()] * count)
        loop.meta["source"] = self.current_source
        block = loop.add_block()
        iteration = block.add_param(INT)
        params = [block.add_param(TensorType()) for _ in initial_names]

        condition_dims: tuple[int, ...] = ()
        facts = self.onnx_facts(condition_name) if condition_name else None
        if facts is not None and facts[1] is not None and all(isinstance(d, int) for d in facts[1]):
            condition_dims = tuple(facts[1])
        carried_facts = []
        for name, declared in zip(initial_names, body.input[2:]):
            facts = self.onnx_facts(name)
            if facts is None or not facts[0]:
                info = _value_info(declared)
                facts = (info.elem_type, info.dims) if info is not None else (0, None)
            carried_facts.append(facts)
        known, carried_facts = self._body_info(body, condition_dims, carried_facts)
        # The body runs only while the condition holds: its condition input is true.
        bindings: dict[str, Any] = {
            body.input[0].name: _ShapeList([iteration], scalar=True),
            body.input[1].name: np.ones(condition_dims, dtype=bool),
        }
        bindings.update({value.name: param for value, param in zip(body.input[2:], params)})
        where = f"the body of Loop {context.label!r}"

        def finish(scope: _Scope) -> list[Value]:
            keep_going = self.to_bool(body.output[0].name, context, "body's condition output")
            carried = [self.materialize(output.name) for output in body.output[1:1 + count]]
            for listed, output in zip(lists, body.output[1 + count:]):
                if listed is not None:
                    self.append("aten::append", [listed, self.materialize(output.name)], "t", ListType(TensorType()))
            return [keep_going, *carried]

        block.set_returns(self._import_subgraph(body, block, where, known, bindings, finish))
        stacked = [self.append("aten::stack", [listed, 0], "", TensorType()) if listed is not None else None
                   for listed in lists]
        for name, facts in zip(outputs, carried_facts):
            self.learn(name, facts)
        for name, output in zip(outputs[count:], body.output[1 + count:]):
            scanned = known.get(output.name)
            if scanned is not None:
                self.learn(name, (scanned.elem_type, None if scanned.dims is None else (None, *scanned.dims)))
        return [*loop.outputs, *stacked]


def _unsupported_nodes(graph: onnx.GraphProto, places: tuple[str, ...] = ()) -> list[str]:
    """Every node of ``graph`` and of its sub-graphs whose op has no mapping, with its place
    (innermost enclosing sub-graph first)."""
    where = f" (inside {', inside '.join(places)})" if places else ""
    problems = []
    for node in graph.node:
        if node.domain not in _DEFAULT_DOMAINS:
            problems.append(f"{node.op_type} (domain {node.domain!r}) at node {node.name!r}{where}")
        elif node.op_type not in ONNX_TO_ATEN and node.op_type not in _CONTROL_FLOW:
            problems.append(f"{node.op_type} at node {node.name!r}{where}")
        for attribute, subgraph in _subgraphs(node):
            problems.extend(_unsupported_nodes(subgraph, (f"the {attribute} of {node.op_type} {node.name!r}", *places)))
    return problems


class OnnxNodeContext:
    """What a handler of the ONNX -> ATen table sees of one ONNX node."""

    def __init__(self, importer: _Importer, node: onnx.NodeProto, label: str) -> None:
        self._importer = importer
        self.node = node
        self.label = label
        self.op_type = node.op_type
        self.opset = importer.opset
        self.nesting = importer.scope.nesting()  # " (inside the body of Loop 'l')"; "" at the top
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
            f"{self._importer.origin}: ONNX node {self.label!r} ({self.op_type}, opset {self.opset}){self.nesting} "
            f"cannot be mapped onto ATen: {reason}"
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
        return self._importer.build_time_array(self._name(index))

    def constant_ints(self, index: int, what: str) -> list[int]:
        array = self.constant(index)
        if array is None:
            self.unsupported(f"its {what} input is computed at run time; it must be known at build time")
        return [int(item) for item in array.reshape(-1)]

    def shape_list(self, index: int) -> list[int | Value] | None:
        entry = self._importer.lookup(self._name(index))
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
        return self._importer.entry(self._name(index))

    def make_shape_list(self, items: list[int | Value], scalar: bool = False) -> _ShapeList:
        return _ShapeList(list(items), scalar)

    # --------------------------------------------------------------- build-time facts
    def _info(self, index: int) -> _OnnxValueInfo | None:
        return self._importer.scope.info(self._name(index))

    def rank(self, index: int) -> int:
        entry = self._importer.lookup(self._name(index))
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
        entry = self._importer.lookup(self._name(index))
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
        return self._importer.block.append_node("prim::ListConstruct", values, (ListType(INT),)).output

    def tensor_list(self, values: Sequence[Value]) -> Value:
        block = self._importer.block
        return block.append_node("prim::ListConstruct", list(values), (ListType(TensorType()),)).output

    def optional_tensor_list(self, values: Sequence[Value | None]) -> Value:
        items = [value if value is not None else self._importer.constant(None) for value in values]
        block = self._importer.block
        return block.append_node("prim::ListConstruct", items, (ListType(OptionalType(TensorType())),)).output

    def unpack(self, listed: Value, count: int) -> list[Value]:
        block = self._importer.block
        return list(block.append_node("prim::ListUnpack", [listed], [TensorType()] * count).outputs)
