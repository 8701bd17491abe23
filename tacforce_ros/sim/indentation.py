"""GenForce-style indentation protocol as a pure function of time.

The run loops over indenters, then contact positions, then depths; each combination is one
episode (in that order unless `IndentationConfig.seed` shuffles the episodes):

    approach    out of contact above the position (depth 0)
    press       depth ramps 0 -> target depth, then holds for `hold_time`
    shear_out   for each shear point on a circle of `shear_radius` around the press point:
    shear_back      slide out to the point, then back to the centre (depth held)
    release     depth ramps back to 0
    idle        rest out of contact

So depth is 0 at every episode boundary and the episode number increases by one per
press/release cycle. Units: metres, seconds; positions and shear are in the sensor frame
(x to the image right, y to the image bottom; see sim/tactile.py), relative to the pad centre.
"""
from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field

import numpy as np

PHASES = ("approach", "press", "shear_out", "shear_back", "release", "idle")


def corner_positions(step: float) -> list[tuple[float, float]]:
    """Centre and the four corners at +-step (m), GenForce's five contact positions."""
    return [(0.0, 0.0), (step, step), (-step, step), (-step, -step), (step, -step)]


@dataclass
class IndentationConfig:
    """What to press where, and how fast. Speeds in m/s, times in s, lengths in m."""

    indenters: list[str] = field(default_factory=lambda: ["sphere"])
    positions: list[tuple[float, float]] = field(default_factory=lambda: corner_positions(4e-3))
    depths: list[float] = field(default_factory=lambda: [0.3e-3, 0.6e-3, 0.9e-3, 1.2e-3, 1.5e-3])
    shear_points: int = 8  # 0 gives straight press/release episodes (force-depth curves)
    shear_radius: float = 1e-3
    approach_time: float = 0.5
    press_speed: float = 2e-3
    hold_time: float = 0.2
    shear_speed: float = 4e-3
    release_speed: float = 2e-3
    idle_time: float = 0.2
    seed: int | None = None  # None: fixed order, shear points from angle 0; else shuffled order and start angle

    def __post_init__(self) -> None:
        if not self.indenters or not self.positions or not self.depths:
            raise ValueError("indenters, positions and depths must not be empty")
        if min(self.depths) <= 0:
            raise ValueError("depths must be positive")
        if min(self.press_speed, self.shear_speed, self.release_speed) <= 0:
            raise ValueError("speeds must be positive")
        if self.shear_points < 0 or self.shear_radius < 0:
            raise ValueError("shear_points and shear_radius must be non-negative")


@dataclass(frozen=True)
class ScriptSample:
    """Commanded indenter state at one time; depth 0 means out of contact."""

    time: float
    episode: int
    indenter: str
    position_id: int
    x: float
    y: float
    depth: float  # m, >= 0
    target_depth: float  # m, the episode's press depth
    shear: np.ndarray  # (2,) m, indenter displacement from the press point
    phase: str


@dataclass(frozen=True)
class _Segment:
    """One linear ramp of depth and shear within an episode."""

    start: float
    end: float
    episode: int
    indenter: str
    position_id: int
    target_depth: float
    phase: str
    depth_from: float
    depth_to: float
    shear_from: tuple[float, float]
    shear_to: tuple[float, float]


class IndentationScript:
    """Piecewise-linear indentation run; `sample(t)` is valid for any t (clamped to the run)."""

    def __init__(self, config: IndentationConfig):
        self.config = config
        self._positions = [(float(x), float(y)) for x, y in config.positions]
        self._segments = self._build_segments()
        self._starts = [segment.start for segment in self._segments]

    @property
    def duration(self) -> float:
        return self._segments[-1].end

    @property
    def num_episodes(self) -> int:
        return self._segments[-1].episode + 1

    def sample(self, t: float) -> ScriptSample:
        t = min(max(float(t), 0.0), self.duration)
        segment = self._segments[max(bisect.bisect_right(self._starts, t) - 1, 0)]
        span = segment.end - segment.start
        progress = min((t - segment.start) / span, 1.0)
        depth = segment.depth_from + progress * (segment.depth_to - segment.depth_from)
        shear_from, shear_to = np.asarray(segment.shear_from), np.asarray(segment.shear_to)
        x, y = self._positions[segment.position_id]
        return ScriptSample(time=t, episode=segment.episode, indenter=segment.indenter,
                            position_id=segment.position_id, x=x, y=y, depth=max(depth, 0.0),
                            target_depth=segment.target_depth,
                            shear=shear_from + progress * (shear_to - shear_from), phase=segment.phase)

    def _build_segments(self) -> list[_Segment]:
        cfg = self.config
        episodes = [(indenter, position_id, depth)
                    for indenter in cfg.indenters
                    for position_id in range(len(self._positions))
                    for depth in cfg.depths]
        rng = random.Random(cfg.seed)
        if cfg.seed is not None:
            rng.shuffle(episodes)

        segments: list[_Segment] = []
        clock = 0.0
        for episode, (indenter, position_id, depth) in enumerate(episodes):
            start_angle = rng.uniform(0.0, 2.0 * math.pi) if cfg.seed is not None else 0.0
            centre = (0.0, 0.0)
            ramps = [("approach", cfg.approach_time, 0.0, 0.0, centre, centre),
                     ("press", depth / cfg.press_speed, 0.0, depth, centre, centre),
                     ("press", cfg.hold_time, depth, depth, centre, centre)]
            shear_time = cfg.shear_radius / cfg.shear_speed
            for k in range(cfg.shear_points):
                angle = start_angle + 2.0 * math.pi * k / cfg.shear_points
                point = (cfg.shear_radius * math.cos(angle), cfg.shear_radius * math.sin(angle))
                ramps.append(("shear_out", shear_time, depth, depth, centre, point))
                ramps.append(("shear_back", shear_time, depth, depth, point, centre))
            ramps.append(("release", depth / cfg.release_speed, depth, 0.0, centre, centre))
            ramps.append(("idle", cfg.idle_time, 0.0, 0.0, centre, centre))
            for phase, seconds, depth_from, depth_to, shear_from, shear_to in ramps:
                if seconds <= 0.0:
                    continue
                segments.append(_Segment(clock, clock + seconds, episode, indenter, position_id, depth,
                                         phase, depth_from, depth_to, shear_from, shear_to))
                clock += seconds
        return segments
