"""Rolling rate and latency statistics for diagnostics (no ROS here, so tests reach it)."""
from __future__ import annotations

from collections import defaultdict, deque

import numpy as np


class StageStats:
    """Keeps the last ``window`` samples of each named stage's latency and of output times.

    ``tick(t)`` marks one processed frame at time ``t`` (seconds); ``record(stage, seconds)``
    adds a latency sample; ``errors[kind]`` counts rejected inputs by kind.
    """

    def __init__(self, window: int = 300):
        self._ticks: deque[float] = deque(maxlen=window)
        self._stages: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=window))
        self.frames = 0
        self.errors: dict[str, int] = defaultdict(int)

    def tick(self, now: float) -> None:
        self._ticks.append(now)
        self.frames += 1

    def record(self, stage: str, seconds: float) -> None:
        self._stages[stage].append(seconds)

    def error(self, kind: str) -> None:
        self.errors[kind] += 1

    def rate_hz(self) -> float:
        if len(self._ticks) < 2:
            return 0.0
        span = self._ticks[-1] - self._ticks[0]
        return (len(self._ticks) - 1) / span if span > 0 else 0.0

    def latency_ms(self) -> dict[str, tuple[float, float]]:
        """Stage name -> (p50, p99) in milliseconds."""
        out = {}
        for stage, samples in self._stages.items():
            if samples:
                p50, p99 = np.percentile(np.fromiter(samples, float), [50, 99]) * 1e3
                out[stage] = (float(p50), float(p99))
        return out

    def key_values(self) -> dict[str, str]:
        """Flat string map for a diagnostic_msgs/DiagnosticStatus."""
        kv = {"rate_hz": f"{self.rate_hz():.2f}", "frames": str(self.frames)}
        for stage, (p50, p99) in self.latency_ms().items():
            kv[f"{stage}_ms_p50"] = f"{p50:.2f}"
            kv[f"{stage}_ms_p99"] = f"{p99:.2f}"
        for kind, count in sorted(self.errors.items()):
            kv[f"errors_{kind}"] = str(count)
        return kv
