"""Checkpoint -> ONNX file a node can stream: preprocessing + one recurrent step, with metadata.

The graph takes the frame exactly as a ROS message holds it (uint8 [1, H, W, C]) and the GRU
state, and returns the force in newtons and the next state:

    image uint8 [1, H, W, C], h_in float [1, hidden, s, s] -> force float [1, 3] (N), h_out

Exporter: torch.onnx.export(dynamo=True) (the torch.export-based exporter; onnxscript is
installed). It is the default since PyTorch 2.9, and the TorchScript exporter (dynamo=False)
warns that it will be removed. Opset 18: plain Resize/AveragePool/InstanceNormalization, run by
every onnxruntime and TensorRT we target.

Before the file is published it is loaded through the same OnnxModel wrapper the node uses and
streamed over sample frames beside PyTorch; a force difference over the `Tolerance` (absolute
part plus a part relative to the output's scale) is an ExportError and no file is left behind.

"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from tacforce_ros.inference.contract import (ENCODING_CHANNELS, METADATA_KEY, InputSpec, ModelError,
                                             ModelMetadata, StateSpec)
from tacforce_ros.inference.runtime import OnnxModel

from .metrics import format_table
from .models.temporal_force import TemporalForce
from .preprocess import ImagePreprocess
from .train import as_frames, load_model, model_preprocess

TASK = "tactile_force"
OPSET = 18
FORCE_FRAME = ("the training wrenches' frame; for the tactile simulator z points out of the elastomer, "
               "so pressing gives Fz < 0")


class ExportError(ModelError):
    """The exported graph does not reproduce the PyTorch model."""


@dataclass(frozen=True)
class Tolerance:
    """How far ONNX Runtime may differ from PyTorch: ``atol + rtol * scale``, where scale is the
    largest |PyTorch output| over the samples. Float kernels round differently from one CPU (or
    runtime) to another, and the rounding grows with the values, so a fixed absolute bound
    fails a sound model whose outputs span tens of newtons.
    """

    atol: float
    rtol: float
    unit: str = ""

    def limit(self, scale: float) -> float:
        return self.atol + self.rtol * scale

    def describe(self, scale: float) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return (f"{self.atol:g}{unit} + {self.rtol:g} x output scale {scale:.3g}{unit} "
                f"= {self.limit(scale):.2e}{unit}")


FORCE_TOLERANCE = Tolerance(atol=1e-3, rtol=1e-3, unit="N")
PROBABILITY_TOLERANCE = Tolerance(atol=1e-4, rtol=1e-3)


class TactileForceStep(nn.Module):
    """What the node runs per frame: preprocessing, then one TemporalForce step."""

    def __init__(self, preprocess: ImagePreprocess, model: TemporalForce):
        super().__init__()
        self.preprocess, self.model = preprocess, model

    def initial_state(self) -> torch.Tensor:
        return self.model.initial_state(1)

    def forward(self, image: torch.Tensor, h_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.step(self.preprocess(image), h_in)


def streaming_module(checkpoint: dict, encoding: str | None = None) -> TactileForceStep:
    """Turn a loaded checkpoint into the per-frame module the graph is exported from, in eval mode.

    ``encoding`` defaults to the training encoding; it may differ in channel order only.
    """
    model = load_model(checkpoint)
    trained = checkpoint["input"]
    encoding = encoding or trained["encoding"]
    if ENCODING_CHANNELS.get(encoding) != trained["channels"]:
        raise ValueError(f"model was trained on {trained['encoding']} images; cannot take {encoding}")
    return TactileForceStep(model_preprocess(model.cfg, encoding), model).eval()


def load_streaming_module(checkpoint_path, encoding: str | None = None) -> TactileForceStep:
    """best.pt / last.pt -> TactileForceStep (PyTorch eager twin of the exported graph)."""
    return streaming_module(torch.load(checkpoint_path, map_location="cpu", weights_only=True), encoding)


def export_tactile_force(checkpoint_path, onnx_path, sample_images, encoding: str,
                         training_summary: dict, metrics: dict, command: str = "",
                         tolerance: Tolerance = FORCE_TOLERANCE) -> ModelMetadata:
    """Export ``checkpoint_path`` to ``onnx_path`` (+ ``<name>.md`` model card); return its metadata.

    ``sample_images``: T x H x W x C uint8 frames of one sequence, at the size the camera sends
    (this fixes the graph's input size), in ``encoding``; they are streamed for the parity check.
    ``encoding`` may differ from the training encoding in channel order only (rgb8 <-> bgr8):
    the graph then reorders, so a bgr8 camera can feed a model trained on RGB frames.
    """
    onnx_path = Path(onnx_path)
    ckpt = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    frames = as_frames(sample_images)
    height, width, channels = frames.shape[1:]
    trained = ckpt["input"]
    if (trained["channels"], trained["height"], trained["width"]) != (ENCODING_CHANNELS.get(encoding), height, width):
        raise ValueError(f"{checkpoint_path} was trained on {trained['width']}x{trained['height']} "
                         f"{trained['encoding']} images; cannot export for {width}x{height} {encoding}")
    wrapper = streaming_module(ckpt, encoding)
    h0 = wrapper.initial_state()

    with torch.no_grad():
        program = torch.onnx.export(wrapper, (torch.from_numpy(frames[:1].copy()), h0), dynamo=True,
                                    opset_version=OPSET, input_names=["image", "h_in"],
                                    output_names=["force", "h_out"], verbose=False)
    proto = program.model_proto
    metadata = ModelMetadata(
        task=TASK,
        input=InputSpec(name="image", height=int(height), width=int(width), channels=int(channels),
                        encoding=encoding),
        outputs={"force": {"shape": [1, 3], "units": "N", "axes": ["x", "y", "z"],
                           "frame_id": training_summary.get("force_frame", ""), "frame": FORCE_FRAME}},
        state=StateSpec(inputs=("h_in",), outputs=("h_out",), shapes=(tuple(h0.shape),)),
        preprocessing=wrapper.preprocess.describe(height, width),
        training=training_summary,
        metrics=metrics,
    )
    diff = save_checked(proto, metadata, onnx_path, "training/export.py",
                        lambda tmp: parity(wrapper, tmp, frames), tolerance,
                        f"forces (N) over {len(frames)} streamed frames")
    write_model_card(onnx_path.with_suffix(".md"), metadata, command, parity_n=diff, parity_frames=len(frames))
    return metadata


def read_checkpoint(path) -> dict:
    """Load a training checkpoint with weights_only=True; a missing or unreadable file is a
    ValueError naming it.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"{path}: checkpoint not found") from None
    except Exception as exc:  # torch.load raises KeyError, RuntimeError, UnpicklingError, ...
        raise ValueError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None


def save_checked(proto, metadata: ModelMetadata, onnx_path: Path, producer: str,
                 difference, tolerance: Tolerance, what: str) -> float:
    """Write ``proto`` with ``metadata`` to ``onnx_path`` only if ``difference(tmp_file)`` (the
    largest ONNX vs PyTorch output difference and the output scale, measured on the written
    file through the node's runtime) is within ``tolerance``; else ExportError and no file.
    Returns the difference.
    """
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, metadata.to_json()
    proto.producer_name = f"tacforce {producer}"
    onnx.checker.check_model(proto)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = onnx_path.with_name(onnx_path.name + ".tmp")
    onnx.save(proto, tmp)
    try:
        diff, scale = difference(tmp)
        if not diff <= tolerance.limit(scale):
            raise ExportError(f"ONNX and PyTorch {what} differ by up to {diff:.2e}"
                              f"{' ' + tolerance.unit if tolerance.unit else ''} (tolerance "
                              f"{tolerance.describe(scale)}); {onnx_path} not written")
        os.replace(tmp, onnx_path)
    finally:
        tmp.unlink(missing_ok=True)
    return diff


def worst_difference(pairs) -> tuple[float, float]:
    """(max |onnx - torch|, max |torch|) over (onnx, torch) output pairs."""
    worst = scale = 0.0
    for got, expected in pairs:
        worst = max(worst, float(np.abs(got - expected).max()))
        scale = max(scale, float(np.abs(expected).max()))
    return worst, scale


@torch.no_grad()
def output_difference(module: nn.Module, onnx_file, task: str, output: str, frames,
                      warmup_runs: int = 2) -> tuple[float, float]:
    """`worst_difference` of ``output`` between OnnxModel and ``module`` over single inputs
    (stateless models).
    """
    runtime = OnnxModel(onnx_file, task, providers=["cpu"], warmup_runs=warmup_runs)
    return worst_difference((runtime.run(frame[None])[0][output],
                             module(torch.from_numpy(frame[None].copy())).numpy()) for frame in frames)


@torch.no_grad()
def parity(wrapper: TactileForceStep, onnx_file, frames: np.ndarray) -> tuple[float, float]:
    """`worst_difference` of the force (N) streaming ``frames`` through OnnxModel and PyTorch."""
    runtime = OnnxModel(onnx_file, TASK, providers=["cpu"])
    h, state, pairs = wrapper.initial_state(), None, []
    for frame in frames:
        expected, h = wrapper(torch.from_numpy(frame[None].copy()), h)
        outputs, state = runtime.run(frame[None], state)
        pairs.append((outputs["force"], expected.numpy()))
    return worst_difference(pairs)


def write_model_card(path: Path, meta: ModelMetadata, command: str, parity_n: float,
                     parity_frames: int) -> None:
    inp, state, t = meta.input, meta.state, meta.training
    frames, seqs = t.get("frames", {}), t.get("sequences", {})
    lines = [
        f"# {path.stem}.onnx — {meta.task}",
        "",
        "GenForce-style TemporalForce (RAFT-style encoder -> ConvGRU -> residual head): a stream of "
        "tactile marker images in, the contact force out, one frame at a time with recurrent state.",
        "",
        "## Inputs",
        f"- `{inp.name}`: uint8 [1, {inp.height}, {inp.width}, {inp.channels}] ({inp.encoding}, NHWC), "
        "the frame as the ROS message holds it",
        f"- `{state.inputs[0]}`: float32 {list(state.shapes[0])}, the recurrent state: zeros for the "
        f"first frame, then the previous `{state.outputs[0]}`",
        f"- preprocessing inside the graph: {meta.preprocessing}",
        "",
        "## Outputs",
        "- `force`: float32 [1, 3] = (Fx, Fy, Fz) in newtons, in the frame of the wrench topic the "
        f"model was trained on: `{meta.outputs['force'].get('frame_id') or 'not recorded'}` "
        f"({meta.outputs['force']['frame']}); the node stamps it with that frame_id",
        f"- `{state.outputs[0]}`: the next recurrent state",
        "- the output is bounded by the force range the model was trained with: "
        f"{_fmt_range(t.get('model_force_range'))}",
        "",
        "## Training data",
        f"- sequences: {seqs.get('train', '?')} train, {seqs.get('val', '?')} validation "
        f"({t.get('val_split', 'held-out sequences')}); frames: {frames.get('train', '?')} train, "
        f"{frames.get('val', '?')} validation",
        f"- training forces: min {_fmt(t.get('train_force_min'))} N, max {_fmt(t.get('train_force_max'))} N",
    ]
    for key in ("bags", "image_topic", "wrench_topic", "episode_topic", "pairing"):
        if t.get(key) is not None:
            value = ", ".join(map(str, t[key])) if isinstance(t[key], list) else t[key]
            lines.append(f"- {key.replace('_', ' ')}: {value}")
    lines += [f"- epochs: {t.get('epochs', '?')}, best epoch: {t.get('best_epoch', '?')}, "
              f"seed: {t.get('config', {}).get('seed', '?')}", ""]
    lines += ["## Validation metrics (held-out sequences of the training indenters, streamed from their "
              "first frame)", ""]
    if meta.metrics.get("rmse"):
        lines += ["```", format_table(meta.metrics), "```"]
    else:
        lines.append("none recorded")
    lines += ["", f"ONNX vs PyTorch: max |force difference| {parity_n:.2e} N over {parity_frames} streamed frames.",
              "", "## Made by", "", "```", command or "(command not recorded)", "```", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def _fmt(values) -> str:
    return "?" if values is None else "[" + ", ".join(f"{v + 0.0:.3g}" for v in values) + "]"


def _fmt_range(r) -> str:
    return "?" if not r else f"{_fmt(r['min'])} .. {_fmt(r['max'])} N"
