"""ONNX ``If`` and ``Loop`` imported as ``prim::If`` / ``prim::Loop`` blocks.

Hand-built models (opset 17) run through ``import_onnx`` + the IR's reference interpreter and are
compared with ``onnx.reference.ReferenceEvaluator`` on several inputs (tolerance as in
``onnx_ops_test.py``: fp32 rtol 1e-5, atol 1e-6 times the output's largest magnitude). One
exception, stated where it applies: for scan outputs whose per-iteration value is not 1-D,
onnx.reference joins the iterations with ``np.vstack`` (a concatenation, not the stack along a new
axis 0 that ONNX's own shape inference gives the output); there the expectation is computed with
``np.stack`` from a plain Python loop. And onnx.reference (1.23) runs no iteration of a Loop whose
condition input is omitted, where the spec says an omitted condition is true (``for`` loops are
written ``Loop(M, "", ...)``): the reference runs a copy of the model with that input spelled out
as a constant ``true`` (:func:`_reference_model`), which is the same model by the spec.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from packager.errors import UnsupportedOpError
from packager.frontends import import_onnx
from packager.ir import SymDim, TensorType, run_graph, verify
from packager.spec import parse_input_spec

RTOL, ATOL = 1e-5, 1e-6
F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
_UNBOUNDED = 9223372036854775807


def _vi(name: str, elem: int = F, shape=None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def _init(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def _const(output: str, value) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [output], value=_init(output, value))


def _model(nodes, inputs, outputs, initializers=()) -> onnx.ModelProto:
    graph = helper.make_graph(list(nodes), "control_flow", list(inputs),
                              [helper.make_empty_tensor_value_info(name) for name in outputs],
                              list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _same_condition() -> onnx.NodeProto:
    """A loop body's condition output: its condition input, unchanged."""
    return helper.make_node("Identity", ["cond_in"], ["cond_out"])


def _body(nodes, inputs, outputs, initializers=(), name="body") -> onnx.GraphProto:
    return helper.make_graph(list(nodes), name, list(inputs), list(outputs), list(initializers))


def _ops(graph) -> list[str]:
    return [node.op for node in graph.walk()]


def _assert_close(actual: torch.Tensor, wanted: np.ndarray) -> None:
    wanted = np.asarray(wanted)
    actual = actual.numpy()
    assert actual.shape == wanted.shape, (actual.shape, wanted.shape)
    assert actual.dtype == wanted.dtype, (actual.dtype, wanted.dtype)
    if np.issubdtype(wanted.dtype, np.floating):
        scale = max(1.0, float(np.abs(wanted).max(initial=0)))
        np.testing.assert_allclose(actual, wanted, rtol=RTOL, atol=ATOL * scale)
    else:
        np.testing.assert_array_equal(actual, wanted)


def _spell_out_conditions(graph: onnx.GraphProto) -> None:
    for node in graph.node:
        if node.op_type == "Loop" and (len(node.input) < 2 or not node.input[1]):
            while len(node.input) < 2:
                node.input.append("")
            node.input[1] = "spelled_out_true"
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                _spell_out_conditions(attribute.g)


def _reference_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with every omitted Loop condition given as a constant true (see the docstring)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    _spell_out_conditions(copy.graph)
    copy.graph.initializer.append(_init("spelled_out_true", np.array(True)))
    return copy


def check(model: onnx.ModelProto, specs: list[str], feeds: list[dict[str, np.ndarray]]):
    """Import with ``specs``; every feed's outputs must match onnx.reference. Returns the graph."""
    graph = import_onnx(model, [parse_input_spec(text) for text in specs])
    verify(graph)
    reference = ReferenceEvaluator(_reference_model(model))
    for feed in feeds:
        got = run_graph(graph, [torch.from_numpy(array.copy()) for array in feed.values()])
        got = got if isinstance(got, tuple) else (got,)
        expected = reference.run(None, feed)
        assert len(got) == len(expected)
        for actual, wanted in zip(got, expected):
            _assert_close(actual, wanted)
    return graph


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------------------- If
def _sign_if_model() -> onnx.ModelProto:
    """y = x * w + bt if sum(x) > 0 else x - 5: the then branch reads the outer initializer w and
    its own initializer bt; the else branch has its own Constant node."""
    then = _body([helper.make_node("Mul", ["x", "w"], ["scaled"]), helper.make_node("Add", ["scaled", "bt"], ["t"])],
                 [], [_vi("t")], [_init("bt", np.float32([1, 2, 3]))], "then")
    other = _body([_const("five", np.float32(5)), helper.make_node("Sub", ["x", "five"], ["e"])], [], [_vi("e")],
                  name="else")
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
        helper.make_node("Greater", ["total", "zero"], ["positive"]),
        helper.make_node("If", ["positive"], ["y"], name="sign_if", then_branch=then, else_branch=other),
        helper.make_node("Relu", ["y"], ["z"]),
    ]
    return _model(nodes, [_vi("x", F, ["N", 3])], ["y", "z"],
                  [_init("zero", np.float32(0)), _init("w", np.float32([2, -1, 0.5]))])


def test_if_with_a_runtime_condition_takes_both_branches():
    rng = _rng()
    feeds = [{"x": np.abs(rng.standard_normal((2, 3))).astype(np.float32) + 0.1},
             {"x": -np.abs(rng.standard_normal((4, 3))).astype(np.float32) - 0.1},
             {"x": rng.standard_normal((1, 3)).astype(np.float32)}]
    assert feeds[0]["x"].sum() > 0 > feeds[1]["x"].sum()
    graph = check(_sign_if_model(), ["1..4x3"], feeds)
    ops = _ops(graph)
    assert ops.count("prim::If") == 1 and "aten::Bool" in ops
    (if_node,) = [node for node in graph.walk() if node.op == "prim::If"]
    assert if_node.inputs[0].producer.kind == "aten::Bool.Tensor"
    then_ops = [node.op for node in if_node.blocks[0].nodes]
    assert "aten::mul" in then_ops and "aten::add" in then_ops
    assert "aten::sub" in [node.op for node in if_node.blocks[1].nodes]
    assert if_node.outputs[0].type.dtype == "float32" and if_node.outputs[0].type.shape[1] == 3


@pytest.mark.parametrize("flag", [True, False])
def test_if_with_a_build_time_condition_inlines_the_taken_branch(flag):
    # The condition folds (Not of a constant); the branches read the runtime input, so only
    # the taken branch is imported, with no prim::If.
    then = _body([helper.make_node("Mul", ["x", "two"], ["t"])], [], [_vi("t")], [_init("two", np.float32(2))], "then")
    other = _body([helper.make_node("Neg", ["x"], ["e"])], [], [_vi("e")], name="else")
    nodes = [
        helper.make_node("Not", ["flag"], ["negated"]),
        helper.make_node("Not", ["negated"], ["condition"]),
        helper.make_node("If", ["condition"], ["y"], name="static_if", then_branch=then, else_branch=other),
    ]
    model = _model(nodes, [_vi("x", F, ["N", 4])], ["y"], [_init("flag", np.array(flag))])
    rng = _rng(1)
    graph = check(model, ["1..3x4"], [{"x": rng.standard_normal((n, 4)).astype(np.float32)} for n in (1, 3)])
    ops = _ops(graph)
    assert "prim::If" not in ops
    assert ("aten::mul" in ops) == flag and ("aten::neg" in ops) != flag


def test_if_whose_inputs_are_all_known_folds_to_a_constant():
    then = _body([helper.make_node("Add", ["a", "b"], ["t"])], [], [_vi("t")], name="then")
    other = _body([helper.make_node("Sub", ["a", "b"], ["e"])], [], [_vi("e")], name="else")
    nodes = [
        helper.make_node("Less", ["a", "b"], ["condition"]),
        helper.make_node("If", ["condition"], ["folded"], name="const_if", then_branch=then, else_branch=other),
        helper.make_node("Mul", ["x", "folded"], ["y"]),
    ]
    model = _model(nodes, [_vi("x", F, [2])], ["y"], [_init("a", np.float32(3)), _init("b", np.float32(4))])
    graph = check(model, ["2"], [{"x": np.float32([1.5, -2])}])
    assert "prim::If" not in _ops(graph)
    constants = [node.attrs["value"] for node in graph.walk() if node.op == "prim::Constant"]
    assert any(isinstance(c, torch.Tensor) and c.numel() == 1 and float(c) == 7.0 for c in constants)


def test_if_branches_of_different_sizes_join_to_a_dynamic_dim():
    then = _body([helper.make_node("Concat", ["x", "x"], ["t"], axis=1)], [], [_vi("t")], name="then")
    other = _body([helper.make_node("Identity", ["x"], ["e"])], [], [_vi("e")], name="else")
    nodes = [
        helper.make_node("ReduceMax", ["x"], ["peak"], keepdims=0),
        helper.make_node("Greater", ["peak", "zero"], ["condition"]),
        helper.make_node("If", ["condition"], ["y"], name="widen", then_branch=then, else_branch=other),
    ]
    model = _model(nodes, [_vi("x", F, [2, 3])], ["y"], [_init("zero", np.float32(0))])
    feeds = [{"x": np.full((2, 3), 0.5, np.float32)}, {"x": np.full((2, 3), -0.5, np.float32)}]
    graph = check(model, ["2x3"], feeds)
    (output,) = graph.outputs
    assert output.type.dtype == "float32" and output.type.rank == 2
    rows, columns = output.type.shape
    assert rows == 2 and isinstance(columns, SymDim) and (columns.min, columns.max) == (3, 6)


def test_if_branches_of_different_ranks_are_refused():
    then = _body([helper.make_node("Identity", ["x"], ["t"])], [], [_vi("t")], name="then")
    other = _body([helper.make_node("ReduceSum", ["x"], ["e"], keepdims=0)], [], [_vi("e")], name="else")
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
        helper.make_node("Greater", ["total", "zero"], ["condition"]),
        helper.make_node("If", ["condition"], ["y"], name="rank_if", then_branch=then, else_branch=other),
    ]
    model = _model(nodes, [_vi("x", F, [2, 3])], ["y"], [_init("zero", np.float32(0))])
    with pytest.raises(UnsupportedOpError, match=r"'rank_if' \(If.*output 0 has rank 2 in then_branch and 0"):
        import_onnx(model)


# ------------------------------------------------------------------------------------- Loop
def _float_iteration(iteration: str, output: str) -> onnx.NodeProto:
    return helper.make_node("Cast", [iteration], [output], to=F)


def test_loop_with_a_trip_count_only():
    # v = v * 0.5 + i, M times; M is a build-time constant in one model and x.size(0) in another.
    body = _body(
        [_float_iteration("i", "i_float"), helper.make_node("Mul", ["v_in", "half"], ["halved"]),
         helper.make_node("Add", ["halved", "i_float"], ["v_out"]), _same_condition()],
        [_vi("i", I64, []), _vi("cond_in", B, []), _vi("v_in", F, ["N", 3])],
        [_vi("cond_out", B, []), _vi("v_out", F, ["N", 3])],
        [_init("half", np.float32(0.5))],
    )
    rng = _rng(2)
    feeds = [{"x": rng.standard_normal((n, 3)).astype(np.float32)} for n in (1, 2, 5)]

    constant = _model([helper.make_node("Loop", ["trips", "", "x"], ["y"], name="fixed", body=body)],
                      [_vi("x", F, ["N", 3])], ["y"], [_init("trips", np.int64(4))])
    graph = check(constant, ["1..5x3"], feeds)
    (loop,) = [node for node in graph.walk() if node.op == "prim::Loop"]
    assert loop.inputs[0].producer.attrs["value"] == 4 and loop.inputs[1].producer.attrs["value"] is True
    assert [p.type for p in loop.blocks[0].params][0].name == "int"
    assert loop.outputs[0].type.dtype == "float32" and loop.outputs[0].type.shape[1] == 3

    shaped = _model([helper.make_node("Shape", ["x"], ["shape"]), helper.make_node("Gather", ["shape", "zero"], ["rows"]),
                     helper.make_node("Loop", ["rows", "", "x"], ["y"], name="by_rows", body=body)],
                    [_vi("x", F, ["N", 3])], ["y"], [_init("zero", np.int64(0))])
    graph = check(shaped, ["1..5x3"], feeds)
    (loop,) = [node for node in graph.walk() if node.op == "prim::Loop"]
    assert loop.inputs[0].producer.kind == "aten::size.int"  # range(x.size(0)), as TorchScript writes it


def test_loop_with_a_runtime_trip_count_tensor_and_zero_trips():
    body = _body([helper.make_node("Add", ["v_in", "one"], ["v_out"]), _same_condition()],
                 [_vi("i", I64, []), _vi("cond_in", B, []), _vi("v_in", F, [3])],
                 [_vi("cond_out", B, []), _vi("v_out", F, [3])])
    model = _model([helper.make_node("Loop", ["n", "", "x"], ["y"], name="counted", body=body)],
                   [_vi("x", F, [3]), _vi("n", I64, [1])], ["y"], [_init("one", np.float32(1))])
    x = np.float32([0.5, -1, 2])
    graph = check(model, ["3", "1:int64"], [{"x": x, "n": np.int64([n])} for n in (0, 1, 6)])
    (loop,) = [node for node in graph.walk() if node.op == "prim::Loop"]
    assert loop.inputs[0].producer.kind == "aten::Int.Tensor"


def test_loop_with_trip_count_and_condition_exits_early():
    # v += 1 while sum(v) < limit, at most 10 times: different inputs stop at different iterations.
    body = _body(
        [helper.make_node("Add", ["v_in", "one"], ["v_out"]),
         helper.make_node("ReduceSum", ["v_out"], ["total"], keepdims=0),
         helper.make_node("Less", ["total", "limit"], ["cond_out"])],
        [_vi("i", I64, []), _vi("cond_in", B, []), _vi("v_in", F, [2])],
        [_vi("cond_out", B, []), _vi("v_out", F, [2])],
    )
    nodes = [helper.make_node("ReduceSum", ["x"], ["start"], keepdims=0),
             helper.make_node("Less", ["start", "limit"], ["go"]),
             helper.make_node("Loop", ["ten", "go", "x"], ["y"], name="early", body=body)]
    model = _model(nodes, [_vi("x", F, [2])], ["y"],
                   [_init("ten", np.int64(10)), _init("one", np.float32(1)), _init("limit", np.float32(8))])
    feeds = [{"x": np.float32(v)} for v in ([0, 0], [3, 2.5], [-20, 0], [5, 5])]
    graph = check(model, ["2"], feeds)
    results = [run_graph(graph, [torch.from_numpy(f["x"])]) for f in feeds]
    assert [float(r.sum()) for r in results] == [8.0, 9.5, 0.0, 10.0]  # early exit, 10-trip cap, no trip
    (loop,) = [node for node in graph.walk() if node.op == "prim::Loop"]
    assert loop.inputs[1].producer.kind == "aten::Bool.Tensor"
    assert loop.blocks[0].returns[0].producer.kind == "aten::Bool.Tensor"


def test_loop_without_trip_count_is_a_while_loop():
    body = _body(
        [helper.make_node("Mul", ["v_in", "two"], ["v_out"]),
         helper.make_node("ReduceSum", ["v_out"], ["total"], keepdims=0),
         helper.make_node("Less", ["total", "limit"], ["cond_out"])],
        [_vi("i", I64, []), _vi("cond_in", B, []), _vi("v_in", F, ["N"])],
        [_vi("cond_out", B, []), _vi("v_out", F, ["N"])],
    )
    model = _model([helper.make_node("Loop", ["", "go", "x"], ["y"], name="doubling", body=body)],
                   [_vi("x", F, ["N"]), _vi("go", B, [1])], ["y"],
                   [_init("two", np.float32(2)), _init("limit", np.float32(100))])
    feeds = [{"x": np.float32([1, 2]), "go": np.array([True])}, {"x": np.float32([30, 1]), "go": np.array([True])},
             {"x": np.float32([1, 1]), "go": np.array([False])}]
    graph = check(model, ["2", "1:bool"], feeds)
    (loop,) = [node for node in graph.walk() if node.op == "prim::Loop"]
    assert loop.inputs[0].producer.attrs["value"] == _UNBOUNDED  # TorchScript's trip count of a while loop


def test_loop_with_several_carried_tensors_and_an_outer_value():
    # Fibonacci on tensors: (a, b) <- (b, a + b * scale), scale read from the outer graph, plus a
    # carried int64 counter; outputs keep their order.
    body = _body(
        [helper.make_node("Mul", ["b_in", "scale"], ["scaled"]), helper.make_node("Add", ["a_in", "scaled"], ["b_out"]),
         helper.make_node("Identity", ["b_in"], ["a_out"]), helper.make_node("Add", ["k_in", "step"], ["k_out"]),
         _same_condition()],
        [_vi("i", I64, []), _vi("cond_in", B, []), _vi("a_in", F, [2]), _vi("b_in", F, [2]), _vi("k_in", I64, [])],
        [_vi("cond_out", B, []), _vi("a_out", F, [2]), _vi("b_out", F, [2]), _vi("k_out", I64, [])],
        [_init("step", np.int64(3))],
    )
    nodes = [helper.make_node("Abs", ["s"], ["scale"]),
             helper.make_node("Loop", ["trips", "", "a", "b", "k"], ["a_final", "b_final", "k_final"], name="fib",
                              body=body)]
    model = _model(nodes, [_vi("a", F, [2]), _vi("b", F, [2]), _vi("s", F, [1])], ["a_final", "b_final", "k_final"],
                   [_init("trips", np.int64(5)), _init("k", np.int64(0))])
    rng = _rng(3)
    feeds = [{"a": rng.standard_normal(2).astype(np.float32), "b": rng.standard_normal(2).astype(np.float32),
              "s": np.float32([scale])} for scale in (1.0, -0.5)]
    graph = check(model, ["2", "2", "1"], feeds)
    (loop,) = [node for node in graph.walk() if node.op == "prim::Loop"]
    assert len(loop.inputs) == 5 and len(loop.blocks[0].params) == 4 and len(loop.outputs) == 3
    assert [v.type.dtype for v in graph.outputs] == ["float32", "float32", "int64"]


def test_loop_known_to_run_no_iteration_passes_its_carried_values_through():
    body = _body([helper.make_node("Neg", ["v_in"], ["v_out"]), _same_condition()],
                 [_vi("i", I64, []), _vi("cond_in", B, []), _vi("v_in", F, [2])],
                 [_vi("cond_out", B, []), _vi("v_out", F, [2])])
    for trips, condition in ((0, True), (3, False)):
        model = _model([helper.make_node("Loop", ["trips", "condition", "x"], ["y"], name="never", body=body)],
                       [_vi("x", F, [2])], ["y"], [_init("trips", np.int64(trips)), _init("condition", np.array(condition))])
        graph = check(model, ["2"], [{"x": np.float32([1, -2])}])
        assert "prim::Loop" not in _ops(graph) and "aten::neg" not in _ops(graph)
    scanning = _body([helper.make_node("Neg", ["v_in"], ["v_out"]), _same_condition()],
                     [_vi("i", I64, []), _vi("cond_in", B, []), _vi("v_in", F, [2])],
                     [_vi("cond_out", B, []), _vi("v_out", F, [2]), _vi("v_in", F, [2])])
    model = _model([helper.make_node("Loop", ["trips", "", "x"], ["y", "scan"], name="never", body=scanning)],
                   [_vi("x", F, [2])], ["y", "scan"], [_init("trips", np.int64(0))])
    with pytest.raises(UnsupportedOpError, match="'never' \\(Loop.*runs no iteration.*scan outputs"):
        import_onnx(model)


def test_ops_that_need_ranks_and_static_dims_inside_subgraphs():
    # ONNX keeps no shapes for values inside sub-graphs; the importer infers them per sub-graph:
    # Transpose without perm, ReduceSum without axes, Unsqueeze, Flatten and LayerNormalization
    # (static normalized dims) inside a loop body and a branch. The carried value grows along
    # axis 0 each trip (Concat), so only its dim 1 stays static: an even Split there works, one
    # along axis 0 is refused rather than sized from the first trip.
    def model_with(split_axis: int) -> onnx.ModelProto:
        then = _body([helper.make_node("Flatten", ["x"], ["t"], axis=1)], [], [_vi("t")], name="then")
        other = _body([helper.make_node("Transpose", ["x"], ["flipped"]), helper.make_node("Transpose", ["flipped"], ["e"])],
                      [], [_vi("e")], name="else")
        body = _body(
            [helper.make_node("Concat", ["v_in", "x"], ["grown"], axis=0),
             helper.make_node("LayerNormalization", ["grown", "gamma"], ["normed"], axis=-1),
             helper.make_node("Split", ["normed"], ["left", "right"], axis=split_axis),
             helper.make_node("Concat", ["right", "left"], ["v_out"], axis=split_axis),
             helper.make_node("ReduceSum", ["v_out"], ["total"], keepdims=1),
             helper.make_node("Unsqueeze", ["total", "axis0"], ["total_4d"]),
             helper.make_node("Squeeze", ["total_4d", "axis0"], ["scan"]),
             _same_condition()],
            [_vi("i", I64, []), _vi("cond_in", B, []), _vi("v_in", F, [None, 4])],
            [_vi("cond_out", B, []), _vi("v_out", F, [None, 4]), _vi("scan", F, [1, 1])],
            [_init("axis0", np.int64([0]))],
        )
        nodes = [helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
                 helper.make_node("Greater", ["total", "zero"], ["positive"]),
                 helper.make_node("If", ["positive"], ["start"], name="pick", then_branch=then, else_branch=other),
                 helper.make_node("Loop", ["trips", "", "start"], ["y", "totals"], name="grow", body=body)]
        return _model(nodes, [_vi("x", F, [2, 4])], ["y", "totals"],
                      [_init("zero", np.float32(0)), _init("trips", np.int64(3)),
                       _init("gamma", np.float32([1, 0.5, 2, 1]))])

    rng = _rng(7)
    graph = import_onnx(model_with(1), [parse_input_spec("2x4")])
    verify(graph)
    reference = ReferenceEvaluator(_reference_model(model_with(1)))
    for sign in (1, -1):
        x = (sign * (np.abs(rng.standard_normal((2, 4))) + 0.1)).astype(np.float32)
        y, totals = run_graph(graph, [torch.from_numpy(x)])
        wanted_y, _ = reference.run(None, {"x": x})
        _assert_close(y, wanted_y)
        assert y.shape == (8, 4)
        # onnx.reference vstacks the (1, 1) per-trip totals into (3, 1); stacked they are (3, 1, 1).
        assert totals.shape == (3, 1, 1)
    (output, _) = graph.outputs
    assert output.type.shape == (8, 4)
    with pytest.raises(UnsupportedOpError, match=r"\(inside the body of Loop 'grow'\).*even split of a dim whose "
                                                 r"size is unknown"):
        import_onnx(model_with(0), [parse_input_spec("2x4")])


def _scan_model(per_iteration_shape) -> onnx.ModelProto:
    """Carried h <- tanh(h) + i; scan outputs h * 2 and the iteration number, for n trips."""
    body = _body(
        [_float_iteration("i", "i_float"), helper.make_node("Tanh", ["h_in"], ["squashed"]),
         helper.make_node("Add", ["squashed", "i_float"], ["h_out"]), helper.make_node("Mul", ["h_out", "two"], ["doubled"]),
         helper.make_node("Identity", ["i"], ["i_copy"]), _same_condition()],
        [_vi("i", I64, []), _vi("cond_in", B, []), _vi("h_in", F, list(per_iteration_shape))],
        [_vi("cond_out", B, []), _vi("h_out", F, list(per_iteration_shape)), _vi("doubled", F, None),
         _vi("i_copy", I64, [])],
        [_init("two", np.float32(2))],
    )
    return _model([helper.make_node("Loop", ["n", "", "x"], ["h", "scanned", "steps"], name="scan_loop", body=body)],
                  [_vi("x", F, list(per_iteration_shape)), _vi("n", I64, [1])], ["h", "scanned", "steps"])


def _scan_expected(x: np.ndarray, trips: int):
    h, scanned, steps = x, [], []
    for i in range(trips):
        h = np.tanh(h) + np.float32(i)
        scanned.append(h * np.float32(2))
        steps.append(np.int64(i))
    return h, np.stack(scanned), np.stack(steps)


def test_loop_scan_outputs_are_stacked_on_a_new_axis():
    # A 1-D per-iteration value: onnx.reference's np.vstack agrees with the spec's stacking.
    model = _scan_model([3])
    rng = _rng(4)
    feeds = [{"x": rng.standard_normal(3).astype(np.float32), "n": np.int64([n])} for n in (1, 4)]
    graph = import_onnx(model, [parse_input_spec("3"), parse_input_spec("1:int64")])
    verify(graph)
    reference = ReferenceEvaluator(_reference_model(model))
    for feed in feeds:
        h, scanned, steps = run_graph(graph, [torch.from_numpy(feed["x"]), torch.from_numpy(feed["n"])])
        wanted_h, wanted_scanned, _ = reference.run(None, feed)
        _assert_close(h, wanted_h)
        _assert_close(scanned, wanted_scanned)
        # onnx.reference vstacks the 0-d iteration numbers into shape (n, 1); the spec gives (n,).
        _assert_close(steps, np.arange(int(feed["n"][0]), dtype=np.int64))
    ops = _ops(graph)
    assert ops.count("aten::append") == 2 and ops.count("aten::stack") == 2
    (loop,) = [node for node in graph.walk() if node.op == "prim::Loop"]
    # As TorchScript builds a list in a loop: the list is made before the loop, not carried.
    assert len(loop.inputs) == 3 and len(loop.outputs) == 1


def test_loop_scan_outputs_of_matrices_stack_like_the_spec():
    model = _scan_model([2, 3])
    inferred = onnx.shape_inference.infer_shapes(model)
    (scanned_info,) = [v for v in inferred.graph.value_info if v.name == "scanned"]
    assert [d.dim_value for d in scanned_info.type.tensor_type.shape.dim][1:] == [2, 3]  # (trips, 2, 3)
    graph = import_onnx(model, [parse_input_spec("2x3"), parse_input_spec("1:int64")])
    rng = _rng(5)
    for trips in (1, 3):
        x = rng.standard_normal((2, 3)).astype(np.float32)
        h, scanned, steps = run_graph(graph, [torch.from_numpy(x), torch.tensor([trips])])
        wanted = _scan_expected(x, trips)
        assert scanned.shape == (trips, 2, 3)
        for actual, expected in zip((h, scanned, steps), wanted):
            _assert_close(actual, expected)


def _parity_loop(parity_nodes) -> onnx.ModelProto:
    """Five trips; even iterations add x (read two scopes out), odd ones subtract a branch-local
    constant. The iteration number decides, so the If stays a prim::If inside the loop body."""
    then = _body([helper.make_node("Add", ["v_in", "x"], ["t"])], [], [_vi("t")], name="even")
    other = _body([_const("c", np.float32(0.25)), helper.make_node("Sub", ["v_in", "c"], ["e"])], [], [_vi("e")],
                  name="odd")
    body = _body(
        [*parity_nodes, helper.make_node("Equal", ["parity", "zero"], ["is_even"]),
         helper.make_node("If", ["is_even"], ["v_out"], name="parity_if", then_branch=then, else_branch=other),
         _same_condition()],
        [_vi("i", I64, []), _vi("cond_in", B, []), _vi("v_in", F, ["N", 2])],
        [_vi("cond_out", B, []), _vi("v_out", F, ["N", 2])],
        [_init("two", np.int64(2))],
    )
    return _model([helper.make_node("Loop", ["trips", "", "x"], ["y"], name="outer_loop", body=body)],
                  [_vi("x", F, ["N", 2])], ["y"], [_init("trips", np.int64(5)), _init("zero", np.int64(0))])


def test_if_nested_in_a_loop():
    # Mod is not in the table: the error names the node and where it sits.
    with pytest.raises(UnsupportedOpError, match=r"Mod at node 'mod' \(inside the body of Loop 'outer_loop'\)"):
        import_onnx(_parity_loop([helper.make_node("Mod", ["i", "two"], ["parity"], name="mod")]),
                    [parse_input_spec("1..3x2")])
    # Parity without Mod: i - 2 * (i / 2), integer division.
    model = _parity_loop([helper.make_node("Div", ["i", "two"], ["half"]),
                          helper.make_node("Mul", ["half", "two"], ["floored"]),
                          helper.make_node("Sub", ["i", "floored"], ["parity"])])
    rng = _rng(6)
    graph = check(model, ["1..3x2"], [{"x": rng.standard_normal((n, 2)).astype(np.float32)} for n in (1, 3)])
    (loop,) = [node for node in graph.walk() if node.op == "prim::Loop"]
    inner = [node for node in loop.blocks[0].walk() if node.op == "prim::If"]
    assert len(inner) == 1 and inner[0].outputs[0].type.shape[1] == 2
    assert inner[0].inputs[0].producer.kind == "aten::Bool.Tensor"


def test_loop_nested_in_an_if_branch_reads_both_scopes():
    body = _body([helper.make_node("Add", ["v_in", "x"], ["v_out"]), _same_condition()],
                 [_vi("i", I64, []), _vi("cond_in", B, []), _vi("v_in", F, [2])],
                 [_vi("cond_out", B, []), _vi("v_out", F, [2])], name="body")
    then = _body([helper.make_node("Loop", ["three", "", "x"], ["t"], name="inner_loop", body=body)], [], [_vi("t")],
                 [_init("three", np.int64(3))], "then")
    other = _body([helper.make_node("Identity", ["x"], ["e"])], [], [_vi("e")], name="else")
    nodes = [helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
             helper.make_node("Greater", ["total", "zero"], ["condition"]),
             helper.make_node("If", ["condition"], ["y"], name="guard", then_branch=then, else_branch=other)]
    model = _model(nodes, [_vi("x", F, [2])], ["y"], [_init("zero", np.float32(0))])
    graph = check(model, ["2"], [{"x": np.float32([1, 2])}, {"x": np.float32([-1, -2])}])
    (if_node,) = [node for node in graph.walk() if node.op == "prim::If"]
    assert [node.op for node in if_node.blocks[0].nodes].count("prim::Loop") == 1


def test_folding_inside_a_loop_body_sees_outer_constants():
    # Inside the body, Add(a, b) reads two outer initializers: it folds to a constant; the whole
    # second loop (constant trip count, carried value and body) folds to a constant.
    body = _body([helper.make_node("Add", ["a", "b"], ["ab"]), helper.make_node("Mul", ["v_in", "ab"], ["v_out"]),
                  _same_condition()],
                 [_vi("i", I64, []), _vi("cond_in", B, []), _vi("v_in", F, [2])],
                 [_vi("cond_out", B, []), _vi("v_out", F, [2])])
    nodes = [helper.make_node("Loop", ["trips", "", "x"], ["runtime"], name="runtime_loop", body=body),
             helper.make_node("Loop", ["trips", "", "a2"], ["folded"], name="constant_loop", body=body),
             helper.make_node("Add", ["runtime", "folded"], ["y"])]
    model = _model(nodes, [_vi("x", F, [2])], ["y"],
                   [_init("trips", np.int64(3)), _init("a", np.float32(0.5)), _init("b", np.float32(0.75)),
                    _init("a2", np.float32([1, -1]))])
    graph = check(model, ["2"], [{"x": np.float32([0.5, 2])}, {"x": np.float32([-3, 1])}])
    loops = [node for node in graph.walk() if node.op == "prim::Loop"]
    assert len(loops) == 1
    body_ops = [node.op for node in loops[0].blocks[0].nodes]
    assert "aten::add" not in body_ops and "aten::mul" in body_ops


def test_unsupported_ops_and_attributes_inside_subgraphs_name_the_enclosing_node():
    then = _body([helper.make_node("Hardmax", ["x"], ["t"], name="hm")], [], [_vi("t")], name="then")
    other = _body([helper.make_node("Identity", ["x"], ["e"])], [], [_vi("e")], name="else")
    model = _model([helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0), helper.make_node("Greater", ["s", "z"], ["c"]),
                    helper.make_node("If", ["c"], ["y"], name="branchy", then_branch=then, else_branch=other)],
                   [_vi("x", F, [2, 2])], ["y"], [_init("z", np.float32(0))])
    with pytest.raises(UnsupportedOpError, match=r"Hardmax at node 'hm' \(inside the then_branch of If 'branchy'\)"):
        import_onnx(model)
    # A mapped op with an attribute variant the table refuses, two levels down.
    inner_then = _body([helper.make_node("Gelu", ["v_in"], ["t"], name="odd_gelu", approximate="erf")], [], [_vi("t")],
                       name="inner_then")
    inner_else = _body([helper.make_node("Identity", ["v_in"], ["e"])], [], [_vi("e")], name="inner_else")
    body = _body([helper.make_node("If", ["cond_in"], ["v_out"], name="inner_if", then_branch=inner_then,
                                   else_branch=inner_else), _same_condition()],
                 [_vi("i", I64, []), _vi("cond_in", B, []), _vi("v_in", F, [2])],
                 [_vi("cond_out", B, []), _vi("v_out", F, [2])])
    model = _model([helper.make_node("Loop", ["n", "", "x"], ["y"], name="looper", body=body)],
                   [_vi("x", F, [2]), _vi("n", I64, [1])], ["y"])
    with pytest.raises(UnsupportedOpError, match=r"'odd_gelu' \(Gelu, opset 17\) \(inside the then_branch of If "
                                                 r"'inner_if', inside the body of Loop 'looper'\).*approximate='erf'"):
        import_onnx(model, [parse_input_spec("2"), parse_input_spec("1:int64")])


# ------------------------------------------------------------------------- torch.onnx.export
class _Gated(torch.nn.Module):
    """Data-dependent control flow the TorchScript-based exporter turns into If and Loop: an if on
    the input, a for over the batch with an if inside, a while loop with a counter."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if bool(x.sum() > 0):
            h = self.linear(x) * 2.0
        else:
            h = x - 1.0
        for i in range(x.size(0)):
            if bool(h.sum() > 0):
                h = h - 0.5 * (i + 1)
            else:
                h = torch.tanh(self.linear(h)) + h
        steps = 0
        while bool(h.abs().sum() < 50.0) and steps < 20:
            h = h * 1.5 + 0.1
            steps += 1
        return h, torch.tensor(steps)


def test_torch_exported_scripted_module_with_if_and_loop_matches_eager_and_reference():
    torch.manual_seed(0)
    module = _Gated().eval()
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(torch.jit.script(module), (torch.randn(3, 4),), buffer, opset_version=17, dynamo=False,
                              input_names=["x"], output_names=["y", "steps"], dynamic_axes={"x": {0: "batch"}})
    except Exception as error:  # noqa: BLE001 - the TorchScript-based exporter may be absent from this torch
        pytest.skip(f"torch.onnx.export (dynamo=False) unavailable here: {error}")
    model = onnx.load_from_string(buffer.getvalue())
    op_types = {node.op_type for node in model.graph.node}
    if not {"If", "Loop"} <= op_types:
        pytest.skip(f"the exporter produced no If/Loop here ({sorted(op_types)})")
    feeds = [{"x": (sign * (np.abs(np.random.default_rng(n).standard_normal((n, 4))) + 0.1)).astype(np.float32)}
             for n, sign in ((1, 1), (3, -1), (5, 1), (2, 0.01))]
    graph = check(model, ["1..5x4"], feeds)
    ops = _ops(graph)
    assert ops.count("prim::If") >= 2 and ops.count("prim::Loop") == 2
    steps = set()
    for feed in feeds:
        x = torch.from_numpy(feed["x"])
        with torch.no_grad():
            expected = module(x)
        got = run_graph(graph, [x])
        torch.testing.assert_close(got[0], expected[0], rtol=1e-5, atol=1e-5)
        assert int(got[1]) == int(expected[1])
        steps.add(int(got[1]))
    assert len(steps) > 1
    output = graph.outputs[0]
    assert isinstance(output.type, TensorType) and output.type.shape[1] == 4
