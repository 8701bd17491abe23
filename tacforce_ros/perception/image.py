"""Decode and encode ROS image messages without cv_bridge.

This is the only module that turns ``sensor_msgs/Image`` and
``sensor_msgs/CompressedImage`` into arrays. It is duck-typed: it reads the
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

import struct
from typing import Literal, Protocol

import cv2
import numpy as np

ColorOrder = Literal['gray', 'rgb', 'bgr']

DEFAULT_MAX_PIXELS = 4096 * 4096

# encoding -> (channels stored in the message, order after decoding)
_ENCODINGS: dict[str, tuple[int, ColorOrder]] = {
    'mono8': (1, 'gray'),
    '8UC1': (1, 'gray'),
    'rgb8': (3, 'rgb'),
    'bgr8': (3, 'bgr'),
    '8UC3': (3, 'bgr'),
    'rgba8': (4, 'rgb'),
    'bgra8': (4, 'bgr'),
}

_ORDER_ENCODING: dict[ColorOrder, str] = {'gray': 'mono8', 'rgb': 'rgb8', 'bgr': 'bgr8'}

_PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
_JPEG_MAGIC = b'\xff\xd8'
_JPEG_EOI = b'\xff\xd9'
# SOF markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


class ImageError(ValueError):
    """An image message that cannot be decoded, or an array that cannot be encoded."""


class ImageMsg(Protocol):
    """The fields of sensor_msgs/msg/Image that decoding reads."""

    height: int
    width: int
    encoding: str
    step: int
    data: object


class CompressedImageMsg(Protocol):
    """The fields of sensor_msgs/msg/CompressedImage that decoding reads."""

    format: str
    data: object


def supported_encodings() -> tuple[str, ...]:
    """Encodings `decode_image` accepts."""
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
    '16UC1': (np.dtype('<u2'), 0.001),
    'mono16': (np.dtype('<u2'), 0.001),
    '32FC1': (np.dtype('<f4'), 1.0),
}


def decode_depth(msg: ImageMsg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a depth sensor_msgs/Image (16UC1/mono16 in mm, 32FC1 in m) into float32 (H, W)
    metres, following REP-118; 0 and NaN mean "no reading" and are kept as they are."""
    try:
        dtype, scale = _DEPTH_ENCODINGS[msg.encoding]
    except KeyError:
        msg_ = (f'unsupported depth encoding {msg.encoding!r}; supported: '
                f'{", ".join(_DEPTH_ENCODINGS)}')
        raise ImageError(msg_) from None
    if getattr(msg, 'is_bigendian', 0):
        dtype = dtype.newbyteorder('>')
    rows = _pixel_rows(msg, dtype.itemsize, max_pixels)
    depth = np.ascontiguousarray(rows).view(dtype).reshape(int(msg.height), int(msg.width))
    return depth.astype(np.float32) * np.float32(scale)


def _pixel_rows(msg: ImageMsg, bytes_per_pixel: int, max_pixels: int) -> np.ndarray:
    """The (height, width * bytes_per_pixel) uint8 rows of a raw image, padding cut off."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    _check_size(height, width, max_pixels)
    row_bytes = width * bytes_per_pixel
    if step < row_bytes:
        msg_ = (f'step {step} is smaller than width*bytes per pixel = {width}*{bytes_per_pixel} '
                f'= {row_bytes}')
        raise ImageError(msg_)
    buf = _as_uint8(msg.data)
    if buf.size < step * height:
        msg_ = (
            f'truncated data: {buf.size} bytes, need step*height = {step}*{height} '
            f'= {step * height}'
        )
        raise ImageError(msg_)
    return buf[: step * height].reshape(height, step)[:, :row_bytes]


def decode_compressed(
    msg: CompressedImageMsg,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage into uint8 (H, W, C): gray C=1, colour BGR.

    PNG and JPEG sizes are read from their headers and bounded before decoding;
    other formats OpenCV reads are bounded after decoding.
    """
    fmt = str(msg.format)
    if 'compresseddepth' in fmt.replace(' ', '').lower():
        msg_ = f'unsupported compressed format {fmt!r}: depth images are not 8-bit'
        raise ImageError(msg_)
    buf = _as_uint8(msg.data)
    if buf.size == 0:
        msg_ = f'empty compressed image data (format {fmt!r})'
        raise ImageError(msg_)
    head = bytes(buf[:65536])
    if head.startswith(_JPEG_MAGIC) and not bytes(buf[-16:]).rstrip(b'\0').endswith(_JPEG_EOI):
        msg_ = f'truncated JPEG data ({buf.size} bytes, no end-of-image marker)'
        raise ImageError(msg_)
    if (size := _header_size(head)) is not None:
        _check_size(*size, max_pixels)
    image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if image is None:
        msg_ = f'corrupt or truncated compressed image ({buf.size} bytes, format {fmt!r})'
        raise ImageError(msg_)
    if image.dtype != np.uint8:
        msg_ = f'unsupported compressed image depth {image.dtype} (format {fmt!r}); need 8-bit'
        raise ImageError(msg_)
    _check_size(image.shape[0], image.shape[1], max_pixels)
    if image.ndim == 2:
        return image[:, :, np.newaxis]
    if image.shape[2] == 4:
        return image[:, :, :3]
    return image


def encode_image_fields(array: np.ndarray, encoding: str) -> dict[str, object]:
    """Fields for a sensor_msgs/Image (all but header) holding ``array``.

    ``data`` is ``bytes``: assigning bytes to an rclpy message is about 500x
    faster than assigning a numpy array or list (per-element checks).
    Use as ``Image(header=..., **encode_image_fields(a, 'rgb8'))``.
    """
    channels, _ = _lookup_encoding(encoding)
    image = _as_hwc(array)
    if image.shape[2] != channels:
        msg = f'array has {image.shape[2]} channels, encoding {encoding!r} needs {channels}'
        raise ImageError(msg)
    height, width = image.shape[:2]
    return {
        'height': height,
        'width': width,
        'encoding': encoding,
        'is_bigendian': 0,
        'step': width * channels,
        'data': np.ascontiguousarray(image).tobytes(),
    }


def encode_compressed(
    array: np.ndarray,
    fmt: Literal['png', 'jpeg'] = 'png',
    order: ColorOrder = 'bgr',
) -> tuple[str, bytes]:
    """Compress ``array`` (gray, or colour in ``order``) like image_transport does.

    Returns ``(format_string, data)`` for a sensor_msgs/CompressedImage; colour
    is stored as BGR, e.g. ``'rgb8; jpeg compressed bgr8'``.
    """
    if fmt not in {'png', 'jpeg'}:
        msg = f'unsupported compression {fmt!r}; use png or jpeg'
        raise ImageError(msg)
    image = _as_hwc(array)
    if image.shape[2] == 1:
        order = 'gray'
    elif order == 'gray':
        msg = f'order gray needs a 1-channel array, got {image.shape[2]} channels'
        raise ImageError(msg)
    stored: ColorOrder = 'gray' if order == 'gray' else 'bgr'
    image = to_model_channels(image, order, stored)
    ok, data = cv2.imencode('.png' if fmt == 'png' else '.jpg', image)
    if not ok:
        msg = f'OpenCV could not encode a {image.shape} array as {fmt}'
        raise ImageError(msg)
    source, target = _ORDER_ENCODING[order], _ORDER_ENCODING[stored]
    return f'{source}; {fmt} compressed {target}', data.tobytes()


def to_model_channels(array: np.ndarray, order: ColorOrder, wanted: ColorOrder) -> np.ndarray:
    """Convert a decoded (H, W, C) image from ``order`` to ``wanted`` (gray, rgb or bgr).

    Lets a model trained on mono8 take rgb8 frames and vice versa. Returns
    the input unchanged when nothing needs converting.
    """
    image = _as_hwc(array)
    if (image.shape[2] == 1) != (order == 'gray'):
        msg = f'order {order!r} does not match an array with {image.shape[2]} channels'
        raise ImageError(msg)
    if order == wanted:
        return image
    if wanted == 'gray':
        code = cv2.COLOR_RGB2GRAY if order == 'rgb' else cv2.COLOR_BGR2GRAY
        return cv2.cvtColor(image, code)[:, :, np.newaxis]
    if order == 'gray':
        return np.ascontiguousarray(np.repeat(image, 3, axis=2))
    return np.ascontiguousarray(image[:, :, ::-1])


def _lookup_encoding(encoding: str) -> tuple[int, ColorOrder]:
    try:
        return _ENCODINGS[encoding]
    except KeyError:
        msg = (
            f'unsupported image encoding {encoding!r}; supported: '
            f'{", ".join(_ENCODINGS)}'
        )
        raise ImageError(msg) from None


def _check_size(height: int, width: int, max_pixels: int) -> None:
    if height <= 0 or width <= 0:
        msg = f'image has zero or negative size {width}x{height}'
        raise ImageError(msg)
    if height * width > max_pixels:
        msg = f'image size {width}x{height} exceeds max_pixels={max_pixels}'
        raise ImageError(msg)


def _as_uint8(data: object) -> np.ndarray:
    """Flat uint8 view of a message's data field, without copying."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            msg = f'image data must be uint8, got {data.dtype}'
            raise ImageError(msg)
        return data.reshape(-1)
    try:
        return np.frombuffer(data, dtype=np.uint8)  # type: ignore[call-overload]
    except (TypeError, ValueError) as exc:
        msg = f'image data must be a byte buffer, got {type(data).__name__}'
        raise ImageError(msg) from exc


def _as_hwc(array: np.ndarray) -> np.ndarray:
    image = np.asarray(array)
    if image.dtype != np.uint8:
        msg = f'image array must be uint8, got {image.dtype}'
        raise ImageError(msg)
    if image.ndim == 2:
        image = image[:, :, np.newaxis]
    if image.ndim != 3 or image.shape[2] not in {1, 3}:
        msg = f'image array must be HxW, HxWx1 or HxWx3, got shape {image.shape}'
        raise ImageError(msg)
    if image.shape[0] == 0 or image.shape[1] == 0:
        msg = f'image array has zero size {image.shape}'
        raise ImageError(msg)
    return image


def _header_size(head: bytes) -> tuple[int, int] | None:
    """(height, width) from a PNG or JPEG header; None for other or unreadable data."""
    if head.startswith(_PNG_MAGIC) and head[12:16] == b'IHDR' and len(head) >= 24:
        width, height = struct.unpack('>II', head[16:24])
        return height, width
    if head.startswith(_JPEG_MAGIC):
        return _jpeg_size(head)
    return None


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 9 <= len(head):
        if head[pos] != 0xFF:
            return None
        marker = head[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_SOF:
            height, width = struct.unpack('>HH', head[pos + 5 : pos + 9])
            return height, width
        (length,) = struct.unpack('>H', head[pos + 2 : pos + 4])
        pos += 2 + length
    return None
