"""Score an exported grasp_success ONNX model on labelled frames, the way the node runs it:
one frame at a time through OnnxModel (no PyTorch), preprocessing in the graph.
"""
from __future__ import annotations

import numpy as np

from tacforce_ros.inference.runtime import OnnxModel
from tacforce_ros.perception.grasp_success import TASK, GraspSuccessClassifier
from tacforce_ros.perception.image import to_model_channels

from .metrics import accuracy_by_group, classification_metrics

ORDER = {"mono8": "gray", "rgb8": "rgb", "bgr8": "bgr"}


def model_frame_size(model_path) -> tuple[int, int]:
    """(width, height) the model takes, from its metadata."""
    spec = OnnxModel(model_path, TASK, providers=["cpu"], warmup_runs=0).metadata.input
    if spec.width is None:
        raise ValueError(f"{model_path}: model takes any frame size; give --frame-size")
    return spec.width, spec.height


def evaluate_grasp_success(model_path, frames, threshold: float = 0.5, providers=("cpu",)) -> tuple[dict, np.ndarray]:
    """(classification_metrics + model/source, P(held) per frame) for a FrameSet of RGB frames."""
    classifier = GraspSuccessClassifier(OnnxModel(model_path, TASK, providers=providers))
    order = ORDER[classifier.model.metadata.input.encoding]
    probs = np.array([classifier.probability(to_model_channels(image, "rgb", order)) for image in frames.images])
    metrics = classification_metrics(frames.labels, probs, threshold)
    if frames.groups:
        metrics["by_group"] = accuracy_by_group(frames.labels, probs, frames.groups, threshold)
    return {**metrics, "model": str(model_path), "data": frames.source}, probs
