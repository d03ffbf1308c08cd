"""Load the two-variant artifacts that tools/gpu_variants.sh built on the GPU machine and check
what the runtime does with them there (issue 3):

* ``poros_runtime.load(path, device="cuda")`` skips every TensorRT-RTX variant with a reason
  and runs the AOTInductor CUDA variant; outputs match eager TorchScript on the CPU;
* ``strict=True`` raises ``RuntimeCompatError`` naming the TensorRT-RTX plan;
* TensorRT-RTX's own ``Runtime.get_engine_validity`` on each plan, asked directly, so the
  requirements the packager recorded (compute capabilities) can be compared with what the
  library says about this GPU.

    python3 tools/gpu_variants_check.py DIR [--json OUT.json]

DIR holds cnn.pt/cnn.poros and encoder.pt/encoder.poros. Exit status 0 only if every check
passes. Also runs on a CPU host (then the reason for skipping is "needs a CUDA GPU").
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch

import poros_runtime
from poros_artifact import read_artifact
from poros_runtime.errors import RuntimeCompatError

INPUTS = {
    "cnn": [lambda: (torch.randn(1, 3, 32, 32),), lambda: (torch.randn(8, 3, 32, 32),)],
    "encoder": [lambda: (torch.randint(0, 50, (1, 2)),), lambda: (torch.randint(0, 50, (4, 12)),)],
}


def plan_validity(payload: bytes) -> dict:
    """What TensorRT-RTX says about running ``payload`` on the current GPU."""
    try:
        import tensorrt_rtx as trt
    except ImportError as error:
        return {"library": None, "error": str(error)}
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    validity, diagnostics = runtime.get_engine_validity(payload)
    flags = [name for name, flag in trt.EngineInvalidityDiagnostics.__members__.items()
             if int(diagnostics) & int(flag)]
    return {"library": trt.__version__, "validity": str(validity), "diagnostics": flags}


def check(directory: Path, name: str, device: str) -> dict:
    path = directory / f"{name}.poros"
    reference = torch.jit.load(str(directory / f"{name}.pt")).eval()
    artifact = read_artifact(path)
    result: dict = {"artifact": str(path), "variants": [], "runs": []}
    for segment in artifact.manifest["segments"]:
        for variant in segment["variants"]:
            entry = {"segment": segment["id"], "backend": variant["backend"],
                     "requirements": variant.get("requirements")}
            if variant["backend"] == "tensorrt-rtx":
                entry["tensorrt_rtx_says"] = plan_validity(artifact.read_member(variant["member"]))
            result["variants"].append(entry)

    module = poros_runtime.load(path, device=device)
    result["plan"] = module.plan
    ok = bool(module.plan)
    for step in module.plan:
        ok &= step["backend"] == "inductor"
        ok &= [skip["backend"] for skip in step["skipped"]] == ["tensorrt-rtx"]
    for make in INPUTS[name]:
        torch.manual_seed(0)
        inputs = make()
        with torch.no_grad():
            expected = reference(*inputs)
        got = module(*(tensor.to(device) for tensor in inputs))
        error = (got.float().cpu() - expected.float()).abs().max().item()
        scale = expected.float().abs().max().item()
        passed = error <= 1e-4 * max(scale, 1.0)
        ok &= passed
        result["runs"].append({"shapes": [list(t.shape) for t in inputs], "device": str(got.device),
                               "max_abs_error": error, "max_abs_reference": scale, "passed": passed})
    try:
        poros_runtime.load(path, device=device, strict=True)
        result["strict"] = "loaded (unexpected)"
        ok = False
    except RuntimeCompatError as error:
        result["strict"] = f"RuntimeCompatError: {error}"
    result["passed"] = ok
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s: %(message)s")
    results = {"device": args.device,
               "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
               "compute_capability": ".".join(map(str, torch.cuda.get_device_capability()))
               if torch.cuda.is_available() else None,
               "torch": torch.__version__,
               "models": {name: check(args.directory, name, args.device) for name in INPUTS}}
    for name, result in results["models"].items():
        print(f"== {name}: {'PASSED' if result['passed'] else 'FAILED'}")
        for variant in result["variants"]:
            said = variant.get("tensorrt_rtx_says")
            print(f"  {variant['segment']} {variant['backend']}"
                  + (f" -- TensorRT-RTX on this GPU: {said}" if said else ""))
        for step in result["plan"]:
            print(f"  plan {step['segment']}: {step['backend']} ({step['reason']})")
        for run in result["runs"]:
            print(f"  run {run['shapes']} on {run['device']}: max abs error {run['max_abs_error']:.3g}")
        print(f"  strict: {result['strict']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0 if all(result["passed"] for result in results["models"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
