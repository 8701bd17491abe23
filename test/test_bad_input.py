"""Hostile input, one table for every image node: each bad frame must be refused and counted
under its kind on /diagnostics (errors_<kind>), must not make the node allocate what the frame
claims (a bomb), must never reach an output (bad stamps included), and the next good frame must
still get an answer. Real rclpy: each node runs in its own process, once per transport, and
this test process publishes one frame at a time, each after the last one was counted.
Domains 221-228.
"""
from __future__ import annotations

import copy
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")  # noqa: E402  (the ROS wheels are part of the test set-up)
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseArray, WrenchStamped  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Float32  # noqa: E402

from rosutil import ROOT, probe_node, ros_env, spin_until, stop  # noqa: E402
from tacforce_ros.perception.compressed import encode_compressed  # noqa: E402
from tacforce_ros.perception.image import encode_image_fields  # noqa: E402
from tacforce_ros.ros.qos import output_qos, sensor_qos  # noqa: E402

GOOD_SEC = 2000           # good frame k is stamped GOOD_SEC + k/30 s
BAD_SEC = 7000            # bad frames (other than the bad-stamp ones) are stamped from here
MAX_GROWTH_MB = 300       # peak memory a bad frame may add: a few frames' worth, not a bomb's


@dataclass(frozen=True)
class Target:
    model: str
    topic: str
    encoding: str
    width: int
    height: int
    output: type
    output_topic: str
    params: dict


TARGETS = {
    "tactile_force_node": Target("tactile_force.onnx", "/tactile/image_raw", "mono8", 640, 480,
                                 WrenchStamped, "/estimated_wrench", {}),
    "grasp_planner_node": Target("grasp_map_synthetic.onnx", "/camera/color/image_raw", "rgb8", 640, 480,
                                 PoseArray, "/grasp_planner_node/candidates",
                                 {"publish_overlay": False, "publish_map": False}),
    "grasp_success_node": Target("grasp_success.onnx", "/grasp_camera/image_raw", "rgb8", 160, 120,
                                 Float32, "/grasp_success/probability", {}),
    # a dropped frame must not restart the 20-frame window while it fills
    "visual_force_node": Target("visual_force.onnx", "/camera/image_raw", "rgb8", 128, 128,
                                WrenchStamped, "/visual_force/estimated_wrench", {"max_frame_gap": 3600.0}),
}


# ----------------------------------------------------------------------------- bad inputs

def raw(**changes) -> Callable[[Image], Image]:
    def make(good: Image) -> Image:
        msg = Image(header=good.header, height=good.height, width=good.width, encoding=good.encoding,
                    step=good.step, data=bytes(good.data))
        for key, value in changes.items():
            setattr(msg, key, value)
        return msg
    return make


def compressed(fmt: str, data: bytes) -> Callable[[object], CompressedImage]:
    return lambda _good: CompressedImage(format=fmt, data=data)


def bad_stamp(sec: int, nanosec: int) -> Callable:
    def make(good):
        msg = copy.deepcopy(good)
        msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = sec, nanosec, "bad"
        return msg
    return make


def corrupt_jpeg(good: CompressedImage) -> CompressedImage:
    """Build a JPEG of the good frame's size with valid headers and random entropy-coded data: a
    decoder that only warns returns a garbage picture the model would take.
    """
    shape = cv2.imdecode(np.frombuffer(bytes(good.data), np.uint8), cv2.IMREAD_UNCHANGED).shape
    rng = np.random.default_rng(0)
    data = cv2.imencode(".jpg", rng.integers(0, 255, shape, np.uint8))[1].tobytes()
    start = data.find(b"\xff\xda") + 20
    return CompressedImage(format="jpeg", data=data[:start] + rng.integers(0, 255, len(data) - start - 2,
                                                                           np.uint8).tobytes() + b"\xff\xd9")


def png_huge_ihdr() -> bytes:
    """Build a PNG whose header declares 100000 x 100000 pixels (30 GB of RGB) and holds none."""
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    idat = zlib.compress(bytes(1000))
    return (b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", len(idat)) + b"IDAT" + idat
            + struct.pack(">I", zlib.crc32(b"IDAT" + idat)) + b"\x00\x00\x00\x00IEND\xaeB`\x82")


def jpeg_bomb(side: int = 30000, padding: int = 140_000) -> bytes:
    """Build an 8x8 JPEG whose SOF claims side x side, behind ~140 KB of APP1 segments (so the size
    is not in the first 64 KB a quick header look reads): 900 MB for a decoder that trusts it.
    """
    data = bytearray(cv2.imencode(".jpg", np.zeros((8, 8), np.uint8))[1].tobytes())
    pos = 2
    while not (0xC0 <= data[pos + 1] <= 0xCF and data[pos + 1] not in (0xC4, 0xC8, 0xCC)):
        pos += 2 + struct.unpack(">H", data[pos + 2:pos + 4])[0]
    data[pos + 5:pos + 9] = struct.pack(">HH", side, side)
    app = b"".join(b"\xff\xe1" + struct.pack(">H", 65000) + bytes(64998) for _ in range(padding // 65000 + 1))
    return bytes(data[:2]) + app + bytes(data[2:])


# (name, transport, make(good frame) -> bad message, errors_<kind> it must count)
CASES = [
    ("wrong encoding", "raw", raw(encoding="32FC1"), "image"),
    ("step smaller than a row", "raw", lambda g: raw(step=g.step - 1)(g), "image"),
    ("truncated data", "raw", lambda g: raw(data=bytes(g.data)[:1000])(g), "image"),
    ("zero size", "raw", raw(height=0, width=0, step=0, data=b""), "image"),
    ("over max_image_pixels", "raw", raw(height=100000, width=100000, step=300000), "image"),
    ("wrong frame size", "raw", lambda g: raw(**encode_image_fields(np.zeros((10, 12, 3), np.uint8), "rgb8"))(g),
     "shape"),
    ("stamp nanosec 1.5e9", "raw", bad_stamp(GOOD_SEC, 1_500_000_000), "stamp"),
    ("negative stamp", "raw", bad_stamp(-5, 0), "stamp"),
    ("corrupt JPEG", "compressed", corrupt_jpeg, "image"),
    ("PNG with a huge IHDR", "compressed", compressed("png", png_huge_ihdr()), "image"),
    ("JPEG bomb 30000x30000", "compressed", compressed("jpeg", jpeg_bomb()), "image"),
    ("stamp nanosec 1.5e9", "compressed", bad_stamp(GOOD_SEC, 1_500_000_000), "stamp"),
]


# ----------------------------------------------------------------------------- the run

def errors(diagnostics: list, node: str, kind: str) -> int:
    """errors_<kind> in the node's newest /diagnostics report (0 until the first is counted)."""
    for array in reversed(diagnostics):
        for status in array.status:
            if status.name.startswith(node + ":"):
                return int({kv.key: kv.value for kv in status.values}.get(f"errors_{kind}", 0))
    return 0


def reported(diagnostics: list, node: str) -> bool:
    return any(status.name.startswith(node + ":") for array in diagnostics for status in array.status)


def peak_memory_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


class Stream:
    """Good frames with increasing stamps, and the answers they got."""

    def __init__(self, probe, target: Target, transport: str, server: subprocess.Popen):
        self.probe, self.target, self.transport, self.server = probe, target, transport, server
        channels = 1 if target.encoding == "mono8" else 3
        self.frame = np.full((target.height, target.width, channels), 120, np.uint8)
        self.k = 0
        self.good_stamps: set[tuple[int, int]] = set()
        self.answers = []
        probe.create_subscription(target.output, target.output_topic, self.answers.append, output_qos(100))
        kind, topic = (Image, target.topic) if transport == "raw" else (CompressedImage, target.topic + "/compressed")
        self.pub = probe.create_publisher(kind, topic, sensor_qos(depth=5))

    def good(self):
        if self.transport == "raw":
            msg = Image(**encode_image_fields(self.frame, self.target.encoding))
        else:
            fmt, data = encode_compressed(self.frame, "png", order="gray" if self.frame.shape[2] == 1 else "rgb")
            msg = CompressedImage(format=fmt, data=data)
        t_ns = GOOD_SEC * 10**9 + self.k * 10**9 // 30
        msg.header.stamp.sec, msg.header.stamp.nanosec = t_ns // 10**9, t_ns % 10**9
        msg.header.frame_id = "good"
        self.k += 1
        return msg

    def answered(self, timeout: float = 30.0) -> bool:
        """Send good frames (one, then another each second a best-effort one was lost; every
        50 ms while the visual force window fills) until one is answered.
        """
        before = len(self.answers)
        period = 0.05 if "visual_force" in self.target.model else 1.0
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            msg = self.good()
            self.good_stamps.add((msg.header.stamp.sec, msg.header.stamp.nanosec))
            self.pub.publish(msg)
            if spin_until(self.probe, lambda: len(self.answers) > before, period, [self.server]):
                return True
        return False


@pytest.mark.parametrize("node, transport", [(n, t) for n in TARGETS for t in ("raw", "compressed")])
def test_bad_frames_are_counted_and_the_next_good_frame_is_answered(node, transport):
    target = TARGETS[node]
    domain = 221 + 2 * list(TARGETS).index(node) + (transport == "compressed")
    params = {"model_path": str(ROOT / "models" / target.model), "image_transport": transport,
              "diagnostics_period": 0.1, "providers": "[cpu]", **target.params}
    cmd = [sys.executable, "-m", f"tacforce_ros.nodes.{node}", "--ros-args"]
    for key, value in params.items():
        cmd += ["-p", f"{key}:={value}"]
    cases = [case for case in CASES if case[1] == transport]
    results = {}
    with probe_node(domain, "bad_input_probe") as probe:
        diagnostics = []
        probe.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 50)
        server = subprocess.Popen(cmd, env=ros_env(domain), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
        try:
            stream = Stream(probe, target, transport, server)
            assert spin_until(probe, lambda: stream.pub.get_subscription_count() > 0
                              and probe.count_publishers(target.output_topic) > 0
                              and reported(diagnostics, node), 60, [server])
            assert stream.answered(), "no answer to the first good frame"
            for n, (name, _, make, kind) in enumerate(cases):
                before, memory = errors(diagnostics, node, kind), peak_memory_mb(server.pid)
                bad = make(stream.good())
                if bad.header.frame_id != "bad":
                    bad.header.stamp.sec, bad.header.stamp.nanosec, bad.header.frame_id = BAD_SEC + n, 0, "bad"
                counted = False
                for _ in range(3):  # a best-effort frame may be lost: send it again
                    stream.pub.publish(bad)
                    if spin_until(probe, lambda: errors(diagnostics, node, kind) > before, 5, [server]):
                        counted = True
                        break
                answered = stream.answered()
                results[name] = (counted, answered, peak_memory_mb(server.pid) - memory)
        finally:
            log = stop(server)
    failed = {name: r for name, r in results.items() if not (r[0] and r[1] and r[2] < MAX_GROWTH_MB)}
    assert not failed, f"(counted, answered, peak memory growth MB) per failing case: {failed}\n{log[-3000:]}"
    assert len(results) == len(cases)
    stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in stream.answers if hasattr(m, "header")}
    assert stamps <= stream.good_stamps, "an output carries the stamp of a bad frame"
