"""netft_node in its own process against the loopback RDT emulator and calibration page."""
from __future__ import annotations

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from geometry_msgs.msg import WrenchStamped  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

import subprocess  # noqa: E402
import sys  # noqa: E402
from contextlib import contextmanager  # noqa: E402

from rosutil import ROOT, probe_node, ros_env, spin_until, start_node, stop  # noqa: E402
from tacforce_ros.ros.qos import sensor_qos  # noqa: E402

DOMAIN = 31
CPF = CPT = 1_000_000  # the emulated box is configured for N and N·m (test/netft_box.py)
WRENCH = (0.5, -0.25, -2.0, 0.01, 0.0, -0.002)


@contextmanager
def emulated_box(*args: str):
    """Start the emulated box in its own process (so this process's rclpy never starves it)."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "test" / "netft_box.py"), *args], env=ros_env(DOMAIN),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().split()
        assert line[0] == "PORTS", line
        yield proc, int(line[1]), int(line[2])
    finally:
        proc.stdin.close()
        proc.wait(10)


@pytest.fixture
def box():
    with emulated_box() as b:
        yield b


def tell(box_proc: subprocess.Popen, command: str) -> None:
    box_proc.stdin.write(command + "\n")
    box_proc.stdin.flush()


@pytest.fixture
def probe():
    with probe_node(DOMAIN, "netft_probe") as node:
        yield node


def test_streams_calibrated_wrenches_at_the_box_rate_and_reports_a_stale_box(probe, box):
    got, diagnostics = [], []
    probe.create_subscription(WrenchStamped, "/ft_sensor/wrench", got.append, sensor_qos(depth=5000))
    probe.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 50)
    emulator, rdt_port, http_port = box
    node = start_node("tacforce_ros.nodes.netft_node", DOMAIN, {
        "host": "127.0.0.1", "port": rdt_port, "calibration_port": http_port,
        "frame_id": "nano17", "diagnostics_period": 0.5})
    try:
        assert spin_until(probe, lambda: len(got) > 0, 30, [node])
        got.clear()
        spin_until(probe, lambda: False, 2.0, [node])
        received = len(got)
        stamps = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in got])
        tare = probe.create_client(Trigger, "/netft_node/tare")
        assert tare.wait_for_service(timeout_sec=10)
        future = tare.call_async(Trigger.Request())
        spin_until(probe, future.done, 10)
        tared_from = probe.get_clock().now().nanoseconds  # samples still queued from before may arrive next

        def after_tare():
            return [m for m in got if m.header.stamp.sec * 10**9 + m.header.stamp.nanosec > tared_from]
        got.clear()
        spin_until(probe, lambda: len(after_tare()) > 50, 10, [node])
        tared = after_tare()[-1].wrench.force
        emulator.stdin.write("silent\n")
        emulator.stdin.flush()
        diagnostics.clear()
        spin_until(probe, lambda: any(s.level == DiagnosticStatus.ERROR for d in diagnostics for s in d.status),
                   10, [node])
    finally:
        log = stop(node)
    rate = (received - 1) / (stamps[-1] - stamps[0])
    assert rate > 900, f"{rate:.0f} Hz\n{log}"
    first = got[0] if got else None
    assert first is not None and first.header.frame_id == "nano17"
    assert future.result().success, future.result().message
    assert abs(tared.x) < 1e-9 and abs(tared.z) < 1e-9
    errors = [s.message for d in diagnostics for s in d.status if s.level == DiagnosticStatus.ERROR]
    assert errors and "stale" in errors[-1], log


def test_values_are_counts_over_counts_per_unit(probe, box):
    got = []
    probe.create_subscription(WrenchStamped, "/ft_sensor/wrench", got.append, sensor_qos(depth=5000))
    node = start_node("tacforce_ros.nodes.netft_node", DOMAIN, {
        "host": "127.0.0.1", "port": box[1], "counts_per_force": float(CPF),
        "counts_per_torque": float(CPT)})
    try:
        assert spin_until(probe, lambda: len(got) > 100, 30, [node])
    finally:
        stop(node)
    w = got[-1].wrench
    assert (w.force.x, w.force.y, w.force.z, w.torque.x, w.torque.y, w.torque.z) == \
        pytest.approx(WRENCH, abs=1e-6)


def test_unreachable_calibration_page_is_a_clear_start_up_error(box):
    node = start_node("tacforce_ros.nodes.netft_node", DOMAIN, {
        "host": "127.0.0.1", "port": box[1], "calibration_port": 9})
    node.wait(30)
    log = stop(node)
    assert node.returncode != 0
    assert "counts_per_force" in log, log


def test_implausible_calibration_page_is_a_clear_start_up_error():
    """A page saying 1e-300 counts per N would make every wrench inf: refused at start-up."""
    with emulated_box("1e-300") as (_, rdt_port, http_port):
        node = start_node("tacforce_ros.nodes.netft_node", DOMAIN, {
            "host": "127.0.0.1", "port": rdt_port, "calibration_port": http_port})
        try:
            node.wait(30)
        finally:
            log = stop(node)
    assert node.returncode not in (None, 0) and "got 1e-300" in log, log


def test_malformed_packets_warn_and_forged_records_leave_the_stream_stale(probe, box):
    got, diagnostics = [], []
    probe.create_subscription(WrenchStamped, "/ft_sensor/wrench", got.append, sensor_qos(depth=5000))
    probe.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 50)
    emulator, rdt_port, _ = box
    node = start_node("tacforce_ros.nodes.netft_node", DOMAIN, {
        "host": "127.0.0.1", "port": rdt_port, "counts_per_force": float(CPF),
        "counts_per_torque": float(CPT), "diagnostics_period": 0.5})

    def reports(level):
        return [(s.message, {kv.key: kv.value for kv in s.values})
                for d in diagnostics for s in d.status if s.level == level]

    try:
        assert spin_until(probe, lambda: len(got) > 0, 30, [node])
        tell(emulator, "malformed 800")
        spin_until(probe, lambda: any(v.get("errors_malformed") == "800"
                                      for _, v in reports(DiagnosticStatus.WARN)), 10, [node])
        warned = reports(DiagnosticStatus.WARN)
        diagnostics.clear()
        tell(emulator, "forge")  # no genuine record any more, only far-off numbers
        spin_until(probe, lambda: reports(DiagnosticStatus.ERROR), 10, [node])
    finally:
        log = stop(node)
    assert any(v.get("errors_malformed") == "800" and "rejected" in m for m, v in warned), (warned, log)
    errors = reports(DiagnosticStatus.ERROR)
    assert errors and "stale" in errors[-1][0] and int(errors[-1][1]["errors_out_of_range"]) > 0, log


def test_a_non_finite_wrench_is_counted_and_never_published(probe):
    from rclpy.parameter import Parameter

    from tacforce_ros.hardware.netft import Sample
    from tacforce_ros.nodes.netft_node import NetFTNode
    from tacforce_ros.sim.netft_box import RdtEmulator
    with RdtEmulator(CPF, CPT, rate_hz=100) as emulator:
        node = NetFTNode(parameter_overrides=[
            Parameter("host", value="127.0.0.1"), Parameter("port", value=emulator.address[1]),
            Parameter("counts_per_force", value=float(CPF)), Parameter("counts_per_torque", value=float(CPT))])
        try:
            node.stream.stop()
            frames = node.stats.frames
            node.publish(Sample(1, 1, 0, (0,) * 6, np.array([np.inf, -np.inf, np.nan, 0.0, 0.0, 0.0]), 0, 0, False))
            assert node.stats.frames == frames and node.stats.errors["non_finite"] == 1
        finally:
            node.close()
            node.destroy_node()
