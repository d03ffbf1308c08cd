"""Front ends: import a model file into the common IR (see docs/internals.md)."""

from packager.frontends.onnx import import_onnx
from packager.frontends.torchscript import import_torchscript

__all__ = ["import_onnx", "import_torchscript"]
