"""Drawing and viewpoints of the grasp-check scenes (``grasp_check_scenes``): objects, shadows,
the gripper, and the sampled camera view with its homography.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from .grasp_check_scenes import ViewRanges


# --------------------------------------------------------------------------- drawing

def random_colour(rng: np.random.Generator, avoid: np.ndarray | None = None) -> np.ndarray:
    for _ in range(20):
        hsv = np.uint8([[[rng.integers(0, 180), rng.integers(80, 256), rng.integers(80, 256)]]])
        rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)
        if avoid is None or np.abs(rgb - avoid).sum() > 100:
            return rgb
    return rgb


def _poly(canvas: np.ndarray, pts, colour) -> None:
    cv2.fillPoly(canvas, [np.round(np.asarray(pts) * 16).astype(np.int32)], [float(c) for c in colour],
                 lineType=cv2.LINE_AA, shift=4)


def rotate(points: np.ndarray, centre, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    p = np.asarray(points, np.float64)
    return np.stack([p[:, 0] * c - p[:, 1] * s, p[:, 0] * s + p[:, 1] * c], 1) + np.asarray(centre)


def _object_parts(shape: str, w: float, h: float) -> list[tuple[np.ndarray, float]]:
    """Polygons (local coords, origin at the object's centre, y down) with a shade factor each."""
    hw, hh = w / 2, h / 2
    if shape == "box":
        return [(np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]]), 1.0),
                (np.array([[-hw, -hh], [-hw + 0.25 * w, -hh - 0.12 * h], [hw + 0.25 * w, -hh - 0.12 * h],
                           [hw, -hh]]), 1.25)]
    if shape == "cylinder":
        t = np.linspace(0, 2 * math.pi, 24)
        top = np.stack([hw * np.cos(t), -hh + 0.12 * w * np.sin(t)], 1)
        return [(np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]]), 1.0),
                (np.array([[0.2 * w, -hh], [0.35 * w, -hh], [0.35 * w, hh], [0.2 * w, hh]]), 0.8),
                (top, 1.3)]
    if shape == "bottle":
        neck = 0.3 * w
        return [(np.array([[-hw, -hh + 0.35 * h], [hw, -hh + 0.35 * h], [hw, hh], [-hw, hh]]), 1.0),
                (np.array([[-hw, -hh + 0.35 * h], [-neck / 2, -hh + 0.15 * h], [neck / 2, -hh + 0.15 * h],
                           [hw, -hh + 0.35 * h]]), 1.1),
                (np.array([[-neck / 2, -hh], [neck / 2, -hh], [neck / 2, -hh + 0.15 * h],
                           [-neck / 2, -hh + 0.15 * h]]), 0.7)]
    if shape == "ball":
        t = np.linspace(0, 2 * math.pi, 32)
        r = min(hw, hh)
        return [(np.stack([r * np.cos(t), r * np.sin(t)], 1), 1.0),
                (np.stack([0.35 * r * np.cos(t) - 0.3 * r, 0.35 * r * np.sin(t) - 0.3 * r], 1), 1.35)]
    if shape == "hexagon":
        return [(np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]]), 0.85),
                (np.array([[-hw / 2, -hh], [hw / 2, -hh], [hw / 2, hh], [-hw / 2, hh]]), 1.15)]
    if shape == "mug":
        body = np.array([[-hw, -hh], [hw * 0.6, -hh], [hw * 0.6, hh], [-hw, hh]])
        outer = np.array([[hw * 0.6, -hh * 0.6], [hw, -hh * 0.6], [hw, hh * 0.4], [hw * 0.6, hh * 0.4]])
        inner = np.array([[hw * 0.6, -hh * 0.35], [hw * 0.85, -hh * 0.35], [hw * 0.85, hh * 0.15],
                          [hw * 0.6, hh * 0.15]])
        return [(outer, 0.9), (inner, -1.0), (body, 1.0)]
    if shape == "cone":
        return [(np.array([[-0.12 * w, -hh], [0.12 * w, -hh], [hw, hh], [-hw, hh]]), 1.0),
                (np.array([[-0.3 * w, -hh + 0.45 * h], [0.3 * w, -hh + 0.45 * h], [0.36 * w, -hh + 0.6 * h],
                           [-0.36 * w, -hh + 0.6 * h]]), 1.4)]
    raise ValueError(f"unknown shape {shape!r}")


def draw_object(canvas, shape, centre, w, h, angle, colour, background) -> None:
    for pts, shade in _object_parts(shape, w, h):
        fill = background if shade < 0 else np.clip(colour * shade, 0, 255)
        _poly(canvas, rotate(pts, centre, angle), fill)


def draw_shadow(canvas, x, y, w, strength, blur) -> None:
    mask = np.zeros(canvas.shape[:2], np.float32)
    cv2.ellipse(mask, (int(round(x)), int(round(y))), (max(1, int(w * 0.7)), max(1, int(w * 0.15))),
                0, 0, 360, 1.0, -1, cv2.LINE_AA)
    mask = cv2.GaussianBlur(mask, (0, 0), blur)
    canvas *= (1.0 - strength * mask)[..., None]


def draw_gripper(canvas, x, tip_y, gap, finger_w, finger_l, colour, angle) -> None:
    """Wrist from the top edge, palm, two fingers whose inner faces are ``gap`` apart; the
    whole hand may be tilted by ``angle`` about the fingertip centre.
    """
    palm_h, palm_w = 0.3 * finger_l, gap + 2 * finger_w + 0.5 * finger_w
    palm_w = max(palm_w, 2.6 * finger_w)
    top = tip_y - finger_l - palm_h
    centre = (x, tip_y)
    parts = [
        (np.array([[-0.35 * palm_w, -tip_y - 50], [0.35 * palm_w, -tip_y - 50],
                   [0.35 * palm_w, -(tip_y - top)], [-0.35 * palm_w, -(tip_y - top)]]), 0.75),
        (np.array([[-palm_w / 2, -(tip_y - top)], [palm_w / 2, -(tip_y - top)],
                   [palm_w / 2, -finger_l], [-palm_w / 2, -finger_l]]), 1.0),
    ]
    for side in (-1, 1):
        inner = side * gap / 2
        outer = side * (gap / 2 + finger_w)
        parts.append((np.array([[inner, -finger_l], [outer, -finger_l], [outer, 0],
                                [inner + side * 0.2 * finger_w, 0]]), 0.9))
        parts.append((np.array([[inner, -finger_l * 0.55], [inner + side * 0.3 * finger_w, -finger_l * 0.55],
                                [inner + side * 0.3 * finger_w, -finger_l * 0.05],
                                [inner, -finger_l * 0.05]]), 0.55))   # rubber pad
    for pts, shade in parts:
        _poly(canvas, rotate(pts, centre, angle), np.clip(colour * shade, 0, 255))


# --------------------------------------------------------------------------- viewpoint

def sample_view(rng: np.random.Generator, views: ViewRanges, split: str) -> dict:
    roll = rng.uniform(*views.roll_deg)
    kx, ky = rng.uniform(*views.keystone, size=2)
    scale = rng.uniform(*views.scale)
    held_out = None
    if split == "test":
        held_out = str(rng.choice(("roll", "keystone", "scale")))
        sign = lambda: float(rng.choice((-1.0, 1.0)))   # noqa: E731
        if held_out == "roll":
            roll = sign() * rng.uniform(*views.test_roll_deg)
        elif held_out == "keystone":
            if rng.random() < 0.5:
                kx = sign() * rng.uniform(*views.test_keystone)
            else:
                ky = sign() * rng.uniform(*views.test_keystone)
        else:
            scale = rng.uniform(*views.test_scale)
    return {"roll_deg": float(roll), "keystone": (float(kx), float(ky)), "scale": float(scale),
            "shift": tuple(float(s) for s in rng.uniform(-views.shift, views.shift, 2)),
            "horizon": float(rng.uniform(*views.horizon)), "held_out": held_out}


def view_homography(view: dict, width: int, height: int) -> np.ndarray:
    """Canonical side view -> camera image: scale about the centre, roll, keystone, shift."""
    cx, cy = width / 2, height / 2
    kx, ky = view["keystone"]
    src = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    # keystone: one side of the frame shrinks (yaw: left/right edge, pitch: top/bottom edge)
    dst = src.copy()
    dst[[0, 3], 1] += np.float32([kx * height, -kx * height])
    dst[[1, 2], 1] -= np.float32([kx * height, -kx * height])
    dst[[0, 1], 0] += np.float32([ky * width, -ky * width])
    dst[[3, 2], 0] -= np.float32([ky * width, -ky * width])
    keystone = cv2.getPerspectiveTransform(src, dst)
    affine = cv2.getRotationMatrix2D((cx, cy), view["roll_deg"], view["scale"])
    affine[:, 2] += (view["shift"][0] * width, view["shift"][1] * height)
    return np.vstack([affine, [0, 0, 1]]) @ keystone


# --------------------------------------------------------------------------- one frame
