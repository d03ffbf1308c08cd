"""Build the TorchScript glue of an outlined graph (docs/internals.md, "Glue").

``build_glue(graph)`` writes readable Python source for an ``nn.Module`` whose ``forward`` runs
the graph (:mod:`packager.glue._emit` describes the translation), executes it, and scripts it
with ``torch.jit.script``. Then it checks, node by node, that TorchScript resolved every ATen /
prim call to the overload the IR names: TorchScript has no syntax to call an overload by name
and matches arguments against all overloads in registration order. A node it resolved
differently is rewritten with every argument passed by keyword (defaults included), which pins
the overload; if that still does not match, building fails naming the node.

``save_glue(module)`` serializes the scripted module with ``torch.jit.save``. The glue calls
engines only through ``torch.ops.poros.execute_engine``, which ``poros_runtime.ops`` registers:
importing this module registers it too, so TorchScript can resolve the calls.
"""

from __future__ import annotations

import hashlib
import io
import linecache
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import poros_runtime.ops  # noqa: F401  (registers poros::execute_engine for TorchScript)
import torch

from packager.errors import BackendError, InternalError, UsageError
from packager.glue._emit import CLASS_NAME, GlueSource, write_glue_source
from packager.ir import Graph, Node, verify

__all__ = ["GlueModule", "build_glue", "save_glue"]

_SOURCE_LINE = re.compile(r'File "(?P<file>[^"]*)", line (?P<line>\d+)')

# Source digest -> the class exec'd from that source. TorchScript names a module type after the
# class's qualified name and mangles a second class of the same name (``___torch_mangle_N``),
# which would make the saved glue differ between two builds of one graph in one process; reusing
# the class keeps the type, and so the saved bytes, the same.
_GLUE_CLASSES: dict[str, type] = {}


@dataclass(frozen=True)
class GlueModule:
    """A built glue: the scripted module and the source it was compiled from."""

    module: torch.jit.ScriptModule
    # The generated Python source (shown by `poros-pack inspect`; line numbers match errors).
    source: str
    device: str


def build_glue(graph: Graph, *, device: str = "cpu") -> GlueModule:
    """Script the outlined ``graph`` as a TorchScript module (see the module docstring).

    ``device`` is the device the artifact targets; tensor constants stay where they are (the
    runtime loads the glue with ``map_location``).
    """
    try:
        torch.device(device)
    except RuntimeError:
        raise UsageError(f"build_glue: {device!r} is not a torch device (use 'cpu', 'cuda', 'cuda:0'...)") from None
    verify(graph)

    explicit_nodes: frozenset[Node] = frozenset()
    while True:
        source = write_glue_source(graph, device=device, explicit_nodes=explicit_nodes)
        module, filename = _script(source, graph)
        mismatches = _mismatched_overloads(module.graph, filename, source)
        if not mismatches:
            return GlueModule(module, source.text, device)
        unpinned = [(node, chosen) for node, chosen in mismatches if node not in explicit_nodes]
        if not unpinned:
            break
        explicit_nodes = explicit_nodes | {node for node, _ in unpinned}
    details = "; ".join(f"{node!r}: TorchScript chose {node.op}.{chosen or 'default'}" for node, chosen in mismatches)
    raise BackendError(
        f"glue for graph {graph.name!r}: TorchScript resolves these calls to another overload than "
        f"the IR names, even with every argument passed by keyword: {details}. Put these nodes "
        "into an engine segment, or rewrite them to an overload TorchScript can select"
    )


def save_glue(module: GlueModule | torch.jit.ScriptModule) -> bytes:
    """``torch.jit.save`` the glue into bytes (the archive's glue member)."""
    if isinstance(module, GlueModule):
        module = module.module
    if not isinstance(module, torch.jit.ScriptModule):
        raise UsageError(f"save_glue takes a GlueModule or a torch.jit.ScriptModule, got {type(module).__name__}")
    buffer = io.BytesIO()
    with _torchscript_is_our_choice():
        torch.jit.save(module, buffer)
    return buffer.getvalue()


@contextmanager
def _torchscript_is_our_choice() -> Iterator[None]:
    """Silence torch's deprecation notice for torch.jit.script/save (torch >= 2.13): the glue is
    TorchScript by design (DESIGN.md, decision 4), so the notice would only be noise in every
    build."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning)
        yield


def _script(source: GlueSource, graph: Graph) -> tuple[torch.jit.ScriptModule, str]:
    glue_class, filename = _glue_class(source.text)
    try:
        with _torchscript_is_our_choice():
            return torch.jit.script(glue_class(source.constants)), filename
    except Exception as error:  # TorchScript reports through several exception types
        node = _node_named_in(str(error), filename, source)
        where = f" at {node!r}" if node is not None else ""
        raise InternalError(
            f"TorchScript rejected the glue generated for graph {graph.name!r}{where}: {error}\n"
            "This is a bug in poros-pack's glue generator; please report it with the model."
        ) from error


def _glue_class(text: str) -> tuple[type, str]:
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    filename = f"<poros-glue-{digest}>"
    glue_class = _GLUE_CLASSES.get(digest)
    if glue_class is None:
        # torch.jit.script reads the source back through inspect, which finds it in linecache.
        linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)
        namespace: dict = {"__name__": f"poros_glue_{digest}"}
        # dont_inherit: this file's `from __future__ import annotations` would turn the glue's
        # annotations into strings, which TorchScript does not resolve for module attributes.
        exec(compile(text, filename, "exec", dont_inherit=True), namespace)
        glue_class = namespace[CLASS_NAME]
        _GLUE_CLASSES[digest] = glue_class
    return glue_class, filename


def _mismatched_overloads(graph: torch._C.Graph, filename: str, source: GlueSource) -> list[tuple[Node, str]]:
    """IR nodes whose statement TorchScript compiled to another overload of the same op, with
    the overload it chose."""
    mismatches: dict[Node, str] = {}
    for scripted in _walk(graph):
        node = _node_named_in(scripted.sourceRange(), filename, source)
        if node is None or scripted.kind() != node.op:
            continue
        schema = scripted.schema()
        if schema == "(no schema)":
            continue
        chosen = torch._C.parse_schema(schema).overload_name
        if chosen != node.overload:
            mismatches.setdefault(node, chosen)
    return list(mismatches.items())


def _walk(graph: torch._C.Graph) -> Iterator[torch._C.Node]:
    for node in graph.nodes():
        yield node
        for block in node.blocks():
            yield from _walk(block)


def _node_named_in(text: str, filename: str, source: GlueSource) -> Node | None:
    """The IR node whose statement is on the line that ``text`` (a TorchScript source range or
    error message) points at in the generated file."""
    for match in _SOURCE_LINE.finditer(text):
        if match["file"] == filename:
            return source.nodes_by_line.get(int(match["line"]))
    return None
