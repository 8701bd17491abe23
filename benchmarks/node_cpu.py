"""CPU use of tactile_force_node at camera rate, old ONNX Runtime session settings against the
new ones, all in one run so the rows are comparable (issue 16: ~1.1 cores at 30 Hz; target
<= 0.4 cores with latency no worse).

baseline: the node as it was when issue 16 was filed (--baseline REV, default 9daae0a) with the
     model shipped then: both taken from git into a temporary folder, run with the same venv
     and frames. Every other node row runs --model.

old: intra_op_num_threads 0 (one per core) with ORT's workers spinning between runs (its
     default), which is what every node ran with before `RuntimeOptions`; no parameter brings
     that back, so the old node is the real node started by this script with OnnxModel forced
     to those settings.
new: the workers stop spinning when a run ends (``session.force_spinning_stop``),
     ``intra_op_threads`` 1 (the tactile node's default) or 0 (one per core).

in-process rows: TactileForceEstimator over OnnxModel stepped at --rate in this process (before
    any ROS starts here); CPU = time.process_time over wall time; latency = the step time.
node rows: the node in its own process, frames published at --rate by frame_publisher.py in
    another; CPU from /proc/<pid>/stat (utime + stime, all threads) between the first and last
    answered frame; latency = publish stamp -> WrenchStamped received here.
Ratios are against the old row of the same kind. Other load on the machine shows in every row.

    python benchmarks/node_cpu.py [--seconds 20] [--rate 30] [--model models/tactile_force.onnx]
"""
from __future__ import annotations

import argparse
import gc
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NODE_MODULE = {"tactile": "tacforce_ros.nodes.tactile_force_node", "grasp": "tacforce_ros.nodes.grasp_planner_node"}
OLD_SESSION_FLAG = "--old-session-node"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def child_env(root: Path = ROOT) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_node(cmd: list[str], params: dict, log, root: Path = ROOT) -> subprocess.Popen:
    """Start a node from the source tree ``root`` with its output going to ``log`` (a file, shown
    if the node fails).
    """
    for key, value in params.items():
        cmd = cmd + ["-p", f"{key}:={value}"]
    return subprocess.Popen(cmd, env=child_env(root), stdout=log, stderr=subprocess.STDOUT, text=True, cwd=root)


def start_publisher(kind: str, rate: float, seconds: float, warmup: float) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "frame_publisher.py"), kind, "--rate", str(rate),
           "--seconds", str(seconds), "--warmup", str(warmup)]
    return subprocess.Popen(cmd, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tail(log) -> str:
    log.seek(0)
    return log.read()[-3000:]


def publisher_report(publisher: subprocess.Popen) -> tuple[int, int]:
    """(measured frames sent, stamp in ns of the first) as frame_publisher.py prints them."""
    out = publisher.communicate(timeout=30)[0]
    values = dict(line.rsplit(" ", 1) for line in out.splitlines() if line.startswith(("sent ", "measured from ")))
    if set(values) != {"sent", "measured from"}:
        raise RuntimeError(f"frame publisher failed:\n{out[-3000:]}")
    return int(values["sent"]), int(values["measured from"])


def wait_for(node, condition, timeout: float, proc: subprocess.Popen, log) -> None:
    """Spin ``node`` until ``condition()``; RuntimeError with the node's log if it exits or times out."""
    import rclpy
    end = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise RuntimeError(f"node exited with {proc.returncode}:\n{tail(log)}")
        if time.monotonic() > end:
            raise RuntimeError(f"timed out after {timeout:.0f} s; node log:\n{tail(log)}")
        rclpy.spin_once(node, timeout_sec=0.05)


def exit_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so `finally` blocks stop the child processes."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


@dataclass
class Row:
    name: str
    cores: float
    cpu_ms: float  # CPU time per answered frame
    latency_s: np.ndarray
    frames_in: int
    frames_out: int


def in_process(model: str, threads: int, spin_between_runs: bool, rate: float, seconds: float) -> Row:
    from tacforce_ros.inference.runtime import OnnxModel, RuntimeOptions
    from tacforce_ros.perception.force import TASK, TactileForceEstimator
    from tacforce_ros.sim.sensors import SimConfig, SimulatedSensors

    sensors = SimulatedSensors(SimConfig(indenters=("cone",), positions=1, shear_points=2))
    images = [sensors.image(0.3 + 2.5 * k / 30)[0][:, :, None] for k in range(30)]
    est = TactileForceEstimator(OnnxModel(model, TASK, options=RuntimeOptions(("cpu",), threads, spin_between_runs)))
    for image in images:
        est.step(image)
    count = int(seconds * rate)
    steps = np.empty(count)
    cpu0, start = time.process_time(), time.monotonic()
    for k in range(count):
        time.sleep(max(0.0, start + k / rate - time.monotonic()))
        t = time.perf_counter()
        est.step(images[k % len(images)])
        steps[k] = time.perf_counter() - t
    time.sleep(max(0.0, start + count / rate - time.monotonic()))
    cpu, wall = time.process_time() - cpu0, time.monotonic() - start
    del est
    gc.collect()  # the session and its thread pool go before the next row
    name = f"in-process threads={threads} spin between runs {'on' if spin_between_runs else 'off'}"
    return Row(name, cpu / wall, cpu / count * 1e3, steps, count, count)


def node_row(name: str, cmd: list[str], params: dict, rate: float, seconds: float, warmup: float,
             env_root: Path = ROOT) -> Row:
    import rclpy
    from geometry_msgs.msg import WrenchStamped
    from rclpy.time import Time

    from tacforce_ros.ros.qos import output_qos

    node = rclpy.create_node("bench_cpu_probe")
    got = []  # (arrival ns, stamp ns, node CPU s) of every answered measured frame
    with tempfile.TemporaryFile("w+") as log:
        proc = start_node(cmd, {"providers": "[cpu]", **params}, log, env_root)

        def on_wrench(msg):
            got.append((node.get_clock().now().nanoseconds, Time.from_msg(msg.header.stamp).nanoseconds,
                        cpu_seconds(proc.pid)))

        node.create_subscription(WrenchStamped, "/estimated_wrench", on_wrench, output_qos(1000))
        publisher = None
        try:
            wait_for(node, lambda: node.count_publishers("/estimated_wrench") > 0, 60, proc, log)
            publisher = start_publisher("tactile", rate, seconds, warmup)
            wait_for(node, lambda: publisher.poll() is not None, seconds + warmup + 60, proc, log)
            drain = time.monotonic() + 1.0
            while time.monotonic() < drain:
                rclpy.spin_once(node, timeout_sec=0.05)
            sent, measured_from = publisher_report(publisher)
        finally:
            node.destroy_node()
            if publisher:
                stop(publisher)
            stop(proc)
        got = [g for g in got if g[1] >= measured_from]  # answers to warm-up frames out
        if len(got) < 2:
            raise RuntimeError(f"{name}: {len(got)} frames answered; node log:\n{tail(log)}")
    arrival, stamp, cpu = (np.array(column, dtype=np.float64) for column in zip(*got))
    cores = (cpu[-1] - cpu[0]) / ((arrival[-1] - arrival[0]) * 1e-9)
    return Row(name, cores, (cpu[-1] - cpu[0]) / (len(got) - 1) * 1e3, (arrival - stamp) * 1e-9, sent, len(got))


def run_old_session_node(ros_args: list[str]) -> None:
    """Run the real tactile_force_node with every OnnxModel forced to the pre-RuntimeOptions session
    settings: intra_op_num_threads 0 and spinning between runs.
    """
    from tacforce_ros.inference import runtime
    from tacforce_ros.nodes.tactile_force_node import main as node_main

    init = runtime.OnnxModel.__init__

    def old_init(self, path, task, *args, options=None, **kwargs):
        init(self, path, task, *args,
             options=replace(options or runtime.RuntimeOptions(), threads=0, spin_between_runs=True), **kwargs)

    runtime.OnnxModel.__init__ = old_init
    node_main([sys.argv[0], *ros_args])


def print_table(groups: list[list[Row]], rate: float) -> None:
    print(f"\n{'config':<40} {'cores':>6} {'CPU ms/frame':>13} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'in':>5} {'out':>5} {'cores vs old':>13}")
    for rows in groups:
        old = rows[0]
        for r in rows:
            p50, p99 = np.percentile(r.latency_s * 1e3, [50, 99])
            print(f"{r.name:<40} {r.cores:6.3f} {r.cpu_ms:13.2f} {p50:8.2f} {p99:8.2f} "
                  f"{r.frames_in:5d} {r.frames_out:5d} {r.cores / old.cores:12.2f}x")
    print(f"(cores = CPU seconds per wall second at {rate:g} Hz; in-process latency is the estimator step)")


def main() -> None:
    if sys.argv[1:2] == [OLD_SESSION_FLAG]:
        run_old_session_node(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time per configuration")
    parser.add_argument("--warmup", type=float, default=2.0, help="frames published before measuring")
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--model", default=str(ROOT / "models" / "tactile_force.onnx"))
    parser.add_argument("--domain", type=int, default=77, help="ROS_DOMAIN_ID for this run")
    parser.add_argument("--baseline", default="9daae0a",
                        help="git revision of the node to compare with ('' to leave it out)")
    args = parser.parse_args()
    exit_on_sigterm()

    print(f"tactile_force_node CPU at {args.rate:g} Hz: 640x480 mono8, {args.seconds:g} s per config, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}", flush=True)
    local = [in_process(args.model, threads, spin, args.rate, args.seconds)
             for threads, spin in ((0, True), (1, False), (0, False))]

    os.environ["ROS_DOMAIN_ID"] = str(args.domain)
    from tacforce_ros.nodes.runner import use_large_image_transport
    use_large_image_transport()
    import rclpy
    from rclpy.signals import SignalHandlerOptions
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    module_cmd = [sys.executable, "-m", NODE_MODULE["tactile"], "--ros-args"]
    old_cmd = [sys.executable, str(Path(__file__).resolve()), OLD_SESSION_FLAG, "--ros-args"]
    configs = [("node old session (threads=0, spinning)", old_cmd, {}, ROOT),
               ("node intra_op_threads=1 (default)", module_cmd, {"intra_op_threads": 1}, ROOT),
               ("node intra_op_threads=0", module_cmd, {"intra_op_threads": 0}, ROOT)]
    with tempfile.TemporaryDirectory(prefix="tacforce-baseline-") as tree:
        if args.baseline:
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline, "tacforce_ros", "config",
                                      "models/tactile_force.onnx"], check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
            configs.insert(0, (f"node + model at {args.baseline} (filed)", module_cmd,
                               {"model_path": str(Path(tree) / "models" / "tactile_force.onnx")}, Path(tree)))
        try:
            nodes = [node_row(name, cmd, {"model_path": args.model, **params}, args.rate, args.seconds, args.warmup,
                              root) for name, cmd, params, root in configs]
        finally:
            rclpy.shutdown()
    print_table([local, nodes], args.rate)
    new = next(r for r in nodes if r.name.endswith("(default)"))
    new50, new99 = np.percentile(new.latency_s * 1e3, [50, 99])
    print(f"target: node default (intra_op_threads=1) {new.cores:.3f} cores "
          f"({'meets' if new.cores <= 0.4 else 'misses'} <= 0.4); load average now {os.getloadavg()[0]:.2f}")
    for old in nodes[:2 if args.baseline else 1]:
        old50, old99 = np.percentile(old.latency_s * 1e3, [50, 99])
        print(f"  latency p50 {new50:.2f} vs {old50:.2f} ms, p99 {new99:.2f} vs {old99:.2f} ms: {old.name}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the children are stopped by then
        sys.exit(130)
