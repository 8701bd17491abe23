"""Synthetic after-grasp camera frames: is the object held between the gripper's fingers?

Why: the grasp-success classifiers of seeds 002 and 004 learn from photos and video frames taken
after the hand closed and lifted. This module stands in for that camera so the classifier, its
export and the grasp_success_node can be trained and tested without a robot, with viewpoints
and object shapes held out of training for a generalisation check.

A frame is a side-to-oblique view of a table (wall above the horizon) with a two-finger
gripper (wrist from the top of the frame, palm, two fingers) and one to three objects. Kinds:

    held       label 1  fingers closed on the object's sides, object lifted off the table,
                        roughly upright, its shadow on the table below
    empty      label 0  fingers closed on nothing; the object still stands on the table
    fallen     label 0  fingers closed on nothing; the object lies on its side on the table
                        (or fell out of view)
    slipping   label 0  partly held: the object hangs tilted from the fingertips, most of it
                        below them, fingers nearly closed (about to drop)
    in_motion  label 0  seed 002's video frames: the open gripper on its way to the object,
                        motion-blurred; labelled failure as that seed did

Every frame may have distractor objects on the table, so "something on the table" is no cue
by itself. The finger opening, where the object is relative to the fingertips and its tilt
are what separate the classes.

Viewpoints: the scene is drawn in a canonical side view (horizon height = camera elevation),
then warped by a homography for camera roll, yaw/pitch keystone, distance (scale) and
position (shift). ``split="train"`` draws viewpoints from the training ranges and training
shapes; ``split="test"`` draws viewpoints whose roll, keystone or distance lie outside every
training range (see ``ViewRanges``) and half of its objects from the held-out shapes, so each
test frame has at least one factor never seen in training. Lighting (gain, colour cast,
gradient) and sensor noise vary in both splits.

Images are RGB uint8 (H, W, 3), the order of an rgb8 sensor_msgs/Image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from .grasp_check_drawing import (
    draw_gripper,
    draw_object,
    draw_shadow,
    random_colour,
    rotate,
    sample_view,
    view_homography,
)

SHAPES = ("box", "cylinder", "bottle", "ball", "hexagon", "mug", "cone")
TRAIN_SHAPES = ("box", "cylinder", "bottle", "ball", "hexagon")
HELD_OUT_SHAPES = ("mug", "cone")
KINDS = ("held", "empty", "fallen", "slipping", "in_motion")
FAILURE_KINDS = KINDS[1:]
CLASS_NAMES = ("failure", "success")   # label 0, label 1 (seed folder layout)
SPLITS = ("train", "test")


@dataclass(frozen=True)
class ViewRanges:
    """Camera variation. Training draws inside each range; the held-out test split draws
    each frame with at least one of roll, keystone or scale in its ``test_*`` band (outside
    the training range), the others in the training range.
    """

    horizon: tuple[float, float] = (0.22, 0.5)          # horizon row / height (elevation)
    roll_deg: tuple[float, float] = (-8.0, 8.0)
    test_roll_deg: tuple[float, float] = (10.0, 16.0)    # either sign
    keystone: tuple[float, float] = (-0.08, 0.08)        # yaw / pitch, fraction of the side
    test_keystone: tuple[float, float] = (0.1, 0.15)     # either sign
    scale: tuple[float, float] = (0.85, 1.1)             # camera distance
    test_scale: tuple[float, float] = (1.12, 1.25)       # closer than any training view
    shift: float = 0.08                                  # fraction of the side, both splits


@dataclass(frozen=True)
class CheckSceneConfig:
    height: int = 120
    width: int = 160
    success_fraction: float = 0.5                        # P(held); real data is unbalanced
    failure_weights: tuple[float, ...] = (0.3, 0.2, 0.25, 0.25)   # empty, fallen, slipping, in_motion
    distractors: tuple[int, int] = (0, 2)                # extra objects on the table (inclusive)
    noise_std: tuple[float, float] = (2.0, 7.0)
    views: ViewRanges = field(default_factory=ViewRanges)
    train_shapes: tuple[str, ...] = TRAIN_SHAPES
    held_out_shapes: tuple[str, ...] = HELD_OUT_SHAPES

    def __post_init__(self):
        if not 0.0 <= self.success_fraction <= 1.0:
            raise ValueError(f"success_fraction must be in [0, 1], got {self.success_fraction}")
        if len(self.failure_weights) != len(FAILURE_KINDS) or min(self.failure_weights) < 0 \
                or sum(self.failure_weights) <= 0:
            raise ValueError(f"failure_weights needs {len(FAILURE_KINDS)} non-negative weights")
        unknown = (set(self.train_shapes) | set(self.held_out_shapes)) - set(SHAPES)
        if unknown:
            raise ValueError(f"unknown shapes {sorted(unknown)} (known: {SHAPES})")
        if set(self.train_shapes) & set(self.held_out_shapes):
            raise ValueError("a held-out shape is also a training shape")
        if self.height < 48 or self.width < 48:
            raise ValueError("frames must be at least 48x48")


@dataclass(frozen=True)
class Frame:
    image: np.ndarray      # uint8 (H, W, 3) RGB
    label: int             # 1 held, 0 not held
    kind: str              # one of KINDS
    shape: str             # the grasped (or missed) object's shape
    view: dict             # roll_deg, keystone (kx, ky), scale, shift, horizon, held_out (which factor)


def render_frame(rng: np.random.Generator, config: CheckSceneConfig | None = None,
                 split: str = "train", kind: str | None = None) -> Frame:
    """One random after-grasp frame of ``split``; ``kind`` forces the outcome (default: drawn
    from ``success_fraction`` and ``failure_weights``).
    """
    config = config or CheckSceneConfig()
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if kind is None:
        if rng.random() < config.success_fraction:
            kind = "held"
        else:
            w = np.asarray(config.failure_weights, float)
            kind = str(rng.choice(FAILURE_KINDS, p=w / w.sum()))
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    shapes = config.train_shapes
    if split == "test" and rng.random() < 0.5:
        shapes = config.held_out_shapes
    shape = str(rng.choice(shapes))
    view = sample_view(rng, config.views, split)
    H, W = config.height, config.width
    u = W / 160.0                                   # drawing unit: sizes are for 160 px wide

    # background: wall above the horizon, table below, light gradient
    horizon = view["horizon"] * H
    wall = rng.uniform(120, 230, 3).astype(np.float32)
    table = rng.uniform(60, 200, 3).astype(np.float32)
    canvas = np.empty((H, W, 3), np.float32)
    canvas[:] = wall
    canvas[int(horizon):] = table
    rows = np.arange(H, dtype=np.float32)[:, None, None]
    canvas *= 1.0 + 0.15 * (rows - horizon) / H * rng.uniform(-1, 1)
    if rng.random() < 0.5:   # wood-like grain on the table
        grain = np.sin(np.arange(W, dtype=np.float32) / rng.uniform(3, 9) * u + rng.uniform(0, 6))
        canvas[int(horizon):] *= (1.0 + 0.05 * grain)[None, :, None]
    table_y0 = horizon + 0.35 * (H - horizon)     # where objects stand (front part of the table)

    def floor_y() -> float:
        return float(rng.uniform(table_y0, H - 4 * u))

    # distractors stand on the table, away from the gripper's column
    gx = float(rng.uniform(0.35, 0.65) * W)
    for _ in range(int(rng.integers(config.distractors[0], config.distractors[1] + 1))):
        dw, dh = rng.uniform(10, 22) * u, rng.uniform(12, 30) * u
        side = rng.choice((-1, 1))
        dx = gx + side * rng.uniform(30, 70) * u
        dy = floor_y()
        draw_shadow(canvas, dx, dy, dw, 0.3, 2 * u)
        draw_object(canvas, str(rng.choice(config.train_shapes)), (dx, dy - dh / 2), dw, dh, 0.0,
                    random_colour(rng, table), table)

    ow, oh = rng.uniform(14, 26) * u, rng.uniform(20, 38) * u
    if shape == "ball":
        oh = ow
    colour = random_colour(rng, table)
    finger_w, finger_l = rng.uniform(5, 8) * u, rng.uniform(20, 30) * u
    gripper_col = np.full(3, rng.uniform(60, 200), np.float32) + rng.uniform(-15, 15, 3)
    tip_y = float(rng.uniform(0.35, 0.55) * H)      # lifted
    hand_tilt = math.radians(rng.uniform(-6, 6))
    blur = 0
    if kind == "held":
        gap = ow * rng.uniform(0.97, 1.0)
        tilt = math.radians(rng.uniform(-10, 10))
        top = tip_y - finger_l * rng.uniform(0.35, 0.75)
        draw_shadow(canvas, gx, floor_y(), ow, rng.uniform(0.2, 0.4), 4 * u)
        draw_object(canvas, shape, (gx, top + oh / 2), ow, oh, tilt + hand_tilt, colour, table)
    elif kind == "slipping":
        gap = rng.uniform(0.05, 0.35) * ow
        side = rng.choice((-1, 1))
        tilt = side * math.radians(rng.uniform(35, 80))
        # the object's top corner is pinched at the fingertips; the body hangs below them
        corner = np.array([-side * ow / 2, -oh / 2])
        centre = np.array([gx, tip_y - rng.uniform(0.0, 0.15) * finger_l]) - rotate(corner[None], (0, 0), tilt)[0]
        draw_shadow(canvas, centre[0], floor_y(), ow, rng.uniform(0.2, 0.4), 4 * u)
        draw_object(canvas, shape, tuple(centre), ow, oh, tilt, colour, table)
    elif kind == "empty":
        gap = rng.uniform(0.0, 0.3) * ow
        x, y = gx + rng.uniform(-25, 25) * u, floor_y()
        draw_shadow(canvas, x, y, ow, 0.3, 2 * u)
        draw_object(canvas, shape, (x, y - oh / 2), ow, oh, math.radians(rng.uniform(-5, 5)), colour, table)
    elif kind == "fallen":
        gap = rng.uniform(0.0, 0.3) * ow
        if rng.random() < 0.85:   # else: it fell out of view
            x, y = gx + rng.uniform(-35, 35) * u, floor_y()
            draw_shadow(canvas, x, y, oh, 0.3, 2 * u)
            draw_object(canvas, shape, (x, y - ow / 2), ow, oh, rng.choice((-1, 1)) * math.pi / 2
                        + math.radians(rng.uniform(-8, 8)), colour, table)
    else:   # in_motion: open hand coming down to the object, blurred
        gap = ow * rng.uniform(1.3, 2.0)
        x, y = gx + rng.uniform(-8, 8) * u, floor_y()
        tip_y = float(min(y - oh * rng.uniform(0.2, 1.2), tip_y + rng.uniform(0, 25) * u))
        draw_shadow(canvas, x, y, ow, 0.3, 2 * u)
        draw_object(canvas, shape, (x, y - oh / 2), ow, oh, 0.0, colour, table)
        blur = int(rng.integers(5, 14) * u) | 1
    draw_gripper(canvas, gx, tip_y, gap, finger_w, finger_l, gripper_col, hand_tilt)
    if blur:
        kernel = np.zeros((blur, blur), np.float32)
        kernel[blur // 2] = 1.0 / blur
        rot = cv2.getRotationMatrix2D((blur / 2 - 0.5, blur / 2 - 0.5), rng.uniform(60, 120), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (blur, blur))
        canvas = cv2.filter2D(canvas, -1, kernel / max(kernel.sum(), 1e-6))

    # camera: viewpoint warp, exposure, colour cast, lighting gradient, noise
    hom = view_homography(view, W, H)
    canvas = cv2.warpPerspective(canvas, hom, (W, H), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REFLECT)
    canvas *= rng.uniform(0.75, 1.2) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    ramp = ((xx - W / 2) * math.cos(angle) + (yy - H / 2) * math.sin(angle)) / max(W, H)
    canvas *= (1.0 + rng.uniform(0, 0.4) * ramp)[..., None]
    canvas += rng.normal(0, rng.uniform(*config.noise_std), canvas.shape).astype(np.float32)
    image = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    return Frame(image, int(kind == "held"), kind, shape, view)


# --------------------------------------------------------------------------- data sets

def frames(count: int, seed: int, split: str = "train",
           config: CheckSceneConfig | None = None) -> Iterator[Frame]:
    """``count`` frames of ``split``, reproducible from ``seed``."""
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    for _ in range(count):
        yield render_frame(rng, config, split)


def generate(count: int, seed: int, split: str = "train", config: CheckSceneConfig | None = None):
    """(images uint8 [N, H, W, 3] RGB, labels int64 [N], kinds list[str], shapes list[str])."""
    config = config or CheckSceneConfig()
    images = np.empty((count, config.height, config.width, 3), np.uint8)
    labels = np.empty(count, np.int64)
    kinds, shapes = [], []
    for k, frame in enumerate(frames(count, seed, split, config)):
        images[k], labels[k] = frame.image, frame.label
        kinds.append(frame.kind)
        shapes.append(frame.shape)
    return images, labels, kinds, shapes


def write_folder_dataset(root: str | Path, count: int, seed: int, split: str = "train",
                         config: CheckSceneConfig | None = None) -> dict[str, int]:
    """Write PNGs in the seeds' layout: ``root/success/*.png`` and ``root/failure/*.png``.
    Returns the number written per class.
    """
    root = Path(root)
    written = {name: 0 for name in CLASS_NAMES}
    for name in CLASS_NAMES:
        (root / name).mkdir(parents=True, exist_ok=True)
    for k, frame in enumerate(frames(count, seed, split, config)):
        name = CLASS_NAMES[frame.label]
        path = root / name / f"{split}_{seed}_{k:05d}_{frame.kind}_{frame.shape}.png"
        if not cv2.imwrite(str(path), cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)):
            raise OSError(f"cannot write {path}")
        written[name] += 1
    return written


def main(argv=None) -> int:
    """Write a folder data set in the seeds' layout (success/, failure/):

    python -m tacforce_ros.sim.grasp_check_scenes --out DIR --count N [--split test] [--seed S]
    """
    import argparse

    p = argparse.ArgumentParser(prog="python -m tacforce_ros.sim.grasp_check_scenes", description=main.__doc__)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--split", choices=SPLITS, default="train",
                   help="test = held-out viewpoints, half held-out shapes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", default="160x120", help="WIDTHxHEIGHT")
    args = p.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    written = write_folder_dataset(args.out, args.count, args.seed, args.split, CheckSceneConfig(height=h, width=w))
    print(f"{args.out}: {written['success']} success, {written['failure']} failure ({args.split} split, "
          f"seed {args.seed}, {w}x{h})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
