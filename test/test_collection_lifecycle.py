"""collection_node's lifecycle in this process with the simulated robot (autostart:=false): it
connects nothing before configure, moves only once active, and deactivating mid-press stops
the robot and retracts it above the surface. Domain 39.
"""
from __future__ import annotations

import time

import pytest

rclpy = pytest.importorskip("rclpy")
from geometry_msgs.msg import WrenchStamped  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from rosutil import probe_node  # noqa: E402

SURFACE_Z = 0.195
SHORT = {"robot": "sim", "positions": 1, "depths": [0.001], "shear_points": 2, "idle_time": 0.2,
         "approach_height": 0.001, "dwell": 0.1, "surface_z": SURFACE_Z, "autostart": False}
SUCCESS = TransitionCallbackReturn.SUCCESS


def test_deactivate_mid_press_retracts_and_cleanup_lets_go_of_the_robot():
    from tacforce_ros.nodes.collection_node import CollectionNode

    with probe_node(39, "collection_lifecycle_probe"):
        node = CollectionNode(parameter_overrides=[Parameter(k, value=v) for k, v in SHORT.items()])
        try:
            assert node.robot is None  # autostart false: nothing connected yet
            assert node.trigger_configure() == SUCCESS and node.robot is not None
            assert node.trigger_activate() == SUCCESS
            deadline = time.monotonic() + 30.0
            while node.robot.tcp_pose()[2] > SURFACE_Z - 0.0005:  # until pressing into the surface
                assert time.monotonic() < deadline, "never pressed"
                node.on_wrench(WrenchStamped())
                node.cycle()
                time.sleep(node.config.control_period)
            assert node.trigger_deactivate() == SUCCESS
            assert node.robot.tcp_pose()[2] >= SURFACE_Z and "deactivated" in node.run.reason
            assert node.timer is None  # no control cycle while inactive
            assert node.trigger_cleanup() == SUCCESS and node.robot is None
        finally:
            node.close()
            node.destroy_node()
