"""Helpers for tests that run real rclpy nodes in separate processes."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ros_env(domain_id: int) -> dict:
    """Environment for a child process on its own DDS domain (tests never cross-talk)."""
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_node(module: str, domain_id: int, params: dict | None = None, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", module, "--ros-args"]
    for key, value in (params or {}).items():
        cmd += ["-p", f"{key}:={value}"]
    cmd += list(extra)
    return subprocess.Popen(cmd, env=ros_env(domain_id), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.stdout.read() if proc.stdout else ""


def spin_until(node, condition, timeout: float, procs=()) -> bool:
    import rclpy
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"child process exited early:\n{stop(p)}")
        rclpy.spin_once(node, timeout_sec=0.05)
    return condition()


@contextmanager
def probe_node(domain_id: int, name: str = "test_probe"):
    """Create an rclpy context and node in this test process, on the test's own domain, with the
    nodes' large-image transport so it can publish and receive whole camera frames.
    """
    import rclpy

    from tacforce_ros.nodes.runner import use_large_image_transport
    os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    use_large_image_transport()
    rclpy.init()
    node = rclpy.create_node(name)
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.shutdown()
