"""M2M: one sensor's binary marker mask -> another sensor's marker mask with the same contact.

GenForce's marker-to-marker translation (Chen et al., Nature Communications 2026) is a one-step
diffusion model: an SD-Turbo UNet with LoRA adapters, conditioned on the two sensors' no-contact
(reference) marker images. No pretrained diffusion weights are available here, so this is a
small UNet trained from scratch in the same framing:

    [x_t, source, source_ref, target_ref] (4 channels, each mask * 2 - 1)
        -> 3x3 conv -> ``levels`` x (residual block, stride-2 conv)
        -> 2 residual blocks at the bottom
        -> ``levels`` x (upsample, concat skip, residual block) -> 3x3 conv -> x0 logits

x_t is the noisy target; the network predicts the clean target x0 (as logits of "marker") and
the timestep t enters every residual block through a sinusoidal embedding and an MLP. At
t = T - 1 x_t is pure noise, so the network is a direct source -> target translator (one step);
lower t give DDIM few-step sampling (see training/tasks/m2m/translator.py). The references are the image
conditioning: together with the source they say how each source marker has moved, and the
target reference says where the target's markers sit at rest.

The network is fully convolutional (GroupNorm, no attention, no positional input), so it trains
on random crops and runs on the whole working image. ``PatchDiscriminator`` is a PatchGAN for
the adversarial and feature-matching losses.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..core.config import DictConfig


@dataclass(frozen=True)
class M2MModelConfig(DictConfig):
    height: int = 256             # working rows; the width follows the sensor's aspect ratio
    base_channels: int = 32       # channels at full working resolution (multiple of 8)
    levels: int = 3               # stride-2 downsamplings; channels double per level (up to 4x)
    time_dim: int = 64            # timestep embedding width
    timesteps: int = 1000         # diffusion schedule length T
    disc_channels: int = 32       # PatchDiscriminator first-layer channels
    disc_layers: int = 3          # PatchDiscriminator stride-2 layers

    def __post_init__(self) -> None:
        if self.base_channels % 8 or self.base_channels < 8:
            raise ValueError(f"base_channels must be a positive multiple of 8, got {self.base_channels}")
        if not 1 <= self.levels <= 4:
            raise ValueError(f"levels must be 1..4 (the working width is a multiple of 16), got {self.levels}")
        if self.height % 2 ** self.levels:
            raise ValueError(f"height {self.height} is not divisible by 2**levels = {2 ** self.levels}")
        if self.timesteps < 2 or self.time_dim % 2:
            raise ValueError(f"need timesteps >= 2 and an even time_dim, got {self.timesteps}, {self.time_dim}")

    def working_size(self, sensor_height: int, sensor_width: int) -> tuple[int, int]:
        """(rows, columns) the model runs at: ``height`` rows, the width rounded to 16 px."""
        return self.height, max(16, round(self.height * sensor_width / sensor_height / 16) * 16)

    def channels(self) -> list[int]:
        """Channels at each resolution, full working resolution first."""
        return [self.base_channels * min(2 ** i, 4) for i in range(self.levels + 1)]


CONFIGS = {
    # unit tests: a few seconds on CPU
    "tiny": M2MModelConfig(height=48, base_channels=8, levels=2, time_dim=16, disc_channels=8, disc_layers=2),
    # a third of a 480x640 sensor (160x208; the force model sees 128x128), sized to train in
    # minutes and translate a run at ~20 frames/s on 2 CPU cores
    "cpu": M2MModelConfig(height=160, base_channels=8, levels=3, time_dim=32, disc_channels=16),
    # the seed's 256 px working size; meant for a GPU
    "default": M2MModelConfig(),
}


def alpha_bar(t: torch.Tensor, timesteps: int, s: float = 0.008) -> torch.Tensor:
    """Cosine schedule (Nichol & Dhariwal 2021): the signal fraction of x_t, 1 at t=0 -> ~0 at T-1."""
    f = torch.cos((t.double() / timesteps + s) / (1 + s) * math.pi / 2) ** 2
    f0 = math.cos(s / (1 + s) * math.pi / 2) ** 2
    return (f / f0).clamp(1e-6, 1.0).float()


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps, (N,) -> (N, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], 1)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, the timestep embedding added between (as in DDPM's UNet)."""

    def __init__(self, cin: int, cout: int, time_dim: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.time = nn.Linear(time_dim, cout)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.time(temb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class M2MUNet(nn.Module):
    def __init__(self, cfg: M2MModelConfig):
        super().__init__()
        self.cfg = cfg
        chans = cfg.channels()
        self.time_mlp = nn.Sequential(nn.Linear(cfg.time_dim, cfg.time_dim * 2), nn.SiLU(),
                                      nn.Linear(cfg.time_dim * 2, cfg.time_dim))
        self.stem = nn.Conv2d(4, chans[0], 3, padding=1)
        self.down_blocks = nn.ModuleList(ResBlock(chans[i], chans[i], cfg.time_dim) for i in range(cfg.levels))
        self.downsample = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 3, 2, 1) for i in range(cfg.levels))
        self.mid = nn.ModuleList(ResBlock(chans[-1], chans[-1], cfg.time_dim) for _ in range(2))
        self.upsample = nn.ModuleList(nn.Conv2d(chans[i + 1], chans[i], 3, padding=1) for i in range(cfg.levels))
        self.up_blocks = nn.ModuleList(ResBlock(2 * chans[i], chans[i], cfg.time_dim) for i in range(cfg.levels))
        self.out = nn.Sequential(_norm(chans[0]), nn.SiLU(), nn.Conv2d(chans[0], 1, 3, padding=1))

    def forward(self, x_t: torch.Tensor, source: torch.Tensor, source_ref: torch.Tensor,
                target_ref: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Images (N, 1, h, w) in [-1, 1] (h, w divisible by 2**levels), t (N,) long -> x0 logits (N, 1, h, w)."""
        temb = self.time_mlp(timestep_embedding(t, self.cfg.time_dim))
        h = self.stem(torch.cat([x_t, source, source_ref, target_ref], 1))
        skips = []
        for block, down in zip(self.down_blocks, self.downsample):
            h = block(h, temb)
            skips.append(h)
            h = down(h)
        for block in self.mid:
            h = block(h, temb)
        for i in reversed(range(self.cfg.levels)):
            h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
            h = self.up_blocks[i](torch.cat([h, skips[i]], 1), temb)
        return self.out(h)


class PatchDiscriminator(nn.Module):
    """PatchGAN (pix2pix): a real/fake logit per patch of a target mask, judged next to the source
    mask and the target reference, so it checks the translation rather than the layout alone.
    """

    def __init__(self, cfg: M2MModelConfig):
        super().__init__()
        layers, cin, cout = [], 3, cfg.disc_channels
        for i in range(cfg.disc_layers):
            layers.append(nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1),
                                        nn.Identity() if i == 0 else _norm(cout), nn.LeakyReLU(0.2)))
            cin, cout = cout, min(cout * 2, cfg.disc_channels * 8)
        self.layers = nn.ModuleList(layers)
        self.head = nn.Conv2d(cin, 1, 3, padding=1)

    def forward(self, target: torch.Tensor, source: torch.Tensor, target_ref: torch.Tensor,
                return_features: bool = False):
        """Images (N, 1, h, w) in [-1, 1] -> patch logits, and the per-layer feature maps when asked."""
        h, features = torch.cat([target, source, target_ref], 1), []
        for layer in self.layers:
            h = layer(h)
            features.append(h)
        logits = self.head(h)
        return (logits, features) if return_features else logits
