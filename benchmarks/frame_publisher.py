"""Child process for node_cpu.py and soak.py: publishes simulated 640x480 camera frames at a
steady rate, each stamped with its send time (so a subscriber can measure latency from the
stamp its answer carries), from a process of its own (so the publisher's CPU is not counted
with the measuring process's).

    python benchmarks/frame_publisher.py tactile|grasp --rate 30 --seconds 20 [--warmup 2]

tactile: mono8 on /tactile/image_raw. grasp: rgb8 on /camera/color/image_raw with its CameraInfo.
Frames of the first --warmup seconds have frame_id 'warmup', the rest 'measure'; at the end it
prints how many were measured and the stamp of the first, so a subscriber can drop the answers
to warm-up frames by stamp. The rate is kept on an absolute
schedule; when the process falls more than a period behind it skips ahead instead of bursting.
Prints 'sent N' (frames after the warm-up) when done.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import rclpy
from sensor_msgs.msg import CameraInfo, Image

from tacforce_ros.nodes.runner import use_large_image_transport
from tacforce_ros.perception.image import encode_image_fields
from tacforce_ros.ros.qos import sensor_qos

TOPICS = {"tactile": "/tactile/image_raw", "grasp": "/camera/color/image_raw"}


def images(kind: str, count: int) -> list[Image]:
    if kind == "tactile":
        from tacforce_ros.sim.sensors import SimConfig, SimulatedSensors
        sensors = SimulatedSensors(SimConfig(indenters=("cone",), positions=1, shear_points=2))
        return [Image(**encode_image_fields(sensors.image(0.3 + 2.5 * k / count)[0], "mono8"))
                for k in range(count)]
    from tacforce_ros.sim.grasp_scenes import SceneConfig, generate_scene
    rng = np.random.default_rng(3)
    return [Image(**encode_image_fields(generate_scene(SceneConfig(), rng).image, "rgb8")) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=sorted(TOPICS))
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=20.0, help="publishing time after the warm-up")
    parser.add_argument("--warmup", type=float, default=0.0)
    args = parser.parse_args()
    messages = images(args.kind, 30 if args.kind == "tactile" else 10)
    use_large_image_transport()
    rclpy.init()
    node = rclpy.create_node("bench_frame_publisher")
    pub = node.create_publisher(Image, TOPICS[args.kind], sensor_qos(depth=1))
    info_pub = node.create_publisher(CameraInfo, "/camera/color/camera_info", sensor_qos(depth=1))
    info = CameraInfo(height=480, width=640)
    if args.kind == "grasp":
        from tacforce_ros.sim.grasp_camera import camera_matrix
        from tacforce_ros.sim.grasp_scenes import SceneConfig
        info.k = camera_matrix(SceneConfig(), 0.6)
    end = time.monotonic() + 60
    while pub.get_subscription_count() == 0 and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    period = 1.0 / args.rate
    start = time.monotonic()
    measure_from, stop_at = start + args.warmup, start + args.warmup + args.seconds
    next_t, k, sent, first_measured_ns = start, 0, 0, None
    while next_t < stop_at:
        msg = messages[k % len(messages)]
        now_ros = node.get_clock().now()
        msg.header.stamp = info.header.stamp = now_ros.to_msg()
        msg.header.frame_id = "measure" if next_t >= measure_from else "warmup"
        if first_measured_ns is None and msg.header.frame_id == "measure":
            first_measured_ns = now_ros.nanoseconds
        if args.kind == "grasp":
            info_pub.publish(info)
        pub.publish(msg)
        sent += msg.header.frame_id == "measure"
        k += 1
        next_t += period
        now = time.monotonic()
        if now - next_t > period:
            next_t += (now - next_t) // period * period
        time.sleep(max(0.0, next_t - now))
    print(f"sent {sent}", flush=True)
    print(f"measured from {first_measured_ns}", flush=True)  # the stamp of the first measured frame
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
