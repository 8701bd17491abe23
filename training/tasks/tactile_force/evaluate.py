"""Score an exported tactile_force ONNX model on recorded sequences, the way the node runs it.

Each sequence is streamed frame by frame through OnnxModel (the node's runtime wrapper), the
recurrent state carried from frame to frame and reset to zeros at each sequence start. No
PyTorch is involved, so this scores the file that ships, preprocessing included. A model with
a reference input gets each sequence's no-contact frame (the mean of its frames before the first
contact, as training takes it and as the node averages its first frames). Frames whose
true force lies beyond the model's training range are also scored on their own, and the node's
own range check (`ForceRange`) is scored as a detector of them.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tacforce_ros.data.tactile_pairs import no_contact_reference
from tacforce_ros.inference.runtime import OnnxModel
from tacforce_ros.perception.force import BEYOND, ForceRange

from .metrics import AXES, force_metrics

TASK = "tactile_force"


@dataclass
class Predictions:
    """Every evaluated frame: estimate and truth (N, 3) in N, its sequence, stamp and the node's range note."""

    pred: np.ndarray
    true: np.ndarray
    sequence: np.ndarray
    stamps_ns: np.ndarray
    bags: list
    notes: list
    limits: ForceRange | None

    def beyond_training(self) -> np.ndarray:
        """Frames whose true force lies more than BEYOND of the span outside the training labels' range."""
        if self.limits is None:
            return np.zeros(len(self.true), bool)
        margin = BEYOND * (self.limits.high - self.limits.low)
        return ((self.true < self.limits.low - margin) | (self.true > self.limits.high + margin)).any(1)


def predict_sequences(model_path, sequences, providers=("cpu",)) -> Predictions:
    """Stream every sequence through the ONNX model (state reset per sequence)."""
    model = OnnxModel(model_path, TASK, providers=providers)
    name = next(iter(model.metadata.outputs))
    limits = ForceRange.from_training(model.metadata.training)
    preds, trues, index, stamps, bags, notes = [], [], [], [], [], []
    for k, seq in enumerate(s for s in sequences if len(s.images)):
        state = None
        reference = no_contact_reference(seq.images, seq.forces)[0][None] if model.metadata.input.reference else None
        for image in seq.images:
            image = np.asarray(image, np.uint8)
            image = image[..., None] if image.ndim == 2 else image
            model.metadata.input.check_image(image.shape)
            outputs, state = model.run(image[None], state, reference=reference)
            pred = np.asarray(outputs[name], np.float64).reshape(3)
            preds.append(pred)
            notes.append(limits.check(pred) if limits else "")
        trues.append(np.asarray(seq.forces, np.float64).reshape(-1, 3))
        index.append(np.full(len(seq.images), k))
        stamps.append(np.asarray(getattr(seq, "stamps_ns", np.zeros(len(seq.images))), np.int64))
        bags.append(str(getattr(seq, "bag", "")))
    if not preds:
        raise ValueError("no frames to evaluate")
    return Predictions(np.stack(preds), np.concatenate(trues), np.concatenate(index), np.concatenate(stamps),
                       bags, notes, limits)


def evaluate_tactile_force(model_path, sequences, providers=("cpu",)) -> dict:
    """Stream ``sequences`` through the model and `score` its estimates."""
    return score(predict_sequences(model_path, sequences, providers), model_path)


def score(p: Predictions, model_path) -> dict:
    """force_metrics over every frame (+ ``sequences`` count and ``model``); with a training range in
    the model, also ``beyond_training_range``: those metrics on the frames whose true force lies
    beyond it, and how many of them (and of the others) the node's range check flags.
    """
    out = {**force_metrics(p.pred, p.true), "sequences": int(p.sequence.max()) + 1, "model": str(model_path)}
    if p.limits is not None:
        beyond, flagged = p.beyond_training(), np.array([bool(n) for n in p.notes])
        out["beyond_training_range"] = {
            "frames": int(beyond.sum()),
            "metrics": force_metrics(p.pred[beyond], p.true[beyond]) if beyond.any() else None,
            "flagged": int((flagged & beyond).sum()),
            "flagged_within": int((flagged & ~beyond).sum()),
        }
    return out


def write_predictions(path: Path, p: Predictions) -> None:
    """One CSV row per frame: where it came from, truth, estimate, and the node's range note."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["bag", "sequence", "stamp_ns", *(f"f{a}_true" for a in AXES), *(f"f{a}_est" for a in AXES),
                    "range_note"])
        for i in range(len(p.true)):
            w.writerow([p.bags[p.sequence[i]], int(p.sequence[i]), int(p.stamps_ns[i]),
                        *(f"{v:.5f}" for v in p.true[i]), *(f"{v:.5f}" for v in p.pred[i]), p.notes[i]])


def plot_predictions(path: Path, p: Predictions, title: str) -> None:
    """Plot true vs estimated force over the frames (sequences end to end) and a scatter per axis,
    the training range shaded, so a user sees where the model is extrapolating.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 8), gridspec_kw={"height_ratios": [1, 1.2]})
    frames = np.arange(len(p.true))
    for i, a in enumerate(AXES):
        top, scatter = axes[0, i], axes[1, i]
        top.plot(frames, p.true[:, i], lw=0.8, label="true")
        top.plot(frames, p.pred[:, i], lw=0.8, label="estimated")
        lo, hi = float(min(p.true[:, i].min(), p.pred[:, i].min())), float(max(p.true[:, i].max(), p.pred[:, i].max()))
        scatter.scatter(p.true[:, i], p.pred[:, i], s=2, alpha=0.4)
        scatter.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        if p.limits is not None:
            for ax in (top, scatter):
                ax.axhspan(p.limits.low[i], p.limits.high[i], color="green", alpha=0.08, label="trained range")
            scatter.axvspan(p.limits.low[i], p.limits.high[i], color="green", alpha=0.08)
        top.set(title=f"F{a}", xlabel="frame (sequences end to end)", ylabel="N")
        scatter.set(xlabel=f"true F{a} [N]", ylabel=f"estimated F{a} [N]")
    axes[0, 0].legend(loc="lower left", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
