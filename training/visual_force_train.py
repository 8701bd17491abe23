"""The train loop for visual force (seed 000): windows of T camera frames -> force.

    episodes (uint8 RGB frames) -> every frame through ImagePreprocess once (the module the
    exported graph runs), cached as float -> windows of T frames, label = force at the last one
    -> VisualForceNet (SSAM or the CNN-LSTM baseline) -> MSE on force / force_scale (the seed's
    labels / 20) -> Adam, step decay x0.1 at 50 % and 80 % of the epochs (the seed: x0.1 at
    epochs 30/60/90) -> validation RMSE every epoch -> last.pt every epoch, best.pt at the
    lowest validation RMSE

Checkpoints load with ``torch.load(path, weights_only=True)`` and carry a few validation
windows that the export streams for its parity check. Deterministic on CPU for a given seed,
data and thread count.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .models.ssam import VisualForceConfig, VisualForceNet, build
from .preprocess import ImagePreprocess
from .visual_force_data import EpisodeSet, labels, windows

CHECKPOINT_FORMAT = "tacforce.visual_force/1"
SAMPLE_WINDOWS = 4


@dataclass
class VisualTrainConfig:
    model: VisualForceConfig = field(default_factory=VisualForceConfig)
    epochs: int = 10
    batch_size: int = 8
    lr: float = 1e-3              # Adam (the seed: 1e-4 at batch 256 for ~100 epochs)
    weight_decay: float = 0.0
    stride: int = 2               # training windows start every `stride` frames
    val_stride: int = 2           # validation windows end every `val_stride` frames
    seed: int = 0
    num_threads: int = 0          # torch.set_num_threads; 0 leaves torch's default
    init: str | None = None       # start from this checkpoint's weights (same model config)

    def to_dict(self) -> dict:
        return {**asdict(self), "model": self.model.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "VisualTrainConfig":
        return cls(**{**d, "model": VisualForceConfig.from_dict(d["model"])})


@dataclass
class VisualTrainResult:
    best_path: Path
    last_path: Path
    best_epoch: int
    metrics: dict
    history: list
    summary: dict


def load_model(checkpoint: dict) -> VisualForceNet:
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"not a visual-force checkpoint (format {checkpoint.get('format')!r})")
    model = build(VisualForceConfig.from_dict(checkpoint["config"]["model"]))
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


class FrameCache:
    """Every frame of every episode preprocessed once: float [F, 1, S, S] per episode."""

    def __init__(self, data: EpisodeSet, preprocess: ImagePreprocess, batch: int = 256):
        self.episodes = []
        with torch.no_grad():
            for e in data.episodes:
                parts = [preprocess(torch.from_numpy(np.ascontiguousarray(e.images[i:i + batch])))
                         for i in range(0, len(e), batch)]
                self.episodes.append(torch.cat(parts))

    def batch(self, index: np.ndarray, frames: int) -> torch.Tensor:
        """Return float [B, T, 1, S, S] for windows (episode, last frame)."""
        return torch.stack([self.episodes[i][end - frames + 1:end + 1] for i, end in index])


@torch.no_grad()
def predict(model: VisualForceNet, cache: FrameCache, index: np.ndarray, batch: int = 32) -> np.ndarray:
    model.eval()
    t = model.cfg.frames
    out = [model(cache.batch(index[i:i + batch], t)) for i in range(0, len(index), batch)]
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros((0, model.cfg.outputs))


def regression_metrics(truth: np.ndarray, pred: np.ndarray) -> dict:
    err = np.asarray(pred, float) - np.asarray(truth, float)
    return {"rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err))), "count": int(len(err))}


def train(cfg: VisualTrainConfig, train_set: EpisodeSet, val_set: EpisodeSet, out_dir: str | Path,
          encoding: str = "rgb8", progress: bool = True) -> VisualTrainResult:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if len(train_set) == 0 or len(val_set) == 0:
        raise ValueError("need training and validation episodes")
    shapes = {e.images.shape[1:] for e in train_set.episodes + val_set.episodes}
    if len(shapes) != 1:
        raise ValueError(f"frames differ in size: {sorted(shapes)}")
    h, w, c = shapes.pop()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    mcfg = cfg.model
    preprocess = ImagePreprocess(mcfg.image_size, encoding, mcfg.in_channels, mean=0.0, std=1.0)
    train_cache, val_cache = FrameCache(train_set, preprocess), FrameCache(val_set, preprocess)
    train_index = windows(train_set, mcfg.frames, cfg.stride)
    val_index = windows(val_set, mcfg.frames, cfg.val_stride)
    y_train = torch.from_numpy(labels(train_set, train_index, mcfg.outputs))
    y_val = labels(val_set, val_index, mcfg.outputs)
    model = build(mcfg)
    if cfg.init:
        start = torch.load(cfg.init, map_location="cpu", weights_only=True)
        if start.get("format") != CHECKPOINT_FORMAT or start["config"]["model"] != mcfg.to_dict():
            raise ValueError(f"{cfg.init}: not a visual-force checkpoint of this model configuration")
        model.load_state_dict(start["state_dict"])
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    milestones = [max(1, int(round(cfg.epochs * f))) for f in (0.5, 0.8)]
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, 0.1)
    pick = np.linspace(0, len(val_index) - 1, min(SAMPLE_WINDOWS, len(val_index))).round().astype(int)
    samples = np.stack([val_set.episodes[i].images[end - mcfg.frames + 1:end + 1] for i, end in val_index[pick]])
    summary = {
        "episodes": {"train": len(train_set), "val": len(val_set)},
        "windows": {"train": int(len(train_index)), "val": int(len(val_index))},
        "train_source": train_set.source, "val_source": val_set.source,
        "frame_size": [int(w), int(h)], "parameters": int(sum(p.numel() for p in model.parameters())),
        "force_range_train": [float(y_train.min()), float(y_train.max())],
        "initialised_from": cfg.init,
    }
    base = {"format": CHECKPOINT_FORMAT, "config": cfg.to_dict(),
            "input": {"height": int(h), "width": int(w), "channels": int(c), "encoding": encoding},
            "samples": torch.from_numpy(samples), "summary": summary}
    history, best = [], None
    best_path, last_path = out_dir / "best.pt", out_dir / "last.pt"
    scale = mcfg.force_scale
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = rng.permutation(len(train_index))
        losses = []
        bar = tqdm(range(0, len(order), cfg.batch_size), desc=f"epoch {epoch}/{cfg.epochs}", unit="batch",
                   leave=False, disable=not progress, mininterval=2.0)
        for i in bar:
            idx = order[i:i + cfg.batch_size]
            if len(idx) < 2:       # batch norm needs two samples
                continue
            pred = model(train_cache.batch(train_index[idx], mcfg.frames))
            loss = torch.mean((pred / scale - y_train[idx] / scale) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            losses.append(loss.item())
        sched.step()
        metrics = regression_metrics(y_val, predict(model, val_cache, val_index))
        entry = {"epoch": epoch, "train_loss": float(np.mean(losses)), "seconds": time.perf_counter() - t0,
                 "metrics": metrics}
        history.append(entry)
        ckpt = {**base, "epoch": epoch, "state_dict": model.state_dict(), "history": history}
        torch.save(ckpt, last_path)
        if best is None or metrics["rmse"] < best[0]:
            best = (metrics["rmse"], epoch, metrics)
            torch.save(ckpt, best_path)
        if progress:
            print(f"epoch {epoch}: train loss {entry['train_loss']:.5f}, val RMSE {metrics['rmse']:.3f} N, "
                  f"MAE {metrics['mae']:.3f} N ({entry['seconds']:.0f} s)", flush=True)
        if not math.isfinite(entry["train_loss"]):
            raise ValueError(f"training diverged at epoch {epoch} (loss {entry['train_loss']})")
    summary.update(epochs=cfg.epochs, best_epoch=best[1])
    ckpt = torch.load(best_path, map_location="cpu", weights_only=True)
    ckpt["summary"] = summary
    torch.save(ckpt, best_path)
    return VisualTrainResult(best_path, last_path, best[1], best[2], history, summary)
