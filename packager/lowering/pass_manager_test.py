import pytest
import torch

from packager.errors import LoweringError
from packager.ir.graph import Graph
from packager.ir.types import BOOL, INT
from packager.ir.verify import verify
from packager.lowering import DeadCodeElimination, Pass, PassManager, default_passes, lower
from packager.lowering._testing import GraphBuilder, assert_same_results, op_counts, tensor_type

T = tensor_type(2, 3)


class Recorder(Pass):
    """Changes nothing; records that it ran."""

    name = "recorder"

    def __init__(self, log):
        self.log = log

    def run(self, graph):
        self.log.append(self.name)
        return False


class Failing(Pass):
    name = "failing"

    def run(self, graph):
        raise ValueError("the pass tripped")


class Breaking(Pass):
    """Leaves a use of a value whose producer is gone: verify must catch it."""

    name = "breaking"

    def run(self, graph):
        doomed = graph.block.nodes[0]
        graph.block.nodes.remove(doomed)
        return True


class Toggling(Pass):
    """Always claims a change, so the round never settles."""

    name = "toggling"

    def run(self, graph):
        return True


def small_graph():
    b = GraphBuilder()
    x = b.input(T)
    b.op("aten::neg", x, out=T)
    return b.returns(b.op("aten::relu", x, out=T))


def test_repeats_until_a_round_changes_nothing():
    log = []
    graph = small_graph()

    report = PassManager([DeadCodeElimination(), Recorder(log)]).run(graph)

    assert report.converged and report.iterations == 2
    assert log == ["recorder", "recorder"]
    assert report.changes_by_pass()["dead_code_elimination"] == {"removed": {"aten::neg": 1}, "added": {}}
    assert [run.changed for run in report.runs] == [True, False, False, False]
    assert (report.nodes_before, report.nodes_after) == (2, 1)


def test_names_the_failing_pass_and_what_ran_before():
    graph = small_graph()

    with pytest.raises(LoweringError) as caught:
        PassManager([DeadCodeElimination(), Recorder([]), Failing()]).run(graph)

    message = str(caught.value)
    assert "lowering pass 'failing' failed" in message
    assert "iteration 1: dead_code_elimination, recorder" in message
    assert "ValueError: the pass tripped" in message
    assert isinstance(caught.value.__cause__, ValueError)


def test_names_the_pass_that_broke_the_graph():
    graph = small_graph()

    with pytest.raises(LoweringError) as caught:
        PassManager([Recorder([]), Breaking()]).run(graph)

    assert "lowering pass 'breaking' left a malformed graph" in str(caught.value)
    assert "passes that ran before it: iteration 1: recorder" in str(caught.value)
    assert caught.value.__cause__ is not None


def test_refuses_a_pass_that_does_not_return_a_bool():
    class Sloppy(Pass):
        name = "sloppy"

        def run(self, graph):
            return None

    with pytest.raises(LoweringError, match="'sloppy' returned None instead of True/False"):
        PassManager([Sloppy()]).run(small_graph())


def test_stops_after_max_iterations_and_says_so():
    report = PassManager([Toggling()], max_iterations=3).run(small_graph())

    assert not report.converged and report.iterations == 3
    assert "stopped before reaching a fixed point" in report.summary()


def test_rejects_a_malformed_graph_before_any_pass():
    b = GraphBuilder()
    graph = b.returns(b.op("aten::relu", b.op("aten::neg", b.input(T), out=T), out=T))
    graph.block.nodes.reverse()

    with pytest.raises(LoweringError, match="malformed before lowering, so no pass ran"):
        PassManager([Recorder([])]).run(graph)


def test_a_pass_needs_a_name():
    with pytest.raises(Exception, match="must set a class attribute 'name'"):
        class Nameless(Pass):
            def run(self, graph):
                return False


def test_lower_runs_the_default_pipeline_on_a_small_model():
    generator = torch.Generator().manual_seed(0)
    image, features = tensor_type(1, 3, 8, 8), tensor_type(1, 4, 6, 6)
    b = GraphBuilder("small_cnn")
    x = b.input(image)
    use_bias = b.op("aten::eq", b.op("aten::dim", x, out=INT), 4, out=BOOL, overload="int")
    conv = b.op("aten::conv2d", x, torch.randn(4, 3, 3, 3, generator=generator), None, [1, 1], [0, 0], [1, 1], 1,
                out=features)
    dropped = b.op("aten::dropout", conv, 0.1, False, out=features)
    normalized = b.op("aten::batch_norm", dropped, torch.rand(4, generator=generator) + 0.5, torch.randn(4),
                      torch.randn(4), torch.rand(4, generator=generator) + 0.5, False, 0.1, 1e-5, False, out=features)
    activated = b.op("aten::relu", normalized, out=features)
    branch = b.node("prim::If", use_bias, out=[features])
    then_block, else_block = branch.add_block(), branch.add_block()
    then_block.set_returns([b.op("aten::add", activated, 1.0, 1, out=features, overload="Scalar", block=then_block)])
    else_block.set_returns([activated])
    training_norm = b.op("aten::batch_norm", branch.output, None, None, torch.zeros(4), torch.ones(4), True, 0.1,
                         1e-5, False, out=features)
    b.op("aten::sigmoid", conv, out=features)
    graph = b.returns(training_norm)
    before = graph.clone()

    report = lower(graph)
    verify(graph)

    assert report.converged
    assert op_counts(graph) == {"aten::conv2d": 1, "aten::relu": 1, "aten::add": 1, "aten::batch_norm": 1,
                                "prim::Constant": 16}
    changes = report.changes_by_pass()
    assert changes["fold_conv_batchnorm"]["removed"] == {"aten::batch_norm": 1}
    assert changes["remove_noops"]["removed"] == {"aten::dropout": 1}
    assert changes["constant_folding"]["removed"]["prim::If"] == 1
    assert [(note.op, note.reason) for note in report.not_fused] == [
        ("aten::batch_norm", "its input comes from aten::add, not a convolution")
    ]
    assert "fold_conv_batchnorm: -1 aten::batch_norm" in report.summary()
    # The training-mode batch norm normalizes with batch statistics: compare on a batch of one.
    assert_same_results(before, graph, [torch.randn(1, 3, 8, 8, generator=generator)], rtol=1e-5, atol=1e-5)


def test_default_passes_are_fresh_objects():
    first, second = default_passes(), default_passes()
    assert [p.name for p in first] == ["scalarize_shape_arithmetic", "constant_folding", "remove_noops",
                                       "functionalize_inplace", "fold_conv_batchnorm", "dead_code_elimination"]
    assert all(a is not b for a, b in zip(first, second))


def test_lower_accepts_an_explicit_pass_list():
    graph = small_graph()
    report = lower(graph, passes=[DeadCodeElimination()])
    assert report.to_dict()["passes"] == {"dead_code_elimination": {"removed": {"aten::neg": 1}, "added": {}}}
    assert isinstance(graph, Graph)
