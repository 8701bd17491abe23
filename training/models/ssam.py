"""Visual force from a sequence of camera frames: seed 000's CNN-LSTM baseline and SSAM.

Both take T consecutive gray frames (float [B, T, 1, S, S], already preprocessed by
training/preprocess.py) and return the force in newtons, [B, outputs] (1 = along the press
axis, 3 = Fx, Fy, Fz).

    per-frame VGG-like trunk, shared over time: pairs of 3x3 conv + ReLU with 16, 32, 64, 128,
    256 channels (x ``width``), each pair followed by 2x2 max-pool and batch norm
      baseline: all five pools (S/32 map) -> spatial mean -> one C-vector per frame (T of them)
      ssam:     no last pool (S/16 map); frame pairs (t-1, t) concatenated on channels (2C)
                -> sequential spatial attention: channel mean -> 1x1 conv (ReLU) -> conv with
                   kernel = map width ('same') -> sigmoid -> [s, s] weight map
                -> sequential channel attention: learned weighted-average pooling over the s*s
                   positions -> FC(2C/4) ReLU -> FC(C) -> sigmoid -> C weights
                -> frame t's features x: relu(x * (spatial * channel) + x) -> spatial sum pool
                -> T-1 C-vectors
    -> bidirectional LSTM (256 each way, x ``width``), the last step (both directions' outputs
       there) -> batch norm -> FC 1024 (x ``width``) tanh -> linear ``outputs``
    -> x ``force_scale`` (the seed divided labels by 20 for the loss; the division is undone in
       the model so the exported graph outputs newtons)

Interpretation: the seed notes give the channel attention FC(C/2) of the 2C concatenated
channels, i.e. C weights; we apply both attentions to the newer frame of each pair (its C
channels), so the attention is computed from the change between frames and applied to the
current appearance.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..core.config import DictConfig

ARCHS = ("ssam", "cnn_lstm")


@dataclass
class VisualForceConfig(DictConfig):
    arch: str = "ssam"              # "ssam" or "cnn_lstm" (the baseline)
    frames: int = 20                # T, sequence length
    image_size: int = 128           # S, square model input side
    in_channels: int = 1            # gray
    width: float = 1.0              # channel multiplier of trunk, LSTM and FC (1.0 = the seed)
    outputs: int = 1                # 1: force along the press axis; 3: Fx, Fy, Fz
    force_scale: float = 20.0       # labels / force_scale is what the head regresses
    attention_hidden: int = 8       # channels of the spatial attention's 1x1 conv

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r} (use {', '.join(ARCHS)})")
        if self.outputs not in (1, 3):
            raise ValueError(f"outputs must be 1 or 3, not {self.outputs}")
        if self.frames < 2:
            raise ValueError(f"frames must be >= 2, not {self.frames}")
        if self.image_size % 32:
            raise ValueError(f"image_size must be a multiple of 32, not {self.image_size}")

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(max(2, int(round(c * self.width))) for c in (16, 32, 64, 128, 256))

    @property
    def lstm_hidden(self) -> int:
        return max(4, int(round(256 * self.width)))

    @property
    def fc_hidden(self) -> int:
        return max(8, int(round(1024 * self.width)))


CONFIGS = {
    # unit tests: seconds on CPU
    "tiny": dict(frames=4, image_size=32, width=0.0625),
    # CPU: trains in minutes on one core (the shipped model)
    "small": dict(frames=20, image_size=64, width=0.25),
    # the seed's sizes
    "default": dict(frames=20, image_size=128, width=1.0),
}


def config(name: str = "default", **overrides) -> VisualForceConfig:
    if name not in CONFIGS:
        raise ValueError(f"unknown config {name!r} (use {', '.join(CONFIGS)})")
    return VisualForceConfig(**{**CONFIGS[name], **overrides})


class Trunk(nn.Module):
    """VGG-like per-frame trunk; ``last_pool`` False keeps the S/16 map (SSAM)."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], last_pool: bool):
        super().__init__()
        layers, cin = [], in_channels
        for k, c in enumerate(channels):
            layers += [nn.Conv2d(cin, c, 3, padding=1), nn.ReLU(inplace=True),
                       nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True)]
            if last_pool or k < len(channels) - 1:
                layers.append(nn.MaxPool2d(2))
            layers.append(nn.BatchNorm2d(c))
            cin = c
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Head(nn.Module):
    """BiLSTM over the per-step vectors, last step -> BN -> FC tanh -> linear."""

    def __init__(self, features: int, hidden: int, fc: int, outputs: int):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, batch_first=True, bidirectional=True)
        self.norm = nn.BatchNorm1d(2 * hidden)
        self.fc = nn.Linear(2 * hidden, fc)
        self.out = nn.Linear(fc, outputs)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(seq)
        return self.out(torch.tanh(self.fc(self.norm(y[:, -1]))))


class SequentialSpatialAttention(nn.Module):
    def __init__(self, side: int, hidden: int):
        super().__init__()
        self.squeeze = nn.Conv2d(1, hidden, 1)
        self.wide = nn.Conv2d(hidden, 1, side, padding="same")

    def forward(self, pair: torch.Tensor) -> torch.Tensor:        # [N, 2C, s, s] -> [N, 1, s, s]
        a = F.relu(self.squeeze(pair.mean(1, keepdim=True)))
        return torch.sigmoid(self.wide(a))


class SequentialChannelAttention(nn.Module):
    def __init__(self, channels: int, side: int):
        super().__init__()
        self.position_logits = nn.Parameter(torch.zeros(side * side))   # weighted-average pooling
        self.fc1 = nn.Linear(2 * channels, max(1, channels // 2))       # 2C/4
        self.fc2 = nn.Linear(max(1, channels // 2), channels)           # 2C/2

    def forward(self, pair: torch.Tensor) -> torch.Tensor:        # [N, 2C, s, s] -> [N, C, 1, 1]
        weights = torch.softmax(self.position_logits, 0)
        pooled = (pair.flatten(2) * weights).sum(-1)
        att = torch.sigmoid(self.fc2(F.relu(self.fc1(pooled))))
        return att[:, :, None, None]


class VisualForceNet(nn.Module):
    def __init__(self, cfg: VisualForceConfig):
        super().__init__()
        self.cfg = cfg
        ssam = cfg.arch == "ssam"
        channels = cfg.channels
        self.trunk = Trunk(cfg.in_channels, channels, last_pool=not ssam)
        c = channels[-1]
        if ssam:
            side = cfg.image_size // 16
            self.spatial = SequentialSpatialAttention(side, cfg.attention_hidden)
            self.channel = SequentialChannelAttention(c, side)
        self.head = Head(c, cfg.lstm_hidden, cfg.fc_hidden, cfg.outputs)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Map float [B, T, C, S, S] -> force [B, outputs] in N."""
        b, t = frames.shape[:2]
        x = self.trunk(frames.flatten(0, 1))
        x = x.reshape(b, t, *x.shape[1:])
        if self.cfg.arch == "cnn_lstm":
            seq = x.mean((-2, -1))
        else:
            prev, cur = x[:, :-1].flatten(0, 1), x[:, 1:].flatten(0, 1)
            pair = torch.cat([prev, cur], 1)
            att = self.spatial(pair) * self.channel(pair)
            seq = F.relu(cur * att + cur).sum((-2, -1)).reshape(b, t - 1, -1)
        return self.head(seq) * self.cfg.force_scale


def build(cfg: VisualForceConfig) -> VisualForceNet:
    return VisualForceNet(cfg)
