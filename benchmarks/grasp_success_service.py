"""grasp_success_node's Trigger service (~/check) under load, measured on this machine:

  1. per-frame inference of the shipped model (OnnxModel, the node's wrapper), p50/p99;
  2. the service's response time as a client sees it (call -> response, across processes)
     while a camera process streams after-grasp frames at --rate Hz into the node (a third
     process), so calls land while the node is busy with frames; p50/p99/max;
  3. the same with no camera (the service alone).

    python benchmarks/grasp_success_service.py [--calls 300] [--rate 30] [--model models/grasp_success.onnx]

Target: p99 < 100 ms. Runs on its own ROS_DOMAIN_ID (96 unless set).
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
    v = np.asarray(values_s) * 1e3
    p50, p99 = np.percentile(v, [50, 99])
    return f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  max {v.max():6.2f} ms  (n={len(v)})"


def inference_times(model_path: str, count: int = 200) -> np.ndarray:
    from tacforce_ros.inference.runtime import OnnxModel
    from tacforce_ros.perception.grasp_success import GraspSuccessClassifier
    from tacforce_ros.sim.grasp_check_scenes import CheckSceneConfig, generate
    clf = GraspSuccessClassifier(OnnxModel(model_path, "grasp_success", providers=["cpu"]))
    spec = clf.model.metadata.input
    config = CheckSceneConfig(height=spec.height, width=spec.width)
    images, _, _, _ = generate(count, seed=0, split="test", config=config)
    times = []
    for image in images:
        t = time.perf_counter()
        clf.probability(image)
        times.append(time.perf_counter() - t)
    return np.array(times)


def service_times(node, calls: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    import rclpy
    from std_srvs.srv import Trigger
    client = node.create_client(Trigger, "/grasp_success_node/check")
    if not client.wait_for_service(timeout_sec=30):
        raise SystemExit("service /grasp_success_node/check did not appear")
    times, messages = [], []
    for _ in range(calls):
        time.sleep(rng.uniform(0.0, 0.05))       # land at random phases of the frame stream
        t = time.perf_counter()
        future = client.call_async(Trigger.Request())
        while not future.done():
            rclpy.spin_once(node, timeout_sec=0.01)
        times.append(time.perf_counter() - t)
        messages.append(future.result().message)
    node.destroy_client(client)
    return np.array(times), messages


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(ROOT / "models" / "grasp_success.onnx"))
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--rate", type=float, default=30.0, help="camera frame rate (Hz)")
    args = p.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", "96")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))

    inf = inference_times(args.model)
    print(f"inference per frame (OnnxModel, CPU):   {percentiles(inf)}")

    import rclpy
    from tacforce_ros.perception.image import encode_image_fields  # noqa: F401  (fail early without ROS)
    from tacforce_ros.nodes.runner import use_large_image_transport
    use_large_image_transport()
    env.update({k: os.environ[k] for k in ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")
                if k in os.environ})
    rclpy.init()
    node = rclpy.create_node("grasp_success_bench")
    server = subprocess.Popen([sys.executable, "-m", "tacforce_ros.nodes.grasp_success_node", "--ros-args",
                               "-p", f"model_path:={args.model}", "-p", "max_age:=2.0"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    camera = None
    rng = np.random.default_rng(0)
    try:
        idle, _ = service_times(node, max(20, args.calls // 5), rng)
        frames_needed = int((args.calls * 0.04 + 10) * args.rate)
        spec_size = "x".join(str(v) for v in _model_size(args.model))
        camera = subprocess.Popen([sys.executable, str(ROOT / "test" / "publish_grasp_frames.py"),
                                   "held:30,failure:30", str(args.rate), "--size", spec_size,
                                   "--repeat", str(frames_needed // 60 + 1)],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from std_msgs.msg import Float32
        from tacforce_ros.ros.qos import output_qos
        got = []
        node.create_subscription(Float32, "/grasp_success/probability", got.append, output_qos(100))
        end = time.monotonic() + 60
        while len(got) < 10 and time.monotonic() < end:       # the stream is flowing
            rclpy.spin_once(node, timeout_sec=0.05)
        if len(got) < 10:
            raise SystemExit("no probabilities from the node; is the camera publishing?")
        frames_before = len(got)
        t0 = time.monotonic()
        loaded, messages = service_times(node, args.calls, rng)
        rate = (len(got) - frames_before) / (time.monotonic() - t0)
    finally:
        for proc in (camera, server):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(10)
        node.destroy_node()
        rclpy.shutdown()
    print(f"service, camera at {args.rate:g} Hz ({rate:.1f} probabilities/s received): {percentiles(loaded)}")
    print(f"service, no camera:                     {percentiles(idle)}")
    answered = sum(not m.startswith("unknown") for m in messages)
    print(f"{answered}/{len(messages)} answers decided (held / not held); e.g. {messages[len(messages) // 2]!r}")
    p99 = float(np.percentile(loaded, 99) * 1e3)
    print(f"target p99 < 100 ms under load: {'met' if p99 < 100 else 'NOT met'} ({p99:.2f} ms)")
    return 0


def _model_size(path: str) -> tuple[int, int]:
    from tacforce_ros.inference.runtime import OnnxModel
    spec = OnnxModel(path, "grasp_success", providers=["cpu"], warmup_runs=0).metadata.input
    return spec.width, spec.height


if __name__ == "__main__":
    raise SystemExit(main())
