"""Child process for grasp_success_node tests and benchmarks: publishes after-grasp frames on
/grasp_camera/image_raw at a fixed rate, each stamped sec = 1000 + k.

    python test/publish_grasp_frames.py PATTERN RATE [--size WxH] [--bad] [--encoding rgb8|bgr8|mono8]
                                        [--seed S] [--repeat N] [--compressed]

PATTERN is a comma list of SOURCE:COUNT, SOURCE one of
    bright / dark      uniform frames of value 230 / 25 (P = 0.902 / 0.098 under the brightness model)
    red                red 230, green and blue 25 (RGB)
    held / failure     synthetic held-out (test split) frames of that class
With --bad every 4th message is a bad frame (wrong encoding, step mismatch, truncated data,
zero size, huge size, wrong frame size), marked frame_id 'bad'. --compressed publishes PNG
sensor_msgs/CompressedImage on /grasp_camera/image_raw/compressed. Prints 'sent N good M bad'.
"""
import argparse
import time

import numpy as np
import rclpy
from sensor_msgs.msg import CompressedImage, Image

from tacforce_ros.perception.compressed import encode_compressed
from tacforce_ros.perception.image import encode_image_fields
from tacforce_ros.ros.qos import sensor_qos
from tacforce_ros.sim.grasp_check_scenes import FAILURE_KINDS, CheckSceneConfig, render_frame

BASE_SEC = 1000


def frames_for(pattern: str, width: int, height: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    config = CheckSceneConfig(height=height, width=width)
    out = []
    for part in pattern.split(","):
        source, count = part.split(":")
        for _ in range(int(count)):
            if source in ("bright", "dark"):
                out.append(np.full((height, width, 3), 230 if source == "bright" else 25, np.uint8))
            elif source == "red":
                frame = np.full((height, width, 3), 25, np.uint8)
                frame[..., 0] = 230
                out.append(frame)
            elif source == "held":
                out.append(render_frame(rng, config, "test", "held").image)
            elif source == "failure":
                out.append(render_frame(rng, config, "test", str(rng.choice(FAILURE_KINDS))).image)
            else:
                raise SystemExit(f"unknown source {source!r}")
    return out


def bad_variants(good: Image) -> list[Image]:
    def variant(**changes):
        msg = Image(header=good.header, height=good.height, width=good.width, encoding=good.encoding,
                    step=good.step, data=bytes(good.data))
        for key, value in changes.items():
            setattr(msg, key, value)
        msg.header.frame_id = "bad"
        return msg
    small = encode_image_fields(np.zeros((10, 12, 3), np.uint8), "rgb8")
    return [variant(encoding="32FC1"), variant(step=good.width - 1), variant(data=bytes(good.data)[:1000]),
            variant(height=0, width=0, step=0, data=b""), variant(height=100000, width=100000, step=300000),
            variant(**small)]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("pattern")
    p.add_argument("rate", type=float)
    p.add_argument("--size", default="64x48")
    p.add_argument("--bad", action="store_true")
    p.add_argument("--encoding", default="rgb8")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--compressed", action="store_true")
    args = p.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    frames = frames_for(args.pattern, width, height, args.seed) * args.repeat
    if args.encoding == "bgr8":
        frames = [f[..., ::-1].copy() for f in frames]
    elif args.encoding == "mono8":
        frames = [f[..., :1].copy() for f in frames]
    rclpy.init()
    node = rclpy.create_node("test_grasp_frame_publisher")
    if args.compressed:
        pub = node.create_publisher(CompressedImage, "/grasp_camera/image_raw/compressed", sensor_qos(depth=5))
    else:
        pub = node.create_publisher(Image, "/grasp_camera/image_raw", sensor_qos(depth=5))
    end = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(1.0)
    good = bad = 0
    period = 1.0 / args.rate
    next_t = time.monotonic()
    for k, frame in enumerate(frames):
        if args.compressed:
            order = {"rgb8": "rgb", "bgr8": "bgr", "mono8": "gray"}[args.encoding]
            fmt, data = encode_compressed(frame, "png", order=order)
            msg = CompressedImage(format=fmt, data=data)
        else:
            msg = Image(**encode_image_fields(frame, args.encoding))
        msg.header.stamp.sec, msg.header.stamp.nanosec = BASE_SEC + k, 123
        msg.header.frame_id = "grasp_camera"
        if args.bad and k % 4 == 3 and not args.compressed:
            pub.publish(bad_variants(msg)[(k // 4) % 6])
            bad += 1
        else:
            pub.publish(msg)
            good += 1
        next_t += period
        time.sleep(max(0.0, next_t - time.monotonic()))
    time.sleep(0.5)
    print(f"sent {good} good {bad} bad", flush=True)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
