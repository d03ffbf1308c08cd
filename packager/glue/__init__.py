"""The TorchScript glue: control flow, fallback ops and engine calls of an outlined graph."""

from packager.glue.codegen import GlueModule, build_glue, save_glue

__all__ = ["GlueModule", "build_glue", "save_glue"]
