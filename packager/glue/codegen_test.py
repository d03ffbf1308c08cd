"""Glue codegen on hand-built graphs: the scripted glue must compute exactly what the reference
interpreter computes (same ATen kernels on the same inputs, so results are compared bitwise),
before and after a torch.jit.save / torch.jit.load round trip."""

from __future__ import annotations

import io
import itertools
from typing import Any, Sequence

import pytest
import torch

from packager.errors import BackendError, InternalError, UsageError
from packager.glue import GlueModule, build_glue, save_glue
from packager.glue._emit import write_glue_source
from packager.glue.codegen import _glue_class, _mismatched_overloads
from packager.ir import (
    BOOL,
    DEVICE,
    FLOAT,
    INT,
    NONE,
    STR,
    Block,
    Graph,
    IRType,
    ListType,
    Node,
    OptionalType,
    ScalarType,
    TensorType,
    TupleType,
    Value,
    run_graph,
    verify,
)
from poros_runtime.ops import ENGINES

# torch >= 2.13 marks torch.jit.load deprecated; the runtime loads the glue with it by design.
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.load` is deprecated:DeprecationWarning")

TENSOR = TensorType("float32")
INT64_MAX = 2**63 - 1

_instances = itertools.count()


# ----------------------------------------------------------------------------- graph building
def const(block: Block, value: Any, type_: IRType) -> Value:
    return block.append_node("prim::Constant", (), (type_,), attrs={"value": value}).output


def op(block: Block, name: str, inputs: Sequence[Value], overload: str = "",
       types: Sequence[IRType] = (TENSOR,), attrs: dict | None = None) -> Node:
    return block.append_node(name, inputs, types, overload=overload, attrs=attrs)


def ints(block: Block, values: list[int]) -> Value:
    return const(block, values, ListType(INT))


def assert_same(actual: Any, expected: Any) -> None:
    """Bitwise equality with the same nesting of tuples."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor)
        assert actual.dtype == expected.dtype and actual.shape == expected.shape
        assert torch.equal(actual, expected)
    elif isinstance(expected, tuple):
        assert isinstance(actual, tuple) and len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert_same(a, e)
    else:
        assert actual == expected


def build(graph: Graph) -> GlueModule:
    verify(graph)
    glue = build_glue(graph)
    assert isinstance(glue.module, torch.jit.ScriptModule)
    return glue


def reload(glue: GlueModule, graph: Graph) -> torch.jit.ScriptModule:
    loaded = torch.jit.load(io.BytesIO(save_glue(glue)))
    # The runtime executes the loaded module, which TorchScript recompiled from its own
    # serialized code: it must still call the overloads the IR names.
    source = write_glue_source(graph, device=glue.device)
    assert source.text == glue.source
    _, filename = _glue_class(source.text)
    assert _mismatched_overloads(loaded.graph, filename, source) == []
    return loaded


# ----------------------------------------------------------------------------- (a) plain ATen
def aten_graph() -> Graph:
    generator = torch.Generator().manual_seed(0)
    graph = Graph("aten_ops")
    x = graph.add_input(TensorType("float32", (2, 3, 8, 8)), "x")
    b = graph.block
    weight = const(b, torch.randn(4, 3, 3, 3, generator=generator), TENSOR)
    bias = const(b, torch.randn(4, generator=generator), TENSOR)
    ones = ints(b, [1, 1])
    one = const(b, 1, INT)
    conv = op(b, "aten::conv2d", (x, weight, bias, ones, ones, ones, one)).output
    shift = const(b, torch.randn(4, 1, 1, generator=generator), TENSOR)
    added = op(b, "aten::add", (conv, shift, one), "Tensor").output
    relu = op(b, "aten::relu", (added,)).output
    scaled = op(b, "aten::mul", (relu, const(b, 0.5, FLOAT)), "Scalar").output
    batch = op(b, "aten::size", (x, const(b, 0, INT)), "int", (INT,)).output
    minus_one = const(b, -1, INT)
    shape = op(b, "prim::ListConstruct", (batch, minus_one), types=(ListType(INT),)).output
    flat = op(b, "aten::view", (scaled, shape)).output
    projection = const(b, torch.randn(256, 10, generator=generator), TENSOR)
    logits = op(b, "aten::matmul", (flat, projection)).output
    none = const(b, None, NONE)
    probabilities = op(b, "aten::softmax", (logits, one, none), "int").output
    # keyword-only dtype (sum.dim_IntList(self, dim, keepdim, *, dtype)) and an int list constant
    total = op(b, "aten::sum", (probabilities, ints(b, [1]), const(b, True, BOOL), none), "dim_IntList").output
    # scalar arithmetic on shape-derived ints, written as Python operators
    doubled = op(b, "aten::mul", (batch, const(b, 2, INT)), "int", (INT,)).output
    half = op(b, "aten::floordiv", (doubled, const(b, 2, INT)), "int", (INT,)).output
    reshaped = op(b, "aten::reshape", (total, op(b, "prim::ListConstruct", (half,),
                                                 types=(ListType(INT),)).output)).output
    b.set_returns([op(b, "aten::add", (probabilities, op(b, "aten::unsqueeze", (reshaped, one)).output, one),
                      "Tensor").output])
    return graph


def test_aten_ops_with_weights_match_the_interpreter():
    graph = aten_graph()
    glue = build(graph)
    x = torch.randn(2, 3, 8, 8)
    expected = run_graph(graph, [x])
    assert_same(glue.module(x), expected)
    assert_same(reload(glue, graph)(x), expected)
    # Weights are buffers named after their values; keyword-only arguments go by name.
    assert {name for name, _ in glue.module.named_buffers()} >= {"const_0", "const_1", "const_5"}
    assert "dtype=None" in glue.source
    assert " * 2" in glue.source and " // 2" in glue.source


def test_glue_keeps_tensor_constants_on_their_device_and_shares_storage():
    graph = Graph("shared")
    x = graph.add_input(TENSOR, "x")
    weight = torch.randn(3)
    first = const(graph.block, weight, TENSOR)
    second = const(graph.block, weight, TENSOR)
    added = op(graph.block, "aten::add", (x, first, const(graph.block, 1, INT)), "Tensor").output
    graph.block.set_returns([op(graph.block, "aten::mul", (added, second), "Tensor").output])
    glue = build(graph)
    buffers = dict(glue.module.named_buffers())
    assert list(buffers) == ["const_0"]
    assert buffers["const_0"].device.type == "cpu"
    x_value = torch.randn(3)
    assert_same(glue.module(x_value), run_graph(graph, [x_value]))


# ----------------------------------------------------------------------------- (b) control flow
def control_flow_graph() -> Graph:
    graph = Graph("control_flow")
    x = graph.add_input(TensorType("float32", (4, 3)), "x")
    b = graph.block
    none = const(b, None, NONE)
    one = const(b, 1, INT)
    total = op(b, "aten::sum", (x, none)).output
    positive = op(b, "aten::gt", (total, const(b, 0, INT)), "Scalar").output
    condition = op(b, "aten::Bool", (positive,), "Tensor", (BOOL,)).output

    branch = op(b, "prim::If", (condition,))
    then_block, else_block = branch.add_block(), branch.add_block()
    then_block.set_returns([op(then_block, "aten::relu", (x,)).output])
    else_block.set_returns([op(else_block, "aten::neg", (x,)).output])
    chosen = branch.output

    # for i in range(x.size(0)): accumulate, double, swap a pair, use the iteration number
    trips = op(b, "aten::size", (x, const(b, 0, INT)), "int", (INT,)).output
    true = const(b, True, BOOL)
    zeros = op(b, "aten::zeros_like", (x, none, none, none, none, none)).output
    loop = op(b, "prim::Loop", (trips, true, zeros, chosen, x, zeros), types=(TENSOR,) * 4)
    body = loop.add_block()
    iteration = body.add_param(INT, "i")
    accumulated, doubling, left, right = (body.add_param(TENSOR) for _ in range(4))
    step = op(body, "prim::NumToTensor", (iteration,), "Scalar").output
    term = op(body, "aten::add", (doubling, step, one), "Tensor").output
    new_accumulated = op(body, "aten::add", (accumulated, term, one), "Tensor").output
    new_doubling = op(body, "aten::mul", (doubling, const(body, 2.0, FLOAT)), "Scalar").output
    body.set_returns([true, new_accumulated, new_doubling, right, left])
    accumulated_out, doubled_out, left_out, right_out = loop.outputs

    # while loop with a data-independent condition: while n < 5: n = n + 2 (no trip limit)
    start = const(b, 0, INT)
    initial = op(b, "aten::lt", (start, const(b, 5, INT)), "int", (BOOL,)).output
    unlimited = const(b, INT64_MAX, INT)
    counting = op(b, "prim::Loop", (unlimited, initial, start), types=(INT,))
    counting_body = counting.add_block()
    counting_body.add_param(INT)
    counter = counting_body.add_param(INT)
    next_counter = op(counting_body, "aten::add", (counter, const(counting_body, 2, INT)), "int", (INT,)).output
    again = op(counting_body, "aten::lt", (next_counter, const(counting_body, 5, INT)), "int", (BOOL,)).output
    counting_body.set_returns([again, next_counter])

    # a trip-limited loop whose condition comes from the body and which reads its iteration
    limited = op(b, "prim::Loop", (const(b, 10, INT), true, x), types=(TENSOR,))
    limited_body = limited.add_block()
    index = limited_body.add_param(INT)
    carried = limited_body.add_param(TENSOR)
    incremented = op(limited_body, "aten::add", (carried, op(limited_body, "prim::NumToTensor", (index,),
                                                              "Scalar").output, one), "Tensor").output
    keep_going = op(limited_body, "aten::lt", (index, const(limited_body, 2, INT)), "int", (BOOL,)).output
    limited_body.set_returns([keep_going, incremented])

    scale = op(b, "prim::NumToTensor", (counting.output,), "Scalar").output
    result = op(b, "aten::mul", (accumulated_out, scale), "Tensor").output
    result = op(b, "aten::sub", (result, left_out, one), "Tensor").output
    result = op(b, "aten::add", (result, limited.output, one), "Tensor").output
    b.set_returns([result, doubled_out, right_out])
    return graph


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_if_and_loops_match_the_interpreter(sign):
    graph = control_flow_graph()
    glue = build(graph)
    x = sign * (torch.rand(4, 3) + 0.1)
    expected = run_graph(graph, [x])
    assert_same(glue.module(x), expected)
    assert_same(reload(glue, graph)(x), expected)
    assert "for i in range(" in glue.source and "while loop_condition:" in glue.source
    assert "while loop_condition_2 and " in glue.source


def test_optional_outputs_raise_and_uninitialized_values():
    graph = Graph("optional")
    x = graph.add_input(TENSOR, "x")
    flag = graph.add_input(BOOL, "flag")
    b = graph.block
    none = const(b, None, NONE)
    maybe = op(b, "prim::If", (flag,), types=(OptionalType(TENSOR),))
    maybe.add_block().set_returns([x])
    maybe.add_block().set_returns([none])
    present = op(b, "aten::__isnot__", (maybe.output, none), types=(BOOL,)).output
    unwrap = op(b, "prim::If", (present,))
    unwrap_then = unwrap.add_block()
    unwrapped = op(unwrap_then, "prim::unchecked_cast", (maybe.output,)).output
    unwrap_then.set_returns([op(unwrap_then, "aten::mul", (unwrapped, const(unwrap_then, 3, INT)), "Scalar").output])
    unwrap_else = unwrap.add_block()
    unwrap_else.set_returns([op(unwrap_else, "aten::neg", (x,)).output])

    # TorchScript's exit transform shape: a value uninitialized on the path that never reads it
    uninitialized = op(b, "prim::Uninitialized", (), types=(TENSOR,)).output
    early = op(b, "prim::If", (flag,))
    early.add_block().set_returns([uninitialized])
    early.add_block().set_returns([op(early.blocks[1], "aten::relu", (x,)).output])
    late = op(b, "prim::If", (flag,))
    late.add_block().set_returns([unwrap.output])
    late.add_block().set_returns([early.output])

    # a branch that raises: its outputs are never defined
    negative_flag = op(b, "aten::__not__", (flag,), types=(BOOL,)).output
    checked = op(b, "prim::If", (op(b, "aten::__and__", (negative_flag, flag), "bool", (BOOL,)).output,))
    raising = checked.add_block()
    op(raising, "prim::RaiseException", (const(raising, "impossible flag", STR), none), types=())
    raising.set_returns([op(raising, "prim::Uninitialized", (), types=(TENSOR,)).output])
    checked.add_block().set_returns([late.output])
    b.set_returns([checked.output])

    glue = build(graph)
    assert "raise Exception('impossible flag')" in glue.source
    assert ": Optional[Tensor] = None" in glue.source
    value = torch.randn(5)
    for flag_value in (True, False):
        expected = run_graph(graph, [value, flag_value])
        assert_same(glue.module(value, flag_value), expected)
        assert_same(reload(glue, graph)(value, flag_value), expected)


def test_raise_keeps_a_builtin_exception_class():
    graph = Graph("raises")
    x = graph.add_input(TENSOR, "x")
    flag = graph.add_input(BOOL, "flag")
    branch = op(graph.block, "prim::If", (flag,), types=())
    raising = branch.add_block()
    op(raising, "prim::RaiseException", (const(raising, "bad input", STR),
                                         const(raising, "builtins.ValueError", STR)), types=())
    branch.add_block()
    graph.block.set_returns([x])
    glue = build(graph)
    assert "raise ValueError('bad input')" in glue.source
    assert_same(glue.module(torch.ones(1), False), torch.ones(1))
    with pytest.raises(torch.jit.Error, match="bad input"):
        glue.module(torch.ones(1), True)


def test_polymorphic_builtins_and_scalar_arithmetic():
    graph = Graph("builtins")
    x = graph.add_input(TensorType("float32", (3, 4)), "x")
    b = graph.block
    one = const(b, 1, INT)
    sizes = op(b, "aten::size", (x,), types=(ListType(INT),)).output
    rows = op(b, "aten::__getitem__", (sizes, const(b, 0, INT)), "t", (INT,)).output
    rank = op(b, "aten::len", (sizes,), "t", (INT,)).output
    smallest = op(b, "prim::min", (rows, rank), "int", (INT,)).output
    largest = op(b, "prim::max", (sizes,), "self_int", (INT,)).output
    same = op(b, "aten::eq", (smallest, const(b, 2, INT)), "int", (BOOL,)).output
    has_four = op(b, "aten::__contains__", (sizes, const(b, 4, INT)), "int_list", (BOOL,)).output
    both = op(b, "aten::__and__", (same, has_four), "bool", (BOOL,)).output
    negated = op(b, "aten::neg", (largest,), "int", (INT,)).output
    power = op(b, "aten::pow", (negated, const(b, 2, INT)), "int", (FLOAT,)).output
    ratio = op(b, "aten::div", (power, const(b, -4.0, FLOAT)), "float", (FLOAT,)).output
    device = op(b, "prim::device", (x,), types=(ScalarType("Device"),)).output
    dtype = op(b, "prim::dtype", (x,), types=(INT,)).output
    total = op(b, "aten::sum", (x, const(b, None, NONE))).output
    as_int = op(b, "aten::Int", (op(b, "aten::gt", (total, const(b, 1000.0, FLOAT)), "Scalar").output,),
                "Tensor", (INT,)).output
    count = op(b, "aten::add", (op(b, "aten::mul", (rows, rank), "int", (INT,)).output, as_int), "int", (INT,)).output
    ratio_tensor = op(b, "prim::NumToTensor", (ratio,), "Scalar").output
    moved = op(b, "aten::to", (ratio_tensor, device, dtype, const(b, False, BOOL), const(b, False, BOOL),
                               const(b, None, NONE)), "device").output
    flag_tensor = op(b, "prim::NumToTensor", (both,), "bool").output
    label = op(b, "aten::format", (const(b, "{} of {}", STR), rows, rank), types=(STR,)).output
    pair = op(b, "prim::TupleConstruct", (count, label), types=(TupleType((INT, STR)),)).output
    picked = op(b, "prim::TupleIndex", (pair, const(b, 0, INT)), types=(INT,)).output
    shaped = op(b, "aten::add", (op(b, "aten::mul", (x, moved), "Tensor").output, flag_tensor, one), "Tensor").output
    b.set_returns([shaped, picked, label])
    glue = build(graph)
    for spelling in ("v3 = v1[0]", "len(v1)", "min(v3, v4)", "max(v1)", "v5 == 2", "4 in v1", "v8 & v10", "-v6",
                     "v12 ** 2", "v14 / (-4.0)", "x.device", "x.dtype", "int(v22)", "v34[0]",
                     "torch.ops.aten.format('{} of {}', v3, v4)"):
        assert spelling in glue.source, spelling
    value = torch.randn(3, 4)
    expected = run_graph(graph, [value])
    assert_same(glue.module(value), expected)
    assert_same(reload(glue, graph)(value), expected)


# ----------------------------------------------------------------------------- (c) structure
def test_tuple_outputs_keep_their_structure():
    graph = Graph("tuples")
    x = graph.add_input(TensorType("float32", (4, 6)), "x")
    b = graph.block
    one = const(b, 1, INT)
    halves = op(b, "aten::chunk", (x, const(b, 2, INT), one), types=(ListType(TENSOR),)).output
    left, right = op(b, "prim::ListUnpack", (halves,), types=(TENSOR, TENSOR)).outputs
    values, indices = op(b, "aten::max", (x, one, const(b, False, BOOL)), "dim",
                         (TENSOR, TensorType("int64"))).outputs
    pair = op(b, "prim::TupleConstruct", (right, indices), types=(TupleType((TENSOR, TENSOR)),)).output
    first, second = op(b, "prim::TupleUnpack", (pair,), types=(TENSOR, TENSOR)).outputs
    inner = op(b, "prim::TupleConstruct", (first, second), types=(TupleType((TENSOR, TENSOR)),)).output
    nested = op(b, "prim::TupleConstruct", (left, inner, values),
                types=(TupleType((TENSOR, TupleType((TENSOR, TENSOR)), TENSOR)),)).output
    b.set_returns([nested])
    glue = build(graph)
    x_value = torch.randn(4, 6)
    expected = run_graph(graph, [x_value])
    actual = glue.module(x_value)
    assert isinstance(actual, tuple) and isinstance(actual[1], tuple)
    assert_same(actual, expected)
    assert_same(reload(glue, graph)(x_value), expected)


def test_several_graph_outputs_become_a_tuple_and_one_output_stays_a_tensor():
    graph = Graph("two")
    x = graph.add_input(TENSOR, "x")
    graph.block.set_returns([op(graph.block, "aten::relu", (x,)).output, x])
    glue = build(graph)
    value = torch.randn(3)
    assert_same(glue.module(value), run_graph(graph, [value]))

    single = Graph("one")
    y = single.add_input(TENSOR, "y")
    single.block.set_returns([op(single.block, "aten::sigmoid", (y,)).output])
    assert isinstance(build(single).module(value), torch.Tensor)


# ----------------------------------------------------------------------------- (d) engines
def engine_graphs() -> tuple[Graph, Graph, dict[str, Graph]]:
    """(original, outlined, segments): seg0 = relu * 2, glue view, seg1 = (v + w, sigmoid(v + w)),
    and seg2 inside an If branch."""
    weight = torch.randn(6)

    def segment0(block: Block, a: Value) -> Value:
        relu = op(block, "aten::relu", (a,)).output
        return op(block, "aten::mul", (relu, const(block, 2.0, FLOAT)), "Scalar").output

    def segment1(block: Block, v: Value) -> tuple[Value, Value]:
        added = op(block, "aten::add", (v, const(block, weight, TENSOR), const(block, 1, INT)), "Tensor").output
        return added, op(block, "aten::sigmoid", (added,)).output

    def segment2(block: Block, v: Value) -> Value:
        return op(block, "aten::tanh", (v,)).output

    def glue_part(block: Block, t: Value) -> Value:
        batch = op(block, "aten::size", (t, const(block, 0, INT)), "int", (INT,)).output
        shape = op(block, "prim::ListConstruct", (batch, const(block, -1, INT)),
                   types=(ListType(INT),)).output
        return op(block, "aten::view", (t, shape)).output

    def tail(block: Block, first: Value, second: Value, flag: Value, run_segment2) -> None:
        branch = op(block, "prim::If", (flag,))
        then_block = branch.add_block()
        then_block.set_returns([run_segment2(then_block, second)])
        branch.add_block().set_returns([first])
        pair = op(block, "prim::TupleConstruct", (first, branch.output),
                  types=(TupleType((TENSOR, TENSOR)),)).output
        block.set_returns([pair])

    original = Graph("model")
    x = original.add_input(TensorType("float32", (2, 3, 2)), "x")
    flag = original.add_input(BOOL, "flag")
    first, second = segment1(original.block, glue_part(original.block, segment0(original.block, x)))
    tail(original.block, first, second, flag, segment2)

    segments = {}
    for segment_id, body, count in (("seg0", segment0, 1), ("seg1", segment1, 2), ("seg2", segment2, 1)):
        segment = Graph(segment_id)
        outputs = body(segment.block, segment.add_input(TENSOR, "a"))
        segment.block.set_returns(list(outputs) if count > 1 else [outputs])
        segments[segment_id] = segment

    outlined = Graph("model")
    x = outlined.add_input(TensorType("float32", (2, 3, 2)), "x")
    flag = outlined.add_input(BOOL, "flag")
    t = op(outlined.block, "poros::engine", (x,), attrs={"segment": "seg0"}).output
    v = glue_part(outlined.block, t)
    first, second = op(outlined.block, "poros::engine", (v,), types=(TENSOR, TENSOR),
                       attrs={"segment": "seg1"}).outputs

    def engine2(block: Block, value: Value) -> Value:
        return op(block, "poros::engine", (value,), attrs={"segment": "seg2"}).output

    tail(outlined.block, first, second, flag, engine2)
    return original, outlined, segments


def python_engine(segment: Graph):
    def run(inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        result = run_graph(segment, inputs)
        return list(result) if isinstance(result, tuple) else [result]

    return run


@pytest.fixture
def engine_instance():
    """Registers the segments' Python engines under fresh instances; unregisters them after."""
    registered: list[str] = []

    def register(segments: dict[str, Graph]) -> str:
        instance = f"glue-test-{next(_instances)}"
        ENGINES.register_instance(instance, {s: python_engine(g) for s, g in segments.items()})
        registered.append(instance)
        return instance

    yield register
    for instance in registered:
        ENGINES.unregister_instance(instance)


def test_engine_calls_match_the_interpreter_and_survive_save_load(engine_instance):
    original, outlined, segments = engine_graphs()
    verify(original)
    glue = build(outlined)
    assert "torch.ops.poros.execute_engine([x], self.poros_instance + '/seg0')[0]" in glue.source
    assert glue.module.poros_instance == ""

    def engine_call(node: Node, values: list[Any]) -> list[Any]:
        return python_engine(segments[node.attrs["segment"]])(values)

    glue.module.poros_instance = engine_instance(segments)
    x = torch.randn(2, 3, 2)
    for flag in (True, False):
        expected = run_graph(outlined, [x, flag], engine_call=engine_call)
        assert_same(expected, run_graph(original, [x, flag]))
        assert_same(glue.module(x, flag), expected)

    loaded = reload(glue, outlined)
    assert loaded.poros_instance == glue.module.poros_instance
    # As poros_runtime's loader does: register this artifact's engines under a new instance,
    # then set the TorchScript attribute on the C++ module.
    loaded._c.setattr("poros_instance", engine_instance(segments))
    for flag in (True, False):
        assert_same(loaded(x, flag), run_graph(original, [x, flag]))


def test_engine_without_instance_fails_clearly():
    _, outlined, _ = engine_graphs()
    glue = build(outlined)
    with pytest.raises(Exception, match="no engine is registered under '/seg0'"):
        glue.module(torch.randn(2, 3, 2), True)


def test_engine_with_a_non_tensor_input_is_rejected():
    graph = Graph("bad_engine")
    n = graph.add_input(INT, "n")
    out = op(graph.block, "poros::engine", (n,), attrs={"segment": "seg0"}).output
    graph.block.set_returns([out])
    with pytest.raises(InternalError, match="must be a Tensor"):
        build_glue(graph)


# ----------------------------------------------------------------------------- (e) determinism
def test_same_graph_gives_the_same_source_and_bytes():
    first, second = build(control_flow_graph()), build(control_flow_graph())
    assert first.source.encode() == second.source.encode()
    assert save_glue(first) == save_glue(second)
    assert build(aten_graph()).source == build(aten_graph()).source


# ----------------------------------------------------------------------------- overloads, errors
def test_overload_torchscript_would_not_pick_is_pinned_by_keywords():
    # `torch.ops.aten.to(x, dtype=...)` alone resolves to aten::to.dtype; the IR says dtype_layout.
    graph = Graph("to")
    x = graph.add_input(TENSOR, "x")
    dtype = const(graph.block, torch.float64, INT)
    converted = op(graph.block, "aten::to", (x, dtype), "dtype_layout").output
    graph.block.set_returns([converted])
    glue = build(graph)
    assert "torch.ops.aten.to(self=x, dtype=torch.float64, layout=None" in glue.source
    chosen = [n.schema() for n in glue.module.graph.nodes() if n.kind() == "aten::to"]
    assert chosen and all(s.startswith("aten::to.dtype_layout(") for s in chosen)
    value = torch.randn(3)
    assert_same(glue.module(value), run_graph(graph, [value]))


def test_constants_of_every_kind():
    graph = Graph("constants")
    x = graph.add_input(TENSOR, "x")
    b = graph.block
    none = const(b, None, NONE)
    scalar = op(b, "aten::zeros", (const(b, [], ListType(INT)), const(b, torch.float64, INT), none, none, none)).output
    summed = op(b, "aten::sum", (x, ints(b, [0]), const(b, False, BOOL), const(b, torch.float64, INT)),
                "dim_IntList").output
    summed = op(b, "aten::add", (summed, scalar, const(b, 1, INT)), "Tensor").output
    infinite = op(b, "aten::clamp_max", (summed, const(b, float("inf"), FLOAT))).output
    moved = op(b, "aten::to", (infinite, const(b, torch.device("cpu"), DEVICE), const(b, torch.float32, INT),
                               const(b, False, BOOL), const(b, False, BOOL), const(b, None, NONE)), "device").output
    name = op(b, "aten::__getitem__", (const(b, ["a", "b"], ListType(STR)), const(b, -1, INT)), "t", (STR,)).output
    b.set_returns([moved, name, const(b, (1, 2.5), TupleType((INT, FLOAT)))])
    glue = build(graph)
    assert "torch.jit.annotate(List[int], [])" in glue.source
    assert 'float("inf")' in glue.source and "torch.device('cpu')" in glue.source
    value = torch.randn(3, 2)
    assert_same(glue.module(value), run_graph(graph, [value]))


def test_identifiers_are_sanitized():
    graph = Graph("names")
    x = graph.add_input(TENSOR, "input.1")
    weird = op(graph.block, "aten::relu", (x,)).output
    weird.name = "self"
    also = op(graph.block, "aten::relu", (weird,)).output
    also.name = "input_1"
    graph.block.set_returns([also])
    glue = build(graph)
    assert "def forward(self, input_1: Tensor):" in glue.source
    assert "self_2 = torch.ops.aten.relu(input_1)" in glue.source
    assert "input_1_2 = torch.ops.aten.relu(self_2)" in glue.source


def test_unsupported_ops_name_the_node():
    graph = Graph("custom")
    x = graph.add_input(TENSOR, "x")
    graph.block.set_returns([op(graph.block, "mylib::frobnicate", (x,)).output])
    with pytest.raises(BackendError, match=r"mylib::frobnicate.*engine segment"):
        build_glue(graph)

    graph = Graph("unknown")
    x = graph.add_input(TENSOR, "x")
    graph.block.set_returns([op(graph.block, "aten::no_such_op", (x,)).output])
    with pytest.raises(BackendError, match=r"aten::no_such_op"):
        build_glue(graph)

    graph = Graph("attr")
    x = graph.add_input(TENSOR, "x")
    graph.block.set_returns([op(graph.block, "prim::GetAttr", (x,), attrs={"name": "weight"}).output])
    with pytest.raises(BackendError, match=r"prim::GetAttr"):
        build_glue(graph)


def test_torchscript_rejection_names_the_node():
    graph = Graph("ill_typed")
    text = graph.add_input(STR, "text")
    graph.block.set_returns([op(graph.block, "aten::relu", (text,)).output])
    with pytest.raises(InternalError, match=r"(?s)at %0 = aten::relu\(%text\).*glue generator"):
        build_glue(graph)


def test_bad_device_is_a_usage_error():
    graph = Graph("device")
    graph.block.set_returns([graph.add_input(TENSOR, "x")])
    with pytest.raises(UsageError):
        build_glue(graph, device="gpu-please")
    assert build_glue(graph, device="cuda").device == "cuda"
