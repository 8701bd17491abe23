"""tactile_force_node on 640x480 mono8 frames, all measured in one run on this machine:

1. raw ONNX Runtime inference per frame (OnnxModel, the node's own wrapper);
2. end-to-end latency publish -> receive across processes (this process publishes and
   subscribes, the node runs in another), p50/p99, at 30 Hz;
3. the transport floor: the same through a node that only copies the stamp;
4. throughput when flooded (publish as fast as possible, count outputs per second);
5. node overhead = end-to-end - inference - floor (p50), target <= 2 ms;
6. ONNX Runtime vs PyTorch eager at batch 1 for the shipped model (needs torch and the
   checkpoint next to the model).

    python benchmarks/tactile_force_node.py [--frames 300] [--model models/tactile_force.onnx]
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


def percentiles(values_s) -> str:
    p50, p99 = np.percentile(np.asarray(values_s) * 1e3, [50, 99])
    return f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"


def frames(count: int) -> list[np.ndarray]:
    from tacforce_ros.sim.sensors import SimConfig, SimulatedSensors
    sensors = SimulatedSensors(SimConfig(indenters=("cone",), positions=1, shear_points=2))
    return [sensors.image(0.3 + 2.5 * k / count)[0] for k in range(count)]


def inference_times(model_path: str, images: list[np.ndarray]) -> np.ndarray:
    from tacforce_ros.inference.runtime import OnnxModel
    from tacforce_ros.perception.force import TactileForceEstimator
    est = TactileForceEstimator(OnnxModel(model_path, "tactile_force", providers=["cpu"]))
    times = []
    for image in images:
        t = time.perf_counter()
        est.step(image[:, :, None])
        times.append(time.perf_counter() - t)
    return np.array(times)


def end_to_end(node_cmd: list[str], images, rate: float | None, seconds: float = 0.0) -> tuple[np.ndarray, float]:
    """Latencies (s) of every output, and outputs per second; rate None floods."""
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

    node.create_subscription(WrenchStamped, "/estimated_wrench", on_wrench, output_qos(1000))
    pub = node.create_publisher(Image, "/tactile/image_raw", sensor_qos(depth=1))
    try:
        end = time.monotonic() + 60
        while (pub.get_subscription_count() == 0 or node.count_publishers("/estimated_wrench") == 0) \
                and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
        for _ in range(20):  # settle discovery and warm the node
            rclpy.spin_once(node, timeout_sec=0.05)
        messages = [Image(**encode_image_fields(im, "mono8")) for im in images]
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
                if sent >= len(messages):
                    break
            else:
                rclpy.spin_once(node, timeout_sec=0)
                if time.monotonic() - start > seconds:
                    break
        flood_span = time.monotonic() - start
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
    return np.array(latencies), len(received) / flood_span, sent


def torch_vs_ort(model_path: Path, images) -> str:
    checkpoint = model_path.with_suffix(".pt")
    try:
        import torch
    except ImportError:
        return "skipped (torch not installed)"
    if not checkpoint.is_file():
        return f"skipped ({checkpoint} not found)"
    from tacforce_training.tasks.tactile_force.export import load_streaming_module
    module = load_streaming_module(checkpoint)
    torch.set_num_threads(os.cpu_count() or 1)
    h = module.initial_state()
    times = []
    with torch.inference_mode():
        for image in images:
            x = torch.from_numpy(image[None, :, :, None].copy())
            t = time.perf_counter()
            _, h = module(x, h)
            times.append(time.perf_counter() - t)
    return np.array(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--flood-seconds", type=float, default=5.0)
    parser.add_argument("--model", default=str(ROOT / "models" / "tactile_force.onnx"))
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", "93")
    from tacforce_ros.nodes.runner import use_large_image_transport
    use_large_image_transport()
    import rclpy
    rclpy.init()

    images = frames(60)
    print(f"tactile_force_node benchmark: 640x480 mono8, {args.frames} frames at 30 Hz, model {args.model}")
    infer = inference_times(args.model, images * (args.frames // len(images) + 1))[: args.frames]
    print(f"1. ORT inference per frame        {percentiles(infer)}")
    node_cmd = [sys.executable, "-m", "tacforce_ros.nodes.tactile_force_node", "--ros-args",
                "-p", f"model_path:={args.model}", "-p", "providers:=[cpu]"]
    echo_cmd = [sys.executable, str(ROOT / "benchmarks" / "echo_stamp_node.py")]
    seq = (images * (args.frames // len(images) + 1))[: args.frames]
    e2e, _, sent = end_to_end(node_cmd, seq, 30.0)
    print(f"2. end-to-end publish->receive    {percentiles(e2e)}  ({len(e2e)}/{sent} frames answered)")
    floor, _, sent_f = end_to_end(echo_cmd, seq, 30.0)
    print(f"3. transport floor (stamp echo)   {percentiles(floor)}  ({len(floor)}/{sent_f} frames answered)")
    _, flood_rate, flood_sent = end_to_end(node_cmd, images, None, args.flood_seconds)
    print(f"4. flooded: {flood_sent / args.flood_seconds:6.1f} frames/s in, {flood_rate:6.1f} wrenches/s out "
          f"(newest frame only; the rest are skipped by the depth-1 queue)")
    overhead = np.median(e2e) - np.median(infer) - np.median(floor)
    print(f"5. node overhead (p50)            {overhead * 1e3:6.2f} ms  (target <= 2 ms)")
    torch_times = torch_vs_ort(Path(args.model), seq[:100])
    if isinstance(torch_times, str):
        print(f"6. ORT vs PyTorch eager           {torch_times}")
    else:
        ratio = np.median(torch_times) / np.median(infer)
        print(f"6. PyTorch eager batch 1          {percentiles(torch_times)}; ORT is {ratio:.2f}x faster (p50)")
    rclpy.shutdown()


if __name__ == "__main__":
    main()
