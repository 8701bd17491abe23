"""Decode and encode ROS image messages without cv_bridge.

This module (with ``compressed`` for the compressed codec, re-exported here) is the only one
that turns ``sensor_msgs/Image`` and ``sensor_msgs/CompressedImage`` into arrays. It is duck-typed: it reads the
fields ``height``, ``width``, ``encoding``, ``step``, ``data`` (and ``format``
for compressed images), so rclpy messages (``data`` is ``array.array('B')``)
and rosbags-deserialized messages (``data`` is a numpy array) both work.

Decoded arrays are always ``uint8`` with shape ``(H, W, C)``, ``C`` in {1, 3}:

* ``decode_image``: the channel order of ``msg.encoding``; ``rgba8``/``bgra8``
  lose their alpha channel and come back as rgb/bgr. ``image_order(encoding)``
  names the result's order.
* ``decode_compressed``: ``C == 1`` for grayscale, colour in BGR order (what
  ``cv2.imdecode`` returns, and what image_transport encodes colour as).

Every malformed input raises ``ImageError`` (a ``ValueError``) whose message
names the problem; sizes are bounded before anything image-sized is allocated.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from .compressed import CompressedImageMsg, decode_compressed, encode_compressed
from .pixels import DEFAULT_MAX_PIXELS, ColorOrder, ImageError, as_hwc, as_uint8, check_size, to_model_channels

# Re-exported: the compressed codec and the shared names are imported from here across the package.
__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ColorOrder",
    "CompressedImageMsg",
    "ImageError",
    "ImageMsg",
    "decode_compressed",
    "decode_depth",
    "decode_image",
    "encode_compressed",
    "encode_image_fields",
    "image_order",
    "supported_encodings",
    "to_model_channels",
]

# encoding -> (channels stored in the message, order after decoding)
_ENCODINGS: dict[str, tuple[int, ColorOrder]] = {
    "mono8": (1, "gray"),
    "8UC1": (1, "gray"),
    "rgb8": (3, "rgb"),
    "bgr8": (3, "bgr"),
    "8UC3": (3, "bgr"),
    "rgba8": (4, "rgb"),
    "bgra8": (4, "bgr"),
}


class ImageMsg(Protocol):
    """The fields of sensor_msgs/msg/Image that decoding reads."""

    height: int
    width: int
    encoding: str
    step: int
    data: object


def supported_encodings() -> tuple[str, ...]:
    """Return the encodings `decode_image` accepts."""
    return tuple(_ENCODINGS)


def image_order(encoding: str) -> ColorOrder:
    """Channel order of `decode_image` output for a message with this encoding."""
    return _lookup_encoding(encoding)[1]


def decode_image(msg: ImageMsg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a sensor_msgs/Image into a uint8 (H, W, C) array, C in {1, 3}.

    The result may be a view of ``msg.data`` (no copy): copy it before
    modifying it or before the message buffer is reused.
    """
    channels, _ = _lookup_encoding(msg.encoding)
    rows = _pixel_rows(msg, channels, max_pixels)
    image = rows.reshape(int(msg.height), int(msg.width), channels)
    return image[:, :, :3] if channels == 4 else image


# depth encoding -> (little-endian sample type, metres per unit)
_DEPTH_ENCODINGS: dict[str, tuple[np.dtype, float]] = {
    "16UC1": (np.dtype("<u2"), 0.001),
    "mono16": (np.dtype("<u2"), 0.001),
    "32FC1": (np.dtype("<f4"), 1.0),
}


def decode_depth(msg: ImageMsg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a depth sensor_msgs/Image (16UC1/mono16 in mm, 32FC1 in m) into float32 (H, W)
    metres, following REP-118; 0 and NaN mean "no reading" and are kept as they are.
    """
    try:
        dtype, scale = _DEPTH_ENCODINGS[msg.encoding]
    except KeyError:
        msg_ = (f"unsupported depth encoding {msg.encoding!r}; supported: "
                f"{', '.join(_DEPTH_ENCODINGS)}")
        raise ImageError(msg_) from None
    if getattr(msg, "is_bigendian", 0):
        dtype = dtype.newbyteorder(">")
    rows = _pixel_rows(msg, dtype.itemsize, max_pixels)
    depth = np.ascontiguousarray(rows).view(dtype).reshape(int(msg.height), int(msg.width))
    return depth.astype(np.float32) * np.float32(scale)


def _pixel_rows(msg: ImageMsg, bytes_per_pixel: int, max_pixels: int) -> np.ndarray:
    """Return the (height, width * bytes_per_pixel) uint8 rows of a raw image, padding cut off."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    check_size(height, width, max_pixels)
    row_bytes = width * bytes_per_pixel
    if step < row_bytes:
        msg_ = (f"step {step} is smaller than width*bytes per pixel = {width}*{bytes_per_pixel} "
                f"= {row_bytes}")
        raise ImageError(msg_)
    buf = as_uint8(msg.data)
    if buf.size < step * height:
        msg_ = (
            f"truncated data: {buf.size} bytes, need step*height = {step}*{height} "
            f"= {step * height}"
        )
        raise ImageError(msg_)
    return buf[: step * height].reshape(height, step)[:, :row_bytes]


def encode_image_fields(array: np.ndarray, encoding: str) -> dict[str, object]:
    """Fields for a sensor_msgs/Image (all but header) holding ``array``.

    ``data`` is ``bytes``: assigning bytes to an rclpy message is about 500x
    faster than assigning a numpy array or list (per-element checks).
    Use as ``Image(header=..., **encode_image_fields(a, 'rgb8'))``.
    """
    channels, _ = _lookup_encoding(encoding)
    image = as_hwc(array)
    if image.shape[2] != channels:
        msg = f"array has {image.shape[2]} channels, encoding {encoding!r} needs {channels}"
        raise ImageError(msg)
    height, width = image.shape[:2]
    return {
        "height": height,
        "width": width,
        "encoding": encoding,
        "is_bigendian": 0,
        "step": width * channels,
        "data": np.ascontiguousarray(image).tobytes(),
    }


def _lookup_encoding(encoding: str) -> tuple[int, ColorOrder]:
    try:
        return _ENCODINGS[encoding]
    except KeyError:
        msg = (
            f"unsupported image encoding {encoding!r}; supported: "
            f"{', '.join(_ENCODINGS)}"
        )
        raise ImageError(msg) from None
