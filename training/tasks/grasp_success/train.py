"""The grasp-success task on the shared loop: after-grasp frame -> P(held).

    frames (uint8, the size the camera sends) -> each epoch: class-balanced indices
    -> the seed's augmentations on the uint8 frame -> GraspSuccessNet (in-graph preprocessing,
       so training sees what the exported model sees) -> BCE on the logit
    -> training/core/loop.py does the rest (AdamW over the trained weights, warmup + cosine,
       grad clip ``cfg.grad_clip``, best.pt / last.pt, resume)
    -> validation frames scored every epoch; best.pt at the best validation balanced accuracy
       (ties: lower log loss)

Checkpoints follow the core schema; their summary also carries a few validation frames that
`tacforce export grasp-success` streams for its parity check. Runs are deterministic on CPU for
a given seed, data and thread count, and a run resumed from last.pt matches an uninterrupted one.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from tacforce_ros.inference.contract import ENCODING_CHANNELS

from ...core import checkpoint
from ...core.loop import FitResult, fit
from ...core.registry import register
from ...models.grasp_success import GraspModelConfig, GraspSuccessNet, build
from .config import GraspTrainConfig
from .data import Augment, FrameSet, balanced_epoch
from .metrics import classification_metrics

TASK = "grasp_success"
LEGACY_FORMAT = "tacforce.grasp_success/1"
SAMPLE_FRAMES = 8
TIE_BREAK = 1e-9   # x log loss (<= 16.2 with its 1e-7 clip): far below one balanced-accuracy step
PRIVATE_SUMMARY = ("input", "samples", "sample_labels")


def score_of(metrics: dict) -> float:
    """Return the best.pt score: balanced accuracy, ties broken by the lower log loss."""
    return metrics["balanced_accuracy"] - TIE_BREAK * metrics["log_loss"]


def public_summary(summary: dict) -> dict:
    """Return the training summary minus the input spec and sample frames (not ONNX metadata)."""
    return {k: v for k, v in summary.items() if k not in PRIVATE_SUMMARY}


def load_model(ckpt: dict) -> GraspSuccessNet:
    """Build the model of a loaded grasp_success checkpoint (`checkpoint.load`), in eval mode."""
    model = GraspSuccessNet(GraspModelConfig.from_dict(ckpt["config"]["model"]))
    model.load_state_dict(ckpt["model"])
    return model.eval()


@checkpoint.register_upgrade(LEGACY_FORMAT)
def upgrade_legacy(old: dict) -> dict:
    """Convert a checkpoint of the pre-core train loop (the shipped models/grasp_success.pt) to the schema."""
    summary = {**old["summary"], "input": old["input"], "samples": old["samples"],
               "sample_labels": old["sample_labels"]}
    best_epoch = summary.get("best_epoch", old["epoch"])
    metrics = next((r["metrics"] for r in old["history"] if r["epoch"] == best_epoch), old["history"][-1]["metrics"])
    return checkpoint.make(TASK, epoch=old["epoch"], step=None, model=old["state_dict"],
                           config=GraspTrainConfig.from_dict(old["config"]).to_dict(), summary=summary,
                           history=old["history"],
                           best={"epoch": best_epoch, "score": score_of(metrics), "metrics": metrics})


@torch.no_grad()
def predict(model: GraspSuccessNet, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """P(held) for uint8 [N, H, W, C] frames, eager PyTorch."""
    model.eval()
    out = [torch.sigmoid(model(torch.from_numpy(np.ascontiguousarray(images[i:i + batch])))).reshape(-1)
           for i in range(0, len(images), batch)]
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


class EpochFrames(Dataset):
    """One epoch of (augmented frame, label): class-balanced (or shuffled) indices, redrawn per epoch.

    Each frame's augmentation comes from a generator seeded by (seed, epoch, position), so an epoch
    is the same whichever process or worker draws it and whether or not the run was resumed.
    """

    def __init__(self, frames: FrameSet, cfg: GraspTrainConfig):
        self.frames, self.seed, self.balance = frames, cfg.seed, cfg.balance
        n = len(frames)
        self.size = cfg.epoch_size or (2 * max(frames.counts().values()) if cfg.balance else n)
        self.augment = Augment(**cfg.augment) if cfg.augment else None
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        rng, n = np.random.default_rng([self.seed, epoch]), len(self.frames)
        self.order = (balanced_epoch(self.frames.labels, rng, self.size) if self.balance else
                      np.concatenate([rng.permutation(n) for _ in range(math.ceil(self.size / n))])[:self.size])

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int):
        k = int(self.order[i])
        image = self.frames.images[k]
        if self.augment is not None:
            image = self.augment(image, np.random.default_rng([self.seed, self.epoch, i]))
        return torch.from_numpy(np.ascontiguousarray(image)), torch.tensor(float(self.frames.labels[k]))


@register(TASK)
class GraspSuccessTask:
    """Data, model, loss and validation of the grasp-success task for `tacforce_training.core.loop.fit`."""

    score_name = "val_balanced_accuracy"
    higher_is_better = True

    def __init__(self, cfg: GraspTrainConfig, train_set: FrameSet, val_set: FrameSet):
        if len(train_set) == 0 or len(val_set) == 0:
            raise ValueError("need training and validation frames")
        if set(np.unique(train_set.labels)) != {0, 1}:
            raise ValueError("the training frames need both classes (success and failure)")
        if train_set.images.shape[1:] != val_set.images.shape[1:]:
            raise ValueError(f"training frames {train_set.images.shape[1:]} and validation frames "
                             f"{val_set.images.shape[1:]} differ in size")
        h, w, c = train_set.images.shape[1:]
        needed = ENCODING_CHANNELS[cfg.model.encoding]
        if c != needed:
            raise ValueError(f"frames have {c} channel(s); model encoding {cfg.model.encoding} needs {needed}")
        self.config, self.train_frames, self.val_frames = cfg, train_set, val_set
        model = build(cfg.model, cfg.weights)
        pick = np.linspace(0, len(val_set) - 1, min(SAMPLE_FRAMES, len(val_set))).round().astype(int)
        self.summary = {
            "frames": {"train": len(train_set), "val": len(val_set)},
            "train_counts": train_set.counts(), "val_counts": val_set.counts(),
            "train_source": train_set.source, "val_source": val_set.source,
            "frame_size": [int(w), int(h)], "frames_per_epoch": len(EpochFrames(train_set, cfg)),
            "trainable_parameters": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "frozen": list(model.frozen),
            "input": {"height": int(h), "width": int(w), "channels": int(c), "encoding": cfg.model.encoding},
            "samples": torch.from_numpy(val_set.images[pick].copy()),
            "sample_labels": torch.from_numpy(val_set.labels[pick].copy()),
        }

    def build_model(self) -> GraspSuccessNet:
        return build(self.config.model, self.config.weights)

    def train_set(self) -> EpochFrames:
        return EpochFrames(self.train_frames, self.config)

    def loss(self, model, batch) -> torch.Tensor:
        """BCE on the logit of "held"."""
        images, labels = batch
        return F.binary_cross_entropy_with_logits(model(images).reshape(-1).float(), labels.float())

    def val_items(self) -> list[int]:
        return list(range(len(self.val_frames)))

    @torch.no_grad()
    def predict(self, model, items, batch: int = 64) -> dict:
        """P(held) and the label of each validation frame in ``items``."""
        device = next(model.parameters()).device
        items = np.asarray(items, np.int64)
        probs = [torch.zeros(0)]
        for i in range(0, len(items), batch):
            images = torch.from_numpy(self.val_frames.images[items[i:i + batch]]).to(device)
            probs.append(torch.sigmoid(model(images).float()).reshape(-1).cpu())
        return {"prob": torch.cat(probs).double(), "label": torch.from_numpy(self.val_frames.labels[items])}

    def score(self, rows: dict) -> tuple[dict, float]:
        metrics = classification_metrics(rows["label"].numpy(), rows["prob"].numpy())
        return metrics, score_of(metrics)

    def check_resume(self, ckpt: dict, path) -> None:
        """Refuse to resume a run of another model, input or data set."""
        saved = GraspTrainConfig.from_dict(ckpt["config"])
        keys = ("input", "frames", "train_counts", "val_counts")
        if saved.model != self.config.model or any(ckpt["summary"][k] != self.summary[k] for k in keys):
            raise ValueError(f"{path} was trained with model {saved.model} on {ckpt['summary']['frames']} frames "
                             f"{ckpt['summary']['input']}; this run has {self.config.model} on "
                             f"{self.summary['frames']} frames {self.summary['input']}")

    def describe(self, r: dict, epochs: int) -> str:
        m = r["metrics"]
        return (f"epoch {r['epoch']}/{epochs}: train loss {r['train_loss']:.4f}, val accuracy {m['accuracy']:.4f}, "
                f"recall success {m['recall']['success']:.3f} failure {m['recall']['failure']:.3f}, "
                f"AUC {m['roc_auc'] or float('nan'):.4f} ({r['seconds']:.0f} s)")


def train(cfg: GraspTrainConfig, train_set: FrameSet, val_set: FrameSet, out_dir, *, resume: bool = False,
          device: str = "auto") -> FitResult:
    """Train on ``train_set``, validate on ``val_set``; with ``resume`` continue from ``out_dir/last.pt``."""
    return fit(GraspSuccessTask(cfg, train_set, val_set), cfg, out_dir, resume=resume, device=device)
