"""TemporalForce: a stream of tactile marker images -> 3-axis contact force in newtons.

A re-implementation of GenForce's force model (Chen et al., "Training Tactile Sensors to
Learn Force Sensing from Each Other", Nature Communications 2026):

    frame -> RAFT-style encoder (7x7/2 conv, residual stages, instance norm) -> features at 1/8
          -> ConvGRU (3x3) carrying the state from frame to frame
          -> two stride-2 residual blocks (batch norm) -> global average pool -> linear 3
          -> sigmoid = min-max-normalised (Fx, Fy, Fz) -> newtons with the stored force range

A force is predicted at every frame, so the same weights train on clips and run on a live
stream one frame at a time (``step``), which is what the ROS node and the exported ONNX do.

Differences from GenForce, and why:
- one gray input channel (they repeat gray to 3 channels; the copies carry nothing new);
- much narrower by default (GenForce: 64/96/128 encoder, hidden 128, head 256/512, 256 px),
  so the default trains to convergence on two CPU cores in minutes;
- the normalisation range is a pair of buffers and the de-normalisation happens inside the
  model, so the exported graph outputs newtons and carries its own range. The train loop sets
  the range from the training forces (with a margin); the default is GenForce's
  [-5, -5, -20] .. [5, 5, 5] N.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..core.config import DictConfig

DEFAULT_FORCE_MIN = (-5.0, -5.0, -20.0)
DEFAULT_FORCE_MAX = (5.0, 5.0, 5.0)


@dataclass
class TemporalForceConfig(DictConfig):
    image_size: int = 128                              # square model input, pixels
    in_channels: int = 1                               # 1 = gray (see training/preprocess.py)
    encoder_channels: tuple[int, ...] = (16, 24, 32)   # stage widths; stages 2.. halve the size
    blocks_per_stage: int = 1                          # RAFT uses 2
    feature_channels: int = 32                         # encoder output (1x1 conv) = GRU input
    hidden_channels: int = 32                          # ConvGRU state channels
    head_channels: tuple[int, ...] = (64, 128)         # stride-2 residual blocks after the GRU
    marker_threshold: float | None = None              # segment markers first (cross-sensor models)
    dark_markers: bool = False                         # markers darker than the threshold

    @property
    def state_size(self) -> int:
        """Side of the GRU state: the stem and every later encoder stage halve (rounding up)."""
        side = self.image_size
        for _ in range(len(self.encoder_channels)):
            side = math.ceil(side / 2)
        return side


CONFIGS = {
    # for unit tests: seconds on CPU
    "tiny": TemporalForceConfig(image_size=32, encoder_channels=(8, 8, 8), feature_channels=8,
                                hidden_channels=8, head_channels=(16, 16)),
    "small": TemporalForceConfig(image_size=96, encoder_channels=(12, 16, 24), feature_channels=24,
                                 hidden_channels=24, head_channels=(48, 96)),
    "default": TemporalForceConfig(),
}


class ResidualBlock(nn.Module):
    """RAFT's residual block: two 3x3 conv-norm-ReLU, a 1x1 projection when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int, norm: type[nn.Module]):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm1 = norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.norm2 = norm(cout)
        self.skip = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), norm(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        y = F.relu(self.norm2(self.conv2(y)))
        return F.relu(self.skip(x) + y)


class Encoder(nn.Module):
    """Per-frame features at 1/8 resolution; instance norm makes it indifferent to brightness."""

    def __init__(self, cfg: TemporalForceConfig):
        super().__init__()
        widths = cfg.encoder_channels
        self.stem = nn.Sequential(nn.Conv2d(cfg.in_channels, widths[0], 7, 2, 3, bias=False),
                                  nn.InstanceNorm2d(widths[0]), nn.ReLU())
        blocks, cin = [], widths[0]
        for i, cout in enumerate(widths):
            for b in range(cfg.blocks_per_stage):
                stride = 2 if i > 0 and b == 0 else 1
                blocks.append(ResidualBlock(cin, cout, stride, nn.InstanceNorm2d))
                cin = cout
        self.stages = nn.Sequential(*blocks)
        self.out = nn.Conv2d(cin, cfg.feature_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.stages(self.stem(x)))


class ConvGRUCell(nn.Module):
    """GRU with 3x3 convolutions in place of matrix products (update/reset gates in one conv)."""

    def __init__(self, input_channels: int, hidden_channels: int):
        super().__init__()
        self.gates = nn.Conv2d(hidden_channels + input_channels, 2 * hidden_channels, 3, padding=1)
        self.candidate = nn.Conv2d(hidden_channels + input_channels, hidden_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        z, r = torch.sigmoid(self.gates(torch.cat([h, x], 1))).chunk(2, 1)
        q = torch.tanh(self.candidate(torch.cat([r * h, x], 1)))
        return (1 - z) * h + z * q


class TemporalForce(nn.Module):
    def __init__(self, cfg: TemporalForceConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.gru = ConvGRUCell(cfg.feature_channels, cfg.hidden_channels)
        cin, head = cfg.hidden_channels, []
        for cout in cfg.head_channels:
            head.append(ResidualBlock(cin, cout, 2, nn.BatchNorm2d))
            cin = cout
        self.head = nn.Sequential(*head)
        self.fc = nn.Linear(cin, 3)
        self.register_buffer("force_min", torch.tensor(DEFAULT_FORCE_MIN))
        self.register_buffer("force_max", torch.tensor(DEFAULT_FORCE_MAX))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def set_force_range(self, lo, hi) -> None:
        lo, hi = torch.as_tensor(lo, dtype=torch.float32), torch.as_tensor(hi, dtype=torch.float32)
        if lo.shape != (3,) or hi.shape != (3,) or not bool((hi > lo).all()):
            raise ValueError(f"force range must be 3 values with max > min, got {lo} .. {hi}")
        self.force_min.copy_(lo)
        self.force_max.copy_(hi)

    def normalise(self, force: torch.Tensor) -> torch.Tensor:
        """Newtons -> the 0..1 scale the sigmoid predicts (the scale the loss is taken on)."""
        return (force - self.force_min) / (self.force_max - self.force_min)

    def denormalise(self, unit: torch.Tensor) -> torch.Tensor:
        return self.force_min + unit * (self.force_max - self.force_min)

    def initial_state(self, batch: int) -> torch.Tensor:
        side = self.cfg.state_size
        return self.force_min.new_zeros(batch, self.cfg.hidden_channels, side, side)

    def _readout(self, h: torch.Tensor) -> torch.Tensor:
        y = self.head(h).mean((2, 3))
        return self.denormalise(torch.sigmoid(self.fc(y)))

    def step(self, x_t: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame [B, C, S, S] and the state -> (force [B, 3] in N, next state)."""
        h = self.gru(self.encoder(x_t), h)
        return self._readout(h), h

    def rollout(self, x_seq: torch.Tensor, h0: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip [B, T, C, S, S] -> (forces [B, T, 3], final state); encoder and head run batched."""
        b, t = x_seq.shape[:2]
        feats = self.encoder(x_seq.flatten(0, 1)).unflatten(0, (b, t))
        h = self.initial_state(b) if h0 is None else h0
        states = []
        for i in range(t):
            h = self.gru(feats[:, i], h)
            states.append(h)
        forces = self._readout(torch.stack(states, 1).flatten(0, 1)).unflatten(0, (b, t))
        return forces, h

    def forward(self, x_seq: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
        return self.rollout(x_seq, h0)[0]
