"""Decode and encode sensor_msgs/CompressedImage data (PNG and JPEG, as image_transport
produces) without cv_bridge.

``decode_compressed`` returns uint8 (H, W, C): ``C == 1`` for grayscale, colour in BGR order
(what ``cv2.imdecode`` returns, and what image_transport encodes colour as). JPEG headers are
walked, and the frame size bounded, before any pixel is decoded. Malformed input raises
``ImageError``.
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

from .pixels import (DEFAULT_MAX_PIXELS, ORDER_ENCODING, ColorOrder, ImageError, as_hwc, as_uint8, check_size,
                     to_model_channels)

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8"
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
_JPEG_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
# Room for headers and metadata (EXIF, ICC profile) on top of 4 bytes per allowed pixel.
_METADATA_BYTES = 1 << 20


class CompressedImageMsg(Protocol):
    """The fields of sensor_msgs/msg/CompressedImage that decoding reads."""

    format: str
    data: object


def decode_compressed(
    msg: CompressedImageMsg,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage into uint8 (H, W, C): gray C=1, colour BGR.

    Only PNG and JPEG are accepted (what image_transport produces). The data size, and the
    image size from the header, are bounded before decoding.
    """
    fmt = str(msg.format)
    if "compresseddepth" in fmt.replace(" ", "").lower():
        msg_ = f"unsupported compressed format {fmt!r}: depth images are not 8-bit"
        raise ImageError(msg_)
    buf = as_uint8(msg.data)
    if buf.size == 0:
        msg_ = f"empty compressed image data (format {fmt!r})"
        raise ImageError(msg_)
    limit = 4 * max_pixels + _METADATA_BYTES
    if buf.size > limit:
        msg_ = (f"compressed image of {buf.size} bytes exceeds 4*max_pixels + {_METADATA_BYTES} "
                f"= {limit} bytes")
        raise ImageError(msg_)
    head = bytes(buf[:33])
    if head.startswith(_JPEG_MAGIC):
        return _decode_jpeg(buf, max_pixels)
    if not head.startswith(_PNG_MAGIC):
        msg_ = f"unsupported compressed image data (format {fmt!r}): neither PNG nor JPEG"
        raise ImageError(msg_)
    check_size(*_png_size(head), max_pixels)
    image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if image is None:
        msg_ = f"corrupt or truncated compressed image ({buf.size} bytes, format {fmt!r})"
        raise ImageError(msg_)
    if image.dtype != np.uint8:
        msg_ = f"unsupported compressed image depth {image.dtype} (format {fmt!r}); need 8-bit"
        raise ImageError(msg_)
    return image[:, :, np.newaxis] if image.ndim == 2 else image[:, :, :3]


def encode_compressed(
    array: np.ndarray,
    fmt: Literal["png", "jpeg"] = "png",
    order: ColorOrder = "bgr",
) -> tuple[str, bytes]:
    """Compress ``array`` (gray, or colour in ``order``) like image_transport does.

    Returns ``(format_string, data)`` for a sensor_msgs/CompressedImage; colour
    is stored as BGR, e.g. ``'rgb8; jpeg compressed bgr8'``.
    """
    if fmt not in {"png", "jpeg"}:
        msg = f"unsupported compression {fmt!r}; use png or jpeg"
        raise ImageError(msg)
    image = as_hwc(array)
    if image.shape[2] == 1:
        order = "gray"
    elif order == "gray":
        msg = f"order gray needs a 1-channel array, got {image.shape[2]} channels"
        raise ImageError(msg)
    stored: ColorOrder = "gray" if order == "gray" else "bgr"
    image = to_model_channels(image, order, stored)
    ok, data = cv2.imencode(".png" if fmt == "png" else ".jpg", image)
    if not ok:
        msg = f"OpenCV could not encode a {image.shape} array as {fmt}"
        raise ImageError(msg)
    source, target = ORDER_ENCODING[order], ORDER_ENCODING[stored]
    return f"{source}; {fmt} compressed {target}", data.tobytes()


def _png_size(head: bytes) -> tuple[int, int]:
    """(height, width) from IHDR, which PNG requires to be the first chunk."""
    ihdr = head[12:29]
    crc = int.from_bytes(head[29:33], "big")
    if len(head) < 33 or head[8:16] != b"\0\0\0\x0dIHDR" or zlib.crc32(ihdr) != crc:
        msg = "corrupt PNG: the data does not start with a readable IHDR chunk"
        raise ImageError(msg)
    width, height = struct.unpack(">II", ihdr[4:12])
    return height, width


def _decode_jpeg(buf: np.ndarray, max_pixels: int) -> np.ndarray:
    """Decode with libjpeg-turbo's warnings as errors: OpenCV lets libjpeg fill data that is
    cut short or corrupt with grey and returns the picture.
    """
    channels = _jpeg_check(buf, max_pixels)
    colorspace = "GRAY" if channels == 1 else "BGR"
    try:
        return simplejpeg.decode_jpeg(buf, colorspace=colorspace, strict=True)
    except ValueError as exc:
        msg = f"corrupt or truncated JPEG: {exc}"
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
                msg = "malformed JPEG: two frame headers"
                raise ImageError(msg)
            done = {ident: set() for ident in _jpeg_frame(data[start:end], marker, max_pixels)}
        elif marker == 0xDA:
            if done is None:
                msg = "malformed JPEG: scan before the frame header"
                raise ImageError(msg)
            _jpeg_scan(bytes(data[start:end]), done)
    if done is None:
        msg = "malformed JPEG: no frame header"
        raise ImageError(msg)
    for ident, coefficients in done.items():
        if not coefficients.issuperset(range(64)):
            msg = f"truncated JPEG data: no scan completes component {ident}"
            raise ImageError(msg)
    return len(done)


def _jpeg_segments(data: memoryview) -> Iterator[tuple[int, int, int]]:
    """(marker, body start, body end) of each segment up to the end-of-image marker, the
    entropy-coded data after each scan header skipped.
    """
    pos = 2
    for _ in range(_JPEG_MAX_SEGMENTS):
        if pos + 2 > len(data):
            msg = f"truncated JPEG data: no end-of-image marker in {len(data)} bytes"
            raise ImageError(msg)
        marker = data[pos + 1]
        if data[pos] != 0xFF:
            msg = f"malformed JPEG: no marker at byte {pos}"
            raise ImageError(msg)
        if marker == 0xD9:
            return
        if marker in _JPEG_STANDALONE:
            msg = f"malformed JPEG: marker 0x{marker:02X} at byte {pos}, outside a scan"
            raise ImageError(msg)
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if length < 2 or pos + 2 + length > len(data):
            msg = (f"truncated or malformed JPEG: segment 0x{marker:02X} at byte {pos} has length "
                   f"{length}, the data {len(data)} bytes")
            raise ImageError(msg)
        yield marker, pos + 4, pos + 2 + length
        pos += 2 + length
        if marker == 0xDA:
            found = _JPEG_SCAN_END.search(data, pos)
            pos = len(data) if found is None else found.start()
    msg = f"unsupported JPEG: over {_JPEG_MAX_SEGMENTS} segments or fill bytes"
    raise ImageError(msg)


def _jpeg_frame(body: memoryview, marker: int, max_pixels: int) -> list[int]:
    """Component ids of a frame header; the size is bounded first, so that the refusal of an
    oversized frame names its size.
    """
    if len(body) < 6:
        msg = "malformed JPEG: short frame header"
        raise ImageError(msg)
    precision, height, width, count = struct.unpack_from(">BHHB", body)
    check_size(height, width, max_pixels)
    if marker not in _JPEG_HUFFMAN or precision != 8:
        msg = (f"unsupported JPEG (frame type 0x{marker:02X}, {precision}-bit): only 8-bit "
               "Huffman-coded baseline, extended and progressive JPEGs are accepted")
        raise ImageError(msg)
    if count not in {1, 3, 4}:
        msg = f"unsupported JPEG with {count} components; need 1 (gray), 3 (colour) or 4 (CMYK)"
        raise ImageError(msg)
    idents = list(body[6::3])
    if len(body) != 6 + 3 * count or len(set(idents)) != count:
        msg = "malformed JPEG: bad frame components"
        raise ImageError(msg)
    return idents


def _jpeg_scan(body: bytes, done: dict[int, set[int]]) -> None:
    """Add the coefficients a scan header completes to `done`."""
    count = body[0] if body else 0
    if len(body) != 4 + 2 * count:
        msg = "malformed JPEG: bad scan header"
        raise ImageError(msg)
    first, last, approximation = body[-3:]
    for ident in body[1:1 + 2 * count:2]:
        if ident not in done:
            msg = f"malformed JPEG: scan component {ident} is not in the frame"
            raise ImageError(msg)
        if approximation & 15 == 0:
            done[ident].update(range(first, last + 1))
