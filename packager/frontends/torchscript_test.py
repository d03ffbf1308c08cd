"""Tests of the TorchScript front end: structure, types and symbolic shapes, numbers against the
TorchScript module itself, and the errors a user can run into.

Numbers: ``run_graph`` executes the same aten kernels as TorchScript, so fp32 results agree to
1e-5 (any larger difference would mean a wrong op, overload or argument).
"""

from pathlib import Path
from typing import List, Optional

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from packager.errors import FrontendError, UnsupportedOpError, UsageError
from packager.frontends import import_torchscript
from packager.ir import Graph, ScalarType, SymDim, TensorType, TupleType, run_graph, verify
from packager.spec import parse_input_spec

TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")


def _save(module: torch.jit.ScriptModule, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.pt"
    torch.jit.save(module, str(path))
    return path


def _specs(*texts: str):
    return [parse_input_spec(text) for text in texts]


def _ops(graph: Graph) -> set[str]:
    return {node.op for node in graph.walk()}


def _nodes(graph: Graph, op: str):
    return [node for node in graph.walk() if node.op == op]


def _check_types(graph: Graph, allow_unshaped: set[str] = frozenset()) -> None:
    """verify() passes; every output is typed; tensors have a dtype and a shape unless their
    node falls back on purpose (a value read from tensor data) or is listed in allow_unshaped."""
    verify(graph)
    for node in graph.walk():
        for value in node.outputs:
            assert value.type is not None, f"{node!r} has an untyped output"
            if isinstance(value.type, TensorType) and node.op not in allow_unshaped:
                assert value.type.dtype is not None and value.type.shape is not None, (
                    f"{node!r}: {value.type} ({node.meta.get('type_fallback')})"
                )


def _dims(value_type) -> list:
    return [d.expr if isinstance(d, SymDim) else d for d in value_type.shape]


def _flatten(value) -> list:
    if isinstance(value, (tuple, list)):
        return [leaf for item in value for leaf in _flatten(item)]
    return [value]


def _flatten_types(value_type) -> list:
    if isinstance(value_type, TupleType):
        return [leaf for element in value_type.elements for leaf in _flatten_types(element)]
    return [value_type]


def _assert_matches(graph: Graph, module, inputs) -> None:
    """Same numbers as the TorchScript module, and every output dim expression evaluates, with
    the input sizes for the symbols, to the size the output really has."""
    with torch.no_grad():
        expected = module(*inputs)
    actual = run_graph(graph, inputs)
    torch.testing.assert_close(actual, expected, **TOLERANCE)
    sizes = {}
    for value, tensor in zip(graph.inputs, inputs):
        for dim, size in zip(value.type.shape, tensor.shape):
            if isinstance(dim, SymDim):
                sizes[dim.expr] = size
    for value_type, tensor in zip(_flatten_types(graph.outputs[0].type), _flatten(actual), strict=True):
        assert value_type.dtype == str(tensor.dtype).removeprefix("torch.")
        for dim, size in zip(value_type.shape, tensor.shape, strict=True):
            if isinstance(dim, int):
                assert dim == size
            elif not dim.expr.startswith("u"):
                assert eval(dim.expr, {"max": max, "min": min}, dict(sizes)) == size, (dim, sizes)
                assert dim.min is None or dim.min <= size
                assert dim.max is None or size <= dim.max


# ----------------------------------------------------------------------- (a) scripted control flow
class ControlFlow(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 16)

    def forward(self, x):
        batch = x.size(0)
        steps = x.size(1)
        h = self.proj(x).view(batch, steps * 2, 8)
        if bool(h.mean() > 0):
            y = torch.relu(h)
        else:
            y = h[:, 1:] * -1.0
        total = torch.zeros_like(h[:, 0])
        for i in range(steps):
            total = total + h[:, i] * 0.5
        return total, y.sum(1)


def test_scripted_if_on_tensor_value_and_loop_over_dynamic_range(tmp_path):
    module = torch.jit.script(ControlFlow().eval())
    graph = import_torchscript(_save(module, tmp_path, "control"), _specs("1..4..8x2..5..16x8"))
    _check_types(graph)
    assert graph.meta["input_names"] == ["x"]
    assert graph.meta["symbols"] == {"s0": {"min": 1, "opt": 4, "max": 8}, "s1": {"min": 2, "opt": 5, "max": 16}}
    assert graph.inputs[0].type == TensorType("float32", (SymDim("s0", 1, 8), SymDim("s1", 2, 16), 8))

    (branch,) = _nodes(graph, "prim::If")
    assert len(branch.blocks) == 2
    # One branch keeps 2*s1 rows, the other drops one: the join is a data-dependent size.
    assert _dims(branch.blocks[0].returns[0].type) == ["s0", "2*s1", 8]
    assert _dims(branch.blocks[1].returns[0].type) == ["s0", "(-1) + 2*s1", 8]
    joined = _dims(branch.outputs[0].type)
    assert joined[0] == "s0" and joined[1].startswith("u") and joined[2] == 8
    # The condition is read from tensor data: its node says so and keeps its declared type.
    (condition,) = _nodes(graph, "aten::Bool")
    assert "tensor data" in condition.meta["type_fallback"]

    (loop,) = _nodes(graph, "prim::Loop")
    assert loop.inputs[0].type == ScalarType("int", "s1")
    assert _dims(loop.outputs[0].type) == ["s0", 8]  # the carried sum keeps its shape
    output = graph.outputs[0].type
    assert isinstance(output, TupleType) and [_dims(t) for t in output.elements] == [["s0", 8], ["s0", 8]]

    for shape in [(1, 2, 8), (4, 5, 8), (8, 16, 8)]:
        x = torch.randn(shape)
        _assert_matches(graph, module, [x])
        _assert_matches(graph, module, [-x])  # the other branch


class ShapeArithmetic(nn.Module):
    def forward(self, x):
        batch, channels, length = x.size(0), x.size(1), x.size(2)
        flat = x.reshape(batch, channels * length)
        half = length // 2
        pooled = x[:, :, :half].flatten(1)
        return flat, pooled.view(batch, -1).sum(1, keepdim=True) * half, x.to(torch.float64).new_zeros(half)


def test_scripted_shape_arithmetic_gives_expressions(tmp_path):
    module = torch.jit.script(ShapeArithmetic())
    graph = import_torchscript(_save(module, tmp_path, "arith"), _specs("1..4x3x2..10"))
    _check_types(graph)
    flat, scaled, zeros = graph.outputs[0].type.elements
    assert _dims(flat) == ["s0", "3*s1"]
    assert flat.shape[1] == SymDim("3*s1", 6, 30)  # bounds follow from the declared ranges
    assert _dims(scaled) == ["s0", 1]
    assert zeros == TensorType("float64", (SymDim("s1 // 2", 1, 5),))
    (half,) = _nodes(graph, "aten::floordiv")
    assert half.output.type == ScalarType("int", "s1 // 2")
    # torch.float64 is an int constant in TorchScript; the IR holds the dtype itself.
    dtypes = [n.attrs["value"] for n in _nodes(graph, "prim::Constant") if isinstance(n.attrs["value"], torch.dtype)]
    assert torch.float64 in dtypes
    for shape in [(1, 3, 2), (3, 3, 7), (4, 3, 10)]:
        _assert_matches(graph, module, [torch.randn(shape)])


# ------------------------------------------------------------------ (b) traced transformer encoder
class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(50, 16)
        self.layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
        self.head = nn.Linear(16, 4)

    def forward(self, ids):
        return self.head(self.layer(self.embedding(ids)))


def test_traced_transformer_with_dynamic_batch_and_sequence(tmp_path):
    torch.manual_seed(0)
    encoder = Encoder().eval()
    # Traced with autograd on, nn.MultiheadAttention takes its composite path, which records the
    # shape arithmetic as aten::size / prim::NumToTensor / aten::Int (the fused fast path, taken
    # under no_grad, would differ; hence check_trace=False).
    module = torch.jit.trace(encoder, torch.randint(0, 50, (2, 5)), check_trace=False)
    graph = import_torchscript(_save(module, tmp_path, "encoder"), _specs("1..2..4x1..5..16:int64"))
    _check_types(graph)
    assert {"aten::size", "prim::NumToTensor", "aten::Int", "aten::scaled_dot_product_attention"} <= _ops(graph)
    assert all(node.overload == "Tensor" for node in _nodes(graph, "aten::Int"))
    assert _dims(graph.inputs[0].type) == ["s0", "s1"] and graph.inputs[0].type.dtype == "int64"
    assert _dims(graph.outputs[0].type) == ["s0", "s1", 4]
    # Sizes that went through 0-dim tensors come back as expressions.
    int_symbols = {node.output.type.symbol for node in _nodes(graph, "aten::Int")}
    assert {"2*s0", "s0*s1"} <= int_symbols
    # The attention output is flattened to (batch * length, embed) with the product as its size.
    assert any(_dims(value.type) == ["s0*s1", 16] for node in graph.walk() for value in node.outputs
               if isinstance(value.type, TensorType))
    # Which assumptions torch's shape rules record differs across versions; none pins a size
    # (that would have failed the import), and each names the node that made it.
    assert all(guard["node"] and not guard["conditional"] for guard in graph.meta["shape_guards"])
    for batch, length in [(1, 1), (2, 5), (4, 16), (3, 7)]:
        _assert_matches(graph, module, [torch.randint(0, 50, (batch, length))])


# --------------------------------------------------------------------- (c) traced CNN, BN, residual
class ResidualCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.conv = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.down = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        x = F.relu(self.bn(self.conv(x)) + x)
        x = self.down(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def test_traced_cnn_with_batchnorm_and_residual(tmp_path):
    torch.manual_seed(0)
    cnn = ResidualCNN()
    with torch.no_grad():  # non-trivial BN statistics, so that an unfolded BN is visible in the numbers
        for bn in (cnn.stem[1], cnn.bn):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    module = torch.jit.trace(cnn.eval(), torch.randn(2, 3, 16, 16))
    graph = import_torchscript(_save(module, tmp_path, "cnn"), _specs("1..2..4x3x15..16..32x16"))
    _check_types(graph)
    # Freezing must not fold conv+bn (our lowering does): both batch norms are still there.
    assert len(_nodes(graph, "aten::batch_norm")) == 2
    convolutions = _nodes(graph, "aten::_convolution")  # what a trace records for nn.Conv2d
    assert len(convolutions) == 3
    (residual,) = [n for n in _nodes(graph, "aten::add") if n.overload == "Tensor"]
    assert _dims(residual.output.type) == ["s0", 8, "s1", 16]
    # A traced node's location is the user's line in the trace's Python stack.
    residual_line = ResidualCNN.forward.__code__.co_firstlineno + 2
    assert residual.meta["source"].endswith(f"torchscript_test.py:{residual_line}")
    strided = convolutions[-1].output.type
    assert _dims(strided)[:2] == ["s0", 16] and _dims(strided)[3] == 8
    assert (strided.shape[2].min, strided.shape[2].max) == (8, 16)  # ceil(15/2) .. ceil(32/2)
    assert _dims(graph.outputs[0].type) == ["s0", 10]
    assert all(isinstance(n.attrs["value"], torch.Tensor) for n in _nodes(graph, "prim::Constant")
               if isinstance(n.output.type, TensorType))
    for batch, width in [(1, 15), (2, 16), (4, 32)]:
        _assert_matches(graph, module, [torch.randn(batch, 3, 16, width)])


def test_wrong_input_shape_is_reported_at_the_node(tmp_path):
    module = torch.jit.trace(ResidualCNN().eval(), torch.randn(2, 3, 16, 16))
    with pytest.raises(FrontendError, match=r"shape inference failed at aten::_convolution at .*\[1..4x4x16x16:float32\].*--input"):
        import_torchscript(module, _specs("1..4x4x16x16"))


# ----------------------------------------------------------------- (d) two inputs, tuple output
class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.left = nn.Linear(4, 6)

    def forward(self, a, b):
        mixed = torch.cat([self.left(a), b], dim=1)
        return mixed.softmax(-1), (a.sum(1) * b.mean(1)).unsqueeze(1)


def test_two_inputs_returning_a_tuple(tmp_path):
    module = torch.jit.script(TwoInputs().eval())
    graph = import_torchscript(_save(module, tmp_path, "two"), _specs("1..3..8x4", "1..3..8x6"), name="pair")
    _check_types(graph)
    assert graph.name == "pair"
    assert graph.meta["input_names"] == ["a", "b"]
    assert list(graph.meta["symbols"]) == ["s0", "s1"]
    # cat needs equal batch sizes: torch unifies the two symbols, records why, and every type
    # (the inputs' too) then uses the one that remains.
    (guard,) = graph.meta["shape_guards"]
    assert guard["guard"] in ("s1 == s0", "s0 == s1") and guard["node"] == "aten::cat"
    assert guard["source"].endswith(f"torchscript_test.py:{TwoInputs.forward.__code__.co_firstlineno + 1}")
    batch = _dims(graph.inputs[0].type)[0]
    assert batch in ("s0", "s1")
    assert [_dims(v.type) for v in graph.inputs] == [[batch, 4], [batch, 6]]
    output = graph.outputs[0].type
    assert isinstance(output, TupleType)
    assert [_dims(t) for t in output.elements] == [[batch, 12], [batch, 1]]
    for rows in (1, 3, 8):
        _assert_matches(graph, module, [torch.randn(rows, 4), torch.randn(rows, 6)])


# ----------------------------------------------------------------------------- (e) rfft in the middle
class Spectral(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(17, 8)

    def forward(self, x):
        spectrum = torch.fft.rfft(x, dim=-1)
        return self.fc(spectrum.abs())


def test_rfft_in_the_middle(tmp_path):
    module = torch.jit.script(Spectral().eval())
    graph = import_torchscript(_save(module, tmp_path, "fft"), _specs("1..4x2..8x32"))
    _check_types(graph)
    (rfft,) = _nodes(graph, "aten::fft_rfft")
    assert rfft.output.type.dtype == "complex64" and _dims(rfft.output.type) == ["s0", "s1", 17]
    assert _dims(graph.outputs[0].type) == ["s0", "s1", 8] and graph.outputs[0].type.dtype == "float32"
    for shape in [(1, 2, 32), (4, 8, 32), (3, 5, 32)]:
        _assert_matches(graph, module, [torch.randn(shape)])


# ------------------------------------------------------------------ lists, loops, pinned sizes
class ListsAndLoops(nn.Module):
    def forward(self, x):
        pieces: List[torch.Tensor] = []
        for i in range(x.size(1)):  # a static dim: a concrete trip count, run exactly
            pieces.append(x[:, i] * float(i))
        grown: List[torch.Tensor] = []
        for j in range(x.size(0)):  # a dynamic trip count: the list's length is unknown
            grown.append(x[j])
        if x.size(0) == 1:  # taken for one exact size only
            single = x[0]
        else:
            single = x.sum(0)
        y = x.clone()
        y.unsqueeze_(0)  # changes the fake tensor in place; x.clone()'s type must not follow
        return torch.stack(pieces, 1), torch.stack(grown), single, y


def test_lists_loops_and_size_pinning_branches(tmp_path):
    module = torch.jit.script(ListsAndLoops())
    graph = import_torchscript(_save(module, tmp_path, "lists"), _specs("1..3..6x3"))
    stacks = _nodes(graph, "aten::stack")
    assert _dims(stacks[0].output.type) == ["s0", 3]  # three appends, known exactly
    assert stacks[1].output.type == TensorType()  # grown a run-time number of times
    assert "only known at run time" in stacks[1].meta["type_fallback"]
    pinned = [n for n in _nodes(graph, "prim::If") if n.output.type == TensorType()]
    assert len(pinned) == 1  # the join of an un-inferred branch keeps the declared type
    (pinned_select,) = [n for n in pinned[0].blocks[0].nodes if n.op == "aten::select"]
    assert "taken only when s0 == 1" in pinned_select.meta["type_fallback"]
    assert not graph.meta["shape_guards"]  # nothing pinned s0
    (clone,) = _nodes(graph, "aten::clone")
    (unsqueeze,) = _nodes(graph, "aten::unsqueeze_")
    assert _dims(clone.output.type) == ["s0", 3] and _dims(unsqueeze.output.type) == [1, "s0", 3]
    for rows in (1, 3, 6):
        with torch.no_grad():
            expected = module(torch.ones(rows, 3))
        torch.testing.assert_close(run_graph(graph, [torch.ones(rows, 3)]), expected, **TOLERANCE)


# ------------------------------------------------------------------------------ conventions
def test_overloads_names_and_source_locations(tmp_path):
    module = torch.jit.script(TwoInputs().eval())
    graph = import_torchscript(module, _specs("2x4", "2x6"))
    kinds = {node.kind for node in graph.walk()}
    assert {"aten::cat", "aten::linear", "aten::softmax.int", "aten::mul.Tensor", "aten::sum.dim_IntList"} <= kinds
    assert all(node.overload == "" for node in _nodes(graph, "prim::ListConstruct"))
    (cat,) = _nodes(graph, "aten::cat")
    assert cat.meta["source"].endswith(f"torchscript_test.py:{TwoInputs.forward.__code__.co_firstlineno + 1}")
    assert not any(isinstance(d, SymDim) for v in graph.inputs for d in v.type.shape)  # static specs
    assert graph.meta["symbols"] == {}


class OptionalMask(nn.Module):
    def forward(self, x, mask: Optional[torch.Tensor] = None):
        if mask is None:
            return x.relu()
        return x * mask


def test_optional_tensor_argument_is_refused():
    module = torch.jit.script(OptionalMask())
    with pytest.raises(UnsupportedOpError, match=r"forward argument 'mask' has type Optional\[Tensor\]"):
        import_torchscript(module, _specs("2x3", "2x3"))


# ---------------------------------------------------------------------------------- errors
def test_missing_file(tmp_path):
    with pytest.raises(UsageError, match=r"model file '.*nothing\.pt' does not exist"):
        import_torchscript(tmp_path / "nothing.pt", _specs("2x3"))


def test_file_that_is_not_torchscript(tmp_path):
    junk = tmp_path / "model.bin"
    junk.write_bytes(b"\x00\x01not a model at all" * 10)
    with pytest.raises(FrontendError, match=r"model\.bin' is not a TorchScript model; expected a file written by torch\.jit\.save"):
        import_torchscript(junk, _specs("2x3"))
    checkpoint = tmp_path / "weights.pt"
    torch.save(nn.Linear(3, 3).state_dict(), checkpoint)
    with pytest.raises(FrontendError, match="torch.save checkpoint"):
        import_torchscript(checkpoint, _specs("2x3"))
    onnx_like = tmp_path / "model.onnx"
    onnx_like.write_bytes(b"\x08\x07\x12\x07pytorch" + bytes(40))
    with pytest.raises(FrontendError, match="ONNX front end"):
        import_torchscript(onnx_like, _specs("2x3"))


def test_eager_module_is_refused():
    with pytest.raises(UsageError, match=r"torch\.jit\.script\(model\) or torch\.jit\.trace"):
        import_torchscript(nn.Linear(3, 3), _specs("2x3"))


def test_wrong_number_of_input_specs(tmp_path):
    path = _save(torch.jit.script(TwoInputs().eval()), tmp_path, "two")
    with pytest.raises(UsageError, match=r"forward takes 2 tensor argument\(s\) \(a, b\) but 1 input spec\(s\) were given"):
        import_torchscript(path, _specs("2x4"))


def _python_helper(x: torch.Tensor) -> torch.Tensor:
    return x + 1


class CallsPython(nn.Module):
    def forward(self, x):
        return _ignored(x) * 2


@torch.jit.ignore
def _ignored(x: torch.Tensor) -> torch.Tensor:
    return _python_helper(x)


def test_python_call_is_refused_with_location_and_advice():
    module = torch.jit.script(CallsPython())
    with pytest.raises(UnsupportedOpError) as caught:
        import_torchscript(module, _specs("2x3"))
    message = str(caught.value)
    assert "prim::PythonOp" in message and "_ignored" in message
    assert f"torchscript_test.py:{CallsPython.forward.__code__.co_firstlineno + 1}" in message
    assert "torch.jit.trace" in message


class ReturnsDict(nn.Module):
    def forward(self, x):
        return {"double": x * 2, "half": x / 2}


def test_dict_is_refused(tmp_path):
    path = _save(torch.jit.script(ReturnsDict()), tmp_path, "dict")
    with pytest.raises(UnsupportedOpError, match=r"prim::DictConstruct (at|near) .*torchscript_test\.py:\d+: uses a value of type Dict\[str, Tensor\]"):
        import_torchscript(path, _specs("2x3"))


class BakedBatch(nn.Module):
    def forward(self, x):
        return x.reshape(int(x.size(0)) * 3, 4).relu()


def test_specialized_dynamic_dim_is_an_error():
    with pytest.warns(torch.jit.TracerWarning):
        module = torch.jit.trace(BakedBatch(), torch.randn(2, 3, 4))
    with pytest.raises(FrontendError, match=r"input 'x' dim 0 \(declared 1\.\.2\.\.8\) is dynamic \(s0\), but aten::reshape at .* only works when it is 2"):
        import_torchscript(module, _specs("1..2..8x3x4"))
    graph = import_torchscript(module, _specs("2x3x4"))  # static: fine
    _assert_matches(graph, module, [torch.randn(2, 3, 4)])
