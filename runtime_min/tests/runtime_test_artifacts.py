"""Build real .poros artifacts for the runtime tests, without the packager.

A small model goes through torch.export and AOTInductor (CPU) once per session; hand-written
TorchScript glue calls the engine through ``torch.ops.poros.execute_engine``; ``write_artifact``
packs both with a manifest as docs/internals.md specifies.  The compiler runs here, in the test
process; the runtime side is exercised in a child that cannot import it (tests.support).
"""

# No `from __future__ import annotations`: TorchScript reads the glue classes' annotations as
# real types, not strings.
import io
import sys
from pathlib import Path
from typing import Any

import torch

from poros_artifact import write_artifact

import poros_runtime.ops  # noqa: F401  (registers poros::execute_engine for scripting)

HOST_TORCH = ".".join(torch.__version__.split(".")[:2])
BATCH = {"symbol": "s0", "min": 1, "opt": 4, "max": 8}
FEATURES_IN = 16
FEATURES_OUT = 8


class TinyMlp(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(FEATURES_IN, 32)
        self.output = torch.nn.Linear(32, FEATURES_OUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(torch.relu(self.hidden(x)))


class TupleGlue(torch.nn.Module):
    """seg0 = the MLP engine; tanh and the row sum stay in the glue (fallback ops)."""

    poros_instance: str

    def __init__(self) -> None:
        super().__init__()
        self.poros_instance = ""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = torch.ops.poros.execute_engine([x], self.poros_instance + "/seg0")
        return torch.tanh(outputs[0]), outputs[0].sum(1)


class TwoInputGlue(torch.nn.Module):
    """Two inputs sharing the batch symbol; returns a single tensor."""

    poros_instance: str

    def __init__(self) -> None:
        super().__init__()
        self.poros_instance = ""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        outputs = torch.ops.poros.execute_engine([x + y], self.poros_instance + "/seg0")
        return outputs[0] * 2.0


class GlueWithoutInstance(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.poros.execute_engine([x], "fixed/seg0")[0]


def tuple_reference(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    y = model(x)
    return torch.tanh(y), y.sum(1)


def two_input_reference(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return model(x + y) * 2.0


def scripted_bytes(glue: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(glue), buffer)
    return buffer.getvalue()


def inductor_variant(payload: bytes, *, device_type: str = "cpu", torch_version: str = HOST_TORCH):
    return {
        "backend": "inductor",
        "member": "engines/seg0.inductor.pt2",
        "payload": payload,
        "requirements": {
            "device_type": device_type,
            "torch": torch_version,
            "cuda": None,
            "compute_capability": None,
        },
    }


def write_test_artifact(
    path: Path,
    *,
    glue: bytes,
    variants: list[dict[str, Any]],
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    output_structure: Any,
    device: str = "cpu",
    compress: bool = True,
) -> Path:
    """One segment (seg0) whose variants carry their payload under ``"payload"``."""
    members = {"glue.pt": glue}
    recorded = []
    for variant in variants:
        members[variant["member"]] = variant["payload"]
        recorded.append({key: value for key, value in variant.items() if key != "payload"})
    manifest = {
        "format_version": "1.0",
        "producer": {"name": "runtime-tests", "version": "0.1.0", "torch": torch.__version__,
                     "cuda": None, "python": sys.version.split()[0]},
        "model": {"name": path.stem, "source_format": "torchscript", "source_sha256": "0" * 64},
        "device": device,
        "signature": {"inputs": inputs, "outputs": outputs, "output_structure": output_structure},
        "glue": {"member": "glue.pt", "fallback_nodes": []},
        "segments": [{"id": "seg0", "node_count": 3, "ops": {"aten::linear": 2},
                      "variants": recorded}],
    }
    write_artifact(path, manifest, members, compress=compress)
    return path


TUPLE_SIGNATURE = {
    "inputs": [{"name": "x", "dtype": "float32", "dims": [BATCH, FEATURES_IN]}],
    "outputs": [{"name": "output0", "dtype": "float32", "dims": [{"symbol": "s0"}, FEATURES_OUT]},
                {"name": "output1", "dtype": "float32", "dims": [{"symbol": "s0"}]}],
    "output_structure": ["tensor", "tensor"],
}
TWO_INPUT_SIGNATURE = {
    "inputs": [{"name": "x", "dtype": "float32", "dims": [BATCH, FEATURES_IN]},
               {"name": "y", "dtype": "float32", "dims": [BATCH, FEATURES_IN]}],
    "outputs": [{"name": "output0", "dtype": "float32", "dims": [{"symbol": "s0"}, FEATURES_OUT]}],
    "output_structure": "tensor",
}


