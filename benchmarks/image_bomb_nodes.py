"""Refusing a JPEG decompression bomb in each image node: time and memory of the node's own
compressed-image callback (what the executor calls), not only of the decoder.

    python benchmarks/image_bomb_nodes.py [--runs 50]

Each node runs in a fresh subprocess with `image_transport: compressed`. After start-up and one
good frame (so model and buffers are warm), the ~140 KB bomb declaring 30000x30000 from
`image_bomb.py` is handed to the subscription's callback ``--runs`` times. Printed per node:
p50/p99 per refusal, the extra peak RSS (ru_maxrss high-water mark) over all refusals, and
whether every one was counted as a rejected frame on the node's diagnostics.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

NODES = {  # node module: (class, a good frame's size)
    "tactile_force_node": ("TactileForceNode", (480, 640)),
    "grasp_planner_node": ("GraspPlannerNode", (480, 640)),
    "grasp_success_node": ("GraspSuccessNode", (120, 160)),
    "visual_force_node": ("VisualForceNode", (128, 128)),
}


def measure(node_name: str, runs: int) -> dict:
    """In this (fresh) process: start the node, warm it, feed it the bomb ``runs`` times."""
    import importlib

    import rclpy
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CompressedImage

    from image_bomb import bomb, frame, jpeg  # this folder is on sys.path

    class_name, (height, width) = NODES[node_name]
    module = importlib.import_module(f"tacforce_ros.nodes.{node_name}")
    rclpy.init(args=["--ros-args", "--log-level", "fatal"])
    node = getattr(module, class_name)(parameter_overrides=[Parameter("image_transport", value="compressed")])
    callback = next(s.callback for s in node.subscriptions if s.msg_type is CompressedImage)

    def message(data: bytes, fmt: str, sec: int) -> CompressedImage:
        msg = CompressedImage(format=fmt, data=data)
        msg.header.stamp.sec = sec
        return msg

    callback(message(jpeg(frame(height, width)), "rgb8; jpeg compressed bgr8", 1))
    bad = message(bomb(), "rgb8; jpeg compressed bgr8", 2)
    errors_before = sum(node.stats.errors.values())
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        callback(bad)
        times.append(time.perf_counter() - start)
    result = {"p50_ms": float(np.percentile(times, 50) * 1e3), "p99_ms": float(np.percentile(times, 99) * 1e3),
              "extra_rss_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024,
              "counted": sum(node.stats.errors.values()) - errors_before}
    node.destroy_node()
    rclpy.shutdown()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--node", choices=NODES, help=argparse.SUPPRESS)  # the subprocess side
    args = parser.parse_args()
    if args.node:
        print(json.dumps(measure(args.node, args.runs)))
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""), ROS_DOMAIN_ID="97")
    print(f"{'node':22s} {'p50 ms':>8s} {'p99 ms':>8s} {'extra peak RSS MB':>18s} {'counted':>8s}")
    for name in NODES:
        out = subprocess.run([sys.executable, __file__, "--node", name, "--runs", str(args.runs)], env=env,
                             capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"{name:22s} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {r['extra_rss_mb']:18.1f} "
              f"{r['counted']:>4d}/{args.runs}")


if __name__ == "__main__":
    main()
