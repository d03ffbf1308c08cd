"""The AOTInductor backend: segment -> FX -> ``torch.export`` -> AOTInductor ``.pt2`` package.

The payload is the ``.pt2`` file's bytes; a host loads it with libtorch alone
(``torch._inductor.aoti_load_package`` in Python), no compiler needed.

Dynamic shapes: example inputs are built from the segment's boundary types.  A symbolic dim
uses its symbol's ``opt`` size from ``segment.meta["symbols"]`` (see ``_symbols``), raised to 2
when ``opt`` is 1 because ``torch.export`` specializes a dim whose example size is 0 or 1.
Every plain symbol becomes one ``torch.export.Dim`` with the symbol's min/max, shared by all
inputs that use it; a linear expression (``"2*s0"``, ``"s0+1"``) becomes the derived Dim
``2*s0`` that export checks; any other expression (``"s0*s1"``) becomes ``Dim.AUTO`` and export
infers it.  After export every such dim must still be symbolic, else a BackendError says which
one was fixed.  A range with ``min=1`` is kept as is: the package accepts size 1.  AOTInductor
checks only lower bounds at run time; the runtime checks inputs against the recorded signature.

Precision: ``fp32`` compiles the model as it is.  ``fp16`` / ``bf16`` cast floating inputs and
floating tensor constants to the low precision inside the engine, compute, and cast floating
outputs back to the dtypes the IR records, so segment boundaries keep the model's dtypes and the
glue and other segments are unaffected.  Ops that name a dtype explicitly (``aten::to``,
``aten::zeros(..., dtype=float32)``) still produce that dtype inside the segment.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from packager.backends._inductor_capability import inductor_capability
from packager.backends._symbols import SymbolRange, evaluate_dim, symbol_ranges
from packager.backends.base import CompilingBackend, EngineVariant, tensor_signature
from packager.errors import BackendError
from packager.ir.graph import Graph, Node
from packager.ir.types import SymDim, TensorType

__all__ = ["InductorBackend"]

_COMPUTE_DTYPES = {"fp32": None, "fp16": "float16", "bf16": "bfloat16"}
_MESSAGE_LIMIT = 2000


class InductorBackend(CompilingBackend):
    name = "inductor"
    device_types = ("cpu", "cuda")

    def capability(self, node: Node) -> str | None:
        return inductor_capability(node)

    def _compile_impl(self, segment: Graph, *, device: str, precision: str, workdir: Path) -> EngineVariant:
        import torch
        import torch._inductor

        from packager.backends._fx import build_fx_module

        torch_device = _check_device(torch, segment, device)
        ranges = symbol_ranges(segment)
        compute_dtype = getattr(torch, _COMPUTE_DTYPES[precision]) if _COMPUTE_DTYPES[precision] else None
        started = time.perf_counter()
        fx_segment = build_fx_module(segment, device=torch_device, compute_dtype=compute_dtype)
        example_inputs, dynamic_shapes = _example_inputs(torch, segment, ranges, torch_device)
        try:
            exported = torch.export.export(
                fx_segment.module, example_inputs, dynamic_shapes=dynamic_shapes, strict=False
            )
        except Exception as error:
            raise _compile_error(segment, "torch.export", error, fx_segment.ir_node_of) from error
        _check_still_dynamic(torch, segment, exported, dynamic_shapes)
        exported_seconds = time.perf_counter() - started
        package_path = workdir / f"{_file_stem(segment.name)}.pt2"
        output_folder = (workdir / f"{_file_stem(segment.name)}.aoti").resolve()
        try:
            _compile_and_package(torch, exported, package_path, output_folder, _inductor_configs(torch_device.type))
        except Exception as error:
            raise _compile_error(segment, "AOTInductor", error, fx_segment.ir_node_of) from error
        payload = package_path.read_bytes()
        compile_seconds = time.perf_counter() - started
        _check_link_fix(segment, payload)
        return EngineVariant(
            backend=self.name,
            payload=payload,
            requirements=_requirements(torch, torch_device),
            meta={
                "compile_seconds": round(compile_seconds, 3),
                "export_seconds": round(exported_seconds, 3),
                "device": str(torch_device),
                "precision": precision,
                "torch_version": torch.__version__,
                "inputs": tensor_signature(segment.inputs, ranges),
                "outputs": tensor_signature(segment.outputs, ranges),
            },
        )


def _compile_and_package(torch, exported, package_path: Path, output_folder: Path, configs: dict[str, Any]) -> None:
    """``torch._inductor.aoti_compile_and_package``, with the generated files in a folder of
    this build's own.

    ``aoti_compile_and_package`` writes the wrapper, its metadata JSON and the libraries into a
    folder of the shared Inductor cache named by the graph's hash, and then zips that folder.
    Two builds of the same graph at the same time (parallel CI jobs, test workers) rewrite
    each other's files while zipping: packages with an empty metadata JSON ("json parse error:
    empty input" at load) came out of a 14-worker test run on the GPU machine (a half-written
    library would be no better). It refuses ``aot_inductor.output_path``, so this does its two steps
    (``aot_compile`` with a private ``output_path``, then ``package_aoti``) itself; compiled
    kernels stay in the shared cache. Torch versions without those steps use the public call.
    """
    import inspect

    import torch._inductor

    try:
        from torch._inductor.package import package_aoti
    except ImportError:
        package_aoti = None
    compile_aot = getattr(torch._inductor, "aot_compile", None)
    if package_aoti is None or compile_aot is None or exported.example_inputs is None:
        torch._inductor.aoti_compile_and_package(exported, package_path=str(package_path), inductor_configs=configs)
        return
    module_parameters = inspect.signature(exported.module).parameters
    module = exported.module(check_guards=False) if "check_guards" in module_parameters else exported.module()
    args, kwargs = exported.example_inputs
    options = {**configs, "aot_inductor.package": True, "aot_inductor.output_path": str(output_folder)}
    files = compile_aot(module, args, kwargs, options=options)
    if not isinstance(files, list):
        raise BackendError(f"AOTInductor returned {type(files).__name__} instead of its list of files")
    package_aoti(str(package_path), files)


def _inductor_configs(device: str) -> dict[str, Any]:
    """``inductor_configs`` for every AOTInductor build of ``device`` ("cpu" / "cuda").

    The compiler shim links wrapper libraries so that a statically linked libstdc++ stays
    private (see ``_aoti_link``); without it, packages built on the GPU machine (CPU and CUDA
    alike) crash when loaded.  The clash comes from how the wrapper is linked, so it applies to
    every device type.
    """
    import torch._inductor.config

    from packager.backends._aoti_link import link_fix_configs

    del device  # the same configuration for every device type today
    return dict(link_fix_configs(torch._inductor.config.cpp.cxx))


def _check_link_fix(segment: Graph, payload: bytes) -> None:
    import sys

    from packager.backends._aoti_link import package_link_problems

    if sys.platform != "linux":
        return
    problems = package_link_problems(payload)
    if problems:
        raise BackendError(
            f"segment {segment.name!r}: the AOTInductor package would crash when loaded next to "
            f"libtorch: {'; '.join(problems)}. The compiler shim in cpp.cxx was bypassed or "
            "Inductor renamed its wrapper library; see packager/backends/_aoti_link.py."
        )


def _check_device(torch, segment: Graph, device: str):
    torch_device = torch.device(device)
    if torch_device.type == "cuda":
        if not torch.cuda.is_available():
            raise BackendError(
                f"segment {segment.name!r}: device {device!r} requested, but this host has no "
                f"usable CUDA (torch {torch.__version__}, built for CUDA {torch.version.cuda}); "
                "build CUDA engines on a GPU machine, or build for cpu"
            )
        if torch_device.index is None:
            torch_device = torch.device("cuda", torch.cuda.current_device())
    return torch_device


def _requirements(torch, torch_device) -> dict[str, Any]:
    major, minor = torch.__version__.split("+", 1)[0].split(".")[:2]
    is_cuda = torch_device.type == "cuda"
    capability = torch.cuda.get_device_capability(torch_device) if is_cuda else None
    return {
        "device_type": torch_device.type,
        "torch": f"{major}.{minor}",
        "cuda": torch.version.cuda if is_cuda else None,
        "compute_capability": f"{capability[0]}.{capability[1]}" if capability else None,
    }


def _example_size(symbol_range: SymbolRange) -> int:
    """The example size for a symbol: ``opt``, but at least 2 when the range allows it, since
    torch.export specializes dims whose example size is 0 or 1."""
    if symbol_range.opt >= 2 or (symbol_range.max is not None and symbol_range.max < 2):
        return symbol_range.opt
    return 2


def _example_inputs(torch, segment: Graph, ranges: dict[str, SymbolRange], device) -> tuple[tuple, tuple]:
    """Example inputs (example sizes, zeros) and the ``dynamic_shapes`` spec for export."""
    from torch.export import Dim

    sizes = {name: _example_size(r) for name, r in ranges.items()}
    # A symbol with min == max is a constant; every other one is one Dim shared by all inputs.
    dims: dict[str, Any] = {
        name: r.min if r.min == r.max else Dim(name, min=r.min, max=r.max)
        for name, r in ranges.items()
    }
    examples, specs = [], []
    for value in segment.inputs:
        type_ = value.type
        assert isinstance(type_, TensorType) and type_.shape is not None and type_.dtype is not None
        shape, spec = [], {}
        for axis, dim in enumerate(type_.shape):
            if not isinstance(dim, SymDim):
                shape.append(int(dim))
                continue
            shape.append(evaluate_dim(dim.expr, sizes))
            try:
                # "2*s0" or "s0+1" -> a derived Dim that export checks; "s0" -> the Dim itself.
                export_dim = evaluate_dim(dim.expr, dims)
            except TypeError:
                # Not expressible as a derived Dim (s0*s1, s0//2): export infers the relation.
                export_dim = Dim.AUTO
            if not isinstance(export_dim, int):
                spec[axis] = export_dim
        # Values do not matter (export traces with fake tensors); zeros are valid for every dtype.
        examples.append(torch.zeros(shape, dtype=getattr(torch, type_.dtype), device=device))
        specs.append(spec or None)
    return tuple(examples), tuple(specs)


def _check_still_dynamic(torch, segment: Graph, exported, dynamic_shapes: tuple) -> None:
    """Every dim we asked to be dynamic must still be symbolic after export: with Dim.AUTO,
    export would otherwise specialize a dim silently to its example size."""
    placeholders = [n for n in exported.graph.nodes if n.op == "placeholder"]
    user_inputs = exported.graph_signature.user_inputs
    by_name = {n.name: n for n in placeholders}
    for value, name, spec in zip(segment.inputs, user_inputs, dynamic_shapes, strict=True):
        shape = by_name[name].meta["val"].shape
        for axis in spec or {}:
            dim = value.type.shape[axis]
            if not isinstance(shape[axis], torch.SymInt):
                raise BackendError(
                    f"segment {segment.name!r}: torch.export fixed input %{value.name} dim {axis} "
                    f"({dim.expr}) to {shape[axis]}; the segment's computation does not allow that "
                    "dim to vary. Check the --input ranges or the model."
                )


_EXECUTING = re.compile(r"While executing %(\w+)")
_TARGET = re.compile(r"target: (aten\.[\w.]+)")


def _compile_error(segment: Graph, stage: str, error: BaseException, ir_node_of: dict[str, Node]) -> BackendError:
    """A BackendError naming the segment, the first failing op if the error says, and the cause."""
    failing = None
    for link in _exception_chain(error):
        text = str(link)
        match = _EXECUTING.search(text)
        if match and match.group(1) in ir_node_of:
            failing = repr(ir_node_of[match.group(1)])
            break
        match = _TARGET.search(text)
        if match:
            failing = match.group(1)
            break
    message = str(error).strip() or type(error).__name__
    if len(message) > _MESSAGE_LIMIT:
        message = message[:_MESSAGE_LIMIT] + " [...]"
    at = f" at {failing}" if failing else ""
    return BackendError(
        f"segment {segment.name!r}: {stage} failed{at}: {type(error).__name__}: {message}. "
        "To work around it, keep that op in the glue (the partitioner's fallback_ops)."
    )


def _exception_chain(error: BaseException):
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _file_stem(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-." else "_" for c in name) or "segment"
