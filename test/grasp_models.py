"""Hand-built grasp_success ONNX models for node tests: P(held) = mean pixel value / 255, so a
test knows the exact probability of every frame it publishes.
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
