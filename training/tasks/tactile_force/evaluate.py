"""Score an exported tactile_force ONNX model on recorded sequences, the way the node runs it.

Each sequence is streamed frame by frame through OnnxModel (the node's runtime wrapper), the
recurrent state carried from frame to frame and reset to zeros at each sequence start. No
PyTorch is involved, so this scores the file that ships, preprocessing included.
"""
from __future__ import annotations

import numpy as np

from tacforce_ros.inference.runtime import OnnxModel

from .metrics import force_metrics

TASK = "tactile_force"


def evaluate_tactile_force(model_path, sequences, providers=("cpu",)) -> dict:
    """force_metrics over every frame of ``sequences`` (+ ``sequences`` count and ``model``)."""
    model = OnnxModel(model_path, TASK, providers=providers)
    name = next(iter(model.metadata.outputs))
    preds, trues, count = [], [], 0
    for seq in sequences:
        if not len(seq.images):
            continue
        state = None
        for image in seq.images:
            image = np.asarray(image, np.uint8)
            image = image[..., None] if image.ndim == 2 else image
            model.metadata.input.check_image(image.shape)
            outputs, state = model.run(image[None], state)
            preds.append(np.asarray(outputs[name], np.float64).reshape(3))
        trues.append(np.asarray(seq.forces, np.float64).reshape(-1, 3))
        count += 1
    if not count:
        raise ValueError("no frames to evaluate")
    return {**force_metrics(np.stack(preds), np.concatenate(trues)), "sequences": count,
            "model": str(model_path)}
