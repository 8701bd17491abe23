"""The m2m task on the shared loop: a marker-to-marker UNet trained as a one-step diffusion model with a PatchGAN.

    location-paired bool masks (source sensor, target sensor) at sensor resolution
    -> area-averaged to the working resolution (keeps sub-pixel marker edges)
    -> each epoch: ``steps_per_epoch * batch_size`` samples, each a random crop (one window for
       source, both references and target) at a random t, drawn from (seed, epoch, index)
    -> x_t = sqrt(abar_t) target + sqrt(1 - abar_t) noise; t = T - 1 (pure noise: the one-step
       translation) for ``one_step_fraction`` of the samples
    -> loss: pixel BCE on the predicted x0, plus (from the epoch after ``gan_warmup`` steps)
       PatchGAN feature matching, a hinge adversarial term and the discriminator's hinge loss
    -> validation: the held-out pairs translated in one step; the IoU at the threshold that
       matches the true marker area selects best.pt, whose threshold the translator uses

Generator and discriminator are one module, so the loop's one AdamW, its clipping, DDP and the
checkpoints cover both. The two sides are updated together, each by its own loss only: the
generator sees the discriminator through detached weights, the discriminator sees detached
fakes. Runs are deterministic on CPU for a given seed, data and thread count, and a run resumed
from last.pt matches an uninterrupted one.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from tacforce_ros.perception.markers import mask_iou

from ...core.loop import FitResult, fit
from ...core.registry import register
from ...models.m2m_unet import M2MModelConfig, M2MUNet, PatchDiscriminator
from .config import M2MConfig
from .data import PairCrops, check_masks, to_working
from .translator import TASK, M2MTranslator, calibrated_threshold, noisy

PRIVATE_SUMMARY = ("source_ref", "target_ref")   # tensors the translator needs; not for JSON


class M2MPair(nn.Module):
    """Generator and discriminator; ``forward`` returns the training loss of a batch of crops.

    One backward pass trains both: the generator's terms see the discriminator through detached
    weights, the discriminator's hinge loss sees the generator's output detached, so each part gets
    the gradient of its own loss only (`M2MTask.param_groups` gives the discriminator its own rate).
    """

    def __init__(self, model_cfg: M2MModelConfig, cfg: M2MConfig):
        super().__init__()
        self.generator, self.discriminator = M2MUNet(model_cfg), PatchDiscriminator(model_cfg)
        self.weights = {"pixel": cfg.pixel, "feature": cfg.feature, "adversarial": cfg.adversarial}

    def forward(self, batch: dict) -> torch.Tensor:
        src, sref, tref, tgt, t = (batch[k] for k in ("source", "source_ref", "target_ref", "target", "t"))
        x_t = noisy(tgt, t, batch["noise"], self.generator.cfg.timesteps)
        logits = self.generator(x_t, src, sref, tref, t)
        pixel = F.binary_cross_entropy_with_logits(logits, (tgt + 1) / 2)
        fake = torch.sigmoid(logits) * 2 - 1
        frozen = {k: v.detach() for k, v in self.discriminator.named_parameters()}
        d_fake, f_fake = functional_call(self.discriminator, frozen, (fake, src, tref), {"return_features": True})
        d_real, f_real = self.discriminator(tgt, src, tref, return_features=True)
        feature = sum(F.l1_loss(a, b.detach()) for a, b in zip(f_fake, f_real)) / len(f_real)
        disc = F.relu(1 - d_real).mean() + F.relu(1 + self.discriminator(fake.detach(), src, tref)).mean()
        gan = (self.weights["feature"] * feature - self.weights["adversarial"] * d_fake.mean() + disc)
        # computed during the warm-up too (times 0), so every parameter gets a gradient each step under DDP
        return self.weights["pixel"] * pixel + batch["gan"][0] * gan


@register(TASK)
class M2MTask:
    """Data, model, loss and validation of the m2m task for `tacforce_training.core.loop.fit`."""

    score_name = "val_iou"
    higher_is_better = True

    def __init__(self, cfg: M2MConfig, source_masks: np.ndarray, target_masks: np.ndarray, source_ref: np.ndarray,
                 target_ref: np.ndarray, *, source_name: str, target_name: str, val: tuple):
        self.config = cfg
        self.source_ref = check_masks(source_ref, "source reference")
        if self.source_ref.ndim != 2:
            raise ValueError(f"source reference must be one (H, W) mask, got {self.source_ref.shape}")
        sensor = self.source_ref.shape
        self.target_ref = check_masks(target_ref, "target reference", sensor)
        source_masks = check_masks(source_masks, "source masks", sensor)
        target_masks = check_masks(target_masks, "target masks", sensor)
        if source_masks.ndim != 3 or source_masks.shape != target_masks.shape or not len(source_masks):
            raise ValueError(f"need paired (N, H, W) masks, got source {source_masks.shape}, "
                             f"target {target_masks.shape}")
        self.val_source, self.val_target = (check_masks(m, "validation masks", sensor) for m in val)
        if not len(self.val_source) or self.val_source.shape != self.val_target.shape:
            raise ValueError(f"need paired validation masks, got {self.val_source.shape}, {self.val_target.shape}")
        self.names = (source_name, target_name)
        mcfg = cfg.model_config
        size = mcfg.working_size(*sensor)
        crop = min(cfg.crop, min(size) // 2 ** mcfg.levels * 2 ** mcfg.levels)  # small models: the whole height
        refs = [to_working(r[None], size)[0] for r in (self.source_ref, self.target_ref)]
        self.crops = PairCrops(to_working(source_masks, size), to_working(target_masks, size), *refs, crop=crop,
                               length=cfg.steps_per_epoch * cfg.batch_size, timesteps=mcfg.timesteps,
                               one_step_fraction=cfg.one_step_fraction, gan_epoch=cfg.gan_epoch, seed=cfg.seed)
        self.summary = {
            "source": source_name, "target": target_name, "pairs": len(source_masks),
            "val_pairs": len(self.val_source), "sensor_size": list(sensor), "working_size": list(size),
            "crop": crop, "model_config": mcfg.to_dict(),
            "source_ref": torch.from_numpy(self.source_ref.astype(np.uint8)),
            "target_ref": torch.from_numpy(self.target_ref.astype(np.uint8)),
            "config": cfg.to_dict(), "threads": torch.get_num_threads(), "torch": str(torch.__version__),
        }

    def build_model(self) -> M2MPair:
        return M2MPair(self.config.model_config, self.config)

    def train_set(self) -> PairCrops:
        return self.crops

    def param_groups(self, model: M2MPair) -> list:
        """Train the discriminator at ``disc_lr`` with pix2pix's betas (0.5, 0.999), the generator as the loop does."""
        return [(model.generator.parameters(), {}),
                (model.discriminator.parameters(), {"lr": self.config.disc_lr, "betas": (0.5, 0.999)})]

    def loss(self, model, batch) -> torch.Tensor:
        return model(batch)

    def val_items(self) -> list[int]:
        return list(range(len(self.val_source)))

    def predict(self, model: M2MPair, items, chunk: int = 16) -> dict:
        """One-step marker probabilities of the held-out pairs at sensor resolution, with their true targets."""
        translator = M2MTranslator(model.generator, self.source_ref, self.target_ref, *self.names)
        probs = [np.zeros((0, *self.source_ref.shape), np.float32)]
        probs += [translator.probabilities(self.val_source[items[i:i + chunk]]) for i in range(0, len(items), chunk)]
        target = self.val_target[items].astype(np.uint8)     # bool tensors do not gather on every backend
        return {"prob": torch.from_numpy(np.concatenate(probs)), "target": torch.from_numpy(target)}

    def score(self, rows: dict) -> tuple[dict, float]:
        prob, target = rows["prob"].numpy(), rows["target"].numpy().astype(bool)
        threshold = calibrated_threshold(prob, target)
        iou = float(np.mean([mask_iou(p > threshold, q) for p, q in zip(prob, target)]))
        at_half = float(np.mean([mask_iou(p > 0.5, q) for p, q in zip(prob, target)]))
        return {"iou": iou, "iou_at_0.5": at_half, "threshold": threshold, "pairs": len(target)}, iou

    def check_resume(self, ckpt: dict, path) -> None:
        """Refuse to resume a run of another model, sensor pair or data set."""
        keys = ("source", "target", "pairs", "val_pairs", "sensor_size", "working_size", "crop", "model_config")
        saved, now = ({k: s[k] for k in keys} for s in (ckpt["summary"], self.summary))
        if saved != now or not all(torch.equal(ckpt["summary"][k], self.summary[k]) for k in PRIVATE_SUMMARY):
            raise ValueError(f"{path} was trained on {saved}; this run has {now} (or other references)")
        rates = [(c["lr"], c["disc_lr"]) for c in (ckpt["config"], self.config.to_dict())]
        if rates[0] != rates[1]:     # the resumed schedule would silently keep the saved rates
            raise ValueError(f"{path} was trained with (lr, disc_lr) {rates[0]}; this run has {rates[1]}")

    def describe(self, r: dict, epochs: int) -> str:
        m = r["metrics"]
        return (f"epoch {r['epoch']}/{epochs}  train loss {r['train_loss']:.4f}  val IoU {m['iou']:.3f} "
                f"(threshold {m['threshold']:.2f}; {m['iou_at_0.5']:.3f} at 0.5)  {r['seconds']:.1f} s  "
                f"{r['samples_per_s']:.1f} crops/s")


def public_summary(summary: dict) -> dict:
    """Return the training summary without the reference tensors (for m2m_summary.json)."""
    return {k: v for k, v in summary.items() if k not in PRIVATE_SUMMARY}


def train(cfg: M2MConfig, source_masks, target_masks, source_ref, target_ref, out_dir, *, source_name: str,
          target_name: str, val: tuple, resume: bool = False, device: str = "auto") -> FitResult:
    """Train on location-paired masks (bool (N, H, W) each, same contact at index i), validate on ``val``
    = (source masks, target masks); best.pt / last.pt in ``out_dir`` (resume continues last.pt).
    """
    task = M2MTask(cfg, source_masks, target_masks, source_ref, target_ref, source_name=source_name,
                   target_name=target_name, val=val)
    return fit(task, cfg, out_dir, resume=resume, device=device)
