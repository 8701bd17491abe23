"""The train loop for GraspNet (seed 001): one labelled grasp per 227 px patch, masked loss.

    attempts (synthetic or attempts.csv folder) -> split by image into train / validation
    -> each step: a balanced batch of patches (half successes), randomly rotated by k x 90
       degrees and mirrored with the label angle moved to match
    -> cross-entropy of the active angle bin's two logits only -> Adam, lr 1e-3 decaying
       to 1e-4 (cosine), as the seed
    -> validation every epoch on un-augmented patches; best.pt at the lowest validation loss

Checkpoints hold only tensors, dicts, lists, numbers and strings (``weights_only=True``).
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .core.checkpoint import read as read_checkpoint
from .grasp_map_data import GraspAttempts, PatchSampler, mean_rgb
from .models.grasp_net import GraspNet, GraspNetConfig, load_alexnet_features, masked_bin_loss
from .preprocess import MeanPixelNormalise

CHECKPOINT_FORMAT = "tacforce.grasp_net/1"
NORMALISE_STD = 0.25


@dataclass
class GraspTrainConfig:
    model: GraspNetConfig = field(default_factory=GraspNetConfig)
    batch_size: int = 64
    epochs: int = 10
    steps_per_epoch: int = 0      # 0: one pass over the training attempts
    lr: float = 1e-3              # the seed's Adam schedule: 1e-3 decaying to 1e-4
    min_lr: float = 1e-4
    weight_decay: float = 1e-4
    val_fraction: float = 0.1     # of the images, when no validation set is given
    balance: bool = True          # half successes per batch (real trial sets are skewed)
    augment: bool = True          # k x 90 degree rotations and mirrors, label-exact
    alexnet_weights: str = ""     # local AlexNet file for conv1-5 (then frozen); "" = from scratch
    # start from a GraspNet checkpoint (e.g. synthetic pre-training before real trials); its
    # network config and mean colour are kept
    init_checkpoint: str = ""
    seed: int = 0
    num_threads: int = 0

    def to_dict(self) -> dict:
        return {**asdict(self), "model": self.model.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "GraspTrainConfig":
        return cls(**{**d, "model": GraspNetConfig.from_dict(d["model"])})


@dataclass
class GraspTrainResult:
    best_path: Path
    last_path: Path
    best_epoch: int
    metrics: dict
    history: list
    summary: dict


def split_images(count: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    order = np.random.default_rng(seed).permutation(count)
    n_val = max(1, round(count * val_fraction)) if count > 1 else 0
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def load_grasp_model(checkpoint: dict) -> tuple[GraspNet, MeanPixelNormalise]:
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"not a GraspNet checkpoint (format {checkpoint.get('format')!r})")
    model = GraspNet(GraspNetConfig.from_dict(checkpoint["config"]["model"]))
    model.load_state_dict(checkpoint["model"])
    norm = checkpoint["normalisation"]
    return model.eval(), MeanPixelNormalise(norm["mean_rgb"], norm["std"])


@torch.no_grad()
def validate(model: GraspNet, normalise: MeanPixelNormalise, sampler: PatchSampler,
             batch: int = 256) -> dict:
    """Loss and per-attempt accuracy (P(success) at the label's bin >= 0.5) on un-augmented patches."""
    model.eval()
    n = len(sampler.attempts)
    losses, correct, tp, fp, fn = 0.0, 0, 0, 0, 0
    for start in range(0, n, batch):
        patches, bins, ok = sampler.batch(np.arange(start, min(n, start + batch)))
        logits = model(normalise(torch.from_numpy(patches)))
        b, y = torch.from_numpy(bins), torch.from_numpy(ok)
        losses += float(masked_bin_loss(logits, b, y)) * len(bins)
        pairs = logits.view(len(bins), -1, 2)[torch.arange(len(bins)), b]
        pred = (pairs[:, 1] > pairs[:, 0]).numpy()
        truth = ok > 0.5
        correct += int((pred == truth).sum())
        tp += int((pred & truth).sum())
        fp += int((pred & ~truth).sum())
        fn += int((~pred & truth).sum())
    return {"loss": losses / max(n, 1), "accuracy": correct / max(n, 1),
            "precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1), "attempts": n}


def _lr(step: int, total: int, cfg: GraspTrainConfig) -> float:
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(step / max(total, 1), 1.0)))


def _batch_indices(rows: np.ndarray, size: int, balance: bool, rng: np.random.Generator) -> np.ndarray:
    if not balance:
        return rng.integers(0, len(rows), size)
    pos, neg = np.flatnonzero(rows[:, 4] > 0.5), np.flatnonzero(rows[:, 4] <= 0.5)
    if not len(pos) or not len(neg):
        return rng.integers(0, len(rows), size)
    half = size // 2
    return np.concatenate([rng.choice(pos, half), rng.choice(neg, size - half)])


def train_grasp_net(cfg: GraspTrainConfig, attempts: GraspAttempts, out_dir, *,
                    val_attempts: GraspAttempts | None = None, progress: bool = True) -> GraspTrainResult:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    if val_attempts is None:
        train_idx, val_idx = split_images(len(attempts.images), cfg.val_fraction, cfg.seed)
        train_set, val_set = attempts.subset(train_idx), attempts.subset(val_idx)
    else:
        train_set, val_set = attempts, val_attempts
    if not len(train_set) or not len(val_set):
        raise ValueError(f"need attempts for training and validation, got {len(train_set)} and {len(val_set)}")
    shapes = {img.shape for img in train_set.images}
    if any(len(s) != 3 or s[2] != 3 for s in shapes):
        raise ValueError(f"GraspNet trains on RGB images, got shapes {sorted(shapes)}")

    mean = mean_rgb(train_set.images)
    model = GraspNet(cfg.model)
    if cfg.init_checkpoint:
        start = read_checkpoint(cfg.init_checkpoint)
        model, _ = load_grasp_model(start)
        mean = start["normalisation"]["mean_rgb"]
        cfg = dataclasses.replace(cfg, model=model.cfg)  # the network is the checkpoint's
    normalise = MeanPixelNormalise(mean, NORMALISE_STD)
    if cfg.alexnet_weights:
        load_alexnet_features(model, cfg.alexnet_weights)
    train_sampler = PatchSampler(train_set, cfg.model.bins, mean)
    val_sampler = PatchSampler(val_set, cfg.model.bins, mean)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.steps_per_epoch or max(1, len(train_set) // cfg.batch_size)
    total = steps * cfg.epochs
    summary = {"train": train_set.summary(), "val": val_set.summary(), "config": cfg.to_dict(),
               "mean_rgb": [float(m) for m in mean], "image_size": list(train_set.images[0].shape)}
    history: list[dict] = []
    best = {"loss": math.inf, "epoch": 0}
    best_path, last_path = out_dir / "best.pt", out_dir / "last.pt"
    step = 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        t0, running = time.monotonic(), 0.0
        bar = tqdm(range(steps), desc=f"epoch {epoch}/{cfg.epochs}", disable=not progress, leave=False)
        for _ in bar:
            idx = _batch_indices(train_sampler.attempts.rows, cfg.batch_size, cfg.balance, rng)
            patches, bins, ok = train_sampler.batch(idx, rng if cfg.augment else None)
            for group in optimizer.param_groups:
                group["lr"] = _lr(step, total, cfg)
            loss = masked_bin_loss(model(normalise(torch.from_numpy(patches))), torch.from_numpy(bins),
                                   torch.from_numpy(ok))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += loss.item()
            step += 1
            bar.set_postfix(loss=f"{running / (bar.n + 1):.3f}")
        metrics = validate(model, normalise, val_sampler)
        record = {"epoch": epoch, "train_loss": running / steps, "seconds": time.monotonic() - t0,
                  "metrics": metrics}
        history.append(record)
        improved = metrics["loss"] < best["loss"]
        ckpt = {"format": CHECKPOINT_FORMAT, "model": model.state_dict(), "config": cfg.to_dict(),
                "normalisation": {"mean_rgb": [float(m) for m in mean], "std": NORMALISE_STD},
                "epoch": epoch, "history": history, "summary": summary,
                "best": {"epoch": epoch if improved else best["epoch"]}}
        if improved:
            best = {"loss": metrics["loss"], "epoch": epoch, "metrics": metrics}
            torch.save(ckpt, best_path)
        torch.save(ckpt, last_path)
        print(f"epoch {epoch}/{cfg.epochs}: train loss {record['train_loss']:.4f}, val loss "
              f"{metrics['loss']:.4f}, val accuracy {metrics['accuracy']:.3f} ({record['seconds']:.0f} s)"
              + (" *" if improved else ""), flush=True)
    summary.update(epochs=cfg.epochs, best_epoch=best["epoch"])
    return GraspTrainResult(best_path, last_path, best["epoch"], best["metrics"], history, summary)
