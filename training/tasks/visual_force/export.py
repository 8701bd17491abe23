"""Checkpoint -> visual_force ONNX: the last T camera frames in, the force out.

    image uint8 [1, T, H, W, C] (the node's ring buffer, oldest first, frames as the ROS
    messages hold them) -> in-graph preprocessing per frame (gray, resize, /255)
    -> SSAM or CNN-LSTM -> force float [1, outputs] in N (1: along the press axis; 3: x, y, z)

Exporter and checked save: training/core/export.py (the model contract in the "tacforce"
metadata key, input.frames = T; parity through OnnxModel, the node's wrapper, on the sample
windows stored in the checkpoint; a force difference over the `Tolerance` is an ExportError and
no file is left behind). A model card (.md) is written beside the .onnx.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tacforce_ros.inference.contract import ENCODING_CHANNELS, InputSpec, ModelMetadata

from ...core import checkpoint
from ...core.export import FORCE_TOLERANCE, OPSET, ModelCard, Tolerance, output_difference, save_checked
from ...models.ssam import VisualForceNet
from .train import TASK, load_model, model_preprocess, public_summary

OUTPUT = "force"
PRESS_FRAME = "along the probe's press axis, positive = pushing into the object"
XYZ_FRAME = "camera frame of the training data: x right in the image, y towards the camera, z up"


class VisualForceGraph(nn.Module):
    """What the node runs per window: uint8 [1, T, H, W, C] -> force [1, outputs]."""

    def __init__(self, model: VisualForceNet, encoding: str):
        super().__init__()
        self.model = model
        self.preprocess = model_preprocess(model.cfg, encoding)
        self.eval()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        t = self.model.cfg.frames
        frames = self.preprocess(image.reshape(t, *image.shape[2:]))
        return self.model(frames.unsqueeze(0))


def graph_module(ckpt: dict, encoding: str | None = None) -> VisualForceGraph:
    """Return the graph of a loaded checkpoint for ``encoding`` (default: the training one; same channel count)."""
    trained = ckpt["summary"]["input"]
    encoding = encoding or trained["encoding"]
    if ENCODING_CHANNELS.get(encoding) != trained["channels"]:
        raise ValueError(f"model was trained on {trained['encoding']} frames; cannot take {encoding}")
    return VisualForceGraph(load_model(ckpt), encoding)


def output_spec(outputs: int) -> dict:
    """Return the ``outputs`` entry of the model contract: the force in N, along the press axis or x, y, z."""
    if outputs == 1:
        return {OUTPUT: {"shape": [1, 1], "units": "N", "axes": ["press"], "frame": PRESS_FRAME}}
    return {OUTPUT: {"shape": [1, 3], "units": "N", "axes": ["x", "y", "z"], "frame": XYZ_FRAME}}


def export_visual_force(checkpoint_path, onnx_path, encoding: str | None = None, training_summary=None,
                        metrics=None, command: str = "", tolerance: Tolerance = FORCE_TOLERANCE) -> ModelMetadata:
    """Export ``checkpoint_path`` (best.pt / last.pt, or a legacy checkpoint) to ``onnx_path`` + ``<name>.md``.

    The stored sample windows drive the parity check; ``encoding`` defaults to the training one.
    Without ``training_summary`` and ``metrics`` (a re-export) the checkpoint's own are recorded:
    its summary and the validation metrics of its newest epoch, the one its weights are from.
    """
    onnx_path = Path(onnx_path)
    ckpt = checkpoint.load(checkpoint_path, TASK)
    if training_summary is None:
        training_summary = {"epochs": ckpt["epoch"], "best_epoch": ckpt["best"]["epoch"],
                            **public_summary(ckpt["summary"]), "exported_from": str(checkpoint_path)}
    metrics = ckpt["history"][-1]["metrics"] if metrics is None else metrics
    wrapper = graph_module(ckpt, encoding)
    encoding = encoding or ckpt["summary"]["input"]["encoding"]
    samples = ckpt["summary"]["samples"].numpy()        # [K, T, H, W, C]
    cfg = wrapper.model.cfg
    _, t, height, width, channels = samples.shape
    with torch.no_grad():
        program = torch.onnx.export(wrapper, (torch.from_numpy(samples[:1].copy()),), dynamo=True,
                                    opset_version=OPSET, input_names=["image"], output_names=[OUTPUT],
                                    verbose=False)
    proto = program.model_proto
    metadata = ModelMetadata(
        task=TASK,
        input=InputSpec(name="image", height=int(height), width=int(width), channels=int(channels),
                        encoding=encoding, frames=int(t)),
        outputs=output_spec(cfg.outputs),
        state=None,
        preprocessing=f"each of the {t} frames: " + wrapper.preprocess.describe(height, width),
        training=dict(training_summary, arch=cfg.arch, config=cfg.to_dict()),
        metrics=dict(metrics),
    )
    diff = save_checked(proto, metadata, onnx_path, "training/tasks/visual_force/export.py",
                        lambda tmp: output_difference(wrapper, tmp, TASK, OUTPUT, samples, warmup_runs=1),
                        tolerance, f"forces over {len(samples)} windows")
    write_model_card(onnx_path.with_suffix(".md"), metadata, command, diff, len(samples))
    return metadata


def write_model_card(path: Path, meta: ModelMetadata, command: str, parity_n: float, parity_windows: int) -> None:
    """Write the model card: contract, model, training data, limits, parity and the command that made it."""
    inp, t = meta.input, meta.training
    cfg = t.get("config", {})
    arch = "SSAM (sequential spatial + channel attention)" if t.get("arch") == "ssam" else "CNN-LSTM baseline"
    out = meta.outputs[OUTPUT]
    ModelCard(
        about=f"Seed 000 {arch}: the last {inp.frames} camera frames of an object being pressed in, the pressing "
              f"force out, no force sensor. Trunk width x{cfg.get('width')}, input {cfg.get('image_size')} px, "
              f"T = {cfg.get('frames')}, {t.get('parameters', '?')} parameters.",
        image=f"`{inp.name}`: uint8 [1, {inp.frames}, {inp.height}, {inp.width}, {inp.channels}] ({inp.encoding}, "
              "NHWC per frame), the node's ring buffer oldest first, frames as the ROS messages hold them",
        outputs=[f"`{OUTPUT}`: float32 {out['shape']} in N, axes {out['axes']} ({out['frame']}), for the newest "
                 "frame"],
        training=[f"train: {t.get('train_source', '?')}: {t.get('episodes', {}).get('train', '?')} episodes, "
                  f"{t.get('windows', {}).get('train', '?')} windows",
                  f"validation: {t.get('val_source', '?')}: {t.get('windows', {}).get('val', '?')} windows",
                  f"best epoch {t.get('best_epoch', '?')} of {t.get('epochs', '?')}"],
        validation_title="best epoch, validation windows",
        validation=(f"RMSE {meta.metrics['rmse']:.3f} N, MAE {meta.metrics['mae']:.3f} N"
                    if "rmse" in meta.metrics else ""),
        limits=["trained on synthetic renders (tacforce_ros/sim/visual_force_scenes.py); a real camera, other "
                "objects or another viewpoint need new training data",
                "stiffness varies +-12 % within an object type and is invisible to a camera: an error floor"],
    ).write(path, meta, f"ONNX Runtime vs PyTorch over {parity_windows} validation windows: max |difference| "
                        f"{parity_n:.2e} N.", command)
