"""collection_node in its own process with the simulated robot. Either the force stream comes
from this test process over DDS (so the safety stop is exercised through real topics), or the
node serves a simulated Net F/T box that netft_node reads over RDT, recorded by recorder_node.
"""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from geometry_msgs.msg import PoseStamped, WrenchStamped  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from rosutil import probe_node, spin_until, start_node, stop  # noqa: E402
from tacforce_ros.ros.qos import output_qos, sensor_qos  # noqa: E402

DOMAIN = 33
SHORT = {"robot": "sim", "positions": 1, "depths": "[0.001]", "shear_points": 2, "idle_time": 0.2,
         "approach_height": 0.001, "dwell": 0.1}
# This test process publishes the force stream from a Python timer; under CI load it can pause
# longer than the node's 0.1 s default, which stops the run as stale (correctly, but it is not what
# these tests check). The stale stop itself is covered in test_collection.py.
STREAM_FROM_TEST = {"stale_after": 0.5}


@pytest.fixture
def probe():
    with probe_node(DOMAIN, "collection_probe") as node:
        yield node


def drive(probe, params: dict, fz_after_press: float | None, timeout: float = 40.0):
    """Publish a 500 Hz wrench stream (Fz = fz_after_press once pressing began) until the node exits."""
    poses, phases = [], []
    probe.create_subscription(PoseStamped, "/tcp_pose", lambda m: poses.append(m.pose.position.z), output_qos(100))
    probe.create_subscription(String, "/tactile/episode", lambda m: phases.append(json.loads(m.data)["phase"]),
                              output_qos(100))
    pub = probe.create_publisher(WrenchStamped, "/ft_sensor/wrench", sensor_qos(depth=10))
    node = start_node("tacforce_ros.nodes.collection_node", DOMAIN, {**SHORT, **STREAM_FROM_TEST, **params})

    def send():
        msg = WrenchStamped()
        if fz_after_press is not None and "press" in phases:
            msg.wrench.force.z = fz_after_press
        pub.publish(msg)

    probe.create_timer(0.002, send)
    end = time.monotonic() + timeout
    while node.poll() is None and time.monotonic() < end:
        rclpy.spin_once(probe, timeout_sec=0.01)
    spin_until(probe, lambda: False, 0.3)
    log = stop(node)
    return node.returncode, log, poses, phases


def test_a_simulated_run_completes_and_publishes_poses_and_phases(probe):
    code, log, poses, phases = drive(probe, {}, None)
    assert code == 0, log
    assert "run completed" in log
    assert {"press", "shear_out", "shear_back", "release"} <= set(phases)  # the first marks may precede discovery
    assert min(poses) < 0.195 - 0.0009 and poses[-1] > 0.195


def test_overload_through_the_topic_stops_and_retracts(probe):
    code, log, poses, phases = drive(probe, {}, -20.0)
    assert code != 0 and "fz" in log, log
    assert poses[-1] >= 0.195  # retracted above the surface, never left pressing


def test_dry_run_logs_the_plan_and_never_moves(probe):
    node = start_node("tacforce_ros.nodes.collection_node", DOMAIN, {**SHORT, "dry_run": True})
    node.wait(30)
    log = stop(node)
    assert node.returncode == 0 and "waypoints" in log and "shear_out" in log


def test_simulated_run_through_ros_records_a_bag_that_trains(tmp_path):
    """collection_node (simulated robot + simulated box and camera), netft_node reading the box
    over RDT, and recorder_node: three processes, one bag.
    """
    from tacforce_ros.data.tactile_pairs import load_tactile_pairs

    bag = tmp_path / "run"
    recorder = start_node("tacforce_ros.nodes.recorder_node", DOMAIN, {
        "output": str(bag),
        "topics": "['/tactile/image_raw','/ft_sensor/wrench','/tcp_pose','/tactile/episode']"})
    collection = start_node("tacforce_ros.nodes.collection_node", DOMAIN, {
        **SHORT, "simulate_sensors": True, "sim_rdt_port": 49233, "image_rate": 15.0})
    time.sleep(3.0)  # the box is up once the node has built its force curves
    netft = start_node("tacforce_ros.nodes.netft_node", DOMAIN, {
        "host": "127.0.0.1", "port": 49233, "counts_per_force": 1e6, "counts_per_torque": 1e6})
    try:
        collection.wait(60)
        time.sleep(0.5)
        recorder.send_signal(2)
        recorder.wait(30)
    finally:
        logs = [stop(p) for p in (collection, netft, recorder)]
    assert collection.returncode == 0, logs
    pairs = load_tactile_pairs([bag], "/tactile/image_raw", "/ft_sensor/wrench", "/tactile/episode")
    assert pairs.stats.paired > 30, pairs.summary()
    forces = np.concatenate([s.forces for s in pairs.sequences])
    assert forces[:, 2].min() < -0.3, pairs.summary()  # the simulated press reached the labels
