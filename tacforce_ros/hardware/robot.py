"""The one robot interface the collection run uses, a simulated robot and a UR (ur_rtde) adapter.

Poses are UR-style 6-vectors [x, y, z, rx, ry, rz] of the TCP in the robot base frame:
position in m, orientation as a rotation vector (axis * angle) in rad. Speeds in m/s,
accelerations in m/s^2, times in s.
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Robot(Protocol):
    """What the run logic needs from a robot: linear moves, the TCP pose, stop and fault state."""

    def move_linear(self, pose: np.ndarray, speed: float, acceleration: float,
                    asynchronous: bool = True) -> None:
        """Start a straight-line TCP move to `pose`; asynchronous returns at once."""

    def tcp_pose(self) -> np.ndarray:
        """Actual TCP pose (6,)."""

    def is_moving(self) -> bool:
        """Return True while a commanded move has not finished."""

    def stop(self, deceleration: float = 10.0) -> None:
        """Abandon the current move, decelerating at `deceleration` m/s^2."""

    def fault(self) -> str | None:
        """Why the robot cannot move (protective stop, emergency stop, not connected), else None."""

    def close(self) -> None:
        """Release the connection."""


def check_pose(pose: np.ndarray) -> np.ndarray:
    """Return a finite float copy of a (6,) pose, or ValueError: a bad target must never reach a robot."""
    pose = np.array(pose, dtype=np.float64).reshape(-1)
    if pose.shape != (6,) or not np.isfinite(pose).all():
        raise ValueError(f"pose must be 6 finite numbers [x, y, z, rx, ry, rz], got {pose}")
    return pose


def _check_motion_limits(speed: float, acceleration: float) -> None:
    if not (speed > 0 and acceleration > 0 and math.isfinite(speed) and math.isfinite(acceleration)):
        raise ValueError(f"speed and acceleration must be positive, got {speed}, {acceleration}")


def trapezoid_duration(distance: float, speed: float, acceleration: float) -> float:
    """Time of a rest-to-rest move with a trapezoidal (or, if short, triangular) speed profile."""
    if distance <= 0.0:
        return 0.0
    if distance >= speed * speed / acceleration:  # reaches cruise speed
        return distance / speed + speed / acceleration
    return 2.0 * math.sqrt(distance / acceleration)


def trapezoid_position(t: float, distance: float, speed: float, acceleration: float) -> float:
    """Distance covered after time t along a trapezoidal profile (clamped to [0, distance])."""
    total = trapezoid_duration(distance, speed, acceleration)
    if t <= 0.0 or total == 0.0:
        return 0.0
    if t >= total:
        return distance
    peak = min(speed, math.sqrt(distance * acceleration))
    ramp = peak / acceleration
    if t < ramp:
        return 0.5 * acceleration * t * t
    if t <= total - ramp:
        return 0.5 * peak * ramp + peak * (t - ramp)
    left = total - t
    return distance - 0.5 * acceleration * left * left


@dataclass
class _Motion:
    start: np.ndarray
    target: np.ndarray
    distance: float
    speed: float
    acceleration: float
    duration: float
    elapsed: float = 0.0


class SimulatedRobot:
    """Kinematic Cartesian robot for tests and dry runs; deterministic, advanced by `step()`.

    A move follows the straight line to its target with a trapezoidal speed profile. The path
    length is the larger of the translation (m) and the rotation-vector change (rad), so `speed`
    applies to whichever dominates, as in URScript movel; orientation is interpolated linearly in
    rotation-vector components, exact for the constant orientation the protocol uses. A new
    move replaces the current one from the current pose.

    `stop()` halts at once: the pose does not change at the next `step()`. This idealises a
    real stop, which at protocol speeds (<= 10 mm/s) and 10 m/s^2 takes < 1 ms and < 5 um,
    less than one 2 ms control cycle. `inject_fault()` models a protective stop: motion halts
    and moves are refused until `clear_fault()`.
    """

    def __init__(self, control_period: float = 0.002, start_pose: np.ndarray | None = None):
        if not control_period > 0:
            raise ValueError(f"control_period must be positive, got {control_period}")
        self.control_period = float(control_period)
        self._pose = check_pose(np.zeros(6) if start_pose is None else start_pose)
        self._ticks = 0
        self._motion: _Motion | None = None
        self._fault: str | None = None
        self._closed = False

    @property
    def time(self) -> float:
        """Return the simulated clock (s): control cycles stepped times the control period."""
        return self._ticks * self.control_period

    def move_linear(self, pose: np.ndarray, speed: float, acceleration: float,
                    asynchronous: bool = True) -> None:
        """Start a move; a synchronous one steps the simulated clock until it has finished."""
        target = check_pose(pose)
        _check_motion_limits(speed, acceleration)
        if self._closed:
            raise RuntimeError("robot is closed")
        if self._fault is not None:
            raise RuntimeError(f"move refused: {self._fault}")
        distance = float(max(np.linalg.norm(target[:3] - self._pose[:3]),
                             np.linalg.norm(target[3:] - self._pose[3:])))
        self._motion = _Motion(self._pose.copy(), target, distance, float(speed), float(acceleration),
                               trapezoid_duration(distance, speed, acceleration))
        if self._motion.duration == 0.0:
            self._pose, self._motion = target, None
        if not asynchronous:
            while self._motion is not None:
                self.step()

    def step(self) -> None:
        """Advance one control cycle."""
        self._ticks += 1
        motion = self._motion
        if motion is None:
            return
        motion.elapsed += self.control_period
        if motion.elapsed >= motion.duration:
            self._pose, self._motion = motion.target.copy(), None
            return
        fraction = trapezoid_position(motion.elapsed, motion.distance, motion.speed,
                                      motion.acceleration) / motion.distance
        self._pose = motion.start + fraction * (motion.target - motion.start)

    def advance(self, seconds: float) -> None:
        """Step whole control cycles covering `seconds`."""
        for _ in range(round(seconds / self.control_period)):
            self.step()

    def tcp_pose(self) -> np.ndarray:
        return self._pose.copy()

    def is_moving(self) -> bool:
        return self._motion is not None

    def stop(self, deceleration: float = 10.0) -> None:
        if not deceleration > 0:
            raise ValueError(f"deceleration must be positive, got {deceleration}")
        self._motion = None

    def inject_fault(self, message: str = "protective stop") -> None:
        """Simulate a controller fault: motion halts where it is, moves are refused."""
        self._fault = message
        self._motion = None

    def clear_fault(self) -> None:
        self._fault = None

    def fault(self) -> str | None:
        return "not connected (closed)" if self._closed else self._fault

    def close(self) -> None:
        self._motion = None
        self._closed = True


# UR safety modes (RTDE `safety_mode`); 1 NORMAL and 2 REDUCED allow motion.
_SAFETY_MODES = {3: "protective stop", 4: "recovery", 5: "safeguard stop",
                 6: "system emergency stop", 7: "robot emergency stop", 8: "safety violation",
                 9: "safety fault"}
_MOVING_SAFETY_MODES = (1, 2)


class URRobot:
    """Universal Robots e-Series (UR5e) through ur_rtde's RTDE control and receive interfaces.

    Moves are `moveL(pose, speed, acceleration, asynchronous)`; `is_moving()` reads the async
    operation status of the control script; `stop()` is a blocking `stopL`, so when it returns
    the arm is at rest and a following move is never blended into the deceleration. Needs
    ur_rtde >= 1.5.6, which added `getAsyncOperationProgressEx` and stopL's `asynchronous` flag.
    """

    def __init__(self, host: str, frequency: float = 500.0):
        try:
            rtde_control = importlib.import_module("rtde_control")
            rtde_receive = importlib.import_module("rtde_receive")
        except ImportError as exc:
            raise ImportError("URRobot needs the ur_rtde package (modules rtde_control, "
                              "rtde_receive): pip install ur_rtde") from exc
        self.host = host
        self._control = rtde_control.RTDEControlInterface(host, frequency)
        self._receive = rtde_receive.RTDEReceiveInterface(host, frequency)

    def move_linear(self, pose: np.ndarray, speed: float, acceleration: float,
                    asynchronous: bool = True) -> None:
        target = check_pose(pose)
        _check_motion_limits(speed, acceleration)
        if not self._control.moveL(target.tolist(), float(speed), float(acceleration), bool(asynchronous)):
            raise RuntimeError(f"moveL to {target.tolist()} was rejected by the controller")

    def tcp_pose(self) -> np.ndarray:
        return check_pose(self._receive.getActualTCPPose())

    def is_moving(self) -> bool:
        return bool(self._control.getAsyncOperationProgressEx().isAsyncOperationRunning())

    def stop(self, deceleration: float = 10.0) -> None:
        if not deceleration > 0:
            raise ValueError(f"deceleration must be positive, got {deceleration}")
        self._control.stopL(float(deceleration), False)

    def fault(self) -> str | None:
        if not self._receive.isConnected():
            return "not connected (RTDE receive)"
        if not self._control.isConnected():
            return "not connected (RTDE control)"
        if self._receive.isEmergencyStopped():
            return "emergency stop"
        if self._receive.isProtectiveStopped():
            return "protective stop"
        mode = int(self._receive.getSafetyMode())
        if mode not in _MOVING_SAFETY_MODES:
            return f"safety mode {mode} ({_SAFETY_MODES.get(mode, 'unknown')})"
        if not self._control.isProgramRunning():
            return "RTDE control script not running on the controller"
        return None

    def close(self) -> None:
        self._control.stopScript()
        self._control.disconnect()
        self._receive.disconnect()


def rotvec_to_quaternion(rotvec: np.ndarray) -> tuple[float, float, float, float]:
    """UR rotation vector (axis * angle) -> quaternion (x, y, z, w), for PoseStamped."""
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return 0.0, 0.0, 0.0, 1.0
    axis = np.asarray(rotvec, float) / angle
    s = np.sin(angle / 2)
    return float(axis[0] * s), float(axis[1] * s), float(axis[2] * s), float(np.cos(angle / 2))
