"""Grasp choosers for the closed loop: (rgb, depth, intrinsics) -> (u, v, angle) or None.

Objects are found from depth alone (what sticks out of the table), never from the simulator's
segmentation: the table is the farthest large surface (the 90th percentile of the depth, the
camera looks straight down) and an object pixel is at least ``min_height_m`` nearer.

* ``random``: a random object pixel, a random angle (the issue's first baseline);
* ``analytic``: the centroid of one object's mask (the largest connected part whose width across
  its minor axis fits the opening, else the largest) with the jaws closing along its minor axis;
* ``model``: a grasp_map model (default: the shipped one) through ``GraspPlanner`` +
  ``decode_grasps`` with ``grasp_planner_node``'s default parameters, the depth given to a model
  that takes it, top-1 of those the node would publish (a grasp out of range is skipped, as the
  node does); no grasp is None.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import cv2
import numpy as np

from ...perception.grasp_angles import wrap_angle
from ...perception.grasp_map import Intrinsics
from .gripper import GripperConfig

PLANNERS = ("random", "analytic", "model")
# grasp_planner_node's parameter defaults (test_grasp_trials checks them against the node)
NODE_DEFAULTS = {"min_probability": 0.5, "top_k": 5, "nms_distance_px": 48.0, "angle_window": 1,
                 "min_range": 0.1, "max_range": 3.0}
MIN_HEIGHT_M = 0.006
MIN_AREA_PX = 30


class PixelGrasp(NamedTuple):
    u: float
    v: float
    angle: float  # grasp_angles convention, [0, pi)


Planner = Callable[[np.ndarray, np.ndarray, Intrinsics, np.random.Generator], "PixelGrasp | None"]


def object_mask(depth_m: np.ndarray, min_height_m: float = MIN_HEIGHT_M) -> np.ndarray:
    """Pixels at least ``min_height_m`` nearer than the table (bool H x W), small specks removed."""
    valid = np.isfinite(depth_m) & (depth_m > 0)
    if not valid.any():
        return np.zeros(depth_m.shape, bool)
    table = float(np.percentile(depth_m[valid], 90))
    mask = (valid & (depth_m < table - min_height_m)).astype(np.uint8)
    return cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)


def plan_random(rgb, depth_m, intrinsics: Intrinsics, rng: np.random.Generator) -> PixelGrasp | None:
    vs, us = np.nonzero(object_mask(depth_m))
    if us.size == 0:
        return None
    k = int(rng.integers(us.size))
    return PixelGrasp(float(us[k]), float(vs[k]), float(rng.uniform(0.0, math.pi)))


def minor_axis(us: np.ndarray, vs: np.ndarray) -> tuple[float, float, float, float]:
    """Centroid (u, v), minor-axis angle (grasp convention) and the extent (px) across it."""
    pts = np.stack([us, vs], 1).astype(np.float64)
    centre = pts.mean(0)
    _, evecs = np.linalg.eigh(np.cov((pts - centre).T) + 1e-9 * np.eye(2))
    minor = evecs[:, 0]  # eigh: ascending eigenvalues
    extent = float(np.ptp((pts - centre) @ minor))
    return float(centre[0]), float(centre[1]), float(wrap_angle(math.atan2(minor[1], minor[0]))), extent


def plan_analytic(rgb, depth_m, intrinsics: Intrinsics, rng: np.random.Generator,
                  opening_m: float = GripperConfig.max_opening_m) -> PixelGrasp | None:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(object_mask(depth_m).astype(np.uint8), connectivity=8)
    parts = []
    for label in range(1, count):
        if stats[label, cv2.CC_STAT_AREA] < MIN_AREA_PX:
            continue
        vs, us = np.nonzero(labels == label)
        u, v, angle, extent = minor_axis(us, vs)
        width_m = extent * float(np.median(depth_m[vs, us])) / intrinsics.fx
        parts.append((width_m <= opening_m, us.size, u, v, angle))
    if not parts:
        return None
    _, _, u, v, angle = max(parts)
    return PixelGrasp(u, v, angle)


class ModelPlanner:
    """The shipped grasp_map model as grasp_planner_node runs it (default parameters), top-1."""

    def __init__(self, model_path: str = "grasp_map.onnx", threads: int = 1):
        from ...inference.runtime import OnnxModel
        from ...paths import resolve
        from ...perception.grasp_map import GraspPlanner
        self.planner = GraspPlanner(OnnxModel(resolve("models", model_path), "grasp_map", providers=["cpu"],
                                              threads=threads))

    def __call__(self, rgb, depth_m, intrinsics: Intrinsics, rng: np.random.Generator) -> PixelGrasp | None:
        from ...perception.grasp_map import decode_grasps, grasp_position, position_problem
        d = NODE_DEFAULTS

        def placed(grasp) -> bool:   # as the node: a grasp without a plausible position is skipped
            xyz = grasp_position(grasp, intrinsics, depth_m)
            return xyz is not None and position_problem(xyz, d["min_range"], d["max_range"]) is None

        prob = self.planner.grasp_map(rgb, "rgb", depth_m)
        grasps = decode_grasps(prob, self.planner.layout, d["min_probability"], 1, d["nms_distance_px"],
                               d["angle_window"], keep=placed)
        return PixelGrasp(grasps[0].u, grasps[0].v, grasps[0].angle) if grasps else None


def make_planner(name: str, model_path: str = "grasp_map.onnx") -> Planner:
    if name == "random":
        return plan_random
    if name == "analytic":
        return plan_analytic
    if name == "model":
        return ModelPlanner(model_path)
    raise ValueError(f"planner must be one of {PLANNERS}, got {name!r}")
