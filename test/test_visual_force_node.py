"""visual_force_node with real rclpy and DDS: camera publisher, node and subscriber in separate
processes (the node and the publisher are children; this test process subscribes).
Domains 190-220.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")  # noqa: E402  (the ROS wheels are part of the test set-up)
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from geometry_msgs.msg import WrenchStamped  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from rosutil import ROOT, probe_node, ros_env, spin_until, start_node, stop  # noqa: E402
from tacforce_ros.ros.qos import output_qos  # noqa: E402

MODEL = ROOT / "models" / "visual_force.onnx"
NODE = "tacforce_ros.nodes.visual_force_node"
TOPIC = "/visual_force/estimated_wrench"
T = 20                       # the shipped model's window
BASE = 1000
PERIOD = 1 / 30              # stamp spacing of publish_camera_frames.py
RATE = 5.0                   # publish rate (Hz): slow enough that a loaded CI machine drops no frame


@pytest.fixture
def ros(request):
    domain = 190 + (abs(hash(request.node.name)) % 25)
    with probe_node(domain) as node:
        yield domain, node


def publish(domain: int, count: int, rate: float, *flags: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "test" / "publish_camera_frames.py"), str(count), str(rate),
                             *flags], env=ros_env(domain), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def collect(node):
    got = []
    node.create_subscription(WrenchStamped, TOPIC, got.append, output_qos(500))
    return got


def stamp_of(k: int, gap_after: int = -1) -> tuple[int, int]:
    t_ns = round((BASE + k * PERIOD + (1.0 if 0 <= gap_after < k else 0.0)) * 1e9)
    return t_ns // 10**9, t_ns % 10**9


def run_stream(ros, count, flags=(), params=None, want=0, diagnostics=None):
    domain, node = ros
    got = collect(node)
    # every frame queued: these tests count answers exactly, and a CI stall must not drop a frame
    server = start_node(NODE, domain, {"model_path": str(MODEL), "frame_id": "camera_link", "diagnostics_period": 0.5,
                                       "queue_depth": 50, **(params or {})})
    try:
        assert spin_until(node, lambda: node.count_publishers(TOPIC) > 0, 60, [server])
        pub = publish(domain, count, RATE, *flags)
        spin_until(node, lambda: pub.poll() is not None and len(got) >= want, 60, [server])
        out = pub.communicate(timeout=30)[0]
        spin_until(node, lambda: False, 1.5)
        assert server.poll() is None, "node died"
    finally:
        log = stop(server)
    return got, out, log


def test_t_plus_n_frames_give_n_plus_one_wrenches_with_the_newest_frames_stamps(ros):
    n = 10
    got, out, log = run_stream(ros, T + n, want=n + 1)
    assert f"sent {T + n} good 0 bad" in out, out
    assert len(got) == n + 1, log
    stamps = sorted((m.header.stamp.sec, m.header.stamp.nanosec) for m in got)
    assert stamps == [stamp_of(k) for k in range(T - 1, T + n)]
    assert {m.header.frame_id for m in got} == {"camera_link"}
    forces = np.array([[m.wrench.force.x, m.wrench.force.y, m.wrench.force.z] for m in got])
    assert np.isfinite(forces).all()
    assert (forces[:, :2] == 0).all()            # a 1-output model: only the press axis (-z)
    assert all(m.wrench.torque.x == m.wrench.torque.y == m.wrench.torque.z == 0.0 for m in got)


def test_a_stamp_gap_restarts_the_buffer_and_diagnostics_say_so(ros):
    domain, node = ros
    diagnostics = []
    node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 50)
    gap_after = T + 4                           # frames 0..24, then +1 s: 25.. start a new window
    count = gap_after + 1 + T + 2               # the new window fills at frame 44, then 45, 46
    got, out, log = run_stream(ros, count, ("--gap-after", str(gap_after)), want=5 + 3)
    expected = [stamp_of(k, gap_after) for k in list(range(T - 1, gap_after + 1)) + list(range(gap_after + T, count))]
    assert sorted((m.header.stamp.sec, m.header.stamp.nanosec) for m in got) == expected, log
    values = {kv.key: kv.value for d in diagnostics for s in d.status for kv in s.values}
    assert values["buffer_resets_gap"] == "1" and values["buffer_resets"] == "1"
    messages = [s.message for d in diagnostics for s in d.status if s.level == DiagnosticStatus.WARN]
    assert "frame buffer restarted (gap)" in messages
    assert "frame buffer restarted: gap" in log


@pytest.mark.parametrize("transport", ["raw", "compressed"])
def test_bad_frames_are_counted_and_the_node_keeps_serving(ros, transport):
    domain, node = ros
    diagnostics = []
    node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 50)
    count = 60                                   # 15 bad (every 4th): skipped frames are 2/30 s gaps,
    flags = ["--bad"] + (["--compressed"] if transport == "compressed" else [])   # under max_frame_gap
    got, out, log = run_stream(ros, count, flags, {"image_transport": transport}, want=45 - (T - 1))
    assert "sent 45 good 15 bad" in out, out
    good = [k for k in range(count) if k % 4 != 3]
    assert sorted((m.header.stamp.sec, m.header.stamp.nanosec) for m in got) == [stamp_of(k) for k in good[T - 1:]]
    assert "frame rejected" in log
    values = {kv.key: kv.value for d in diagnostics for s in d.status for kv in s.values}
    assert int(values.get("errors_image", 0)) + int(values.get("errors_shape", 0)) == 15
    assert values["buffer_resets"] == "0"


def test_reset_service_clears_the_buffer(ros):
    domain, node = ros
    server = start_node(NODE, domain, {"model_path": str(MODEL)})
    try:
        client = node.create_client(Trigger, "/visual_force_node/reset")
        assert client.wait_for_service(timeout_sec=60)
        future = client.call_async(Trigger.Request())
        spin_until(node, future.done, 10, [server])
    finally:
        stop(server)
    assert future.result().success and f"{T} frames to refill" in future.result().message


@pytest.mark.parametrize("content, expected", [
    (None, "model file not found"),
    (b"\x08\x01garbage that is not a protobuf", "cannot load model"),
])
def test_unusable_model_stops_start_up_naming_the_file(tmp_path, content, expected):
    path = tmp_path / "model.onnx"
    if content is not None:
        path.write_bytes(content)
    proc = start_node(NODE, 219, {"model_path": str(path)})
    proc.wait(60)
    log = stop(proc)
    assert proc.returncode != 0
    assert str(path) in log and expected in log


def test_model_of_another_task_is_refused_at_start_up(tmp_path):
    proc = start_node(NODE, 220, {"model_path": str(ROOT / "models" / "tactile_force.onnx")})
    proc.wait(60)
    log = stop(proc)
    assert proc.returncode != 0
    assert f"{ROOT / 'models' / 'tactile_force.onnx'}: this is a 'tactile_force' model; this node needs a " \
           f"'visual_force' model" in log


def test_bad_press_axis_stops_start_up(tmp_path):
    proc = start_node(NODE, 218, {"model_path": str(MODEL), "press_axis": "up"})
    proc.wait(60)
    log = stop(proc)
    assert proc.returncode != 0 and "press_axis must be one of" in log
