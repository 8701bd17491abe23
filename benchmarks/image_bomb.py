"""Refusing a JPEG decompression bomb: time and memory of decode_compressed on it.

    python benchmarks/image_bomb.py [--runs 200]

The bomb is a ~140 KB JPEG whose frame header, after 139 KB of APPn padding, declares
30000x30000 (2.7 GB as BGR). Peak extra memory is measured in a fresh subprocess (ru_maxrss
high-water mark, and tracemalloc for Python/numpy allocations). For comparison: good 640x480
colour JPEGs (baseline and progressive) through decode_compressed (segment walk, then
simplejpeg with libjpeg warnings as errors) and through cv2.imdecode alone, in the same run.
"""
from __future__ import annotations

import argparse
import json
import resource
import struct
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from types import SimpleNamespace

import cv2
import numpy as np

from tacforce_ros.perception.compressed import decode_compressed
from tacforce_ros.perception.image import ImageError


def segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def frame(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[:height, :width]
    image = np.dstack([cols * 200 // width, rows * 200 // height, (rows + cols) % 100])
    return (image + rng.integers(0, 50, image.shape)).astype(np.uint8)


def jpeg(image: np.ndarray, *params: int) -> bytes:
    ok, data = cv2.imencode(".jpg", image, list(params))
    assert ok
    return data.tobytes()


def bomb(size: int = 30_000) -> bytes:
    """Build a small real JPEG with APPn padding before its frame header, which declares size x size."""
    data = jpeg(frame(16, 16))
    sof = data.index(b"\xff\xc0")
    padding = segment(0xE1, bytes(65533)) + segment(0xEF, bytes(65533)) + segment(0xEF, bytes(8000))
    size_field = struct.pack(">HH", size, size)
    return data[:sof] + padding + data[sof:sof + 5] + size_field + data[sof + 9:]


def message(data: bytes) -> SimpleNamespace:
    return SimpleNamespace(format="jpeg", data=np.frombuffer(data, np.uint8))


def refuse_or_decode(msg: SimpleNamespace) -> None:
    try:
        decode_compressed(msg)
    except ImageError:
        pass


def opencv_decode(msg: SimpleNamespace) -> None:
    cv2.imdecode(msg.data, cv2.IMREAD_UNCHANGED)


def times_ms(
    decode: Callable[[SimpleNamespace], None], msg: SimpleNamespace, runs: int
) -> np.ndarray:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        decode(msg)
        out.append(time.perf_counter() - start)
    return np.array(out) * 1e3


def memory(runs: int) -> None:
    """In a fresh process: peak extra memory over `runs` refusals of the bomb."""
    decode_compressed(message(jpeg(frame(48, 64))))  # load codecs and numpy paths first
    msg = message(bomb())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    for _ in range(runs):
        refuse_or_decode(msg)
    peak = tracemalloc.get_traced_memory()[1]
    extra_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss
    print(json.dumps({"rss_kib": extra_rss, "tracemalloc_kib": peak / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory:
        memory(args.runs)
        return
    data = bomb()
    try:
        decode_compressed(message(data))
    except ImageError as exc:
        print(f"bomb: {len(data)} bytes, refused: {exc}")
    child = subprocess.run([sys.executable, __file__, "--memory", "--runs", str(args.runs)],
                           capture_output=True, text=True, check=True)
    mem = json.loads(child.stdout)
    print(f"{'input':<44} {'bytes':>7} {'p50 ms':>8} {'p99 ms':>8}")
    good = jpeg(frame(480, 640))
    progressive = jpeg(frame(480, 640), cv2.IMWRITE_JPEG_PROGRESSIVE, 1)
    cases = [("bomb 30000x30000 (refused)", data, refuse_or_decode)]
    for name, case in [("640x480 JPEG", good), ("640x480 progressive JPEG", progressive)]:
        cases += [(f"{name}, decode_compressed", case, refuse_or_decode),
                  (f"{name}, cv2.imdecode", case, opencv_decode)]
    for name, case, decode in cases:
        t = times_ms(decode, message(case), args.runs)
        print(f"{name:<44} {len(case):7d} {np.percentile(t, 50):8.3f} {np.percentile(t, 99):8.3f}")
    print(f"bomb peak extra memory over {args.runs} refusals: ru_maxrss +{mem['rss_kib']} KiB, "
          f"tracemalloc peak {mem['tracemalloc_kib']:.1f} KiB")


if __name__ == "__main__":
    main()
