"""The collection run: sequences protocol waypoints on a robot under a force safety monitor.

Free of ROS so it runs the same against `SimulatedRobot` in tests and `URRobot` on the rig.
Each control cycle `step(now)` reads the newest wrench, checks safety and only then commands
the robot. On any violation it calls `robot.stop()` in that same cycle, then (once the robot
is at rest) moves straight up to the approach height above where it stopped, so the indenter is
never left pressing, and ends the run with the reason. A robot fault ends the run without the
retract: a faulted controller refuses moves until an operator clears it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .protocol import Waypoint
from .robot import Robot
from .safety import SafetyMonitor

WrenchReader = Callable[[], tuple[np.ndarray, float] | None]
PhaseCallback = Callable[[Waypoint], None]
RETRACT_TOLERANCE = 1e-4  # m; a retract that ends lower than this below its target is reported


@dataclass(frozen=True, eq=False)
class WaypointResult:
    """A waypoint the robot reached: when, where, and the newest wrench at that moment."""

    index: int
    waypoint: Waypoint
    reached_at: float
    pose: np.ndarray
    wrench: np.ndarray | None


class CollectionRun:
    """Runs `waypoints` one after another; `reason` is None when all completed, else why it stopped.

    `read_wrench()` returns the newest (wrench (6,), stamp) or None when no new sample arrived;
    stamps and the `now` given to `step()` must share one clock. `on_phase(waypoint)` is called
    when a waypoint's move has been issued. The retract height is `retract_z`, by default the z
    of the plan's approach waypoints (surface + approach height).
    """

    def __init__(self, robot: Robot, waypoints: list[Waypoint], monitor: SafetyMonitor,
                 read_wrench: WrenchReader, on_phase: PhaseCallback | None = None,
                 control_period: float = 0.002, *, retract_z: float | None = None,
                 retract_speed: float = 5e-3, retract_acceleration: float = 0.05,
                 stop_deceleration: float = 10.0):
        if not waypoints:
            raise ValueError("no waypoints to run")
        if not control_period > 0:
            raise ValueError(f"control_period must be positive, got {control_period}")
        if retract_z is None:
            approach = [float(w.pose[2]) for w in waypoints if w.phase == "approach"]
            if not approach:
                raise ValueError("no approach waypoint to take the retract height from; pass retract_z")
            retract_z = max(approach)
        self.robot = robot
        self.waypoints = list(waypoints)
        self.monitor = monitor
        self.read_wrench = read_wrench
        self.on_phase = on_phase
        self.control_period = float(control_period)
        self.retract_z = float(retract_z)
        self.retract_speed = retract_speed
        self.retract_acceleration = retract_acceleration
        self.stop_deceleration = stop_deceleration
        self.results: list[WaypointResult] = []
        self.finished = False
        self.reason: str | None = None
        self._index = 0
        self._state = "next"  # next -> moving -> dwell -> next ...; halting: stopping -> retracting
        self._dwell_until = 0.0
        self._halting = False

    def step(self, now: float) -> None:
        """One control cycle at time `now` (s)."""
        if self.finished:
            return
        read_error = self._read_force()
        fault = self._robot_fault()
        if self._halting:
            self._continue_halt(fault)
            return
        reason = read_error or self.monitor.check(now, fault)
        if reason is not None:
            self._halt(reason, fault)
            return
        try:
            self._sequence(now)
        except Exception as exc:  # a failed command must not leave the indenter pressing
            self._halt(f"run error: {type(exc).__name__}: {exc}", self._robot_fault())

    def abort(self, reason: str) -> None:
        """Stop now, retract in the following cycles, end with `reason` (e.g. on SIGINT)."""
        if not self.finished and not self._halting:
            self._halt(f"aborted: {reason}", self._robot_fault())

    def run(self, clock: Callable[[], float] = time.monotonic,
            sleep: Callable[[float], None] = time.sleep) -> str | None:
        """Step every `control_period` until finished; returns `reason`.

        Ctrl-C aborts (stop, retract, end); a second Ctrl-C during the retract stops the robot
        where it is, ends the run and re-raises.
        """
        deadline = clock()
        while not self.finished:
            try:
                self.step(clock())
                deadline += self.control_period
                delay = deadline - clock()
                if delay > 0:
                    sleep(delay)
                else:  # overran the cycle: restart the schedule instead of bursting to catch up
                    deadline = clock()
            except KeyboardInterrupt:
                if self._halting:
                    self.robot.stop(self.stop_deceleration)
                    self._finish(f"{self.reason}; retract abandoned (second interrupt)")
                    raise
                self.abort("interrupted (SIGINT)")
        return self.reason

    def _read_force(self) -> str | None:
        try:
            sample = self.read_wrench()
            if sample is not None:
                wrench, stamp = sample
                self.monitor.update(wrench, stamp)
        except Exception as exc:  # an unreadable sensor is as unsafe as an overload
            return f"force read failed: {type(exc).__name__}: {exc}"
        return None

    def _robot_fault(self) -> str | None:
        try:
            return self.robot.fault()
        except Exception as exc:
            return f"fault query failed: {type(exc).__name__}: {exc}"

    def _sequence(self, now: float) -> None:
        if self._state == "moving":
            if self.robot.is_moving():
                return
            self.results.append(WaypointResult(self._index, self.waypoints[self._index], now,
                                               self.robot.tcp_pose(), self.monitor.last_wrench))
            self._dwell_until = now + self.waypoints[self._index].dwell
            self._state = "dwell"
        if self._state == "dwell":
            if now < self._dwell_until:
                return
            self._index += 1
            self._state = "next"
        if self._index == len(self.waypoints):
            self._finish(None)
            return
        waypoint = self.waypoints[self._index]
        self.robot.move_linear(waypoint.pose, waypoint.speed, waypoint.acceleration, asynchronous=True)
        self._state = "moving"
        if self.on_phase is not None:
            self.on_phase(waypoint)

    def _halt(self, reason: str, fault: str | None) -> None:
        """Stop first (so an interrupt here still leaves the robot stopped), then plan the retract."""
        try:
            self.robot.stop(self.stop_deceleration)
        except Exception as exc:
            reason = f"{reason}; stop failed: {type(exc).__name__}: {exc}"
        self._halting = True
        self.reason = reason
        self._state = "stopping"
        if fault is not None:
            self._finish(f"{reason}; not retracted (robot fault: {fault})")

    def _continue_halt(self, fault: str | None) -> None:
        if fault is not None:
            self._finish(f"{self.reason}; retract not completed (robot fault: {fault})")
            return
        try:
            if self.robot.is_moving():
                return
            pose = self.robot.tcp_pose()
            if self._state == "stopping":
                pose[2] = max(pose[2], self.retract_z)
                self.robot.move_linear(pose, self.retract_speed, self.retract_acceleration, asynchronous=True)
                self._state = "retracting"
            elif pose[2] < self.retract_z - RETRACT_TOLERANCE:
                self._finish(f"{self.reason}; retract ended at z = {pose[2]:.4f} m, "
                             f"below {self.retract_z:.4f} m")
            else:
                self._finish(self.reason)
        except Exception as exc:
            self._finish(f"{self.reason}; retract failed: {type(exc).__name__}: {exc}")

    def _finish(self, reason: str | None) -> None:
        self.reason = reason
        self.finished = True
        self._state = "done"
