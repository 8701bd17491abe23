"""Force/torque limits and the monitor that decides when a collection run must stop.

Wrenches are [fx, fy, fz, tx, ty, tz] in N and N*m, in the force sensor's frame. The default
limits sit well inside the ATI Nano17 SI-12-0.12 calibration (+-12 N fx/fy, +-17 N fz,
+-120 N*mm torque), so the sensor is never driven out of its calibrated range.
"""
from __future__ import annotations

import math
from dataclasses import astuple, dataclass, fields

import numpy as np

AXES = ("fx", "fy", "fz", "tx", "ty", "tz")
UNITS = ("N", "N", "N", "N*m", "N*m", "N*m")


@dataclass(frozen=True)
class ForceLimits:
    """Absolute limit per axis: |wrench[axis]| above it is an overload."""

    fx: float = 8.0
    fy: float = 8.0
    fz: float = 12.0
    tx: float = 0.08
    ty: float = 0.08
    tz: float = 0.08

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"force limit {f.name} must be positive and finite, got {value}")

    def check(self, wrench: np.ndarray) -> str | None:
        """None when within limits, else which axis, its value and the limit.

        A non-finite reading counts as a violation: it means the force is unknown.
        """
        w = np.asarray(wrench, dtype=np.float64).reshape(-1)
        if w.shape != (6,):
            raise ValueError(f"wrench must have 6 components {AXES}, got shape {w.shape}")
        for axis, unit, value, limit in zip(AXES, UNITS, w.tolist(), astuple(self)):
            if not math.isfinite(value):
                return f"{axis} reading is not finite ({value})"
            if abs(value) > limit:
                return f"{axis} = {value:+.4g} {unit} exceeds the limit +-{limit:g} {unit}"
        return None


class SafetyMonitor:
    """Latches the first overload and notices a stale force stream or a robot fault.

    `update()` checks every sample it is given, so an overload is kept even when a later sample
    is back within limits; the run stops on it. Sample times and `check()` times must come from
    the same clock. Before the first sample, staleness is counted from the first `check()`.
    """

    def __init__(self, limits: ForceLimits | None = None, stale_after_s: float = 0.1):
        if not stale_after_s > 0:
            raise ValueError(f"stale_after_s must be positive, got {stale_after_s}")
        self.limits = limits if limits is not None else ForceLimits()
        self.stale_after_s = float(stale_after_s)
        self.last_wrench: np.ndarray | None = None
        self.last_time: float | None = None
        self._overload: str | None = None
        self._armed_at: float | None = None

    def update(self, wrench: np.ndarray, t: float) -> None:
        """Take one force sample stamped `t` (s)."""
        self.last_wrench = np.asarray(wrench, dtype=np.float64).reshape(-1).copy()
        self.last_time = float(t)
        violation = self.limits.check(self.last_wrench)
        if violation is not None and self._overload is None:
            self._overload = f"overload: {violation}"

    def check(self, t: float, robot_fault: str | None = None) -> str | None:
        """None while it is safe to go on, else the reason to stop."""
        if robot_fault is not None:
            return f"robot fault: {robot_fault}"
        if self._overload is not None:
            return self._overload
        if self._armed_at is None:
            self._armed_at = float(t)
        since = self.last_time if self.last_time is not None else self._armed_at
        age = t - since
        if age > self.stale_after_s:
            return f"stale force stream: no sample for {age:.3f} s (limit {self.stale_after_s:g} s)"
        return None
