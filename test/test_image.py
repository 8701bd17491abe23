"""Image decoding/encoding without cv_bridge: round trips and every rejected input."""

from __future__ import annotations

import struct
import zlib
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import simplejpeg

from tacforce_ros.perception.compressed import decode_compressed, encode_compressed
from tacforce_ros.perception.image import (
    ImageError,
    decode_image,
    encode_image_fields,
    image_order,
    supported_encodings,
    to_model_channels,
)

RNG = np.random.default_rng(7)


def random_image(height: int, width: int, channels: int) -> np.ndarray:
    return RNG.integers(0, 256, (height, width, channels), dtype=np.uint8)


def image_msg(**fields: object) -> SimpleNamespace:
    base = {"height": 2, "width": 3, "encoding": "mono8", "is_bigendian": 0, "step": 3}
    base["data"] = bytes(6)
    base.update(fields)
    return SimpleNamespace(**base)


@pytest.mark.parametrize(
    ("encoding", "channels", "order"),
    [
        ("mono8", 1, "gray"),
        ("8UC1", 1, "gray"),
        ("rgb8", 3, "rgb"),
        ("bgr8", 3, "bgr"),
        ("8UC3", 3, "bgr"),
    ],
)
def test_round_trip_each_encoding(encoding: str, channels: int, order: str) -> None:
    array = random_image(5, 7, channels)
    fields = encode_image_fields(array, encoding)
    assert isinstance(fields["data"], bytes)
    assert fields["step"] == 7 * channels
    decoded = decode_image(SimpleNamespace(**fields))
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, array)
    assert image_order(encoding) == order


@pytest.mark.parametrize(("encoding", "order"), [("rgba8", "rgb"), ("bgra8", "bgr")])
def test_alpha_is_dropped_keeping_channel_order(encoding: str, order: str) -> None:
    rgba = random_image(4, 6, 4)
    msg = image_msg(height=4, width=6, encoding=encoding, step=24, data=rgba.tobytes())
    decoded = decode_image(msg)
    assert decoded.shape == (4, 6, 3)
    np.testing.assert_array_equal(decoded, rgba[:, :, :3])
    assert image_order(encoding) == order
    assert set(supported_encodings()) >= {"mono8", "rgb8", "bgr8", "rgba8", "bgra8"}


def test_padded_rows_are_skipped() -> None:
    array = random_image(3, 5, 3)
    step = 5 * 3 + 4
    padded = np.full((3, step), 0xEE, dtype=np.uint8)
    padded[:, :15] = array.reshape(3, 15)
    msg = image_msg(height=3, width=5, encoding="rgb8", step=step, data=padded.tobytes())
    np.testing.assert_array_equal(decode_image(msg), array)


def test_big_endian_flag_is_irrelevant_for_8_bit() -> None:
    array = random_image(2, 3, 1)
    msg = image_msg(is_bigendian=1, data=array.tobytes())
    np.testing.assert_array_equal(decode_image(msg), array)


def test_rclpy_message_decodes_without_copy() -> None:
    from sensor_msgs.msg import Image

    array = random_image(48, 64, 3)
    msg = Image(**encode_image_fields(array, "rgb8"))
    decoded = decode_image(msg)
    np.testing.assert_array_equal(decoded, array)
    decoded[0, 0, 0] ^= 0xFF  # a view: the message buffer changes with it
    assert msg.data[0] == decoded[0, 0, 0]


def test_rosbags_message_decodes() -> None:
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    cls = store.types["sensor_msgs/msg/Image"]
    header = store.types["std_msgs/msg/Header"](
        stamp=store.types["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id=""
    )
    array = random_image(6, 4, 1)
    fields = encode_image_fields(array, "mono8")
    fields["data"] = np.frombuffer(fields["data"], np.uint8)
    raw = store.serialize_cdr(cls(header=header, **fields), "sensor_msgs/msg/Image")
    msg = store.deserialize_cdr(raw, "sensor_msgs/msg/Image")
    np.testing.assert_array_equal(decode_image(msg), array)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"encoding": "16UC1"}, "unsupported image encoding"),
        ({"encoding": "yuv422"}, "unsupported image encoding"),
        ({"height": 0}, "zero or negative size"),
        ({"width": 0}, "zero or negative size"),
        ({"height": -1}, "zero or negative size"),
        ({"height": 100_000, "width": 100_000, "step": 100_000}, "exceeds max_pixels"),
        ({"step": 2}, r"step 2 is smaller than width\*bytes per pixel"),
        ({"data": bytes(5)}, "truncated data"),
        ({"encoding": "rgb8", "step": 9, "data": bytes(17)}, "truncated data"),
        ({"data": None}, "must be a byte buffer"),
        ({"data": np.zeros(6, dtype=np.uint16)}, "must be uint8"),
    ],
)
def test_bad_image_messages_raise(fields: dict[str, object], words: str) -> None:
    with pytest.raises(ImageError, match=words):
        decode_image(image_msg(**fields))


def test_size_bound_is_checked_before_data() -> None:
    """A huge header with tiny data must fail on size, never try to allocate."""
    msg = image_msg(height=2**31, width=2**31, step=2**31, data=b"")
    with pytest.raises(ImageError, match="exceeds max_pixels"):
        decode_image(msg)
    with pytest.raises(ImageError, match="exceeds max_pixels=5"):
        decode_image(image_msg(), max_pixels=5)


def test_encode_image_fields_rejects_mismatch() -> None:
    with pytest.raises(ImageError, match="encoding .rgb8. needs 3"):
        encode_image_fields(random_image(2, 2, 1), "rgb8")
    with pytest.raises(ImageError, match="must be uint8"):
        encode_image_fields(np.zeros((2, 2), np.float32), "mono8")
    with pytest.raises(ImageError, match="unsupported image encoding"):
        encode_image_fields(random_image(2, 2, 1), "mono16")
    fields = encode_image_fields(random_image(2, 3, 1)[:, :, 0], "mono8")
    assert (fields["height"], fields["width"], fields["step"]) == (2, 3, 3)


def compressed(fmt: str, data: bytes) -> SimpleNamespace:
    return SimpleNamespace(format=fmt, data=np.frombuffer(data, np.uint8))


def test_png_round_trip_colour_is_bgr() -> None:
    rgb = random_image(20, 30, 3)
    fmt, data = encode_compressed(rgb, "png", order="rgb")
    assert fmt == "rgb8; png compressed bgr8"
    np.testing.assert_array_equal(decode_compressed(compressed(fmt, data)), rgb[:, :, ::-1])
    bgr = random_image(20, 30, 3)
    fmt, data = encode_compressed(bgr, "png")
    assert fmt == "bgr8; png compressed bgr8"
    np.testing.assert_array_equal(decode_compressed(compressed(fmt, data)), bgr)


def test_png_mono_round_trip_has_one_channel() -> None:
    mono = random_image(9, 11, 1)
    fmt, data = encode_compressed(mono, "png")
    assert fmt == "mono8; png compressed mono8"
    decoded = decode_compressed(compressed("png", data))
    assert decoded.shape == (9, 11, 1)
    np.testing.assert_array_equal(decoded, mono)


def test_jpeg_round_trip_is_close() -> None:
    cols, rows = np.meshgrid(np.arange(64), np.arange(48))
    bgr = np.dstack([cols * 3, rows * 4, np.full((48, 64), 90)]).astype(np.uint8)
    fmt, data = encode_compressed(bgr, "jpeg")
    assert fmt == "bgr8; jpeg compressed bgr8"
    decoded = decode_compressed(compressed(fmt, data))
    assert decoded.shape == (48, 64, 3)
    assert np.abs(decoded.astype(int) - bgr).mean() < 3


def test_rclpy_compressed_message_decodes() -> None:
    from sensor_msgs.msg import CompressedImage

    mono = random_image(8, 8, 1)
    fmt, data = encode_compressed(mono, "png")
    msg = CompressedImage(format=fmt, data=data)
    np.testing.assert_array_equal(decode_compressed(msg), mono)


def test_png_alpha_is_dropped() -> None:
    bgra = random_image(5, 5, 4)
    ok, data = cv2.imencode(".png", bgra)
    assert ok
    decoded = decode_compressed(compressed("png", data.tobytes()))
    np.testing.assert_array_equal(decoded, bgra[..., :3])


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_truncated_compressed_raises(fmt: str, keep: float) -> None:
    _, data = encode_compressed(random_image(32, 32, 3), fmt)
    cut = data[: int(len(data) * keep)]
    with pytest.raises(ImageError, match="truncated|corrupt"):
        decode_compressed(compressed(fmt, cut))


def test_garbage_and_empty_compressed_raise() -> None:
    with pytest.raises(ImageError, match="neither PNG nor JPEG"):
        decode_compressed(compressed("jpeg", b"not an image at all"))
    with pytest.raises(ImageError, match="empty compressed image"):
        decode_compressed(compressed("png", b""))
    with pytest.raises(ImageError, match="compressedDepth|depth images"):
        decode_compressed(compressed("16UC1; compressedDepth png", b"\x00" * 20))


def png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def test_compressed_size_bounded_from_header_before_decoding() -> None:
    with pytest.raises(ImageError, match="100000x100000 exceeds max_pixels"):
        decode_compressed(compressed("png", png_header_only(100_000, 100_000)))
    _, jpeg = encode_compressed(random_image(40, 50, 3), "jpeg")
    with pytest.raises(ImageError, match="50x40 exceeds max_pixels=1000"):
        decode_compressed(compressed("jpeg", jpeg), max_pixels=1000)
    with pytest.raises(ImageError, match="zero or negative size"):
        decode_compressed(compressed("png", png_header_only(0, 10)))


def test_png_ihdr_must_be_first_and_intact() -> None:
    _, data = encode_compressed(random_image(8, 8, 3), "png")
    text = struct.pack(">I", 3) + b"tEXt" + b"a\0b" + struct.pack(">I", zlib.crc32(b"tEXta\0b"))
    with pytest.raises(ImageError, match="readable IHDR"):
        decode_compressed(compressed("png", data[:8] + text + data[8:]))
    bad_crc = bytearray(data)
    bad_crc[29] ^= 1
    with pytest.raises(ImageError, match="readable IHDR"):
        decode_compressed(compressed("png", bytes(bad_crc)))
    with pytest.raises(ImageError, match="readable IHDR"):
        decode_compressed(compressed("png", b"\x89PNG\r\n\x1a\ngarbage"))


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_truncated_png_with_end_chunk_put_back_raises(keep: float) -> None:
    _, data = encode_compressed(random_image(64, 80, 3), "png")
    iend = data[-12:]
    assert iend[4:8] == b"IEND"
    with pytest.raises(ImageError, match="corrupt or truncated"):
        decode_compressed(compressed("png", data[: int(len(data) * keep)] + iend))


@pytest.mark.parametrize("ext", [".bmp", ".tiff", ".webp"])
def test_formats_other_than_png_and_jpeg_are_refused(ext: str) -> None:
    ok, data = cv2.imencode(ext, random_image(8, 8, 3))
    assert ok
    with pytest.raises(ImageError, match="neither PNG nor JPEG"):
        decode_compressed(compressed(ext[1:], data.tobytes()))


def test_compressed_data_size_is_bounded() -> None:
    with pytest.raises(ImageError, match=r"2097152 bytes exceeds 4\*max_pixels"):
        decode_compressed(compressed("png", bytes(2 << 20)), max_pixels=1000)


def textured(height: int, width: int, channels: int) -> np.ndarray:
    """Make a camera-like frame: gradients and noise, no flat grey."""
    rows, cols = np.mgrid[:height, :width]
    image = np.dstack([cols * 200 // width, rows * 200 // height, (rows + cols) % 100])
    return (image + RNG.integers(0, 50, image.shape)).astype(np.uint8)[:, :, :channels]


def jpeg(image: np.ndarray, *params: int) -> bytes:
    ok, data = cv2.imencode(".jpg", image, list(params))
    assert ok
    return data.tobytes()


def jpeg_parts(data: bytes) -> list[bytes]:
    """SOI, each marker segment before the scan, then the scan segment with the rest."""
    parts, pos = [data[:2]], 2
    while data[pos + 1] != 0xDA:
        end = pos + 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        parts.append(data[pos:end])
        pos = end
    return [*parts, data[pos:]]


def segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def jpeg_bomb(size: int = 30_000) -> bytes:
    """Build a ~140 KB JPEG declaring size x size: APPn padding puts its frame header past 64 KB."""
    parts = jpeg_parts(jpeg(textured(16, 16, 3)))
    sof = next(i for i, part in enumerate(parts) if part[1] == 0xC0)
    frame = parts[sof][:5] + struct.pack(">HH", size, size) + parts[sof][9:]
    padding = [segment(0xE1, bytes(65533)), segment(0xEF, bytes(65533)), segment(0xEF, bytes(8000))]
    return b"".join([*parts[:sof], *padding, frame, *parts[sof + 1:]])


def assert_decodes_like_opencv(data: bytes) -> None:
    """Pixels within one level of cv2.imdecode's: both bundle libjpeg-turbo, and builds of
    other versions or SIMD paths may round the IDCT and the chroma upsampling differently.
    """
    decoded = decode_compressed(compressed("jpeg", data))
    reference = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.dtype == np.uint8
    assert decoded.shape == (*reference.shape[:2], 1 if reference.ndim == 2 else 3)
    np.testing.assert_allclose(decoded, reference.reshape(decoded.shape), rtol=0, atol=1)


def scan_start(data: bytes, sos: int) -> int:
    """Where the entropy-coded data of the scan header at `sos` starts."""
    return sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big")


def cut_with_end_marker(data: bytes, keep: float) -> bytes:
    """Keep the first `keep` of the last scan's data, then put the end-of-image marker back."""
    start = scan_start(data, data.rindex(b"\xff\xda"))
    return data[: start + int((len(data) - 2 - start) * keep)] + b"\xff\xd9"


def test_jpeg_bomb_is_refused_from_its_header(monkeypatch: pytest.MonkeyPatch) -> None:
    """The frame header sits after 139 KB of APPn segments; the size must still be read and
    refused before a decoder allocates (30000x30000x3 is 2.7 GB) or decodes anything.
    """
    bomb = jpeg_bomb()
    assert 135_000 < len(bomb) < 145_000
    assert bomb.index(b"\xff\xc0") > 65536

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("a decoder was called on a JPEG bomb")

    for module, name in [(cv2, "imdecode"), (simplejpeg, "decode_jpeg"),
                         (simplejpeg, "decode_jpeg_header")]:
        monkeypatch.setattr(module, name, no_decoding)
    with pytest.raises(ImageError, match="30000x30000 exceeds max_pixels"):
        decode_compressed(compressed("jpeg", bomb))


def test_jpeg_bomb_helper_builds_a_decodable_jpeg() -> None:
    """The bomb is a real JPEG: at a size within the limit, it decodes."""
    assert decode_compressed(compressed("jpeg", jpeg_bomb(16))).shape == (16, 16, 3)


def with_part(data: bytes, marker: int, replace: bytes) -> bytes:
    parts = jpeg_parts(data)
    index = next(i for i, part in enumerate(parts) if part[1] == marker)
    return b"".join([*parts[:index], replace, *parts[index + 1:]])


GOOD_JPEG = jpeg(textured(24, 32, 3))
FRAME = next(part for part in jpeg_parts(GOOD_JPEG) if part[1] == 0xC0)
SCAN_AT = GOOD_JPEG.index(b"\xff\xda")
SCAN = jpeg_parts(GOOD_JPEG)[-1]
RESTARTS = jpeg(textured(24, 32, 3), cv2.IMWRITE_JPEG_RST_INTERVAL, 1)
FIRST_RESTART = RESTARTS.index(b"\xff\xd0", RESTARTS.index(b"\xff\xda"))
LAST_RESTART = RESTARTS.rindex(b"\xff\xd2")  # 2x2 MCUs: restarts 0, 1, 2


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (with_part(GOOD_JPEG, 0xC0, b""), "scan before the frame header"),
        (GOOD_JPEG[:2] + b"\xff\xd9", "no frame header"),
        (GOOD_JPEG[:SCAN_AT] + b"\xff\xd9" + GOOD_JPEG[SCAN_AT:], "no scan completes component 1"),
        (GOOD_JPEG[:SCAN_AT], "no end-of-image marker in"),
        (GOOD_JPEG[:2] + segment(0xE1, bytes(100))[:60], "0xE1 at byte 2 has length 102"),
        (GOOD_JPEG[:2] + b"\xff\xe1\x00\x01" + GOOD_JPEG[2:], "0xE1 at byte 2 has length 1,"),
        (GOOD_JPEG[:2] + b"\x00" + GOOD_JPEG[2:], "no marker at byte 2"),
        (GOOD_JPEG[:2] + b"\xff\xd0" + GOOD_JPEG[2:], "0xD0 at byte 2, outside a scan"),
        (with_part(GOOD_JPEG, 0xC0, FRAME * 2), "two frame headers"),
        (with_part(GOOD_JPEG, 0xC0, FRAME[:5] + b"\0\0" + FRAME[7:]), "zero or negative size 32x0"),
        (GOOD_JPEG[:-2], "no end-of-image marker"),
        (GOOD_JPEG[:2] + segment(0xFE, b"") * 5000 + GOOD_JPEG[2:], "over 4096 segments"),
        (with_part(GOOD_JPEG, 0xC0, segment(0xC0, b"\x08\0")), "short frame header"),
        (with_part(GOOD_JPEG, 0xC0, b"\xff\xc9" + FRAME[2:]), r"frame type 0xC9, 8-bit\): only"),
        (with_part(GOOD_JPEG, 0xC0, FRAME[:4] + b"\x0c" + FRAME[5:]), r"0xC0, 12-bit\): only"),
        (with_part(GOOD_JPEG, 0xC0, FRAME[:9] + b"\x02" + FRAME[10:]), "with 2 components"),
        (with_part(GOOD_JPEG, 0xC0, FRAME[:13] + b"\x01" + FRAME[14:]), "bad frame components"),
        (with_part(GOOD_JPEG, 0xC0, FRAME[:11] + b"\x50" + FRAME[12:]), "corrupt or truncated"),
        (GOOD_JPEG[:SCAN_AT] + SCAN[:5] + b"\x09" + SCAN[6:], "scan component 9 is not in"),
        (GOOD_JPEG[:SCAN_AT] + SCAN[:4] + b"\x04" + SCAN[5:], "bad scan header"),
        (GOOD_JPEG[:SCAN_AT] + segment(0xDA, b"\x01\x01\0\0\x3f\0") + SCAN[14:],
         "no scan completes component 2"),
        (RESTARTS[:FIRST_RESTART] + b"\xff\xd1" + RESTARTS[FIRST_RESTART + 2:],
         "corrupt or truncated JPEG: .*RST0"),
        (RESTARTS[:LAST_RESTART] + RESTARTS[LAST_RESTART + 2:], "corrupt or truncated JPEG"),
    ],
    ids=[
        "no-frame", "nothing-but-end", "end-in-header", "no-scan", "past-the-end", "length-1",
        "no-marker", "restart-in-header", "two-frames", "zero-height", "no-end", "many-segments",
        "short-frame", "arithmetic", "12-bit", "two-components", "duplicate-component",
        "bad-sampling", "unknown-scan-component", "bad-scan-header", "partial-scan",
        "restart-out-of-sequence", "restart-missing",
    ],
)
def test_malformed_jpeg_is_refused(data: bytes, words: str) -> None:
    """A JPEG whose size cannot be read from a sound marker chain is never left to decode;
    what libjpeg finds wrong while decoding is refused with its message.
    """
    with pytest.raises(ImageError, match=words):
        decode_compressed(compressed("jpeg", data))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_with_random_scan_data_is_refused(seed: int, channels: int) -> None:
    """Valid headers, random entropy-coded data of the right length, end marker put back:
    libjpeg only warns, and OpenCV returns a garbage picture. Random 0xFF bytes can make
    markers that the segment walk refuses first.
    """
    rng = np.random.default_rng(seed)
    data = jpeg(rng.integers(0, 256, (120, 160, channels), np.uint8))
    start = scan_start(data, data.index(b"\xff\xda"))
    noise = rng.integers(0, 256, len(data) - start - 2, np.uint8).tobytes()
    assert cv2.imdecode(np.frombuffer(data[:start] + noise + b"\xff\xd9", np.uint8), -1) is not None
    with pytest.raises(ImageError, match="corrupt|truncated|malformed"):
        decode_compressed(compressed("jpeg", data[:start] + noise + b"\xff\xd9"))


def test_fill_bytes_before_a_marker_and_segments_after_the_scan_are_accepted() -> None:
    assert_decodes_like_opencv(GOOD_JPEG[:2] + b"\xff\xff\xff" + GOOD_JPEG[2:])
    assert_decodes_like_opencv(GOOD_JPEG[:-2] + segment(0xFE, b"note") + b"\xff\xd9")


GREY_BOTTOM = textured(96, 128, 3)
GREY_BOTTOM[48:] = 128
PARAMS = {
    "baseline": (),
    "restarts": (cv2.IMWRITE_JPEG_RST_INTERVAL, 5),
    "optimized": (cv2.IMWRITE_JPEG_OPTIMIZE, 1),
    "progressive": (cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
}


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("grey_bottom", [False, True])
@pytest.mark.parametrize("params", PARAMS.values(), ids=PARAMS)
def test_truncated_jpeg_with_end_marker_put_back_is_refused(
    channels: int, grey_bottom: bool, params: tuple[int, ...]
) -> None:
    """The decoder (libjpeg) only warns and greys out what is missing; the whole image still decodes.
    Cuts inside the last scan, down to its last byte.
    """
    image = (GREY_BOTTOM if grey_bottom else textured(96, 128, 3))[:, :, :channels]
    data = jpeg(np.ascontiguousarray(image), *params)
    assert_decodes_like_opencv(data)
    cuts = [cut_with_end_marker(data, keep) for keep in (0.0, 0.3, 0.6, 0.9)]
    cuts += [data[:-2 - drop] + b"\xff\xd9" for drop in range(1, 9)]
    for cut in cuts:
        with pytest.raises(ImageError, match="truncated"):
            decode_compressed(compressed("jpeg", cut))


@pytest.mark.parametrize("channels", [1, 3])
def test_progressive_jpeg_cut_at_a_scan_boundary_is_refused(channels: int) -> None:
    """The decoder (libjpeg) does not warn when whole scans are missing (the coarse scans before make a
    blurred picture): refused as some coefficients are never completed.
    """
    data = jpeg(textured(64, 80, channels), cv2.IMWRITE_JPEG_PROGRESSIVE, 1)
    assert_decodes_like_opencv(data)
    scans = [i for i in range(len(data)) if data.startswith(b"\xff\xda", i)]
    assert len(scans) > 2
    blurred = data[: scans[-1]] + b"\xff\xd9"
    assert cv2.imdecode(np.frombuffer(blurred, np.uint8), -1) is not None
    assert simplejpeg.decode_jpeg(blurred, strict=True) is not None
    for sos in scans:
        for cut in (data[:sos], data[: sos + 1]):  # 0xFF then 0xFFD9: a fill byte
            with pytest.raises(ImageError, match="no scan completes component"):
                decode_compressed(compressed("jpeg", cut + b"\xff\xd9"))
        with pytest.raises(ImageError, match="truncated"):  # a scan header, no data
            decode_compressed(compressed("jpeg", data[: scan_start(data, sos)] + b"\xff\xd9"))


@pytest.mark.parametrize("layout", ["gray", "420", "422", "444"])
@pytest.mark.parametrize("params", PARAMS.values(), ids=PARAMS)
def test_jpeg_pixels_match_opencv(layout: str, params: tuple[int, ...]) -> None:
    """Gray comes back (H, W, 1), colour (H, W, 3) BGR, as cv2.imdecode returns them."""
    if layout == "gray":
        assert_decodes_like_opencv(jpeg(textured(75, 101, 1), *params))
    else:
        factor = getattr(cv2, f"IMWRITE_JPEG_SAMPLING_FACTOR_{layout}")
        sampling = (cv2.IMWRITE_JPEG_SAMPLING_FACTOR, factor)
        assert_decodes_like_opencv(jpeg(textured(75, 101, 3), *sampling, *params))


@pytest.mark.parametrize("size", [(1, 1), (6, 8), (17, 33), (33, 17), (1, 40), (40, 1)])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("optimize", [0, 1])
def test_small_and_grey_jpegs_decode(size: tuple[int, int], channels: int, optimize: int) -> None:
    """Odd sizes leave partial MCUs; flat grey codes nothing but zero coefficients."""
    for image in (np.full((*size, channels), 128, np.uint8), textured(*size, channels)):
        assert_decodes_like_opencv(jpeg(image, cv2.IMWRITE_JPEG_OPTIMIZE, optimize))


def test_cmyk_jpeg_decodes_to_bgr_like_opencv() -> None:
    cmyk = np.dstack([textured(24, 40, 3), np.full((24, 40), 60, np.uint8)])
    data = simplejpeg.encode_jpeg(cmyk, colorspace="CMYK")
    assert simplejpeg.decode_jpeg_header(data)[2] == "YCCK"
    assert_decodes_like_opencv(data)
    with pytest.raises(ImageError, match="truncated"):
        decode_compressed(compressed("jpeg", cut_with_end_marker(data, 0.5)))


def test_motion_jpeg_without_huffman_tables() -> None:
    """Motion-JPEG frames leave out DHT; libjpeg then uses its default tables."""
    data = jpeg(GREY_BOTTOM)
    bare = b"".join(part for part in jpeg_parts(data) if part[1] != 0xC4)
    np.testing.assert_array_equal(
        decode_compressed(compressed("jpeg", bare)), decode_compressed(compressed("jpeg", data))
    )
    with pytest.raises(ImageError, match="truncated"):
        decode_compressed(compressed("jpeg", cut_with_end_marker(bare, 0.6)))


def test_sixteen_bit_png_is_rejected() -> None:
    ok, data = cv2.imencode(".png", np.full((4, 4), 1000, np.uint16))
    assert ok
    with pytest.raises(ImageError, match="depth uint16"):
        decode_compressed(compressed("png", data.tobytes()))


def test_encode_compressed_rejects_bad_input() -> None:
    with pytest.raises(ImageError, match="unsupported compression"):
        encode_compressed(random_image(2, 2, 3), "bmp")  # type: ignore[arg-type]
    with pytest.raises(ImageError, match="order gray needs a 1-channel"):
        encode_compressed(random_image(2, 2, 3), "png", order="gray")


def test_to_model_channels() -> None:
    rgb = random_image(6, 5, 3)
    gray = to_model_channels(rgb, "rgb", "gray")
    assert gray.shape == (6, 5, 1)
    np.testing.assert_array_equal(gray[:, :, 0], cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    np.testing.assert_array_equal(to_model_channels(rgb[:, :, ::-1], "bgr", "gray"), gray)
    np.testing.assert_array_equal(to_model_channels(rgb, "rgb", "bgr"), rgb[:, :, ::-1])
    assert to_model_channels(rgb, "rgb", "rgb") is rgb
    mono = random_image(6, 5, 1)
    np.testing.assert_array_equal(to_model_channels(mono, "gray", "rgb"), np.repeat(mono, 3, 2))
    with pytest.raises(ImageError, match="does not match"):
        to_model_channels(mono, "rgb", "gray")
