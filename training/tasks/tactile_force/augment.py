"""Training-time augmentation of tactile clips: what differs between sensor units and over time.

A user's sensor is not the one the data came from: its LEDs are brighter or tinted, its camera
noisier, its gel mounted a little shifted or turned, and its lighting has drifted since the
no-contact reference was taken. Each clip gets one draw of these (a clip is one unit at one
moment), applied to the preprocessed frames and the reference together:

    gain       overall brightness and per-channel colour gain (log-normal), frames and reference
    drift      the reference's own gain and offset: lighting changed since it was captured
    noise      per-pixel Gaussian noise, every frame and the reference independently
    geometry   a small shift and in-plane rotation of the whole clip; Fx and Fy turn with it
               (the image axes are the force axes), Fz stays

Photometric parts act on grey levels, so they are off for models that see binary marker masks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...core.config import DictConfig


@dataclass
class AugmentConfig(DictConfig):
    enabled: bool = True
    brightness: float = 0.15        # std of the log of the overall gain
    colour_gain: float = 0.08       # std of the log of each channel's gain
    reference_drift: float = 0.03   # std of the reference's extra gain (log) and offset (full scale)
    noise: float = 0.01             # std of per-pixel noise, full scale
    shift: float = 0.03             # largest shift, fraction of the image side
    rotation_deg: float = 5.0       # largest in-plane rotation

    def __post_init__(self) -> None:
        bad = [name for name in ("brightness", "colour_gain", "reference_drift", "noise", "shift", "rotation_deg")
               if not 0.0 <= getattr(self, name) <= (45.0 if name == "rotation_deg" else 1.0)]
        if bad:
            raise ValueError(f"augmentation {', '.join(bad)} out of range (0..1; rotation_deg 0..45)")


class Augment:
    """Apply an `AugmentConfig` to (frames [L, C, S, S], reference [C, S, S], forces [L, 3]).

    ``mean`` and ``std`` are the preprocessing's normalisation, so gains act on grey levels.
    """

    def __init__(self, cfg: AugmentConfig, mean: float, std: float, photometric: bool = True):
        self.cfg, self.mean, self.std, self.photometric = cfg, mean, std, photometric

    def __call__(self, frames: torch.Tensor, reference: torch.Tensor, forces: torch.Tensor,
                 gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c = self.cfg
        if not c.enabled:
            return frames, reference, forces
        if self.photometric:
            frames, reference = self._photometric(frames, reference, gen)
        if c.shift or c.rotation_deg:
            frames, reference, forces = self._geometric(frames, reference, forces, gen)
        return frames, reference, forces

    def _photometric(self, frames, reference, gen):
        c, channels = self.cfg, frames.shape[1]
        normal = (lambda *shape: torch.randn(*shape, generator=gen))
        gain = torch.exp(c.brightness * normal(1) + c.colour_gain * normal(channels)).view(1, channels, 1, 1)
        level = (lambda x: x * self.std + self.mean)       # preprocessed -> grey level 0..1
        frames = level(frames) * gain
        reference = level(reference)[None] * gain * math.exp(c.reference_drift * float(normal(1)))
        reference = reference + c.reference_drift * float(normal(1))
        if c.noise:
            frames = frames + c.noise * normal(*frames.shape)
            reference = reference + c.noise * normal(*reference.shape)
        back = (lambda x: (x - self.mean) / self.std)
        return back(frames), back(reference)[0]

    def _geometric(self, frames, reference, forces, gen):
        c = self.cfg
        uniform = (lambda scale: (2 * float(torch.rand(1, generator=gen)) - 1) * scale)
        angle = math.radians(uniform(c.rotation_deg))
        tx, ty = uniform(2 * c.shift), uniform(2 * c.shift)     # normalised coordinates span 2
        cos, sin = math.cos(angle), math.sin(angle)
        # each output pixel samples the input at R p + t, so the content turns by -angle
        theta = torch.tensor([[cos, -sin, tx], [sin, cos, ty]], dtype=frames.dtype)
        stack = torch.cat([frames, reference[None]])
        grid = F.affine_grid(theta[None].expand(len(stack), -1, -1), list(stack.shape), align_corners=False)
        stack = F.grid_sample(stack, grid, mode="bilinear", padding_mode="border", align_corners=False)
        turn = torch.tensor([[cos, sin], [-sin, cos]], dtype=forces.dtype)   # R^-1 on (Fx, Fy)
        forces = torch.cat([forces[:, :2] @ turn.T, forces[:, 2:]], 1)
        return stack[:-1], stack[-1], forces
