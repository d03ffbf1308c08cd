"""A readable text form of the IR, close to TorchScript's graph printer."""

from __future__ import annotations

from typing import Any

from packager.ir.graph import Block, Graph, Node

__all__ = ["format_graph", "format_node", "format_constant"]


def format_constant(value: Any) -> str:
    try:
        import torch
    except ImportError:  # pragma: no cover - the packager always has torch
        torch = None
    if torch is not None and isinstance(value, torch.Tensor):
        dtype = str(value.dtype).replace("torch.", "")
        return f"<Tensor {dtype}{list(value.shape)}>"
    return repr(value)


def format_node(node: Node, indent: int = 1) -> str:
    pad = "  " * indent
    outs = ", ".join(f"%{v.name} : {v.type}" for v in node.outputs)
    ins = ", ".join(f"%{v.name}" for v in node.inputs)
    attrs = ""
    if node.attrs:
        attrs = "[" + ", ".join(f"{k}={format_constant(v)}" for k, v in node.attrs.items()) + "]"
    head = f"{outs} = " if outs else ""
    lines = [f"{pad}{head}{node.kind}{attrs}({ins})"]
    for index, block in enumerate(node.blocks):
        lines.append(_format_block(block, indent + 1, f"block{index}"))
    return "\n".join(lines)


def _format_block(block: Block, indent: int, label: str) -> str:
    pad = "  " * indent
    params = ", ".join(f"%{v.name} : {v.type}" for v in block.params)
    lines = [f"{pad}{label}({params}):"]
    lines.extend(format_node(n, indent + 1) for n in block.nodes)
    rets = ", ".join(f"%{v.name}" for v in block.returns)
    lines.append(f"{pad}  -> ({rets})")
    return "\n".join(lines)


def format_graph(graph: Graph) -> str:
    params = ", ".join(f"%{v.name} : {v.type}" for v in graph.inputs)
    lines = [f"graph {graph.name}({params}):"]
    lines.extend(format_node(n, 1) for n in graph.block.nodes)
    rets = ", ".join(f"%{v.name}" for v in graph.outputs)
    lines.append(f"  return ({rets})")
    return "\n".join(lines)
