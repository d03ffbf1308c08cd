"""InductorBackend: capability reasons, request validation, and compiled packages vs run_graph.

Compiling an AOTInductor package on CPU takes 10-40 s, so each compiled segment is a
module-scoped fixture shared by the tests that load it (four compiles on CPU, two on CUDA).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch
import torch._inductor

from packager.backends import InductorBackend, get_backend
from packager.backends._inductor_capability import inductor_capability
from packager.errors import BackendError, InternalError, UsageError
from packager.ir import BOOL, FLOAT, INT, NONE, Graph, ListType, ScalarType, SymDim, TensorType, Value, run_graph

# Dynamic batch: the symbol table the build driver puts in segment.meta["symbols"].
SYMBOLS = {"s0": {"min": 1, "opt": 4, "max": 8}}
BATCH = SymDim("s0", 1, 8)
BATCHES = (1, 3, 8)

# fp32: Inductor fuses and reorders reductions (softmax, matmul/conv accumulation order), so
# results differ from eager in the last bits; 1e-4 relative covers that for these small sizes.
FP32 = {"rtol": 1e-4, "atol": 1e-5}
# fp16 compute vs an fp32 reference: fp16 has an 11-bit mantissa (~5e-4 relative per rounding).
FP16 = {"rtol": 1e-2, "atol": 1e-2}


def tensor(dtype, *shape):
    return TensorType(dtype, tuple(shape))


def constant(graph: Graph, value, type_) -> Value:
    return graph.block.append_node("prim::Constant", (), (type_,), attrs={"value": value}).output


def node(graph: Graph, op: str, inputs, output_type, overload: str = "") -> Value:
    return graph.block.append_node(op, inputs, (output_type,), overload=overload).output


def conv_segment() -> Graph:
    """conv2d (weight + bias constants) -> relu -> add, batch s0 in 1..8."""
    torch.manual_seed(0)
    graph = Graph("seg_conv")
    graph.meta["symbols"] = SYMBOLS
    x = graph.add_input(tensor("float32", BATCH, 3, 8, 8), "x")
    weight = constant(graph, torch.randn(4, 3, 3, 3), tensor("float32", 4, 3, 3, 3))
    bias = constant(graph, torch.randn(4), tensor("float32", 4))
    ones = constant(graph, [1, 1], ListType(INT))
    groups = constant(graph, 1, INT)
    out_type = tensor("float32", BATCH, 4, 8, 8)
    conv = node(graph, "aten::conv2d", (x, weight, bias, ones, ones, ones, groups), out_type)
    relu = node(graph, "aten::relu", (conv,), out_type)
    summed = node(graph, "aten::add", (relu, conv, groups), out_type, "Tensor")
    graph.block.set_returns([summed])
    return graph


def attention_segment() -> Graph:
    """matmul + softmax, a cat that makes a derived dim 2*s0, and a view whose shape list holds
    an aten::size-derived int (through the traced NumToTensor/Int pattern); two outputs."""
    torch.manual_seed(1)
    graph = Graph("seg_attention")
    graph.meta["symbols"] = SYMBOLS
    double = SymDim("2*s0")
    x = graph.add_input(tensor("float32", BATCH, 16, 32), "x")
    y = graph.add_input(tensor("float32", double, 16, 8), "y")
    weight = constant(graph, torch.randn(32, 8), tensor("float32", 32, 8))
    scores = node(graph, "aten::matmul", (x, weight), tensor("float32", BATCH, 16, 8))
    last = constant(graph, -1, INT)
    no_dtype = constant(graph, None, NONE)
    probabilities = node(graph, "aten::softmax", (scores, last, no_dtype), tensor("float32", BATCH, 16, 8), "int")
    pair = node(graph, "prim::ListConstruct", (probabilities, probabilities), ListType(TensorType("float32")))
    zero = constant(graph, 0, INT)
    doubled = node(graph, "aten::cat", (pair, zero), tensor("float32", double, 16, 8))
    one = constant(graph, 1, INT)
    summed = node(graph, "aten::add", (doubled, y, one), tensor("float32", double, 16, 8), "Tensor")
    rows = node(graph, "aten::size", (summed, zero), ScalarType("int", "2*s0"), "int")
    rows_tensor = node(graph, "prim::NumToTensor", (rows,), tensor("int64"), "Scalar")
    rows_again = node(graph, "aten::Int", (rows_tensor,), INT, "Tensor")
    shape = node(graph, "prim::ListConstruct", (rows_again, last), ListType(INT))
    flat = node(graph, "aten::view", (summed, shape), tensor("float32", double, 128))
    graph.block.set_returns([flat, probabilities])
    return graph


def linear_segment() -> Graph:
    """x @ W + b -> relu: the fp16 precision test."""
    torch.manual_seed(2)
    graph = Graph("seg_linear")
    graph.meta["symbols"] = SYMBOLS
    x = graph.add_input(tensor("float32", BATCH, 32), "x")
    weight = constant(graph, torch.randn(16, 32) / 4, tensor("float32", 16, 32))
    bias = constant(graph, torch.randn(16), tensor("float32", 16))
    hidden = node(graph, "aten::linear", (x, weight, bias), tensor("float32", BATCH, 16))
    graph.block.set_returns([node(graph, "aten::relu", (hidden,), tensor("float32", BATCH, 16))])
    return graph


def compile_and_load(segment: Graph, tmp_path_factory, precision: str = "fp32"):
    workdir = tmp_path_factory.mktemp(segment.name)
    variant = get_backend("inductor").compile(segment, device="cpu", precision=precision, workdir=workdir)
    package = workdir / "loaded.pt2"
    package.write_bytes(variant.payload)
    return variant, torch._inductor.aoti_load_package(str(package))


@pytest.fixture(scope="module")
def conv_engine(tmp_path_factory):
    return compile_and_load(conv_segment(), tmp_path_factory)


@pytest.fixture(scope="module")
def attention_engine(tmp_path_factory):
    return compile_and_load(attention_segment(), tmp_path_factory)


@pytest.fixture(scope="module")
def fp16_engine(tmp_path_factory):
    return compile_and_load(linear_segment(), tmp_path_factory, precision="fp16")


@pytest.fixture(scope="module")
def static_libstdcxx_engine(tmp_path_factory):
    """Built by a compiler that links libstdc++ statically, like $CXX on the GPU machine: without
    the link fix (_aoti_link) such packages crash or throw std::bad_cast when loaded."""
    real = shutil.which("g++")
    if real is None or os.path.sep not in subprocess.run(
        [real, "-print-file-name=libstdc++.a"], capture_output=True, text=True
    ).stdout:
        pytest.skip("needs g++ with a static libstdc++")
    compiler = tmp_path_factory.mktemp("compiler") / "static-g++"
    compiler.write_text(
        f'#!/bin/sh\ncase " $* " in *" -shared "*) set -- "$@" -static-libstdc++ ;; esac\nexec {real} "$@"\n'
    )
    compiler.chmod(0o755)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CXX", str(compiler))
        return compile_and_load(linear_segment(), tmp_path_factory)


def outputs_of(result) -> list[torch.Tensor]:
    return list(result) if isinstance(result, (list, tuple)) else [result]


# ---------------------------------------------------------------- compiled engines
@pytest.mark.parametrize("batch", BATCHES)
def test_conv_engine_matches_reference_across_dynamic_batch(conv_engine, batch):
    _, engine = conv_engine
    x = torch.randn(batch, 3, 8, 8)
    (actual,) = outputs_of(engine(x))
    expected = run_graph(conv_segment(), [x])
    assert actual.shape == (batch, 4, 8, 8)
    torch.testing.assert_close(actual, expected, **FP32)


@pytest.mark.parametrize("batch", BATCHES)
def test_attention_engine_matches_reference_across_dynamic_batch(attention_engine, batch):
    _, engine = attention_engine
    x, y = torch.randn(batch, 16, 32), torch.randn(2 * batch, 16, 8)
    actual = outputs_of(engine(x, y))
    expected = run_graph(attention_segment(), [x, y])
    assert [tuple(t.shape) for t in actual] == [(2 * batch, 128), (batch, 16, 8)]
    for got, want in zip(actual, expected, strict=True):
        torch.testing.assert_close(got, want, **FP32)


def test_variant_records_requirements_and_signature(conv_engine):
    variant, _ = conv_engine
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    assert variant.backend == "inductor"
    assert variant.requirements == {
        "device_type": "cpu", "torch": f"{major}.{minor}", "cuda": None, "compute_capability": None,
    }
    assert variant.meta["inputs"] == [
        {"name": "x", "dtype": "float32", "dims": [{"symbol": "s0", "min": 1, "max": 8}, 3, 8, 8]}
    ]
    assert variant.meta["outputs"][0]["dims"][1:] == [4, 8, 8]
    assert variant.meta["compile_seconds"] > 0
    assert variant.payload[:2] == b"PK"  # a .pt2 package is a zip archive


def test_attention_variant_records_derived_dims(attention_engine):
    variant, _ = attention_engine
    assert variant.meta["inputs"][1]["dims"][0] == {"symbol": "2*s0"}
    assert variant.meta["outputs"][0]["dims"] == [{"symbol": "2*s0"}, 128]


@pytest.mark.parametrize("batch", (1, 5))
def test_fp16_engine_keeps_fp32_boundary(fp16_engine, batch):
    variant, engine = fp16_engine
    x = torch.randn(batch, 32)
    (actual,) = outputs_of(engine(x))
    assert actual.dtype == torch.float32
    assert variant.meta["outputs"][0]["dtype"] == "float32"
    torch.testing.assert_close(actual, run_graph(linear_segment(), [x]), **FP16)


@pytest.mark.skipif(sys.platform != "linux", reason="the link fix is for Linux")
def test_package_from_a_static_libstdcxx_compiler_loads_and_runs(static_libstdcxx_engine):
    _, engine = static_libstdcxx_engine
    x = torch.randn(3, 32)
    (actual,) = outputs_of(engine(x))
    torch.testing.assert_close(actual, run_graph(linear_segment(), [x]), **FP32)


# ------------------------------------------------------------------- capability
def fft_graph():
    graph = Graph("seg_fft")
    x = graph.add_input(tensor("float32", 4, 16), "x")
    none = constant(graph, None, NONE)
    last = constant(graph, -1, INT)
    spectrum_node = graph.block.append_node(
        "aten::fft_rfft", (x, none, last, none), (tensor("complex64", 4, 9),)
    )
    magnitude_node = graph.block.append_node("aten::abs", (spectrum_node.output,), (tensor("float32", 4, 9),))
    return graph, spectrum_node, magnitude_node


def test_capability_refuses_complex_outputs_and_their_consumers():
    _, spectrum, magnitude = fft_graph()
    expected = "complex tensors (aten::fft_rfft output) are not supported by the inductor backend"
    assert expected in inductor_capability(spectrum)
    assert expected in inductor_capability(magnitude)


def test_capability_refuses_fft_even_without_types():
    graph = Graph("seg")
    x = graph.add_input(TensorType(), "x")
    fft = graph.block.append_node("aten::fft_fft", (x,), (TensorType(),))
    assert "FFT operators (aten::fft_fft)" in inductor_capability(fft)


def test_capability_accepts_every_node_of_the_test_segments():
    for segment in (conv_segment(), attention_segment(), linear_segment()):
        for each in segment.walk():
            assert inductor_capability(each) is None, each


def one_node_graph(op, input_types, output_types, overload="", constants=()):
    graph = Graph("seg")
    inputs = [graph.add_input(type_) for type_ in input_types]
    inputs += [constant(graph, value, type_) for value, type_ in constants]
    return graph.block.append_node(op, inputs, output_types, overload=overload)


@pytest.mark.parametrize(
    "op, overload, inputs, outputs, fragment",
    [
        ("aten::nonzero", "", [tensor("float32", 4)], [tensor("int64", SymDim("u0"), 1)], "depends on tensor data"),
        ("aten::unique_consecutive", "", [tensor("float32", 4)], [TensorType("float32")], "depends on tensor data"),
        ("aten::masked_select", "", [tensor("float32", 4), tensor("bool", 4)], [TensorType("float32")], "depends on tensor data"),
        ("aten::randn_like", "", [tensor("float32", 4)], [tensor("float32", 4)], "random"),
        ("aten::relu_", "", [tensor("float32", 4)], [tensor("float32", 4)], "in place; engines must be functional"),
        ("prim::RaiseException", "", [ScalarType("str")], [], "side effects"),
        ("prim::Print", "", [tensor("float32", 4)], [], "side effects"),
        ("aten::eq", "int", [INT, INT], [BOOL], "Python values only"),
        ("aten::no_such_op", "", [tensor("float32", 4)], [tensor("float32", 4)], "not registered"),
        ("quantized::linear", "", [tensor("float32", 4)], [tensor("float32", 4)], "only aten::"),
        ("prim::device", "", [tensor("float32", 4)], [ScalarType("Device")], "prim helpers"),
    ],
)
def test_capability_refusals_say_why(op, overload, inputs, outputs, fragment):
    reason = inductor_capability(one_node_graph(op, inputs, outputs, overload))
    assert reason is not None and fragment in reason


def test_capability_control_flow_stays_in_glue():
    graph = Graph("seg")
    condition = graph.add_input(BOOL)
    branch = graph.block.append_node("prim::If", (condition,), ())
    branch.add_block()
    branch.add_block()
    assert "control flow" in inductor_capability(branch)


@pytest.mark.parametrize("train, supported", [(False, True), (True, False)])
def test_capability_dropout_only_in_eval_mode(train, supported):
    dropout = one_node_graph(
        "aten::dropout", [tensor("float32", 4)], [tensor("float32", 4)],
        constants=[(0.5, FLOAT), (train, BOOL)],
    )
    assert (inductor_capability(dropout) is None) is supported


def test_capability_boolean_mask_indexing_is_data_dependent():
    graph = Graph("seg")
    x = graph.add_input(tensor("float32", 4))
    mask = graph.add_input(tensor("bool", 4))
    indices = node(graph, "prim::ListConstruct", (mask,), ListType(TensorType("bool")))
    index = graph.block.append_node("aten::index", (x, indices), (TensorType("float32"),), overload="Tensor")
    assert "boolean mask" in inductor_capability(index)


def test_capability_int_of_computed_tensor_is_data_dependent():
    graph = Graph("seg")
    x = graph.add_input(tensor("int64"))
    read = graph.block.append_node("aten::Int", (x,), (INT,), overload="Tensor")
    assert "data-dependent" in inductor_capability(read)


# ------------------------------------------------------------------- validation
def test_backend_is_registered_under_its_name():
    assert isinstance(get_backend("inductor"), InductorBackend)


def test_non_tensor_segment_input_is_an_internal_error(tmp_path):
    graph = Graph("seg_bad")
    x = graph.add_input(tensor("float32", 4), "x")
    k = graph.add_input(INT, "k")
    graph.block.set_returns([node(graph, "aten::mul", (x, k), tensor("float32", 4), "Scalar")])
    with pytest.raises(InternalError, match=r"segment 'seg_bad': input 1 \(%k: int\) is not a tensor"):
        InductorBackend().compile(graph, device="cpu", precision="fp32", workdir=tmp_path)


def test_untyped_segment_boundary_is_a_backend_error(tmp_path):
    graph = Graph("seg_untyped")
    x = graph.add_input(TensorType(), "x")
    graph.block.set_returns([node(graph, "aten::relu", (x,), TensorType())])
    with pytest.raises(BackendError, match="unknown dtype or rank"):
        InductorBackend().compile(graph, device="cpu", precision="fp32", workdir=tmp_path)


def test_segment_with_refused_node_is_a_backend_error(tmp_path):
    graph = Graph("seg_random")
    x = graph.add_input(tensor("float32", 4), "x")
    graph.block.set_returns([node(graph, "aten::randn_like", (x,), tensor("float32", 4))])
    with pytest.raises(BackendError, match="seg_random.*randn_like.*random"):
        InductorBackend().compile(graph, device="cpu", precision="fp32", workdir=tmp_path)


def test_unknown_precision_and_device_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="fp32, fp16, bf16"):
        InductorBackend().compile(linear_segment(), device="cpu", precision="int8", workdir=tmp_path)
    with pytest.raises(UsageError, match="cpu, cuda"):
        InductorBackend().compile(linear_segment(), device="mps", precision="fp32", workdir=tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on hosts without CUDA")
def test_cuda_on_a_host_without_cuda_is_a_backend_error(tmp_path):
    with pytest.raises(BackendError, match="no usable CUDA"):
        InductorBackend().compile(linear_segment(), device="cuda", precision="fp32", workdir=tmp_path)


def test_export_failure_names_segment_and_op(tmp_path):
    graph = Graph("seg_badview")
    graph.meta["symbols"] = SYMBOLS
    x = graph.add_input(tensor("float32", BATCH, 6), "x")
    shape = constant(graph, [5, -1], ListType(INT))
    graph.block.set_returns([node(graph, "aten::view", (x, shape), tensor("float32", 5, SymDim("u0")))])
    with pytest.raises(BackendError, match=r"segment 'seg_badview': torch.export failed at .*aten::view"):
        InductorBackend().compile(graph, device="cpu", precision="fp32", workdir=tmp_path)



# ------------------------------------------------------------------------- CUDA
# CI has no GPU; these run on the GPU machine. Loading in this process is the point: without
# the -Bsymbolic link fix, CUDA packages crash at load there (see _aoti_link).
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def cuda_engines(tmp_path_factory):
    engines = {}
    for segment, precision in ((attention_segment(), "fp32"), (conv_segment(), "fp16")):
        workdir = tmp_path_factory.mktemp(f"cuda_{segment.name}")
        variant = get_backend("inductor").compile(segment, device="cuda", precision=precision, workdir=workdir)
        (workdir / "loaded.pt2").write_bytes(variant.payload)
        engines[segment.name] = variant, torch._inductor.aoti_load_package(str(workdir / "loaded.pt2"))
    return engines


@requires_cuda
@pytest.mark.parametrize("batch", BATCHES)
def test_cuda_engine_loads_and_matches_reference(cuda_engines, batch):
    _, engine = cuda_engines["seg_attention"]
    x = torch.randn(batch, 16, 32, device="cuda")
    y = torch.randn(2 * batch, 16, 8, device="cuda")
    expected = run_graph(_on_cuda(attention_segment()), [x, y])
    # TF32 may be enabled for CUDA matmuls; 1e-3 covers its 10-bit mantissa at these sizes.
    for got, want in zip(outputs_of(engine(x, y)), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3)


@requires_cuda
@pytest.mark.parametrize("batch", BATCHES)
def test_cuda_fp16_engine_keeps_fp32_boundary(cuda_engines, batch):
    _, engine = cuda_engines["seg_conv"]
    x = torch.randn(batch, 3, 8, 8, device="cuda")
    (actual,) = outputs_of(engine(x))
    assert actual.dtype == torch.float32 and actual.device.type == "cuda"
    torch.testing.assert_close(actual, run_graph(_on_cuda(conv_segment()), [x]), **FP16)


@requires_cuda
def test_cuda_requirements_name_the_build_gpu(cuda_engines):
    variant, _ = cuda_engines["seg_conv"]
    major, minor = torch.cuda.get_device_capability()
    assert variant.requirements["device_type"] == "cuda"
    assert variant.requirements["cuda"] == torch.version.cuda
    assert variant.requirements["compute_capability"] == f"{major}.{minor}"


def _on_cuda(segment: Graph) -> Graph:
    """The same segment with its tensor constants on the GPU, for the eager reference."""
    for each in segment.walk():
        if each.op == "prim::Constant" and isinstance(each.attrs["value"], torch.Tensor):
            each.attrs["value"] = each.attrs["value"].to("cuda")
    return segment
