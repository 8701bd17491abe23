"""visual_force_node on 128x128 rgb8 camera frames (synthetic pressed sponge), on this machine:

1. raw ONNX Runtime inference per window of T frames (OnnxModel, the node's own wrapper);
2. end-to-end latency publish -> receive across processes (this process publishes and
   subscribes, the node runs in another), p50/p99, at 30 Hz input; output rate (throughput)
   and how many frames got a wrench (the first T-1 fill the buffer);
3. throughput when flooded (publish as fast as possible, count outputs per second; frames
   the node cannot take are skipped by the depth-1 queue, which shows as stamp gaps and
   buffer restarts).

    python benchmarks/visual_force_node.py [--frames 600] [--model models/visual_force.onnx]
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
sys.path.insert(0, str(ROOT / "benchmarks"))

from tactile_force_node import percentiles  # noqa: E402

TOPIC = "/visual_force/estimated_wrench"


def frames(count: int) -> np.ndarray:
    from tacforce_ros.sim.visual_force_scenes import make_episode
    return make_episode("sponge", 10, 550, np.random.default_rng(3), frames=count).images


def inference_times(model_path: str, images: np.ndarray, runs: int) -> np.ndarray:
    from tacforce_ros.inference.runtime import OnnxModel
    from tacforce_ros.perception.visual_force import VisualForceEstimator
    est = VisualForceEstimator(OnnxModel(model_path, "visual_force", providers=["cpu"]))
    t_frames = est.frames
    times = []
    for k in range(runs):
        start = k % (len(images) - t_frames)
        window = images[start:start + t_frames]
        t = time.perf_counter()
        est.estimate(window)
        times.append(time.perf_counter() - t)
    return np.array(times)


def end_to_end(node_cmd: list[str], images, count: int, rate: float | None, seconds: float = 0.0):
    """Latencies (s) of every output, outputs per second, frames sent; rate None floods."""
    import rclpy
    from geometry_msgs.msg import WrenchStamped
    from rclpy.time import Time
    from sensor_msgs.msg import Image

    from tacforce_ros.perception.image import encode_image_fields
    from tacforce_ros.ros.qos import output_qos, sensor_qos

    proc = subprocess.Popen(node_cmd, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    node = rclpy.create_node("bench_probe")
    latencies, received = [], []

    def on_wrench(msg):
        now = node.get_clock().now().nanoseconds
        latencies.append((now - Time.from_msg(msg.header.stamp).nanoseconds) * 1e-9)
        received.append(now)

    node.create_subscription(WrenchStamped, TOPIC, on_wrench, output_qos(1000))
    pub = node.create_publisher(Image, "/camera/image_raw", sensor_qos(depth=1))
    try:
        end = time.monotonic() + 60
        while (pub.get_subscription_count() == 0 or node.count_publishers(TOPIC) == 0) and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
        for _ in range(20):
            rclpy.spin_once(node, timeout_sec=0.05)
        messages = [Image(**encode_image_fields(im, "rgb8")) for im in images]
        latencies.clear()
        received.clear()
        start = time.monotonic()
        sent = 0
        while True:
            msg = messages[sent % len(messages)]
            msg.header.stamp = node.get_clock().now().to_msg()
            pub.publish(msg)
            sent += 1
            if rate:
                deadline = start + sent / rate
                while time.monotonic() < deadline:
                    rclpy.spin_once(node, timeout_sec=max(0.0, deadline - time.monotonic()))
                if sent >= count:
                    break
            else:
                rclpy.spin_once(node, timeout_sec=0)
                if time.monotonic() - start > seconds:
                    break
        span = time.monotonic() - start
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
    # throughput: outputs per second between the first and the last output (steady state)
    steady = (len(received) - 1) / ((received[-1] - received[0]) * 1e-9) if len(received) > 1 else 0.0
    return np.array(latencies), steady if rate else len(received) / span, sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=600, help="frames sent at 30 Hz")
    parser.add_argument("--flood-seconds", type=float, default=5.0)
    parser.add_argument("--model", default=str(ROOT / "models" / "visual_force.onnx"))
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", "217")
    from tacforce_ros.nodes.runner import use_large_image_transport
    use_large_image_transport()
    import rclpy
    rclpy.init()

    images = frames(60)
    print(f"visual_force_node benchmark: 128x128 rgb8, {args.frames} frames at 30 Hz, model {args.model}, "
          f"{os.cpu_count()} CPU(s)")
    infer = inference_times(args.model, images, 200)
    print(f"1. ORT inference per window        {percentiles(infer)}")
    node_cmd = [sys.executable, "-m", "tacforce_ros.nodes.visual_force_node", "--ros-args",
                "-p", f"model_path:={args.model}", "-p", "providers:=[cpu]"]
    e2e, out_rate, sent = end_to_end(node_cmd, images, args.frames, 30.0)
    print(f"2. end-to-end publish->receive     {percentiles(e2e)}; {out_rate:5.1f} wrenches/s out (steady) at 30 Hz in "
          f"({len(e2e)}/{sent} frames answered; the first T-1 fill the buffer)")
    _, flood_rate, flood_sent = end_to_end(node_cmd, images, 0, None, args.flood_seconds)
    print(f"3. flooded: {flood_sent / args.flood_seconds:6.1f} frames/s in, {flood_rate:6.1f} wrenches/s out "
          f"(newest frame only; skipped frames show as stamp gaps)")
    rclpy.shutdown()


if __name__ == "__main__":
    main()
