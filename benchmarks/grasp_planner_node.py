"""grasp_planner_node end to end on 640x480 rgb8 frames, measured in one run on this machine:

1. ONNX Runtime dense pass per frame (GraspPlanner, the node's own code), p50/p99;
2. end-to-end latency: this process publishes a frame (stamped with the send time) and its
   CameraInfo, the node runs in another process, and the best-grasp PoseStamped comes back;
   p50/p99 and how many frames were answered, at --rate Hz;
3. the same with the overlay and raw map turned off (what those cost).

    python benchmarks/grasp_planner_node.py [--frames 100] [--rate 10]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tactile_force_node import percentiles  # noqa: E402  (benchmarks/ is this script's folder)


def scenes(count: int):
    from tacforce_ros.sim.grasp_scenes import SceneConfig, generate_scene
    rng = np.random.default_rng(3)
    return [generate_scene(SceneConfig(), rng).image for _ in range(count)]


def inference_times(model: str, images) -> np.ndarray:
    from tacforce_ros.inference.runtime import OnnxModel
    from tacforce_ros.perception.grasp_map import GraspPlanner
    planner = GraspPlanner(OnnxModel(model, "grasp_map", providers=["cpu"]))
    planner.grasp_map(images[0], "rgb")
    times = []
    for image in images:
        t = time.perf_counter()
        planner.grasp_map(image, "rgb")
        times.append(time.perf_counter() - t)
    return np.array(times)


def end_to_end(model: str, images, rate: float, *params: str) -> tuple[np.ndarray, int]:
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from rclpy.time import Time
    from sensor_msgs.msg import CameraInfo, Image

    from tacforce_ros.perception.image import encode_image_fields
    from tacforce_ros.ros.qos import output_qos, sensor_qos
    from tacforce_ros.sim.grasp_camera import camera_matrix
    from tacforce_ros.sim.grasp_scenes import SceneConfig

    cmd = [sys.executable, "-m", "tacforce_ros.nodes.grasp_planner_node", "--ros-args", "-p",
           f"model_path:={model}", "-p", "providers:=[cpu]", "-p", "min_probability:=0.0", "-p", "depth_topic:=''"]
    for p in params:
        cmd += ["-p", p]
    proc = subprocess.Popen(cmd, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    node = rclpy.create_node("bench_probe")
    latencies = []

    def on_pose(msg):
        latencies.append((node.get_clock().now().nanoseconds - Time.from_msg(msg.header.stamp).nanoseconds) * 1e-9)

    node.create_subscription(PoseStamped, "/grasp_planner_node/best_pose", on_pose, output_qos(1000))
    pub = node.create_publisher(Image, "/camera/color/image_raw", sensor_qos(depth=1))
    info_pub = node.create_publisher(CameraInfo, "/camera/color/camera_info", sensor_qos(depth=1))
    info = CameraInfo(height=480, width=640, k=camera_matrix(SceneConfig(), 0.6))
    try:
        end = time.monotonic() + 60
        while (pub.get_subscription_count() == 0 or node.count_publishers("/grasp_planner_node/best_pose") == 0) \
                and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
        messages = [Image(**encode_image_fields(im, "rgb8")) for im in images]
        for k in range(10):  # settle discovery and warm the node (CameraInfo first)
            info_pub.publish(info)
            msg = messages[k % len(messages)]
            msg.header.stamp = node.get_clock().now().to_msg()
            pub.publish(msg)
            t = time.monotonic() + 0.2
            while time.monotonic() < t:
                rclpy.spin_once(node, timeout_sec=0.02)
        latencies.clear()
        start = time.monotonic()
        for sent, msg in enumerate(messages, 1):
            now = node.get_clock().now().to_msg()
            info.header.stamp = msg.header.stamp = now
            info_pub.publish(info)
            pub.publish(msg)
            deadline = start + sent / rate
            while time.monotonic() < deadline:
                rclpy.spin_once(node, timeout_sec=max(0.0, deadline - time.monotonic()))
        drain = time.monotonic() + 1.0
        while time.monotonic() < drain:
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        node.destroy_node()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return np.array(latencies), len(messages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--model", default=str(ROOT / "models" / "grasp_map_synthetic.onnx"))
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", "94")
    from tacforce_ros.nodes.runner import use_large_image_transport
    use_large_image_transport()
    import rclpy
    rclpy.init()
    pool = scenes(20)
    images = (pool * (args.frames // len(pool) + 1))[: args.frames]
    print(f"grasp_planner_node benchmark: 640x480 rgb8, {args.frames} frames at {args.rate:g} Hz, model {args.model}")
    print(f"1. ORT dense pass per frame       {percentiles(inference_times(args.model, pool))}")
    e2e, sent = end_to_end(args.model, images, args.rate)
    print(f"2. end-to-end image -> best pose  {percentiles(e2e)}  ({len(e2e)}/{sent} frames answered)")
    bare, sent = end_to_end(args.model, images, args.rate, "publish_overlay:=false", "publish_map:=false")
    print(f"3. without overlay and map        {percentiles(bare)}  ({len(bare)}/{sent} frames answered)")
    rclpy.shutdown()


if __name__ == "__main__":
    main()
