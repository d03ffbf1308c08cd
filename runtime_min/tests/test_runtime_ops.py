"""poros::execute_engine and the registries, in process (no compiler involved)."""

# No `from __future__ import annotations`: TorchScript reads ScaledGlue's annotations as types.

import gc
import importlib
import io

import pytest
import torch

import poros_runtime.ops
from poros_runtime import EngineRegistry, ExecutorRegistry
from poros_runtime.errors import InternalError, UsageError

# torch 2.13 deprecates torch.jit.script/save/load; the glue format depends on them (reported).
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning")


class ScaledGlue(torch.nn.Module):
    poros_instance: str

    def __init__(self) -> None:
        super().__init__()
        self.poros_instance = ""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = torch.ops.poros.execute_engine([x, x + 1], self.poros_instance + "/seg0")
        return outputs[0] - outputs[1]


def test_scripted_glue_saves_loads_and_calls_a_registered_engine() -> None:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(ScaledGlue()), buffer)
    glue = torch.jit.load(io.BytesIO(buffer.getvalue()), map_location="cpu")
    # What poros_runtime.load does: set the TorchScript attribute on the C++ module.
    glue._c.setattr("poros_instance", "ops-test")
    assert glue.poros_instance == "ops-test"
    poros_runtime.ops.ENGINES.register("ops-test/seg0", lambda xs: [xs[0] * 3, xs[1] * 2])
    try:
        x = torch.arange(4.0)
        torch.testing.assert_close(glue(x), x * 3 - (x + 1) * 2, rtol=0, atol=0)
    finally:
        poros_runtime.ops.ENGINES.unregister_instance("ops-test")
    assert "ops-test/seg0" not in poros_runtime.ops.ENGINES


def test_operator_registration_survives_repeated_import_and_reload() -> None:
    engines = poros_runtime.ops.ENGINES
    for _ in range(2):
        importlib.reload(poros_runtime.ops)
        importlib.import_module("poros_runtime.ops")
    assert poros_runtime.ops.ENGINES is engines
    assert poros_runtime.ops.is_registered()
    engines.register("reload-test/seg0", lambda xs: [xs[0] + 1])
    try:
        [output] = torch.ops.poros.execute_engine([torch.zeros(2)], "reload-test/seg0")
        assert output.tolist() == [1.0, 1.0]
    finally:
        engines.unregister_instance("reload-test")


def test_operator_schema() -> None:
    schema = torch.ops.poros.execute_engine.default._schema
    assert str(schema) == "poros::execute_engine(Tensor[] inputs, str engine) -> Tensor[]"


def test_unknown_engine_names_the_key() -> None:
    with pytest.raises(InternalError, match="'nobody/seg0'"):
        torch.ops.poros.execute_engine([torch.zeros(1)], "nobody/seg0")


def test_registry_refuses_duplicates_and_bad_keys_all_or_nothing() -> None:
    registry = EngineRegistry()
    registry.register("a/seg0", lambda xs: xs)
    with pytest.raises(UsageError, match="already registered"):
        registry.register("a/seg0", lambda xs: xs)
    with pytest.raises(UsageError, match="already registered"):
        registry.register_instance("a", {"seg1": lambda xs: xs, "seg0": lambda xs: xs})
    assert "a/seg1" not in registry, "a refused registration must register nothing"
    for key in ("no-separator", "a b/seg0", "a/", "/seg0"):
        with pytest.raises(UsageError):
            registry.register(key, lambda xs: xs)
    with pytest.raises(UsageError, match="not callable"):
        registry.register("b/seg0", "not an engine")
    assert len(registry) == 1


def test_registry_unregisters_when_the_owner_is_collected() -> None:
    class Owner:
        pass

    registry = EngineRegistry()
    owner = Owner()
    registry.register_instance("owned", {"seg0": lambda xs: xs, "seg1": lambda xs: xs}, owner)
    registry.register("other/seg0", lambda xs: xs)
    assert registry.instances() == ["other", "owned"]
    del owner
    gc.collect()
    assert registry.instances() == ["other"]


def test_executor_registry_is_explicit_and_lazy() -> None:
    created = []
    registry = ExecutorRegistry()
    registry.register("fake", lambda: created.append(1) or object())
    assert created == [], "executors are created on first use"
    assert registry.get("fake") is registry.get("fake")
    assert created == [1]
    assert registry.get("tensorrt") is None
    with pytest.raises(UsageError, match="already registered"):
        registry.register("fake", object)
    with pytest.raises(UsageError, match="invalid backend name"):
        registry.register("Bad Name", object)
