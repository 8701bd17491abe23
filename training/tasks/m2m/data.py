"""m2m data: paired bool masks at sensor resolution -> area-averaged working resolution -> random crops.

No augmentation: marker layouts are not symmetric under flips or 90-degree turns, so an
augmented pair would teach a layout the target sensor does not have.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset


def check_masks(masks: np.ndarray, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Return ``masks`` as an array after checking it is bool and (if given) of the sensor size."""
    masks = np.asarray(masks)
    if masks.dtype != bool:
        raise ValueError(f"{name} must be a bool marker mask, got {masks.dtype}")
    if shape is not None and masks.shape[-2:] != shape:
        raise ValueError(f"{name} is {masks.shape[-2:]}; expected the sensor size {shape}")
    return masks


def to_working(masks: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Convert bool (N, H, W) -> uint8 (N, h, w), the area-averaged marker fraction * 255 (keeps sub-pixel edges)."""
    h, w = size
    out = np.empty((len(masks), h, w), np.uint8)
    for i, m in enumerate(masks):
        area = cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        out[i] = np.rint(area * 255.0).astype(np.uint8)
    return torch.from_numpy(out)


def as_signed(x: torch.Tensor) -> torch.Tensor:
    """Convert uint8 fraction (..., h, w) -> float (..., 1, h, w) in [-1, 1], the model's input scale."""
    return (x.float() / 127.5 - 1.0).unsqueeze(-3)


class PairCrops(Dataset):
    """``steps * batch_size`` training samples per epoch, each drawn from (seed, epoch, index) alone.

    A sample is one random pair, one crop window shared by the source, both references and the
    target, a timestep (T - 1 with probability ``one_step_fraction``, else uniform) and the
    noise; so every rank, worker and resumed run draws the same samples. ``gan`` is 1.0 from
    epoch ``gan_epoch`` on (the loss multiplies the GAN terms by it).
    """

    def __init__(self, source: torch.Tensor, target: torch.Tensor, source_ref: torch.Tensor,
                 target_ref: torch.Tensor, *, crop: int, length: int, timesteps: int, one_step_fraction: float,
                 gan_epoch: int, seed: int):
        self.source, self.target, self.source_ref, self.target_ref = source, target, source_ref, target_ref
        self.crop, self.length, self.timesteps = crop, length, timesteps
        self.one_step_fraction, self.gan_epoch, self.seed = one_step_fraction, gan_epoch, seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        h, w = self.source.shape[-2:]
        i = int(rng.integers(len(self.source)))
        r, c = int(rng.integers(h - self.crop + 1)), int(rng.integers(w - self.crop + 1))
        t = self.timesteps - 1 if rng.random() < self.one_step_fraction else int(rng.integers(self.timesteps))
        window = (slice(r, r + self.crop), slice(c, c + self.crop))
        return {"source": as_signed(self.source[i][window]), "target": as_signed(self.target[i][window]),
                "source_ref": as_signed(self.source_ref[window]), "target_ref": as_signed(self.target_ref[window]),
                "t": torch.tensor(t), "noise": torch.from_numpy(rng.standard_normal((1, self.crop, self.crop),
                                                                                    dtype=np.float32)),
                "gan": torch.tensor(float(self.epoch >= self.gan_epoch))}
