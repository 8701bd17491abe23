"""Child process for visual_force_node tests and its benchmark: publishes synthetic camera
frames of a pressed object (tacforce_ros.sim.visual_force_scenes) on /camera/image_raw.

    python test/publish_camera_frames.py COUNT RATE [--gap-after K] [--bad] [--compressed]
                                          [--size WxH] [--stamp-period S]

Frame k is stamped BASE_SEC + k * S (S = 1/30 s by default, whatever RATE is), with 1 s added
from frame K+1 on when --gap-after K is given (a stream break). With --bad every 4th message is
a bad frame (frame_id 'bad': wrong encoding, step/size mismatch, truncated data; with
--compressed a truncated or corrupt PNG). Prints 'sent N good M bad' when done; with
--log-times also one 'sent K T' line per frame (K index, T = time.time() just before publish).
"""
import sys
import time

import numpy as np
import rclpy
from sensor_msgs.msg import CompressedImage, Image

from tacforce_ros.perception.compressed import encode_compressed
from tacforce_ros.perception.image import encode_image_fields
from tacforce_ros.ros.qos import sensor_qos
from tacforce_ros.sim.visual_force_scenes import make_episode

BASE_SEC = 1000


def option(name: str, default: str) -> str:
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def bad_frame(good: Image, k: int) -> Image:
    msg = Image(header=good.header, height=good.height, width=good.width, encoding=good.encoding,
                step=good.step, data=bytes(good.data))
    variant = (k // 4) % 3
    if variant == 0:
        msg.encoding = "32FC1"
    elif variant == 1:
        msg.step = good.width - 1
    else:
        msg.data = bytes(good.data)[:1000]
    msg.header.frame_id = "bad"
    return msg


def main() -> None:
    count, rate = int(sys.argv[1]), float(sys.argv[2])
    gap_after = int(option("--gap-after", "-1"))
    with_bad, compressed, log_times = "--bad" in sys.argv, "--compressed" in sys.argv, "--log-times" in sys.argv
    w, h = (int(v) for v in option("--size", "128x128").split("x"))
    stamp_period = float(option("--stamp-period", str(1 / 30)))
    ep = make_episode("sponge", 10, 550, np.random.default_rng(3), width=w, height=h, frames=min(count, 60))
    frames = ep.images
    rclpy.init()
    node = rclpy.create_node("test_camera_publisher")
    if compressed:
        pub = node.create_publisher(CompressedImage, "/camera/image_raw/compressed", sensor_qos(depth=5))
        pngs = [encode_compressed(f, "png", order="rgb") for f in frames]
    else:
        pub = node.create_publisher(Image, "/camera/image_raw", sensor_qos(depth=5))
    end = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(1.0)
    good = bad = 0
    period = 1.0 / rate
    next_t = time.monotonic()
    for k in range(count):
        if compressed:
            fmt, data = pngs[k % len(pngs)]
            msg = CompressedImage(format=fmt, data=data)
        else:
            msg = Image(**encode_image_fields(frames[k % len(frames)], "rgb8"))
        t_ns = round((BASE_SEC + k * stamp_period + (1.0 if 0 <= gap_after < k else 0.0)) * 1e9)
        msg.header.stamp.sec, msg.header.stamp.nanosec = t_ns // 10**9, t_ns % 10**9
        msg.header.frame_id = "camera_test"
        if with_bad and k % 4 == 3:
            if compressed:
                msg.data = bytes(msg.data)[: len(msg.data) // 2] if k % 8 == 3 else b"\x89PNG garbage"
                msg.header.frame_id = "bad"
            else:
                msg = bad_frame(msg, k)
            bad += 1
        else:
            good += 1
        if log_times:
            print(f"sent {k} {time.time():.6f}", flush=True)
        pub.publish(msg)
        next_t += period
        time.sleep(max(0.0, next_t - time.monotonic()))
    time.sleep(0.5)
    print(f"sent {good} good {bad} bad", flush=True)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
