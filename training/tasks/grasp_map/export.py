"""GraspNet checkpoint -> dense grasp_map ONNX: a whole camera frame in, one pass, a map out.

    image uint8 [1, H, W, 3] (rgb8 or bgr8) [+ depth float32 [1, H, W, 1] m, a depth model]
        -> grasp_probability float [rows, cols, bins]

In the graph: mean-pixel normalisation (and for a depth model the height above the table from
the depth, ``DepthHeight``), then padding so that the map has a cell for every 32 px block of the
image: the border pixels repeated, which invents no edge where the image ends (the first models
padded the mean colour, zero after normalisation, and keep it). rows = ceil(H / 32),
cols = ceil(W / 32), and cell (row, col) is the 227 px window centred on pixel (16 + 32 col, 16 + 32 row). Metadata
records stride, offset, bins and the angle convention (``tacforce_ros.perception.grasp_map``).
``padded=False`` exports the plain network instead (a 227x227 input gives a 1x1 map), which
``benchmarks/grasp_map_dense.py`` uses to score cells patch by patch.

Before the file is published it is run through the node's OnnxModel beside PyTorch on sample
images; a probability difference over the `Tolerance` is an ExportError and nothing is written.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tacforce_ros.inference.contract import InputSpec, ModelMetadata
from tacforce_ros.perception.grasp_map import ANGLE_CONVENTION, CELL_TO_PIXEL, OUTPUT, TASK

from ...core import checkpoint
from ...core.export import OPSET, PROBABILITY_TOLERANCE, ModelCard, Tolerance, output_difference, save_checked
from ...models.grasp_net import PATCH, STRIDE, GraspNet, success_probability
from ...preprocess import DepthHeight, MeanPixelNormalise
from .train import load_grasp_model

OFFSET = STRIDE // 2
DEPTH_INPUT = "depth"


def dense_padding(height: int, width: int, shifts: int = 1) -> tuple[tuple[int, int, int, int], int, int]:
    """(top, bottom, left, right) padding and the map's rows, cols for an H x W image, with
    ``shifts`` passes per axis (cells every 32 / shifts px).
    """
    if shifts < 1 or STRIDE % shifts:
        raise ValueError(f"shifts must divide {STRIDE}, got {shifts}")
    before = PATCH // 2 - OFFSET
    rows, cols = math.ceil(height / STRIDE), math.ceil(width / STRIDE)
    extra = STRIDE - STRIDE // shifts   # the last shifted pass starts this much further in
    bottom = PATCH + STRIDE * (rows - 1) - height - before + extra
    right = PATCH + STRIDE * (cols - 1) - width - before + extra
    return (before, bottom, before, right), rows * shifts, cols * shifts


class DenseGraspMap(nn.Module):
    """uint8 [1, H, W, 3] (+ depth float [1, H, W, 1] m for a depth model) -> P(success) [rows, cols, bins].

    With ``shifts`` s > 1 the network runs s x s times on the padded input shifted by 32 / s px
    steps and the maps are interleaved (shift-and-stitch), so cells are 32 / s px apart: a grasp
    centre lands within 16 / s px of any pixel instead of 16 px.
    """

    def __init__(self, normalise: MeanPixelNormalise, model: GraspNet, height: DepthHeight | None = None,
                 shifts: int = 1, window: tuple[int, int] = (0, 0)):
        super().__init__()
        self.normalise, self.model, self.height = normalise, model, height
        self.shifts, self.window = shifts, window

    def forward(self, image: torch.Tensor, depth: torch.Tensor | None = None) -> torch.Tensor:
        x = self.normalise(image)
        if self.height is not None:
            x = torch.cat([x, self.height(depth)], dim=1)
        if self.shifts == 1:
            return success_probability(self.model(x))[0].permute(1, 2, 0)
        step, (h, w) = STRIDE // self.shifts, self.window
        maps = torch.stack([success_probability(self.model(x[:, :, i * step:i * step + h, j * step:j * step + w]))[0]
                            for i in range(self.shifts) for j in range(self.shifts)])   # [s*s, B, R, C]
        _, bins, rows, cols = maps.shape
        maps = maps.reshape(self.shifts, self.shifts, bins, rows, cols).permute(3, 0, 4, 1, 2)
        return maps.reshape(rows * self.shifts, cols * self.shifts, bins)

    def describe(self, height: int, width: int) -> str:
        rgb = self.normalise.describe(height, width)
        text = rgb if self.height is None else f"image: {rgb}; depth: {self.height.describe()}; concatenated"
        if self.shifts > 1:
            text += (f" -> the network at {self.shifts}x{self.shifts} offsets {STRIDE // self.shifts} px apart, "
                     "maps interleaved")
        return text


def dense_module(ckpt: dict, height: int, width: int, encoding: str = "rgb8",
                 padded: bool = True, shifts: int = 1) -> tuple[DenseGraspMap, int, int]:
    """Return the export graph of a loaded checkpoint for H x W frames, and its map's rows and cols."""
    model, normalise = load_grasp_model(ckpt)
    if padded:
        pad, rows, cols = dense_padding(height, width, shifts)
    else:
        if height < PATCH or width < PATCH:
            raise ValueError(f"an unpadded GraspNet needs at least {PATCH}x{PATCH} px, got {width}x{height}")
        if shifts != 1:
            raise ValueError("an unpadded GraspNet runs one pass (shifts 1)")
        pad, rows, cols = (0, 0, 0, 0), (height - PATCH) // STRIDE + 1, (width - PATCH) // STRIDE + 1
    padding = model.cfg.padding
    norm = MeanPixelNormalise([255 * m for m in normalise.mean.flatten().tolist()], normalise.std,
                              encoding, pad, padding)
    depth = DepthHeight(pad=pad, pad_mode=padding) if model.cfg.depth else None
    window = (PATCH + STRIDE * (rows // shifts - 1), PATCH + STRIDE * (cols // shifts - 1))
    return DenseGraspMap(norm, model, depth, shifts, window).eval(), rows, cols


def export_grasp_map(checkpoint_path, onnx_path, height: int, width: int, sample_images,
                     encoding: str = "rgb8", command: str = "", metrics: dict | None = None,
                     padded: bool = True, tolerance: Tolerance = PROBABILITY_TOLERANCE,
                     sample_depths=None, shifts: int = 1) -> ModelMetadata:
    """Export ``checkpoint_path`` for ``width`` x ``height`` frames in ``encoding`` (+ model card).

    ``sample_images``: uint8 [N, H, W, 3] in RGB order, for the parity check; ``sample_depths``
    (float32 [N, H, W] m, aligned) as well for a depth model.
    """
    onnx_path = Path(onnx_path)
    ckpt = checkpoint.load(checkpoint_path, TASK)
    module, rows, cols = dense_module(ckpt, height, width, encoding, padded, shifts)
    samples = np.asarray(sample_images, np.uint8)
    if samples.ndim != 4 or samples.shape[1:] != (height, width, 3):
        raise ValueError(f"sample images must be uint8 [N, {height}, {width}, 3], got {samples.shape}")
    if encoding == "bgr8":
        samples = samples[..., ::-1]
    samples = np.ascontiguousarray(samples)
    depths = None
    if module.height is not None:
        if sample_depths is None or np.shape(sample_depths) != samples.shape[:3]:
            raise ValueError(f"a depth model's export needs sample depths float32 [{len(samples)}, {height}, {width}], "
                             f"got {None if sample_depths is None else np.shape(sample_depths)}")
        depths = np.ascontiguousarray(np.asarray(sample_depths, np.float32)[..., None])
    args = (torch.from_numpy(samples[:1]),)
    if depths is not None:
        args += (torch.from_numpy(depths[:1]),)
    names = ["image"] if depths is None else ["image", DEPTH_INPUT]
    with torch.no_grad():
        program = torch.onnx.export(module, args, dynamo=True, opset_version=OPSET, input_names=names,
                                    output_names=[OUTPUT], verbose=False)
    proto = program.model_proto
    cfg = ckpt["config"]
    bins = cfg["model"]["bins"]
    offset = OFFSET if padded else PATCH // 2
    training = dict(ckpt["summary"])
    training.update(config=cfg, epoch=ckpt["epoch"], best_epoch=ckpt["best"]["epoch"],
                    checkpoint=str(checkpoint_path))
    metadata = ModelMetadata(
        task=TASK,
        input=InputSpec(name="image", height=int(height), width=int(width), channels=3, encoding=encoding,
                        depth=None if depths is None else DEPTH_INPUT),
        outputs={OUTPUT: {"shape": [rows, cols, bins], "units": "probability of grasp success",
                          "axes": ["row", "col", "angle_bin"], "stride_px": STRIDE // shifts, "offset_px": offset,
                          "patch_px": PATCH, "bins": bins, "angle_convention": ANGLE_CONVENTION,
                          "cell_to_pixel": CELL_TO_PIXEL, "padded": padded,
                          "padding": module.model.cfg.padding if padded else "none", "passes": shifts * shifts}},
        preprocessing=module.describe(height, width),
        training=training,
        metrics=metrics or ckpt["history"][-1]["metrics"],
    )
    diff = save_checked(proto, metadata, onnx_path, "training/tasks/grasp_map/export.py",
                        lambda tmp: output_difference(module, tmp, TASK, OUTPUT, samples, depths=depths), tolerance,
                        f"grasp maps over {len(samples)} images")
    write_grasp_card(onnx_path.with_suffix(".md"), metadata, command, diff, len(samples))
    return metadata


def write_grasp_card(path: Path, meta: ModelMetadata, command: str, parity: float, frames: int) -> None:
    out, t = meta.outputs[OUTPUT], meta.training
    cfg = t.get("config", {})
    network = cfg.get("model", {})
    inputs = [] if meta.input.depth is None else [
        f"`{meta.input.depth}`: float32 [1, {meta.input.height}, {meta.input.width}, 1], depth aligned to the image "
        "in metres (0 or NaN: no reading); the graph turns it into the height above the table"]
    start = cfg.get("init_checkpoint") or "none (from scratch)"
    ModelCard(
        about="GraspNet (seed 001): AlexNet conv1-5, conv6 6x6, conv7 1x1, conv8 1x1 to 2 logits per angle "
              f"bin, fully convolutional; width x{network.get('width', '?')}"
              f"{'; colour plus height above the table as a 4th channel' if network.get('depth') else ''}.",
        inputs=inputs,
        outputs=[f"`{OUTPUT}`: float32 {out['shape']} = P(grasp success) per cell and angle bin",
                 f"cells: {out['cell_to_pixel']}; stride {out['stride_px']} px, offset {out['offset_px']} px, "
                 f"each cell sees a {out['patch_px']} px window; beyond the image: {out.get('padding', 'mean')} "
                 "padding",
                 f"angles: {out['angle_convention']}; bins = {out['bins']}"],
        training=[f"train: {t.get('train')}", f"validation: {t.get('val')}",
                  "trial folders whose trials.csv names a held-out random_urdfs object (800-999) are refused for "
                  "training and validation",
                  f"epochs {cfg.get('epochs', '?')} (best {t.get('best_epoch', '?')}), batch "
                  f"{cfg.get('batch_size', '?')}, lr {cfg.get('lr', '?')}, balanced {cfg.get('balance', '?')}, "
                  f"augmented {cfg.get('augment', '?')} (rotations by "
                  f"{'any angle' if cfg.get('any_angle') else 'k x 90 degrees'}, mirrors), warm start: {start}, "
                  f"AlexNet init: {cfg.get('alexnet_weights') or 'none'}, seed {cfg.get('seed', '?')}"],
        validation_title="held-out images of the training set, one patch per attempt",
        validation=", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in meta.metrics.items()),
    ).write(path, meta, f"ONNX vs PyTorch: max |probability difference| {parity:.2e} over {frames} images.", command)
