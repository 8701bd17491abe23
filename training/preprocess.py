"""Camera frame -> model input, as one module used by training AND inside the exported graph.

Nodes hand the ONNX model the uint8 NHWC image exactly as it came out of the ROS message, so
the resize and normalisation live in the graph. Training runs the very same module, so what
the network saw during training is what it sees on the robot.

The train loop runs every frame through this module once and caches the float32 result
(64 KiB a frame at 128 px, a fifth of a raw 480x640 frame), so training inputs are exactly
what the eager module computes; the exported graph computes the same within float rounding
(ONNX Runtime's Resize differs from PyTorch's by ~1e-6 of full scale). Nothing is quantised
between the steps: a rounding step would turn that 1e-6 into whole grey levels at rounding
boundaries and break the export parity check.

Channels: the model sees one gray channel by default. Marker images (GenForce, GelSight-style
dots) carry the force in where the dots are, not in their colour, so rgb8/bgr8 frames are
reduced to luma (ITU-R BT.601 weights, in the order the encoding names). A 3-channel model is
also supported: mono8 is repeated and bgr8 is flipped to rgb.

Marker segmentation (cross-sensor models, training/tasks/transfer/translate.py): the grey image is first cut
into a binary marker mask (markers 255, skin 0) at the sensor's threshold and polarity, the
representation marker-to-marker translation works in, so the model sees the same thing on
translated training images and on the live sensor.

Resize: an integer box average first (e.g. 3x5 for 480x640 -> 128), then bilinear
(half-pixel centres, no antialias) to the exact size. Plain bilinear at a 4-5x reduction
samples only 2 of every 5 pixels, so a dot a few pixels wide flickers as it moves by one
pixel; the box average keeps sub-pixel dot motion visible. Both are plain ONNX ops
(AveragePool, Resize). Up to (factor - 1) rows/columns at the bottom/right edge are dropped by
the box average.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tacforce_ros.inference.contract import ENCODING_CHANNELS

LUMA_RGB = (0.299, 0.587, 0.114)


class ImagePreprocess(nn.Module):
    """uint8 [N, H, W, C] in ``encoding`` -> float [N, out_channels, image_size, image_size]."""

    def __init__(self, image_size: int, encoding: str = "mono8", out_channels: int = 1,
                 mean: float = 0.5, std: float = 0.5, marker_threshold: float | None = None,
                 dark_markers: bool = False):
        super().__init__()
        if marker_threshold is not None and not 0.0 <= marker_threshold < 255.0:
            raise ValueError(f"marker_threshold must be a grey level in [0, 255), got {marker_threshold}")
        self.marker_threshold = None if marker_threshold is None else float(marker_threshold)
        self.dark_markers = bool(dark_markers)
        if encoding not in ENCODING_CHANNELS:
            raise ValueError(f"unsupported encoding {encoding!r} (use {', '.join(ENCODING_CHANNELS)})")
        if out_channels not in (1, 3):
            raise ValueError(f"out_channels must be 1 or 3, not {out_channels}")
        self.image_size = int(image_size)
        self.encoding = encoding
        self.in_channels = ENCODING_CHANNELS[encoding]
        self.out_channels = out_channels
        self.mean, self.std = float(mean), float(std)
        order = LUMA_RGB if encoding != "bgr8" else LUMA_RGB[::-1]
        self.register_buffer("luma", torch.tensor(order).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 4 or image.shape[-1] != self.in_channels:
            raise ValueError(f"expected uint8 [N, H, W, {self.in_channels}] ({self.encoding}), "
                             f"got {list(image.shape)}")
        x = image.permute(0, 3, 1, 2).float()
        x = self._channels(x)
        if self.marker_threshold is not None:  # binary marker mask, markers at 255
            markers = x <= self.marker_threshold if self.dark_markers else x > self.marker_threshold
            x = markers.float() * 255.0
        size = self.image_size
        kh, kw = max(1, x.shape[-2] // size), max(1, x.shape[-1] // size)
        if kh > 1 or kw > 1:
            x = F.avg_pool2d(x, (kh, kw))
        if tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                              antialias=False)
        return (x / 255.0 - self.mean) / self.std

    def _channels(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_channels == self.out_channels:
            return x.flip(1) if self.encoding == "bgr8" else x
        if self.out_channels == 1:
            return (x * self.luma).sum(1, keepdim=True)
        return x.expand(-1, 3, -1, -1)

    def describe(self, height: int, width: int) -> str:
        """Return the human-readable pipeline description written into the model metadata and card."""
        size = self.image_size
        kh, kw = max(1, height // size), max(1, width // size)
        steps = [f"{self.encoding} uint8 NHWC {width}x{height}"]
        if self.in_channels != self.out_channels:
            steps.append("luma (BT.601)" if self.out_channels == 1 else "repeat to 3 channels")
        elif self.encoding == "bgr8":
            steps.append("bgr -> rgb")
        if self.marker_threshold is not None:
            side = "<=" if self.dark_markers else ">"
            steps.append(f"marker mask (grey {side} {self.marker_threshold:g} -> 255, else 0)")
        if kh > 1 or kw > 1:
            steps.append(f"box average {kh}x{kw}")
        if (height // kh, width // kw) != (size, size):
            steps.append(f"resize {size}x{size} bilinear (half-pixel, no antialias)")
        steps.append(f"/255 -> (x-{self.mean:g})/{self.std:g}")
        return " -> ".join(steps)


class MeanPixelNormalise(nn.Module):
    """uint8 [N, H, W, 3] rgb8/bgr8 -> float [N, 3, H, W] RGB, (x/255 - mean) / std (seed 001's
    mean-pixel subtraction), then padding (top, bottom, left, right) if given, so that every 32 px
    cell of the dense grasp map gets a centre: ``pad_mode`` "replicate" repeats the border pixels
    (no edge where the image ends), "mean" pads zeros, the mean colour (the first models').
    """

    def __init__(self, mean_rgb, std: float = 0.25, encoding: str = "rgb8",
                 pad: tuple[int, int, int, int] = (0, 0, 0, 0), pad_mode: str = "mean"):
        super().__init__()
        if encoding not in ("rgb8", "bgr8"):
            raise ValueError(f"colour models take rgb8 or bgr8, not {encoding!r}")
        if pad_mode not in ("replicate", "mean"):
            raise ValueError(f"pad_mode must be 'replicate' or 'mean', not {pad_mode!r}")
        self.encoding, self.std, self.pad = encoding, float(std), tuple(int(p) for p in pad)
        self.pad_mode = pad_mode
        self.register_buffer("mean", torch.tensor([float(m) / 255.0 for m in mean_rgb]).view(1, 3, 1, 1),
                             persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 4 or image.shape[-1] != 3:
            raise ValueError(f"expected uint8 [N, H, W, 3] ({self.encoding}), got {list(image.shape)}")
        x = image.permute(0, 3, 1, 2).float()
        if self.encoding == "bgr8":
            x = x.flip(1)
        x = (x / 255.0 - self.mean) / self.std
        return pad_image(x, self.pad, self.pad_mode)

    def describe(self, height: int, width: int) -> str:
        mean = ", ".join(f"{255 * m:.1f}" for m in self.mean.flatten().tolist())
        steps = [f"{self.encoding} uint8 NHWC {width}x{height}"]
        if self.encoding == "bgr8":
            steps.append("bgr -> rgb")
        steps.append(f"/255 -> (x - mean rgb [{mean}]/255) / {self.std:g}")
        if any(self.pad):
            steps.append(describe_pad(self.pad, self.pad_mode))
        return " -> ".join(steps)


def pad_image(x: torch.Tensor, pad: tuple[int, int, int, int], mode: str) -> torch.Tensor:
    """Pad float [N, C, H, W] by (top, bottom, left, right): border pixels repeated, or zeros ("mean")."""
    top, bottom, left, right = pad
    if not any(pad):
        return x
    return F.pad(x, (left, right, top, bottom), mode="replicate" if mode == "replicate" else "constant")


def describe_pad(pad: tuple[int, int, int, int], mode: str) -> str:
    top, bottom, left, right = pad
    how = "edge-replicate" if mode == "replicate" else "zero"
    return f"{how} pad top {top}, bottom {bottom}, left {left}, right {right}"


class DepthHeight(nn.Module):
    """Aligned depth float [N, H, W, 1] metres -> height above the table float [N, 1, H, W] / ``scale``.

    GG-CNN feeds depth relative to the scene; here the table is the median of the image's valid
    depths (a top-down camera sees mostly table), so the channel is how far each pixel stands
    above it, clipped to [``low``, ``high``] m and 0 where the camera had no reading (0 or NaN).
    It does not change with the camera's height, only with what lies on the table.
    """

    def __init__(self, scale: float = 0.05, low: float = -0.02, high: float = 0.2,
                 pad: tuple[int, int, int, int] = (0, 0, 0, 0), pad_mode: str = "replicate"):
        super().__init__()
        self.scale, self.low, self.high = float(scale), float(low), float(high)
        self.pad, self.pad_mode = tuple(int(p) for p in pad), pad_mode

    def forward(self, depth: torch.Tensor) -> torch.Tensor:
        d = depth.permute(0, 3, 1, 2).float()
        valid = torch.isfinite(d) & (d > 0)
        d = torch.where(valid, d, torch.zeros_like(d))
        # the median of the valid depths: invalid ones sort first (0), so take the middle of the rest
        flat = d.flatten(1).sort(dim=1).values
        count = valid.flatten(1).sum(dim=1)
        k = (flat.shape[1] - count + (count - 1).clamp(min=0) // 2).clamp(max=flat.shape[1] - 1)
        table = flat.gather(1, k.view(-1, 1).long()).view(-1, 1, 1, 1)
        height = torch.where(valid, (table - d).clamp(self.low, self.high), torch.zeros_like(d))
        return pad_image(height / self.scale, self.pad, self.pad_mode)

    def describe(self) -> str:
        steps = ["depth float32 NHWC m (0/NaN: none)", "table = median of valid depths",
                 f"height = clip(table - depth, {self.low:g}, {self.high:g}) m, 0 where none", f"/ {self.scale:g} m"]
        if any(self.pad):
            steps.append(describe_pad(self.pad, self.pad_mode))
        return " -> ".join(steps)
