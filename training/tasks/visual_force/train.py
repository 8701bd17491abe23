"""The visual-force task (seed 000) on the shared loop: windows of T camera frames -> force.

    episodes (uint8 RGB frames) -> every frame through ImagePreprocess once (the module the
    exported graph runs), kept in a `core.cache.Frames` store (RAM, or a memmap over the budget)
    -> windows of T frames, label = force at the last one
    -> VisualForceNet (SSAM or the CNN-LSTM baseline) -> MSE on force / force_scale (the seed's
       labels / 20)
    -> training/core/loop.py does the rest (AdamW, warmup + cosine, grad clip ``cfg.grad_clip``,
       best.pt at the lowest validation RMSE, last.pt, resume)

``cfg.init`` warm-starts from another run's weights (same model config) with a fresh optimizer
and schedule; ``--resume`` instead continues a run from its own last.pt. Checkpoints follow the
core schema; their summary also carries a few validation windows that `tacforce export
visual-force` streams for its parity check. Runs are deterministic on CPU for a given seed, data
and thread count, and a run resumed from last.pt matches an uninterrupted one.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ...core import checkpoint
from ...core.cache import Frames
from ...core.loop import FitResult, fit
from ...core.registry import register
from ...models.ssam import VisualForceConfig, VisualForceNet, build
from ...preprocess import ImagePreprocess
from .config import VisualTrainConfig
from .data import EpisodeSet, labels, windows

TASK = "visual_force"
LEGACY_FORMAT = "tacforce.visual_force/1"
SAMPLE_WINDOWS = 4
PRIVATE_SUMMARY = ("input", "samples")
RESUME_FACTS = ("input", "episodes", "windows")     # a resumed run must have these as its last.pt
LEGACY_HELD_OUT = re.compile(r"without (-?\d+) lux and (-?\d+) deg")


def public_summary(summary: dict) -> dict:
    """Return the training summary minus the input spec and sample windows (not ONNX metadata)."""
    return {k: v for k, v in summary.items() if k not in PRIVATE_SUMMARY}


def model_preprocess(cfg: VisualForceConfig, encoding: str) -> ImagePreprocess:
    """Return the per-frame preprocessing of the model (training and export share it): gray, resize, /255."""
    return ImagePreprocess(cfg.image_size, encoding, cfg.in_channels, mean=0.0, std=1.0)


def load_model(ckpt: dict) -> VisualForceNet:
    """Build the model of a loaded visual_force checkpoint (`checkpoint.load`), in eval mode."""
    model = build(VisualForceConfig.from_dict(ckpt["config"]["model"]))
    model.load_state_dict(ckpt["model"])
    return model.eval()


def regression_metrics(truth, pred) -> dict:
    """RMSE and MAE in N over every output of every window."""
    err = np.asarray(pred, float) - np.asarray(truth, float)
    return {"rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err))), "count": int(len(err))}


@checkpoint.register_upgrade(LEGACY_FORMAT)
def upgrade_legacy(old: dict) -> dict:
    """Convert a checkpoint of the pre-core train loop (the shipped models/visual_force.pt) to the schema.

    That loop wrote the held-out cells into the ONNX metadata only; its training source line
    ("..., without 550 lux and 20 deg") names them, so they are recovered from there.
    """
    held = LEGACY_HELD_OUT.search(old["summary"].get("train_source", ""))
    summary = {**old["summary"], "input": old["input"], "samples": old["samples"],
               "held_out": {"illumination": int(held[1]), "degree": int(held[2])} if held else None}
    best_epoch = summary.get("best_epoch", old["epoch"])
    metrics = next((r["metrics"] for r in old["history"] if r["epoch"] == best_epoch), old["history"][-1]["metrics"])
    return checkpoint.make(TASK, epoch=old["epoch"], step=None, model=old["state_dict"],
                           config=VisualTrainConfig.from_dict(old["config"]).to_dict(), summary=summary,
                           history=old["history"], best={"epoch": best_epoch, "score": metrics["rmse"],
                                                         "metrics": metrics})


class EpisodeFrames:
    """Every frame of some episodes after the model's preprocessing (float [C, S, S]), in one `Frames` store."""

    def __init__(self, data: EpisodeSet, preprocess: ImagePreprocess, budget_bytes: float, cache_path,
                 chunk: int = 256):
        lengths = [len(e) for e in data.episodes]
        self.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(int).tolist()
        side = preprocess.image_size
        self.store = Frames((self.offsets[-1], preprocess.out_channels, side, side), budget_bytes, cache_path)
        with torch.no_grad():
            for e, pos in zip(data.episodes, self.offsets):
                for i in range(0, len(e), chunk):
                    part = preprocess(torch.from_numpy(np.ascontiguousarray(e.images[i:i + chunk])))
                    self.store.array[pos + i:pos + i + len(part)] = part.numpy()
        self.store.finish()

    def window(self, episode: int, end: int, frames: int) -> torch.Tensor:
        """Return float [T, C, S, S]: the ``frames`` frames of ``episode`` up to and including ``end``."""
        stop = self.offsets[episode] + end + 1
        return torch.from_numpy(np.array(self.store.array[stop - frames:stop]))


class Windows(Dataset):
    """Training windows: item = (frames [T, C, S, S], force label [outputs]).

    Batch norm needs two windows a batch. Where the last batch of a process would hold one
    window, the fewest windows that avoid it sit the epoch out, drawn anew from (seed, epoch)
    (the old loop skipped that batch), so every rank and a resumed run see the same epoch.
    """

    def __init__(self, frames: EpisodeFrames, index: np.ndarray, y: torch.Tensor, cfg: VisualTrainConfig,
                 world: int):
        per_process = cfg.batch_size // world
        if per_process < 2:
            raise ValueError(f"batch size {cfg.batch_size} over {world} process(es) leaves fewer than 2 windows a "
                             "batch; batch norm needs 2")
        self.frames, self.index, self.y, self.seed, self.t = frames, index, y, cfg.seed, cfg.model.frames
        n_rank = math.ceil(len(index) / world)
        self.left_out = len(index) - (n_rank - 1) * world if n_rank % per_process == 1 and n_rank > 1 else 0
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        rng = np.random.default_rng([self.seed, epoch])
        out = rng.choice(len(self.index), self.left_out, replace=False)
        self.keep = np.delete(np.arange(len(self.index)), out)

    def __len__(self) -> int:
        return len(self.keep)

    def __getitem__(self, i: int):
        k = int(self.keep[i])
        episode, end = self.index[k]
        return self.frames.window(int(episode), int(end), self.t), self.y[k]


@register(TASK)
class VisualForceTask:
    """Data, model, loss and validation of the visual-force task for `tacforce_training.core.loop.fit`."""

    score_name = "val_rmse"
    higher_is_better = False

    def __init__(self, cfg: VisualTrainConfig, train_set: EpisodeSet, val_set: EpisodeSet, out_dir, *,
                 encoding: str = "rgb8", held_out: dict | None = None):
        if len(train_set) == 0 or len(val_set) == 0:
            raise ValueError("need training and validation episodes")
        shapes = {e.images.shape[1:] for e in train_set.episodes + val_set.episodes}
        if len(shapes) != 1:
            raise ValueError(f"frames differ in size: {sorted(shapes)}")
        h, w, c = shapes.pop()
        mcfg = self.model_config = cfg.model
        self.config, self.init_weights = cfg, None
        if cfg.init:        # fail before caching frames, not after
            start = checkpoint.load(cfg.init, TASK)
            if start["config"]["model"] != mcfg.to_dict():
                raise ValueError(f"{cfg.init}: not a visual-force checkpoint of this model configuration "
                                 f"({start['config']['model']}; this run: {mcfg.to_dict()})")
            self.init_weights = start["model"]
        preprocess = model_preprocess(mcfg, encoding)
        budget = cfg.memory_budget_mb * 2 ** 20
        cache = Path(cfg.cache_dir or Path(out_dir) / "cache")
        rank = os.environ.get("RANK", "0")    # one cache file per process under torchrun
        self.train_frames = EpisodeFrames(train_set, preprocess, budget, cache / f"train.{rank}.npy")
        self.val_frames = EpisodeFrames(val_set, preprocess, budget, cache / f"val.{rank}.npy")
        self.train_index = windows(train_set, mcfg.frames, cfg.stride)
        self.val_index = windows(val_set, mcfg.frames, cfg.val_stride)
        self.y_train = torch.from_numpy(labels(train_set, self.train_index, mcfg.outputs))
        self.y_val = labels(val_set, self.val_index, mcfg.outputs)
        pick = np.linspace(0, len(self.val_index) - 1, min(SAMPLE_WINDOWS, len(self.val_index))).round().astype(int)
        samples = np.stack([val_set.episodes[i].images[end - mcfg.frames + 1:end + 1]
                            for i, end in self.val_index[pick]])
        self.summary = {
            "episodes": {"train": len(train_set), "val": len(val_set)},
            "windows": {"train": int(len(self.train_index)), "val": int(len(self.val_index))},
            "train_source": train_set.source, "val_source": val_set.source,
            "frame_size": [int(w), int(h)], "parameters": int(sum(p.numel() for p in build(mcfg).parameters())),
            "force_range_train": [float(self.y_train.min()), float(self.y_train.max())],
            "initialised_from": cfg.init, "held_out": held_out,
            "frame_cache": "memmap" if self.train_frames.store.on_disk else "ram",
            "input": {"height": int(h), "width": int(w), "channels": int(c), "encoding": encoding},
            "samples": torch.from_numpy(samples),
        }

    def build_model(self) -> VisualForceNet:
        model = build(self.model_config)
        if self.init_weights is not None:
            model.load_state_dict(self.init_weights)
        return model

    def train_set(self) -> Windows:
        world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        return Windows(self.train_frames, self.train_index, self.y_train, self.config, world)

    def loss(self, model, batch) -> torch.Tensor:
        """MSE on force / force_scale (the seed regressed labels / 20)."""
        x, y = batch
        scale = self.model_config.force_scale
        return torch.mean((model(x).float() / scale - y / scale) ** 2)

    def val_items(self) -> list[int]:
        return list(range(len(self.val_index)))

    @torch.no_grad()
    def predict(self, model, items, batch: int = 32) -> dict:
        """Predicted and true force of each validation window in ``items``."""
        device = next(model.parameters()).device
        items, t = np.asarray(items, np.int64), self.model_config.frames
        preds = [torch.zeros(0, self.model_config.outputs)]
        for i in range(0, len(items), batch):
            ends = self.val_index[items[i:i + batch]]
            x = torch.stack([self.val_frames.window(int(e), int(end), t) for e, end in ends])
            preds.append(model(x.to(device)).float().cpu())
        return {"pred": torch.cat(preds).double(), "true": torch.from_numpy(self.y_val[items]).double()}

    def score(self, rows: dict) -> tuple[dict, float]:
        metrics = regression_metrics(rows["true"].numpy(), rows["pred"].numpy())
        return metrics, metrics["rmse"]

    def check_resume(self, ckpt: dict, path) -> None:
        """Refuse to resume a run of another model, input or data set."""
        saved = {"model": ckpt["config"]["model"], **{k: ckpt["summary"][k] for k in RESUME_FACTS}}
        now = {"model": self.model_config.to_dict(), **{k: self.summary[k] for k in RESUME_FACTS}}
        if saved != now:
            raise ValueError(f"{path} was trained with model {saved}; this run has {now}")

    def describe(self, r: dict, epochs: int) -> str:
        m = r["metrics"]
        return (f"epoch {r['epoch']}/{epochs}: train loss {r['train_loss']:.5f}, val RMSE {m['rmse']:.3f} N, "
                f"MAE {m['mae']:.3f} N ({r['seconds']:.0f} s)")


def train(cfg: VisualTrainConfig, train_set: EpisodeSet, val_set: EpisodeSet, out_dir, *, encoding: str = "rgb8",
          held_out: dict | None = None, resume: bool = False, device: str = "auto") -> FitResult:
    """Train on ``train_set``, validate on ``val_set``; with ``resume`` continue from ``out_dir/last.pt``."""
    task = VisualForceTask(cfg, train_set, val_set, out_dir, encoding=encoding, held_out=held_out)
    return fit(task, cfg, out_dir, resume=resume, device=device)
