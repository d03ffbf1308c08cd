"""Load a .poros archive with the runtime only, run it, and compare with the original model.

    python examples/run_artifact.py out/resnet_small.poros --reference out/resnet_small.pt

Only ``poros_runtime`` is needed to run the archive; ``--reference`` loads the original TorchScript
model (plain torch) to report the error against eager execution.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import poros_runtime


def make_inputs(signature: dict, batch: str) -> list[torch.Tensor]:
    tensors = []
    for entry in signature["inputs"]:
        shape = [dim[batch] if isinstance(dim, dict) else dim for dim in entry["dims"]]
        dtype = getattr(torch, entry["dtype"])
        if dtype.is_floating_point:
            tensors.append(torch.randn(shape, dtype=dtype))
        else:
            tensors.append(torch.randint(0, 2, shape, dtype=dtype))
    return tensors


def median_ms(function, inputs, repeats: int) -> float:
    with torch.no_grad():
        for _ in range(5):
            function(*inputs)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            function(*inputs)
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact")
    parser.add_argument("--reference", help="the original TorchScript model, to compare against")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    module = poros_runtime.load(args.artifact)
    print(f"loaded {args.artifact}: device {module.device}, plan {module.plan}")
    reference = torch.jit.load(args.reference).eval() if args.reference else None
    seen_shapes = set()
    for batch in ("min", "opt", "max"):
        inputs = make_inputs(module.signature, batch)
        if tuple(tuple(t.shape) for t in inputs) in seen_shapes:
            continue
        seen_shapes.add(tuple(tuple(t.shape) for t in inputs))
        shapes = [tuple(t.shape) for t in inputs]
        with torch.no_grad():
            output = module(*inputs)
        line = f"inputs {shapes}: output {tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__}"
        if reference is not None:
            with torch.no_grad():
                expected = reference(*inputs)
            error = (output - expected).abs().max().item()
            line += f", max abs error vs eager {error:.2e}"
            line += f", latency {median_ms(module, inputs, args.repeats):.2f} ms (eager TorchScript {median_ms(reference, inputs, args.repeats):.2f} ms; median of {args.repeats}, this CPU)"
        print(line)


if __name__ == "__main__":
    main()
