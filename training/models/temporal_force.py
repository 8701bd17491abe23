"""TemporalForce: a stream of tactile images -> 3-axis contact force in newtons.

A re-implementation of GenForce's force model (Chen et al., "Training Tactile Sensors to
Learn Force Sensing from Each Other", Nature Communications 2026), shaped so that it holds on
shapes and forces it was not trained on:

    frame minus the sensor's no-contact reference (the frame alone, without one)
          -> plain encoder: 3x3 stride-2 conv + ReLU layers, no normalisation -> features at 1/16
          -> ConvGRU (3x3) carrying the state from frame to frame
          -> global average pool of [state, this frame's features] -> linear 3
          -> standardised (Fx, Fy, Fz) -> newtons

A force is predicted at every frame, so the same weights train on clips and run on a live
stream one frame at a time (``step``), which is what the ROS node and the exported ONNX do.

Differences from GenForce, and why:
- the no-contact reference frame is an input (``reference``) and the encoder sees the frame
  minus it: lighting, gel and camera differ from unit to unit and drift, and what the contact
  changed is what carries the force;
- the encoder keeps the size of that change. GenForce's RAFT encoder (7x7 stem, residual
  stages, instance norm) divides each frame's features by their spread, so a harder press
  looks like a lighter one of another shape. With held-out indenter shapes pressed to twice
  the training force on the GelSight-type simulator (per-frame probe, 64 px, same data and
  loop): plain convs Fz R² 0.978; the same with instance norm 0.615; the residual encoder
  without norm 0.933, with batch norm 0.942. Pooling ReLU features that grow with the change
  and reading them out linearly extrapolates; the residual encoder and the norms stay in the
  config (``encoder``, ``encoder_norm``), which older checkpoints load with;
- channels follow the sensor: one grey channel for marker sensors, RGB for photometric
  (GelSight-type) ones, whose colour encodes the surface normal;
- a linear head on standardised forces (``head="linear"``), not a sigmoid over the training
  range, so a harder press than any in training reads as more force (the node then says the
  estimate is extrapolated). It reads this frame's pooled features beside the bounded (tanh)
  GRU state (``readout_features``), so the state adds what the sequence knows (loading or
  unloading) without capping the estimate;
- much narrower by default (GenForce: 64/96/128 encoder, hidden 128, head 256/512, 256 px),
  so the default trains on one CPU thread in minutes;
- the force normalisation is a pair of buffers inside the model, so the exported graph outputs
  newtons. Saved configs load as they were trained: without ``head`` (the first format) as
  sigmoid, grey, no reference, instance norm; without ``encoder`` as the residual encoder
  seeing the frame beside the difference.
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
HEADS = ("linear", "sigmoid")
NORMS = {"none": lambda channels: nn.Identity(), "batch": nn.BatchNorm2d, "instance": nn.InstanceNorm2d}
REFERENCE_INPUTS = ("difference", "frame_and_difference")
ENCODERS = ("plain", "residual")


@dataclass
class TemporalForceConfig(DictConfig):
    image_size: int = 96                               # square model input, pixels
    in_channels: int = 1                               # image channels: 1 grey, 3 RGB (training/preprocess.py)
    reference: bool = True                             # take the sensor's no-contact reference frame
    reference_input: str = "difference"                # encoder sees: "difference" | "frame_and_difference"
    head: str = "linear"                               # "linear" (standardised, extrapolates) | "sigmoid"
    encoder: str = "plain"                             # "plain" (3x3/2 conv + ReLU layers) | "residual" (RAFT)
    encoder_norm: str = "none"                         # "none" | "batch" | "instance" (divides magnitudes away)
    readout_features: bool = True                      # the head also sees this frame's encoder features
    encoder_channels: tuple[int, ...] = (16, 32, 64, 64)  # layer (plain) or stage (residual) widths; each halves
    blocks_per_stage: int = 1                          # residual blocks per stage (RAFT uses 2)
    feature_channels: int = 32                         # encoder output (1x1 conv) = GRU input
    hidden_channels: int = 32                          # ConvGRU state channels
    head_channels: tuple[int, ...] = ()                # stride-2 residual blocks before the pooled linear readout
    marker_threshold: float | None = None              # segment markers first (cross-sensor models)
    dark_markers: bool = False                         # markers darker than the threshold

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")
        if self.encoder_norm not in NORMS:
            raise ValueError(f"encoder_norm must be one of {tuple(NORMS)}, got {self.encoder_norm!r}")
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if self.reference_input not in REFERENCE_INPUTS:
            raise ValueError(f"reference_input must be one of {REFERENCE_INPUTS}, got {self.reference_input!r}")
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 (grey) or 3 (RGB), got {self.in_channels}")

    @classmethod
    def from_dict(cls, d: dict) -> "TemporalForceConfig":
        """Build from a saved config; options it predates take the values models had before them."""
        legacy = {"head": "sigmoid", "reference": False, "encoder_norm": "instance", "readout_features": False,
                  "reference_input": "frame_and_difference", "encoder": "residual"}
        return super().from_dict({**legacy, **d})

    @property
    def encoder_input_channels(self) -> int:
        both = self.reference and self.reference_input == "frame_and_difference"
        return self.in_channels * (2 if both else 1)

    @property
    def state_size(self) -> int:
        """Side of the GRU state: each plain layer, or the stem and each later residual stage, halves it (ceil)."""
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
    """Per-frame features at 1/2^len(encoder_channels) resolution.

    "plain": 3x3 stride-2 conv (+ norm) + ReLU layers. "residual": RAFT's 7x7/2 stem and residual stages.
    """

    def __init__(self, cfg: TemporalForceConfig):
        super().__init__()
        widths, norm = cfg.encoder_channels, NORMS[cfg.encoder_norm]
        if cfg.encoder == "plain":
            layers, cin = [], cfg.encoder_input_channels
            for cout in widths:
                layers += [nn.Conv2d(cin, cout, 3, 2, 1), norm(cout), nn.ReLU()]
                cin = cout
            self.stem, self.stages = nn.Sequential(*layers), nn.Identity()
        else:
            self.stem = nn.Sequential(nn.Conv2d(cfg.encoder_input_channels, widths[0], 7, 2, 3, bias=False),
                                      norm(widths[0]), nn.ReLU())
            blocks, cin = [], widths[0]
            for i, cout in enumerate(widths):
                for b in range(cfg.blocks_per_stage):
                    stride = 2 if i > 0 and b == 0 else 1
                    blocks.append(ResidualBlock(cin, cout, stride, norm))
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
        cin = cfg.hidden_channels + (cfg.feature_channels if cfg.readout_features else 0)
        head = []
        for cout in cfg.head_channels:
            head.append(ResidualBlock(cin, cout, 2, nn.BatchNorm2d))
            cin = cout
        self.head = nn.Sequential(*head)
        self.fc = nn.Linear(cin, 3)
        if cfg.head == "sigmoid":
            self.register_buffer("force_min", torch.tensor(DEFAULT_FORCE_MIN))
            self.register_buffer("force_max", torch.tensor(DEFAULT_FORCE_MAX))
        else:
            self.register_buffer("force_mean", torch.zeros(3))
            self.register_buffer("force_std", torch.tensor(DEFAULT_FORCE_MAX) - torch.tensor(DEFAULT_FORCE_MIN))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def set_force_range(self, lo, hi) -> None:
        """Sigmoid head: the range its output spans (N)."""
        lo, hi = _force_pair(lo, hi, "force range must be 3 values with max > min", lambda a, b: b > a)
        self.force_min.copy_(lo)
        self.force_max.copy_(hi)

    def set_force_scale(self, mean, std) -> None:
        """Linear head: the training forces' per-axis mean and standard deviation (N)."""
        mean, std = _force_pair(mean, std, "force scale must be 3 means and 3 positive deviations",
                                lambda a, b: b > 0)
        self.force_mean.copy_(mean)
        self.force_std.copy_(std)

    @property
    def force_unit(self) -> torch.Tensor:
        """Newtons per unit of the head's output, per axis: the scale the loss is taken on."""
        if self.cfg.head == "sigmoid":
            return self.force_max - self.force_min
        return self.force_std

    def _to_newtons(self, z: torch.Tensor) -> torch.Tensor:
        if self.cfg.head == "sigmoid":
            return self.force_min + torch.sigmoid(z) * (self.force_max - self.force_min)
        return self.force_mean + z * self.force_std

    def initial_state(self, batch: int) -> torch.Tensor:
        side = self.cfg.state_size
        return self.fc.weight.new_zeros(batch, self.cfg.hidden_channels, side, side)

    def encoder_input(self, x: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
        """Frame(s) [N, C, S, S] -> what the encoder takes: with a reference [N, C, S, S], frame minus it
        (and the frame beside it, for ``reference_input="frame_and_difference"``).
        """
        if not self.cfg.reference:
            return x
        if reference is None:
            raise ValueError("this model takes the sensor's no-contact reference frame with every frame")
        if self.cfg.reference_input == "difference":
            return x - reference
        return torch.cat([x, x - reference], 1)

    def _readout(self, h: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        y = torch.cat([h, feats], 1) if self.cfg.readout_features else h
        return self._to_newtons(self.fc(self.head(y).mean((2, 3))))

    def step(self, x_t: torch.Tensor, h: torch.Tensor, reference: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame [B, C, S, S] (and its reference) and the state -> (force [B, 3] in N, next state)."""
        feats = self.encoder(self.encoder_input(x_t, reference))
        h = self.gru(feats, h)
        return self._readout(h, feats), h

    def rollout(self, x_seq: torch.Tensor, h0: torch.Tensor | None = None, reference: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip [B, T, C, S, S] (reference [B, C, S, S]) -> (forces [B, T, 3], final state).

        The encoder and head run batched over the clip; only the GRU steps frame by frame.
        """
        b, t = x_seq.shape[:2]
        ref = None if reference is None else reference[:, None].expand_as(x_seq).flatten(0, 1)
        feats = self.encoder(self.encoder_input(x_seq.flatten(0, 1), ref)).unflatten(0, (b, t))
        h = self.initial_state(b) if h0 is None else h0
        states = []
        for i in range(t):
            h = self.gru(feats[:, i], h)
            states.append(h)
        forces = self._readout(torch.stack(states, 1).flatten(0, 1), feats.flatten(0, 1)).unflatten(0, (b, t))
        return forces, h

    def forward(self, x_seq: torch.Tensor, h0: torch.Tensor | None = None,
                reference: torch.Tensor | None = None) -> torch.Tensor:
        return self.rollout(x_seq, h0, reference)[0]


def _force_pair(a, b, message: str, valid) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)
    if a.shape != (3,) or b.shape != (3,) or not bool(valid(a, b).all()):
        raise ValueError(f"{message}, got {a} .. {b}")
    return a, b
