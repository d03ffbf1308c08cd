"""TorchScript front end: a ``torch.jit.save``'d model (or a ScriptModule) -> the IR.

Steps:

1. load (``torch.jit.load(path, map_location="cpu")``), ``eval()``, freeze with
   ``torch._C._freeze_module``: parameters and attributes become constants, submodule calls are
   inlined. Only freezing runs, not ``torch.jit.freeze``'s follow-up optimizations (conv+bn
   folding, concatenating linears): those change numerics and are our lowering's job.
2. translate every TorchScript node into an IR node of the same kind and schema overload
   (``aten::add.Tensor`` -> op ``aten::add``, overload ``Tensor``); ``prim::If`` / ``prim::Loop``
   keep their blocks. ``self`` is dropped; inputs are named after forward's arguments
   (``graph.meta["input_names"]``). Integer constants passed where the schema wants a
   ``ScalarType`` become ``torch.dtype`` constants, and dtype values are typed
   ``ScalarType("ScalarType")`` (TorchScript itself stores them as ints).
3. types and shapes: see :mod:`packager.frontends._shape_inference`.

A construct the IR cannot hold (Python calls, module objects, dicts, ...) is never dropped: the
import fails with :class:`UnsupportedOpError` listing each one with its source location.
"""

from __future__ import annotations

import functools
import os
import re
import zipfile
from pathlib import Path
from typing import Sequence

import torch

from packager.errors import FrontendError, UnsupportedOpError, UsageError
from packager.frontends._shape_inference import infer_types
from packager.ir.graph import Block, Graph, Value
from packager.ir.ops import PYTHON_BUILTINS, resolve_overload
from packager.ir.types import (
    BOOL,
    DEVICE,
    FLOAT,
    INT,
    NONE,
    STR,
    IRType,
    ListType,
    OptionalType,
    ScalarType,
    TensorType,
    TupleType,
)
from packager.ir.verify import verify
from packager.spec import InputSpec

__all__ = ["import_torchscript", "DTYPE_VALUE"]

# The IR type of a dtype value (a ``torch.dtype`` constant, the result of ``prim::dtype``).
DTYPE_VALUE = ScalarType("ScalarType")

_ADVICE = (
    "Rewrite forward without it, or export the model with torch.jit.trace "
    "(a trace records only the tensor operations that ran)."
)

# Structural TorchScript primitives the IR represents directly.
_STRUCTURAL_PRIMS = frozenset({
    "prim::Constant", "prim::If", "prim::Loop", "prim::ListConstruct", "prim::TupleConstruct",
    "prim::ListUnpack", "prim::TupleUnpack",
})

_SIMPLE_TYPES: dict[str, IRType] = {
    "IntType": INT,
    "FloatType": FLOAT,
    "BoolType": BOOL,
    "StringType": STR,
    "NoneType": NONE,
    "DeviceObjType": DEVICE,
    "NumberType": ScalarType("Scalar"),
    "ComplexType": ScalarType("complex"),
    "ScalarTypeType": DTYPE_VALUE,
    "LayoutType": ScalarType("Layout"),
    "MemoryFormatType": ScalarType("MemoryFormat"),
    "GeneratorType": ScalarType("Generator"),
}


def import_torchscript(
    model: str | os.PathLike | torch.jit.ScriptModule,
    inputs: Sequence[InputSpec],
    *,
    name: str | None = None,
) -> Graph:
    """Import ``model`` (a ``torch.jit.save``'d file or a ScriptModule) into a typed IR graph.

    ``inputs`` holds one :class:`InputSpec` per tensor argument of ``forward``, in order; dynamic
    dims become the graph's symbols (``graph.meta["symbols"]``).
    """
    specs = list(inputs)
    for spec in specs:
        if not isinstance(spec, InputSpec):
            raise UsageError(f"inputs must be InputSpec objects (see packager.spec.parse_input_spec), got {spec!r}")
    module, origin, default_name = _load(model)
    ts_graph, argument_names = _frozen_forward(module, origin)
    if len(specs) != len(argument_names):
        raise UsageError(
            f"{origin}: forward takes {len(argument_names)} tensor argument(s) "
            f"({', '.join(argument_names) or 'none'}) but {len(specs)} input spec(s) were given; "
            "pass one --input per argument, in order"
        )
    problems = _unsupported_constructs(ts_graph.block())
    if problems:
        listing = "\n".join(f"  - {problem}" for problem in problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise UnsupportedOpError(
            f"{origin}: cannot import {len(problems)} TorchScript construct(s):\n{listing}{more}\n{_ADVICE}"
        )
    graph = _Translator(name or default_name).translate(ts_graph, argument_names, specs)
    graph.meta["source_format"] = "torchscript"
    infer_types(graph, specs)
    verify(graph)
    return graph


# ------------------------------------------------------------------------------- loading
def _load(model) -> tuple[torch.jit.ScriptModule, str, str]:
    if isinstance(model, torch.jit.ScriptModule):
        label = getattr(model, "original_name", type(model).__name__)
        return model, f"ScriptModule {label}", label
    if isinstance(model, torch.nn.Module):
        raise UsageError(
            f"{type(model).__name__} is an eager nn.Module; pass torch.jit.script(model) or "
            "torch.jit.trace(model, example_inputs), or the path of a torch.jit.save'd file"
        )
    if not isinstance(model, (str, os.PathLike)):
        raise UsageError(f"model must be a path or a torch.jit.ScriptModule, got {type(model).__name__}")
    path = Path(model)
    if not path.exists():
        raise UsageError(f"model file {str(path)!r} does not exist; pass the path of a torch.jit.save'd model")
    if path.is_dir():
        raise UsageError(f"{str(path)!r} is a directory; pass the path of a torch.jit.save'd model file")
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as error:  # noqa: BLE001 - torch raises RuntimeError, ValueError, pickle errors...
        raise FrontendError(_not_torchscript(path, error)) from error
    return module, str(path), path.stem


def _not_torchscript(path: Path, error: BaseException) -> str:
    """Why ``torch.jit.load`` refused ``path``, with a guess at what the file is."""
    guess = ""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any(n.endswith("data.pkl") for n in names) and not any(n.endswith("constants.pkl") for n in names):
            guess = " (it looks like a torch.save checkpoint: a pickled eager module or state_dict)"
        elif any(n.endswith(".json") and "archive_format" in n for n in names) or path.suffix == ".pt2":
            guess = " (it looks like a torch.export / AOTInductor .pt2 package)"
    elif path.suffix.lower() == ".onnx" or _looks_like_onnx(path):
        guess = " (it looks like an ONNX model; use the ONNX front end)"
    message = str(error).strip().splitlines()
    detail = message[0] if message else type(error).__name__
    return (
        f"{str(path)!r} is not a TorchScript model{guess}; expected a file written by torch.jit.save "
        "(script or trace the model with torch.jit.script / torch.jit.trace, then torch.jit.save it). "
        f"torch.jit.load said: {detail}"
    )


def _looks_like_onnx(path: Path) -> bool:
    # An ONNX ModelProto starts with field 1 (ir_version, varint): tag byte 0x08.
    with open(path, "rb") as handle:
        head = handle.read(64)
    return head[:1] == b"\x08" and (b"onnx" in head.lower() or b"pytorch" in head.lower())


def _freeze(module: torch.jit.ScriptModule) -> torch._C.ScriptModule:
    """Freeze without torch.jit.freeze's numerics-changing optimizations."""
    freeze_module = getattr(torch._C, "_freeze_module", None)
    if freeze_module is not None:
        return freeze_module(module._c, [])
    # Fallback for a torch without the private entry point: the public API with the numerics-
    # changing folds off (it still removes dropout and may concatenate linears).
    return torch.jit.freeze(module, optimize_numerics=False)._c


def _frozen_forward(module: torch.jit.ScriptModule, origin: str) -> tuple[torch._C.Graph, list[str]]:
    if not module._c._has_method("forward"):
        raise FrontendError(f"{origin} has no forward method; save a module whose forward is the model")
    was_training = module.training
    try:
        module.eval()
        frozen = _freeze(module)
    except RuntimeError as error:
        raise FrontendError(
            f"{origin}: freezing failed (freezing turns parameters and attributes into constants "
            f"and inlines submodules): {str(error).strip().splitlines()[0]}. {_ADVICE}"
        ) from error
    finally:
        if was_training:
            module.train()
    method = frozen._get_method("forward")
    graph = method.graph.copy()
    torch._C._jit_pass_inline(graph)
    graph_inputs = list(graph.inputs())[1:]
    names = [argument.name for argument in method.schema.arguments][1:]
    if len(names) != len(graph_inputs):
        names = [re.sub(r"\.\d+$", "", value.debugName()) for value in graph_inputs]
    for argument_name, value in zip(names, graph_inputs):
        if value.type().kind() != "TensorType":
            raise UnsupportedOpError(
                f"{origin}: forward argument {argument_name!r} has type {value.type()}; models take "
                "tensor arguments only (one --input each). Make it a module attribute (a constant) "
                "or a tensor"
            )
    return graph, names


# --------------------------------------------------------------------------- checking
def _ir_type(ts_type: torch._C.Type) -> IRType | None:
    """The IR type for a TorchScript type, None where the IR has no equivalent."""
    kind = ts_type.kind()
    if kind == "TensorType":
        return TensorType()
    if kind in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[kind]
    if kind == "ListType":
        element = _ir_type(ts_type.getElementType())
        return None if element is None else ListType(element)
    if kind == "OptionalType":
        element = _ir_type(ts_type.getElementType())
        return None if element is None else OptionalType(element)
    if kind == "TupleType":
        elements = [_ir_type(t) for t in ts_type.elements()]
        return None if any(e is None for e in elements) else TupleType(tuple(elements))
    return None


_TORCH_DIR = os.path.dirname(torch.__file__)


def _source_location(ts_node: torch._C.Node) -> str:
    """``file:line`` of the code that made ``ts_node``; "" where TorchScript kept none.

    A traced node carries the Python stack of the trace (``m.py(12): forward``, innermost first),
    where the first frame outside torch's own code is the user's line; a scripted node carries
    a source range (``File "m.py", line 12``). After a save and load, both are followed by a range
    in the serialized code (``Serialized File "code/__torch__/m.py"``), the last resort."""
    text = ts_node.sourceRange()
    frames = re.findall(r"^(.+)\((\d+)\): \S+$", text, flags=re.MULTILINE)
    if frames:
        user_frames = [frame for frame in frames if not frame[0].startswith(_TORCH_DIR)]
        file, line = (user_frames or frames)[0]
        return f"{file}:{line}"
    ranges = re.findall(r'(Serialized\s+)?File "([^"]+)", line (\d+)', text)
    original = [(file, line) for serialized, file, line in ranges if not serialized]
    if original or ranges:
        file, line = (original or [(file, line) for _, file, line in ranges])[0]
        return f"{file}:{line}"
    return ""


def _where(ts_node: torch._C.Node) -> str:
    """``at m.py:12``; for a node without a location, ``near`` that of a dataflow neighbour."""
    location = _source_location(ts_node)
    if location:
        return f"at {location}"
    neighbours = [use.user for value in ts_node.outputs() for use in value.uses()]
    neighbours += [value.node() for value in ts_node.inputs()]
    for neighbour in neighbours:
        location = _source_location(neighbour)
        if location:
            return f"near {location}"
    return "at an unknown source location"


def _schema(ts_node: torch._C.Node) -> torch._C.FunctionSchema | None:
    text = ts_node.schema()
    if text == "(no schema)":
        return None
    try:
        return torch._C.parse_schema(text)
    except RuntimeError:
        return None


def _overload(ts_node: torch._C.Node) -> str:
    schema = _schema(ts_node)
    if schema is not None:
        return schema.overload_name
    match = re.match(r"^[\w:]+\.(\w+)\(", ts_node.schema())
    return match.group(1) if match else ""


def _attribute_name(ts_node: torch._C.Node) -> str:
    return ts_node.s("name") if ts_node.hasAttribute("name") else "?"


def _specific_reason(ts_node: torch._C.Node) -> str | None:
    kind = ts_node.kind()
    if kind == "prim::PythonOp":
        return (f"calls the Python function {ts_node.pyname()!r} (a @torch.jit.ignore'd function or an "
                "autograd.Function), which only runs inside a Python interpreter")
    if kind in ("prim::GetAttr", "prim::SetAttr"):
        verb = "reads" if kind == "prim::GetAttr" else "writes"
        return (f"{verb} the module attribute {_attribute_name(ts_node)!r} at run time (freezing keeps "
                "attributes that forward modifies, and objects that are not tensors or constants)")
    if kind == "prim::CallMethod":
        return f"calls the method {_attribute_name(ts_node)!r} of an object that could not be inlined (an interface or class)"
    if kind == "prim::CallFunction":
        return "calls a function that could not be inlined"
    if kind == "prim::CreateObject":
        return "creates a TorchScript class instance"
    if kind in ("prim::Enter", "prim::Exit"):
        return "uses a `with` block (a context-manager object)"
    if kind in ("prim::fork", "aten::wait", "prim::awaitable", "prim::awaitable_wait"):
        return "runs asynchronous tasks (torch.jit.fork / wait)"
    return None


def _unsupported_reason(ts_node: torch._C.Node) -> str | None:
    specific = _specific_reason(ts_node)
    if specific is not None:
        return specific
    kind = ts_node.kind()
    for value in list(ts_node.outputs()) + list(ts_node.inputs()):
        if _ir_type(value.type()) is None:
            return (f"uses a value of type {value.type()}, which the IR cannot represent "
                    "(it has tensors, scalars, lists, tuples and optionals; no dicts, classes or objects)")
    if kind in _STRUCTURAL_PRIMS:
        return None
    if any(True for _ in ts_node.blocks()):
        return "holds nested blocks, which the IR allows only in prim::If and prim::Loop"
    if kind in PYTHON_BUILTINS:
        return None
    try:
        resolve_overload(kind, _overload(ts_node))
    except UnsupportedOpError as error:
        if kind.startswith("prim::"):
            return "is a TorchScript primitive with no equivalent in the IR"
        return str(error)
    return None


def _unsupported_constructs(block: torch._C.Block) -> list[str]:
    problems = []
    for ts_node in block.nodes():
        reason = _unsupported_reason(ts_node)
        if reason is not None:
            problems.append(f"{ts_node.kind()} {_where(ts_node)}: {reason}")
        for inner in ts_node.blocks():
            problems.extend(_unsupported_constructs(inner))
    return problems


# ------------------------------------------------------------------------- translation
@functools.lru_cache(maxsize=None)
def _dtype_from_code(code: int) -> torch.dtype | None:
    """TorchScript's integer for a ScalarType -> the torch.dtype (None if torch has no such dtype)."""
    try:
        return torch.ops.aten.empty.memory_format([0], dtype=code).dtype
    except (RuntimeError, TypeError):
        return None


def _wants_dtype(argument: torch._C.Argument) -> bool:
    real_type = getattr(argument, "real_type", argument.type)
    return str(real_type) in ("ScalarType", "Optional[ScalarType]")


class _Translator:
    """TorchScript graph -> IR graph (structure and declared types; shapes come later)."""

    def __init__(self, graph_name: str) -> None:
        self.graph = Graph(graph_name)
        self.values: dict[int, Value] = {}
        self.used_names: set[str] = set()
        self.dtype_constants: dict[int, Value] = {}

    def translate(self, ts_graph: torch._C.Graph, argument_names: list[str], specs: list[InputSpec]) -> Graph:
        self.used_names.update(argument_names)
        for ts_value, argument_name, spec in zip(list(ts_graph.inputs())[1:], argument_names, specs, strict=True):
            self.values[ts_value.unique()] = self.graph.add_input(TensorType(spec.dtype), argument_name)
        self.graph.meta["input_names"] = list(argument_names)
        self._translate_block(ts_graph.block(), self.graph.block)
        return self.graph

    def _name(self, ts_value: torch._C.Value) -> str | None:
        """TorchScript's debug name where it is a real name; None for a fresh numeric name."""
        name = ts_value.debugName()
        if name.isdigit() or name in self.used_names:
            return None
        self.used_names.add(name)
        return name

    def _translate_block(self, ts_block: torch._C.Block, block: Block) -> None:
        for ts_node in ts_block.nodes():
            self._translate_node(ts_node, block)
        block.set_returns([self.values[v.unique()] for v in ts_block.outputs()])

    def _declared_type(self, ts_node: torch._C.Node, ts_value: torch._C.Value) -> IRType:
        if ts_node.kind() == "prim::dtype":
            return DTYPE_VALUE
        declared = _ir_type(ts_value.type())
        assert declared is not None, "checked by _unsupported_constructs"
        return declared

    def _translate_node(self, ts_node: torch._C.Node, block: Block) -> None:
        kind = ts_node.kind()
        if kind == "prim::Constant":
            self._translate_constant(ts_node, block)
            return
        schema = _schema(ts_node)
        arguments = list(schema.arguments) if schema is not None else []
        inputs = []
        for index, ts_value in enumerate(ts_node.inputs()):
            wants_dtype = index < len(arguments) and _wants_dtype(arguments[index])
            inputs.append(self._input(ts_value, wants_dtype))
        node = block.append_node(kind, inputs, (), _overload(ts_node))
        location = _source_location(ts_node)
        if location:
            node.meta["source"] = location
        scope = ts_node.scopeName()
        if scope:
            node.meta["scope"] = scope
        for ts_value in ts_node.outputs():
            self.values[ts_value.unique()] = node.add_output(self._declared_type(ts_node, ts_value), self._name(ts_value))
        for ts_block in ts_node.blocks():
            inner = node.add_block()
            for ts_param in ts_block.inputs():
                self.values[ts_param.unique()] = inner.add_param(self._declared_type(ts_node, ts_param), self._name(ts_param))
            self._translate_block(ts_block, inner)

    def _translate_constant(self, ts_node: torch._C.Node, block: Block) -> None:
        ts_value = ts_node.output()
        if ts_node.hasAttribute("value") and ts_node.kindOf("value") == "t":
            # toIValue() turns some 0-dim tensors into Python numbers; the attribute keeps the tensor.
            value = ts_node.t("value")
        else:
            value = ts_value.toIValue()
        if isinstance(value, torch.Tensor):
            type_: IRType = TensorType(str(value.dtype).removeprefix("torch."), tuple(value.shape))
        else:
            type_ = self._declared_type(ts_node, ts_value)
        node = block.append_node("prim::Constant", (), (), attrs={"value": value})
        self.values[ts_value.unique()] = node.add_output(type_, self._name(ts_value))

    def _input(self, ts_value: torch._C.Value, wants_dtype: bool) -> Value:
        value = self.values[ts_value.unique()]
        producer = ts_value.node()
        if not wants_dtype or producer.kind() != "prim::Constant":
            return value
        code = value.producer.attrs["value"] if value.producer is not None else None
        if not isinstance(code, int) or isinstance(code, bool):
            return value
        if code not in self.dtype_constants:
            dtype = _dtype_from_code(code)
            if dtype is None:
                return value
            # At the top of the graph, so that every block can use it.
            node = self.graph.block.insert_node(0, "prim::Constant", (), (DTYPE_VALUE,), attrs={"value": dtype})
            self.dtype_constants[code] = node.output
        return self.dtype_constants[code]
