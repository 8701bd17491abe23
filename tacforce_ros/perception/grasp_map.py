"""Dense grasp-angle maps -> ranked grasps, camera-frame poses and an rviz overlay (no ROS here).

A grasp_map model (GraspNet, seed 001) outputs P(success) as float32 [rows, cols, bins]. Cell
(row, col) is the grasp centred at pixel (u, v) = (offset + stride * col, offset + stride * row)
of the input image; bin b is the angle range [b*pi/B, (b+1)*pi/B) of
``grasp_angles`` (closing line from +u towards +v), decoded to its centre. The model's
metadata carries stride, offset and bins; ``GraspMapLayout.from_metadata`` reads them so a
model trained with another bin count or stride decodes correctly.

Poses are in the camera's optical frame (REP-103: x right, y down, z forward). The grasp
orientation is a rotation by the grasp angle about the optical axis, so the pose's x axis is
the jaw closing direction in the image plane; position comes from an aligned depth image
(median of valid pixels around the centre) or, without depth, from where the pixel's ray meets
the table plane. A workspace box (``in_workspace``) bounds where a published grasp may lie;
``decode_grasps``' ``keep`` skips the others before top_k is counted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from ..inference.contract import GRASP_MAP, NonFiniteOutput
from ..inference.runtime import OnnxModel
from .grasp_angles import bin_to_angle
from .image import ColorOrder, to_model_channels

TASK = GRASP_MAP
OUTPUT = "grasp_probability"
# How angles and cells are encoded; written into every grasp_map model's metadata.
ANGLE_CONVENTION = ("theta in [0, pi): jaw closing line from image +u (right) towards +v (down); "
                    "bin b covers [b*pi/bins, (b+1)*pi/bins), decoded to its centre (b+0.5)*pi/bins")
CELL_TO_PIXEL = "u = offset_px + stride_px * col, v = offset_px + stride_px * row (pixel centres)"
# plausible focal lengths as multiples of the image width: a field of view of ~169 deg .. ~3 deg
FOCAL_RANGE = (0.05, 20.0)


class GraspMapError(ValueError):
    """A map that does not fit the model's layout, or non-finite probabilities."""


class NonFiniteMap(GraspMapError, NonFiniteOutput):
    """Non-finite probabilities: a map error that nodes count as errors_non_finite."""


@dataclass(frozen=True)
class GraspMapLayout:
    rows: int
    cols: int
    bins: int
    stride: float
    offset: float

    @classmethod
    def from_metadata(cls, outputs: dict, source: str = "model") -> "GraspMapLayout":
        try:
            spec = outputs[OUTPUT]
            rows, cols, bins = (int(x) for x in spec["shape"])
            layout = cls(rows, cols, bins, float(spec["stride_px"]), float(spec["offset_px"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise GraspMapError(f"{source}: output {OUTPUT!r} lacks shape/stride_px/offset_px ({exc!r})") from None
        if min(rows, cols, bins) < 1 or layout.stride <= 0:
            raise GraspMapError(f"{source}: bad grasp map layout {layout}")
        return layout

    def cell_centre(self, row, col) -> tuple[np.ndarray, np.ndarray]:
        """Pixel (u, v) of cell centres (scalars or arrays)."""
        return (self.offset + self.stride * np.asarray(col, np.float64),
                self.offset + self.stride * np.asarray(row, np.float64))

    def cell_of(self, u, v) -> tuple[np.ndarray, np.ndarray]:
        """(row, col) of the cell whose centre is nearest to pixel (u, v), clipped to the map."""
        col = np.clip(np.floor((np.asarray(u, np.float64) - self.offset) / self.stride + 0.5), 0, self.cols - 1)
        row = np.clip(np.floor((np.asarray(v, np.float64) - self.offset) / self.stride + 0.5), 0, self.rows - 1)
        return row.astype(np.int64), col.astype(np.int64)


@dataclass(frozen=True)
class Grasp:
    """One decoded grasp: centre pixel, angle (rad, grasp_angles convention), P(success) of its
    cell and bin, and the ranking score (P averaged over the neighbouring angle bins).
    """

    u: float
    v: float
    angle: float
    probability: float
    row: int
    col: int
    bin: int
    score: float = 0.0


def check_map(prob: np.ndarray, layout: GraspMapLayout) -> np.ndarray:
    """Return the model output as float32 [rows, cols, bins]; wrong shape or NaN is a GraspMapError."""
    prob = np.asarray(prob, np.float32)
    if prob.ndim == 4 and prob.shape[0] == 1:
        prob = prob[0]
    if prob.shape != (layout.rows, layout.cols, layout.bins):
        raise GraspMapError(f"grasp map has shape {prob.shape}, layout says "
                            f"{(layout.rows, layout.cols, layout.bins)}")
    if not np.isfinite(prob).all():
        raise NonFiniteMap("grasp map has non-finite probabilities; frame dropped")
    return prob


def angle_score(prob: np.ndarray, window: int = 1) -> np.ndarray:
    """P averaged over each bin and its ``window`` neighbours on either side with binomial
    weights (1-2-1 for window 1, so a bin outranks its neighbours on a tie; angles wrap at pi).

    A grasp whose neighbouring angles would also hold tolerates the up-to-half-a-bin angle error
    of decoding to the bin centre and the robot's own error; ranking by this score picked grasps
    that hold more often on validation scenes of the training shapes (README, grasp planning).
    """
    if window <= 0:
        return prob
    weights = [math.comb(2 * window, k + window) for k in range(-window, window + 1)]
    return sum(w * np.roll(prob, k, axis=2) for w, k in zip(weights, range(-window, window + 1))) / sum(weights)


def decode_grasps(prob: np.ndarray, layout: GraspMapLayout, min_probability: float = 0.5,
                  top_k: int = 5, nms_distance_px: float = 48.0, angle_window: int = 1,
                  keep: Callable[[Grasp], bool] | None = None) -> list[Grasp]:
    """Best grasps, best first: per cell the bin with the highest ``angle_score``, ranked by
    that score, then greedy non-maximum suppression (a grasp closer than ``nms_distance_px``
    to a better one is dropped); at most ``top_k``, each with P >= ``min_probability``.

    A grasp ``keep`` refuses (e.g. outside the workspace) is skipped before it counts towards
    ``top_k`` or suppresses a neighbour, so the result is the best ``top_k`` that ``keep`` accepts;
    ``keep`` sees only grasps that survived suppression, in rank order.
    """
    prob = check_map(prob, layout)
    if top_k < 1:
        return []
    score = angle_score(prob, angle_window)
    best_bin = score.argmax(axis=2)
    best = np.take_along_axis(score, best_bin[..., None], axis=2)[..., 0]
    order = np.argsort(-best, axis=None, kind="stable")
    kept: list[Grasp] = []
    for flat in order:
        row, col = divmod(int(flat), layout.cols)
        b = int(best_bin[row, col])
        p = float(prob[row, col, b])
        if p < min_probability:
            continue
        u, v = (float(x) for x in layout.cell_centre(row, col))
        if any(math.hypot(u - g.u, v - g.v) < nms_distance_px for g in kept):
            continue
        grasp = Grasp(u, v, float(bin_to_angle(b, layout.bins)), p, row, col, b, float(best[row, col]))
        if keep is not None and not keep(grasp):
            continue
        kept.append(grasp)
        if len(kept) == top_k:
            break
    return kept


class GraspPlanner:
    """One grasp_map model and its layout: a decoded camera frame in, (map, ranked grasps) out."""

    def __init__(self, model: OnnxModel):
        model.metadata.check_task(TASK, str(model.path))
        self.model = model
        self.layout = GraspMapLayout.from_metadata(model.metadata.outputs, str(model.path))
        self._order: ColorOrder = "bgr" if model.metadata.input.encoding == "bgr8" else "rgb"
        # (low, high) pixels per metre at the table in the training data, when the metadata says
        scale = (model.metadata.training.get("train") or {}).get("table_px_per_m")
        self.trained_scale: tuple[float, float] | None = (float(scale[0]), float(scale[1])) if scale else None

    @property
    def needs_depth(self) -> bool:
        """Tell whether the model takes aligned depth beside the colour image (GG-CNN style)."""
        return self.model.metadata.input.depth is not None

    def grasp_map(self, image: np.ndarray, order: ColorOrder, depth_m: np.ndarray | None = None) -> np.ndarray:
        """P(success) [rows, cols, bins] for an H x W x C uint8 frame in channel ``order``; a model
        that ``needs_depth`` also takes the aligned depth (H x W metres, 0 or NaN: no reading),
        and without it raises GraspMapError.
        """
        image = to_model_channels(image, order, self._order)
        self.model.metadata.input.check_image(image.shape)
        if self.needs_depth:
            if depth_m is None:
                raise GraspMapError("this grasp_map model takes aligned depth; no depth frame for this image")
            if depth_m.shape[:2] != image.shape[:2]:
                raise GraspMapError(f"depth {depth_m.shape[1]}x{depth_m.shape[0]} is not aligned to the "
                                    f"{image.shape[1]}x{image.shape[0]} colour image")
        outputs, _ = self.model.run(np.ascontiguousarray(image)[np.newaxis],
                                    depth=depth_m if self.needs_depth else None)
        return check_map(outputs[OUTPUT], self.layout)


# --------------------------------------------------------------------------- poses

@dataclass(frozen=True)
class Intrinsics:
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_k(cls, k) -> "Intrinsics":
        """From CameraInfo.k (row-major 3x3)."""
        k = [float(x) for x in k]
        if len(k) != 9 or not (k[0] > 0 and k[4] > 0) or not all(map(math.isfinite, k)):
            raise ValueError(f"camera matrix K must be 9 finite numbers with fx, fy > 0, got {k}")
        return cls(k[0], k[4], k[2], k[5])

    @classmethod
    def from_camera_info(cls, k, width: int, height: int) -> "Intrinsics":
        """From CameraInfo.k, refused (ValueError) when implausible for a ``width`` x ``height``
        image: fx, fy outside FOCAL_RANGE times the width, or the principal point outside the
        image (a size of 0, not given, checks K alone).
        """
        intrinsics = cls.from_k(k)
        if width > 0 and height > 0:
            low, high = (f * width for f in FOCAL_RANGE)
            if not (low <= intrinsics.fx <= high and low <= intrinsics.fy <= high):
                raise ValueError(f"fx {intrinsics.fx:g}, fy {intrinsics.fy:g} px outside {FOCAL_RANGE[0]:g}.."
                                 f"{FOCAL_RANGE[1]:g} x the image width {width}")
            if not (0 <= intrinsics.cx <= width and 0 <= intrinsics.cy <= height):
                raise ValueError(f"principal point ({intrinsics.cx:g}, {intrinsics.cy:g}) outside the "
                                 f"{width}x{height} image")
        return intrinsics

    def ray(self, u: float, v: float) -> np.ndarray:
        """Direction (z = 1) of pixel (u, v) in the optical frame."""
        return np.array([(u - self.cx) / self.fx, (v - self.cy) / self.fy, 1.0])


def depth_at(depth_m: np.ndarray, u: float, v: float, radius: int = 3) -> float | None:
    """Median of the valid (finite, > 0) depths in a (2r+1)^2 window at (u, v), or None."""
    h, w = depth_m.shape[:2]
    iu, iv = int(round(u)), int(round(v))
    if not (0 <= iu < w and 0 <= iv < h):
        return None
    window = depth_m[max(0, iv - radius):iv + radius + 1, max(0, iu - radius):iu + radius + 1]
    valid = window[np.isfinite(window) & (window > 0)]
    return float(np.median(valid)) if valid.size else None


def table_point(ray: np.ndarray, plane: np.ndarray) -> np.ndarray | None:
    """Where ``ray`` from the optical centre meets plane (a, b, c, d): a x + b y + c z = d."""
    normal, d = np.asarray(plane[:3], np.float64), float(plane[3])
    denom = float(normal @ ray)
    if abs(denom) < 1e-9:
        return None
    t = d / denom
    return ray * t if t > 0 else None


def grasp_position(grasp: Grasp, intrinsics: Intrinsics, depth_m: np.ndarray | None = None,
                   table_plane=None) -> np.ndarray | None:
    """Grasp centre (x, y, z) in metres, optical frame; depth first, else the table plane."""
    ray = intrinsics.ray(grasp.u, grasp.v)
    if depth_m is not None:
        z = depth_at(depth_m, grasp.u, grasp.v)
        if z is not None:
            return ray * z
    if table_plane is not None:
        return table_point(ray, np.asarray(table_plane, np.float64))
    return None


def position_problem(xyz: np.ndarray, min_range: float, max_range: float) -> str | None:
    """Why a grasp position (optical frame, m) cannot be real, or None: not finite, nearer than
    ``min_range`` along the optical axis, or farther than ``max_range`` from the camera (a
    saturated depth pixel, a wrong CameraInfo).
    """
    if not np.isfinite(xyz).all():
        return "position is not finite"
    distance = float(np.linalg.norm(xyz))
    if xyz[2] < min_range or distance > max_range:
        return (f"position ({xyz[0]:.3g}, {xyz[1]:.3g}, {xyz[2]:.3g}) m outside the camera's range: z >= "
                f"{min_range:g} m, distance <= {max_range:g} m")
    return None


def point_problem(xyz) -> str | None:
    """Why ``xyz`` cannot be a workspace corner, or None: it must be three finite numbers (m)."""
    if len(xyz) != 3 or not all(math.isfinite(c) for c in xyz):
        return "must be three finite numbers [x, y, z] in metres"
    return None


def box_problem(low, high) -> str | None:
    """Why [low, high] is an empty workspace box, or None: low must be below high on every axis."""
    axes = [f"{axis} ({lo:g} >= {hi:g})" for axis, lo, hi in zip("xyz", low, high) if not lo < hi]
    return f"must be below workspace_max on every axis, not on {', '.join(axes)}" if axes else None


def in_workspace(xyz: np.ndarray, low, high) -> bool:
    """Tell whether the position ``xyz`` (m) lies in the axis-aligned box [low, high], faces included."""
    xyz = np.asarray(xyz, np.float64)
    return bool(np.isfinite(xyz).all() and (xyz >= low).all() and (xyz <= high).all())


def table_scale(depth_m: np.ndarray, intrinsics: Intrinsics) -> float | None:
    """Pixels per metre at the table as the camera sees it: fy over the median valid depth (a
    top-down camera sees mostly table), or None without a valid depth.
    """
    valid = depth_m[np.isfinite(depth_m) & (depth_m > 0)]
    return float(intrinsics.fy / np.median(valid)) if valid.size else None


def scale_problem(px_per_m: float, trained, tolerance: float = 0.1) -> str | None:
    """Why a frame at ``px_per_m`` lies beyond the ``trained`` (low, high) pixels per metre at the
    table (more than ``tolerance`` outside), or None. A grasp map works in pixels: a camera farther,
    nearer or with another focal length than in training shows objects at sizes it never learned.
    """
    low, high = trained
    if low * (1 - tolerance) <= px_per_m <= high * (1 + tolerance):
        return None
    return (f"the table is seen at {px_per_m:.0f} px/m, the model was trained at {low:.0f}-{high:.0f} px/m "
            "(camera height or focal length outside its training range); grasps may be worse than its card says")


def grasp_quaternion(angle: float) -> tuple[float, float, float, float]:
    """(x, y, z, w): rotation by ``angle`` about the optical z axis (x -> closing direction)."""
    return 0.0, 0.0, math.sin(angle / 2), math.cos(angle / 2)


def jaw_length_px(opening_m: float, fx: float, z_m: float) -> float:
    return opening_m * fx / z_m


# --------------------------------------------------------------------------- overlay

def heatmap_overlay(image_rgb: np.ndarray, prob: np.ndarray, layout: GraspMapLayout,
                    grasps: list[Grasp], jaw_px: float = 80.0, alpha: float = 0.45,
                    min_probability: float = 0.5) -> np.ndarray:
    """RGB image with max-over-bins P(success) as a colour map, blended at ``alpha`` only where
    it is at least ``min_probability`` (elsewhere the camera image shows unchanged, so the scene
    stays visible), and the grasps drawn as jaw lines (best in white, others in black) with a
    dot at the centre.
    """
    h, w = image_rgb.shape[:2]
    full = _pixel_map(check_map(prob, layout).max(axis=2), layout, w, h)
    heat = cv2.applyColorMap(np.clip(full * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    base = np.ascontiguousarray(image_rgb if image_rgb.shape[2] == 3 else np.repeat(image_rgb, 3, axis=2))
    blended = cv2.addWeighted(base, 1 - alpha, np.ascontiguousarray(heat), alpha, 0)
    out = np.where((full >= min_probability)[..., None], blended, base)
    for i, g in reversed(list(enumerate(grasps))):
        du, dv = math.cos(g.angle) * jaw_px / 2, math.sin(g.angle) * jaw_px / 2
        colour = (255, 255, 255) if i == 0 else (0, 0, 0)
        p0, p1 = (round(g.u - du), round(g.v - dv)), (round(g.u + du), round(g.v + dv))
        cv2.line(out, p0, p1, colour, 2, cv2.LINE_AA)
        for end in (p0, p1):  # the fingers, across the closing line
            ex, ey = -math.sin(g.angle) * 8, math.cos(g.angle) * 8
            cv2.line(out, (round(end[0] - ex), round(end[1] - ey)), (round(end[0] + ex), round(end[1] + ey)),
                     colour, 3, cv2.LINE_AA)
        cv2.circle(out, (round(g.u), round(g.v)), 4, colour, -1, cv2.LINE_AA)
    return out


def _pixel_map(cells: np.ndarray, layout: GraspMapLayout, width: int, height: int) -> np.ndarray:
    """Render a [rows, cols] per-cell map as a ``width`` x ``height`` image: each cell's value at its
    centre pixel, linearly interpolated between centres.
    """
    cell_img = cv2.resize(cells, (round(layout.cols * layout.stride), round(layout.rows * layout.stride)),
                          interpolation=cv2.INTER_LINEAR)
    shift = layout.offset - layout.stride / 2
    m = np.float32([[1, 0, shift], [0, 1, shift]])
    return cv2.warpAffine(cell_img, m, (width, height), borderMode=cv2.BORDER_REPLICATE)
