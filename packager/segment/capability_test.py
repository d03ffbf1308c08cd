import pytest

from packager.errors import UsageError
from packager.ir import BOOL, INT, STR
from packager.segment import all_of, deny_ops, has_side_effects, mutates_input, structural_rules
from packager.segment._testing import TENSOR, GraphBuilder, test_capability


def _nodes():
    builder = GraphBuilder()
    x = builder.input()
    relu = builder.op("aten::relu", x).producer
    added = builder.add(relu.output, x).producer
    one = builder.constant(1, INT)
    in_place = builder.node("aten::add_", (added.output, x, one), overload="Tensor")
    return builder, x, relu, added, in_place


def test_all_of_returns_the_first_refusal():
    _, _, relu, _, _ = _nodes()
    first = all_of(lambda node: None, lambda node: "first", lambda node: "second")
    assert first(relu) == "first"
    assert all_of(lambda node: None, test_capability)(relu) is None
    assert all_of()(relu) is None


def test_deny_ops_matches_op_or_overload_and_names_it():
    _, _, relu, added, _ = _nodes()
    by_op = deny_ops(["aten::add"])
    assert by_op(added) == "forced to fallback by --fallback-op aten::add"
    assert by_op(relu) is None
    by_overload = deny_ops(["aten::add.Tensor"], "no {op}")
    assert by_overload(added) == "no aten::add.Tensor"
    assert deny_ops(["aten::add.Scalar"], "no")(added) is None


def test_deny_ops_refuses_unqualified_names():
    with pytest.raises(UsageError, match="schema-qualified"):
        deny_ops(["relu"], "no")


def test_structural_rules_keep_control_flow_engine_calls_and_effects_in_the_glue():
    builder, x, relu, added, in_place = _nodes()
    assert structural_rules(relu) is None
    assert structural_rules(added) is None
    assert "in place" in structural_rules(in_place)
    assert mutates_input(in_place) and not mutates_input(added)

    flag = builder.constant(True, BOOL)
    branch = builder.node("prim::If", (flag,))
    for _ in range(2):
        branch.add_block().set_returns([x])
    assert "control flow (prim::If)" in structural_rules(branch)

    engine = builder.node("poros::engine", (x,), attrs={"segment": "seg0"})
    assert "already an engine call" in structural_rules(engine)

    message = builder.constant("boom", STR)
    raised = builder.node("prim::RaiseException", (message,), output_types=())
    assert "side effects" in structural_rules(raised)


def test_side_effects_are_seen_through_nested_blocks():
    builder = GraphBuilder()
    x = builder.input()
    flag = builder.constant(True, BOOL)
    pure = builder.node("prim::If", (flag,), output_types=(TENSOR,))
    for _ in range(2):
        body = pure.add_block()
        body.set_returns([builder.op("aten::relu", x, block=body)])
    assert not has_side_effects(pure)

    effectful = builder.node("prim::If", (flag,), output_types=(TENSOR,))
    then_block = effectful.add_block()
    one = builder.constant(1, INT, then_block)
    builder.node("aten::add_", (x, x, one), overload="Tensor", block=then_block)
    then_block.set_returns([x])
    effectful.add_block().set_returns([x])
    assert has_side_effects(effectful)


def test_random_draws_are_side_effects_and_pure_ops_are_not():
    builder = GraphBuilder()
    x = builder.input()
    draw = builder.op("aten::rand_like", x).producer
    assert has_side_effects(draw)
    assert not has_side_effects(builder.op("aten::relu", x).producer)
    assert structural_rules(draw) is None  # whether an engine may draw is the backend's call
