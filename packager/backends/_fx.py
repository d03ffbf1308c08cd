"""IR segment -> ``torch.fx.GraphModule`` that ``torch.export`` can trace.

Translation, node by node, in program order:

* segment params -> placeholders (same order); segment returns -> one tuple output;
* ``aten::`` tensor ops -> ``call_function`` of the resolved ``OpOverload``, arguments in schema
  order with keyword-only ones passed by name (``packager.ir.ops.split_arguments``); an op with
  several IR outputs gets one ``operator.getitem`` node per output;
* ``prim::Constant`` -> tensors become registered buffers (``get_attr``), everything else is
  inlined as a Python value;
* ``prim::ListConstruct`` / ``prim::TupleConstruct`` -> Python lists / tuples of FX arguments;
  ``prim::ListUnpack`` / ``prim::TupleUnpack`` -> direct indexing when the sequence was built in
  this segment, ``operator.getitem`` nodes otherwise;
* shape arithmetic (``aten::size``, ``aten::mul.int``, ``aten::__getitem__.t``, ...) -> the Python
  operations in :data:`SHAPE_HELPERS`, which ``torch.export`` traces into symbolic ints (the
  ``torch.ops`` forms of those TorchScript builtins would specialize them to constants); when all
  of their inputs are constants they are folded here;
* ``prim::NumToTensor`` -> ``aten::scalar_tensor``; ``aten::Int`` / ``aten::Float`` /
  ``aten::ScalarImplicit`` of a ``prim::NumToTensor`` output take the original number (the
  pattern TorchScript's tracer emits around ``x.size(0)``), so sizes stay symbolic instead of
  becoming data-dependent ``.item()`` reads.

Reduced precision (``compute_dtype``): floating inputs and floating tensor constants are cast to
``compute_dtype`` at the top of the module and floating outputs are cast back to the dtype the
IR records for them, so a segment's boundary keeps the model's dtypes whatever it computes in.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.fx

from packager.errors import BackendError
from packager.ir.graph import Graph, Node, Value
from packager.ir.ops import resolve_overload, split_arguments
from packager.ir.types import TensorType

__all__ = ["FxSegment", "build_fx_module", "SHAPE_HELPERS", "shape_helper", "NUMBER_FROM_TENSOR_OPS"]


def _sizes(tensor: torch.Tensor) -> list:
    return list(tensor.shape)


def _size_of_dim(tensor: torch.Tensor, dim: int):
    return tensor.shape[dim]


def _dim(tensor: torch.Tensor) -> int:
    return tensor.dim()


def _numel(tensor: torch.Tensor):
    return tensor.numel()


def _leading_size(tensor: torch.Tensor):
    return tensor.shape[0]


def _arithmetic(function: Callable) -> dict[str, Callable]:
    return {overload: function for overload in ("int", "float", "int_float", "float_int")}


# TorchScript builtins on shapes and Python numbers, by op and overload, and the Python operation
# each becomes. Keep this explicit: anything not here that has no tensor input or output stays
# in the glue (see _inductor_capability).
SHAPE_HELPERS: dict[str, dict[str, Callable]] = {
    "aten::size": {"": _sizes, "int": _size_of_dim},
    "aten::dim": {"": _dim},
    "aten::numel": {"": _numel},
    "aten::len": {"t": len, "Tensor": _leading_size},
    "aten::__getitem__": {"t": operator.getitem},
    "aten::add": _arithmetic(operator.add),
    "aten::sub": _arithmetic(operator.sub),
    "aten::mul": _arithmetic(operator.mul),
    "aten::floordiv": _arithmetic(operator.floordiv),
    "aten::div": _arithmetic(operator.truediv),
    "aten::remainder": {"int": operator.mod, "float": operator.mod},
    "aten::neg": {"int": operator.neg, "float": operator.neg},
    "aten::floor": {"float": math.floor},
    "aten::ceil": {"float": math.ceil},
    "aten::Int": {"float": torch.sym_int, "Scalar": torch.sym_int, "bool": int},
    "aten::Float": {"int": torch.sym_float, "Scalar": torch.sym_float, "bool": float},
}

# Ops that read a tensor's value into a Python number. They are traced only when the tensor
# is a prim::NumToTensor output (then the number is used directly).
NUMBER_FROM_TENSOR_OPS: dict[str, frozenset[str]] = {
    "aten::Int": frozenset({"Tensor"}),
    "aten::Float": frozenset({"Tensor"}),
    "aten::ScalarImplicit": frozenset({""}),
}


def shape_helper(node: Node) -> Callable | None:
    """The Python operation for a shape-arithmetic node, or None if it is not one."""
    return SHAPE_HELPERS.get(node.op, {}).get(node.overload)


def reads_number_from_tensor(node: Node) -> bool:
    return node.overload in NUMBER_FROM_TENSOR_OPS.get(node.op, ())


_SCALAR_TENSOR_DTYPES = {"int": torch.int64, "float": torch.float64, "bool": torch.bool}


@dataclass
class FxSegment:
    """The module plus what error messages need: which IR node each FX node came from."""

    module: torch.fx.GraphModule
    ir_node_of: dict[str, Node]


class _Builder:
    def __init__(self, segment: Graph, device: torch.device, compute_dtype: torch.dtype | None) -> None:
        self.segment = segment
        self.device = device
        self.compute_dtype = compute_dtype
        self.graph = torch.fx.Graph()
        self.root = torch.nn.Module()
        self.env: dict[int, Any] = {}
        self.ir_node_of: dict[str, Node] = {}
        # id(FX node made for a prim::NumToTensor) -> the number it was made from.
        self.number_of_tensor: dict[int, Any] = {}
        self.buffer_of_constant: dict[int, torch.fx.Node] = {}
        self.current: Node | None = None

    def fail(self, message: str) -> BackendError:
        where = f"segment {self.segment.name!r}"
        if self.current is not None:
            where += f", node {self.current!r}"
        return BackendError(f"{where}: {message}")

    # ------------------------------------------------------------------ build
    def build(self) -> FxSegment:
        for param in self.segment.inputs:
            placeholder = self.graph.placeholder(_identifier(param.name))
            self.env[id(param)] = self._to_compute_dtype(placeholder, param.type)
        for node in self.segment.block.nodes:
            self.current = node
            self._translate(node)
        self.current = None
        outputs = [self._output(value) for value in self.segment.outputs]
        self.graph.output(tuple(outputs))
        self.graph.eliminate_dead_code()
        self.graph.lint()
        module = torch.fx.GraphModule(self.root, self.graph, class_name=_identifier(f"segment_{self.segment.name}"))
        return FxSegment(module, self.ir_node_of)

    def _output(self, value: Value) -> Any:
        result = self.env[id(value)]
        if not isinstance(result, torch.fx.Node):
            raise self.fail(f"output %{value.name} is not a tensor computed by the segment ({result!r})")
        original = _torch_dtype(value.type)
        if self.compute_dtype is not None and original is not None and original.is_floating_point:
            return self._call(torch.ops.aten.to.dtype, (result, original))
        return result

    def _to_compute_dtype(self, node: torch.fx.Node, type_) -> torch.fx.Node:
        dtype = _torch_dtype(type_)
        if self.compute_dtype is None or dtype is None or not dtype.is_floating_point or dtype == self.compute_dtype:
            return node
        return self._call(torch.ops.aten.to.dtype, (node, self.compute_dtype))

    def _call(self, target: Callable, args: tuple, kwargs: dict | None = None) -> torch.fx.Node:
        fx_node = self.graph.call_function(target, args, kwargs or {})
        if self.current is not None:
            self.ir_node_of[fx_node.name] = self.current
        return fx_node

    def _bind(self, node: Node, results: list[Any]) -> None:
        for value, result in zip(node.outputs, results, strict=True):
            self.env[id(value)] = result

    # -------------------------------------------------------------- per node
    def _translate(self, node: Node) -> None:
        values = [self.env[id(v)] for v in node.inputs]
        op = node.op
        if op == "prim::Constant":
            self._bind(node, [self._constant(node.attrs["value"])])
        elif op == "prim::ListConstruct":
            self._bind(node, [list(values)])
        elif op == "prim::TupleConstruct":
            self._bind(node, [tuple(values)])
        elif op in ("prim::ListUnpack", "prim::TupleUnpack"):
            self._bind(node, self._unpack(values[0], len(node.outputs)))
        elif op == "prim::NumToTensor":
            self._bind(node, [self._number_to_tensor(node, values[0])])
        elif reads_number_from_tensor(node):
            number = self.number_of_tensor.get(id(values[0]))
            if number is None:
                raise self.fail(
                    f"{node.kind} reads the value of a tensor that is not a prim::NumToTensor "
                    "output; that is data-dependent and cannot be compiled"
                )
            self._bind(node, [number])
        elif (helper := shape_helper(node)) is not None:
            if any(_has_fx_node(v) for v in values):
                self._bind(node, [self._call(helper, tuple(values))])
            else:
                self._bind(node, [helper(*values)])
        elif node.blocks:
            raise self.fail("control flow cannot be compiled into an engine")
        else:
            self._bind(node, self._aten(node, values))

    def _aten(self, node: Node, values: list[Any]) -> list[Any]:
        if node.op == "aten::_convolution":
            # Traced convolutions record the backend-selecting ``_convolution``; torch.export
            # cannot trace it with symbolic sizes on CUDA (torch 2.11: "Cannot call numel() on
            # tensor with symbolic sizes", seen on the H200). Its first nine arguments are
            # exactly the public ``aten::convolution``; the rest are backend hints.
            return [self._call(torch.ops.aten.convolution.default, tuple(values[:9]))]
        overload = resolve_overload(node.op, node.overload)
        arity = len(overload._schema.arguments)
        if len(values) > arity:
            raise self.fail(f"{len(values)} inputs for a schema with {arity} arguments: {overload._schema}")
        args, kwargs = split_arguments(overload, values)
        result = self._call(overload, tuple(args), kwargs)
        if len(node.outputs) == 1:
            return [result]
        return [self._call(operator.getitem, (result, index)) for index in range(len(node.outputs))]

    def _unpack(self, sequence: Any, count: int) -> list[Any]:
        if isinstance(sequence, (list, tuple)):
            if len(sequence) != count:
                raise self.fail(f"unpacks {count} values from a sequence of {len(sequence)}")
            return list(sequence)
        return [self._call(operator.getitem, (sequence, index)) for index in range(count)]

    def _constant(self, value: Any) -> Any:
        if not isinstance(value, torch.Tensor):
            return list(value) if isinstance(value, list) else value
        existing = self.buffer_of_constant.get(id(value))
        if existing is not None:
            return existing
        tensor = value.detach().to(self.device)
        if self.compute_dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(self.compute_dtype)
        name = f"constant_{len(self.buffer_of_constant)}"
        self.root.register_buffer(name, tensor)
        fx_node = self.graph.get_attr(name)
        self.buffer_of_constant[id(value)] = fx_node
        return fx_node

    def _number_to_tensor(self, node: Node, number: Any) -> Any:
        source_type = node.inputs[0].type
        dtype = _SCALAR_TENSOR_DTYPES.get(getattr(source_type, "name", ""))
        if dtype is None:
            dtype = _torch_dtype(node.output.type) or torch.int64
        tensor = self._call(torch.ops.aten.scalar_tensor.default, (number,), {"dtype": dtype})
        self.number_of_tensor[id(tensor)] = number
        return tensor


def build_fx_module(segment: Graph, *, device: torch.device, compute_dtype: torch.dtype | None = None) -> FxSegment:
    """Translate ``segment`` (already validated: typed tensor boundary, supported nodes)."""
    return _Builder(segment, device, compute_dtype).build()


def _has_fx_node(value: Any) -> bool:
    if isinstance(value, torch.fx.Node):
        return True
    if isinstance(value, (list, tuple)):
        return any(_has_fx_node(item) for item in value)
    return False


def _torch_dtype(type_) -> torch.dtype | None:
    if isinstance(type_, TensorType) and type_.dtype is not None:
        return getattr(torch, type_.dtype)
    return None


def _identifier(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return cleaned if cleaned.isidentifier() else f"v{cleaned}"
