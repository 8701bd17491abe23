"""The train loop for the grasp-success classifiers (after-grasp frame -> P(held)).

    frames (uint8, the size the camera sends) -> each epoch: class-balanced indices
    -> the seed's augmentations on the uint8 frame -> GraspSuccessNet (in-graph preprocessing,
       so training sees what the exported model sees) -> BCE on the logit
    -> AdamW over the trainable parameters (frozen layers excluded), warmup then cosine decay
    -> validation frames scored every epoch -> last.pt every epoch, best.pt at the best
       validation balanced accuracy (ties: lower log loss)

Checkpoints hold only tensors, dicts, lists, numbers and strings, so they load with
``torch.load(path, weights_only=True)``; they also carry a few validation frames that
`tacforce export grasp-success` streams for its parity check. Runs are deterministic on CPU for
a given seed, data and thread count.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .grasp_success_data import Augment, FrameSet, balanced_epoch
from .grasp_success_metrics import classification_metrics
from .models.grasp_success import GraspModelConfig, GraspSuccessNet, build

CHECKPOINT_FORMAT = "tacforce.grasp_success/1"
SAMPLE_FRAMES = 8


@dataclass
class GraspTrainConfig:
    model: GraspModelConfig = field(default_factory=GraspModelConfig)
    epochs: int = 15
    batch_size: int = 32
    lr: float = 2e-3              # AdamW peak (seed 002: RMSprop 1e-4; seed 004: SGD 1e-3)
    min_lr: float = 2e-5
    warmup_steps: int = 50
    weight_decay: float = 1e-4
    epoch_size: int = 0           # frames per epoch; 0 = twice the larger class (balanced) / all
    balance: bool = True          # equal class frequency per epoch (oversample the minority)
    augment: dict | None = field(default_factory=lambda: asdict(Augment()))
    seed: int = 0
    num_threads: int = 0          # torch.set_num_threads; 0 leaves torch's default
    weights: str | None = None    # local pretrained weights file (freezes the early layers)

    def to_dict(self) -> dict:
        return {**asdict(self), "model": self.model.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "GraspTrainConfig":
        return cls(**{**d, "model": GraspModelConfig.from_dict(d["model"])})


@dataclass
class GraspTrainResult:
    best_path: Path
    last_path: Path
    best_epoch: int
    metrics: dict
    history: list
    summary: dict


def load_model(checkpoint: dict) -> GraspSuccessNet:
    """Load a checkpoint dict (from torch.load) -> GraspSuccessNet with its weights, eval mode."""
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"not a grasp-success checkpoint (format {checkpoint.get('format')!r})")
    model = GraspSuccessNet(GraspModelConfig.from_dict(checkpoint["config"]["model"]))
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


@torch.no_grad()
def predict(model: GraspSuccessNet, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """P(held) for uint8 [N, H, W, C] frames, eager PyTorch."""
    model.eval()
    out = [torch.sigmoid(model(torch.from_numpy(np.ascontiguousarray(images[i:i + batch])))).reshape(-1)
           for i in range(0, len(images), batch)]
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


def train(cfg: GraspTrainConfig, train_set: FrameSet, val_set: FrameSet, out_dir: str | Path,
          progress: bool = True) -> GraspTrainResult:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if len(train_set) == 0 or len(val_set) == 0:
        raise ValueError("need training and validation frames")
    if set(np.unique(train_set.labels)) != {0, 1}:
        raise ValueError("the training frames need both classes (success and failure)")
    if train_set.images.shape[1:] != val_set.images.shape[1:]:
        raise ValueError(f"training frames {train_set.images.shape[1:]} and validation frames "
                         f"{val_set.images.shape[1:]} differ in size")
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = build(cfg.model, cfg.weights)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() > 1]
    no_decay = [p for p in params if p.dim() <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    augment = Augment(**cfg.augment) if cfg.augment else None
    n = len(train_set)
    per_epoch = cfg.epoch_size or (2 * max(train_set.counts().values()) if cfg.balance else n)
    steps_per_epoch = math.ceil(per_epoch / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        t = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
        return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, t)))

    h, w, c = train_set.images.shape[1:]
    encoding_channels = {"rgb8": 3, "bgr8": 3, "mono8": 1}[cfg.model.encoding]
    if c != encoding_channels:
        raise ValueError(f"frames have {c} channel(s); model encoding {cfg.model.encoding} needs {encoding_channels}")
    pick = np.linspace(0, len(val_set) - 1, min(SAMPLE_FRAMES, len(val_set))).round().astype(int)
    summary = {
        "frames": {"train": n, "val": len(val_set)},
        "train_counts": train_set.counts(), "val_counts": val_set.counts(),
        "train_source": train_set.source, "val_source": val_set.source,
        "frame_size": [int(w), int(h)], "frames_per_epoch": steps_per_epoch * cfg.batch_size,
        "trainable_parameters": int(sum(p.numel() for p in params)),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "frozen": list(model.frozen),
    }
    base = {"format": CHECKPOINT_FORMAT, "config": cfg.to_dict(),
            "input": {"height": int(h), "width": int(w), "channels": int(c), "encoding": cfg.model.encoding},
            "samples": torch.from_numpy(val_set.images[pick].copy()),
            "sample_labels": torch.from_numpy(val_set.labels[pick].copy()), "summary": summary}
    history, best, step = [], None, 0
    best_path, last_path = out_dir / "best.pt", out_dir / "last.pt"
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = (balanced_epoch(train_set.labels, rng, per_epoch) if cfg.balance
                 else np.concatenate([rng.permutation(n) for _ in range(math.ceil(per_epoch / n))])[:per_epoch])
        losses = []
        bar = tqdm(range(0, len(order), cfg.batch_size), desc=f"epoch {epoch}/{cfg.epochs}", unit="batch",
                   leave=False, disable=not progress, mininterval=2.0)
        for i in bar:
            idx = order[i:i + cfg.batch_size]
            batch = train_set.images[idx]
            if augment is not None:
                batch = np.stack([augment(im, rng) for im in batch])
            target = torch.from_numpy(train_set.labels[idx].astype(np.float32))
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            logit = model(torch.from_numpy(batch)).reshape(-1)
            loss = F.binary_cross_entropy_with_logits(logit, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            losses.append(loss.item())
            step += 1
        metrics = classification_metrics(val_set.labels, predict(model, val_set.images))
        entry = {"epoch": epoch, "train_loss": float(np.mean(losses)), "seconds": time.perf_counter() - t0,
                 "metrics": metrics}
        history.append(entry)
        key = (metrics["balanced_accuracy"], -metrics["log_loss"])
        ckpt = {**base, "epoch": epoch, "state_dict": model.state_dict(), "history": history}
        torch.save(ckpt, last_path)
        if best is None or key > best[0]:
            best = (key, epoch, metrics)
            torch.save(ckpt, best_path)
        if progress:
            print(f"epoch {epoch}: train loss {entry['train_loss']:.4f}, val accuracy {metrics['accuracy']:.4f}, "
                  f"recall success {metrics['recall']['success']:.3f} failure {metrics['recall']['failure']:.3f}, "
                  f"AUC {metrics['roc_auc'] or float('nan'):.4f} ({entry['seconds']:.0f} s)", flush=True)
    summary.update(epochs=cfg.epochs, best_epoch=best[1])
    ckpt = torch.load(best_path, map_location="cpu", weights_only=True)
    ckpt["summary"] = summary
    torch.save(ckpt, best_path)
    return GraspTrainResult(best_path, last_path, best[1], best[2], history, summary)
