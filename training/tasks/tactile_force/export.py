"""Checkpoint -> ONNX file a node can stream: preprocessing + one recurrent step, with metadata.

The graph takes the frame exactly as a ROS message holds it (uint8 [1, H, W, C]), the sensor's
no-contact reference frame in the same form (models trained with a reference), and the GRU
state, and returns the force in newtons and the next state:

    image uint8 [1, H, W, C], [reference uint8 [1, H, W, C]], h_in float [1, hidden, s, s]
        -> force float [1, 3] (N), h_out

Exporter and checked save: training/core/export.py (the frames are streamed, state carried,
for the parity check).

"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from tacforce_ros.inference.contract import ENCODING_CHANNELS, InputSpec, ModelMetadata, StateSpec
from tacforce_ros.inference.runtime import OnnxModel

from ...core import checkpoint
from ...core.export import FORCE_TOLERANCE, OPSET, ModelCard, Tolerance, save_checked, worst_difference
from ...models.temporal_force import TemporalForce, TemporalForceConfig
from ...preprocess import ImagePreprocess
from .data import as_frames
from .metrics import format_table
from .train import TASK, load_model, model_preprocess

FORCE_FRAME = ("the training wrenches' frame; for the tactile simulator z points out of the elastomer, "
               "so pressing gives Fz < 0")


class TactileForceStep(nn.Module):
    """What the node runs per frame: preprocessing (of the frame and, for a reference model, of the
    no-contact reference), then one TemporalForce step.
    """

    def __init__(self, preprocess: ImagePreprocess, model: TemporalForce):
        super().__init__()
        self.preprocess, self.model = preprocess, model

    @property
    def input_names(self) -> list[str]:
        return ["image", "reference", "h_in"] if self.model.cfg.reference else ["image", "h_in"]

    def initial_state(self) -> torch.Tensor:
        return self.model.initial_state(1)

    def forward(self, image: torch.Tensor, *rest: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(image, h_in) or (image, reference, h_in) -> (force, h_out)."""
        *reference, h_in = rest
        ref = self.preprocess(reference[0]) if reference else None
        return self.model.step(self.preprocess(image), h_in, ref)

    def inputs(self, frame: np.ndarray, reference: np.ndarray) -> tuple[torch.Tensor, ...]:
        """Return the image (and reference) tensors of one uint8 [1, H, W, C] frame, as the graph takes them."""
        image = torch.from_numpy(np.ascontiguousarray(frame))
        return (image, torch.from_numpy(np.ascontiguousarray(reference))) if self.model.cfg.reference else (image,)


def streaming_module(ckpt: dict, encoding: str | None = None) -> TactileForceStep:
    """Turn a loaded checkpoint into the per-frame module the graph is exported from, in eval mode.

    ``encoding`` defaults to the training encoding; it may differ in channel order only.
    """
    model = load_model(ckpt)
    trained = ckpt["summary"]["input"]
    encoding = encoding or trained["encoding"]
    if ENCODING_CHANNELS.get(encoding) != trained["channels"]:
        raise ValueError(f"model was trained on {trained['encoding']} images; cannot take {encoding}")
    return TactileForceStep(model_preprocess(model.cfg, encoding), model).eval()


def load_streaming_module(checkpoint_path, encoding: str | None = None) -> TactileForceStep:
    """best.pt / last.pt -> TactileForceStep (PyTorch eager twin of the exported graph)."""
    return streaming_module(checkpoint.load(checkpoint_path, TASK), encoding)


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
    ckpt = checkpoint.load(checkpoint_path, TASK)
    frames = as_frames(sample_images)
    height, width, channels = frames.shape[1:]
    trained = ckpt["summary"]["input"]
    if (trained["channels"], trained["height"], trained["width"]) != (ENCODING_CHANNELS.get(encoding), height, width):
        raise ValueError(f"{checkpoint_path} was trained on {trained['width']}x{trained['height']} "
                         f"{trained['encoding']} images; cannot export for {width}x{height} {encoding}")
    wrapper = streaming_module(ckpt, encoding)
    h0 = wrapper.initial_state()
    reference = frames[:1]      # the sample sequence's first frame, for the trace and the parity check

    with torch.no_grad():
        program = torch.onnx.export(wrapper, (*wrapper.inputs(frames[:1], reference), h0), dynamo=True,
                                    opset_version=OPSET, input_names=wrapper.input_names,
                                    output_names=["force", "h_out"], verbose=False)
    proto = program.model_proto
    metadata = ModelMetadata(
        task=TASK,
        input=InputSpec(name="image", height=int(height), width=int(width), channels=int(channels),
                        encoding=encoding, reference="reference" if wrapper.model.cfg.reference else None),
        outputs={"force": {"shape": [1, 3], "units": "N", "axes": ["x", "y", "z"],
                           "frame_id": training_summary.get("force_frame", ""), "frame": FORCE_FRAME}},
        state=StateSpec(inputs=("h_in",), outputs=("h_out",), shapes=(tuple(h0.shape),)),
        preprocessing=wrapper.preprocess.describe(height, width),
        training=training_summary,
        metrics=metrics,
    )
    diff = save_checked(proto, metadata, onnx_path, "training/tasks/tactile_force/export.py",
                        lambda tmp: parity(wrapper, tmp, frames, reference), tolerance,
                        f"forces (N) over {len(frames)} streamed frames")
    write_model_card(onnx_path.with_suffix(".md"), metadata, command, parity_n=diff, parity_frames=len(frames))
    return metadata


@torch.no_grad()
def parity(wrapper: TactileForceStep, onnx_file, frames: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """`worst_difference` of the force (N) streaming ``frames`` through OnnxModel and PyTorch."""
    runtime = OnnxModel(onnx_file, TASK, providers=["cpu"])
    h, state, pairs = wrapper.initial_state(), None, []
    ref = reference if wrapper.model.cfg.reference else None
    for frame in frames:
        expected, h = wrapper(*wrapper.inputs(frame[None], reference), h)
        outputs, state = runtime.run(frame[None], state, reference=ref)
        pairs.append((outputs["force"], expected.numpy()))
    return worst_difference(pairs)


def write_model_card(path: Path, meta: ModelMetadata, command: str, parity_n: float,
                     parity_frames: int) -> None:
    state, t = meta.state, meta.training
    frames, seqs = t.get("frames", {}), t.get("sequences", {})
    training = [f"sequences: {seqs.get('train', '?')} train, {seqs.get('val', '?')} validation "
                f"({t.get('val_split', 'held-out sequences')}); frames: {frames.get('train', '?')} train, "
                f"{frames.get('val', '?')} validation",
                f"training forces: min {_fmt(t.get('train_force_min'))} N, max {_fmt(t.get('train_force_max'))} N"]
    for key in ("bags", "image_topic", "wrench_topic", "episode_topic", "pairing"):
        if t.get(key) is not None:
            value = ", ".join(map(str, t[key])) if isinstance(t[key], list) else t[key]
            training.append(f"{key.replace('_', ' ')}: {value}")
    if t.get("reference"):
        training.append(f"no-contact reference: {t['reference']}")
    if t.get("config", {}).get("augment"):
        training.append(f"augmentation: {_fmt_dict(t['config']['augment'])}")
    training.append(f"epochs: {t.get('epochs', '?')}, best epoch: {t.get('best_epoch', '?')}, "
                    f"seed: {t.get('config', {}).get('seed', '?')}")
    inputs = [f"`{state.inputs[0]}`: float32 {list(state.shapes[0])}, the recurrent state: zeros for the "
              f"first frame, then the previous `{state.outputs[0]}`"]
    model_cfg = TemporalForceConfig.from_dict(t.get("config", {}).get("model", {}))
    if meta.input.reference:
        sees = {"difference": "the frame minus it",
                "frame_and_difference": "the frame and the frame minus it"}[model_cfg.reference_input]
        inputs.insert(0, f"`{meta.input.reference}`: uint8, the image input's shape and encoding: the sensor's "
                         "no-contact frame (the node averages its first frames, or takes ~/capture_reference or "
                         f"the reference_image file); the network sees {sees}")
    if t.get("model_force_range"):
        extent = ("the output is bounded by the force range the model was trained with: "
                  f"{_fmt_range(t.get('model_force_range'))}")
    else:
        extent = ("the output is not bounded: beyond the training forces it extrapolates, and the node flags "
                  "such frames on /diagnostics and in its log")
    channels = "grey" if meta.input.channels == 1 or "luma" in meta.preprocessing else "colour (RGB)"
    ModelCard(
        about=f"GenForce-style TemporalForce ({architecture(model_cfg)}): a stream of tactile images ({channels}) "
              "in, the contact force out, one frame at a time with recurrent state.",
        inputs=inputs,
        outputs=["`force`: float32 [1, 3] = (Fx, Fy, Fz) in newtons, in the frame of the wrench topic the "
                 f"model was trained on: `{meta.outputs['force'].get('frame_id') or 'not recorded'}` "
                 f"({meta.outputs['force']['frame']}); the node stamps it with that frame_id",
                 f"`{state.outputs[0]}`: the next recurrent state", extent],
        training=training,
        validation_title="held-out sequences of the training indenters, streamed from their first frame",
        validation=format_table(meta.metrics) if meta.metrics.get("rmse") else "",
    ).write(path, meta, f"ONNX vs PyTorch: max |force difference| {parity_n:.2e} N over {parity_frames} "
                        "streamed frames.", command)


def architecture(cfg: TemporalForceConfig) -> str:
    """One line on the network a config builds, for the model card."""
    norm = "" if cfg.encoder_norm == "none" else f", {cfg.encoder_norm} norm"
    encoder = ("plain conv encoder" if cfg.encoder == "plain" else "RAFT-style residual encoder") + norm
    head = "residual head" if cfg.head_channels else "linear readout"
    return f"{encoder} -> ConvGRU -> {head} ({cfg.head} output)"


def _fmt(values) -> str:
    return "?" if values is None else "[" + ", ".join(f"{v + 0.0:.3g}" for v in values) + "]"


def _fmt_dict(d: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items())


def _fmt_range(r) -> str:
    return "?" if not r else f"{_fmt(r['min'])} .. {_fmt(r['max'])} N"
