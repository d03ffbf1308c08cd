"""poros_runtime.load on real artifacts (AOTInductor engine + TorchScript glue), run in a child
process that cannot import the packager, onnx, triton, tensorrt or torch._inductor.

Numerical tolerance: fp32 end to end.  AOTInductor's CPU kernels accumulate the matmuls in a
different order than eager (vectorized loops vs MKL), which moves results by a few ulps
(~1e-6 relative here); 1e-4 relative to max(1, |reference|) is the project's fp32 bound
(STYLE.md §9) and still catches any wrong weight, wrong op or misrouted engine, which shift
outputs by orders of magnitude more.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from runtime_test_artifacts import (
    HOST_TORCH,
    GlueWithoutInstance,
    TupleGlue,
    inductor_variant,
    scripted_bytes,
    tuple_reference,
    two_input_reference,
)

from tests.support.isolated import run_isolated_json

RELATIVE_TOLERANCE = 1e-4

# torch 2.13 deprecates torch.jit.script/save/load; the glue format depends on them (reported).
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning")

# Runs in the child before each snippet: report errors as data so the parent can assert on them.
_CHILD_HELPERS = """
import gc
import sys
import torch
import poros_runtime
from poros_runtime import errors

def outcome(call):
    try:
        call()
    except errors.PorosError as error:
        return {"error": type(error).__name__, "message": str(error)}
    return {"error": None, "message": ""}

def relative_error(got, expected):
    if isinstance(expected, torch.Tensor):
        got, expected = (got,), (expected,)
    assert type(got) is tuple and len(got) == len(expected), type(got)
    return max(
        (g - e).abs().max().item() / max(1.0, e.abs().max().item())
        for g, e in zip(got, expected)
    )
"""


def run_child(code: str) -> Any:
    return run_isolated_json(_CHILD_HELPERS + code)


@pytest.fixture(scope="module")
def reference_data(mlp: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Inputs and eager outputs, saved for the child (which has no model code)."""
    torch.manual_seed(1)
    data: dict[str, Any] = {"tuple": {}, "two_inputs": {}, "scaled": {}}
    with torch.no_grad():
        for batch in (1, 4, 8):
            x = torch.randn(batch, 16)
            y = torch.randn(batch, 16)
            data["tuple"][batch] = (x, tuple_reference(mlp, x))
            data["two_inputs"][batch] = ((x, y), two_input_reference(mlp, x, y))
            data["scaled"][batch] = (x, (torch.tanh(3.0 * x), (3.0 * x).sum(1)))
    path = tmp_path_factory.mktemp("reference") / "reference.pt"
    torch.save(data, path)
    return path


def test_loaded_artifact_matches_eager_without_any_compiler(
    artifacts: Callable[..., Path], reference_data: Path
) -> None:
    path = artifacts("matches_eager")
    result = run_child(f"""
try:
    import torch._inductor
    blocker = "not blocked"
except ImportError as error:
    blocker = str(error)
model = poros_runtime.load({str(path)!r})
data = torch.load({str(reference_data)!r})
errors_by_batch = {{}}
for batch, (x, expected) in data["tuple"].items():
    errors_by_batch[batch] = relative_error(model(x), expected)

# Engines run in AOTInductor's single-threaded mode behind a lock: concurrent callers are safe.
from concurrent.futures import ThreadPoolExecutor
def call_repeatedly(batch):
    x, expected = data["tuple"][batch]
    return max(relative_error(model(x), expected) for _ in range(20))
with ThreadPoolExecutor(4) as pool:
    threaded_error = max(pool.map(call_repeatedly, [1, 4, 8, 4]))
emit({{
    "threaded_error": threaded_error,
    "errors": errors_by_batch,
    "plan": model.plan,
    "device": str(model.device),
    "inputs": model.signature["inputs"],
    "is_nn_module": isinstance(model, torch.nn.Module),
    "blocker": blocker,
}})
""")
    assert "blocked in runtime-only test" in result["blocker"]
    assert set(result["errors"]) == {"1", "4", "8"}, "batch 1 and 8 are the dynamic range's ends"
    for batch, error in result["errors"].items():
        assert error <= RELATIVE_TOLERANCE, f"batch {batch}: relative error {error}"
    assert result["threaded_error"] <= RELATIVE_TOLERANCE
    assert result["device"] == "cpu"
    assert result["inputs"][0]["name"] == "x"
    assert [(step["segment"], step["backend"]) for step in result["plan"]] == [("seg0", "inductor")]
    assert result["is_nn_module"] is False


@pytest.fixture(scope="module")
def input_mismatches(artifacts: Callable[..., Path]) -> dict[str, dict[str, str]]:
    one_input = artifacts("mismatch_one_input")
    two_inputs = artifacts("mismatch_two_inputs", kind="two_inputs")
    return run_child(f"""
model = poros_runtime.load({str(one_input)!r})
pair = poros_runtime.load({str(two_inputs)!r})
x = torch.randn(2, 16)
cases = {{
    "batch_above_range": lambda: model(torch.randn(9, 16)),
    "batch_below_range": lambda: model(torch.randn(0, 16)),
    "wrong_dtype": lambda: model(x.double()),
    "wrong_rank": lambda: model(x[None]),
    "static_dim": lambda: model(torch.randn(2, 15)),
    "too_many_inputs": lambda: model(x, x),
    "no_inputs": lambda: model(),
    "not_a_tensor": lambda: model([1.0] * 16),
    "symbol_disagrees": lambda: pair(torch.randn(2, 16), torch.randn(3, 16)),
    "within_range": lambda: (model(torch.randn(8, 16)), pair(x, x)),
}}
emit({{name: outcome(call) for name, call in cases.items()}})
""")


@pytest.mark.parametrize(
    ("case", "fragments"),
    [
        ("batch_above_range", ["'x'", "dim 0 (s0)", "[1, 8]", "got 9"]),
        ("batch_below_range", ["'x'", "[1, 8]", "got 0"]),
        ("wrong_dtype", ["'x'", "expected dtype float32", "got float64", ".to(torch.float32)"]),
        ("wrong_rank", ["'x'", "expected rank 2", "got rank 3"]),
        ("static_dim", ["'x'", "dim 1 must be 16", "got 15"]),
        ("too_many_inputs", ["1 input(s) (x)", "got 2"]),
        ("no_inputs", ["1 input(s) (x)", "got 0"]),
        ("not_a_tensor", ["'x'", "expected a torch.Tensor", "got list"]),
        ("symbol_disagrees", ["'y'", "symbol s0", "input 'x'", "is 2"]),
    ],
)
def test_inputs_that_do_not_match_the_signature_are_refused(
    input_mismatches: dict[str, dict[str, str]], case: str, fragments: list[str]
) -> None:
    outcome = input_mismatches[case]
    assert outcome["error"] == "InputMismatchError", outcome
    for fragment in fragments:
        assert fragment in outcome["message"], (fragment, outcome["message"])


def test_inputs_within_the_signature_are_accepted(
    input_mismatches: dict[str, dict[str, str]],
) -> None:
    assert input_mismatches["within_range"]["error"] is None, input_mismatches["within_range"]


@pytest.fixture(scope="module")
def load_refusals(artifacts: Callable[..., Path], aoti_package: bytes) -> dict[str, dict]:
    old_torch = artifacts(
        "old_torch", variants=[inductor_variant(aoti_package, torch_version="1.0")]
    )
    cuda = artifacts(
        "cuda", device="cuda", variants=[inductor_variant(aoti_package, device_type="cuda")]
    )
    cpu = artifacts("cpu")
    unknown_only = artifacts(
        "unknown_only",
        variants=[{"backend": "example_npu", "member": "engines/seg0.example_npu.bin",
                   "payload": b"not an engine", "requirements": {"device_type": "cpu"}}],
    )
    tensorrt_only = artifacts(
        "tensorrt_only",
        variants=[{"backend": "tensorrt", "member": "engines/seg0.tensorrt.plan",
                   "payload": b"not a plan",
                   "requirements": {"device_type": "cuda", "library": "tensorrt"}}],
    )
    no_instance = artifacts("no_instance", glue=scripted_bytes(GlueWithoutInstance()))
    return run_child(f"""
emit({{
    "old_torch": outcome(lambda: poros_runtime.load({str(old_torch)!r})),
    "cuda_on_cpu_host": outcome(lambda: poros_runtime.load({str(cuda)!r})),
    "device_argument_mismatch": outcome(lambda: poros_runtime.load({str(cpu)!r}, device="cuda")),
    "missing_path": outcome(lambda: poros_runtime.load({str(cpu.parent / "absent.poros")!r})),
    "unknown_backend": outcome(lambda: poros_runtime.load({str(unknown_only)!r})),
    "tensorrt_not_installed": outcome(lambda: poros_runtime.load({str(tensorrt_only)!r})),
    "glue_without_instance": outcome(lambda: poros_runtime.load({str(no_instance)!r})),
    "nothing_registered": len(poros_runtime.ops.ENGINES),
}})
""")


@pytest.mark.parametrize(
    ("case", "error", "fragments"),
    [
        ("old_torch", "RuntimeCompatError",
         ["seg0", "built with torch 1.0", f"({HOST_TORCH})", f"rebuild the artifact with torch "
          f"{HOST_TORCH}", "install torch 1.0"]),
        ("cuda_on_cpu_host", "DeviceUnavailableError",
         ["needs CUDA", "GPU host", "--device cpu"]),
        ("device_argument_mismatch", "RuntimeCompatError", ["built for device 'cpu'", "'cuda'"]),
        ("missing_path", "ArtifactError", ["absent.poros", "does not exist"]),
        ("unknown_backend", "RuntimeCompatError", ["seg0", "no executor for backend 'example_npu'"]),
        ("tensorrt_not_installed", "RuntimeCompatError",
         ["seg0", "tensorrt is not installed: pip install poros-runtime[tensorrt]"]),
        ("glue_without_instance", "ArtifactError", ["poros_instance"]),
    ],
)
def test_load_refuses_what_this_host_cannot_run(
    load_refusals: dict[str, Any], case: str, error: str, fragments: list[str]
) -> None:
    outcome = load_refusals[case]
    assert outcome["error"] == error, outcome
    for fragment in fragments:
        assert fragment in outcome["message"], (fragment, outcome["message"])


def test_refused_loads_leave_no_engine_registered(load_refusals: dict[str, Any]) -> None:
    assert load_refusals["nothing_registered"] == 0


def _flip_byte_of(path: Path, member_bytes: bytes) -> None:
    data = bytearray(path.read_bytes())
    start = data.find(member_bytes)
    assert start >= 0 and data.find(member_bytes, start + 1) < 0, "member must be stored once"
    data[start + len(member_bytes) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_corrupted_member_is_refused_before_any_deserialization(
    artifacts: Callable[..., Path], aoti_package: bytes
) -> None:
    glue = scripted_bytes(TupleGlue())
    corrupted_glue = artifacts("corrupted_glue", glue=glue, compress=False)
    corrupted_engine = artifacts("corrupted_engine", glue=glue, compress=False)
    _flip_byte_of(corrupted_glue, glue)
    _flip_byte_of(corrupted_engine, aoti_package)
    result = run_child(f"""
deserialized = []
real_jit_load = torch.jit.load
real_loader = torch._C._aoti.AOTIModelPackageLoader

def recording_jit_load(*args, **kwargs):
    deserialized.append("torch.jit.load")
    return real_jit_load(*args, **kwargs)

def recording_loader(*args, **kwargs):
    deserialized.append("AOTIModelPackageLoader")
    return real_loader(*args, **kwargs)

torch.jit.load = recording_jit_load
torch._C._aoti.AOTIModelPackageLoader = recording_loader
emit({{
    "glue": outcome(lambda: poros_runtime.load({str(corrupted_glue)!r})),
    "engine": outcome(lambda: poros_runtime.load({str(corrupted_engine)!r})),
    "deserialized": deserialized,
}})
""")
    assert result["glue"]["error"] == "IntegrityError", result["glue"]
    assert "'glue.pt'" in result["glue"]["message"]
    assert result["engine"]["error"] == "IntegrityError", result["engine"]
    assert "'engines/seg0.inductor.pt2'" in result["engine"]["message"]
    assert result["deserialized"] == [], "nothing may be deserialized from a corrupted artifact"


def test_artifacts_loaded_together_keep_their_own_engines(
    artifacts: Callable[..., Path], aoti_package: bytes, reference_data: Path
) -> None:
    """Three artifacts whose engines are all 'seg0' (two inductor MLPs of different glue, and
    one Python 'scale' engine), plus the same file loaded twice: each keeps routing to its own
    engines, and dropping one unregisters its engines only."""
    first = artifacts("together_first")
    second = artifacts("together_second", kind="two_inputs")
    scaled = artifacts(
        "together_scaled",
        variants=[{"backend": "scale", "member": "engines/seg0.scale.txt", "payload": b"3.0",
                   "requirements": {"device_type": "cpu"}}],
    )
    preferring_tensorrt = artifacts(
        "together_tensorrt_first",
        variants=[{"backend": "tensorrt", "member": "engines/seg0.tensorrt.plan",
                   "payload": b"not a plan",
                   "requirements": {"device_type": "cuda", "library": "tensorrt"}},
                  inductor_variant(aoti_package)],
    )
    result = run_child(f"""
from poros_runtime.executors import DEFAULT_EXECUTORS, ExecutorRegistry

class ScaleExecutor:
    backend = "scale"

    def check(self, requirements, device, *, where):
        return None

    def load(self, payload, requirements, device, *, where):
        factor = float(payload.decode())
        return lambda inputs: [inputs[0] * factor]

executors = ExecutorRegistry()
executors.register("inductor", lambda: DEFAULT_EXECUTORS.get("inductor"))
executors.register("scale", ScaleExecutor)

data = torch.load({str(reference_data)!r})
models = {{
    "first": poros_runtime.load({str(first)!r}),
    "first_again": poros_runtime.load({str(first)!r}),
    "second": poros_runtime.load({str(second)!r}),
    "scaled": poros_runtime.load({str(scaled)!r}, executors=executors),
    "tensorrt_first": poros_runtime.load({str(preferring_tensorrt)!r}),
}}

def errors_now(names):
    result = {{}}
    for name in names:
        model = models[name]
        if name == "second":
            (x, y), expected = data["two_inputs"][4]
            result[name] = relative_error(model(x, y), expected)
        else:
            x, expected = data["scaled" if name == "scaled" else "tuple"][4]
            result[name] = relative_error(model(x), expected)
    return result

instances = {{name: model.instance for name, model in models.items()}}
glue_instances = {{name: model._glue.poros_instance for name, model in models.items()}}
registered_before = poros_runtime.ops.ENGINES.instances()
errors_before = errors_now(models)
del models["first"]
gc.collect()
registered_after_drop = poros_runtime.ops.ENGINES.instances()
errors_after_drop = errors_now(models)
tensorrt_first_plan = models["tensorrt_first"].plan
models.clear()
gc.collect()
emit({{
    "instances": instances,
    "glue_instances": glue_instances,
    "registered_before": registered_before,
    "registered_after_drop": registered_after_drop,
    "errors_before": errors_before,
    "errors_after_drop": errors_after_drop,
    "tensorrt_first_plan": tensorrt_first_plan,
    "registered_at_end": len(poros_runtime.ops.ENGINES),
}})
""")
    instances = result["instances"]
    assert len(set(instances.values())) == 5
    assert result["glue_instances"] == instances
    assert result["registered_before"] == sorted(instances.values())
    assert result["registered_after_drop"] == sorted(
        instance for name, instance in instances.items() if name != "first"
    )
    for phase in ("errors_before", "errors_after_drop"):
        for name, error in result[phase].items():
            assert error <= RELATIVE_TOLERANCE, (phase, name, error)
    assert set(result["errors_after_drop"]) == {"first_again", "second", "scaled", "tensorrt_first"}
    [step] = result["tensorrt_first_plan"]
    assert step["backend"] == "inductor"
    assert "tensorrt skipped" in step["reason"] and "not installed" in step["reason"]
    assert step["skipped"] == [
        {"backend": "tensorrt",
         "reason": "tensorrt is not installed: pip install poros-runtime[tensorrt]"}
    ]
    assert result["registered_at_end"] == 0


def test_import_is_light_and_errors_are_the_shared_hierarchy() -> None:
    result = run_isolated_json("""
import sys
import poros_runtime
import poros_artifact.errors
light = "torch" not in sys.modules
shared = poros_runtime.errors.IntegrityError is poros_artifact.errors.IntegrityError
emit({
    "light": light,
    "shared": shared,
    "exported": sorted(set(poros_runtime.__all__) - set(poros_runtime.errors.__all__)),
    "load_resolves": callable(poros_runtime.load),
})
""")
    assert result == {
        "light": True,
        "shared": True,
        "exported": ["EngineRegistry", "ExecutorRegistry", "PorosModule", "load"],
        "load_resolves": True,
    }
