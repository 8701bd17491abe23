"""Memory soak for a model node: runs tactile_force_node (or grasp_planner_node) under a steady
stream of 640x480 frames for --duration seconds and samples its resident memory, so a leak shows
as a slope within minutes instead of as an out-of-memory kill after hours.

The node runs in its own process, frames come from frame_publisher.py in another, and this
process counts the node's answers (/estimated_wrench, or grasp_planner_node/candidates, which
is published for every planned frame). Every --interval seconds it samples the node's RSS
(/proc/<pid>/status) and CPU; it prints a row now and then, and at the end RSS start/end/max, the
RSS slope after --warmup seconds (least squares, MB/min), frames in/out and the share answered.
It stops by itself when the publisher is done; Ctrl-C or SIGTERM stop the children too.

    python benchmarks/soak.py [--node tactile|grasp] [--duration 600] [--rate 30] [--interval 5]
                              [--param intra_op_threads:=0 ...]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from geometry_msgs.msg import PoseArray, WrenchStamped

sys.path.insert(0, str(Path(__file__).resolve().parent))

from node_cpu import (NODE_MODULE, ROOT, cpu_seconds, exit_on_sigterm, rss_mb, sent_count,  # noqa: E402
                      start_node, start_publisher, stop, wait_for)

OUTPUTS = {"tactile": (WrenchStamped, "/estimated_wrench"), "grasp": (PoseArray, "/grasp_planner_node/candidates")}
MODELS = {"tactile": "tactile_force.onnx", "grasp": "grasp_map_synthetic.onnx"}
PRINTED_ROWS = 12


def soak(args) -> tuple[list[tuple[float, float, float, int]], int, int]:
    """Return the samples (t s, RSS MB, node cores since the previous sample (nan for the first), answers so
    far), frames sent, frames answered.
    """
    import rclpy

    from tacforce_ros.ros.qos import output_qos

    msg_type, topic = OUTPUTS[args.node]
    answered = 0

    def on_answer(_msg):
        nonlocal answered
        answered += 1

    node = rclpy.create_node("bench_soak_probe")
    node.create_subscription(msg_type, topic, on_answer, output_qos(100))
    params = {"model_path": str(ROOT / "models" / MODELS[args.node]), "providers": "[cpu]"}
    params.update(p.split(":=", 1) for p in args.param)
    cmd = [sys.executable, "-m", NODE_MODULE[args.node], "--ros-args"]
    samples = []
    every = max(1, round(args.duration / args.interval / PRINTED_ROWS))
    with tempfile.TemporaryFile("w+") as log:
        proc = start_node(cmd, params, log)
        publisher = None
        try:
            wait_for(node, lambda: node.count_publishers(topic) > 0, 120, proc, log)
            publisher = start_publisher(args.node, args.rate, args.duration, 0.0)
            start = time.monotonic()
            last_t, last_cpu = start, cpu_seconds(proc.pid)
            samples.append((0.0, rss_mb(proc.pid), float("nan"), 0))
            print(f"{'t s':>6} {'RSS MB':>8} {'cores':>6} {'answered':>9}", flush=True)
            print("{:6.0f} {:8.1f} {:6.2f} {:9d}".format(*samples[-1]), flush=True)
            while publisher.poll() is None:
                wait_for(node, lambda: time.monotonic() >= start + len(samples) * args.interval
                         or publisher.poll() is not None, args.duration + 120, proc, log)
                now, cpu = time.monotonic(), cpu_seconds(proc.pid)
                samples.append((now - start, rss_mb(proc.pid), (cpu - last_cpu) / (now - last_t), answered))
                last_t, last_cpu = now, cpu
                if len(samples) % every == 0 or publisher.poll() is not None:
                    print("{:6.0f} {:8.1f} {:6.2f} {:9d}".format(*samples[-1]), flush=True)
            wait_for(node, lambda: time.monotonic() > last_t + 1.0, 10, proc, log)  # late answers
            sent = sent_count(publisher)
        finally:
            node.destroy_node()
            if publisher:
                stop(publisher)
            stop(proc)
    return samples, sent, answered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--node", choices=sorted(OUTPUTS), default="tactile")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of frames")
    parser.add_argument("--rate", type=float, default=30.0, help="frames per second")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds left out of the RSS slope")
    parser.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="extra node parameter (repeatable)")
    parser.add_argument("--domain", type=int, default=78, help="ROS_DOMAIN_ID for this run")
    args = parser.parse_args()
    exit_on_sigterm()
    os.environ["ROS_DOMAIN_ID"] = str(args.domain)
    from tacforce_ros.nodes.runner import use_large_image_transport
    use_large_image_transport()
    import rclpy
    from rclpy.signals import SignalHandlerOptions
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    print(f"soak: {NODE_MODULE[args.node]} at {args.rate:g} Hz for {args.duration:g} s, RSS every "
          f"{args.interval:g} s, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}", flush=True)
    try:
        samples, sent, answered = soak(args)
    finally:
        rclpy.shutdown()

    t, rss = np.array([s[0] for s in samples]), np.array([s[1] for s in samples])
    late = t >= args.warmup
    slope = (f"{np.polyfit(t[late], rss[late], 1)[0] * 60:+.2f} MB/min over {t[late][-1] - t[late][0]:.0f} s"
             if late.sum() >= 2 else f"n/a (fewer than 2 samples after {args.warmup:g} s)")
    print(f"RSS start {rss[0]:.1f} MB, end {rss[-1]:.1f} MB, max {rss.max():.1f} MB; "
          f"slope after {args.warmup:g} s: {slope}")
    print(f"frames in {sent}, out {answered}, answered {100 * answered / max(sent, 1):.1f}%; "
          f"node CPU after {args.warmup:g} s {np.mean([s[2] for s in samples[1:] if s[0] >= args.warmup]):.2f} "
          f"cores on average; "
          f"load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the children are stopped by then
        sys.exit(130)
