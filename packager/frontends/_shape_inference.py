"""Types and shapes for an imported graph, found by running it on fake tensors.

Every input gets a FakeTensor (no data) whose dynamic dims are symbols of torch's ``ShapeEnv``,
constrained to the ranges of the ``--input`` specs. Each node then runs through the IR's own
executor (``packager.ir.interpreter.run_node``; builtins that would pin a symbol go through
:mod:`packager.frontends._symbolic_builtins`) under the fake mode and the Python dispatcher, as
torch.export traces, so an output's dtype and shape are what torch's meta kernels compute, with
sizes as expressions over the input symbols.

Representation (what the rest of the packager reads):

* Input dims are named ``s0``, ``s1``, ... one per dynamic dim, in input order then dim order;
  ``graph.meta["symbols"]`` maps each to ``{"min", "opt", "max"}``.
* ``TensorType(dtype, shape)``; a dim is an ``int`` or ``SymDim(expr, min, max)``. ``expr`` is
  Python source over the input symbols (``"2*s0"``, ``"1 + (((-1) + s1) // 2)"``; ``eval`` with
  the sizes gives the dim) and ``min``/``max`` are its bounds over the declared ranges (``None``
  where unbounded). A ``u<k>`` symbol is a size that is not a function of the input shapes: read
  out of tensor data (``nonzero``), or different on different paths -- the two branches of an
  ``if``, the iterations of a loop -- where the value's type is the join of what every path
  gives (equal dims stay, different ones become one ``u<k>`` per position, whose range is the
  union of theirs; a loop counter's is ``0 .. trips-1``).
* ints computed from shapes are ``ScalarType("int", symbol=expr)``.
* ``graph.meta["shape_guards"]``: the assumptions torch made (``s1 == s0`` where a ``cat`` needs
  equal batch sizes, ``s1 >= 4`` ...), each with the node that made it and whether that node is
  on a path that may not run (``"conditional"``). A guard that pins a dynamic dim to one value is
  an error instead (see below).

Control flow: a branch whose condition is decided by the declared ranges is the only one run; an
undecided condition runs both and joins them, except that a branch taken only for one exact size
(``if x.size(0) == 1``) is not run (it would pin the size for the whole graph) and its outputs
keep their declared types. A loop with a concrete trip count of at most 64 runs exactly (lists it
builds get their real lengths); other loops run their body until the carried types stop widening,
and lists they grow get an unknown length.

Where a value cannot be computed at build time (it depends on tensor data, or torch has no
symbolic shape rule for an op), its node keeps the type TorchScript declared
(``TensorType(None, None)`` for a tensor), ``node.meta["type_fallback"]`` says why, and nodes that
use the value do the same. Nodes on paths that cannot run keep their declared types too.

Errors (:class:`FrontendError`): an op that pins a dynamic input dim to one value (a traced
``reshape`` with a baked batch size), since no engine built for the range would be right; and an
op that fails on the example sizes (a conv given the wrong number of channels) outside paths
that may not run.
"""

from __future__ import annotations

import re
from typing import Any, Callable, NamedTuple, Sequence

import sympy
import torch
from torch._dispatch.python import enable_python_dispatcher
from torch._subclasses.fake_tensor import (
    DataDependentOutputException,
    DynamicOutputShapeException,
    FakeTensorMode,
    UnsupportedOperatorException,
    is_fake,
    unset_fake_temporarily,
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
from packager.frontends import _symbolic_builtins as builtins
from packager.ir.graph import Block, Graph, Node, Value
from packager.ir.interpreter import run_node
from packager.ir.types import IRType, ListType, OptionalType, ScalarType, SymDim, TensorType, TupleType
from packager.spec import DimSpec, InputSpec

try:  # torch's printer of sympy expressions as Python source (FloorDiv -> //, Mod -> %)
    from torch.utils._sympy.printers import PythonPrinter as _PythonPrinter
except ImportError:  # pragma: no cover - a torch without it: sympy's own syntax
    _PythonPrinter = None

__all__ = ["infer_types", "expression_text"]

# Raised by torch when a result depends on tensor data or an op has no fake kernel.
_DATA_DEPENDENT = (
    DataDependentOutputException,
    DynamicOutputShapeException,
    UnsupportedOperatorException,
    GuardOnDataDependentSymNode,
    NotImplementedError,
)

# Structural ops on tuples and new containers: they run even when some elements are unknown.
_CONTAINER_OPS = frozenset({
    "prim::ListConstruct", "prim::TupleConstruct", "prim::TupleUnpack", "prim::TupleIndex",
    "prim::unchecked_cast",
})

# Loops with a concrete trip count up to this run exactly; longer ones to a fixed point.
_MAX_EXACT_TRIPS = 64
# How many times a loop body may run while its carried types still widen.
_MAX_LOOP_PASSES = 8


class _Opaque:
    """A value known only by its declared type."""

    __slots__ = ("label",)

    def __init__(self, label: str) -> None:
        self.label = label

    def __repr__(self) -> str:
        return f"<{self.label}>"


# A value that depends on tensor data, or could not be computed.
UNKNOWN = _Opaque("unknown")
# What prim::Uninitialized gives (the "result" of a branch that raises): joins as the identity.
UNINITIALIZED = _Opaque("uninitialized")


class _ReadsTensorData(Exception):
    """The node turns tensor data into a Python value (``bool(x.sum() > 0)``)."""


class _NoHint(Exception):
    """A size has no example value (it is data-dependent)."""


class _TensorMeta(NamedTuple):
    """What the type of a tensor needs, copied when the value is bound (in-place ops such as
    ``unsqueeze_`` later change the fake tensor itself)."""

    dtype: torch.dtype
    shape: tuple


def infer_types(graph: Graph, specs: Sequence[InputSpec]) -> None:
    """Set the type of every value of ``graph`` from a fake run on ``specs`` (see module doc)."""
    _ShapeInference(graph, specs).run()


def expression_text(expr: sympy.Basic) -> str:
    """An expression (or relation) as Python source over the symbols."""
    if _PythonPrinter is not None:
        try:
            return _PythonPrinter().doprint(expr)
        except Exception:  # noqa: BLE001 - an expression this printer does not know: sympy's syntax
            pass
    return str(expr)


# --------------------------------------------------------------------------------- helpers
def _finite_int(bound: Any) -> int | None:
    try:
        if bound.is_finite is False or not bound.is_integer:
            return None
        return int(bound)
    except (AttributeError, TypeError, ValueError, OverflowError):
        return None


def _hint(value: Any) -> Any:
    """The example value of a size or scalar (what it is at the inputs' example sizes)."""
    if not isinstance(value, builtins.SYMBOLIC):
        return value
    hint = getattr(value.node, "hint", None)
    if hint is None:
        raise _NoHint()
    return hint


def _example_size(dim: DimSpec) -> int:
    # torch specializes sizes 0 and 1; an example size of at least 2 keeps the dim symbolic.
    if dim.opt < 2 <= dim.max:
        return 2
    return dim.opt


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _location(node: Node) -> str:
    source = node.meta.get("source")
    return f"{node.kind} at {source}" if source else node.kind


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _snapshot(value: Any) -> Any:
    """What typing ``value`` later needs: a tensor's metadata as it is now (an in-place op such as
    ``unsqueeze_`` may change the fake tensor afterwards). Lists stay live: appending to a list is
    part of what the list value is."""
    if isinstance(value, torch.Tensor):
        return _TensorMeta(value.dtype, tuple(value.shape))
    if isinstance(value, tuple):
        return tuple(_snapshot(item) for item in value)
    return value


def _pins_a_size(condition: sympy.Basic) -> bool:
    """Whether a branch condition holds for one exact size only (``Eq(s0, 1)``)."""
    return isinstance(condition, sympy.Eq) and any(side.is_number for side in condition.args)


# ----------------------------------------------------------------------------- symbols
class _Symbols:
    """Translates torch's sympy symbols into ours: ``s<k>`` for input dims, ``u<k>`` otherwise."""

    def __init__(self, shape_env: ShapeEnv) -> None:
        self.shape_env = shape_env
        self.ours: dict[sympy.Symbol, sympy.Symbol] = {}
        self.ranges: dict[sympy.Symbol, tuple[int, int]] = {}
        self.joins: dict[tuple[str, ...], SymDim] = {}
        # Bounds of torch's data-dependent symbols where they are known (joins, loop counters).
        self.unknown_bounds: dict[sympy.Symbol, tuple[int, int]] = {}
        self._unknown_count = 0

    def add_input(self, torch_symbol: sympy.Symbol, name: str, dim: DimSpec) -> None:
        ours = sympy.Symbol(name, integer=True, positive=True)
        self.ours[torch_symbol] = ours
        self.ranges[ours] = (dim.min, dim.max)

    def fresh_unknown(self) -> sympy.Symbol:
        symbol = sympy.Symbol(f"u{self._unknown_count}", integer=True, nonnegative=True)
        self._unknown_count += 1
        return symbol

    def translate(self, expr: sympy.Basic) -> sympy.Basic:
        """``expr`` over torch's symbols -> the same over ours (new unknowns get ``u<k>``)."""
        mapping = {}
        for symbol in sorted(expr.free_symbols, key=str):
            if symbol not in self.ours:
                self.ours[symbol] = self.fresh_unknown()
                if symbol in self.unknown_bounds:
                    self.ranges[self.ours[symbol]] = self.unknown_bounds[symbol]
            mapping[symbol] = self.ours[symbol]
        return expr.xreplace(mapping)

    def widen(self, torch_symbol: sympy.Symbol, bounds: Sequence[tuple[int | None, int | None]]) -> None:
        """Let a data-dependent symbol cover ``bounds`` too (its range is their union, if all are
        finite; else it stays unbounded)."""
        if torch_symbol in self.unknown_bounds:
            bounds = [*bounds, self.unknown_bounds[torch_symbol]]
        elif torch_symbol in self.ours:
            return  # already named without a range: it stays unbounded
        lows, highs = [low for low, _ in bounds], [high for _, high in bounds]
        if None in lows or None in highs:
            self.unknown_bounds.pop(torch_symbol, None)
            if torch_symbol in self.ours:
                self.ranges.pop(self.ours[torch_symbol], None)
            return
        self.unknown_bounds[torch_symbol] = (min(lows), max(highs))
        if torch_symbol in self.ours:
            self.ranges[self.ours[torch_symbol]] = self.unknown_bounds[torch_symbol]

    def bounds_of(self, size: int | torch.SymInt) -> tuple[int | None, int | None]:
        dim = self.dim(size)
        return (dim, dim) if isinstance(dim, int) else (dim.min, dim.max)

    def substitute(self, expr: sympy.Basic) -> sympy.Basic:
        """``expr`` with torch's replacements (``s1 -> s0`` after a guard) and nothing else: no
        simplification by torch's ranges, which assume dynamic sizes of at least 2."""
        replace = getattr(self.shape_env, "replace", None)
        return replace(expr) if replace is not None else expr

    def expression(self, value: torch.SymInt | torch.SymFloat | torch.SymBool) -> sympy.Basic:
        return self.translate(self.substitute(value.node.expr))

    def dim(self, size: int | torch.SymInt) -> int | SymDim:
        if not isinstance(size, torch.SymInt):
            return int(size)
        expr = self.expression(size)
        if expr.is_number:
            return int(expr)
        if expr in self.ranges:
            low, high = self.ranges[expr]
        else:
            low, high = self._bounds(expr)
        return SymDim(expression_text(expr), low, high)

    def join_dim(self, dims: Sequence[int | SymDim]) -> SymDim:
        """One stable ``u<k>`` for a position where values of one type have different sizes;
        its range covers theirs where all are bounded."""
        key = tuple(sorted({str(d) if isinstance(d, int) else d.expr for d in dims}))
        if key not in self.joins:
            bounds = [(d, d) if isinstance(d, int) else (d.min, d.max) for d in dims]
            lows, highs = [low for low, _ in bounds], [high for _, high in bounds]
            known = None not in lows and None not in highs
            symbol = self.fresh_unknown()
            self.joins[key] = SymDim(expression_text(symbol), min(lows) if known else None, max(highs) if known else None)
        return self.joins[key]

    def rename_in(self, text: str) -> str:
        """torch's symbol names in a message -> ours."""
        names = {str(theirs): str(ours) for theirs, ours in self.ours.items()}
        return re.sub(r"\b[su]\d+\b", lambda m: names.get(m.group(0), m.group(0)), text)

    def decide(self, condition: sympy.Basic) -> bool | None:
        """The value of a condition over our symbols if the declared ranges fix it."""
        if condition in (sympy.true, sympy.false):
            return bool(condition)
        if not condition.free_symbols <= set(self.ranges):
            return None
        ranges = {symbol: ValueRanges(*self.ranges[symbol]) for symbol in condition.free_symbols}
        try:
            bounds = bound_sympy(condition, ranges)
        except Exception:  # noqa: BLE001 - a condition sympy cannot bound is undecided
            return None
        return bool(bounds.lower) if bounds.lower == bounds.upper else None

    def _bounds(self, expr: sympy.Basic) -> tuple[int | None, int | None]:
        if not expr.free_symbols <= set(self.ranges):
            return None, None
        ranges = {symbol: ValueRanges(*self.ranges[symbol]) for symbol in expr.free_symbols}
        try:
            bounds = bound_sympy(expr, ranges)
        except Exception:  # noqa: BLE001 - bounds are informative; one sympy cannot bound has none
            return None, None
        return _finite_int(bounds.lower), _finite_int(bounds.upper)


# ----------------------------------------------------------------------------- inference
class _ShapeInference:
    def __init__(self, graph: Graph, specs: Sequence[InputSpec]) -> None:
        self.graph = graph
        self.specs = list(specs)
        self.shape_env = ShapeEnv(duck_shape=False)
        self.fake_mode = FakeTensorMode(shape_env=self.shape_env)
        self.symbols = _Symbols(self.shape_env)
        # (torch symbol, our name, "input 'x' dim 0 (declared 1..8)") per dynamic input dim.
        self.input_symbols: list[tuple[sympy.Symbol, str, str]] = []
        self.declared: dict[int, IRType] = {}
        self.env: dict[int, Any] = {}
        # Every value a Value got in its last evaluation (several inside a loop run exactly).
        self.snapshots: dict[int, list[Any]] = {}
        # id(0-dim fake tensor) -> (tensor, the Python or symbolic number it holds).
        self.scalar_values: dict[int, tuple[torch.Tensor, Any]] = {}
        self.fake_constants: dict[int, tuple[torch.Tensor, Any]] = {}
        # id(list) -> (list, loop depth where it was made); lists grown by a loop run to a fixed
        # point have an unknown length.
        self.list_depths: dict[int, tuple[list, int]] = {}
        self.unknown_length: dict[int, list] = {}
        self.loop_depth = 0
        self.joined_sizes: dict[tuple, torch.SymInt] = {}
        self.loop_counters: dict[int, torch.SymInt] = {}
        self.guards_seen = 0
        self.guards: list[dict[str, Any]] = []

    # ----------------------------------------------------------------------- driver
    def run(self) -> None:
        self._record_declared_types()
        fake_inputs = self._fake_inputs()
        self._prepare_constants()
        # The Python dispatcher gives composite ops (linear, conv, upsample, the FFTs) their
        # symbolic-size-aware decompositions, as torch.export does when it traces.
        with self.fake_mode, enable_python_dispatcher(), torch.no_grad():
            self._run_block(self.graph.block, fake_inputs, tolerant=False)
            self._assign_types()
        self.graph.meta["symbols"] = {
            name: {"min": dim.min, "opt": dim.opt, "max": dim.max} for name, dim in self._dynamic_dims()
        }
        self.graph.meta["shape_guards"] = self.guards

    def _dynamic_dims(self) -> list[tuple[str, DimSpec]]:
        dims = [dim for spec in self.specs for dim in spec.dims if not dim.is_static]
        return [(f"s{index}", dim) for index, dim in enumerate(dims)]

    def _all_values(self, block: Block):
        yield from block.params
        for node in block.walk():
            yield from node.outputs
            for inner in node.blocks:
                yield from inner.params

    def _record_declared_types(self) -> None:
        for value in self._all_values(self.graph.block):
            self.declared[id(value)] = value.type

    def _assign_types(self) -> None:
        """Every value's type from all it held in its last evaluation. Done at the end, so that
        a guard found late (``s1 == s0`` at a cat) applies to values typed before it too."""
        for value in self._all_values(self.graph.block):
            if value.producer is not None and value.producer.op == "prim::Constant":
                continue  # a constant's declared type is exact
            declared = self.declared[id(value)]
            types = [self._refine(declared, seen) for seen in self.snapshots.get(id(value), [])]
            value.type = self._join_types(types) if types else declared

    def _fake_inputs(self) -> list[torch.Tensor]:
        names = self.graph.meta.get("input_names") or [v.name for v in self.graph.inputs]
        fakes = []
        for name, spec in zip(names, self.specs, strict=True):
            dynamic = [DimDynamic.STATIC if d.is_static else DimDynamic.DYNAMIC for d in spec.dims]
            constraints = [
                None if d.is_static else StrictMinMaxConstraint(vr=ValueRanges(d.min, d.max), warn_only=False)
                for d in spec.dims
            ]
            example = torch.empty([_example_size(d) for d in spec.dims], dtype=getattr(torch, spec.dtype))
            context = StatelessSymbolicContext(dynamic_sizes=dynamic, constraint_sizes=constraints)
            fake = self.fake_mode.from_tensor(example, symbolic_context=context)
            for index, (dim, size) in enumerate(zip(spec.dims, fake.shape)):
                if dim.is_static:
                    continue
                if not isinstance(size, torch.SymInt) or size.node.expr.is_number:
                    raise FrontendError(f"input {name!r} dim {index} ({dim}) could not be made symbolic; declare it static")
                symbol_name = f"s{len(self.input_symbols)}"
                self.symbols.add_input(size.node.expr, symbol_name, dim)
                self.input_symbols.append((size.node.expr, symbol_name, f"input {name!r} dim {index} (declared {dim})"))
            fakes.append(fake)
        return fakes

    def _prepare_constants(self) -> None:
        """Fake copies of the constant tensors, made before entering the fake mode (a 0-dim
        constant's number must be read from the real tensor)."""
        for node in self.graph.walk():
            if node.op == "prim::Constant":
                self._fake_constant(node.attrs["value"])

    def _fake_constant(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            cached = self.fake_constants.get(id(value))
            if cached is not None and cached[0] is value:
                return cached[1]
            fake = self._to_fake(value)
            self.fake_constants[id(value)] = (value, fake)
            return fake
        if isinstance(value, list):
            return [self._fake_constant(item) for item in value]
        if isinstance(value, tuple):
            return tuple(self._fake_constant(item) for item in value)
        return value

    def _to_fake(self, tensor: torch.Tensor) -> Any:
        """A static fake copy of a real tensor; 0-dim ones keep their number alongside."""
        with unset_fake_temporarily():
            try:
                fake = self.fake_mode.from_tensor(tensor, static_shapes=True)
            except Exception:  # noqa: BLE001 - e.g. quantized or sparse tensors: typed by declaration
                return UNKNOWN
            if tensor.dim() == 0 and not tensor.dtype.is_complex and tensor.device.type != "meta":
                self._track(fake, tensor.item())
        return fake

    # ------------------------------------------------------------------------ blocks
    def _bind(self, value: Value, result: Any) -> None:
        self.env[id(value)] = result
        self.snapshots.setdefault(id(value), []).append(_snapshot(result))
        if isinstance(result, list) and id(result) not in self.list_depths:
            self.list_depths[id(result)] = (result, self.loop_depth)

    def _forget(self, block: Block) -> None:
        """Start a new evaluation of ``block``: drop what its values held before."""
        for value in self._all_values(block):
            self.snapshots.pop(id(value), None)

    def _run_block(self, block: Block, args: list[Any], tolerant: bool) -> list[Any]:
        for param, arg in zip(block.params, args, strict=True):
            self._bind(param, arg)
        for node in block.nodes:
            outputs = self._run_node(node, [self.env[id(v)] for v in node.inputs], tolerant)
            for value, result in zip(node.outputs, outputs, strict=True):
                if node.op == "prim::Constant":
                    self.env[id(value)] = result
                else:
                    self._bind(value, result)
        return [self.env[id(v)] for v in block.returns]

    def _mark_unreachable(self, block: Block, reason: str) -> None:
        """``block`` does not run now. Values it had in earlier iterations of an enclosing loop
        still count; the others keep their declared types."""
        for value in self._all_values(block):
            self.env[id(value)] = UNKNOWN
        for node in block.walk():
            if not any(self.snapshots.get(id(value)) for value in node.outputs):
                node.meta["type_fallback"] = reason

    # ------------------------------------------------------------------------- nodes
    def _is_opaque(self, value: Any) -> bool:
        if isinstance(value, _Opaque):
            return True
        if isinstance(value, list) and id(value) in self.unknown_length:
            return True
        if isinstance(value, (list, tuple)):
            return any(self._is_opaque(item) for item in value)
        return False

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
            # Never raised here: the block holding it counts as one that does not return.
            return []
        if op == "prim::Uninitialized":
            return [UNINITIALIZED]
        if op in _CONTAINER_OPS:
            # Containers hold unknown elements fine; only an unknown container is a problem.
            if any(isinstance(arg, _Opaque) for arg in args) and op not in ("prim::ListConstruct", "prim::TupleConstruct"):
                return self._fallback(node, "an input's value is only known at run time")
        elif self._is_opaque(args):
            return self._fallback(node, "an input's value is only known at run time")
        try:
            outputs = self._execute(node, args)
        except PorosError:
            raise
        except Exception as error:  # noqa: BLE001 - every failure is classified below
            return self._after_failure(node, args, error, tolerant)
        self._check_guards(node, tolerant)
        return outputs

    def _fallback(self, node: Node, reason: str) -> list[Any]:
        node.meta["type_fallback"] = reason
        return [UNKNOWN] * len(node.outputs)

    def _after_failure(self, node: Node, args: list[Any], error: Exception, tolerant: bool) -> list[Any]:
        message = self.symbols.rename_in(_first_line(error))
        expected = isinstance(error, (builtins.NoSymbolicRule, _ReadsTensorData, *_DATA_DEPENDENT))
        if not expected and not tolerant and self._fails_at_example_sizes(node, args):
            specs = ", ".join(str(spec) for spec in self.specs)
            raise FrontendError(
                f"shape inference failed at {_location(node)} for inputs [{specs}]: {message}. "
                "Check that each --input matches what forward expects (rank, sizes, dtype), in argument order"
            ) from error
        self._check_guards(node, tolerant, failure=error)
        if isinstance(error, builtins.NoSymbolicRule):
            return self._fallback(node, f"no symbolic rule: {message}")
        if isinstance(error, _ReadsTensorData):
            return self._fallback(node, "the value is read from tensor data at run time")
        if isinstance(error, _DATA_DEPENDENT):
            return self._fallback(node, f"the result depends on tensor data or has no fake kernel ({message})")
        if tolerant:
            return self._fallback(node, f"fails on this path ({message}); the path may never run")
        return self._fallback(node, f"torch cannot compute its shape with symbolic sizes ({message})")

    def _fails_at_example_sizes(self, node: Node, args: list[Any]) -> bool:
        """Whether ``node`` also fails on static fake inputs of the example sizes: then the inputs
        do not fit the model; otherwise torch only lacks a symbolic rule for it."""
        probe_mode = FakeTensorMode()

        def concrete(value: Any) -> Any:
            if isinstance(value, torch.Tensor):
                return torch.empty([_hint(size) for size in value.shape], dtype=value.dtype, device=value.device)
            if isinstance(value, builtins.SYMBOLIC):
                return _hint(value)
            if isinstance(value, (list, tuple)):
                return type(value)(concrete(item) for item in value)
            return value

        try:
            with unset_fake_temporarily(), probe_mode:
                run_node(node, concrete(args))
        except _NoHint:
            return False
        except Exception:  # noqa: BLE001 - any failure here means the inputs do not fit
            return True
        return False

    def _execute(self, node: Node, args: list[Any]) -> list[Any]:
        rule = self._symbolic_rule(node, args)
        if rule is None:
            outputs = run_node(node, args)
        else:
            result = rule(*args)
            outputs = [result] if len(node.outputs) == 1 else list(result) if node.outputs else []
        # A few builtins (aten::tensor on a list) make real tensors even in the fake mode.
        return [self._to_fake(out) if isinstance(out, torch.Tensor) and not is_fake(out) else out for out in outputs]

    def _symbolic_rule(self, node: Node, args: list[Any]) -> Callable[..., Any] | None:
        """A shape-aware implementation of ``node`` where torch.ops would pin symbols."""
        op = node.op
        has_tensor = any(isinstance(a, torch.Tensor) for a in args)
        if op == "aten::size" and has_tensor:
            return lambda tensor, dim=None: list(tensor.shape) if dim is None else tensor.size(dim)
        if op == "aten::len" and has_tensor:
            return lambda tensor: tensor.size(0)
        if op == "aten::_convolution" and has_tensor:
            # What traces record for nn.Conv*; its kernel in torch 2.11 asks for numel() of the
            # (symbolic) input. aten::convolution takes the same first nine arguments and gives
            # the same result shape.
            return lambda *values: torch.ops.aten.convolution.default(*values[:9])
        if op in builtins.SCALAR_TO_TENSOR_OPS and args and isinstance(args[0], (bool, int, float, *builtins.SYMBOLIC)):
            return lambda value, *options: self._scalar_to_tensor(op, value, options)
        if op in builtins.TENSOR_TO_SCALAR_OPS and has_tensor:
            return lambda tensor: self._tensor_to_scalar(op, tensor)
        if op in builtins.SCALAR_TENSOR_OPS and has_tensor and all(
            self._scalar_value(a) is not None for a in args if isinstance(a, torch.Tensor)
        ):
            return lambda *values: self._scalar_tensor_op(node, list(values))
        if op in builtins.LIST_OPS and args and isinstance(args[0], list) and node.overload.endswith("t"):
            return lambda *values: self._list_op(op, list(values))
        if has_tensor or not builtins.contains_symbolic(args):
            return None
        if op in builtins.SYMBOLIC_SCALAR_OPS:
            return builtins.SYMBOLIC_SCALAR_OPS[op]
        if op in builtins.VALUE_AGNOSTIC_OPS:
            return None

        def refuse(*_: Any) -> Any:
            raise builtins.NoSymbolicRule(f"{node.kind} on shape-derived values")

        return refuse

    def _list_op(self, op: str, args: list[Any]) -> Any:
        items = args[0]
        if op in builtins.LIST_MUTATIONS:
            made_at = self.list_depths.get(id(items), (items, 0))[1]
            if made_at < self.loop_depth:
                # Grown by a loop run to a fixed point: how often is only known at run time.
                self.unknown_length[id(items)] = items
        return builtins.LIST_OPS[op](*args)

    # --------------------------------------------------------- 0-dim tensors holding numbers
    def _scalar_value(self, tensor: Any) -> Any:
        entry = self.scalar_values.get(id(tensor))
        return entry[1] if entry is not None and entry[0] is tensor else None

    def _track(self, tensor: torch.Tensor, value: Any) -> torch.Tensor:
        self.scalar_values[id(tensor)] = (tensor, value)
        return tensor

    def _scalar_to_tensor(self, op: str, value: Any, options: tuple) -> torch.Tensor:
        """``prim::NumToTensor`` / ``aten::tensor`` / ``aten::scalar_tensor`` on a number, with
        each one's dtype rule; the tensor keeps the (possibly symbolic) number alongside."""
        dtype = options[0] if op != "prim::NumToTensor" and options and isinstance(options[0], torch.dtype) else None
        if dtype is None:
            if op == "aten::scalar_tensor":
                dtype = torch.get_default_dtype()
            elif isinstance(value, (bool, torch.SymBool)):
                dtype = torch.bool
            elif isinstance(value, (int, torch.SymInt)):
                dtype = torch.int64
            elif op == "prim::NumToTensor":
                dtype = torch.float64
            else:
                dtype = torch.get_default_dtype()
        return self._track(torch.empty((), dtype=dtype), value)

    def _tensor_to_scalar(self, op: str, tensor: torch.Tensor) -> Any:
        value = self._scalar_value(tensor)
        if value is None:
            # Read out of tensor data: a fresh data-dependent symbol (u<k>) where that can be.
            if op == "aten::Bool" or tensor.dtype == torch.bool:
                raise _ReadsTensorData(op)
            if op == "aten::Int" or not (tensor.dtype.is_floating_point or tensor.dtype.is_complex):
                return self.shape_env.create_unbacked_symint()
            if tensor.dtype.is_floating_point:
                return self.shape_env.create_unbacked_symfloat()
            raise _ReadsTensorData(op)
        if op == "aten::Int":
            return builtins.to_int(value)
        if op == "aten::Float":
            return builtins.to_float(value)
        if op == "aten::Bool":
            return value if isinstance(value, (bool, torch.SymBool)) else value != 0
        return value

    def _scalar_tensor_op(self, node: Node, args: list[Any]) -> torch.Tensor:
        result = run_node(node, args)[0]
        values = [self._scalar_value(a) if isinstance(a, torch.Tensor) else a for a in args]
        value = builtins.SCALAR_TENSOR_OPS[node.op](values)
        if not isinstance(result, torch.Tensor) or result.dim() != 0 or result.dtype in (torch.bool,):
            return result
        if result.dtype.is_complex:
            return result
        if result.dtype.is_floating_point:
            return self._track(result, builtins.to_float(value))
        return self._track(result, builtins.to_int(value))

    # ------------------------------------------------------------------- control flow
    def _known_bool(self, condition: Any) -> bool | None:
        """True/False if ``condition`` has that value for every input in the declared ranges.

        Decided over our ranges, not torch's: torch assumes dynamic sizes are at least 2, so it
        would call ``x.size(0) == 1`` false even where the spec allows 1."""
        if isinstance(condition, bool):
            return condition
        if not isinstance(condition, torch.SymBool):
            return None
        expr = self.symbols.translate(self.symbols.substitute(condition.node.expr))
        if expr.free_symbols <= set(self.symbols.ranges):
            return self.symbols.decide(expr)
        # Data-dependent sizes take part: only torch knows what was assumed about them.
        if statically_known_true(condition):
            return True
        if statically_known_true(torch.sym_not(condition)):
            return False
        return None

    def _run_if(self, node: Node, args: list[Any], tolerant: bool) -> list[Any]:
        condition = args[0]
        known = self._known_bool(condition)
        outcomes = []
        for index, block in enumerate(node.blocks):
            if known is not None and known != (index == 0):
                self._mark_unreachable(block, "this branch is not taken for any input in the declared ranges")
                continue
            if known is None and isinstance(condition, torch.SymBool):
                expr = condition.node.expr if index == 0 else sympy.Not(condition.node.expr)
                if _pins_a_size(expr):
                    text = expression_text(self.symbols.translate(expr))
                    self._mark_unreachable(block, f"taken only when {text}: not shape-inferred, so as not to pin that size")
                    outcomes.append([UNKNOWN] * len(node.outputs))
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
        max_trips, condition, *initial = args
        body = node.blocks[0]
        condition = self._known_bool(condition)
        if condition is False or (isinstance(max_trips, int) and max_trips <= 0):
            self._mark_unreachable(body, "the loop runs no iteration for inputs in the declared ranges")
            return initial
        if isinstance(max_trips, int) and condition is True and max_trips <= _MAX_EXACT_TRIPS:
            exact = self._run_loop_exactly(body, max_trips, initial, tolerant)
            if exact is not None:
                return exact
        runs_once = isinstance(max_trips, int) and condition is True
        return self._run_loop_to_fixed_point(node, initial, tolerant or not runs_once)

    def _run_loop_exactly(self, body: Block, max_trips: int, carried: list[Any], tolerant: bool) -> list[Any] | None:
        """Iterate like the interpreter; None if the continue-condition becomes undecidable.
        The body's values keep what every iteration gave them (their type is the join)."""
        for iteration in range(max_trips):
            condition, *carried = self._run_block(body, [iteration, *carried], tolerant)
            keep_going = self._known_bool(condition)
            if keep_going is None:
                return None
            if not keep_going:
                break
        return carried

    def _run_loop_to_fixed_point(self, node: Node, initial: list[Any], tolerant: bool) -> list[Any]:
        body = node.blocks[0]
        counter = self.loop_counters.get(id(node))
        if counter is None:
            counter = self.loop_counters[id(node)] = self.shape_env.create_unbacked_symint()
            trips = self.env[id(node.inputs[0])]
            highest = self.symbols.bounds_of(trips)[1] if isinstance(trips, (int, torch.SymInt)) else None
            if highest is not None and highest < 2**31:  # not a while loop's "no limit"
                self.symbols.widen(counter.node.expr, [(0, max(highest - 1, 0))])
        carried = list(initial)
        self.loop_depth += 1
        try:
            for _ in range(_MAX_LOOP_PASSES):
                self._forget(body)
                results = self._run_block(body, [counter, *carried], tolerant)
                widened = [self._join(c, r, (id(node), k)) for k, (c, r) in enumerate(zip(carried, results[1:]))]
                stable = all(
                    self._refine(self.declared[id(p)], _snapshot(old)) == self._refine(self.declared[id(p)], _snapshot(new))
                    for p, old, new in zip(body.params[1:], carried, widened)
                )
                carried = widened
                if stable:
                    return carried
            carried = [UNKNOWN] * len(carried)
            self._forget(body)
            self._run_block(body, [counter, *carried], tolerant=True)
            node.meta["type_fallback"] = f"loop-carried types did not settle in {_MAX_LOOP_PASSES} passes"
            return carried
        finally:
            self.loop_depth -= 1

    # -------------------------------------------------------------------------- joins
    def _known_equal(self, a: Any, b: Any) -> bool:
        if not isinstance(a, builtins.SYMBOLIC) and not isinstance(b, builtins.SYMBOLIC):
            return type(a) is type(b) and a == b
        try:
            return statically_known_true(a == b)
        except Exception:  # noqa: BLE001 - values that cannot be compared are not known equal
            return False

    def _joined_size(self, site: tuple, *candidates: int | torch.SymInt) -> torch.SymInt:
        """The data-dependent size that stands for ``candidates`` at ``site`` (the same one on
        every loop pass); its range covers theirs."""
        size = self.joined_sizes.get(site)
        if size is None:
            size = self.joined_sizes[site] = self.shape_env.create_unbacked_symint()
        self.symbols.widen(size.node.expr, [self.symbols.bounds_of(c) for c in candidates if c is not size])
        return size

    def _join(self, a: Any, b: Any, site: tuple) -> Any:
        """One value that stands for both ``a`` and ``b`` (two paths into one SSA value)."""
        if a is b or b is UNINITIALIZED:
            return a
        if a is UNINITIALIZED:
            return b
        if self._is_opaque(a) or self._is_opaque(b):
            return UNKNOWN
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
            if a.dtype != b.dtype or a.dim() != b.dim() or a.device != b.device:
                return UNKNOWN
            sizes = [
                x if self._known_equal(x, y) else self._joined_size(site + (index,), x, y)
                for index, (x, y) in enumerate(zip(a.shape, b.shape))
            ]
            if all(new is old for new, old in zip(sizes, a.shape)):
                return a
            return torch.empty(sizes, dtype=a.dtype, device=a.device)
        if isinstance(a, (list, tuple)) and type(a) is type(b):
            if len(a) != len(b):
                return UNKNOWN
            return type(a)(self._join(x, y, site + (index,)) for index, (x, y) in enumerate(zip(a, b)))
        int_like = (int, torch.SymInt)
        if isinstance(a, int_like) and isinstance(b, int_like) and not isinstance(a, bool) and not isinstance(b, bool):
            return a if self._known_equal(a, b) else self._joined_size(site, a, b)
        if a is None and b is None:
            return None
        return a if self._known_equal(a, b) else UNKNOWN

    # ------------------------------------------------------------------------- guards
    def _check_guards(self, node: Node, conditional: bool, failure: BaseException | None = None) -> None:
        guards = getattr(self.shape_env, "guards", None) or []
        for guard in guards[self.guards_seen:]:
            text = expression_text(self.symbols.translate(guard.expr))
            if all(known["guard"] != text for known in self.guards):
                self.guards.append({"guard": text, "node": node.kind, "source": node.meta.get("source", ""),
                                    "conditional": conditional})
        self.guards_seen = len(guards)
        for torch_symbol, name, description in self.input_symbols:
            value = self.shape_env.simplify(torch_symbol)
            if not value.is_number:
                continue
            if failure is not None:
                raise FrontendError(
                    f"{description} is dynamic ({name}), but torch's shape rule for {_location(node)} "
                    f"fixed it to {int(value)} and then failed ({self.symbols.rename_in(_first_line(failure))}). "
                    "Declare the dim static, or avoid this op on dynamic sizes"
                ) from failure
            raise FrontendError(
                f"{description} is dynamic ({name}), but {_location(node)} only works when it is "
                f"{int(value)}: the model (or torch's shape rule for this op) fixes this size. Declare "
                f"the dim static ({int(value)} in --input), or make the model keep it symbolic (a trace "
                "bakes Python ints computed from sizes into the graph: compute them with tensor ops, "
                "or script that part with torch.jit.script)"
            )

    # -------------------------------------------------------------------------- types
    def _refine(self, declared: IRType, value: Any) -> IRType:
        """The declared TorchScript type, made precise by a value it held (a snapshot)."""
        if isinstance(value, _Opaque):
            return declared
        if isinstance(declared, OptionalType):
            return declared if value is None else OptionalType(self._refine(declared.element, value))
        if isinstance(value, torch.Tensor):
            value = _snapshot(value)
        if isinstance(value, _TensorMeta) and isinstance(declared, TensorType):
            return TensorType(_dtype_name(value.dtype), tuple(self.symbols.dim(size) for size in value.shape))
        if isinstance(declared, ScalarType):
            if isinstance(value, builtins.SYMBOLIC):
                return ScalarType(declared.name, expression_text(self.symbols.expression(value)))
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
        """One type for values of the same declared type seen on several paths or iterations."""
        first = types[0]
        if all(t == first for t in types):
            return first
        if all(isinstance(t, TensorType) for t in types):
            dtype = first.dtype if all(t.dtype == first.dtype for t in types) else None
            if any(t.rank != first.rank for t in types) or first.rank is None:
                return TensorType(dtype, None)
            shape = []
            for position in range(first.rank):
                dims = [t.shape[position] for t in types]
                shape.append(dims[0] if all(d == dims[0] for d in dims) else self.symbols.join_dim(dims))
            return TensorType(dtype, tuple(shape))
        if all(isinstance(t, ScalarType) and t.name == first.name for t in types):
            return ScalarType(first.name)
        if all(isinstance(t, ListType) for t in types):
            return ListType(self._join_types([t.element for t in types]))
        if all(isinstance(t, TupleType) and len(t.elements) == len(first.elements) for t in types):
            return TupleType(tuple(self._join_types(list(parts)) for parts in zip(*(t.elements for t in types))))
        if all(isinstance(t, OptionalType) for t in types):
            return OptionalType(self._join_types([t.element for t in types]))
        return first
