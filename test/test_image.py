"""Image decoding/encoding without cv_bridge: round trips and every rejected input."""

from __future__ import annotations

import struct
import zlib
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from tacforce_ros.perception.image import (
    ImageError,
    decode_compressed,
    decode_image,
    encode_compressed,
    encode_image_fields,
    image_order,
    supported_encodings,
    to_model_channels,
)

RNG = np.random.default_rng(7)


def random_image(height: int, width: int, channels: int) -> np.ndarray:
    return RNG.integers(0, 256, (height, width, channels), dtype=np.uint8)


def image_msg(**fields: object) -> SimpleNamespace:
    base = {'height': 2, 'width': 3, 'encoding': 'mono8', 'is_bigendian': 0, 'step': 3}
    base['data'] = bytes(6)
    base.update(fields)
    return SimpleNamespace(**base)


@pytest.mark.parametrize(
    ('encoding', 'channels', 'order'),
    [
        ('mono8', 1, 'gray'),
        ('8UC1', 1, 'gray'),
        ('rgb8', 3, 'rgb'),
        ('bgr8', 3, 'bgr'),
        ('8UC3', 3, 'bgr'),
    ],
)
def test_round_trip_each_encoding(encoding: str, channels: int, order: str) -> None:
    array = random_image(5, 7, channels)
    fields = encode_image_fields(array, encoding)
    assert isinstance(fields['data'], bytes)
    assert fields['step'] == 7 * channels
    decoded = decode_image(SimpleNamespace(**fields))
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, array)
    assert image_order(encoding) == order


@pytest.mark.parametrize(('encoding', 'order'), [('rgba8', 'rgb'), ('bgra8', 'bgr')])
def test_alpha_is_dropped_keeping_channel_order(encoding: str, order: str) -> None:
    rgba = random_image(4, 6, 4)
    msg = image_msg(height=4, width=6, encoding=encoding, step=24, data=rgba.tobytes())
    decoded = decode_image(msg)
    assert decoded.shape == (4, 6, 3)
    np.testing.assert_array_equal(decoded, rgba[:, :, :3])
    assert image_order(encoding) == order
    assert set(supported_encodings()) >= {'mono8', 'rgb8', 'bgr8', 'rgba8', 'bgra8'}


def test_padded_rows_are_skipped() -> None:
    array = random_image(3, 5, 3)
    step = 5 * 3 + 4
    padded = np.full((3, step), 0xEE, dtype=np.uint8)
    padded[:, :15] = array.reshape(3, 15)
    msg = image_msg(height=3, width=5, encoding='rgb8', step=step, data=padded.tobytes())
    np.testing.assert_array_equal(decode_image(msg), array)


def test_big_endian_flag_is_irrelevant_for_8_bit() -> None:
    array = random_image(2, 3, 1)
    msg = image_msg(is_bigendian=1, data=array.tobytes())
    np.testing.assert_array_equal(decode_image(msg), array)


def test_rclpy_message_decodes_without_copy() -> None:
    from sensor_msgs.msg import Image

    array = random_image(48, 64, 3)
    msg = Image(**encode_image_fields(array, 'rgb8'))
    decoded = decode_image(msg)
    np.testing.assert_array_equal(decoded, array)
    decoded[0, 0, 0] ^= 0xFF  # a view: the message buffer changes with it
    assert msg.data[0] == decoded[0, 0, 0]


def test_rosbags_message_decodes() -> None:
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    cls = store.types['sensor_msgs/msg/Image']
    header = store.types['std_msgs/msg/Header'](
        stamp=store.types['builtin_interfaces/msg/Time'](sec=1, nanosec=0), frame_id=''
    )
    array = random_image(6, 4, 1)
    fields = encode_image_fields(array, 'mono8')
    fields['data'] = np.frombuffer(fields['data'], np.uint8)
    raw = store.serialize_cdr(cls(header=header, **fields), 'sensor_msgs/msg/Image')
    msg = store.deserialize_cdr(raw, 'sensor_msgs/msg/Image')
    np.testing.assert_array_equal(decode_image(msg), array)


@pytest.mark.parametrize(
    ('fields', 'words'),
    [
        ({'encoding': '16UC1'}, 'unsupported image encoding'),
        ({'encoding': 'yuv422'}, 'unsupported image encoding'),
        ({'height': 0}, 'zero or negative size'),
        ({'width': 0}, 'zero or negative size'),
        ({'height': -1}, 'zero or negative size'),
        ({'height': 100_000, 'width': 100_000, 'step': 100_000}, 'exceeds max_pixels'),
        ({'step': 2}, r'step 2 is smaller than width\*bytes per pixel'),
        ({'data': bytes(5)}, 'truncated data'),
        ({'encoding': 'rgb8', 'step': 9, 'data': bytes(17)}, 'truncated data'),
        ({'data': None}, 'must be a byte buffer'),
        ({'data': np.zeros(6, dtype=np.uint16)}, 'must be uint8'),
    ],
)
def test_bad_image_messages_raise(fields: dict[str, object], words: str) -> None:
    with pytest.raises(ImageError, match=words):
        decode_image(image_msg(**fields))


def test_size_bound_is_checked_before_data() -> None:
    """A huge header with tiny data must fail on size, never try to allocate."""
    msg = image_msg(height=2**31, width=2**31, step=2**31, data=b'')
    with pytest.raises(ImageError, match='exceeds max_pixels'):
        decode_image(msg)
    with pytest.raises(ImageError, match='exceeds max_pixels=5'):
        decode_image(image_msg(), max_pixels=5)


def test_encode_image_fields_rejects_mismatch() -> None:
    with pytest.raises(ImageError, match='encoding .rgb8. needs 3'):
        encode_image_fields(random_image(2, 2, 1), 'rgb8')
    with pytest.raises(ImageError, match='must be uint8'):
        encode_image_fields(np.zeros((2, 2), np.float32), 'mono8')
    with pytest.raises(ImageError, match='unsupported image encoding'):
        encode_image_fields(random_image(2, 2, 1), 'mono16')
    fields = encode_image_fields(random_image(2, 3, 1)[:, :, 0], 'mono8')
    assert (fields['height'], fields['width'], fields['step']) == (2, 3, 3)


def compressed(fmt: str, data: bytes) -> SimpleNamespace:
    return SimpleNamespace(format=fmt, data=np.frombuffer(data, np.uint8))


def test_png_round_trip_colour_is_bgr() -> None:
    rgb = random_image(20, 30, 3)
    fmt, data = encode_compressed(rgb, 'png', order='rgb')
    assert fmt == 'rgb8; png compressed bgr8'
    np.testing.assert_array_equal(decode_compressed(compressed(fmt, data)), rgb[:, :, ::-1])
    bgr = random_image(20, 30, 3)
    fmt, data = encode_compressed(bgr, 'png')
    assert fmt == 'bgr8; png compressed bgr8'
    np.testing.assert_array_equal(decode_compressed(compressed(fmt, data)), bgr)


def test_png_mono_round_trip_has_one_channel() -> None:
    mono = random_image(9, 11, 1)
    fmt, data = encode_compressed(mono, 'png')
    assert fmt == 'mono8; png compressed mono8'
    decoded = decode_compressed(compressed('png', data))
    assert decoded.shape == (9, 11, 1)
    np.testing.assert_array_equal(decoded, mono)


def test_jpeg_round_trip_is_close() -> None:
    cols, rows = np.meshgrid(np.arange(64), np.arange(48))
    bgr = np.dstack([cols * 3, rows * 4, np.full((48, 64), 90)]).astype(np.uint8)
    fmt, data = encode_compressed(bgr, 'jpeg')
    assert fmt == 'bgr8; jpeg compressed bgr8'
    decoded = decode_compressed(compressed(fmt, data))
    assert decoded.shape == (48, 64, 3)
    assert np.abs(decoded.astype(int) - bgr).mean() < 3


def test_rclpy_compressed_message_decodes() -> None:
    from sensor_msgs.msg import CompressedImage

    mono = random_image(8, 8, 1)
    fmt, data = encode_compressed(mono, 'png')
    msg = CompressedImage(format=fmt, data=data)
    np.testing.assert_array_equal(decode_compressed(msg), mono)


def test_png_alpha_is_dropped() -> None:
    bgra = random_image(5, 5, 4)
    ok, data = cv2.imencode('.png', bgra)
    assert ok
    decoded = decode_compressed(compressed('png', data.tobytes()))
    np.testing.assert_array_equal(decoded, bgra[..., :3])


@pytest.mark.parametrize('fmt', ['png', 'jpeg'])
@pytest.mark.parametrize('keep', [0.1, 0.5, 0.9])
def test_truncated_compressed_raises(fmt: str, keep: float) -> None:
    _, data = encode_compressed(random_image(32, 32, 3), fmt)
    cut = data[: int(len(data) * keep)]
    with pytest.raises(ImageError, match='truncated|corrupt'):
        decode_compressed(compressed(fmt, cut))


def test_garbage_and_empty_compressed_raise() -> None:
    with pytest.raises(ImageError, match='corrupt or truncated'):
        decode_compressed(compressed('jpeg', b'not an image at all'))
    with pytest.raises(ImageError, match='empty compressed image'):
        decode_compressed(compressed('png', b''))
    with pytest.raises(ImageError, match='compressedDepth|depth images'):
        decode_compressed(compressed('16UC1; compressedDepth png', b'\x00' * 20))


def png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack('>I', 13) + b'IHDR' + ihdr + struct.pack('>I', zlib.crc32(b'IHDR' + ihdr))
    return b'\x89PNG\r\n\x1a\n' + chunk


def test_compressed_size_bounded_from_header_before_decoding() -> None:
    with pytest.raises(ImageError, match='100000x100000 exceeds max_pixels'):
        decode_compressed(compressed('png', png_header_only(100_000, 100_000)))
    _, jpeg = encode_compressed(random_image(40, 50, 3), 'jpeg')
    with pytest.raises(ImageError, match='50x40 exceeds max_pixels=1000'):
        decode_compressed(compressed('jpeg', jpeg), max_pixels=1000)
    with pytest.raises(ImageError, match='zero or negative size'):
        decode_compressed(compressed('png', png_header_only(0, 10)))


def test_sixteen_bit_png_is_rejected() -> None:
    ok, data = cv2.imencode('.png', np.full((4, 4), 1000, np.uint16))
    assert ok
    with pytest.raises(ImageError, match='depth uint16'):
        decode_compressed(compressed('png', data.tobytes()))


def test_encode_compressed_rejects_bad_input() -> None:
    with pytest.raises(ImageError, match='unsupported compression'):
        encode_compressed(random_image(2, 2, 3), 'bmp')  # type: ignore[arg-type]
    with pytest.raises(ImageError, match='order gray needs a 1-channel'):
        encode_compressed(random_image(2, 2, 3), 'png', order='gray')


def test_to_model_channels() -> None:
    rgb = random_image(6, 5, 3)
    gray = to_model_channels(rgb, 'rgb', 'gray')
    assert gray.shape == (6, 5, 1)
    np.testing.assert_array_equal(gray[:, :, 0], cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    np.testing.assert_array_equal(to_model_channels(rgb[:, :, ::-1], 'bgr', 'gray'), gray)
    np.testing.assert_array_equal(to_model_channels(rgb, 'rgb', 'bgr'), rgb[:, :, ::-1])
    assert to_model_channels(rgb, 'rgb', 'rgb') is rgb
    mono = random_image(6, 5, 1)
    np.testing.assert_array_equal(to_model_channels(mono, 'gray', 'rgb'), np.repeat(mono, 3, 2))
    with pytest.raises(ImageError, match='does not match'):
        to_model_channels(mono, 'rgb', 'gray')
