"""`tacforce demo`: the simulated sensors and the shipped model through the real nodes.

Starts sim_sensors_node and tactile_force_node as separate processes (as `ros2 launch` would),
listens to /estimated_wrench and the simulated Nano17 on /ft_sensor/wrench, prints estimated
vs. true force during a scripted indentation and writes a CSV and a plot.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .bags import interpolate_wrench, parse_episode
from .paths import resolve

AXES = ("x", "y", "z")


def _start(module: str, params: list[str], config: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", module, "--ros-args", "--params-file", str(resolve("config", config))]
    for p in params:
        cmd += ["-p", p]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def run_demo(args: argparse.Namespace) -> int:
    import rclpy
    from geometry_msgs.msg import WrenchStamped
    from std_msgs.msg import String

    from .nodes.runner import use_large_image_transport
    from .ros.qos import output_qos, sensor_qos

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    use_large_image_transport()
    sim_params = [f"indenters:=[{args.indenter}]", "positions:=2", "depths:=[0.0008, 0.0014]",
                  "shear_points:=4", "loop:=false", "seed:=7", "start_delay:=3.0"]
    procs = [
        _start("tacforce_ros.nodes.tactile_force_node", [f"model_path:={args.model}"], "perception.yaml"),
    ]
    estimated, true, marks = [], [], []
    rclpy.init()
    node = rclpy.create_node("tacforce_demo")
    node.create_subscription(WrenchStamped, "/estimated_wrench", lambda m: estimated.append(_row(m)), output_qos(100))
    node.create_subscription(WrenchStamped, "/ft_sensor/wrench", lambda m: true.append(_row(m)), sensor_qos(2000))
    node.create_subscription(String, "/tactile/episode", lambda m: marks.append(parse_episode(m.data)), output_qos(100))
    try:
        if not _wait(node, lambda: node.count_publishers("/estimated_wrench") > 0, procs, 60):
            return _fail(procs, "tactile_force_node did not start")
        procs.append(_start("tacforce_ros.nodes.sim_sensors_node", sim_params, "sim.yaml"))
        print(f"demo: indenter {args.indenter!r} (held out from training), model {args.model}")
        print(f"{'t [s]':>6} {'phase':>10} | {'true Fx':>8} {'Fy':>7} {'Fz':>7} | {'est Fx':>8} {'Fy':>7} {'Fz':>7}  [N]")
        start, shown = time.monotonic(), 0
        while time.monotonic() - start < args.seconds + 30:
            rclpy.spin_once(node, timeout_sec=0.05)
            if any(m.phase == "done" for m in marks) or time.monotonic() - start > args.seconds + 25:
                break
            if any(p.poll() is not None for p in procs):
                return _fail(procs, "a node stopped")
            while shown < len(estimated) and len(true) > 0:
                if shown % 15 == 0:
                    _print_row(estimated[shown], true, marks)
                shown += 1
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
        node.destroy_node()
        rclpy.shutdown()
    return _report(out, np.array(estimated), np.array(true))


def _row(msg) -> tuple[int, float, float, float]:
    f = msg.wrench.force
    return (msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec, f.x, f.y, f.z)


def _wait(node, condition, procs, timeout: float) -> bool:
    import rclpy
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        if any(p.poll() is not None for p in procs):
            return False
        rclpy.spin_once(node, timeout_sec=0.1)
    return False


def _fail(procs, why: str) -> int:
    for p in procs:
        if p.poll() is None:
            p.terminate()
        err = p.communicate(timeout=10)[1]
        if err:
            print(err.strip()[-2000:], file=sys.stderr)
    print(f"demo failed: {why}", file=sys.stderr)
    return 1


def _true_at(true: list, stamp_ns: int):
    arr = np.asarray(true[-4000:])
    return interpolate_wrench(arr[:, 0].astype(np.int64), arr[:, 1:], stamp_ns, 20_000_000)


def _print_row(est, true, marks) -> None:
    ref = _true_at(true, est[0])
    if ref is None:
        return
    phase = next((m.phase for m in reversed(marks) if m.stamp_ns <= est[0]), "")
    t = (est[0] - true[0][0]) * 1e-9
    print(f"{t:6.2f} {phase:>10} | {ref[0]:8.3f} {ref[1]:7.3f} {ref[2]:7.3f} | "
          f"{est[1]:8.3f} {est[2]:7.3f} {est[3]:7.3f}", flush=True)


def _report(out: Path, estimated: np.ndarray, true: np.ndarray) -> int:
    if len(estimated) == 0 or len(true) == 0:
        print("demo failed: no estimates received", file=sys.stderr)
        return 1
    stamps = true[:, 0].astype(np.int64)
    order = np.argsort(stamps)
    stamps, values = stamps[order], true[order, 1:]
    pairs = [(e, interpolate_wrench(stamps, values, int(e[0]), 20_000_000)) for e in estimated]
    pairs = [(e, r) for e, r in pairs if r is not None]
    est = np.array([e[1:] for e, _ in pairs])
    ref = np.array([r for _, r in pairs])
    t = (np.array([e[0] for e, _ in pairs]) - stamps[0]) * 1e-9
    err = est - ref
    print(f"\n{len(pairs)} estimates paired with the simulated Nano17 by stamp")
    for i, axis in enumerate(AXES):
        print(f"  F{axis}: RMSE {np.sqrt(np.mean(err[:, i] ** 2)):.3f} N, MAE {np.mean(np.abs(err[:, i])):.3f} N, "
              f"true range [{ref[:, i].min():.2f}, {ref[:, i].max():.2f}] N")
    np.savetxt(out / "demo_forces.csv", np.column_stack([t, ref, est]), delimiter=",", fmt="%.5f",
               header="t_s,true_fx,true_fy,true_fz,est_fx,est_fy,est_fz", comments="")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(3, 1, figsize=(10, 7), sharex=True)
    for i, ax in enumerate(axes):
        ax.plot(t, ref[:, i], label="true (simulated Nano17)", color="black", linewidth=1.5)
        ax.plot(t, est[:, i], label="estimated (/estimated_wrench)", color="tab:orange", linewidth=1)
        ax.set_ylabel(f"F{AXES[i]} [N]")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right")
    axes[-1].set_xlabel("time [s]")
    fig.suptitle("tacforce demo: tactile force estimate vs. true force")
    fig.tight_layout()
    fig.savefig(out / "demo_forces.png", dpi=110)
    print(f"wrote {out / 'demo_forces.png'} and {out / 'demo_forces.csv'}")
    return 0
