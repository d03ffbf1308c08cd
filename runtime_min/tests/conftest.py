"""Session fixtures: one AOTInductor compile shared by every runtime test, and a factory of
artifacts built from it (see runtime_test_artifacts)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

# tests.support (the import-blocking child runner) lives at the repository root.
_REPOSITORY = Path(__file__).resolve().parents[2]
if str(_REPOSITORY) not in sys.path:
    sys.path.insert(0, str(_REPOSITORY))

from runtime_test_artifacts import (  # noqa: E402
    BATCH,
    FEATURES_IN,
    TUPLE_SIGNATURE,
    TWO_INPUT_SIGNATURE,
    TinyMlp,
    TupleGlue,
    TwoInputGlue,
    inductor_variant,
    scripted_bytes,
    write_test_artifact,
)


@pytest.fixture(scope="session")
def mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return TinyMlp().eval()


@pytest.fixture(scope="session")
def aoti_package(mlp: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The MLP compiled once by AOTInductor for CPU, batch dynamic in [1, 8] (~25 s)."""
    import torch._inductor.config
    from torch._inductor import aoti_compile_and_package

    # The packager's link fix: without it a package built where g++ links libstdc++
    # statically (the GPU machine) crashes when loaded (docs/aoti-cuda-load-crash.md).
    from packager.backends._aoti_link import link_fix_configs

    batch = torch.export.Dim("s0", min=BATCH["min"], max=BATCH["max"])
    example = torch.randn(BATCH["opt"], FEATURES_IN)
    exported = torch.export.export(mlp, (example,), dynamic_shapes={"x": {0: batch}})
    package = tmp_path_factory.mktemp("aoti") / "mlp.pt2"
    aoti_compile_and_package(exported, package_path=str(package),
                             inductor_configs=link_fix_configs(torch._inductor.config.cpp.cxx))
    return package.read_bytes()


@pytest.fixture(scope="session")
def artifacts(
    aoti_package: bytes, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Path]:
    """``artifacts(name, **overrides)`` -> path of a test artifact built from the shared engine.

    Kinds: ``"tuple"`` (one input, tuple output), ``"two_inputs"`` (shared batch symbol).
    """
    folder = tmp_path_factory.mktemp("artifacts")
    glues = {
        "tuple": (TupleGlue, TUPLE_SIGNATURE),
        "two_inputs": (TwoInputGlue, TWO_INPUT_SIGNATURE),
    }

    def build(name: str, kind: str = "tuple", **overrides: Any) -> Path:
        glue_class, signature = glues[kind]
        arguments: dict[str, Any] = {
            "glue": scripted_bytes(glue_class()),
            "variants": [inductor_variant(aoti_package)],
            "inputs": signature["inputs"],
            "outputs": signature["outputs"],
            "output_structure": signature["output_structure"],
        }
        arguments.update(overrides)
        return write_test_artifact(folder / f"{name}.poros", **arguments)

    return build
