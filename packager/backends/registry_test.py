"""BackendRegistry: explicit, validated names; the default instance holds the built-ins."""

from __future__ import annotations

import pytest

from packager.backends import BackendRegistry, InductorBackend, default_registry, get_backend
from packager.errors import UsageError


class FakeBackend:
    def __init__(self, name: str) -> None:
        self.name = name

    def capability(self, node):
        return None

    def compile(self, segment, *, device, precision, workdir):
        raise NotImplementedError


def test_registers_and_lists_in_order():
    registry = BackendRegistry([FakeBackend("first"), FakeBackend("second")])
    assert registry.names() == ("first", "second")
    assert "first" in registry and len(registry) == 2
    assert [backend.name for backend in registry] == ["first", "second"]


def test_duplicate_name_is_an_error():
    registry = BackendRegistry([FakeBackend("inductor")])
    with pytest.raises(UsageError, match="'inductor' is already registered"):
        registry.register(FakeBackend("inductor"))


def test_unknown_name_lists_the_known_ones():
    registry = BackendRegistry([FakeBackend("inductor"), FakeBackend("tensorrt")])
    with pytest.raises(UsageError, match="unknown backend 'tensorrt_rtx'; known backends: inductor, tensorrt"):
        registry.get("tensorrt_rtx")


@pytest.mark.parametrize("candidate", [object(), FakeBackend("Bad Name"), FakeBackend("")])
def test_rejects_objects_that_are_not_backends_or_badly_named(candidate):
    with pytest.raises(UsageError):
        BackendRegistry().register(candidate)


def test_default_registry_has_the_inductor_backend():
    assert "inductor" in default_registry
    assert isinstance(get_backend("inductor"), InductorBackend)
    with pytest.raises(UsageError, match="known backends: inductor"):
        get_backend("nope")
