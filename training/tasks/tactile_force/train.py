"""The tactile force task on the shared loop: TemporalForce on clips, validated by streaming whole sequences.

    sequences -> split by whole sequence (episode) into train / validation
    -> every frame, and each sequence's no-contact reference, through ImagePreprocess once
       (the graph's exact input), in RAM or a memmap
    -> each epoch: clips of ``clip_length`` frames at random starts, zero initial state
       (as GenForce; the model learns to pick up a stream mid-contact), augmented (augment.py)
    -> squared error (or L1) on normalised forces at every step (standardised for the linear
       head, min-max for the legacy sigmoid one; training/core/loop.py does the rest)
    -> validation: each held-out sequence streamed from its first frame, as the node does;
       the L1 on normalised forces selects best.pt

Runs are deterministic on CPU for a given seed, data and thread count, and a run resumed from
last.pt matches an uninterrupted one.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from tacforce_ros.inference.contract import ENCODING_CHANNELS
from tacforce_ros.perception.force import REFERENCE_FRAMES

from ...core import checkpoint
from ...core.loop import FitResult, fit
from ...core.registry import register
from ...models.temporal_force import TemporalForce, TemporalForceConfig
from ...preprocess import ImagePreprocess
from .augment import Augment
from .config import TrainConfig
from .data import Clips, SequenceFrames, as_frames, force_range, infer_encoding, split_sequences
from .metrics import force_metrics

TASK = "tactile_force"
LEGACY_FORMAT = "tacforce.temporal_force/1"


def model_preprocess(cfg: TemporalForceConfig, encoding: str) -> ImagePreprocess:
    """Return the in-graph preprocessing a TemporalForce config asks for (training and export share it)."""
    return ImagePreprocess(cfg.image_size, encoding, cfg.in_channels, marker_threshold=cfg.marker_threshold,
                           dark_markers=cfg.dark_markers)


def load_model(ckpt: dict) -> TemporalForce:
    """Build the model of a loaded tactile_force checkpoint, in eval mode."""
    model = TemporalForce(TrainConfig.from_dict(ckpt["config"]).model)
    model.load_state_dict(ckpt["model"])
    return model.eval()


@checkpoint.register_upgrade(LEGACY_FORMAT)
def upgrade_legacy(old: dict) -> dict:
    """Convert a checkpoint of the pre-core train loop (the shipped models/tactile_force.pt) to the schema."""
    best = old["best"]
    return checkpoint.make(TASK, epoch=old["epoch"], step=old["step"], model=old["model"], config=old["train_config"],
                           summary={**old["summary"], "input": old["input"]}, history=old["history"],
                           best={"epoch": best["epoch"], "score": best["val_loss"], "metrics": best["metrics"]})


@register(TASK)
class TactileForceTask:
    """Data, model, loss and validation of the tactile force task for `tacforce_training.core.loop.fit`."""

    score_name = "val_loss"
    higher_is_better = False

    def __init__(self, cfg: TrainConfig, sequences, out_dir, *, val_sequences=None, encoding: str | None = None):
        self.config = cfg
        sequences = [s for s in sequences if len(s.images)]
        if val_sequences is None:
            train_idx, val_idx = split_sequences(len(sequences), cfg.val_fraction, cfg.seed)
            train_seqs, val_seqs = [sequences[i] for i in train_idx], [sequences[i] for i in val_idx]
        else:
            train_seqs, val_seqs, val_idx = sequences, [s for s in val_sequences if len(s.images)], []
            if not train_seqs or not val_seqs:
                raise ValueError("need at least one training and one validation sequence")
        height, width, channels = as_frames(train_seqs[0].images[:1]).shape[1:]
        encoding = encoding or infer_encoding(channels)
        if ENCODING_CHANNELS.get(encoding) != channels:
            raise ValueError(f"encoding {encoding!r} does not match {channels}-channel images")
        self.input = {"height": int(height), "width": int(width), "channels": int(channels), "encoding": encoding}

        preprocess = model_preprocess(cfg.model, encoding)
        budget = cfg.memory_budget_mb * 2 ** 20
        cache = Path(cfg.cache_dir or Path(out_dir) / "cache")
        rank = os.environ.get("RANK", "0")    # one cache file per process under torchrun
        self.train_data = SequenceFrames(train_seqs, preprocess, "training", budget, cache / f"train.{rank}.npy")
        self.val_data = SequenceFrames(val_seqs, preprocess, "validation", budget, cache / f"val.{rank}.npy")
        if self.val_data.frame_shape != self.train_data.frame_shape:
            raise ValueError(f"validation frames are {self.val_data.frame_shape}, "
                             f"training frames {self.train_data.frame_shape}")

        forces = torch.cat(self.train_data.forces)
        lo, hi = force_range([f.numpy() for f in self.train_data.forces], cfg.force_margin, cfg.min_force_span)
        self.lo, self.hi = torch.from_numpy(lo), torch.from_numpy(hi)
        self.mean = forces.mean(0)
        self.std = forces.std(0).clamp(min=cfg.min_force_span / 4)
        self.unit = self.build_model().force_unit.clone()     # N per unit of the head: the loss's scale
        self.augment = Augment(cfg.augment, preprocess.mean, preprocess.std,
                               photometric=cfg.model.marker_threshold is None)
        self.summary = {
            "sequences": {"train": len(train_seqs), "val": len(val_seqs)},
            "frames": {"train": sum(self.train_data.lengths), "val": sum(self.val_data.lengths)},
            "sequence_lengths": {"train": self.train_data.lengths, "val": self.val_data.lengths},
            "val_split": "held-out sequences" if val_sequences is None else "separate validation set",
            "val_sequence_indices": val_idx,
            "train_force_min": forces.min(0).values.tolist(),
            "train_force_max": forces.max(0).values.tolist(),
            **({"model_force_range": {"min": lo.tolist(), "max": hi.tolist()}} if cfg.model.head == "sigmoid" else
               {"force_mean": self.mean.tolist(), "force_std": self.std.tolist()}),
            "input": self.input,
            "input_channel_means": {"min": self.train_data.channel_means[0], "max": self.train_data.channel_means[1]},
            "reference": (f"each sequence's mean of up to {REFERENCE_FRAMES} frames before its first contact; "
                          f"{self.train_data.reference_frames.count(0)} of {len(train_seqs)} training sequences "
                          "started in contact and used their first frame") if cfg.model.reference else None,
            "frame_cache": "memmap" if self.train_data.store.on_disk else "ram",
            "config": cfg.to_dict(),
            "threads": torch.get_num_threads(),
            "torch": str(torch.__version__),
        }

    def build_model(self) -> TemporalForce:
        model = TemporalForce(self.config.model)
        if self.config.model.head == "sigmoid":
            model.set_force_range(self.lo, self.hi)
        else:
            model.set_force_scale(self.mean, self.std)
        return model

    def train_set(self) -> Clips:
        return Clips(self.train_data, self.config.clip_length, self.config.seed, self.augment)

    def loss(self, model, batch) -> torch.Tensor:
        """Masked L1 (or squared error) on normalised forces over every step of the clips."""
        x, ref, y, mask = batch
        err = (model(x, reference=ref) - y) / self.unit.to(y.device)
        err = (err.abs() if self.config.loss == "l1" else err ** 2).mean(-1)
        return (err * mask).sum() / mask.sum()

    def val_items(self) -> list[int]:
        return list(range(len(self.val_data.lengths)))

    def predict(self, model: TemporalForce, items, chunk: int = 128) -> dict:
        """Stream each sequence from a zero state (in chunks, state carried) -> rows of pred and true forces."""
        device = next(model.parameters()).device
        preds, trues = [torch.zeros(0, 3)], [torch.zeros(0, 3)]
        for s in items:
            frames, h, ref = self.val_data.frames(s), None, self.val_data.references[s][None].to(device)
            for i in range(0, len(frames), chunk):
                f, h = model.rollout(frames[i:i + chunk][None].to(device), h, ref)
                preds.append(f[0].float().cpu())
            trues.append(self.val_data.forces[s])
        return {"pred": torch.cat(preds), "true": torch.cat(trues)}

    def score(self, rows: dict) -> tuple[dict, float]:
        pred, true = rows["pred"], rows["true"]
        loss = ((pred - true) / self.unit).abs().mean().item()
        return force_metrics(pred.numpy(), true.numpy()), loss

    def check_resume(self, ckpt: dict, path) -> None:
        """Refuse to resume a run of another model, input or data set."""
        saved = TrainConfig.from_dict(ckpt["config"])
        if saved.model != self.config.model or ckpt["summary"]["input"] != self.input:
            raise ValueError(f"{path} was trained with model {saved.model} on {ckpt['summary']['input']}; "
                             f"this run has {self.config.model} on {self.input}")
        if ckpt["summary"]["sequence_lengths"] != self.summary["sequence_lengths"]:
            raise ValueError(f"{path} was trained on different data (sequence lengths differ)")

    def describe(self, r: dict, epochs: int) -> str:
        m = r["metrics"]
        rmse = " ".join(f"{a} {m['rmse'][a]:.3f}" for a in "xyz")
        r2 = " ".join(f"{a} {m['r2'][a]:.3f}" for a in "xyz")
        return (f"epoch {r['epoch']}/{epochs}  train {self.config.loss.upper()} {r['train_loss']:.4f}"
                f"  val L1 {r['val_loss']:.4f}  RMSE[N] {rmse}  R² {r2}  {r['seconds']:.1f} s"
                f"  {r['samples_per_s']:.1f} clips/s")


def train(cfg: TrainConfig, sequences, out_dir, *, val_sequences=None, encoding: str | None = None,
          resume: bool = False, device: str = "auto") -> FitResult:
    """Train on ``sequences``; validate on ``val_sequences`` or on a held-out share of them.

    Writes ``out_dir/last.pt`` after every epoch and ``out_dir/best.pt`` whenever the
    validation loss improves. With ``resume`` it continues from ``last.pt`` (same data and
    model config required; ``cfg.epochs`` may be raised to train longer).
    """
    task = TactileForceTask(cfg, sequences, out_dir, val_sequences=val_sequences, encoding=encoding)
    return fit(task, cfg, out_dir, resume=resume, device=device)
