"""Synthetic top-down table scenes and a robot-like parallel-jaw grasp labeller.

Why: the dense grasp-angle FCN (seed 001, after Pinto & Gupta) learns from self-supervised robot
trials, one grasp per 227-px patch: (centre, angle, success). This module stands in for the robot
so the whole pipeline can be trained and tested without hardware, with held-out shapes for a
generalisation check. Real trials use the same folder/CSV format
(``grasp_attempts.write_attempt_csv``).

Conventions: pixels (u, v) = (column, row), v down. Grasp angles follow
``tacforce_ros.perception.grasp_angles``: theta in [0, pi) is the direction of the jaw closing
line from +u towards +v. Object orientations use the same rule for their major (length) axis.
Metric sizes convert with ``SceneConfig.pixels_per_metre`` (the camera looks straight down, so
the scale is the same everywhere on the table).

The labeller (``grasp_labels``) is geometric, not physical: a grasp succeeds when the closing
line through the centre meets exactly one object, that object's width along the line fits in the
opening, the centre lies between its two contacts (not an empty grasp), and both fingers start in
free space (no collision while descending). Friction, slip and mass are ignored.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import cv2
import numpy as np

SHAPES = ("box", "cylinder", "ellipse", "bar", "triangle", "ring", "L", "cross", "hexagon")
# never in the shipped grasp_map model's training scenes; its held-out evaluation uses only these
HELD_OUT_SHAPES = ("ring", "cross", "triangle")
TRAIN_SHAPES = tuple(s for s in SHAPES if s not in HELD_OUT_SHAPES)
TEXTURES = ("plain", "stripes", "noise")
TABLE_TEXTURES = ("plain", "grain", "noise")

_SUBPIXEL_SHIFT = 4  # cv2 fixed-point bits for polygon vertices
_PLACEMENT_TRIES = 40


def check_range(name: str, value: Sequence[float], low: float = 0.0) -> None:
    if len(value) != 2 or not value[0] <= value[1] or value[0] < low:
        raise ValueError(f"{name} must be (min, max) with {low} <= min <= max, got {value!r}")


@dataclass(frozen=True)
class SceneConfig:
    """Scene appearance, object population and gripper geometry. Sizes in px unless named _m."""

    height: int = 480
    width: int = 640
    objects_range: tuple[int, int] = (1, 5)  # inclusive
    shapes: tuple[str, ...] = SHAPES  # exclude held-out shapes here for training scenes
    size_range_px: tuple[float, float] = (30.0, 110.0)  # characteristic size (length/diameter)
    aspect_range: tuple[float, float] = (0.3, 0.8)  # width / length of boxes and ellipses
    bar_length_range_px: tuple[float, float] = (110.0, 220.0)
    bar_width_range_px: tuple[float, float] = (12.0, 30.0)
    max_overlap: float = 0.05  # fraction of a new object's area allowed on older objects
    textures: tuple[str, ...] = TEXTURES
    table_rgb: tuple[int, int, int] = (150, 125, 95)
    table_texture: str = "grain"
    lighting_gradient: float = 0.25  # relative brightness change across the image
    shadow_strength: float = 0.3
    noise_std: float = 3.0  # camera noise, grey levels
    seed: int = 0
    pixels_per_metre: float = 1000.0
    jaw_opening_m: float = 0.085  # maximum grasp width (Robotiq 2F-85 like)
    finger_width_m: float = 0.02  # finger extent across the closing line
    finger_thickness_m: float = 0.01  # finger extent along the closing line, outwards
    min_grasp_width_m: float = 0.004  # thinner contacts (a corner, a sliver) slip out
    centre_tolerance_px: float = 3.0  # how far outside the contacts the centre may lie

    def __post_init__(self) -> None:
        if self.height < 16 or self.width < 16:
            raise ValueError(f"image must be at least 16x16, got {self.height}x{self.width}")
        check_range("objects_range", self.objects_range)
        if not self.shapes:
            raise ValueError("shapes must not be empty")
        unknown = set(self.shapes) - set(SHAPES)
        if unknown:
            raise ValueError(f"unknown shapes {sorted(unknown)}; known: {SHAPES}")
        check_range("size_range_px", self.size_range_px, 4.0)
        check_range("aspect_range", self.aspect_range, 0.05)
        if self.aspect_range[1] > 1.0:
            raise ValueError(f"aspect_range must be within (0, 1], got {self.aspect_range!r}")
        check_range("bar_length_range_px", self.bar_length_range_px, 4.0)
        check_range("bar_width_range_px", self.bar_width_range_px, 2.0)
        unknown = set(self.textures) - set(TEXTURES)
        if not self.textures or unknown:
            raise ValueError(f"textures must be a non-empty subset of {TEXTURES}, got {self.textures!r}")
        if self.table_texture not in TABLE_TEXTURES:
            raise ValueError(f"table_texture must be one of {TABLE_TEXTURES}, got {self.table_texture!r}")
        if not 0.0 <= self.max_overlap < 1.0:
            raise ValueError(f"max_overlap must be in [0, 1), got {self.max_overlap}")
        for name in ("pixels_per_metre", "jaw_opening_m", "finger_width_m", "finger_thickness_m"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.noise_std < 0 or self.centre_tolerance_px < 0 or self.min_grasp_width_m < 0:
            raise ValueError("noise_std, centre_tolerance_px and min_grasp_width_m must be >= 0")

    def metres_to_px(self, metres: float) -> float:
        return metres * self.pixels_per_metre


@dataclass(frozen=True)
class SceneObject:
    """One object: ``label`` in the mask, centre (u, v) px, major-axis orientation, size in px."""

    label: int
    shape: str
    centre: tuple[float, float]
    orientation: float  # major (length) axis, radians in [0, pi), grasp-angle convention
    length_px: float  # extent along the orientation axis
    width_px: float  # extent across it (<= length_px)
    colour: tuple[int, int, int] = (0, 0, 0)
    texture: str = "plain"


@dataclass
class Scene:
    """Rendered RGB image, per-object integer label mask (0 = table) and the object list."""

    image: np.ndarray  # uint8 H x W x 3, RGB
    labels: np.ndarray  # int32 H x W
    objects: list[SceneObject] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.labels.ndim != 2:
            raise ValueError(f"labels must be H x W, got shape {self.labels.shape}")
        if self.image.shape[:2] != self.labels.shape:
            raise ValueError(f"image {self.image.shape} and labels {self.labels.shape} differ in size")


# --------------------------------------------------------------------------- geometry

def _local_polygons(shape: str, rng: np.random.Generator, config: SceneConfig):
    """Outline (and holes) of a shape in its own frame, x along the major axis, centred at 0.

    Returns (outlines, holes, length, width).
    """
    s = rng.uniform(*config.size_range_px)
    circle = np.linspace(0.0, 2 * math.pi, 64, endpoint=False)
    unit = np.stack([np.cos(circle), np.sin(circle)], axis=1)
    if shape == "box":
        w = s * rng.uniform(*config.aspect_range)
        return [np.array([[-s, -w], [s, -w], [s, w], [-s, w]]) / 2], [], s, w
    if shape == "bar":
        length = rng.uniform(*config.bar_length_range_px)
        w = min(rng.uniform(*config.bar_width_range_px), length)
        return [np.array([[-length, -w], [length, -w], [length, w], [-length, w]]) / 2], [], length, w
    if shape == "cylinder":
        return [unit * s / 2], [], s, s
    if shape == "ellipse":
        w = s * rng.uniform(*config.aspect_range)
        return [unit * np.array([s / 2, w / 2])], [], s, w
    if shape == "hexagon":
        angles = np.arange(6) * math.pi / 3
        return [np.stack([np.cos(angles), np.sin(angles)], axis=1) * s / 2], [], s, s * math.sqrt(3) / 2
    if shape == "triangle":
        h = s * math.sqrt(3) / 2  # equilateral, base along x, centroid at the origin
        return [np.array([[-s / 2, h / 3], [s / 2, h / 3], [0.0, -2 * h / 3]])], [], s, h
    if shape == "ring":
        inner = rng.uniform(0.45, 0.7)
        return [unit * s / 2], [unit * s * inner / 2], s, s
    t = max(s * rng.uniform(0.25, 0.4), 6.0)
    if shape == "L":
        pts = np.array([[0, 0], [s, 0], [s, t], [t, t], [t, s], [0, s]], dtype=np.float64)
        return [pts - s / 2], [], s, s
    if shape == "cross":
        a, b = s / 2, t / 2
        pts = np.array([[-a, -b], [-b, -b], [-b, -a], [b, -a], [b, -b], [a, -b],
                        [a, b], [b, b], [b, a], [-b, a], [-b, b], [-a, b]])
        return [pts], [], s, s
    raise ValueError(f"unknown shape {shape!r}")


def _place(points: np.ndarray, centre: tuple[float, float], orientation: float) -> np.ndarray:
    c, s = math.cos(orientation), math.sin(orientation)
    rot = np.array([[c, -s], [s, c]])  # local x -> (cos, sin) in (u, v)
    return points @ rot.T + np.asarray(centre)


def _fill(canvas: np.ndarray, polygons: Iterable[np.ndarray], value: int) -> None:
    scale = 1 << _SUBPIXEL_SHIFT
    pts = [np.round(p * scale)  # pixel centres at integers
           .astype(np.int32).reshape(-1, 1, 2) for p in polygons]
    if pts:
        cv2.fillPoly(canvas, pts, value, lineType=cv2.LINE_8, shift=_SUBPIXEL_SHIFT)


def rasterise(shape_outlines: Sequence[np.ndarray], holes: Sequence[np.ndarray],
              size: tuple[int, int]) -> np.ndarray:
    """Boolean H x W footprint of outlines (pixel coords (u, v)) minus holes."""
    canvas = np.zeros(size, np.uint8)
    _fill(canvas, shape_outlines, 1)
    _fill(canvas, holes, 0)
    return canvas.astype(bool)


# --------------------------------------------------------------------------- rendering

def _smooth_noise(rng: np.random.Generator, size: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-ish amplitude low-frequency noise."""
    field_ = cv2.GaussianBlur(rng.standard_normal(size).astype(np.float32), (0, 0), sigma)
    return field_ / (np.abs(field_).max() + 1e-6)


def _stripes(size: tuple[int, int], angle: float, period: float, phase: float) -> np.ndarray:
    v, u = np.mgrid[0:size[0], 0:size[1]].astype(np.float32)
    return np.sin((u * math.cos(angle) + v * math.sin(angle)) * (2 * math.pi / period) + phase)


def _render(labels: np.ndarray, objects: list[SceneObject], rng: np.random.Generator,
            config: SceneConfig) -> np.ndarray:
    size = labels.shape
    base = np.clip(np.array(config.table_rgb, np.float32) + rng.normal(0, 12, 3), 0, 255)
    image = np.broadcast_to(base, size + (3,)).astype(np.float32).copy()
    if config.table_texture == "grain":
        grain = _stripes(size, rng.uniform(0, math.pi), rng.uniform(6, 14), rng.uniform(0, 6.3))
        grain = grain * (0.5 + 0.5 * _smooth_noise(rng, size, 20.0))
        image *= (1.0 + 0.06 * grain)[..., None]
    elif config.table_texture == "noise":
        image *= (1.0 + 0.08 * _smooth_noise(rng, size, 3.0))[..., None]
    occupied = (labels > 0).astype(np.float32)
    if config.shadow_strength > 0 and objects:
        shift = np.float32([[1, 0, 4], [0, 1, 4]])
        shadow = cv2.GaussianBlur(cv2.warpAffine(occupied, shift, size[::-1]), (0, 0), 3.0)
        image *= (1.0 - config.shadow_strength * shadow)[..., None]
    for obj in objects:
        inside = labels == obj.label
        if not inside.any():
            continue
        shade = np.ones(size, np.float32)
        if obj.texture == "stripes":
            shade += 0.15 * _stripes(size, obj.orientation + rng.uniform(0, math.pi),
                                     rng.uniform(5, 15), rng.uniform(0, 6.3))
        elif obj.texture == "noise":
            shade += 0.12 * _smooth_noise(rng, size, 1.5)
        image[inside] = np.array(obj.colour, np.float32) * shade[inside][:, None]
    angle = rng.uniform(0, 2 * math.pi)
    v, u = np.mgrid[0:size[0], 0:size[1]].astype(np.float32)
    ramp = (u * math.cos(angle) + v * math.sin(angle))
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6) - 0.5
    image *= (1.0 + config.lighting_gradient * ramp)[..., None]
    if config.noise_std > 0:
        image += rng.normal(0.0, config.noise_std, image.shape).astype(np.float32)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def _object_colour(rng: np.random.Generator, table_rgb: Sequence[int]) -> tuple[int, int, int]:
    """Pick a saturated colour clearly different from the table, so objects are visible."""
    for _ in range(20):
        hsv = np.uint8([[[rng.integers(0, 180), rng.integers(90, 256), rng.integers(70, 256)]]])
        rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(int)
        if np.abs(rgb - np.asarray(table_rgb)).sum() > 90:
            break
    return int(rgb[0]), int(rgb[1]), int(rgb[2])


def generate_scene(config: SceneConfig | None = None, rng: np.random.Generator | None = None) -> Scene:
    """Random table scene; same config and rng state (default: ``config.seed``) -> same scene.

    Objects are placed by rejection: a candidate whose footprint lies more than
    ``max_overlap`` on older objects is redrawn; where it does overlap, the older object stays
    on top. Objects that cannot be placed after a few tries are skipped, so crowded configs may
    yield fewer than requested.
    """
    config = config or SceneConfig()
    rng = rng if rng is not None else np.random.default_rng(config.seed)
    size = (config.height, config.width)
    labels = np.zeros(size, np.int32)
    objects: list[SceneObject] = []
    count = int(rng.integers(config.objects_range[0], config.objects_range[1] + 1))
    for _ in range(count):
        for _ in range(_PLACEMENT_TRIES):
            shape = str(rng.choice(config.shapes))
            outlines, holes, length, width = _local_polygons(shape, rng, config)
            radius = min(max(length, width) / 2, min(size) / 2 - 1)
            centre = (float(rng.uniform(radius, config.width - radius)),
                      float(rng.uniform(radius, config.height - radius)))
            orientation = float(rng.uniform(0, math.pi))
            footprint = rasterise([_place(p, centre, orientation) for p in outlines],
                                  [_place(p, centre, orientation) for p in holes], size)
            area = int(footprint.sum())
            if area == 0 or (footprint & (labels > 0)).sum() > config.max_overlap * area:
                continue
            label = len(objects) + 1
            labels[footprint & (labels == 0)] = label
            objects.append(SceneObject(label, shape, centre, orientation, float(length), float(width),
                                       _object_colour(rng, config.table_rgb),
                                       str(rng.choice(config.textures))))
            break
    return Scene(_render(labels, objects, rng, config), labels, objects)


# --------------------------------------------------------------------------- labelling
