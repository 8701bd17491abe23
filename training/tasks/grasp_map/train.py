"""The grasp-map task on the shared loop: GraspNet (seed 001), one labelled grasp per 227 px patch.

    attempts (synthetic or attempts.csv folder) -> split by image into train / validation
    -> each epoch: ``steps_per_epoch`` x ``batch_size`` trials, half successes, each patch (and, for
       a depth model, its height-above-table channel) randomly rotated by k x 90 degrees (or any
       angle) and mirrored with the label angle moved to match
    -> cross-entropy of the active angle bin's two logits only (masked loss)
    -> training/core/loop.py does the rest (AdamW, the seed's lr 1e-3 cosine to 1e-4, best.pt /
       last.pt, resume)
    -> validation every epoch on un-augmented patches; best.pt at the lowest validation loss

The mean colour the input is normalised with is measured on the training images (or taken from
the ``init_checkpoint``) and kept in the checkpoint's summary for the export. Runs are
deterministic on CPU for a given seed, data and thread count, and a run resumed from last.pt
matches an uninterrupted one.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ...core import checkpoint
from ...core.loop import FitResult, fit
from ...core.registry import register
from ...models.grasp_net import GraspNet, GraspNetConfig, load_alexnet_features, masked_bin_loss
from ...preprocess import DepthHeight, MeanPixelNormalise
from .config import GraspMapConfig
from .data import GraspAttempts, PatchSampler, batch_indices, mean_rgb, split_images

TASK = "grasp_map"
LEGACY_FORMAT = "tacforce.grasp_net/1"
NORMALISE_STD = 0.25


def load_grasp_model(ckpt: dict) -> tuple[GraspNet, MeanPixelNormalise]:
    """Build the network (eval mode) and its input normalisation from a loaded grasp_map checkpoint."""
    model = GraspNet(GraspNetConfig.from_dict(ckpt["config"]["model"]))
    model.load_state_dict(ckpt["model"])
    return model.eval(), MeanPixelNormalise(ckpt["summary"]["mean_rgb"], ckpt["summary"]["std"])


@checkpoint.register_upgrade(LEGACY_FORMAT)
def upgrade_legacy(old: dict) -> dict:
    """Convert a checkpoint of the pre-core train loop (the shipped models/grasp_map_synthetic.pt) to the schema."""
    summary = {k: v for k, v in old["summary"].items() if k != "config"}
    summary.update(mean_rgb=old["normalisation"]["mean_rgb"], std=old["normalisation"]["std"])
    best_epoch = old["best"]["epoch"]
    metrics = next(r["metrics"] for r in old["history"] if r["epoch"] == best_epoch)
    return checkpoint.make(TASK, epoch=old["epoch"], step=None, model=old["model"],
                           config=GraspMapConfig.from_dict(old["config"]).to_dict(), summary=summary,
                           history=old["history"],
                           best={"epoch": best_epoch, "score": metrics["loss"], "metrics": metrics})


class EpochPatches(Dataset):
    """One epoch of (uint8 patch, angle bin, success): ``steps_per_epoch`` balanced batches of trials.

    The trials are drawn per (seed, epoch) and each patch's augmentation per (seed, epoch, index),
    so an epoch is the same whichever process or worker draws it and whether or not the run was
    resumed.
    """

    def __init__(self, sampler: PatchSampler, cfg: GraspMapConfig):
        self.sampler, self.cfg = sampler, cfg
        self.steps = cfg.steps_per_epoch or max(1, len(sampler.attempts) // cfg.batch_size)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        rng, rows = np.random.default_rng([self.cfg.seed, epoch]), self.sampler.attempts.rows
        self.order = np.concatenate([batch_indices(rows, self.cfg.batch_size, self.cfg.balance, rng)
                                     for _ in range(self.steps)])

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.cfg.seed, self.epoch, i]) if self.cfg.augment else None
        patches, bins, ok, heights = self.sampler.batch(self.order[i:i + 1], rng)
        height = torch.zeros(0) if heights is None else torch.from_numpy(heights[0])
        return torch.from_numpy(patches[0]), torch.tensor(int(bins[0])), torch.tensor(float(ok[0])), height


@register(TASK)
class GraspMapTask:
    """Data, model, loss and validation of the grasp-map task for `tacforce_training.core.loop.fit`."""

    score_name = "val_loss"
    higher_is_better = False

    def __init__(self, cfg: GraspMapConfig, attempts: GraspAttempts, val_attempts: GraspAttempts | None = None):
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
        mean, self.init_state = mean_rgb(train_set.images), None
        if cfg.init_checkpoint:
            start = checkpoint.load(cfg.init_checkpoint, TASK)
            mean, self.init_state = start["summary"]["mean_rgb"], start["model"]
            # the start's network; padding and the depth channel are this run's (a colour-only start
            # gains a depth channel whose conv1 weights begin at zero, so it starts as it was)
            network = {**start["config"]["model"], "padding": cfg.model.padding, "depth": cfg.model.depth}
            cfg = GraspMapConfig.from_dict({**cfg.to_dict(), "model": network})
        self.config = cfg
        self.normalise = MeanPixelNormalise(mean, NORMALISE_STD)
        self.train_sampler = PatchSampler(train_set, cfg.model.bins, mean, padding=cfg.model.padding,
                                          depth=cfg.model.depth, any_angle=cfg.any_angle)
        self.val_sampler = PatchSampler(val_set, cfg.model.bins, mean, padding=cfg.model.padding,
                                        depth=cfg.model.depth)
        self.summary = {"train": train_set.summary(), "val": val_set.summary(),
                        "mean_rgb": [float(m) for m in mean], "std": NORMALISE_STD,
                        "image_size": list(train_set.images[0].shape)}

    def build_model(self) -> GraspNet:
        model = GraspNet(self.config.model)
        if self.init_state is not None:
            state = dict(self.init_state)
            target = model.conv1.weight
            if state["conv1.weight"].shape[1] < target.shape[1]:   # a colour-only start, a depth model
                extra = target.shape[1] - state["conv1.weight"].shape[1]
                state["conv1.weight"] = torch.cat([state["conv1.weight"],
                                                   state["conv1.weight"].new_zeros(target.shape[0], extra,
                                                                                   *target.shape[2:])], dim=1)
            model.load_state_dict(state)
        if self.config.alexnet_weights:
            load_alexnet_features(model, self.config.alexnet_weights)
        return model

    def train_set(self) -> EpochPatches:
        return EpochPatches(self.train_sampler, self.config)

    def network_input(self, patches: torch.Tensor, heights: torch.Tensor | None) -> torch.Tensor:
        """Normalised RGB [N, 3, P, P], with the scaled height above the table as a 4th channel for a
        depth model (``DepthHeight`` does the same in the exported graph).
        """
        x = self.normalise.to(patches.device)(patches)
        if not self.config.model.depth:
            return x
        return torch.cat([x, heights.permute(0, 3, 1, 2).float() / DepthHeight().scale], dim=1)

    def loss(self, model, batch) -> torch.Tensor:
        """Cross-entropy of each trial's angle bin only (the seed's masked loss)."""
        patches, bins, ok, heights = batch
        return masked_bin_loss(model(self.network_input(patches, heights)), bins, ok)

    def val_items(self) -> list[int]:
        return list(range(len(self.val_sampler.attempts)))

    @torch.no_grad()
    def predict(self, model, items, batch: int = 256) -> dict:
        """Per validation trial: loss, predicted success (P >= 0.5 at its bin) and the outcome."""
        device = next(model.parameters()).device
        items = np.asarray(items, np.int64)
        rows = {"loss": [torch.zeros(0)], "pred": [torch.zeros(0, dtype=torch.bool)],
                "truth": [torch.zeros(0, dtype=torch.bool)]}
        for start in range(0, len(items), batch):
            patches, bins, ok, heights = self.val_sampler.batch(items[start:start + batch])
            heights = None if heights is None else torch.from_numpy(heights).to(device)
            logits = model(self.network_input(torch.from_numpy(patches).to(device), heights)).float().cpu()
            pairs = logits.view(len(bins), -1, 2)[torch.arange(len(bins)), torch.from_numpy(bins)]
            rows["loss"].append(F.cross_entropy(pairs, torch.from_numpy(ok).long(), reduction="none"))
            rows["pred"].append(pairs[:, 1] > pairs[:, 0])
            rows["truth"].append(torch.from_numpy(ok > 0.5))
        return {k: torch.cat(v) for k, v in rows.items()}

    def score(self, rows: dict) -> tuple[dict, float]:
        """Return the validation loss (the score) and the accuracy, precision and recall of "success"."""
        pred, truth, n = rows["pred"], rows["truth"], len(rows["loss"])
        tp, fp, fn = (int((pred & truth).sum()), int((pred & ~truth).sum()), int((~pred & truth).sum()))
        metrics = {"loss": float(rows["loss"].double().mean()),
                   "accuracy": int((pred == truth).sum()) / max(n, 1),
                   "precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1), "attempts": n}
        return metrics, metrics["loss"]

    def check_resume(self, ckpt: dict, path) -> None:
        """Refuse to resume a run of another network or data set."""
        saved = GraspMapConfig.from_dict(ckpt["config"])
        keys = ("train", "val", "image_size")
        if saved.model != self.config.model or any(ckpt["summary"][k] != self.summary[k] for k in keys):
            raise ValueError(f"{path} was trained with {saved.model} on {ckpt['summary']['train']}; this run has "
                             f"{self.config.model} on {self.summary['train']}")

    def describe(self, r: dict, epochs: int) -> str:
        m = r["metrics"]
        return (f"epoch {r['epoch']}/{epochs}: train loss {r['train_loss']:.4f}, val loss {m['loss']:.4f}, "
                f"val accuracy {m['accuracy']:.3f} ({r['seconds']:.0f} s)")


def train(cfg: GraspMapConfig, attempts: GraspAttempts, out_dir, *, val_attempts: GraspAttempts | None = None,
          resume: bool = False, device: str = "auto") -> FitResult:
    """Train on ``attempts`` (validation: ``val_attempts`` or a split by image); with ``resume``
    continue from ``out_dir/last.pt``.
    """
    task = GraspMapTask(cfg, attempts, val_attempts)
    return fit(task, task.config, out_dir, resume=resume, device=device)
