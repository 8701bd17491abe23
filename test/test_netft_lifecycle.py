"""netft_node as a lifecycle node (autostart:=false), driven through its lifecycle services in its
own process against the loopback box (RDT emulator and calibration page on 127.0.0.1 only).

The box streams Fx = t (its stream clock, s), so each published wrench names the record it came
from: the test compares records, not counts or rates, and has no timing assertion. Domain 38.
"""
from __future__ import annotations

import errno
import socket

import pytest

rclpy = pytest.importorskip("rclpy")
from geometry_msgs.msg import WrenchStamped  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402

from rosutil import probe_node, spin_until, start_node, stop  # noqa: E402
from tacforce_ros.ros.qos import sensor_qos  # noqa: E402
from tacforce_ros.sim.netft_box import CalibrationServer, RdtEmulator  # noqa: E402

DOMAIN = 38
COUNTS = 1_000_000  # per N and per N·m: Fx in counts is t in microseconds
WAIT_S = 30.0


def test_configure_activate_deactivate_cleanup_loses_nothing_while_active_and_publishes_nothing_otherwise():
    got: list[int] = []  # Fx counts of every published wrench: the records' identities
    with RdtEmulator(COUNTS, COUNTS, rate_hz=500, wrench_fn=lambda t: (t, 0.0, 0.0, 0.0, 0.0, 0.0)) as box, \
            CalibrationServer(COUNTS, COUNTS) as page, probe_node(DOMAIN, "lifecycle_probe") as probe:
        probe.create_subscription(WrenchStamped, "/ft_sensor/wrench",
                                  lambda m: got.append(round(m.wrench.force.x * COUNTS)), sensor_qos(depth=10_000))
        change = probe.create_client(ChangeState, "/netft_node/change_state")
        get = probe.create_client(GetState, "/netft_node/get_state")
        node = start_node("tacforce_ros.nodes.netft_node", DOMAIN, {
            "host": "127.0.0.1", "port": box.address[1], "calibration_port": page.address[1], "autostart": "false"})

        def call(client, request):
            future = client.call_async(request)
            assert spin_until(probe, future.done, WAIT_S, [node]), "no answer"
            return future.result()

        def transition(transition_id: int) -> str:
            assert call(change, ChangeState.Request(transition=Transition(id=transition_id))).success
            return call(get, GetState.Request()).current_state.label

        def settle() -> None:
            """Let DDS deliver what is on its way (no assertion depends on how long this is)."""
            spin_until(probe, lambda: False, 1.0, [node])

        def sent() -> list[int]:
            return [r.counts[0] for r in box.sent]

        try:
            assert change.wait_for_service(timeout_sec=WAIT_S) and get.wait_for_service(timeout_sec=WAIT_S)
            assert spin_until(probe, lambda: probe.count_publishers("/ft_sensor/wrench") > 0, WAIT_S, [node])
            assert call(get, GetState.Request()).current_state.label == "unconfigured"
            settle()

            assert transition(Transition.TRANSITION_CONFIGURE) == "inactive"
            settle()
            assert got == [] and box.requests == 0  # configured: socket open, nothing asked, nothing out

            assert transition(Transition.TRANSITION_ACTIVATE) == "active"
            assert spin_until(probe, lambda: len(got) >= 200, WAIT_S, [node])
            assert transition(Transition.TRANSITION_DEACTIVATE) == "inactive"
            assert not box.streaming  # the node asked the box to stop
            spin_until(probe, lambda: len(got) >= len(sent()), WAIT_S, [node])
            settle()
            assert sorted(got) == sorted(sent()) and len(set(got)) == len(got), \
                f"{len(got)} published, {len(sent())} sent"
            published = len(got)
            settle()
            assert len(got) == published  # nothing after deactivate

            node_address = box.requester
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe_socket, \
                    pytest.raises(OSError) as in_use:
                probe_socket.bind(node_address)  # inactive: the node still holds its RDT socket
            assert in_use.value.errno == errno.EADDRINUSE
            assert transition(Transition.TRANSITION_CLEANUP) == "unconfigured"
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe_socket:
                probe_socket.bind(node_address)  # cleaned up: the socket is closed

            box.clear_log()
            got.clear()
            assert transition(Transition.TRANSITION_CONFIGURE) == "inactive"
            assert transition(Transition.TRANSITION_ACTIVATE) == "active"
            assert spin_until(probe, lambda: len(got) >= 50, WAIT_S, [node])
            assert set(got) <= set(sent())  # a new stream, published again
        finally:
            log = stop(node)
        assert "Traceback" not in log, log
