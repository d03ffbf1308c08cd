"""Run a .poros artifact with poros_runtime alone, in an import-blocked child process."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.support.isolated import run_isolated_json

__all__ = ["run_in_runtime"]


def run_in_runtime(artifact: Path, batches: list[list[torch.Tensor]], tmp_path: Path, device: str = "cpu"):
    """Run ``artifact`` on each input list on ``device``; returns (outputs on the CPU, the child's
    report with the load plan)."""
    inputs_file, outputs_file = tmp_path / "inputs.pt", tmp_path / "outputs.pt"
    torch.save(batches, inputs_file)
    result = run_isolated_json(f"""
        import torch, poros_runtime
        module = poros_runtime.load({str(artifact)!r}, device={device!r})
        batches = torch.load({str(inputs_file)!r})
        with torch.no_grad():
            outputs = [module(*[t.to({device!r}) for t in inputs]) for inputs in batches]
        def cpu(value):
            return tuple(cpu(v) for v in value) if isinstance(value, tuple) else value.cpu()
        torch.save([cpu(o) for o in outputs], {str(outputs_file)!r})
        emit({{"plan": [dict(p) for p in module.plan]}})
    """)
    return torch.load(outputs_file), result
