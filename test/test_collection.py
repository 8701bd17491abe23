"""Checks of the real-robot collection: protocol plan, simulated robot, safety stop, UR adapter."""
import math
import sys
import types

import numpy as np
import pytest

from tacforce_ros.hardware.collection import CollectionRun
from tacforce_ros.hardware.protocol import NO_EPISODE, ProtocolConfig, describe, plan
from tacforce_ros.hardware.robot import Robot, SimulatedRobot, URRobot, trapezoid_duration
from tacforce_ros.hardware.safety import ForceLimits, SafetyMonitor
from tacforce_ros.sim.indentation import PHASES

SURFACE_Z = 0.100
HOVER = 2e-3
START = np.array([0.40, -0.10, 0.110, math.pi, 0.0, 0.0])  # tool pointing down, 10 mm above the pad
STIFFNESS = 5000.0  # N/m: 1 mm deep gives 5 N, inside the default 12 N fz limit
DT = 0.002


def small_config(**overrides):
    options = dict(indenter="sphere", start_pose=START, surface_z=SURFACE_Z, positions=2,
                   depths=[0.5e-3, 1.0e-3], shear_points=2, dwell=0.02, idle_time=0.02,
                   approach_speed=0.05, approach_acceleration=0.5)
    options.update(overrides)
    return ProtocolConfig(**options)


class SpyRobot(SimulatedRobot):
    """SimulatedRobot that records when stop() was called."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.stop_times = []

    def stop(self, deceleration=10.0):
        self.stop_times.append(self.time)
        super().stop(deceleration)


def depth_of(robot):
    return max(SURFACE_Z - robot.tcp_pose()[2], 0.0)


def contact_wrench(robot):
    return np.array([0.0, 0.0, -STIFFNESS * depth_of(robot), 0.0, 0.0, 0.0])


def make_run(robot, waypoints, read_wrench, phases=None, stale_after_s=0.1):
    def on_phase(waypoint):
        if phases is not None:
            phases.append(waypoint)
    return CollectionRun(robot, waypoints, SafetyMonitor(ForceLimits(), stale_after_s), read_wrench,
                         on_phase, control_period=DT)


def drive(robot, run, max_seconds, each_cycle=None):
    """Alternate robot.step() and run.step(); returns (time, pose) after every cycle."""
    trace = []
    for _ in range(int(max_seconds / DT)):
        robot.step()
        if each_cycle is not None:
            each_cycle()
        run.step(robot.time)
        trace.append((robot.time, robot.tcp_pose()))
        if run.finished:
            return trace
    raise AssertionError(f"run did not finish in {max_seconds} s (reason {run.reason})")


def pressing(phases, robot, below=0.3e-3):
    return bool(phases) and phases[-1].phase == "press" and depth_of(robot) > below


# ---------------------------------------------------------------- protocol


def test_default_plan_counts_and_geometry():
    config = ProtocolConfig(indenter="sphere", start_pose=START, surface_z=SURFACE_Z)
    waypoints = plan(config)
    per_episode = 1 + 1 + 2 * 8 + 1 + 1  # approach, press, 8 shear out/back, release, idle
    assert len(waypoints) == 2 + 5 * 4 * per_episode
    assert waypoints[0].episode == waypoints[-1].episode == NO_EPISODE
    np.testing.assert_allclose(waypoints[0].pose, START)
    np.testing.assert_allclose(waypoints[-1].pose, START)

    episodes = [w for w in waypoints if w.episode != NO_EPISODE]
    assert sorted({w.episode for w in episodes}) == list(range(20))
    for w in waypoints:
        np.testing.assert_allclose(w.pose[3:], START[3:])  # orientation never changes
        if w.depth > 0:
            assert w.pose[2] == pytest.approx(SURFACE_Z - w.depth)
        else:
            assert w.pose[2] >= SURFACE_Z + HOVER - 1e-12

    presses = [w for w in episodes if w.phase == "press"]
    offsets = {(round((w.pose[0] - START[0]) * 1e3, 6), round((w.pose[1] - START[1]) * 1e3, 6))
               for w in presses}
    assert offsets == {(0.0, 0.0), (4.0, 4.0), (-4.0, 4.0), (-4.0, -4.0), (4.0, -4.0)}
    for position_id in range(5):
        depths = [w.depth for w in presses if w.position_id == position_id]
        assert depths == pytest.approx([0.25e-3, 0.5e-3, 0.75e-3, 1.0e-3])

    for number in range(20):
        episode = [w for w in episodes if w.episode == number]
        rank = {phase: PHASES.index("shear_out" if phase == "shear_back" else phase) for phase in PHASES}
        order = [rank[w.phase] for w in episode]  # shear_out/shear_back pairs alternate
        assert order == sorted(order)
        assert episode[0].phase == "approach" and episode[-1].phase == "idle"
        assert episode[0].depth == 0.0 and episode[-1].depth == 0.0
        assert len({w.position_id for w in episode}) == 1
        press = next(w for w in episode if w.phase == "press")
        outs = [w for w in episode if w.phase == "shear_out"]
        backs = [w for w in episode if w.phase == "shear_back"]
        assert len(outs) == len(backs) == 8
        angles = []
        for w in outs:
            delta = w.pose[:3] - press.pose[:3]
            assert math.hypot(delta[0], delta[1]) == pytest.approx(1e-3)
            assert delta[2] == pytest.approx(0.0) and w.depth == pytest.approx(press.depth)
            angles.append(math.atan2(delta[1], delta[0]) % (2 * math.pi))
        assert angles == pytest.approx([2 * math.pi * k / 8 for k in range(8)])
        for w in backs:
            np.testing.assert_allclose(w.pose, press.pose)
        phases = [w.phase for w in episode]
        assert phases[2:18] == ["shear_out", "shear_back"] * 8


def test_material_curve_plan_presses_and_releases_in_fine_steps():
    waypoints = plan(ProtocolConfig(indenter="sphere", start_pose=START, surface_z=SURFACE_Z,
                                    material_curve=True, material_depth_step=0.1e-3))
    episode = [w for w in waypoints if w.episode != NO_EPISODE]
    assert {w.episode for w in episode} == {0} and {w.position_id for w in episode} == {0}
    assert not {"shear_out", "shear_back"} & {w.phase for w in episode}
    for w in episode:
        np.testing.assert_allclose(w.pose[:2], START[:2])
    press = [w.depth for w in episode if w.phase == "press"]
    release = [w.depth for w in episode if w.phase == "release"]
    assert press == pytest.approx([k * 0.1e-3 for k in range(1, 11)])
    assert release == pytest.approx([k * 0.1e-3 for k in range(9, 0, -1)] + [0.0])
    assert [w.phase for w in episode][0] == "approach" and episode[-1].phase == "idle"


@pytest.mark.parametrize("override", [dict(depths=[0.5]), dict(positions=6), dict(positions=0),
                                      dict(start_pose=START - [0, 0, 0.009, 0, 0, 0]),
                                      dict(press_speed=2.0), dict(depths=[]),
                                      dict(start_pose=np.zeros(5))])
def test_config_rejects_unsafe_or_malformed_settings(override):
    with pytest.raises(ValueError):
        small_config(**override)


def test_describe_lists_every_waypoint():
    waypoints = plan(small_config())
    lines = describe(waypoints).splitlines()
    rows = lines[2:-1]
    assert len(rows) == len(waypoints)
    for index, (row, w) in enumerate(zip(rows, waypoints)):
        assert row.split()[0] == str(index) and w.phase in row and w.indenter in row
    assert lines[-1].startswith(f"{len(waypoints)} waypoints, 4 episodes")


# ---------------------------------------------------------------- simulated robot


def test_simulated_robot_follows_a_trapezoid():
    robot = SimulatedRobot(control_period=DT, start_pose=START)
    assert isinstance(robot, Robot)
    target = START + [0.010, 0, 0, 0, 0, 0]
    robot.move_linear(target, speed=0.01, acceleration=0.1)  # ramps 0.1 s / 0.5 mm, total 1.1 s
    assert trapezoid_duration(0.010, 0.01, 0.1) == pytest.approx(1.1)
    robot.advance(0.1)
    assert robot.tcp_pose()[0] - START[0] == pytest.approx(0.5e-3, abs=1e-9)
    robot.advance(0.5)
    assert robot.tcp_pose()[0] - START[0] == pytest.approx(5.5e-3, abs=1e-9)
    steps = 300
    while robot.is_moving():
        robot.step()
        steps += 1
    assert steps == pytest.approx(1.1 / DT, abs=1)
    np.testing.assert_array_equal(robot.tcp_pose(), target)
    assert robot.time == pytest.approx(steps * DT)

    short = robot.tcp_pose() + [0, 0, 0.4e-3, 0, 0, 0]  # too short to reach cruise speed
    robot.move_linear(short, speed=0.01, acceleration=0.1, asynchronous=False)
    np.testing.assert_array_equal(robot.tcp_pose(), short)
    assert robot.time == pytest.approx((steps + 2 * math.sqrt(0.4e-3 / 0.1) / DT) * DT, abs=DT)


def test_simulated_robot_stop_and_fault():
    robot = SimulatedRobot(control_period=DT, start_pose=START)
    robot.move_linear(START + [0, 0, -0.005, 0, 0, 0], speed=0.005, acceleration=0.05)
    robot.advance(0.3)
    here = robot.tcp_pose()
    robot.stop()
    assert not robot.is_moving()
    robot.advance(0.1)
    np.testing.assert_array_equal(robot.tcp_pose(), here)

    robot.move_linear(START, speed=0.005, acceleration=0.05)
    robot.step()
    robot.inject_fault()
    assert robot.fault() == "protective stop" and not robot.is_moving()
    stopped = robot.tcp_pose()
    robot.advance(0.1)
    np.testing.assert_array_equal(robot.tcp_pose(), stopped)
    with pytest.raises(RuntimeError, match="protective stop"):
        robot.move_linear(START, speed=0.005, acceleration=0.05)
    robot.clear_fault()
    robot.move_linear(START, speed=0.005, acceleration=0.05, asynchronous=False)
    np.testing.assert_array_equal(robot.tcp_pose(), START)
    with pytest.raises(ValueError):
        robot.move_linear([0.0, 0.0, np.nan, 0, 0, 0], speed=0.005, acceleration=0.05)


# ---------------------------------------------------------------- safety


def test_force_limits_name_the_axis_and_stay_inside_the_nano17_range():
    limits = ForceLimits()
    assert limits.fx < 12 and limits.fy < 12 and limits.fz < 17 and max(limits.tx, limits.ty, limits.tz) < 0.12
    assert limits.check([1, -1, -11.9, 0.01, 0, 0]) is None
    message = limits.check([0, 0, -12.5, 0, 0, 0])
    assert "fz" in message and "-12.5" in message and "12" in message
    assert "ty" in limits.check([0, 0, 0, 0, 0.09, 0])
    assert "not finite" in limits.check([0, np.nan, 0, 0, 0, 0])
    with pytest.raises(ValueError):
        ForceLimits(fz=-1.0)


def test_safety_monitor_latches_overload_and_detects_staleness():
    monitor = SafetyMonitor(ForceLimits(), stale_after_s=0.05)
    assert monitor.check(1.0) is None  # no sample yet: staleness counts from here
    assert "stale" in monitor.check(1.06)
    monitor.update(np.zeros(6), 1.06)
    assert monitor.check(1.07) is None
    assert monitor.check(1.07, robot_fault="protective stop") == "robot fault: protective stop"
    monitor.update([0, 0, -20.0, 0, 0, 0], 1.08)
    monitor.update(np.zeros(6), 1.09)  # back within limits, the overload stays latched
    assert "fz" in monitor.check(1.09)


# ---------------------------------------------------------------- collection run


def test_overload_stops_within_one_cycle_and_retracts():
    """Acceptance: an fz overload read while pressing stops motion in that same cycle."""
    robot = SpyRobot(control_period=DT, start_pose=START)
    waypoints = plan(small_config())
    phases, overload_reads = [], []

    def read_wrench():
        wrench = contact_wrench(robot)
        if pressing(phases, robot):
            wrench[2] = -15.0  # over the 12 N fz limit
            overload_reads.append(robot.time)
        return wrench, robot.time

    run = make_run(robot, waypoints, read_wrench, phases)
    trace = drive(robot, run, max_seconds=30.0)

    t_overload = overload_reads[0]
    assert robot.stop_times[0] == t_overload  # stop() called in the cycle the overload was read
    k = next(i for i, (t, _) in enumerate(trace) if t == t_overload)
    stopped = trace[k][1]
    assert SURFACE_Z - stopped[2] > 0.3e-3  # it was pressing
    np.testing.assert_array_equal(trace[k + 1][1], stopped)  # no motion in the next cycle
    for _, pose in trace[k:]:
        assert pose[2] >= stopped[2]  # never deeper again
        np.testing.assert_array_equal(pose[[0, 1, 3, 4, 5]], stopped[[0, 1, 3, 4, 5]])  # straight up
    assert robot.tcp_pose()[2] >= SURFACE_Z + HOVER - 1e-9 and not robot.is_moving()
    assert run.finished and "overload" in run.reason and "fz" in run.reason
    assert phases[-1].phase == "press"  # nothing after the press was started
    assert len(robot.stop_times) == 1


def test_no_move_is_issued_in_the_cycle_an_overload_is_read():
    """With no dwell the next move would start in the cycle the press ends; an overload wins."""
    robot = SpyRobot(control_period=DT, start_pose=START)
    phases = []

    def read_wrench():
        wrench = contact_wrench(robot)
        if phases and phases[-1].phase == "press" and not robot.is_moving():
            wrench[2] = -15.0
        return wrench, robot.time

    run = make_run(robot, plan(small_config(dwell=0.0)), read_wrench, phases)
    drive(robot, run, max_seconds=30.0)
    assert phases[-1].phase == "press" and "fz" in run.reason
    assert robot.tcp_pose()[2] >= SURFACE_Z + HOVER - 1e-9


def test_stale_force_stream_stops_the_run():
    robot = SpyRobot(control_period=DT, start_pose=START)
    phases, last_sample = [], []

    def read_wrench():
        if pressing(phases, robot) or last_sample and last_sample[-1] < robot.time - DT:
            return None  # the sensor went quiet
        last_sample.append(robot.time)
        return contact_wrench(robot), robot.time

    run = make_run(robot, plan(small_config()), read_wrench, phases, stale_after_s=0.05)
    drive(robot, run, max_seconds=30.0)
    assert "stale force stream" in run.reason
    assert robot.stop_times[0] - last_sample[-1] == pytest.approx(0.05, abs=1.5 * DT)
    assert robot.tcp_pose()[2] >= SURFACE_Z + HOVER - 1e-9


def test_robot_fault_stops_the_run_without_retract():
    robot = SpyRobot(control_period=DT, start_pose=START)
    phases, fault_at = [], []

    def maybe_fault():
        if not fault_at and pressing(phases, robot):
            robot.inject_fault("protective stop")
            fault_at.append(robot.time)

    run = make_run(robot, plan(small_config()), lambda: (contact_wrench(robot), robot.time), phases)
    drive(robot, run, max_seconds=30.0, each_cycle=maybe_fault)
    assert robot.stop_times == fault_at
    assert run.reason.startswith("robot fault: protective stop") and "not retracted" in run.reason


def test_full_simulated_run_completes_every_waypoint():
    robot = SpyRobot(control_period=DT, start_pose=START)
    waypoints = plan(small_config())
    phases = []
    run = make_run(robot, waypoints, lambda: (contact_wrench(robot), robot.time), phases)
    drive(robot, run, max_seconds=60.0)
    assert run.finished and run.reason is None and robot.stop_times == []
    assert [id(w) for w in phases] == [id(w) for w in waypoints]
    assert [r.index for r in run.results] == list(range(len(waypoints)))
    for result in run.results:
        np.testing.assert_allclose(result.pose, result.waypoint.pose, atol=1e-12)
        assert result.wrench[2] == pytest.approx(-STIFFNESS * result.waypoint.depth)
    np.testing.assert_array_equal(robot.tcp_pose(), START)


def test_abort_stops_retracts_and_ends():
    robot = SpyRobot(control_period=DT, start_pose=START)
    phases = []
    run = make_run(robot, plan(small_config()), lambda: (contact_wrench(robot), robot.time), phases)

    def abort_when_pressing():
        if pressing(phases, robot) and not robot.stop_times:
            run.abort("operator")
    drive(robot, run, max_seconds=30.0, each_cycle=abort_when_pressing)
    assert len(robot.stop_times) == 1 and run.reason == "aborted: operator"
    assert robot.tcp_pose()[2] >= SURFACE_Z + HOVER - 1e-9


def test_run_loop_paces_cycles_and_handles_ctrl_c():
    robot = SpyRobot(control_period=DT, start_pose=START)
    waypoints = plan(small_config(positions=1, depths=[0.5e-3]))

    def sleep(seconds):
        assert seconds <= DT + 1e-12
        robot.advance(seconds)

    run = make_run(robot, waypoints, lambda: (contact_wrench(robot), robot.time))
    assert run.run(clock=lambda: robot.time, sleep=sleep) is None
    assert len(run.results) == len(waypoints)

    robot = SpyRobot(control_period=DT, start_pose=START)
    phases, interrupted = [], []

    def sleep_until_ctrl_c(seconds):
        robot.advance(seconds)
        if pressing(phases, robot) and not interrupted:
            interrupted.append(robot.time)
            raise KeyboardInterrupt

    run = make_run(robot, waypoints, lambda: (contact_wrench(robot), robot.time), phases)
    assert run.run(clock=lambda: robot.time, sleep=sleep_until_ctrl_c) == "aborted: interrupted (SIGINT)"
    assert robot.stop_times == interrupted
    assert robot.tcp_pose()[2] >= SURFACE_Z + HOVER - 1e-9


# ---------------------------------------------------------------- UR adapter


class _Status:
    def __init__(self, running):
        self.running = running

    def isAsyncOperationRunning(self):
        return self.running


def fake_ur_rtde(monkeypatch, calls, state):
    """Stand-ins for ur_rtde's rtde_control / rtde_receive modules that record every call."""

    class RTDEControlInterface:
        def __init__(self, hostname, frequency):
            calls.append(("control", hostname, frequency))

        def moveL(self, pose, speed, acceleration, asynchronous):
            calls.append(("moveL", pose, speed, acceleration, asynchronous))
            return state["accept"]

        def getAsyncOperationProgressEx(self):
            return _Status(state["running"])

        def stopL(self, a, asynchronous):
            calls.append(("stopL", a, asynchronous))

        def isConnected(self):
            return state["control_connected"]

        def isProgramRunning(self):
            return state["program_running"]

        def stopScript(self):
            calls.append(("stopScript",))

        def disconnect(self):
            calls.append(("control.disconnect",))

    class RTDEReceiveInterface:
        def __init__(self, hostname, frequency):
            calls.append(("receive", hostname, frequency))

        def getActualTCPPose(self):
            return list(state["pose"])

        def isConnected(self):
            return state["receive_connected"]

        def isEmergencyStopped(self):
            return state["estop"]

        def isProtectiveStopped(self):
            return state["pstop"]

        def getSafetyMode(self):
            return state["safety_mode"]

        def disconnect(self):
            calls.append(("receive.disconnect",))

    control = types.ModuleType("rtde_control")
    control.RTDEControlInterface = RTDEControlInterface
    receive = types.ModuleType("rtde_receive")
    receive.RTDEReceiveInterface = RTDEReceiveInterface
    monkeypatch.setitem(sys.modules, "rtde_control", control)
    monkeypatch.setitem(sys.modules, "rtde_receive", receive)


def test_ur_robot_maps_the_interface_onto_ur_rtde(monkeypatch):
    calls = []
    state = dict(accept=True, running=True, control_connected=True, receive_connected=True,
                 program_running=True, estop=False, pstop=False, safety_mode=1, pose=START.tolist())
    fake_ur_rtde(monkeypatch, calls, state)
    robot = URRobot("192.168.1.10")
    assert isinstance(robot, Robot)
    assert calls == [("control", "192.168.1.10", 500.0), ("receive", "192.168.1.10", 500.0)]

    target = START + [0, 0, -0.001, 0, 0, 0]
    robot.move_linear(target, speed=0.002, acceleration=0.05)
    name, pose, speed, acceleration, asynchronous = calls[-1]
    assert name == "moveL" and type(pose) is list and pose == pytest.approx(target.tolist())
    assert (speed, acceleration, asynchronous) == (0.002, 0.05, True)
    np.testing.assert_array_equal(robot.tcp_pose(), START)
    assert robot.is_moving()
    state["running"] = False
    assert not robot.is_moving()
    robot.stop(2.0)
    assert calls[-1] == ("stopL", 2.0, False)  # blocking: at rest when it returns

    assert robot.fault() is None
    state["safety_mode"] = 2  # reduced mode still moves
    assert robot.fault() is None
    state["safety_mode"] = 5
    assert robot.fault() == "safety mode 5 (safeguard stop)"
    state["pstop"] = True
    assert robot.fault() == "protective stop"
    state["estop"] = True
    assert robot.fault() == "emergency stop"
    state["control_connected"] = False
    assert robot.fault() == "not connected (RTDE control)"
    state["receive_connected"] = False
    assert robot.fault() == "not connected (RTDE receive)"

    state["accept"] = False
    with pytest.raises(RuntimeError, match="rejected"):
        robot.move_linear(target, speed=0.002, acceleration=0.05)
    with pytest.raises(ValueError):
        robot.move_linear(target[:5], speed=0.002, acceleration=0.05)
    robot.close()
    assert calls[-3:] == [("stopScript",), ("control.disconnect",), ("receive.disconnect",)]


def test_ur_robot_without_ur_rtde_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "rtde_control", None)  # makes `import rtde_control` fail
    with pytest.raises(ImportError, match="pip install ur_rtde"):
        URRobot("192.168.1.10")
