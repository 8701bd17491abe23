"""A simulated top-down RGB-D camera over the synthetic grasp scenes (for the planner node).

The camera looks straight down at the table from ``height_m``: its optical z axis is the table
normal, pixel u/v run along optical x/y (REP-103 optical frame), and the table is the plane
z = height_m. ``SceneConfig.pixels_per_metre`` is the scale at the table, so fx = fy =
pixels_per_metre * height_m. Depth is the aligned 16UC1 image in millimetres (REP-118); each
object is a prism of its own height.
"""
from __future__ import annotations

import numpy as np

from .grasp_scenes import Scene, SceneConfig

OBJECT_HEIGHTS_M = (0.03, 0.045, 0.06, 0.075)  # object label k stands OBJECT_HEIGHTS_M[k % 4] tall


def camera_matrix(config: SceneConfig, height_m: float) -> list[float]:
    """CameraInfo.k (row-major 3x3) of the top-down camera."""
    if not height_m > 0:
        raise ValueError(f"camera height must be > 0 m, got {height_m}")
    f = config.pixels_per_metre * height_m
    return [f, 0.0, (config.width - 1) / 2, 0.0, f, (config.height - 1) / 2, 0.0, 0.0, 1.0]


def table_plane(height_m: float) -> list[float]:
    """Return the table as (a, b, c, d) with a x + b y + c z = d in the optical frame."""
    return [0.0, 0.0, 1.0, float(height_m)]


def depth_mm(scene: Scene, height_m: float) -> np.ndarray:
    """uint16 depth (mm) aligned with ``scene.image``: the table, minus each object's height."""
    heights = np.array([0.0, *(OBJECT_HEIGHTS_M[k % len(OBJECT_HEIGHTS_M)]
                               for k in range(1, scene.labels.max() + 1))])
    depth = (height_m - heights[scene.labels]) * 1000.0
    return np.round(depth).astype(np.uint16)
