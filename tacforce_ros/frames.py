"""The rig's static frames (config/frames.yaml) for /tf_static.

The launch files hand each frame to tf2_ros' static_transform_publisher, so rviz can place the
estimated wrench (in the frame of the force sensor the model was trained against) and the grasp
poses (in the camera's optical frame) in the robot's base frame. This module only reads and
checks the file; it is plain Python so the checks are tested without ROS.

"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

MAX_OFFSET_M = 100.0  # a rig is a few metres across; more is a unit mistake (mm for m)
_FRAME_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*")
_KEYS = {"parent", "child", "xyz", "rpy"}


class FramesError(ValueError):
    """A frames file that cannot be published; the message names the file and the entry."""


@dataclass(frozen=True)
class StaticFrame:
    """``child``'s pose in ``parent``: translation in m, roll/pitch/yaw in rad about the
    parent's fixed x, y, z axes (the order static_transform_publisher and URDF use).
    """

    parent: str
    child: str
    xyz: tuple[float, float, float]
    rpy: tuple[float, float, float]

    def quaternion(self) -> tuple[float, float, float, float]:
        """(x, y, z, w) of the same rotation."""
        (cr, sr), (cp, sp), (cy, sy) = ((math.cos(a / 2), math.sin(a / 2)) for a in self.rpy)
        return (sr * cp * cy - cr * sp * sy, cr * sp * cy + sr * cp * sy,
                cr * cp * sy - sr * sp * cy, cr * cp * cy + sr * sp * sy)

    def publisher_arguments(self) -> list[str]:
        """Command-line arguments of ``ros2 run tf2_ros static_transform_publisher``."""
        x, y, z = self.xyz
        roll, pitch, yaw = self.rpy
        return ["--x", repr(x), "--y", repr(y), "--z", repr(z), "--roll", repr(roll), "--pitch", repr(pitch),
                "--yaw", repr(yaw), "--frame-id", self.parent, "--child-frame-id", self.child]


def load_frames(path: str | Path) -> list[StaticFrame]:
    """Read the frames of a YAML file ``frames: [{parent, child, xyz, rpy}, ...]``, checked: valid
    names, finite numbers in range, each child with one parent, and no loops.
    """
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise FramesError(f"{path}: cannot read frames: {exc}") from None
    entries = doc.get("frames") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise FramesError(f"{path}: expected a list under 'frames:'")
    frames = [_frame(path, k, entry) for k, entry in enumerate(entries)]
    parent_of: dict[str, str] = {}
    for frame in frames:
        if frame.child in parent_of:
            raise FramesError(f"{path}: frame {frame.child!r} is given two parents "
                              f"({parent_of[frame.child]!r} and {frame.parent!r})")
        parent_of[frame.child] = frame.parent
    for frame in frames:
        seen, name = {frame.child}, frame.parent
        while name in parent_of:
            if name in seen:
                raise FramesError(f"{path}: frames {sorted(seen)} form a loop")
            seen.add(name)
            name = parent_of[name]
    return frames


def _frame(path: Path, index: int, entry) -> StaticFrame:
    where = f"{path}: frames[{index}]"
    if not isinstance(entry, dict) or set(entry) != _KEYS:
        raise FramesError(f"{where}: expected the keys {sorted(_KEYS)}, got {entry!r}")
    for key in ("parent", "child"):
        if not isinstance(entry[key], str) or not _FRAME_NAME.fullmatch(entry[key]):
            raise FramesError(f"{where}: {key} {entry[key]!r} is not a frame name (letters, digits, _, "
                              "no leading slash)")
    if entry["parent"] == entry["child"]:
        raise FramesError(f"{where}: frame {entry['child']!r} is its own parent")
    xyz, rpy = (_vector(where, key, entry[key]) for key in ("xyz", "rpy"))
    if max(abs(v) for v in xyz) > MAX_OFFSET_M:
        raise FramesError(f"{where}: xyz {list(xyz)} m is more than {MAX_OFFSET_M:g} m away; give metres")
    if max(abs(v) for v in rpy) > 2 * math.pi:
        raise FramesError(f"{where}: rpy {list(rpy)} is beyond 2 pi; give radians")
    return StaticFrame(entry["parent"], entry["child"], xyz, rpy)


def _vector(where: str, key: str, value) -> tuple[float, float, float]:
    ok = isinstance(value, list) and len(value) == 3 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if not ok:
        raise FramesError(f"{where}: {key} must be three finite numbers, got {value!r}")
    return tuple(float(v) for v in value)
