"""Hand-built ONNX models for node tests, whose outputs a test knows exactly: grasp_success with
P(held) = mean pixel value / 255, and a grasp_map that takes depth with P = the depth (m).
"""
from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from tacforce_ros.inference.contract import METADATA_KEY, InputSpec, ModelMetadata


def brightness_model(path, height: int = 48, width: int = 64, encoding: str = "rgb8", task: str = "grasp_success",
                     full_scale: float = 255.0, channel: int | None = None):
    """P(held) = mean pixel / full_scale (a full_scale under 255 makes bright frames exceed 1);
    with ``channel`` only that input channel is averaged (0 = red for rgb8), so a test sees
    whether the node hands the model the channel order it was made for.
    """
    channels = 1 if encoding == "mono8" else 3
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["m"], keepdims=1),          # [1, 1, 1, 1]
        helper.make_node("Div", ["m", "full"], ["p4"]),
        helper.make_node("Reshape", ["p4", "shape"], ["probability"]),
    ]
    if channel is not None:
        nodes.insert(0, helper.make_node("Gather", ["image", "channel"], ["picked"], axis=3))
        nodes[1] = helper.make_node("Cast", ["picked"], ["f"], to=TensorProto.FLOAT)
    inits = [helper.make_tensor("channel", TensorProto.INT64, [1], [channel or 0]),
             helper.make_tensor("full", TensorProto.FLOAT, [], [full_scale]),
             helper.make_tensor("shape", TensorProto.INT64, [2], [1, 1])]
    graph = helper.make_graph(
        nodes, "brightness",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, height, width, channels])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, [1, 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    meta = ModelMetadata(task=task, input=InputSpec("image", height, width, channels, encoding),
                         outputs={"probability": {"shape": [1, 1]}})
    helper.set_model_props(model, {METADATA_KEY: meta.to_json()})
    onnx.save(model, path)
    return path


def depth_grasp_map_model(path, height: int = 48, width: int = 64, stride: int = 16, bins: int = 4,
                          trained_px_per_m: tuple[float, float] | None = None):
    """grasp_map with a depth input: P(success) of cell (row, col), every bin alike, is the mean
    depth in metres (clipped to [0, 1]) of its stride x stride block, so a test that publishes
    depth chooses every cell's P and sees whether the node fed the model that frame's depth.
    """
    rows, cols = height // stride, width // stride
    nodes = [
        helper.make_node("Transpose", ["depth"], ["d"], perm=[0, 3, 1, 2]),               # [1, 1, H, W]
        helper.make_node("AveragePool", ["d"], ["blocks"], kernel_shape=[stride, stride], strides=[stride, stride]),
        helper.make_node("Clip", ["blocks", "zero", "one"], ["p"]),
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["m"], keepdims=0),                        # the image takes part...
        helper.make_node("Mul", ["m", "zero"], ["nothing"]),                             # ...with weight 0
        helper.make_node("Add", ["p", "nothing"], ["p2"]),
        helper.make_node("Reshape", ["p2", "cell_shape"], ["cells"]),                    # [rows, cols, 1]
        helper.make_node("Expand", ["cells", "map_shape"], ["grasp_probability"]),
    ]
    inits = [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
             helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
             helper.make_tensor("cell_shape", TensorProto.INT64, [3], [rows, cols, 1]),
             helper.make_tensor("map_shape", TensorProto.INT64, [3], [rows, cols, bins])]
    graph = helper.make_graph(
        nodes, "depth_grasp_map",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, height, width, 3]),
         helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, height, width, 1])],
        [helper.make_tensor_value_info("grasp_probability", TensorProto.FLOAT, [rows, cols, bins])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    meta = ModelMetadata(task="grasp_map", input=InputSpec("image", height, width, 3, "rgb8", depth="depth"),
                         outputs={"grasp_probability": {"shape": [rows, cols, bins], "stride_px": stride,
                                                        "offset_px": stride / 2}},
                         training={"train": {"table_px_per_m": list(trained_px_per_m)}} if trained_px_per_m else {})
    helper.set_model_props(model, {METADATA_KEY: meta.to_json()})
    onnx.save(model, path)
    return path
