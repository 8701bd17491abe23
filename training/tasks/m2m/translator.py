"""Running an m2m generator: DDIM sampling with x0 prediction, and `M2MTranslator` for a checkpoint.

Noise from a seeded generator at t = T - 1 (one step) or DDIM on an evenly spaced subsequence
of timesteps (few steps); the marker probability is upsampled to the sensor's size and
thresholded where the translated markers of the validation pairs cover the true targets' area
(`calibrated_threshold`, chosen at the best epoch).
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...core import checkpoint
from ...models.m2m_unet import M2MModelConfig, M2MUNet, alpha_bar
from .config import M2MConfig
from .data import as_signed, check_masks, to_working

TASK = "m2m"
LEGACY_FORMAT = "tacforce.m2m/1"


@checkpoint.register_upgrade(LEGACY_FORMAT)
def upgrade_legacy(old: dict) -> dict:
    """Convert an m2m.pt of the pre-core step loop (generator weights only) to the schema, so the
    m2m models of earlier transfer runs still translate; without optimizer state it cannot resume.
    """
    summary, train_config = old["summary"], old["train_config"]
    cfg = M2MConfig.from_dict({**train_config, "epochs": 1, "steps_per_epoch": train_config["steps"],
                               "num_threads": train_config["threads"]})
    metrics = {"iou": summary.get("val_iou"), "iou_at_0.5": summary.get("val_iou_at_0.5"),
               "threshold": old["threshold"], "pairs": summary.get("val_pairs", 0)}
    return checkpoint.make(
        TASK, epoch=1, step=train_config["steps"], model={f"generator.{k}": v for k, v in old["model"].items()},
        config=cfg.to_dict(), history=[], best={"epoch": 1, "score": metrics["iou"], "metrics": metrics},
        summary={"source": old["source_name"], "target": old["target_name"], "pairs": summary["pairs"],
                 "val_pairs": metrics["pairs"], "sensor_size": [old["sensor_height"], old["sensor_width"]],
                 "working_size": summary["working_size"], "crop": cfg.crop, "model_config": old["model_config"],
                 "source_ref": old["source_ref"], "target_ref": old["target_ref"], "config": cfg.to_dict()})


def noisy(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, timesteps: int) -> torch.Tensor:
    """Return x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise."""
    ab = alpha_bar(t, timesteps)[:, None, None, None]
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def ddim_timesteps(steps: int, timesteps: int) -> list[int]:
    """Return ``steps`` evenly spaced timesteps from T - 1 down to 0 (just T - 1 for one step)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if steps == 1:
        return [timesteps - 1]
    return [round(v) for v in np.linspace(timesteps - 1, 0, steps)]


@torch.no_grad()
def sample(model: M2MUNet, source: torch.Tensor, source_ref: torch.Tensor, target_ref: torch.Tensor,
           noise: torch.Tensor, steps: int = 1) -> torch.Tensor:
    """DDIM (eta 0) with x0 prediction -> marker probability (N, 1, h, w); one step = a single pass."""
    T = model.cfg.timesteps
    ts = ddim_timesteps(steps, T)
    x, n = noise, len(noise)
    for i, t in enumerate(ts):
        tt = torch.full((n,), t, dtype=torch.long, device=x.device)
        prob = torch.sigmoid(model(x, source, source_ref, target_ref, tt))
        if i + 1 < len(ts):
            x0 = prob * 2 - 1
            ab, ab_next = alpha_bar(tt[:1], T).item(), alpha_bar(torch.tensor([ts[i + 1]]), T).item()
            eps = (x - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
            x = math.sqrt(ab_next) * x0 + math.sqrt(1 - ab_next) * eps
    return prob


def calibrated_threshold(probabilities: np.ndarray, target_masks: np.ndarray) -> float:
    """Return the cut at which the translated masks cover as much area as the true ones.

    Upsampling the working-resolution probability and cutting at 0.5 shrinks small dots (a few
    per cent of their area, which is how the force model reads pressing depth), so the cut is
    placed where the mean marker area of the held-out pairs matches the target's.
    """
    return float(np.quantile(probabilities, 1.0 - float(np.mean(target_masks))))


def resolve_device(device: str) -> torch.device:
    """Return the torch device for a --device value ("auto": CUDA when available)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class M2MTranslator:
    """An m2m generator with its sensors' references: source-sensor marker masks -> target-sensor marker masks."""

    def __init__(self, model: M2MUNet, source_ref: np.ndarray, target_ref: np.ndarray,
                 source_name: str, target_name: str, metadata: dict | None = None, threshold: float = 0.5):
        self.model = model.eval()
        self.threshold = float(threshold)
        device = next(model.parameters()).device
        self.sensor_size = tuple(source_ref.shape)
        self.working_size = model.cfg.working_size(*self.sensor_size)
        self.source_ref, self.target_ref = source_ref, target_ref
        self._refs = (as_signed(to_working(source_ref[None], self.working_size)).to(device),
                      as_signed(to_working(target_ref[None], self.working_size)).to(device))
        self.source_name, self.target_name = source_name, target_name
        self.metadata = metadata or {}

    @classmethod
    def load(cls, path, device: str = "cpu") -> "M2MTranslator":
        """Load the generator of an m2m checkpoint (best.pt, last.pt or the m2m.pt copy of best.pt)."""
        ckpt = checkpoint.load(path, TASK)
        summary = ckpt["summary"]
        model = M2MUNet(M2MModelConfig.from_dict(summary["model_config"]))
        model.load_state_dict({k.removeprefix("generator."): v for k, v in ckpt["model"].items()
                               if k.startswith("generator.")})
        model.to(resolve_device(device))
        metadata = {"config": ckpt["config"]["model"], "steps_trained": ckpt["step"],
                    "checkpoint": str(path),
                    "checkpoint_sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest()}
        return cls(model, summary["source_ref"].numpy().astype(bool), summary["target_ref"].numpy().astype(bool),
                   summary["source"], summary["target"], metadata, ckpt["best"]["metrics"]["threshold"])

    def info(self) -> dict:
        h, w = self.working_size
        return {**self.metadata, "source": self.source_name, "target": self.target_name,
                "sensor_size": list(self.sensor_size), "working_size": [h, w], "threshold": self.threshold}

    def translate(self, source_masks: np.ndarray, steps: int = 1, batch_size: int = 16, seed: int = 0) -> np.ndarray:
        """Translate bool (N, H, W) source masks at sensor resolution -> bool (N, H, W) target masks."""
        source_masks = check_masks(source_masks, "source masks", self.sensor_size)
        if source_masks.ndim == 2:
            return self.translate(source_masks[None], steps, batch_size, seed)[0]
        out = np.empty(source_masks.shape, bool)
        for i in range(0, len(source_masks), batch_size):
            out[i:i + batch_size] = self.probabilities(source_masks[i:i + batch_size], steps, seed) > self.threshold
        return out

    @torch.no_grad()
    def probabilities(self, source_masks: np.ndarray, steps: int = 1, seed: int = 0) -> np.ndarray:
        """Marker probability (N, H, W) at sensor resolution. Every frame starts from the same
        seeded noise, so the translation is a function of the source mask alone: a contact that
        stands still translates identically in every frame of a run.
        """
        src = as_signed(to_working(source_masks, self.working_size)).to(self._refs[0].device)
        n = len(src)
        noise = torch.randn((1, *src.shape[1:]), generator=torch.Generator().manual_seed(seed))
        prob = sample(self.model, src, self._refs[0].expand(n, -1, -1, -1), self._refs[1].expand(n, -1, -1, -1),
                      noise.to(src.device).expand(n, -1, -1, -1), steps)
        return F.interpolate(prob, size=self.sensor_size, mode="bilinear", align_corners=False)[:, 0].cpu().numpy()
