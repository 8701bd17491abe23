"""What the image codecs (``image``, ``compressed``) share: the error type, colour orders,
size bounds and uint8 array views.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

ColorOrder = Literal["gray", "rgb", "bgr"]

DEFAULT_MAX_PIXELS = 4096 * 4096

ORDER_ENCODING: dict[ColorOrder, str] = {"gray": "mono8", "rgb": "rgb8", "bgr": "bgr8"}
MODEL_ORDER: dict[str, ColorOrder] = {encoding: order for order, encoding in ORDER_ENCODING.items()}


class ImageError(ValueError):
    """An image message that cannot be decoded, or an array that cannot be encoded."""


def to_model_channels(array: np.ndarray, order: ColorOrder, wanted: ColorOrder) -> np.ndarray:
    """Convert a decoded (H, W, C) image from ``order`` to ``wanted`` (gray, rgb or bgr).

    Lets a model trained on mono8 take rgb8 frames and vice versa. Returns
    the input unchanged when nothing needs converting.
    """
    image = as_hwc(array)
    if (image.shape[2] == 1) != (order == "gray"):
        msg = f"order {order!r} does not match an array with {image.shape[2]} channels"
        raise ImageError(msg)
    if order == wanted:
        return image
    if wanted == "gray":
        code = cv2.COLOR_RGB2GRAY if order == "rgb" else cv2.COLOR_BGR2GRAY
        return cv2.cvtColor(image, code)[:, :, np.newaxis]
    if order == "gray":
        return np.ascontiguousarray(np.repeat(image, 3, axis=2))
    return np.ascontiguousarray(image[:, :, ::-1])


def check_size(height: int, width: int, max_pixels: int) -> None:
    if height <= 0 or width <= 0:
        msg = f"image has zero or negative size {width}x{height}"
        raise ImageError(msg)
    if height * width > max_pixels:
        msg = f"image size {width}x{height} exceeds max_pixels={max_pixels}"
        raise ImageError(msg)


def as_uint8(data: object) -> np.ndarray:
    """Flat uint8 view of a message's data field, without copying."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            msg = f"image data must be uint8, got {data.dtype}"
            raise ImageError(msg)
        return data.reshape(-1)
    try:
        return np.frombuffer(data, dtype=np.uint8)  # type: ignore[call-overload]
    except (TypeError, ValueError) as exc:
        msg = f"image data must be a byte buffer, got {type(data).__name__}"
        raise ImageError(msg) from exc


def as_hwc(array: np.ndarray) -> np.ndarray:
    image = np.asarray(array)
    if image.dtype != np.uint8:
        msg = f"image array must be uint8, got {image.dtype}"
        raise ImageError(msg)
    if image.ndim == 2:
        image = image[:, :, np.newaxis]
    if image.ndim != 3 or image.shape[2] not in {1, 3}:
        msg = f"image array must be HxW, HxWx1 or HxWx3, got shape {image.shape}"
        raise ImageError(msg)
    if image.shape[0] == 0 or image.shape[1] == 0:
        msg = f"image array has zero size {image.shape}"
        raise ImageError(msg)
    return image
