"""Training-time augmentation of tactile clips: what differs between sensor units and over time.

A user's sensor is not the one the data came from: its LEDs are brighter or tinted, its camera
noisier, its gel mounted a little shifted or turned, and its lighting has drifted since the
no-contact reference was taken. Each clip gets one draw of these (a clip is one unit at one
moment), applied to the preprocessed frames and the reference together:

    gain       overall brightness and per-channel colour gain (log-normal), frames and reference
    drift      the reference's own gain and offset: lighting changed since it was captured
    noise      per-pixel Gaussian noise, every frame and the reference independently
    shift      a shift of the whole clip by whole pixels (edges repeated), so nothing is resampled
    rotation   an in-plane rotation of the whole clip; Fx and Fy turn with it (the image axes are
               the force axes), Fz stays

Gain and drift are off by default, pixel noise on: the model reads force from how much the frame
changed from the reference, and a unit's gain scales that change exactly as force does, so gain
draws teach it to discount the size of the change. On the GelSight-type split (README, "Tactile
force on other sensors") draws of 15/8/3 % cost held-out Fz R² 0.97 -> 0.81, and even 4/2/1 %
-> 0.95; the training bags' own units already differ in gain and offset. Give them
(``brightness=0.1,colour_gain=0.05``) where the training data come from one unit only.

Shift and rotation are off by default: on the simulated marker sensor a 3 % shift with 5 degrees
of rotation cost validation Fx R² 0.995 -> 0.88 (resampling blurs the fine marker motion that
carries shear), and a unit's own no-contact reference already absorbs how its gel sits in the
image. Give them (``shift=0.02,rotation_deg=3``) for data from one mounting used on others.

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
    brightness: float = 0.0         # std of the log of the overall gain (off: see the module docstring)
    colour_gain: float = 0.0        # std of the log of each channel's gain
    reference_drift: float = 0.0    # std of the reference's extra gain (log) and offset (full scale)
    noise: float = 0.005            # std of per-pixel noise, full scale
    shift: float = 0.0              # largest shift, fraction of the image side (whole pixels)
    rotation_deg: float = 0.0       # largest in-plane rotation (resamples: see the module docstring)

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
        c, side = self.cfg, frames.shape[-1]
        uniform = (lambda scale: (2 * float(torch.rand(1, generator=gen)) - 1) * scale)
        stack = torch.cat([frames, reference[None]])
        if c.shift:
            most = int(c.shift * side)
            dx, dy = (int(torch.randint(-most, most + 1, (1,), generator=gen)) for _ in range(2))
            padded = F.pad(stack, (most, most, most, most), mode="replicate")
            stack = padded[..., most - dy:most - dy + stack.shape[-2], most - dx:most - dx + side]
        if c.rotation_deg:
            angle = math.radians(uniform(c.rotation_deg))
            cos, sin = math.cos(angle), math.sin(angle)
            # each output pixel samples the input at R p, so the content turns by -angle
            theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=frames.dtype)
            grid = F.affine_grid(theta[None].expand(len(stack), -1, -1), list(stack.shape), align_corners=False)
            stack = F.grid_sample(stack, grid, mode="bilinear", padding_mode="border", align_corners=False)
            turn = torch.tensor([[cos, sin], [-sin, cos]], dtype=forces.dtype)   # R^-1 on (Fx, Fy)
            forces = torch.cat([forces[:, :2] @ turn.T, forces[:, 2:]], 1)
        return stack[:-1], stack[-1], forces
