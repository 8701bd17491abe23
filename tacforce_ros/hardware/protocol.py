"""GenForce indentation protocol for a real robot, as a list of linear-move waypoints.

Frame: the robot base frame, z up. The sensor lies flat with its surface normal along base +z,
so pressing moves the TCP down; contact positions and shear points are offsets along base x
and y from the sensor centre (the x, y of `ProtocolConfig.start_pose`). The orientation of
`start_pose` is kept for every waypoint. Units: m, s, rad.

Depth is the indentation below the surface, measured downwards from `surface_z` (the TCP z at
which the indenter just touches): an in-contact waypoint has pose z = surface_z - depth; out of
contact the depth is 0 and the TCP is at the hover height (surface_z + approach_height) or the
travel height (z of start_pose).

Each episode is one press/release cycle at one contact position and depth, with the phases of
the simulator's script (`tacforce_ros.sim.indentation`):

    approach    to hover height above the contact position (depth 0)
    press       down to the depth (dwell)
    shear_out   for each shear point on the circle: slide out to it (dwell),
    shear_back      slide back to the press point (dwell)
    release     up to hover height (depth 0)
    idle        up to travel height above the position, rest out of contact

The run starts with a move to `start_pose` and ends with one back; these two travel waypoints
belong to no episode (episode and position_id -1, phase 'idle'). With `material_curve` there is
one episode at the centre that presses in fine depth steps and releases through the same steps,
without shear, for the loading/unloading force-depth curves of material compensation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..sim.indentation import corner_positions
from .robot import check_pose, trapezoid_duration

NO_EPISODE = -1
MAX_SPEED = 0.05  # m/s; nothing near the sensor moves faster (also catches mm/s given as m/s)


@dataclass
class ProtocolConfig:
    """What to press where, and how fast; see the module docstring for frame and units."""

    indenter: str
    start_pose: np.ndarray  # (6,) TCP above the sensor centre at travel height; orientation kept
    surface_z: float  # TCP z at which the indenter just touches the sensor surface
    positions: int = 5  # 1..5: centre, then corners at (+,+), (-,+), (-,-), (+,-) * position_step
    position_step: float = 4e-3
    depths: list[float] = field(default_factory=lambda: [0.25e-3, 0.5e-3, 0.75e-3, 1.0e-3])
    shear_points: int = 8  # on a circle around the press point, from angle 0 (+x) anticlockwise
    shear_radius: float = 1e-3
    approach_height: float = 2e-3  # hover height above the surface before pressing
    approach_speed: float = 0.01
    approach_acceleration: float = 0.1
    press_speed: float = 2e-3
    press_acceleration: float = 0.05
    shear_speed: float = 4e-3
    shear_acceleration: float = 0.05
    dwell: float = 0.2  # rest at each press, shear and material-curve point
    idle_time: float = 0.5  # rest out of contact at the end of each episode
    max_depth: float = 2e-3  # guard against depths given in mm, or deeper than the elastomer allows
    material_curve: bool = False
    material_depth_step: float = 0.1e-3

    def __post_init__(self) -> None:
        self.start_pose = check_pose(self.start_pose)
        self.depths = [float(d) for d in self.depths]
        if not self.indenter:
            raise ValueError("indenter name must not be empty")
        if not 1 <= self.positions <= 5:
            raise ValueError(f"positions must be 1..5, got {self.positions}")
        if not self.position_step > 0:
            raise ValueError(f"position_step must be positive, got {self.position_step}")
        if not self.depths or min(self.depths) <= 0:
            raise ValueError(f"depths must be a non-empty list of positive depths (m), got {self.depths}")
        if max(self.depths) > self.max_depth:
            raise ValueError(f"depth {max(self.depths)} m exceeds max_depth {self.max_depth} m "
                             "(depths are in metres)")
        if self.shear_points < 0 or self.shear_radius < 0:
            raise ValueError("shear_points and shear_radius must be non-negative")
        if not self.approach_height > 0:
            raise ValueError(f"approach_height must be positive, got {self.approach_height}")
        if self.start_pose[2] < self.surface_z + self.approach_height:
            raise ValueError(f"start_pose z {self.start_pose[2]} must be at least surface_z + "
                             f"approach_height = {self.surface_z + self.approach_height}")
        speeds = (self.approach_speed, self.press_speed, self.shear_speed)
        if not all(0 < s <= MAX_SPEED for s in speeds):
            raise ValueError(f"speeds must be in (0, {MAX_SPEED}] m/s, got {speeds}")
        accelerations = (self.approach_acceleration, self.press_acceleration, self.shear_acceleration)
        if min(accelerations) <= 0:
            raise ValueError(f"accelerations must be positive, got {accelerations}")
        if self.dwell < 0 or self.idle_time < 0:
            raise ValueError("dwell and idle_time must be non-negative")
        if self.material_curve and not 0 < self.material_depth_step <= max(self.depths):
            raise ValueError(f"material_depth_step must be in (0, max depth], got {self.material_depth_step}")


@dataclass(frozen=True, eq=False)
class Waypoint:
    """One linear move: go to `pose` at `speed`/`acceleration`, then rest `dwell` seconds."""

    pose: np.ndarray  # (6,) read-only, base frame
    speed: float
    acceleration: float
    dwell: float
    phase: str
    episode: int  # NO_EPISODE for the travel moves to and from start_pose
    position_id: int  # index into the contact positions; NO_EPISODE for travel moves
    depth: float  # m below the surface at `pose`, 0 out of contact
    indenter: str


def contact_offsets(config: ProtocolConfig) -> list[tuple[float, float]]:
    """(dx, dy) of the contact positions from the sensor centre, in base x, y (m)."""
    return corner_positions(config.position_step)[:config.positions]


def plan(config: ProtocolConfig) -> list[Waypoint]:
    """All waypoints of the run, in order."""
    cfg = config
    hover_z = cfg.surface_z + cfg.approach_height
    travel_z = float(cfg.start_pose[2])
    offsets = [(0.0, 0.0)] if cfg.material_curve else contact_offsets(cfg)
    waypoints: list[Waypoint] = []

    def add(dx: float, dy: float, z: float, speed: float, acceleration: float, dwell: float,
            phase: str, episode: int, position_id: int) -> None:
        pose = cfg.start_pose.copy()
        pose[:3] += (dx, dy, 0.0)
        pose[2] = z
        pose.setflags(write=False)
        depth = max(cfg.surface_z - z, 0.0)
        waypoints.append(Waypoint(pose, speed, acceleration, dwell, phase, episode, position_id,
                                  depth, cfg.indenter))

    def travel() -> None:
        add(0.0, 0.0, travel_z, cfg.approach_speed, cfg.approach_acceleration, 0.0, "idle",
            NO_EPISODE, NO_EPISODE)

    def episode(number: int, position_id: int, presses: list[float], releases: list[float],
                shear_depth: float | None) -> None:
        dx, dy = offsets[position_id]
        press = (cfg.press_speed, cfg.press_acceleration)
        add(dx, dy, hover_z, cfg.approach_speed, cfg.approach_acceleration, 0.0, "approach", number, position_id)
        for depth in presses:
            add(dx, dy, cfg.surface_z - depth, *press, cfg.dwell, "press", number, position_id)
        if shear_depth is not None:
            shear = (cfg.shear_speed, cfg.shear_acceleration)
            z = cfg.surface_z - shear_depth
            for k in range(cfg.shear_points):
                angle = 2.0 * math.pi * k / cfg.shear_points
                sx, sy = cfg.shear_radius * math.cos(angle), cfg.shear_radius * math.sin(angle)
                add(dx + sx, dy + sy, z, *shear, cfg.dwell, "shear_out", number, position_id)
                add(dx, dy, z, *shear, cfg.dwell, "shear_back", number, position_id)
        for depth in releases:
            add(dx, dy, cfg.surface_z - depth, *press, cfg.dwell, "release", number, position_id)
        add(dx, dy, hover_z, *press, 0.0, "release", number, position_id)
        add(dx, dy, travel_z, cfg.approach_speed, cfg.approach_acceleration, cfg.idle_time, "idle",
            number, position_id)

    travel()
    if cfg.material_curve:
        count = math.floor(max(cfg.depths) / cfg.material_depth_step + 1e-9)
        depths = [k * cfg.material_depth_step for k in range(1, count + 1)]
        episode(0, 0, depths, depths[-2::-1], None)
    else:
        pairs = [(position_id, depth) for position_id in range(len(offsets)) for depth in cfg.depths]
        for number, (position_id, depth) in enumerate(pairs):
            episode(number, position_id, [depth], [], depth if cfg.shear_points else None)
    travel()
    return waypoints


def describe(waypoints: list[Waypoint]) -> str:
    """Return a table of every waypoint for a dry run, with an estimate of the run time."""
    header = (f"{'#':>4} {'ep':>3} {'pos':>3} {'indenter':<10} {'phase':<10} {'depth mm':>8} "
              f"{'x mm':>9} {'y mm':>9} {'z mm':>9} {'v mm/s':>7} {'dwell s':>7}")
    lines = [header, "-" * len(header)]
    seconds = 0.0
    previous = waypoints[0].pose if waypoints else None
    for index, w in enumerate(waypoints):
        x, y, z = (1e3 * w.pose[:3]).tolist()
        lines.append(f"{index:>4} {w.episode:>3} {w.position_id:>3} {w.indenter:<10.10} {w.phase:<10} "
                     f"{1e3 * w.depth:>8.3f} {x:>9.3f} {y:>9.3f} {z:>9.3f} {1e3 * w.speed:>7.2f} {w.dwell:>7.2f}")
        distance = float(np.linalg.norm(w.pose[:3] - previous[:3]))
        seconds += trapezoid_duration(distance, w.speed, w.acceleration) + w.dwell
        previous = w.pose
    episodes = len({w.episode for w in waypoints} - {NO_EPISODE})
    lines.append(f"{len(waypoints)} waypoints, {episodes} episodes, about {seconds:.1f} s "
                 "(from the first waypoint, without controller overheads)")
    return "\n".join(lines)
