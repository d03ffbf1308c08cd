"""Constant folding: compute at build time what does not depend on the inputs.

Rewrites:

* a node whose inputs are all ``prim::Constant`` is run once with
  :func:`packager.ir.interpreter.run_node` and replaced by one ``prim::Constant`` per output;
* ``aten::size`` / ``aten::dim`` / ``aten::numel`` / ``aten::len.Tensor`` of a tensor whose IR type
  pins the answer (static dims) become int constants, so shape arithmetic (``prim::NumToTensor``,
  ``aten::Int``, int math) folds after them;
* ``prim::If`` with a constant condition is replaced by the nodes of the branch it takes;
* ``prim::Loop`` that runs zero times (constant trip count <= 0 or constant false condition) is
  replaced by its initial carried values.

A node is folded only when doing it once at build time is the same as doing it at every run:
no side effects, no in-place writes, no random draws (dropout folds only with ``train=False``),
nothing in or out of it written in place anywhere in the graph (the constant would go stale,
or be shared between runs), no result that depends on where tensors live at run time
(``prim::device``, an explicit non-CPU ``device=``), and no factory op that takes its dtype or
device from defaults (``aten::zeros(..., dtype=None, device=None)``), which the run time may set
differently. Results must be constant-representable (tensors, scalars, strings, None, devices,
dtypes, lists of these). A result with more than ``max_elements`` elements is folded only if it
is no larger than the constant tensors it is computed from: transforming a weight (transpose,
cast) keeps the artifact the same size, expanding one (``expand``, ``repeat``, ``zeros``) would
store what is cheaper to compute. Predictions use the node's IR type and, when that is not
static, a run on the meta device, so nothing huge is ever allocated.

Invariant: for every input the graph computes the same outputs as before. A node that looks
foldable but is refused (size cap, defaults, in-place writes elsewhere, evaluation error) keeps
the reason in ``node.meta["not_folded_reason"]``; plainly run-time work (random draws, device
queries, side effects) stays without a note.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from packager.errors import UnsupportedOpError
from packager.ir.graph import Block, Graph, Node, Value, copy_node_into
from packager.ir.interpreter import run_node
from packager.ir.ops import resolve_overload, split_arguments
from packager.ir.types import IRType, ListType, OptionalType, TensorType, TupleType
from packager.lowering._constants import constant_value, insert_constant, is_constant, type_of_constant
from packager.ir.effects import AliasClasses, effects_of, is_seeded_random, may_alias, schema_of
from packager.lowering.pass_manager import Pass

__all__ = ["ConstantFolding", "DEFAULT_MAX_ELEMENTS"]

DEFAULT_MAX_ELEMENTS = 1_000_000

# Never folded, whatever their inputs: the answer depends on the run, not the build (weights
# move to the target device; addresses and strides belong to the run-time tensors).
_RUN_TIME_OPS = frozenset({
    "prim::device", "prim::is_cuda", "aten::is_cuda", "aten::get_device", "aten::cpu", "aten::cuda",
    "aten::data_ptr", "aten::stride", "aten::is_contiguous",
})

_DROPOUT_OPS = frozenset({
    "aten::dropout", "aten::feature_dropout", "aten::alpha_dropout", "aten::feature_alpha_dropout",
})

# Not worth a note: they have no constant form, or are never foldable by nature.
_NOT_CANDIDATES = frozenset({"prim::TupleConstruct", "prim::DictConstruct", "prim::Uninitialized"})

_SHAPE_OPS = frozenset({"aten::size", "aten::dim", "aten::numel", "aten::len"})


class ConstantFolding(Pass):
    name = "constant_folding"

    def __init__(self, max_elements: int = DEFAULT_MAX_ELEMENTS) -> None:
        self.max_elements = max_elements

    def run(self, graph: Graph) -> bool:
        # Inlining a branch exposes new candidates; each sweep starts from fresh alias facts
        # because the inlined copies are new values.
        changed = False
        while self._fold_block(graph.block, AliasClasses(graph)):
            changed = True
        return changed

    def _fold_block(self, block: Block, aliases: AliasClasses) -> bool:
        changed = False
        for node in list(block.nodes):
            if node.op == "prim::Constant":
                continue
            if node.op == "prim::If":
                if _fold_if(node):
                    changed = True
                    continue
            elif node.op == "prim::Loop":
                if _fold_zero_trip_loop(node):
                    changed = True
                    continue
            for inner in node.blocks:
                changed = self._fold_block(inner, aliases) or changed
            if node.blocks:
                continue
            shape = _fold_shape_query(node)
            if shape is not None:
                _replace_with_constants(node, [shape])
                changed = True
                continue
            if not node.inputs and node.op != "prim::ListConstruct":
                continue  # an empty list is a constant; other input-less ops are not
            if not all(is_constant(value) for value in node.inputs):
                continue
            outcome = self._evaluate(node, aliases)
            if outcome is None:
                continue
            if isinstance(outcome, str):
                node.meta["not_folded_reason"] = outcome
                continue
            _replace_with_constants(node, outcome)
            changed = True
        return changed

    # -------------------------------------------------------------- checks
    def _evaluate(self, node: Node, aliases: AliasClasses) -> list[Any] | str | None:
        """The node's outputs computed now; or the reason it must not be folded, when that is
        worth telling; or None when it is plainly not foldable (see :func:`_plainly_run_time`)."""
        if _plainly_run_time(node):
            return None
        reason = _refusal(node, aliases)
        if reason is not None:
            return reason
        values = [constant_value(value) for value in node.inputs]
        input_elements = sum(_element_count(value) for value in values)
        budget = max(self.max_elements, input_elements)
        predicted = _predict_elements(node, values)
        if isinstance(predicted, str):
            return predicted
        if predicted > budget:
            return _too_large(predicted, self.max_elements, input_elements)
        try:
            with torch.no_grad():
                results = run_node(node, values)
        except Exception as error:  # the op raises on these constants: leave it to run time
            return f"evaluating it at build time raised {type(error).__name__}: {error}"
        produced = sum(_element_count(result) for result in results)
        if produced > budget:
            return _too_large(produced, self.max_elements, input_elements)
        for result in results:
            if not _representable(result):
                return f"its result ({type(result).__name__}) cannot be stored as a constant"
        return [_own_storage(result) for result in results]


def _plainly_run_time(node: Node) -> bool:
    """Side effects, in-place writes, random draws, device queries and moves, engine calls,
    tuples and dicts: never foldable, and nothing to explain."""
    effects = effects_of(node)
    if effects.side_effects or effects.writes or node.namespace == "poros":
        return True
    if node.op in _RUN_TIME_OPS or node.op in _NOT_CANDIDATES:
        return True
    if node.op in _DROPOUT_OPS:
        return constant_value(node.inputs[2]) is not False
    if is_seeded_random(node):
        return True
    return any(_names_a_run_time_device(argument, value) for argument, value in _schema_arguments(node))


def _refusal(node: Node, aliases: AliasClasses) -> str | None:
    """Why a node that looks foldable is not."""
    if node.op in ("aten::__is__", "aten::__isnot__") and all(constant_value(v) is not None for v in node.inputs):
        return "object identity of two constants is not defined at build time"
    for value in (*node.inputs, *node.outputs):
        if aliases.is_written(value):
            return f"%{value.name} may be written in place elsewhere in the graph"
    arguments = _schema_arguments(node)
    if any("Tensor" in str(argument.type) for argument, _ in arguments):
        return None  # dtype/device default to the inputs'
    for argument, value in arguments:
        if constant_value(value) is not None:
            continue
        if str(argument.type) in ("Device", "Optional[Device]"):
            return "it allocates on the default device, which the run time decides"
        if argument.name == "dtype":
            return "it allocates with the default dtype, which the run time may set differently"
    return None


def _schema_arguments(node: Node) -> list[tuple[Any, Value]]:
    schema = schema_of(node)
    return [] if schema is None else list(zip(schema.arguments, node.inputs))


def _names_a_run_time_device(argument: Any, value: Value) -> bool:
    if str(argument.type) not in ("Device", "Optional[Device]"):
        return False
    chosen = constant_value(value)
    return chosen is not None and _device_type(chosen) != "cpu"


def _device_type(device: Any) -> str:
    try:
        return torch.device(device).type
    except (RuntimeError, TypeError):
        return str(device)


def _predict_elements(node: Node, values: list[Any]) -> int | str:
    """Elements the node will produce, known before running it, or the reason they are not."""
    total = 0
    unknown = False
    for output in node.outputs:
        if isinstance(output.type, TensorType) and output.type.is_static:
            total += math.prod(output.type.shape)
        elif _may_hold_tensors(output.type):
            unknown = True
    if not unknown:
        return total
    return _predict_on_meta(node, values)


def _may_hold_tensors(type_: IRType) -> bool:
    if isinstance(type_, TensorType):
        return True
    if isinstance(type_, (ListType, OptionalType)):
        return _may_hold_tensors(type_.element)
    if isinstance(type_, TupleType):
        return any(_may_hold_tensors(element) for element in type_.elements)
    return may_alias(type_)


def _predict_on_meta(node: Node, values: list[Any]) -> int | str:
    try:
        overload = resolve_overload(node.op, node.overload)
    except UnsupportedOpError:
        return 0  # Python builtins only rearrange what they are given
    meta_values = [_to_meta(value) for value in values]
    args, kwargs = split_arguments(overload, meta_values)
    try:
        with torch.no_grad():
            result = overload(*args, **kwargs)
    except Exception as error:
        return f"its output size cannot be predicted without running it ({type(error).__name__})"
    return _element_count(result)


def _to_meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device="meta")
    if isinstance(value, torch.device):
        return torch.device("meta")
    if isinstance(value, (list, tuple)):
        return type(value)(_to_meta(item) for item in value)
    return value


def _element_count(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel()
    if isinstance(value, (list, tuple)):
        return sum(_element_count(item) for item in value)
    return 0


def _too_large(elements: int, cap: int, input_elements: int) -> str:
    return (f"it would store {elements} elements, more than the cap ({cap}) and more than its "
            f"constant inputs ({input_elements}); computing it at run time is cheaper")


def _representable(value: Any, inside_list: bool = False) -> bool:
    if value is None or isinstance(value, (bool, int, float, str, torch.dtype, torch.device)):
        return True
    if isinstance(value, torch.Tensor):
        return value.layout == torch.strided and not value.is_quantized and value.device.type == "cpu"
    if isinstance(value, list) and not inside_list:
        return all(_representable(item, inside_list=True) for item in value)
    return False


def _own_storage(value: Any) -> Any:
    """A view of a constant would keep (and serialize) its whole base: give it its own storage."""
    if isinstance(value, torch.Tensor) and value._base is not None:
        return value.clone()
    if isinstance(value, list):
        return [_own_storage(item) for item in value]
    return value


def _replace_with_constants(node: Node, results: list[Any]) -> None:
    for output, result in zip(node.outputs, results, strict=True):
        type_ = type_of_constant(result) if isinstance(result, torch.Tensor) else output.type
        constant = insert_constant(node, result, type_)
        output.replace_all_uses_with(constant)
    node.owner.remove_node(node)


# ------------------------------------------------------------------ shape queries
def _fold_shape_query(node: Node) -> Any:
    """The int (or int list) a shape query returns, when the input's IR type pins it; else None."""
    if node.op not in _SHAPE_OPS or not node.inputs:
        return None
    type_ = node.inputs[0].type
    if not isinstance(type_, TensorType) or type_.shape is None:
        return None
    shape = type_.shape
    if node.op == "aten::dim":
        return len(shape)
    if node.op == "aten::size" and node.overload == "int" and len(node.inputs) == 2:
        if not is_constant(node.inputs[1]):
            return None
        dim = constant_value(node.inputs[1])
        if not isinstance(dim, int) or not -len(shape) <= dim < len(shape):
            return None
        size = shape[dim]
        return size if isinstance(size, int) else None
    if not all(isinstance(size, int) for size in shape):
        return None
    if node.op == "aten::size" and node.overload == "":
        return list(shape)
    if node.op == "aten::numel":
        return math.prod(shape)
    if node.op == "aten::len" and node.overload == "Tensor" and shape:
        return shape[0]
    return None


# ------------------------------------------------------------------ control flow
def _fold_if(node: Node) -> bool:
    """Inline the branch a constant condition takes."""
    condition = node.inputs[0]
    if not is_constant(condition) or not isinstance(constant_value(condition), (bool, int)):
        return False
    taken = node.blocks[0] if constant_value(condition) else node.blocks[1]
    block = node.owner
    mapping = _outer_values(taken)
    position = block.position(node)
    for inner in list(taken.nodes):
        copy_node_into(inner, block, mapping, position)
        position += 1
    for output, returned in zip(node.outputs, taken.returns):
        output.replace_all_uses_with(mapping.get(id(returned), returned))
    block.remove_node(node)
    return True


def _outer_values(block: Block) -> dict[int, Value]:
    """Identity mapping for the values a block uses but does not define (for copy_node_into)."""
    defined: set[int] = set()
    for node in block.walk():
        defined.update(id(value) for value in node.outputs)
        for inner in node.blocks:
            defined.update(id(value) for value in inner.params)
    mapping: dict[int, Value] = {}
    users = [*block.walk(), block.return_node]
    users += [inner.return_node for node in block.walk() for inner in node.blocks]
    for user in users:
        for value in user.inputs:
            if id(value) not in defined:
                mapping[id(value)] = value
    return mapping


def _fold_zero_trip_loop(node: Node) -> bool:
    trip_count, condition = node.inputs[0], node.inputs[1]
    never = (is_constant(trip_count) and isinstance(constant_value(trip_count), int)
             and constant_value(trip_count) <= 0)
    never = never or (is_constant(condition) and constant_value(condition) is False)
    if not never:
        return False
    for output, initial in zip(node.outputs, node.inputs[2:]):
        output.replace_all_uses_with(initial)
    node.owner.remove_node(node)
    return True
