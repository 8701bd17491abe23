"""Grasp-success classifiers: one registry over the three architectures, local weights files,
frozen early layers, and the in-graph preprocessing they each expect.

    build(GraspModelConfig(arch="small_cnn")) -> GraspSuccessNet (uint8 NHWC in, logit out)

Architectures (``ARCHS``):
    small_cnn             CIFAR-style CNN, ~0.3 M parameters, 96 px; trains on a CPU in minutes
    tiny_cnn              the same at (8, 16, 24) channels, 48 px: tests and smoke runs
    resnet34              seed 004; conv1, bn1, layer1 frozen when initialised from weights
    inception_v3_mixed7   seed 002; Inception-v3 up to Keras mixed7 (= torchvision Mixed_6e)
                          + Dense 1024 ReLU, Dropout 0.2, Dense 1

Pretrained weights come only from a local file (``load_weights``): a torchvision state_dict
(``resnet34-*.pth``, ``inception_v3_google-*.pth``), one of our checkpoints, or a state_dict we
saved; nothing is downloaded. Without a file the model trains from scratch and nothing is frozen.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..core.config import DictConfig
from ..preprocess import ImagePreprocess
from . import inception_v3_mixed7, resnet34, small_cnn

ARCHS = ("small_cnn", "tiny_cnn", "resnet34", "inception_v3_mixed7")
DEFAULT_IMAGE_SIZE = {"small_cnn": 96, "tiny_cnn": 48, "resnet34": 224, "inception_v3_mixed7": 150}
_MODULES = {"small_cnn": small_cnn, "tiny_cnn": small_cnn, "resnet34": resnet34,
            "inception_v3_mixed7": inception_v3_mixed7}


class WeightsError(ValueError):
    """A weights file that cannot initialise this architecture (unreadable, or wrong keys/shapes)."""


@dataclass(frozen=True)
class GraspModelConfig(DictConfig):
    arch: str = "small_cnn"
    image_size: int = 0           # model input side; 0 = DEFAULT_IMAGE_SIZE[arch]
    dropout: float = 0.2
    encoding: str = "rgb8"        # what the exported graph takes

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"unknown architecture {self.arch!r} (use {', '.join(ARCHS)})")
        if self.image_size == 0:
            object.__setattr__(self, "image_size", DEFAULT_IMAGE_SIZE[self.arch])
        if self.arch == "inception_v3_mixed7" and self.image_size < inception_v3_mixed7.MIN_SIZE:
            raise ValueError(f"inception_v3_mixed7 needs images of at least {inception_v3_mixed7.MIN_SIZE} px")
        if self.image_size < 16:
            raise ValueError(f"image_size {self.image_size} is too small")


class GraspPreprocess(nn.Module):
    """uint8 [N, H, W, C] -> float [N, 3, S, S]: ImagePreprocess (channels, box average,
    bilinear resize, /255), then per-channel (x - mean) / std as the backbone's weights expect.
    """

    def __init__(self, image_size: int, encoding: str, mean, std):
        super().__init__()
        self.image = ImagePreprocess(image_size, encoding, out_channels=3, mean=0.0, std=1.0)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return (self.image(image) - self.mean) / self.std

    def describe(self, height: int, width: int) -> str:
        base = self.image.describe(height, width).rsplit(" -> ", 1)[0]
        fmt = lambda v: "(" + ", ".join(f"{x:g}" for x in v.flatten().tolist()) + ")"   # noqa: E731
        return f"{base} -> (x - {fmt(self.mean)}) / {fmt(self.std)} per RGB channel"


class GraspSuccessNet(nn.Module):
    """preprocess + backbone: uint8 NHWC frames -> logit [N, 1] of "the object is held"."""

    def __init__(self, config: GraspModelConfig):
        super().__init__()
        self.config = config
        module = _MODULES[config.arch]
        self.preprocess = GraspPreprocess(config.image_size, config.encoding, module.MEAN, module.STD)
        if config.arch == "small_cnn":
            self.net = small_cnn.SmallCNN(dropout=config.dropout)
        elif config.arch == "tiny_cnn":
            self.net = small_cnn.SmallCNN(widths=(8, 16, 24), dropout=config.dropout)
        elif config.arch == "resnet34":
            self.net = resnet34.ResNet34(dropout=0.0)
        else:
            self.net = inception_v3_mixed7.InceptionV3Mixed7(dropout=config.dropout)
        self.frozen: tuple[str, ...] = ()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(self.preprocess(image))

    def freeze(self, prefixes) -> None:
        """Stop training the named top-level modules of the backbone; their batch norms keep
        their (pretrained) running statistics.
        """
        names = dict(self.net.named_children())
        unknown = [p for p in prefixes if p not in names]
        if unknown:
            raise ValueError(f"{self.config.arch} has no module(s) {unknown}")
        for p in prefixes:
            for param in names[p].parameters():
                param.requires_grad_(False)
        self.frozen = tuple(prefixes)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        names = dict(self.net.named_children())
        for p in self.frozen:
            names[p].eval()
        return self


def build(config: GraspModelConfig, weights: str | Path | None = None) -> GraspSuccessNet:
    """Build a model of ``config``; from a local weights file (freezing the seed's early layers) when
    ``weights`` is given, from scratch otherwise.
    """
    model = GraspSuccessNet(config)
    if weights is not None:
        load_weights(model.net, weights, _MODULES[config.arch].HEAD_PREFIXES)
        model.freeze(_MODULES[config.arch].FROZEN_WHEN_PRETRAINED)
    return model


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state_dict from a local file: a bare state_dict (torchvision's files), or a dict holding
    one under 'state_dict' / 'model' (our checkpoints hold GraspSuccessNet's, whose backbone keys
    start with 'net.'). 'module.' prefixes (DataParallel) are removed.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:   # UnpicklingError, RuntimeError, EOFError, ...
        raise WeightsError(f"{path}: not a readable weights file ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: holds no state_dict (a dict of parameter names to tensors)")
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    if state and all(k.startswith("net.") for k in state):
        state = {k[len("net."):]: v for k, v in state.items()}
    return state


def load_weights(net: nn.Module, path: str | Path, head_prefixes=()) -> list[str]:
    """Load a local weights file into the backbone ``net``, strictly: every backbone key must
    be in the file with the same shape, and the file may hold nothing else except head keys
    (``head_prefixes``: torchvision's 1000-class fc, Inception's Mixed_7*/AuxLogits), which are
    loaded when their shapes fit and skipped otherwise. Returns the skipped keys.
    """
    state = read_state_dict(path)
    own = net.state_dict()
    is_head = lambda k: k.startswith(tuple(head_prefixes))   # noqa: E731
    missing = [k for k in own if k not in state and not is_head(k)]
    unexpected = [k for k in state if k not in own and not is_head(k)]
    wrong = [f"{k} {list(state[k].shape)} (model {list(own[k].shape)})" for k in own
             if k in state and state[k].shape != own[k].shape and not is_head(k)]
    if missing or unexpected or wrong:
        parts = []
        for name, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                parts.append(f"{len(keys)} {name} (e.g. {', '.join(keys[:3])})")
        raise WeightsError(f"{path}: does not fit {type(net).__name__}: " + "; ".join(parts)
                           + ". Give a state_dict with torchvision's parameter names for this architecture.")
    skipped = [k for k in state if k not in own or state[k].shape != own[k].shape]
    load = {k: v for k, v in state.items() if k not in skipped}
    result = net.load_state_dict(load, strict=False)
    assert not result.unexpected_keys
    return skipped
