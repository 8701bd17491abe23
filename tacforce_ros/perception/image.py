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

import re
import struct
import zlib
from collections.abc import Iterator
from typing import Literal, Protocol

import cv2
import numpy as np
import simplejpeg

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
# SOF markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Huffman-coded 8-bit baseline, extended and progressive frames: libjpeg warns when their data
# runs out, so strict decoding catches it. Arithmetic-coded data may legally end at a marker
# (libjpeg reads zeros on), so a cut there would decode silently.
_JPEG_HUFFMAN = frozenset({0xC0, 0xC1, 0xC2})
# Markers without a length (TEM, RST0-7, SOI) and 0x00: none belongs outside a scan's data.
_JPEG_STANDALONE = frozenset({0x00, 0x01, *range(0xD0, 0xD9)})
# Real files have a few dozen segments; this bounds the walk's work.
_JPEG_MAX_SEGMENTS = 4096
# The marker that ends a scan's entropy-coded data: 0xFF00 is a 0xFF data byte, 0xFFD0-0xFFD7
# a restart marker, 0xFFFF a fill byte.
_JPEG_SCAN_END = re.compile(rb'\xff[^\x00\xd0-\xd7\xff]')
# Room for headers and metadata (EXIF, ICC profile) on top of 4 bytes per allowed pixel.
_METADATA_BYTES = 1 << 20


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

    Only PNG and JPEG are accepted (what image_transport produces). The data size, and the
    image size from the header, are bounded before decoding.
    """
    fmt = str(msg.format)
    if 'compresseddepth' in fmt.replace(' ', '').lower():
        msg_ = f'unsupported compressed format {fmt!r}: depth images are not 8-bit'
        raise ImageError(msg_)
    buf = _as_uint8(msg.data)
    if buf.size == 0:
        msg_ = f'empty compressed image data (format {fmt!r})'
        raise ImageError(msg_)
    limit = 4 * max_pixels + _METADATA_BYTES
    if buf.size > limit:
        msg_ = (f'compressed image of {buf.size} bytes exceeds 4*max_pixels + {_METADATA_BYTES} '
                f'= {limit} bytes')
        raise ImageError(msg_)
    head = bytes(buf[:33])
    if head.startswith(_JPEG_MAGIC):
        return _decode_jpeg(buf, max_pixels)
    if not head.startswith(_PNG_MAGIC):
        msg_ = f'unsupported compressed image data (format {fmt!r}): neither PNG nor JPEG'
        raise ImageError(msg_)
    _check_size(*_png_size(head), max_pixels)
    image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if image is None:
        msg_ = f'corrupt or truncated compressed image ({buf.size} bytes, format {fmt!r})'
        raise ImageError(msg_)
    if image.dtype != np.uint8:
        msg_ = f'unsupported compressed image depth {image.dtype} (format {fmt!r}); need 8-bit'
        raise ImageError(msg_)
    return image[:, :, np.newaxis] if image.ndim == 2 else image[:, :, :3]


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


def _png_size(head: bytes) -> tuple[int, int]:
    """(height, width) from IHDR, which PNG requires to be the first chunk."""
    ihdr = head[12:29]
    crc = int.from_bytes(head[29:33], 'big')
    if len(head) < 33 or head[8:16] != b'\0\0\0\x0dIHDR' or zlib.crc32(ihdr) != crc:
        msg = 'corrupt PNG: the data does not start with a readable IHDR chunk'
        raise ImageError(msg)
    width, height = struct.unpack('>II', ihdr[4:12])
    return height, width


def _decode_jpeg(buf: np.ndarray, max_pixels: int) -> np.ndarray:
    """Decode with libjpeg-turbo's warnings as errors: OpenCV lets libjpeg fill data that is
    cut short or corrupt with grey and returns the picture."""
    channels = _jpeg_check(buf, max_pixels)
    colorspace = 'GRAY' if channels == 1 else 'BGR'
    try:
        return simplejpeg.decode_jpeg(buf, colorspace=colorspace, strict=True)
    except ValueError as exc:
        msg = f'corrupt or truncated JPEG: {exc}'
        raise ImageError(msg) from None


def _jpeg_check(buf: np.ndarray, max_pixels: int) -> int:
    """Walk a JPEG's marker segments and return its number of components; the frame size is
    bounded before anything is decoded.

    The whole chain is followed by segment lengths (no pixel work): APPn padding can put the
    frame header anywhere. libjpeg does not warn when a file ends at a scan boundary (a
    progressive JPEG then shows its coarse scans), so every coefficient of every component
    must be in a scan that completes it (successive approximation bit 0).
    """
    data = memoryview(buf)
    done: dict[int, set[int]] | None = None  # component id: coefficients complete
    for marker, start, end in _jpeg_segments(data):
        if marker in _JPEG_SOF:
            if done is not None:
                msg = 'malformed JPEG: two frame headers'
                raise ImageError(msg)
            done = {ident: set() for ident in _jpeg_frame(data[start:end], marker, max_pixels)}
        elif marker == 0xDA:
            if done is None:
                msg = 'malformed JPEG: scan before the frame header'
                raise ImageError(msg)
            _jpeg_scan(bytes(data[start:end]), done)
    if done is None:
        msg = 'malformed JPEG: no frame header'
        raise ImageError(msg)
    for ident, coefficients in done.items():
        if not coefficients.issuperset(range(64)):
            msg = f'truncated JPEG data: no scan completes component {ident}'
            raise ImageError(msg)
    return len(done)


def _jpeg_segments(data: memoryview) -> Iterator[tuple[int, int, int]]:
    """(marker, body start, body end) of each segment up to the end-of-image marker, the
    entropy-coded data after each scan header skipped."""
    pos = 2
    for _ in range(_JPEG_MAX_SEGMENTS):
        if pos + 2 > len(data):
            msg = f'truncated JPEG data: no end-of-image marker in {len(data)} bytes'
            raise ImageError(msg)
        marker = data[pos + 1]
        if data[pos] != 0xFF:
            msg = f'malformed JPEG: no marker at byte {pos}'
            raise ImageError(msg)
        if marker == 0xD9:
            return
        if marker in _JPEG_STANDALONE:
            msg = f'malformed JPEG: marker 0x{marker:02X} at byte {pos}, outside a scan'
            raise ImageError(msg)
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], 'big')
        if length < 2 or pos + 2 + length > len(data):
            msg = (f'truncated or malformed JPEG: segment 0x{marker:02X} at byte {pos} has length '
                   f'{length}, the data {len(data)} bytes')
            raise ImageError(msg)
        yield marker, pos + 4, pos + 2 + length
        pos += 2 + length
        if marker == 0xDA:
            found = _JPEG_SCAN_END.search(data, pos)
            pos = len(data) if found is None else found.start()
    msg = f'unsupported JPEG: over {_JPEG_MAX_SEGMENTS} segments or fill bytes'
    raise ImageError(msg)


def _jpeg_frame(body: memoryview, marker: int, max_pixels: int) -> list[int]:
    """Component ids of a frame header; the size is bounded first, so that the refusal of an
    oversized frame names its size."""
    if len(body) < 6:
        msg = 'malformed JPEG: short frame header'
        raise ImageError(msg)
    precision, height, width, count = struct.unpack_from('>BHHB', body)
    _check_size(height, width, max_pixels)
    if marker not in _JPEG_HUFFMAN or precision != 8:
        msg = (f'unsupported JPEG (frame type 0x{marker:02X}, {precision}-bit): only 8-bit '
               'Huffman-coded baseline, extended and progressive JPEGs are accepted')
        raise ImageError(msg)
    if count not in {1, 3, 4}:
        msg = f'unsupported JPEG with {count} components; need 1 (gray), 3 (colour) or 4 (CMYK)'
        raise ImageError(msg)
    idents = list(body[6::3])
    if len(body) != 6 + 3 * count or len(set(idents)) != count:
        msg = 'malformed JPEG: bad frame components'
        raise ImageError(msg)
    return idents


def _jpeg_scan(body: bytes, done: dict[int, set[int]]) -> None:
    """Add the coefficients a scan header completes to `done`."""
    count = body[0] if body else 0
    if len(body) != 4 + 2 * count:
        msg = 'malformed JPEG: bad scan header'
        raise ImageError(msg)
    first, last, approximation = body[-3:]
    for ident in body[1 : 1 + 2 * count : 2]:
        if ident not in done:
            msg = f'malformed JPEG: scan component {ident} is not in the frame'
            raise ImageError(msg)
        if approximation & 15 == 0:
            done[ident].update(range(first, last + 1))
