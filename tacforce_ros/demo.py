"""`tacforce demo`: the simulated sensors and the shipped models through the real nodes.

1. Tactile force: starts sim_sensors_node and tactile_force_node as separate processes (as
   `ros2 launch` would), listens to /estimated_wrench and the simulated Nano17 on
   /ft_sensor/wrench, prints estimated vs. true force during a scripted indentation and writes
   a CSV and a plot.
2. Grasp planning: starts grasp_planner_node, publishes top-down RGB-D frames of table scenes
   with object shapes held out from training (and their CameraInfo), turns each best-grasp pose
   back into a pixel and an angle, asks the scene's robot-like labeller whether that grasp
   would hold, prints it, and saves the planner's overlay of the first scene.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .bags import parse_episode
from .data.tactile_pairs import interpolate_wrench
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
        print(f"{'t [s]':>6} {'phase':>10} | {'true Fx':>8} {'Fy':>7} {'Fz':>7} | "
              f"{'est Fx':>8} {'Fy':>7} {'Fz':>7}  [N]")
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
        _stop(procs)
        node.destroy_node()
        rclpy.shutdown()
    status = _report(out, np.array(estimated), np.array(true))
    if args.grasp_scenes > 0:
        status = max(status, _grasp_demo(out, args.grasp_model, args.grasp_scenes))
    return status


def _grasp_demo(out: Path, model: str, count: int) -> int:
    import math

    import cv2
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import CameraInfo, Image

    from .perception.grasp_map import Intrinsics
    from .perception.image import decode_image, encode_image_fields
    from .ros.qos import output_qos, sensor_qos
    from .sim.grasp_camera import camera_matrix, depth_mm
    from .sim.grasp_labels import grasp_outcome
    from .sim.grasp_scenes import HELD_OUT_SHAPES, SceneConfig, generate_scene

    from .nodes.runner import use_large_image_transport
    use_large_image_transport()
    config, height = SceneConfig(shapes=HELD_OUT_SHAPES, seed=2024), 0.6
    k = camera_matrix(config, height)
    intr = Intrinsics.from_k(k)
    planner = _start("tacforce_ros.nodes.grasp_planner_node", [f"model_path:={model}", "min_probability:=0.0"],
                     "perception.yaml")
    rclpy.init()
    node = rclpy.create_node("tacforce_grasp_demo")
    poses, overlays = {}, {}
    node.create_subscription(PoseStamped, "/grasp_planner_node/best_pose",
                             lambda m: poses.__setitem__(m.header.stamp.sec, m.pose), output_qos(10))
    node.create_subscription(Image, "/grasp_planner_node/overlay",
                             lambda m: overlays.__setitem__(m.header.stamp.sec, m), output_qos(10))
    pubs = {name: node.create_publisher(msg_type, topic, sensor_qos(depth=1)) for name, msg_type, topic in (
        ("info", CameraInfo, "/camera/color/camera_info"), ("depth", Image, "/camera/aligned_depth_to_color/image_raw"),
        ("image", Image, "/camera/color/image_raw"))}
    held = 0
    rng = np.random.default_rng(config.seed)
    try:
        if not _wait(node, lambda: pubs["image"].get_subscription_count() > 0 and node.count_publishers(
                "/grasp_planner_node/best_pose") > 0, [planner], 60):
            return _fail([planner], "grasp_planner_node did not start")
        _wait(node, lambda: False, [planner], 1.0)  # let discovery settle
        print(f"\ngrasp demo: {count} table scenes of shapes never seen in training ({', '.join(HELD_OUT_SHAPES)}), "
              f"model {model}")
        print(f"{'scene':>5} {'objects':>8} | {'pixel (u, v)':>13} {'angle':>6} | "
              f"{'position in camera frame [m]':>29} | held?")
        for n in range(1, count + 1):
            scene = generate_scene(config, rng)
            depth = depth_mm(scene, height)
            msgs = {"info": CameraInfo(height=config.height, width=config.width, k=k),
                    "depth": Image(height=depth.shape[0], width=depth.shape[1], encoding="16UC1",
                                   step=depth.shape[1] * 2, data=depth.astype("<u2").tobytes()),
                    "image": Image(**encode_image_fields(scene.image, "rgb8"))}
            for name in ("info", "depth", "image"):
                msgs[name].header.stamp.sec, msgs[name].header.frame_id = n, "camera_color_optical_frame"
            for _ in range(3):  # best effort, like a camera: a lost frame is sent again
                for name in ("info", "depth", "image"):
                    pubs[name].publish(msgs[name])
                    if name == "depth":  # a camera streams these continuously: let them arrive first
                        _wait(node, lambda: False, [planner], 0.3)
                if _wait(node, lambda: n in poses, [planner], 5):
                    break
            else:
                return _fail([planner], f"no grasp for scene {n}")
            p = poses[n]
            u = intr.fx * p.position.x / p.position.z + intr.cx
            v = intr.fy * p.position.y / p.position.z + intr.cy
            angle = (2 * math.atan2(p.orientation.z, p.orientation.w)) % math.pi
            ok = grasp_outcome(scene, u, v, angle, config)
            held += ok
            print(f"{n:>5} {len(scene.objects):>8} | ({u:5.0f}, {v:5.0f}) {math.degrees(angle):5.0f}° | "
                  f"({p.position.x:8.3f}, {p.position.y:8.3f}, {p.position.z:7.3f}) | {'yes' if ok else 'no'}",
                  flush=True)
        _wait(node, lambda: 1 in overlays, [planner], 5)
    finally:
        _stop([planner])
        node.destroy_node()
        rclpy.shutdown()
    print(f"top-1 grasp would hold in {held}/{count} scenes (robot-like labeller: one object, fits the "
          f"85 mm opening, fingers free)")
    if 1 in overlays:
        cv2.imwrite(str(out / "grasp_overlay.png"), decode_image(overlays[1])[..., ::-1])
        print(f"wrote {out / 'grasp_overlay.png'} (heat map of P(success), best grasp in white)")
    return 0


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


def _stop(procs) -> None:
    """Stop the node processes: SIGTERM, then SIGKILL after 10 s (Fast DDS 2.14 can hang while a
    participant is destroyed; the node's work is done by then, so nothing is lost).
    """
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            print(f"demo: {p.args[2]} did not stop within 10 s of SIGTERM; killed", file=sys.stderr)
            p.kill()
            p.wait()


def _fail(procs, why: str) -> int:
    _stop(procs)
    for p in procs:
        err = p.stderr.read() if p.stderr else ""
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
