"""Checkpoint -> grasp_success ONNX: in-graph preprocessing, the network, a sigmoid.

    image uint8 [1, H, W, C] (as the ROS message holds it) -> probability float [1, 1] = P(held)

Exporter and checked save: training/core/export.py (the model contract in the "tacforce" metadata
key; parity through OnnxModel, the node's wrapper, on sample frames; a probability difference over
the `Tolerance` is an ExportError and no file is left behind). A model card (.md) is written beside
the .onnx.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from tacforce_ros.inference.contract import ENCODING_CHANNELS, InputSpec, ModelMetadata

from ...core import checkpoint
from ...core.export import OPSET, PROBABILITY_TOLERANCE, ModelCard, Tolerance, output_difference, save_checked
from ...models.grasp_success import GraspPreprocess, GraspSuccessNet
from .metrics import format_table
from .train import TASK, load_model, public_summary

OUTPUT = "probability"


class GraspSuccessGraph(nn.Module):
    """What the node runs per frame: preprocessing + network + sigmoid -> P(held)."""

    def __init__(self, model: GraspSuccessNet, encoding: str | None = None):
        super().__init__()
        self.net = model.net
        cfg = model.config
        encoding = encoding or cfg.encoding
        if ENCODING_CHANNELS.get(encoding) != ENCODING_CHANNELS[cfg.encoding]:
            raise ValueError(f"model was trained on {cfg.encoding} frames; cannot take {encoding}")
        pre = model.preprocess
        self.preprocess = GraspPreprocess(cfg.image_size, encoding, pre.mean.flatten().tolist(),
                                          pre.std.flatten().tolist())
        self.eval()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(self.preprocess(image)))


def export_grasp_success(checkpoint_path, onnx_path, encoding: str | None = None, training_summary=None,
                         metrics=None, command: str = "", tolerance: Tolerance = PROBABILITY_TOLERANCE,
                         sample_images: np.ndarray | None = None) -> ModelMetadata:
    """Export ``checkpoint_path`` (best.pt / last.pt) to ``onnx_path`` + ``<name>.md``.

    The graph takes frames of the size the model was trained on, in ``encoding`` (default: the
    training encoding; rgb8 <-> bgr8 is allowed, the graph reorders). ``sample_images`` (default:
    the validation frames stored in the checkpoint) drive the parity check.
    """
    onnx_path = Path(onnx_path)
    ckpt = checkpoint.load(checkpoint_path, TASK)
    model = load_model(ckpt)
    trained = ckpt["summary"]["input"]
    encoding = encoding or trained["encoding"]
    graph = GraspSuccessGraph(model, encoding)
    frames = ckpt["summary"]["samples"].numpy() if sample_images is None else np.asarray(sample_images, np.uint8)
    if trained["encoding"] != encoding and sample_images is None:
        frames = frames[..., ::-1].copy()          # stored samples are in the training order
    height, width, channels = (int(v) for v in frames.shape[1:])
    if (height, width) != (trained["height"], trained["width"]):
        raise ValueError(f"sample frames are {width}x{height}; the model was trained on "
                         f"{trained['width']}x{trained['height']}")
    with torch.no_grad():
        program = torch.onnx.export(graph, (torch.from_numpy(frames[:1].copy()),), dynamo=True,
                                    opset_version=OPSET, input_names=["image"], output_names=[OUTPUT],
                                    verbose=False)
    proto = program.model_proto
    cfg = model.config
    metadata = ModelMetadata(
        task=TASK,
        input=InputSpec(name="image", height=height, width=width, channels=channels, encoding=encoding),
        outputs={OUTPUT: {"shape": [1, 1], "meaning": "probability that the object is held (grasp success)",
                          "range": [0.0, 1.0], "classes": ["failure", "success"], "threshold": 0.5}},
        state=None,
        preprocessing=graph.preprocess.describe(height, width),
        training={**(training_summary or public_summary(ckpt["summary"])), "arch": cfg.arch,
                  "image_size": cfg.image_size, "checkpoint_epoch": int(ckpt["epoch"])},
        metrics=metrics if metrics is not None else ckpt["history"][-1]["metrics"],
    )
    diff = save_checked(proto, metadata, onnx_path, "training/tasks/grasp_success/export.py",
                        lambda tmp: output_difference(graph, tmp, TASK, OUTPUT, frames), tolerance,
                        f"probabilities over {len(frames)} frames")
    write_model_card(onnx_path.with_suffix(".md"), metadata, command, diff, len(frames))
    return metadata


ARCH_TEXT = {
    "small_cnn": "small CIFAR-style CNN (stem + 4 conv blocks, global average pool, linear)",
    "tiny_cnn": "tiny CIFAR-style CNN (smoke-test size)",
    "resnet34": "ResNet-34 (seed 004), 1-output head",
    "inception_v3_mixed7": "Inception-v3 cut at Keras mixed7 (= torchvision Mixed_6e) + Dense 1024, "
                           "Dropout 0.2, Dense 1 (seed 002)",
}


def write_model_card(path: Path, meta: ModelMetadata, command: str, parity_p: float, parity_frames: int) -> None:
    t = meta.training
    counts = t.get("train_counts", {})
    ModelCard(
        about=f"{ARCH_TEXT.get(t.get('arch'), t.get('arch', '?'))}: one camera frame taken after the gripper "
              "closed and lifted in, the probability that the object is held out. Frames of another size are "
              "rejected by the node.",
        outputs=["`probability`: float32 [1, 1], P(held); the node thresholds it at 0.5 and takes a majority "
                 "over its last frames"],
        training=[f"frames: {t.get('frames', {}).get('train', '?')} train ({counts.get('success', '?')} success, "
                  f"{counts.get('failure', '?')} failure), {t.get('frames', {}).get('val', '?')} validation",
                  f"train data: {t.get('train_source', '?')}",
                  f"validation data: {t.get('val_source', '?')}",
                  f"class-balanced epochs of {t.get('frames_per_epoch', '?')} frames, seed 002's augmentations; "
                  f"epochs {t.get('epochs', '?')}, best epoch {t.get('best_epoch', '?')}",
                  f"parameters: {t.get('parameters', '?')} ({t.get('trainable_parameters', '?')} trained; frozen: "
                  f"{', '.join(t.get('frozen') or []) or 'none'})"],
        validation_title="best epoch",
        validation=format_table(meta.metrics) if meta.metrics.get("confusion_matrix") else "",
    ).write(path, meta, f"ONNX vs PyTorch: max |P(held) difference| {parity_p:.2e} over {parity_frames} frames.",
            command)
