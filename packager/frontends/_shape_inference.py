"""Types and shapes for an imported graph, found by running it once on fake tensors.

Every input gets a FakeTensor (no data) whose dynamic dims are symbols of torch's ``ShapeEnv``,
constrained to the ranges of the ``--input`` specs. Each node then runs through the IR's own
executor (``packager.ir.interpreter.run_node``), so an output's dtype and shape are exactly what
torch's meta kernels compute, with sizes as expressions over the input symbols.

Representation (what the rest of the packager reads):

* Input dims are named ``s0``, ``s1``, ... one per dynamic dim, in input order then dim order;
  ``graph.meta["symbols"]`` maps each to ``{"min", "opt", "max"}``.
* ``TensorType(dtype, shape)``: a dim is an ``int`` or ``SymDim(expr, min, max)`` where ``expr``
  is over the input symbols (``"2*s0"``, ``"((s1 + 1)//2)"``) and ``min``/``max`` are its bounds
  over the declared ranges (``None`` where unbounded). A ``u<k>`` symbol is a size that is not a
  function of the input shapes: read out of a tensor's data, or different in the two branches of
  an ``if`` or across loop iterations (``prim::If`` outputs and loop-carried values are the join
  of what every path produces; equal dims stay, different ones become one ``u<k>`` per position).
* ints computed from shapes are ``ScalarType("int", symbol=expr)``.
* Guards torch had to add (relations it assumed, such as two dims being equal) are listed in
  ``graph.meta["shape_guards"]``.

Where a value cannot be computed at build time (it depends on tensor data, or an op has no fake
kernel), its node keeps the type TorchScript declared (``TensorType(None, None)`` for a tensor)
and ``node.meta["type_fallback"]`` says why; nodes downstream of it do the same. Branches that no
input in the declared ranges can take keep their declared types too.

Specialization is an error: if running a node forces a dynamic input dim to one value (a traced
``view`` with a baked batch size, say), no engine built for the range would be correct, so
:class:`FrontendError` names the node and the dim. Shape errors (a conv that gets the wrong number
of channels) are errors too, except inside branches and loop bodies that may never run.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Callable, Sequence

import sympy
import torch
from torch._subclasses.fake_tensor import (
    DataDependentOutputException,
    DynamicOutputShapeException,
    FakeTensorMode,
    UnsupportedOperatorException,
)
from torch.fx.experimental.symbolic_shapes import (
    DimDynamic,
    GuardOnDataDependentSymNode,
    ShapeEnv,
    StatelessSymbolicContext,
    StrictMinMaxConstraint,
    statically_known_true,
)
from torch.utils._sympy.value_ranges import ValueRanges, bound_sympy

from packager.errors import FrontendError, PorosError
from packager.ir.graph import Block, Graph, Node, Value
from packager.ir.interpreter import run_node
from packager.ir.types import IRType, ListType, OptionalType, ScalarType, SymDim, TensorType, TupleType
from packager.spec import DimSpec, InputSpec

__all__ = ["infer_types"]

_SYMBOLIC = (torch.SymInt, torch.SymFloat, torch.SymBool)

# Raised by torch when a result depends on tensor data or an op has no fake kernel: the node
# falls back to its declared types instead of failing the import.
_DATA_DEPENDENT = (
    DataDependentOutputException,
    DynamicOutputShapeException,
    UnsupportedOperatorException,
    GuardOnDataDependentSymNode,
    NotImplementedError,
)

# How many times a loop body may be re-run while its carried types still widen.
_MAX_LOOP_PASSES = 8


class _Opaque:
    """A value known only by its declared type."""

    __slots__ = ("label",)

    def __init__(self, label: str) -> None:
        self.label = label

    def __repr__(self) -> str:
        return f"<{self.label}>"


# A value that depends on tensor data (or could not be computed).
UNKNOWN = _Opaque("unknown")
# The output of prim::Uninitialized: what a branch that raises "returns"; joins as the identity.
UNINITIALIZED = _Opaque("uninitialized")


class _NoSymbolicRule(Exception):
    """A builtin got a shape-derived (symbolic) value and has no rule to compute it symbolically."""


class _ReadsTensorData(Exception):
    """The node turns tensor data into a Python value (``bool(x.sum() > 0)``)."""


def infer_types(graph: Graph, specs: Sequence[InputSpec]) -> None:
    """Set the type of every value of ``graph`` from a fake run on ``specs`` (see module doc)."""
    _ShapeInference(graph, specs).run()


# --------------------------------------------------------------------------------- symbols
class _Symbols:
    """Translates torch's sympy symbols into ours: ``s<k>`` for input dims, ``u<k>`` otherwise."""

    def __init__(self, shape_env: ShapeEnv) -> None:
        self.shape_env = shape_env
        self.ours: dict[sympy.Symbol, sympy.Symbol] = {}
        self.ranges: dict[sympy.Symbol, tuple[int, int]] = {}
        self.joins: dict[tuple[str, ...], SymDim] = {}
        self._unknown_count = 0

    def add_input(self, torch_symbol: sympy.Symbol, name: str, dim: DimSpec) -> None:
        ours = sympy.Symbol(name, integer=True, positive=True)
        self.ours[torch_symbol] = ours
        self.ranges[ours] = (dim.min, dim.max)

    def fresh_unknown(self) -> sympy.Symbol:
        symbol = sympy.Symbol(f"u{self._unknown_count}", integer=True, nonnegative=True)
        self._unknown_count += 1
        return symbol

    def translate(self, expr: sympy.Expr) -> sympy.Expr:
        """``expr`` over torch's symbols -> the same over ours (unknown symbols get ``u<k>``)."""
        mapping = {}
        for symbol in sorted(expr.free_symbols, key=str):
            if symbol not in self.ours:
                self.ours[symbol] = self.fresh_unknown()
            mapping[symbol] = self.ours[symbol]
        return expr.xreplace(mapping)

    def expression(self, value: torch.SymInt | torch.SymFloat | torch.SymBool) -> sympy.Expr:
        expr = value.node.expr
        simplify = getattr(self.shape_env, "simplify", None)
        if simplify is not None:
            expr = simplify(expr)
        return self.translate(expr)

    def dim(self, size: int | torch.SymInt) -> int | SymDim:
        if not isinstance(size, torch.SymInt):
            return int(size)
        expr = self.expression(size)
        if expr.is_number:
            return int(expr)
        if expr in self.ranges:
            low, high = self.ranges[expr]
            return SymDim(str(expr), low, high)
        low, high = self._bounds(expr)
        return SymDim(str(expr), low, high)

    def join_dim(self, dims: Sequence[int | SymDim]) -> SymDim:
        """One stable ``u<k>`` for a position where list elements have different sizes."""
        key = tuple(sorted({str(d) if isinstance(d, int) else d.expr for d in dims}))
        if key not in self.joins:
            self.joins[key] = SymDim(str(self.fresh_unknown()))
        return self.joins[key]

    def _bounds(self, expr: sympy.Expr) -> tuple[int | None, int | None]:
        if not expr.free_symbols <= set(self.ranges):
            return None, None
        ranges = {symbol: ValueRanges(*self.ranges[symbol]) for symbol in expr.free_symbols}
        try:
            bounds = bound_sympy(expr, ranges)
        except Exception:  # noqa: BLE001 - bounds are informative; an expression sympy cannot bound has none
            return None, None
        return _finite_int(bounds.lower), _finite_int(bounds.upper)


def _finite_int(bound: Any) -> int | None:
    try:
        if bound.is_finite is False or not bound.is_integer:
            return None
        return int(bound)
    except (AttributeError, TypeError, ValueError, OverflowError):
        return None


# ------------------------------------------------------------- builtins on symbolic values
def _sym_max(*args: Any) -> Any:
    values = list(args[0]) if len(args) == 1 else list(args)
    result = values[0]
    for value in values[1:]:
        result = torch.sym_max(result, value)
    return result


def _sym_min(*args: Any) -> Any:
    values = list(args[0]) if len(args) == 1 else list(args)
    result = values[0]
    for value in values[1:]:
        result = torch.sym_min(result, value)
    return result


def _to_int(value: Any) -> Any:
    if isinstance(value, (int, torch.SymInt)) and not isinstance(value, bool):
        return value
    if isinstance(value, (torch.SymFloat, torch.SymBool)):
        return torch.sym_int(value)
    return int(value)


def _to_float(value: Any) -> Any:
    return torch.sym_float(value) if isinstance(value, _SYMBOLIC) else float(value)


def _range_length(low: Any, high: Any, step: Any) -> Any:
    if not isinstance(step, int) or step == 0:
        raise _NoSymbolicRule("range() with a symbolic or zero step")
    if step > 0:
        return torch.sym_max(0, (high - low + step - 1) // step)
    return torch.sym_max(0, (low - high - step - 1) // (-step))


def _trunc_div(a: Any, b: Any) -> Any:
    if not isinstance(a, _SYMBOLIC) and not isinstance(b, _SYMBOLIC):
        quotient = math.trunc(a / b) if isinstance(a, float) or isinstance(b, float) else abs(a) // abs(b)
        if isinstance(quotient, int) and not isinstance(a, float) and not isinstance(b, float) and (a < 0) != (b < 0):
            quotient = -quotient
        return quotient
    if isinstance(a, torch.SymInt) and statically_known_true(a >= 0) and isinstance(b, int) and b > 0:
        return a // b
    return torch.sym_int(a / b)


# TorchScript scalar builtins (``aten::add.int``, ``aten::floordiv.int``, ...) given shape-derived
# values: computed with Python operators on SymInts so the result stays an expression.
_SYMBOLIC_SCALAR_OPS: dict[str, Callable[..., Any]] = {
    "aten::add": operator.add,
    "aten::sub": operator.sub,
    "aten::mul": operator.mul,
    "aten::floordiv": operator.floordiv,
    "aten::div": operator.truediv,
    "aten::remainder": operator.mod,
    "aten::neg": operator.neg,
    "aten::pow": operator.pow,
    "aten::eq": operator.eq,
    "aten::ne": operator.ne,
    "aten::lt": operator.lt,
    "aten::gt": operator.gt,
    "aten::le": operator.le,
    "aten::ge": operator.ge,
    "aten::__and__": operator.and_,
    "aten::__or__": operator.or_,
    "aten::__not__": torch.sym_not,
    "aten::abs": abs,
    "aten::Int": _to_int,
    "aten::Float": _to_float,
    "aten::floor": math.floor,
    "aten::ceil": math.ceil,
    "aten::__range_length": _range_length,
    "aten::__derive_index": lambda index, start, step: start + index * step,
    "prim::max": _sym_max,
    "prim::min": _sym_min,
}

# Ops that move values around without looking at them: symbolic values pass through unharmed.
_VALUE_AGNOSTIC_OPS = frozenset({
    "prim::ListConstruct", "prim::TupleConstruct", "prim::ListUnpack", "prim::TupleUnpack",
    "prim::TupleIndex", "prim::unchecked_cast", "aten::__getitem__", "aten::len", "aten::list",
    "aten::format", "aten::str", "aten::warn", "aten::__is__", "aten::__isnot__",
})


def _list_slice(items: list, start: Any = None, end: Any = None, step: Any = 1) -> list:
    return items[start:end:step]


def _list_append(items: list, element: Any) -> list:
    items.append(element)
    return items


def _list_set_item(items: list, index: int, element: Any) -> list:
    items[index] = element
    return items


# Polymorphic list builtins (``t[]`` schemas) that torch.ops cannot call from Python.
_LIST_OPS: dict[str, Callable[..., Any]] = {
    "aten::slice": _list_slice,
    "aten::append": _list_append,
    "aten::add": lambda a, b: a + b,
    "aten::extend": lambda items, other: items.extend(other),
    "aten::insert": lambda items, index, element: items.insert(index, element),
    "aten::_set_item": _list_set_item,
    "aten::pop": lambda items, index=-1: items.pop(index),
    "aten::reverse": lambda items: items.reverse(),
    "aten::copy": list,
    "aten::mul": lambda items, times: items * times,
}

# ``aten::Int(tensor)`` and friends: a 0-dim tensor back to a Python scalar.
_TENSOR_TO_SCALAR = frozenset({"aten::Int", "aten::Float", "aten::Bool", "aten::ScalarImplicit", "aten::item"})


def _alpha(values: list[Any]) -> Any:
    return values[2] if len(values) > 2 else 1


def _div(values: list[Any]) -> Any:
    mode = values[2] if len(values) > 2 else None
    if mode is None:
        return values[0] / values[1]
    if mode == "floor":
        return values[0] // values[1]
    return _trunc_div(values[0], values[1])


# Arithmetic on 0-dim tensors that hold shape values (traced models turn ``x.size(0) * 2`` into
# ``prim::NumToTensor`` + ``aten::mul`` + ``aten::Int``): the value is tracked beside the tensor.
_SCALAR_TENSOR_OPS: dict[str, Callable[[list[Any]], Any]] = {
    "aten::add": lambda v: v[0] + v[1] * _alpha(v),
    "aten::sub": lambda v: v[0] - v[1] * _alpha(v),
    "aten::rsub": lambda v: v[1] - v[0] * _alpha(v),
    "aten::mul": lambda v: v[0] * v[1],
    "aten::div": _div,
    "aten::floor_divide": lambda v: v[0] // v[1],
    "aten::remainder": lambda v: v[0] % v[1],
    "aten::neg": lambda v: -v[0],
    "aten::to": lambda v: v[0],
    "aten::detach": lambda v: v[0],
    "aten::clone": lambda v: v[0],
}


def _contains_opaque(value: Any) -> bool:
    if isinstance(value, _Opaque):
        return True
    if isinstance(value, (list, tuple)):
        return any(_contains_opaque(item) for item in value)
    return False


def _contains_symbolic(value: Any) -> bool:
    if isinstance(value, _SYMBOLIC):
        return True
    if isinstance(value, (list, tuple)):
        return any(_contains_symbolic(item) for item in value)
    return False


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _location(node: Node) -> str:
    source = node.meta.get("source")
    return f"{node.kind} at {source}" if source else node.kind


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def _hint(dim: DimSpec) -> int:
    # torch specializes sizes 0 and 1; an example size of at least 2 keeps the dim symbolic.
    if dim.opt < 2 <= dim.max:
        return 2
    return dim.opt


# ----------------------------------------------------------------------------- inference
class _ShapeInference:
    def __init__(self, graph: Graph, specs: Sequence[InputSpec]) -> None:
        self.graph = graph
        self.specs = list(specs)
        self.shape_env = ShapeEnv(duck_shape=False)
        self.fake_mode = FakeTensorMode(shape_env=self.shape_env)
        self.symbols = _Symbols(self.shape_env)
        # (torch symbol, our name, description) for each dynamic input dim.
        self.input_symbols: list[tuple[sympy.Symbol, str, str]] = []
        self.declared: dict[int, IRType] = {}
        self.env: dict[int, Any] = {}
        # id(0-dim fake tensor) -> (tensor, the Python/symbolic value it holds).
        self.scalar_values: dict[int, tuple[torch.Tensor, Any]] = {}
        self.fake_constants: dict[int, tuple[torch.Tensor, Any]] = {}
        self.joined_sizes: dict[tuple, torch.SymInt] = {}
        self.loop_counters: dict[int, torch.SymInt] = {}
        self.guards_seen = 0
        self.guards: list[dict[str, str]] = []

    # ----------------------------------------------------------------------- driver
    def run(self) -> None:
        self._record_declared_types()
        fake_inputs = self._fake_inputs()
        self._prepare_constants()
        with self.fake_mode, torch.no_grad():
            self._run_block(self.graph.block, fake_inputs, tolerant=False)
        self.graph.meta["symbols"] = {
            name: {"min": dim.min, "opt": dim.opt, "max": dim.max}
            for name, dim in self._dynamic_dims()
        }
        self.graph.meta["shape_guards"] = self.guards

    def _dynamic_dims(self) -> list[tuple[str, DimSpec]]:
        dims = []
        for spec in self.specs:
            for dim in spec.dims:
                if not dim.is_static:
                    dims.append((f"s{len(dims)}", dim))
        return dims

    def _record_declared_types(self) -> None:
        def record_block(block: Block) -> None:
            for param in block.params:
                self.declared[id(param)] = param.type
            for node in block.nodes:
                for value in node.outputs:
                    self.declared[id(value)] = value.type
                for inner in node.blocks:
                    record_block(inner)

        record_block(self.graph.block)

    def _fake_inputs(self) -> list[torch.Tensor]:
        names = self.graph.meta.get("input_names") or [v.name for v in self.graph.inputs]
        fakes = []
        count = 0
        for name, spec in zip(names, self.specs, strict=True):
            dynamic = [DimDynamic.STATIC if d.is_static else DimDynamic.DYNAMIC for d in spec.dims]
            constraints = [
                None if d.is_static else StrictMinMaxConstraint(vr=ValueRanges(d.min, d.max), warn_only=False)
                for d in spec.dims
            ]
            example = torch.empty([d.min if d.is_static else _hint(d) for d in spec.dims], dtype=getattr(torch, spec.dtype))
            context = StatelessSymbolicContext(dynamic_sizes=dynamic, constraint_sizes=constraints)
            fake = self.fake_mode.from_tensor(example, symbolic_context=context)
            for index, (dim, size) in enumerate(zip(spec.dims, fake.shape)):
                if dim.is_static:
                    continue
                if not isinstance(size, torch.SymInt) or size.node.expr.is_number:
                    raise FrontendError(f"input {name!r} dim {index} ({dim}) could not be made symbolic; declare it static")
                symbol_name = f"s{count}"
                count += 1
                self.symbols.add_input(size.node.expr, symbol_name, dim)
                self.input_symbols.append((size.node.expr, symbol_name, f"input {name!r} dim {index} (declared {dim})"))
            fakes.append(fake)
        return fakes

    # ------------------------------------------------------------------- blocks
    def _bind(self, value: Value, result: Any) -> None:
        self.env[id(value)] = result
        value.type = self._refine(self.declared[id(value)], result)

    def _run_block(self, block: Block, args: list[Any], tolerant: bool) -> list[Any]:
        for param, arg in zip(block.params, args, strict=True):
            self._bind(param, arg)
        for node in block.nodes:
            outputs = self._run_node(node, [self.env[id(v)] for v in node.inputs], tolerant)
            if node.op == "prim::Constant":
                # A constant's declared type is already exact; only its fake value is needed.
                self.env[id(node.output)] = outputs[0]
                continue
            for value, result in zip(node.outputs, outputs, strict=True):
                self._bind(value, result)
        return [self.env[id(v)] for v in block.returns]

    def _mark_unreachable(self, block: Block, reason: str) -> None:
        for param in block.params:
            param.type = self.declared[id(param)]
            self.env[id(param)] = UNKNOWN
        for node in block.walk():
            node.meta["type_fallback"] = reason
            for value in node.outputs:
                value.type = self.declared[id(value)]
                self.env[id(value)] = UNKNOWN
            for inner in node.blocks:
                for param in inner.params:
                    param.type = self.declared[id(param)]
                    self.env[id(param)] = UNKNOWN

    # -------------------------------------------------------------------- nodes
    def _run_node(self, node: Node, args: list[Any], tolerant: bool) -> list[Any]:
        node.meta.pop("type_fallback", None)
        op = node.op
        if op == "prim::Constant":
            return [self._fake_constant(node.attrs["value"])]
        if op == "prim::If":
            return self._run_if(node, args, tolerant)
        if op == "prim::Loop":
            return self._run_loop(node, args, tolerant)
        if op == "prim::RaiseException":
            # Never raised here: the block holding it is treated as one that does not return.
            return []
        if op == "prim::Uninitialized":
            return [UNINITIALIZED]
        if _contains_opaque(args):
            return self._fallback(node, "an input's value is only known at run time")
        try:
            outputs = self._execute(node, args)
        except PorosError:
            raise
        except _NoSymbolicRule as error:
            return self._fallback(node, f"no symbolic rule: {error}")
        except _ReadsTensorData:
            return self._fallback(node, "the value is read from tensor data at run time")
        except _DATA_DEPENDENT as error:
            return self._fallback(node, f"the result depends on tensor data or has no fake kernel ({_first_line(error)})")
        except Exception as error:  # noqa: BLE001 - any failure of the op is reported with its node
            if tolerant:
                return self._fallback(node, f"fails on this path ({_first_line(error)}); the path may never run")
            specs = ", ".join(str(spec) for spec in self.specs)
            raise FrontendError(
                f"shape inference failed at {_location(node)} for inputs [{specs}]: {_first_line(error)}. "
                "Check that each --input matches what forward expects (rank, sizes, dtype), in argument order"
            ) from error
        self._check_guards(node)
        return outputs

    def _fallback(self, node: Node, reason: str) -> list[Any]:
        node.meta["type_fallback"] = reason
        return [UNKNOWN] * len(node.outputs)

    def _execute(self, node: Node, args: list[Any]) -> list[Any]:
        rule = self._symbolic_rule(node, args)
        if rule is None:
            return run_node(node, args)
        result = rule(*args)
        if len(node.outputs) == 1:
            return [result]
        if not node.outputs:
            return []
        return list(result)

    def _symbolic_rule(self, node: Node, args: list[Any]) -> Callable[..., Any] | None:
        """A shape-aware implementation of ``node`` where torch.ops would specialize symbols."""
        op = node.op
        has_tensor = any(isinstance(a, torch.Tensor) for a in args)
        if op == "aten::size" and has_tensor:
            return lambda tensor, dim=None: list(tensor.shape) if dim is None else tensor.size(dim)
        if op == "aten::len" and has_tensor:
            return lambda tensor: tensor.size(0)
        if op == "prim::NumToTensor":
            return self._num_to_tensor
        if op in _TENSOR_TO_SCALAR and has_tensor:
            return lambda tensor: self._tensor_to_scalar(op, tensor)
        if op in _SCALAR_TENSOR_OPS and has_tensor and all(
            self._scalar_value(a) is not None for a in args if isinstance(a, torch.Tensor)
        ):
            return lambda *values: self._scalar_tensor_op(node, list(values))
        if op in _LIST_OPS and args and isinstance(args[0], list) and node.overload.endswith("t"):
            return _LIST_OPS[op]
        if has_tensor or not _contains_symbolic(args):
            return None
        if op in _SYMBOLIC_SCALAR_OPS:
            return _SYMBOLIC_SCALAR_OPS[op]
        if op in _VALUE_AGNOSTIC_OPS:
            return None

        def refuse(*_: Any) -> Any:
            raise _NoSymbolicRule(f"{node.kind} on shape-derived values")

        return refuse

    # ------------------------------------------------------ 0-dim tensors holding sizes
    def _scalar_value(self, tensor: Any) -> Any:
        entry = self.scalar_values.get(id(tensor))
        return entry[1] if entry is not None and entry[0] is tensor else None

    def _track(self, tensor: torch.Tensor, value: Any) -> torch.Tensor:
        self.scalar_values[id(tensor)] = (tensor, value)
        return tensor

    def _num_to_tensor(self, value: Any) -> torch.Tensor:
        if isinstance(value, (bool, torch.SymBool)):
            dtype = torch.bool
        elif isinstance(value, (int, torch.SymInt)):
            dtype = torch.int64
        elif isinstance(value, complex):
            dtype = torch.complex128
        else:
            dtype = torch.float64
        return self._track(torch.empty((), dtype=dtype), value)

    def _tensor_to_scalar(self, op: str, tensor: torch.Tensor) -> Any:
        value = self._scalar_value(tensor)
        if value is None:
            # Read out of tensor data: a fresh data-dependent symbol (u<k>) where torch has one.
            if op == "aten::Bool" or tensor.dtype == torch.bool:
                raise _ReadsTensorData(op)
            if op == "aten::Int" or not (tensor.dtype.is_floating_point or tensor.dtype.is_complex):
                return self.shape_env.create_unbacked_symint()
            if op == "aten::Float" or tensor.dtype.is_floating_point:
                return self.shape_env.create_unbacked_symfloat()
            raise _ReadsTensorData(op)
        if op == "aten::Int":
            return _to_int(value)
        if op == "aten::Float":
            return _to_float(value)
        if op == "aten::Bool":
            return value if isinstance(value, (bool, torch.SymBool)) else value != 0
        return value

    def _scalar_tensor_op(self, node: Node, args: list[Any]) -> torch.Tensor:
        result = run_node(node, args)[0]
        values = [self._scalar_value(a) if isinstance(a, torch.Tensor) else a for a in args]
        value = _SCALAR_TENSOR_OPS[node.op](values)
        if not isinstance(result, torch.Tensor) or result.dim() != 0 or result.dtype == torch.bool:
            return result
        if result.dtype.is_floating_point:
            return self._track(result, _to_float(value))
        if result.dtype.is_complex:
            return result
        return self._track(result, _to_int(value))

    # --------------------------------------------------------------------- constants
    def _prepare_constants(self) -> None:
        """Fake copies of the constant tensors, made before entering the fake mode (reading a
        0-dim constant's value must run on the real tensor)."""
        for node in self.graph.walk():
            if node.op == "prim::Constant":
                self._fake_constant(node.attrs["value"])

    def _fake_constant(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            cached = self.fake_constants.get(id(value))
            if cached is not None and cached[0] is value:
                return cached[1]
            try:
                fake = self.fake_mode.from_tensor(value, static_shapes=True)
            except Exception:  # noqa: BLE001 - e.g. quantized or sparse constants: typed by declaration
                fake = UNKNOWN
            if isinstance(fake, torch.Tensor) and value.dim() == 0 and not value.dtype.is_complex:
                self._track(fake, value.item())
            self.fake_constants[id(value)] = (value, fake)
            return fake
        if isinstance(value, list):
            return [self._fake_constant(item) for item in value]
        if isinstance(value, tuple):
            return tuple(self._fake_constant(item) for item in value)
        return value

    # ------------------------------------------------------------------ control flow
    def _known_bool(self, condition: Any) -> bool | None:
        if isinstance(condition, bool):
            return condition
        if isinstance(condition, torch.SymBool):
            if statically_known_true(condition):
                return True
            if statically_known_true(torch.sym_not(condition)):
                return False
        return None

    def _run_if(self, node: Node, args: list[Any], tolerant: bool) -> list[Any]:
        known = self._known_bool(args[0])
        outcomes = []
        for index, block in enumerate(node.blocks):
            if known is not None and known != (index == 0):
                self._mark_unreachable(block, "this branch is not taken for any input in the declared ranges")
                continue
            results = self._run_block(block, [], tolerant or known is None)
            if not any(inner.op == "prim::RaiseException" for inner in block.nodes):
                outcomes.append(results)
        if not outcomes:
            return [UNKNOWN] * len(node.outputs)
        joined = outcomes[0]
        for other in outcomes[1:]:
            joined = [self._join(a, b, (id(node), index)) for index, (a, b) in enumerate(zip(joined, other))]
        return joined

    def _run_loop(self, node: Node, args: list[Any], tolerant: bool) -> list[Any]:
        max_trips, condition, *carried = args
        body = node.blocks[0]
        never = (isinstance(max_trips, int) and max_trips <= 0) or condition is False
        always = isinstance(max_trips, int) and max_trips > 0 and condition is True
        counter = self.loop_counters.get(id(node))
        if counter is None:
            counter = self.loop_counters[id(node)] = self.shape_env.create_unbacked_symint()
        if never:
            self._run_block(body, [counter, *carried], tolerant=True)
            return carried
        params = body.params[1:]
        for _ in range(_MAX_LOOP_PASSES):
            results = self._run_block(body, [counter, *carried], tolerant or not always)
            widened = [self._join(c, r, (id(node), k)) for k, (c, r) in enumerate(zip(carried, results[1:]))]
            stable = all(
                self._refine(self.declared[id(p)], old) == self._refine(self.declared[id(p)], new)
                for p, old, new in zip(params, carried, widened)
            )
            carried = widened
            if stable:
                return carried
        carried = [UNKNOWN] * len(carried)
        self._run_block(body, [counter, *carried], tolerant=True)
        node.meta["type_fallback"] = f"loop-carried types did not settle in {_MAX_LOOP_PASSES} passes"
        return carried

    # --------------------------------------------------------------------- joins
    def _known_equal(self, a: Any, b: Any) -> bool:
        if not isinstance(a, _SYMBOLIC) and not isinstance(b, _SYMBOLIC):
            return type(a) is type(b) and a == b
        try:
            return statically_known_true(a == b)
        except Exception:  # noqa: BLE001 - incomparable values are simply not known equal
            return False

    def _joined_size(self, site: tuple) -> torch.SymInt:
        size = self.joined_sizes.get(site)
        if size is None:
            size = self.joined_sizes[site] = self.shape_env.create_unbacked_symint()
        return size

    def _join(self, a: Any, b: Any, site: tuple) -> Any:
        """A value that stands for both ``a`` and ``b`` (the two paths into one SSA value)."""
        if a is b or b is UNINITIALIZED:
            return a
        if a is UNINITIALIZED:
            return b
        if isinstance(a, _Opaque) or isinstance(b, _Opaque):
            return UNKNOWN
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
            if a.dtype != b.dtype or a.dim() != b.dim() or a.device != b.device:
                return UNKNOWN
            sizes = [
                x if self._known_equal(x, y) else self._joined_size(site + (index,))
                for index, (x, y) in enumerate(zip(a.shape, b.shape))
            ]
            if all(new is old for new, old in zip(sizes, a.shape)):
                return a
            return torch.empty(sizes, dtype=a.dtype, device=a.device)
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and type(a) is type(b):
            if len(a) != len(b):
                return UNKNOWN
            items = [self._join(x, y, site + (index,)) for index, (x, y) in enumerate(zip(a, b))]
            return type(a)(items)
        int_like = (int, torch.SymInt)
        if isinstance(a, int_like) and isinstance(b, int_like) and not isinstance(a, bool) and not isinstance(b, bool):
            return a if self._known_equal(a, b) else self._joined_size(site)
        if a is None and b is None:
            return None
        return a if self._known_equal(a, b) else UNKNOWN

    # ------------------------------------------------------------------ guards
    def _check_guards(self, node: Node) -> None:
        guards = getattr(self.shape_env, "guards", None) or []
        for guard in guards[self.guards_seen:]:
            self.guards.append({
                "guard": str(self.symbols.translate(guard.expr)),
                "node": node.kind,
                "source": node.meta.get("source", ""),
            })
        self.guards_seen = len(guards)
        for torch_symbol, name, description in self.input_symbols:
            value = self.shape_env.simplify(torch_symbol)
            if value.is_number:
                raise FrontendError(
                    f"{description} is dynamic ({name}), but {_location(node)} only works when it is "
                    f"{int(value)}: the model specializes this size. Declare the dim static "
                    f"({int(value)} in --input), or make the model keep it symbolic (a trace bakes Python "
                    "ints computed from sizes into the graph: compute them with tensor ops, or script "
                    "that part with torch.jit.script)"
                )

    # ------------------------------------------------------------------- types
    def _refine(self, declared: IRType, value: Any) -> IRType:
        """The declared TorchScript type, made precise by the value found for it."""
        if isinstance(value, _Opaque):
            return declared
        if isinstance(declared, OptionalType):
            return declared if value is None else OptionalType(self._refine(declared.element, value))
        if isinstance(value, torch.Tensor) and isinstance(declared, TensorType):
            return TensorType(_dtype_name(value.dtype), tuple(self.symbols.dim(size) for size in value.shape))
        if isinstance(declared, ScalarType):
            if isinstance(value, _SYMBOLIC):
                return ScalarType(declared.name, str(self.symbols.expression(value)))
            if declared.name == "int" and isinstance(value, int) and not isinstance(value, bool):
                return ScalarType("int", str(value))
            return declared
        if isinstance(declared, ListType) and isinstance(value, list):
            if not value:
                return declared
            return ListType(self._join_types([self._refine(declared.element, item) for item in value]))
        if isinstance(declared, TupleType) and isinstance(value, tuple) and len(value) == len(declared.elements):
            return TupleType(tuple(self._refine(t, item) for t, item in zip(declared.elements, value)))
        return declared

    def _join_types(self, types: list[IRType]) -> IRType:
        first = types[0]
        if all(t == first for t in types):
            return first
        if all(isinstance(t, TensorType) for t in types):
            dtypes = {t.dtype for t in types}
            ranks = {t.rank for t in types}
            dtype = first.dtype if len(dtypes) == 1 else None
            if len(ranks) != 1 or None in ranks:
                return TensorType(dtype, None)
            shape = []
            for position in range(first.rank):
                dims = [t.shape[position] for t in types]
                shape.append(dims[0] if all(d == dims[0] for d in dims) else self.symbols.join_dim(dims))
            return TensorType(dtype, tuple(shape))
        if all(isinstance(t, ScalarType) and t.name == first.name for t in types):
            return ScalarType(first.name)
        return first
