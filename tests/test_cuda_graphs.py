"""``poros_runtime.load(path, cuda_graphs=True)``: CUDA graph capture and replay of the glue.

On the CPU: the API (option checks, the refusal on a non-CUDA device, the default load
unchanged) and the cache / fallback policy of ``GraphRunner`` with its two CUDA steps (capture,
replay) replaced by fakes.  On a GPU (``POROS_TEST_DEVICE=cuda`` on a machine with CUDA, as for
tests/test_end_to_end.py; skipped otherwise): real artifacts built with ``--device cuda``
(AOTInductor CUDA engines), replayed graphs against plain calls of the same artifact, output
ownership, the LRU bound, threads on their own streams, and the fallback of a model with
data-dependent control flow.  Each GPU model builds once per worker (~1.5 min); the tests of a
model share an xdist group, so ``-n 4 --dist loadgroup`` builds the models in parallel.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
from pathlib import Path

import pytest
import torch

import poros_runtime
from packager.build import BuildOptions, build
from packager.spec import parse_input_spec
from poros_runtime._cuda_graphs import DEFAULT_MAX_GRAPHS, CaptureFailed, GraphRunner, _copy, _reason
from poros_runtime.errors import ArtifactError, PorosError, UsageError
from tests import models

DEVICE = os.environ.get("POROS_TEST_DEVICE", "cpu")
requires_cuda = pytest.mark.skipif(
    DEVICE != "cuda" or not torch.cuda.is_available(),
    reason="GPU test: needs POROS_TEST_DEVICE=cuda and a CUDA device "
           f"(POROS_TEST_DEVICE={DEVICE!r}, torch.cuda.is_available()={torch.cuda.is_available()})",
)

# name: (save function, input specs, per call: the input shapes)
MODELS = {
    "resnet": (models.save_resnet, ["1..4x3x32x32:float32"],
               [[(1, 3, 32, 32)], [(3, 3, 32, 32)], [(3, 3, 32, 32)], [(1, 3, 32, 32)],
                [(4, 3, 32, 32)], [(3, 3, 32, 32)]]),
    "encoder": (models.save_encoder, ["1..4x2..12:int64"],
                [[(1, 2)], [(3, 7)], [(3, 7)], [(4, 12)], [(1, 2)], [(3, 7)]]),
    "two_in_tuple_out": (models.save_two_in_tuple_out, ["1..8x8:float32", "1..8x6:float32"],
                         [[(2, 8), (2, 6)], [(8, 8), (8, 6)], [(2, 8), (2, 6)], [(8, 8), (8, 6)]]),
    "if_and_loop": (models.save_if_and_loop, ["1..5x16:float32"],
                    [[(1, 16)], [(5, 16)], [(1, 16)], [(3, 16)]]),
}


def _inputs(name, shapes, seed, device):
    """Random inputs of ``name``'s dtypes (token ids for int64) with the given shapes."""
    generator = torch.Generator().manual_seed(seed)
    tensors = []
    for shape, spec in zip(shapes, MODELS[name][1]):
        if spec.endswith(":int64"):
            tensors.append(torch.randint(0, 50, shape, generator=generator))
        else:
            tensors.append(torch.randn(shape, generator=generator))
    return [tensor.to(device) for tensor in tensors]


def _flat(value):
    return list(value) if isinstance(value, tuple) else [value]


def _assert_same(actual, expected, rtol=1e-4, atol=1e-5):
    actual, expected = _flat(actual), _flat(expected)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.shape == e.shape and a.dtype == e.dtype and a.device == e.device
        torch.testing.assert_close(a, e, rtol=rtol, atol=atol)


def _build(name: str, folder: Path, device: str, target: str = "inductor") -> Path:
    save, specs, _ = MODELS[name]
    model = save(folder / f"{name}.pt")
    artifact = folder / f"{name}.{target}.poros"
    build(model, artifact, BuildOptions(inputs=[parse_input_spec(s) for s in specs], device=device,
                                        target=target, self_check=False))
    return artifact


# --------------------------------------------------------------------------------------------
# CPU: the API


@pytest.fixture(scope="module")
def cpu_artifact(tmp_path_factory) -> Path:
    """Glue only (``--target torchscript``: no engine to compile), on the CPU."""
    return _build("two_in_tuple_out", tmp_path_factory.mktemp("cpu"), "cpu", target="torchscript")


def test_load_signature_keeps_the_old_parameters_and_adds_keyword_only_options():
    parameters = inspect.signature(poros_runtime.load).parameters
    assert list(parameters)[:2] == ["path", "device"] and parameters["device"].default is None
    expected = {"strict": False, "executors": None, "cuda_graphs": False, "graph_outputs": "copy",
                "max_graphs": DEFAULT_MAX_GRAPHS}
    for name, default in expected.items():
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert parameters[name].default == default, name


def test_default_load_is_unchanged(cpu_artifact):
    module = poros_runtime.load(cpu_artifact)
    assert module.cuda_graphs is None and "cuda_graphs" not in repr(module)
    x, y = torch.randn(3, 8), torch.randn(3, 6)
    with torch.no_grad():
        expected = torch.jit.load(str(cpu_artifact.with_name("two_in_tuple_out.pt")))(x, y)
    _assert_same(module(x, y), expected)
    # Options of the graph path are validated, and unused, when cuda_graphs is False.
    quiet = poros_runtime.load(cpu_artifact, graph_outputs="reuse", max_graphs=2)
    assert quiet.cuda_graphs is None
    _assert_same(quiet(x, y), expected)


@pytest.mark.parametrize("device", [None, "cpu"])
def test_cuda_graphs_on_a_cpu_artifact_is_a_usage_error(cpu_artifact, device):
    with pytest.raises(UsageError) as raised:
        poros_runtime.load(cpu_artifact, device, cuda_graphs=True)
    message = str(raised.value)
    assert isinstance(raised.value, PorosError) and isinstance(raised.value, ValueError)
    assert str(cpu_artifact) in message
    assert "cuda_graphs=True needs a CUDA device" in message and "'cpu'" in message
    assert "--device cuda" in message


@pytest.mark.parametrize("options, words", [
    ({"cuda_graphs": "no-copy"}, "graph_outputs='reuse'"),
    ({"cuda_graphs": 1}, "True or False"),
    ({"cuda_graphs": True, "graph_outputs": "share"}, "'copy'"),
    ({"cuda_graphs": True, "max_graphs": 0}, ">= 1"),
    ({"cuda_graphs": True, "max_graphs": 2.5}, ">= 1"),
    ({"max_graphs": True}, ">= 1"),
])
def test_invalid_options_are_refused_before_the_file_is_read(tmp_path, options, words):
    missing = tmp_path / "missing.poros"
    with pytest.raises(UsageError) as raised:
        poros_runtime.load(missing, **options)
    assert words in str(raised.value)
    with pytest.raises(ArtifactError):  # the same path with valid options: the file is read
        poros_runtime.load(missing)


# --------------------------------------------------------------------------------------------
# CPU: GraphRunner's policy, its CUDA steps replaced by fakes


class _FakeGlue:
    def __init__(self):
        self.calls = 0

    def __call__(self, *inputs):
        self.calls += 1
        return ("eager", tuple(tuple(t.shape) for t in inputs))


def _fake_runner(max_graphs=2, fail_for=(), graph_outputs="copy"):
    glue = _FakeGlue()
    runner = GraphRunner(glue, torch.device("cuda", 0), graph_outputs=graph_outputs,
                         max_graphs=max_graphs, label="artifact 'm.poros'")
    attempts = []

    def capture(inputs):
        shapes = tuple(tuple(t.shape) for t in inputs)
        attempts.append(shapes)
        if shapes in fail_for:
            raise CaptureFailed("RuntimeError: CUDA error: operation not permitted when stream is capturing")
        return ("graph", shapes)

    runner._capture = capture
    runner._replay = lambda entry, inputs: ("replayed", entry[1])
    return runner, glue, attempts


def _call(runner, *shapes):
    return runner([torch.empty(shape) for shape in shapes])


def _warnings(caplog):
    return [r for r in caplog.records if r.name == "poros_runtime" and r.levelno == logging.WARNING]


def test_runner_keeps_at_most_max_graphs_least_recently_used_first(caplog):
    runner, glue, attempts = _fake_runner(max_graphs=2)
    with caplog.at_level(logging.WARNING, logger="poros_runtime"):
        assert _call(runner, (1, 4)) == ("replayed", ((1, 4),))
        _call(runner, (2, 4))
        _call(runner, (1, 4))            # replay: (1, 4) becomes the most recently used
        _call(runner, (3, 4))            # evicts (2, 4)
        assert runner.status()["captured"] == [[[1, 4]], [[3, 4]]]
        _call(runner, (2, 4))            # captured again, evicts (1, 4)
        _call(runner, (5, 4))            # evicts (3, 4)
    status = runner.status()
    assert status["captured"] == [[[2, 4]], [[5, 4]]]
    assert status["captures"] == 5 and status["evictions"] == 3 and status["replays"] == 6
    assert status["eager_calls"] == 0 and glue.calls == 0 and status["disabled"] is None
    assert attempts == [((1, 4),), ((2, 4),), ((3, 4),), ((2, 4),), ((5, 4),)]
    [warning] = _warnings(caplog)  # the first eviction only
    assert "more than 2 distinct input shapes" in warning.getMessage()
    assert "max_graphs" in warning.getMessage()


def test_a_failed_capture_warns_once_and_stops_capturing(caplog):
    runner, glue, attempts = _fake_runner(max_graphs=4, fail_for={((2, 4),)})
    with caplog.at_level(logging.WARNING, logger="poros_runtime"):
        assert _call(runner, (1, 4)) == ("replayed", ((1, 4),))
        assert _call(runner, (2, 4)) == ("eager", ((2, 4),))      # the failed capture's call
        assert _call(runner, (2, 4)) == ("eager", ((2, 4),))
        assert _call(runner, (3, 4)) == ("eager", ((3, 4),))      # no new capture is tried
        assert _call(runner, (1, 4)) == ("replayed", ((1, 4),))   # the earlier graph replays
    assert attempts == [((1, 4),), ((2, 4),)]
    status = runner.status()
    assert status["captured"] == [[[1, 4]]] and status["captures"] == 1
    assert status["eager_calls"] == 3 and glue.calls == 3 and status["replays"] == 2
    assert status["disabled"] == {
        "shapes": [[2, 4]],
        "reason": "RuntimeError: CUDA error: operation not permitted when stream is capturing",
    }
    [warning] = _warnings(caplog)
    message = warning.getMessage()
    assert "artifact 'm.poros'" in message and "CUDA graph capture failed" in message
    assert "[[2, 4]]" in message and "not permitted when stream is capturing" in message
    assert "captures no more graphs" in message and "1 graph(s) captured before" in message


def test_errors_of_the_model_itself_propagate_and_disable_nothing():
    runner, _, _ = _fake_runner()

    def broken(inputs):
        raise IndexError("index out of range in self")

    runner._capture = broken
    with pytest.raises(IndexError):
        _call(runner, (1, 4))
    assert runner.status()["disabled"] is None and runner.status()["captured"] == []


def test_runner_is_thread_safe():
    runner, _, attempts = _fake_runner(max_graphs=3)
    shapes = [(1, 4), (2, 4), (3, 4), (4, 4)]
    errors = []

    def work(offset):
        try:
            for index in range(200):
                shape = shapes[(index + offset) % len(shapes)]
                assert _call(runner, shape) == ("replayed", (shape,))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    status = runner.status()
    assert status["replays"] == 800 and len(status["captured"]) == 3
    assert status["captures"] == len(attempts) == status["evictions"] + 3


def test_copies_keep_the_output_structure_and_shared_tensors():
    a, b = torch.randn(2, 3), torch.randn(4)
    copied = _copy((a, [b, a], 7), {})
    assert isinstance(copied, tuple) and isinstance(copied[1], list) and copied[2] == 7
    assert copied[0] is copied[1][1] and copied[0] is not a  # one copy per distinct tensor
    assert torch.equal(copied[0], a) and torch.equal(copied[1][0], b)
    assert copied[0].data_ptr() != a.data_ptr()


def test_capture_failure_reasons_are_one_line_with_a_hint():
    wrapped = RuntimeError(
        "The following operation failed in the TorchScript interpreter.\n"
        "Traceback of TorchScript (most recent call last):\n"
        "  File \"code/__torch__.py\", line 12, in forward\n"
        "    v9 = bool(v8)\n"
        "RuntimeError: CUDA error: operation not permitted when stream is capturing\n"
        "CUDA kernel errors might be asynchronously reported at some other API call\n")
    reason = _reason(wrapped)
    assert reason.startswith("RuntimeError: CUDA error: operation not permitted when stream is capturing")
    assert "data-dependent" in reason and "\n" not in reason
    plain = _reason(RuntimeError("CUDA error: operation failed due to a previous error during capture\nmore"))
    assert plain.startswith("RuntimeError: CUDA error: operation failed due to a previous error during capture")
    assert _reason(ValueError("odd")) == "ValueError: odd"


# --------------------------------------------------------------------------------------------
# GPU


@pytest.fixture(scope="module")
def cuda_artifact(tmp_path_factory):
    """``cuda_artifact(name)``: the model built with ``--device cuda``, once per worker."""
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = _build(name, tmp_path_factory.mktemp(name), "cuda")
        return built[name]

    return get


@requires_cuda
@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.xdist_group(name))
    for name in ("resnet", "encoder", "two_in_tuple_out")
])
def test_replayed_graphs_match_plain_calls(cuda_artifact, name):
    artifact = cuda_artifact(name)
    plain = poros_runtime.load(artifact)
    graphed = poros_runtime.load(artifact, cuda_graphs=True)
    calls = MODELS[name][2]
    for seed, shapes in enumerate(calls):
        inputs = _inputs(name, shapes, seed, "cuda")   # new values every call, shapes repeat
        _assert_same(graphed(*inputs), plain(*inputs))
    distinct = {tuple(map(tuple, shapes)) for shapes in calls}
    status = graphed.cuda_graphs
    assert status["disabled"] is None, status
    assert status["captures"] == len(distinct) and status["replays"] == len(calls)
    assert status["eager_calls"] == 0 and status["evictions"] == 0
    assert {tuple(map(tuple, key)) for key in status["captured"]} == distinct
    # The graph of the last shapes is the most recently used.
    assert status["captured"][-1] == [list(shape) for shape in calls[-1]]


@requires_cuda
@pytest.mark.xdist_group("resnet")
def test_strided_inputs_replay_the_same_graph(cuda_artifact):
    artifact = cuda_artifact("resnet")
    plain = poros_runtime.load(artifact)
    graphed = poros_runtime.load(artifact, cuda_graphs=True)
    contiguous = torch.randn(3, 3, 32, 32, device="cuda")
    _assert_same(graphed(contiguous), plain(contiguous))
    channels_last = torch.randn(3, 32, 32, 3, device="cuda").permute(0, 3, 1, 2)
    assert not channels_last.is_contiguous()
    _assert_same(graphed(channels_last), plain(channels_last))
    assert graphed.cuda_graphs["captures"] == 1 and graphed.cuda_graphs["replays"] == 2


@requires_cuda
@pytest.mark.xdist_group("resnet")
def test_copy_mode_outputs_survive_later_calls(cuda_artifact):
    artifact = cuda_artifact("resnet")
    plain = poros_runtime.load(artifact)
    graphed = poros_runtime.load(artifact, cuda_graphs=True)
    x1, x2, x3 = (torch.randn(b, 3, 32, 32, device="cuda") for b in (2, 2, 4))
    kept = graphed(x1)
    kept_values = kept.clone()
    second = graphed(x2)                  # same shapes: replay of the same graph
    graphed(x3)                           # other shapes
    graphed(x2)
    torch.cuda.synchronize()
    assert torch.equal(kept, kept_values), "an output kept from call 1 changed after later calls"
    _assert_same(kept, plain(x1))
    _assert_same(second, plain(x2))
    assert kept.data_ptr() != second.data_ptr()
    assert not torch.allclose(kept, second)


@requires_cuda
@pytest.mark.xdist_group("resnet")
def test_reuse_mode_returns_the_graph_buffers(cuda_artifact):
    artifact = cuda_artifact("resnet")
    plain = poros_runtime.load(artifact)
    graphed = poros_runtime.load(artifact, cuda_graphs=True, graph_outputs="reuse")
    x1, x2 = (torch.randn(2, 3, 32, 32, device="cuda") for _ in range(2))
    first = graphed(x1)
    _assert_same(first, plain(x1))
    second = graphed(x2)
    assert second.data_ptr() == first.data_ptr()      # the same buffer, overwritten
    _assert_same(second, plain(x2))
    _assert_same(first, plain(x2))
    assert graphed.cuda_graphs["graph_outputs"] == "reuse"


@requires_cuda
@pytest.mark.xdist_group("resnet")
def test_graph_cache_is_bounded_least_recently_used_first(cuda_artifact, caplog):
    artifact = cuda_artifact("resnet")
    plain = poros_runtime.load(artifact)
    graphed = poros_runtime.load(artifact, cuda_graphs=True, max_graphs=2)
    batches = [1, 2, 3, 1]
    with caplog.at_level(logging.WARNING, logger="poros_runtime"):
        for batch in batches:
            x = torch.randn(batch, 3, 32, 32, device="cuda")
            _assert_same(graphed(x), plain(x))
        status = graphed.cuda_graphs
        assert status["captured"] == [[[3, 3, 32, 32]], [[1, 3, 32, 32]]]
        assert status["captures"] == 4 and status["evictions"] == 2 and status["replays"] == 4
        # Memory stays bounded while shapes keep rotating through a too-small cache.
        allocated = []
        for _ in range(6):
            for batch in (1, 2, 3, 4):
                x = torch.randn(batch, 3, 32, 32, device="cuda")
                _assert_same(graphed(x), plain(x))
            torch.cuda.synchronize()
            allocated.append(torch.cuda.memory_allocated())
    assert len(graphed.cuda_graphs["captured"]) == 2
    assert allocated[-1] <= allocated[1] * 1.1 + (1 << 20), allocated
    evictions = [r for r in _warnings(caplog) if "distinct input shapes" in r.getMessage()]
    assert len(evictions) == 1
    # One graph: every new shape replaces the only graph of the module's shared memory pool.
    single = poros_runtime.load(artifact, cuda_graphs=True, max_graphs=1)
    for batch in (1, 2, 1, 1, 3):
        x = torch.randn(batch, 3, 32, 32, device="cuda")
        _assert_same(single(x), plain(x))
    status = single.cuda_graphs
    assert status["captured"] == [[[3, 3, 32, 32]]] and status["disabled"] is None
    assert status["captures"] == 4 and status["evictions"] == 3 and status["replays"] == 5


@requires_cuda
@pytest.mark.xdist_group("resnet")
def test_threads_on_their_own_streams_get_their_own_results(cuda_artifact):
    artifact = cuda_artifact("resnet")
    plain = poros_runtime.load(artifact)
    graphed = poros_runtime.load(artifact, cuda_graphs=True)
    work = []
    for thread in range(6):
        batch = 1 + thread % 4
        inputs = [torch.randn(batch, 3, 32, 32, device="cuda") for _ in range(20)]
        work.append((inputs, [plain(x) for x in inputs]))
    torch.cuda.synchronize()
    failures = []

    def run(index):
        inputs, expected = work[index]
        stream = torch.cuda.Stream() if index % 2 else torch.cuda.current_stream()
        try:
            with torch.cuda.stream(stream):
                outputs = [graphed(x) for x in inputs]
            stream.synchronize()
            for output, wanted in zip(outputs, expected):
                _assert_same(output, wanted)
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(f"thread {index}: {error}")

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    status = graphed.cuda_graphs
    assert status["captures"] == 4 and status["replays"] == 120 and status["disabled"] is None


@requires_cuda
@pytest.mark.xdist_group("if_and_loop")
def test_data_dependent_control_flow_falls_back_with_one_warning(cuda_artifact, caplog):
    artifact = cuda_artifact("if_and_loop")
    plain = poros_runtime.load(artifact)
    graphed = poros_runtime.load(artifact, cuda_graphs=True)
    calls = MODELS["if_and_loop"][2]
    with caplog.at_level(logging.WARNING, logger="poros_runtime"):
        for seed, shapes in enumerate(calls):
            inputs = _inputs("if_and_loop", shapes, seed, "cuda")
            _assert_same(graphed(*inputs), plain(*inputs))
    status = graphed.cuda_graphs
    assert status["disabled"] is not None, f"the glue's `if bool(tensor)` was captured: {status}"
    assert status["disabled"]["shapes"] == [[1, 16]]
    assert status["captured"] == [] and status["captures"] == 0
    assert status["eager_calls"] == len(calls) and status["replays"] == 0
    failures = [r for r in _warnings(caplog) if "CUDA graph capture failed" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in _warnings(caplog)]
    assert status["disabled"]["reason"] in failures[0].getMessage()

    # The failed capture left CUDA usable: the capture stream is out of capture mode, plain
    # work runs, and a new capture (torch's own API, default "global" mode) records and replays.
    with torch.cuda.stream(graphed._graphs._stream):
        assert not torch.cuda.is_current_stream_capturing()
    torch.cuda.synchronize()
    source = torch.randn(1024, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        result = source * 2 + 1
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        result = source * 2 + 1
    source.copy_(torch.arange(1024, device="cuda", dtype=torch.float32))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(result, source * 2 + 1)
    # And a module's glue is still captured in this process (a glue-only CUDA artifact).
    capturable = _build("two_in_tuple_out", artifact.parent, "cuda", target="torchscript")
    glue_only = poros_runtime.load(capturable, cuda_graphs=True)
    x, y = torch.randn(4, 8, device="cuda"), torch.randn(4, 6, device="cuda")
    _assert_same(glue_only(x, y), poros_runtime.load(capturable)(x, y))
    _assert_same(glue_only(x, y), poros_runtime.load(capturable)(x, y))
    assert glue_only.cuda_graphs["captures"] == 1 and glue_only.cuda_graphs["replays"] == 2
