"""Low-precision compute for strongly typed TensorRT networks, done in the ONNX model.

TensorRT-RTX networks are always strongly typed: ``tensorrt_rtx`` 1.7 has no FP16 / BF16
builder flags, every layer computes in the dtype its inputs have.  So ``fp16`` / ``bf16`` is a
rewrite of the emitted ONNX model (the datacenter flavour uses the same strongly typed path):

- every float32 initializer and float32 ``Constant`` becomes the low precision;
- ``Cast(to=FLOAT)`` and ``dtype=FLOAT`` attributes (``ConstantOfShape`` values, ``EyeLike``,
  ``Random*``) target the low precision instead;
- each float32 graph input is cast to the low precision right after it enters, and each float32
  graph output is cast back to float32 before it leaves.

Invariant: the graph's inputs and outputs keep their dtypes (so the glue and other segments are
unaffected, as with the Inductor backend), and no float32 value is computed inside.
``LayerNormalization``'s ``stash_type`` (float32 statistics) is kept on purpose: it is the
accumulation precision, not a tensor dtype.  Models with subgraphs (If / Loop) are refused.
"""

from __future__ import annotations

from packager.errors import BackendError

__all__ = ["lower_float_precision"]


def lower_float_precision(model, dtype: str):
    """A copy of ``model`` that computes in ``dtype`` (``"float16"`` or ``"bfloat16"``)."""
    import ml_dtypes
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    target = {"float16": TensorProto.FLOAT16, "bfloat16": TensorProto.BFLOAT16}[dtype]
    numpy_target = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16}[dtype]
    suffix = "__fp16" if dtype == "float16" else "__bf16"

    def lowered_tensor(tensor):
        array = numpy_helper.to_array(tensor).astype(numpy_target)
        return numpy_helper.from_array(array, tensor.name)

    lowered = onnx.ModelProto()
    lowered.CopyFrom(model)
    graph = lowered.graph
    for index, initializer in enumerate(graph.initializer):
        if initializer.data_type == TensorProto.FLOAT:
            graph.initializer[index].CopyFrom(lowered_tensor(initializer))
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                raise BackendError(
                    f"fp16/bf16 for TensorRT: node {node.name or node.op_type!r} ({node.op_type}) has a "
                    "subgraph, which the precision rewrite does not handle; build this segment in fp32"
                )
            if attribute.type == onnx.AttributeProto.TENSOR and attribute.t.data_type == TensorProto.FLOAT:
                attribute.t.CopyFrom(lowered_tensor(attribute.t))
            elif attribute.name in ("to", "dtype") and attribute.i == TensorProto.FLOAT:
                attribute.i = target
        if node.op_type == "Constant":
            _lower_float_constant(node, numpy_target, helper, numpy_helper, np)

    float_inputs = [v.name for v in graph.input if v.type.tensor_type.elem_type == TensorProto.FLOAT]
    float_outputs = [v.name for v in graph.output if v.type.tensor_type.elem_type == TensorProto.FLOAT]
    # Inside the graph, every float boundary value is known by its low-precision name.
    renamed = {name: name + suffix for name in float_inputs + float_outputs}
    for node in graph.node:
        node.input[:] = [renamed.get(name, name) for name in node.input]
        node.output[:] = [renamed.get(name, name) for name in node.output]
    casts_in = [helper.make_node("Cast", [name], [renamed[name]], to=target, name=f"poros_cast_in_{name}")
                for name in float_inputs if name not in float_outputs]
    casts_out = [helper.make_node("Cast", [renamed[name]], [name], to=TensorProto.FLOAT,
                                  name=f"poros_cast_out_{name}") for name in float_outputs]
    passthrough = [name for name in float_inputs if name in float_outputs]
    if passthrough:
        raise BackendError(
            f"fp16/bf16 for TensorRT: graph input(s) {passthrough} are also outputs; the partitioner "
            "should not make a segment of a pass-through value"
        )
    nodes = casts_in + list(graph.node) + casts_out
    del graph.node[:]
    graph.node.extend(nodes)
    # value_info describes intermediate types, which have changed; shape inference redoes them.
    del graph.value_info[:]
    try:
        return onnx.shape_inference.infer_shapes(lowered, check_type=True, strict_mode=True)
    except Exception as error:
        raise BackendError(
            f"fp16/bf16 for TensorRT: the model does not type-check after casting float32 to {dtype}: "
            f"{error}. An op in the segment needs float32 explicitly; build it in fp32 or keep that op "
            "in the glue."
        ) from error


def _lower_float_constant(node, numpy_target, helper, numpy_helper, np) -> None:
    """``Constant(value_float=...)`` / ``value_floats`` make float32; give them a typed tensor."""
    for index, attribute in enumerate(node.attribute):
        if attribute.name == "value_float":
            value = np.asarray(attribute.f, dtype=np.float32)
        elif attribute.name == "value_floats":
            value = np.asarray(list(attribute.floats), dtype=np.float32)
        else:
            continue
        tensor = numpy_helper.from_array(value.astype(numpy_target), node.output[0])
        del node.attribute[index]
        node.attribute.append(helper.make_attribute("value", tensor))
        return
