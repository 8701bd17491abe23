"""GraspNet: AlexNet turned fully convolutional, one 2-way grasp classifier per angle bin (seed 001).

    conv1 11x11/4 -> ReLU -> LRN -> maxpool 3/2
    conv2 5x5 (2 groups) -> ReLU -> LRN -> maxpool 3/2
    conv3 3x3 -> conv4 3x3 (2 groups) -> conv5 3x3 (2 groups) -> maxpool 3/2   (6x6 for 227 px)
    conv6 6x6 (AlexNet's fc6) -> conv7 1x1 (fc7) -> conv8 1x1 to 2 x bins logits

A 227 px patch gives a 1x1 map; a larger image gives one cell per 32 px of input in a single
pass. Logit channel ``2*b + k`` is bin b's class k (0 = fail, 1 = success): softmax over the
pair gives P(success at bin b). Channel widths scale with ``width`` so a CPU-trainable variant
exists; ``width=1`` is the seed's (96/256/384/384/256, 4096, 1024). Parameter names conv1..conv8
are what ``load_alexnet_features`` fills from a local AlexNet file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tacforce_ros.perception.grasp_angles import DEFAULT_BINS

from ..core.config import DictConfig

PATCH = 227     # receptive field of one output cell
STRIDE = 32     # input pixels per output cell
ALEXNET_CHANNELS = (96, 256, 384, 384, 256)
ALEXNET_GROUPS = (1, 2, 1, 2, 2)
# torchvision's AlexNet ("one weird trick" variant) feature convolutions, in order
TORCHVISION_KEYS = ("features.0", "features.3", "features.6", "features.8", "features.10")
PADDINGS = ("replicate", "mean")


@dataclass(frozen=True)
class GraspNetConfig(DictConfig):
    width: float = 1.0            # channel multiplier for conv1-7
    bins: int = DEFAULT_BINS      # angle bins over [0, pi)
    fc6: int = 4096               # conv6 channels at width 1
    fc7: int = 1024               # conv7 channels at width 1
    channels: tuple[int, ...] = ALEXNET_CHANNELS
    groups: tuple[int, ...] = ALEXNET_GROUPS
    lrn: bool = True
    dropout: float = 0.5
    depth: bool = False           # a 4th input channel: height above the table from aligned depth
    padding: str = "replicate"    # beyond the image edge: "replicate" its border pixels, or "mean" colour
    #                               (zero after normalisation; the first models', which invents edges)

    def __post_init__(self) -> None:
        if not self.width > 0 or self.bins < 1 or not 0 <= self.dropout < 1:
            raise ValueError(f"bad GraspNetConfig: width {self.width}, bins {self.bins}, dropout {self.dropout}")
        if self.padding not in PADDINGS:
            raise ValueError(f"GraspNetConfig padding must be one of {PADDINGS}, got {self.padding!r}")
        if len(self.channels) != 5 or len(self.groups) != 5:
            raise ValueError("channels and groups need 5 entries (conv1-5)")

    @classmethod
    def from_dict(cls, d: dict) -> "GraspNetConfig":
        """Read a saved config; one without ``padding`` is a first model's, trained with mean padding."""
        return super().from_dict({"padding": "mean", **d})

    def scaled(self) -> tuple[int, ...]:
        """conv1..conv7 output channels, each divisible by its layer's and the next layer's groups."""
        out = []
        for i, c in enumerate(self.channels):
            g = max(self.groups[i], self.groups[i + 1] if i + 1 < 5 else 1)
            out.append(max(g, round(c * self.width / g) * g))
        return (*out, max(8, round(self.fc6 * self.width)), max(8, round(self.fc7 * self.width)))


CONFIGS = {
    "default": GraspNetConfig(),                                 # the seed's network
    "small": GraspNetConfig(width=0.5),
    "cpu": GraspNetConfig(width=0.25),                           # trains on a laptop CPU
    "tiny": GraspNetConfig(width=0.0625, fc6=1024, fc7=512),     # tests
}


class GraspNet(nn.Module):
    """float [N, 3 (+1 with depth), H, W] (normalised) -> logits
    [N, 2 * bins, (H - 227) // 32 + 1, (W - 227) // 32 + 1].
    """

    def __init__(self, cfg: GraspNetConfig = GraspNetConfig()):
        super().__init__()
        self.cfg = cfg
        c1, c2, c3, c4, c5, c6, c7 = cfg.scaled()
        g = cfg.groups
        self.conv1 = nn.Conv2d(4 if cfg.depth else 3, c1, 11, stride=4, groups=g[0])
        self.conv2 = nn.Conv2d(c1, c2, 5, padding=2, groups=g[1])
        self.conv3 = nn.Conv2d(c2, c3, 3, padding=1, groups=g[2])
        self.conv4 = nn.Conv2d(c3, c4, 3, padding=1, groups=g[3])
        self.conv5 = nn.Conv2d(c4, c5, 3, padding=1, groups=g[4])
        self.conv6 = nn.Conv2d(c5, c6, 6)
        self.conv7 = nn.Conv2d(c6, c7, 1)
        self.conv8 = nn.Conv2d(c7, 2 * cfg.bins, 1)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(3, 2)
        self.norm = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0) if cfg.lrn else nn.Identity()
        self.drop = nn.Dropout(cfg.dropout)
        self.frozen_features = False

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.norm(self.relu(self.conv1(x))))
        x = self.pool(self.norm(self.relu(self.conv2(x))))
        x = self.relu(self.conv3(x))
        x = self.relu(self.conv4(x))
        return self.pool(self.relu(self.conv5(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.relu(self.conv6(self.features(x))))
        x = self.drop(self.relu(self.conv7(x)))
        return self.conv8(x)

    def freeze_features(self) -> None:
        """Keep conv1-5 as loaded (the seed trained only conv6-8 on top of ImageNet AlexNet)."""
        for layer in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5):
            layer.requires_grad_(False)
        self.frozen_features = True


def success_probability(logits: torch.Tensor) -> torch.Tensor:
    """Map logits [N, 2B, h, w] -> P(success) [N, B, h, w]."""
    n, c, h, w = logits.shape
    return torch.softmax(logits.view(n, c // 2, 2, h, w), dim=2)[:, :, 1]


def masked_bin_loss(logits: torch.Tensor, bins: torch.Tensor, success: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the active angle bin's two logits only (the seed's masked loss).

    logits [N, 2B, 1, 1] (one cell per patch), bins [N] int64, success [N] (0/1).
    """
    n = logits.shape[0]
    pairs = logits.view(n, -1, 2)
    active = pairs[torch.arange(n), bins]
    return nn.functional.cross_entropy(active, success.long())


def load_alexnet_features(model: GraspNet, path: str | Path) -> list[str]:
    """Copy conv1-5 from a local AlexNet weights file into ``model`` and freeze them.

    Accepts a state dict saved with torch.save whose keys are ours (``conv1.weight`` ...,
    e.g. converted Caffe bvlc_alexnet: 96/256/384/384/256 with groups) or torchvision's
    (``features.0.weight`` ...: 64/192/384/256/256, no groups; build the model with those
    ``channels`` and ``groups=(1,)*5``). Loaded with weights_only=True; never downloads.
    Returns the parameter names copied; shape or key mismatches are a ValueError naming them.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"{path}: AlexNet weights file not found") from None
    except Exception as exc:  # torch.load raises many types for a bad file
        raise ValueError(f"{path}: not a readable weights file ({type(exc).__name__}: {exc})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    ours = [f"conv{i}" for i in range(1, 6)]
    sources = ours if f"{ours[0]}.weight" in state else list(TORCHVISION_KEYS)
    copied, target = [], model.state_dict()
    with torch.no_grad():
        for src, dst in zip(sources, ours):
            for suffix in ("weight", "bias"):
                key = f"{src}.{suffix}"
                if key not in state:
                    raise ValueError(f"{path}: no {key!r}; expected conv1..conv5 or torchvision "
                                     f"features.* keys")
                if tuple(state[key].shape) != tuple(target[f"{dst}.{suffix}"].shape):
                    raise ValueError(f"{path}: {key} has shape {tuple(state[key].shape)}, the model's "
                                     f"{dst}.{suffix} is {tuple(target[f'{dst}.{suffix}'].shape)} "
                                     "(width must be 1 and channels/groups must match the file)")
                getattr(model, dst).get_parameter(suffix).copy_(state[key])
                copied.append(f"{dst}.{suffix}")
    model.freeze_features()
    return copied
