"""Training and inference for the marker-to-marker (m2m) translator (training/models/m2m_unet.py).

    location-paired binary masks (source sensor, target sensor) at sensor resolution
    -> area-averaged to the working resolution (keeps sub-pixel marker edges), * 2 - 1
    -> each step: random crops (one window for source, both references and target),
       x_t = sqrt(abar_t) target + sqrt(1 - abar_t) noise, with ``one_step_fraction`` of the
       batch at t = T - 1 (pure noise: the one-step translation) and the rest at random t
    -> generator: pixel BCE on the predicted x0, plus (after ``gan_warmup`` steps) PatchGAN
       feature matching and a hinge adversarial term; discriminator updated in alternation
    -> out_dir/m2m.pt (weights_only-loadable) and out_dir/m2m_summary.json

No augmentation: marker layouts are not symmetric under flips or 90-degree turns, so an
augmented pair would teach a layout the target sensor does not have.

``M2MTranslator`` runs a checkpoint: noise from a seeded generator at t = T - 1 (one step) or
DDIM on an evenly spaced subsequence of timesteps (few steps), both with x0 prediction; the
marker probability is upsampled to the sensor's size and thresholded where the translated
markers of the validation pairs cover the true targets' area (`M2MTranslator.calibrate`).
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from tacforce_ros.perception.markers import mask_iou

from .core.checkpoint import read as read_checkpoint
from .models.m2m_unet import (
    CONFIGS,
    M2MModelConfig,
    M2MUNet,
    PatchDiscriminator,
    alpha_bar,
)

CHECKPOINT_FORMAT = "tacforce.m2m/1"


@dataclass
class M2MTrainConfig:
    """Loss mix and schedule. ``feature`` is pix2pixHD's discriminator feature matching: our
    perceptual term, since no pretrained VGG / LPIPS weights can be downloaded here.
    """

    model: str = "cpu"            # key of tacforce_training.models.m2m_unet.CONFIGS
    steps: int = 1200             # "cpu" model: ~0.4 s/step on 2 cores -> under 10 min (RECIPES)
    batch_size: int = 8
    crop: int = 96                # training crop side in working pixels (multiple of 2**levels)
    lr: float = 1e-3              # AdamW, cosine decay to lr / 10
    disc_lr: float = 2e-4
    pixel: float = 1.0            # BCE-with-logits of x0 against the (area-averaged) target
    feature: float = 1.0          # L1 between discriminator features of fake and real
    adversarial: float = 0.05     # hinge GAN, generator side
    gan_warmup: int = 300         # steps of pixel loss alone before the discriminator starts
    one_step_fraction: float = 0.5
    log_every: int = 50           # steps per history entry (mean losses over the window)
    seed: int = 0
    threads: int = 0              # torch.set_num_threads; 0 leaves torch's default
    device: str = "cpu"           # torch device: "cuda" for the default (256 px) config on a GPU

    def __post_init__(self) -> None:
        if self.model not in CONFIGS:
            raise ValueError(f"unknown m2m model config {self.model!r}; choose from {sorted(CONFIGS)}")
        if not 0.0 <= self.one_step_fraction <= 1.0:
            raise ValueError(f"one_step_fraction must be in [0, 1], got {self.one_step_fraction}")
        if self.crop % 2 ** CONFIGS[self.model].levels:
            raise ValueError(f"crop {self.crop} is not divisible by 2**levels of model {self.model!r}")

    @property
    def model_config(self) -> M2MModelConfig:
        return CONFIGS[self.model]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> M2MTrainConfig:
        return cls(**d)


# Per model config: what `tacforce train m2m --config NAME` trains with.
RECIPES = {
    "default": {"steps": 20000, "batch_size": 16, "crop": 128, "gan_warmup": 2000},  # GPU: --device cuda
    "cpu": {"steps": 1200, "batch_size": 8, "crop": 96, "gan_warmup": 300},
    "tiny": {"steps": 60, "batch_size": 4, "crop": 32, "gan_warmup": 30},
}


def _check_masks(masks: np.ndarray, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    masks = np.asarray(masks)
    if masks.dtype != bool:
        raise ValueError(f"{name} must be a bool marker mask, got {masks.dtype}")
    if shape is not None and masks.shape[-2:] != shape:
        raise ValueError(f"{name} is {masks.shape[-2:]}; expected the sensor size {shape}")
    return masks


def to_working(masks: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Convert bool (N, H, W) -> uint8 (N, h, w), the area-averaged marker fraction * 255 (compact to cache)."""
    h, w = size
    out = np.empty((len(masks), h, w), np.uint8)
    for i, m in enumerate(masks):
        area = cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        out[i] = np.rint(area * 255.0).astype(np.uint8)
    return torch.from_numpy(out)


def as_signed(x: torch.Tensor) -> torch.Tensor:
    """uint8 fraction -> float (N, 1, h, w) in [-1, 1], the model's input scale."""
    return (x.float() / 127.5 - 1.0).unsqueeze(1)


def noisy(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, timesteps: int) -> torch.Tensor:
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


class M2MTranslator:
    """A trained m2m checkpoint: source-sensor marker masks -> target-sensor marker masks."""

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
    def load(cls, path, device: str = "cpu") -> M2MTranslator:
        ckpt = read_checkpoint(path)
        if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
            found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
            raise ValueError(f"{path}: not an m2m checkpoint (format {found!r}, expected {CHECKPOINT_FORMAT!r})")
        model = M2MUNet(M2MModelConfig.from_dict(ckpt["model_config"]))
        model.load_state_dict(ckpt["model"])
        model.to(device)
        metadata = {"config": ckpt["train_config"]["model"], "steps_trained": ckpt["summary"]["steps"],
                    "checkpoint": str(path),
                    "checkpoint_sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest()}
        return cls(model, ckpt["source_ref"].numpy().astype(bool), ckpt["target_ref"].numpy().astype(bool),
                   ckpt["source_name"], ckpt["target_name"], metadata, float(ckpt.get("threshold", 0.5)))

    def info(self) -> dict:
        h, w = self.working_size
        return {**self.metadata, "source": self.source_name, "target": self.target_name,
                "sensor_size": list(self.sensor_size), "working_size": [h, w], "threshold": self.threshold}

    def translate(self, source_masks: np.ndarray, steps: int = 1, batch_size: int = 16, seed: int = 0) -> np.ndarray:
        """Translate bool (N, H, W) source masks at sensor resolution -> bool (N, H, W) target masks."""
        source_masks = _check_masks(source_masks, "source masks", self.sensor_size)
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

    def calibrate(self, source_masks: np.ndarray, target_masks: np.ndarray, batch_size: int = 16) -> float:
        """Set the threshold so the translated masks cover as much area as the true ones.

        Upsampling the working-resolution probability and cutting at 0.5 shrinks small dots (a
        few per cent of their area, which is how the force model reads pressing depth), so the
        cut is placed where the mean marker area of the held-out pairs matches the target's.
        """
        probs = np.concatenate([self.probabilities(source_masks[i:i + batch_size])
                                for i in range(0, len(source_masks), batch_size)])
        self.threshold = float(np.quantile(probs, 1.0 - float(np.mean(target_masks))))
        return self.threshold


def _crops(data: list[torch.Tensor], index: torch.Tensor, crop: int, gen: torch.Generator) -> list[torch.Tensor]:
    """Crop the same random window of each tensor (N, h, w) per sample; refs are (1, h, w)."""
    h, w = data[0].shape[-2:]
    rows = torch.randint(0, h - crop + 1, (len(index),), generator=gen).tolist()
    cols = torch.randint(0, w - crop + 1, (len(index),), generator=gen).tolist()
    out = []
    for x in data:
        picks = [x[i if len(x) > 1 else 0, r:r + crop, c:c + crop]
                 for i, r, c in zip(index.tolist(), rows, cols)]
        out.append(as_signed(torch.stack(picks)))
    return out


def train_m2m(cfg: M2MTrainConfig, source_masks: np.ndarray, target_masks: np.ndarray,
              source_ref: np.ndarray, target_ref: np.ndarray, out_dir, *, source_name: str,
              target_name: str, val=None, progress: bool = True) -> dict:
    """Train on location-paired masks (bool (N, H, W) each, same contact at index i); write
    ``out_dir/m2m.pt`` and ``out_dir/m2m_summary.json``; return the summary.

    ``val``: (val_source_masks, val_target_masks) for the final mean marker-mask IoU (one step).
    """
    t_start = time.perf_counter()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    source_ref = _check_masks(source_ref, "source reference")
    sensor = source_ref.shape
    if source_ref.ndim != 2:
        raise ValueError(f"source reference must be one (H, W) mask, got {source_ref.shape}")
    target_ref = _check_masks(target_ref, "target reference", sensor)
    source_masks = _check_masks(source_masks, "source masks", sensor)
    target_masks = _check_masks(target_masks, "target masks", sensor)
    if source_masks.ndim != 3 or source_masks.shape != target_masks.shape or not len(source_masks):
        raise ValueError(f"need paired (N, H, W) masks, got source {source_masks.shape}, target {target_masks.shape}")
    mcfg = cfg.model_config
    size = mcfg.working_size(*sensor)
    crop = min(cfg.crop, min(size) // 2 ** mcfg.levels * 2 ** mcfg.levels)  # small models: the whole height
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    data = [to_working(source_masks, size), to_working(source_ref[None], size),
            to_working(target_ref[None], size), to_working(target_masks, size)]
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    model, disc = M2MUNet(mcfg).to(device), PatchDiscriminator(mcfg).to(device)
    opt_g = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    opt_d = torch.optim.AdamW(disc.parameters(), lr=cfg.disc_lr, betas=(0.5, 0.999), weight_decay=1e-4)
    use_gan = cfg.feature > 0 or cfg.adversarial > 0
    T, n_one = mcfg.timesteps, round(cfg.one_step_fraction * cfg.batch_size)

    history, window = [], {}
    bar = tqdm(range(cfg.steps), desc=f"m2m {source_name} -> {target_name}", unit="step",
               disable=not progress)
    for step in bar:
        for group in opt_g.param_groups:
            group["lr"] = cfg.lr * (0.55 + 0.45 * math.cos(math.pi * step / cfg.steps))
        index = torch.randint(0, len(source_masks), (cfg.batch_size,), generator=gen)
        src, sref, tref, tgt = (x.to(device) for x in _crops(data, index, crop, gen))
        t = torch.cat([torch.full((n_one,), T - 1), torch.randint(0, T, (cfg.batch_size - n_one,), generator=gen)])
        x_t = noisy(tgt, t.to(device), torch.randn(tgt.shape, generator=gen).to(device), T)
        logits = model(x_t, src, sref, tref, t)
        losses = {"pixel": F.binary_cross_entropy_with_logits(logits, (tgt + 1) / 2)}
        gan_on = use_gan and step >= cfg.gan_warmup
        if gan_on:
            fake = torch.sigmoid(logits) * 2 - 1
            d_fake, f_fake = disc(fake, src, tref, return_features=True)
            with torch.no_grad():
                _, f_real = disc(tgt, src, tref, return_features=True)
            losses["feature"] = sum(F.l1_loss(a, b) for a, b in zip(f_fake, f_real)) / len(f_real)
            losses["adversarial"] = -d_fake.mean()
        loss = sum(getattr(cfg, k) * v for k, v in losses.items())
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt_g.step()
        if gan_on:
            d_loss = (F.relu(1 - disc(tgt, src, tref)).mean()
                      + F.relu(1 + disc(fake.detach(), src, tref)).mean())
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            losses["discriminator"] = d_loss
        for k, v in losses.items():
            window.setdefault(k, []).append(v.item())
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            history.append({"step": step + 1, **{k: float(np.mean(v)) for k, v in window.items()}})
            window = {}
            bar.set_postfix({k: f"{v:.4f}" for k, v in history[-1].items() if k != "step"})

    model.eval()
    summary = {"source": source_name, "target": target_name, "pairs": len(source_masks),
               "sensor_size": list(sensor), "working_size": list(size), "steps": cfg.steps,
               "train_seconds": round(time.perf_counter() - t_start, 1),
               "final_losses": {k: v for k, v in history[-1].items() if k != "step"},
               "history": history, "config": cfg.to_dict(), "model_config": mcfg.to_dict(),
               "threads": torch.get_num_threads(), "torch": str(torch.__version__)}
    threshold = 0.5
    if val is not None:
        val_source, val_target = (_check_masks(m, "validation masks", sensor) for m in val)
        translator = M2MTranslator(model, source_ref, target_ref, source_name, target_name)
        summary["val_iou_at_0.5"] = float(np.mean([mask_iou(p, q) for p, q in zip(translator.translate(val_source),
                                                                                  val_target)]))
        threshold = translator.calibrate(val_source, val_target)
        pred = translator.translate(val_source)
        summary["val_pairs"] = len(val_source)
        summary["val_iou"] = float(np.mean([mask_iou(p, q) for p, q in zip(pred, val_target)]))
    summary["seconds"] = round(time.perf_counter() - t_start, 1)
    ckpt = {"format": CHECKPOINT_FORMAT, "model": {k: v.cpu() for k, v in model.state_dict().items()},
            "model_config": mcfg.to_dict(),
            "train_config": cfg.to_dict(), "source_name": source_name, "target_name": target_name,
            "source_ref": torch.from_numpy(source_ref.astype(np.uint8)),
            "target_ref": torch.from_numpy(target_ref.astype(np.uint8)),
            "sensor_height": int(sensor[0]), "sensor_width": int(sensor[1]), "summary": summary,
            "threshold": threshold}
    tmp = out_dir / "m2m.pt.tmp"
    torch.save(ckpt, tmp)
    tmp.replace(out_dir / "m2m.pt")
    (out_dir / "m2m_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
