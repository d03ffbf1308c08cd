"""Tests of the ONNX front end as a whole: loading, opsets, input specs, errors a user can run
into, and a CNN exported by torch.onnx compared with torch eager.

Numbers against eager torch: the imported graph runs the same aten kernels as the module, so
fp32 agrees to 1e-5 (the ONNX exporter only re-expresses the same ops).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnx.external_data_helper
import pytest
import torch
import torch.nn as nn
from onnx import TensorProto, helper, numpy_helper

from packager.errors import FrontendError, UnsupportedOpError, UsageError
from packager.frontends import import_onnx
from packager.ir import SymDim, run_graph, verify
from packager.spec import parse_input_spec


def _relu_model(opset: int = 17, shape=("batch", 3), name: str = "tiny") -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"), helper.make_node("Relu", ["m"], ["y"])],
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4) - 6, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def test_symbolic_dim_becomes_a_symbol_and_metadata_is_set(tmp_path: Path):
    path = tmp_path / "tiny.onnx"
    onnx.save(_relu_model(), str(path))
    graph = import_onnx(path, [parse_input_spec("1..8x3")])
    verify(graph)
    assert graph.name == "tiny"
    assert graph.meta["input_names"] == ["x"]
    assert graph.meta["symbols"] == {"s0": {"min": 1, "opt": 8, "max": 8}}
    (output,) = graph.outputs
    assert output.type.dtype == "float32"
    assert isinstance(output.type.shape[0], SymDim) and output.type.shape[1] == 4
    assert [node.op for node in graph.walk() if node.op.startswith("aten::")] == ["aten::matmul", "aten::relu"]
    x = torch.randn(5, 3)
    torch.testing.assert_close(run_graph(graph, [x]), torch.relu(x @ (torch.arange(12.0).reshape(3, 4) - 6)))


def test_symbolic_dim_without_spec_asks_for_a_range():
    with pytest.raises(UsageError, match=r"'x' has symbolic dim 'batch'.*--input with a range"):
        import_onnx(_relu_model())


def test_static_model_needs_no_spec_and_spec_overrides_declared_shape():
    graph = import_onnx(_relu_model(shape=(2, 3)))
    assert graph.outputs[0].type.shape == (2, 4) and graph.meta["symbols"] == {}
    graph = import_onnx(_relu_model(shape=(2, 3)), [parse_input_spec("6x3")])
    assert graph.outputs[0].type.shape == (6, 4)


def test_input_count_dtype_and_rank_mismatches_are_usage_errors():
    with pytest.raises(UsageError, match=r"1 input\(s\) \(x\) but 2 input spec"):
        import_onnx(_relu_model(), [parse_input_spec("2x3"), parse_input_spec("2x3")])
    with pytest.raises(UsageError, match="'x' is float32 but its --input says int64"):
        import_onnx(_relu_model(), [parse_input_spec("2x3:int64")])
    with pytest.raises(UsageError, match="rank 2"):
        import_onnx(_relu_model(), [parse_input_spec("2x3x1")])


def test_the_callers_model_is_not_modified():
    model = _relu_model()
    before = model.SerializeToString()
    import_onnx(model, [parse_input_spec("2x3")])
    assert model.SerializeToString() == before


def test_old_opset_is_converted_and_too_new_is_refused():
    # Opset 11 -> 13 through onnx's version converter (Unsqueeze's axes move to an input).
    graph = helper.make_graph(
        [helper.make_node("Unsqueeze", ["x"], ["y"], axes=[0])], "old",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    old = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    old.ir_version = 7
    imported = import_onnx(old)
    assert imported.outputs[0].type.shape == (1, 2, 3)
    with pytest.raises(FrontendError, match="opset 22; supported opsets are 13 to 21"):
        import_onnx(_relu_model(opset=22))


def test_unconvertible_opset_names_it():
    # Crop existed in opset 1 only; the converter has no adapter for it.
    graph = helper.make_graph(
        [helper.make_node("Crop", ["x"], ["y"])], "ancient",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 1)])
    model.ir_version = 7
    with pytest.raises(FrontendError, match="uses opset 1, and onnx's version converter could not"):
        import_onnx(model)


def test_unmapped_ops_are_listed_with_node_and_opset():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Hardmax", ["r"], ["h"], name="hm"),
         helper.make_node("Inverse", ["h"], ["y"], name="inv", domain="com.microsoft")], "bad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    with pytest.raises(UnsupportedOpError, match=r"opset 17\): 2 node\(s\)(.|\n)*Hardmax at node 'hm'(.|\n)*"
                                                 r"Inverse \(domain 'com.microsoft'\) at node 'inv'"):
        import_onnx(model)


def test_missing_file_directory_and_non_onnx_file(tmp_path: Path):
    with pytest.raises(UsageError, match="does not exist"):
        import_onnx(tmp_path / "absent.onnx")
    with pytest.raises(UsageError, match="is a directory"):
        import_onnx(tmp_path)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\xff\xfe not a protobuf at all" * 10)
    with pytest.raises(FrontendError, match="is not an ONNX model"):
        import_onnx(junk)
    with pytest.raises(UsageError, match="path or an onnx.ModelProto"):
        import_onnx(42)


def test_external_data_is_read_from_the_model_folder(tmp_path: Path):
    model = _relu_model(shape=(2, 3))
    onnx.external_data_helper.convert_model_to_external_data(
        model, all_tensors_to_one_file=True, location="ext.data", size_threshold=0)
    onnx.save(model, str(tmp_path / "ext.onnx"))
    assert (tmp_path / "ext.data").exists()
    graph = import_onnx(tmp_path / "ext.onnx")
    x = torch.randn(2, 3)
    torch.testing.assert_close(run_graph(graph, [x]), torch.relu(x @ (torch.arange(12.0).reshape(3, 4) - 6)))
    (tmp_path / "ext.data").unlink()
    with pytest.raises(FrontendError, match="external data"):
        import_onnx(tmp_path / "ext.onnx")


class _SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.LeakyReLU(0.1),
        )
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = torch.nn.functional.adaptive_avg_pool2d(x, 1)
        return torch.softmax(self.head(x.view(x.size(0), -1)), dim=-1)


def _export(module: nn.Module, example: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), buffer, opset_version=17, dynamo=False, input_names=["image"],
                              dynamic_axes={"image": {0: "batch"}})
    except Exception as error:  # noqa: BLE001 - the TorchScript-based exporter may be absent from this torch
        pytest.skip(f"torch.onnx.export (dynamo=False) unavailable here: {error}")
    return buffer.getvalue()


def test_exported_cnn_matches_torch_eager(tmp_path: Path):
    torch.manual_seed(0)
    module = _SmallCNN().eval()
    for batch_norm in (module.features[1], module.features[5]):
        batch_norm.running_mean.uniform_(-0.5, 0.5)
        batch_norm.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "cnn.onnx"
    path.write_bytes(_export(module, torch.randn(2, 3, 16, 16)))
    graph = import_onnx(path, [parse_input_spec("1..4x3x16x16")])
    verify(graph)
    assert graph.meta["input_names"] == ["image"]
    (output,) = graph.outputs
    assert isinstance(output.type.shape[0], SymDim) and output.type.shape[1] == 10
    for batch in (1, 3):
        x = torch.randn(batch, 3, 16, 16)
        with torch.no_grad():
            torch.testing.assert_close(run_graph(graph, [x]), module(x), rtol=1e-5, atol=1e-5)
