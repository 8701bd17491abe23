"""Grasp attempts for GraspNet: whole images plus labelled trials, and 227 px training patches.

Two sources give the same ``GraspAttempts``: the synthetic scene generator (self-supervised,
labelled by ``grasp_scenes.grasp_outcomes`` like a robot's trials) and a folder of real trials
(``attempts.csv`` beside the images; columns image, u, v, angle, success). Patches are cut at
run time from the stored images (a patch per trial would need 150 KB each), centred on the
trial's pixel, with out-of-image area filled with the mean colour (zero after normalisation,
which is also what the dense graph pads with).

Augmentations keep the label exact: a patch rotated by k x 90 degrees (np.rot90) has its grasp at
theta + k*pi/2, a left-right mirrored patch at pi - theta (both wrapped into [0, pi)).
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from tacforce_ros.inference.contract import MAX_SIDE
from tacforce_ros.perception.grasp_angles import angle_to_bin, wrap_angle
from tacforce_ros.sim.grasp_attempts import read_attempt_csv
from tacforce_ros.sim.grasp_labels import sample_attempts
from tacforce_ros.sim.grasp_scenes import SceneConfig, generate_scene

from ...models.grasp_net import PATCH

EMPTY_REACH_M = 0.06   # a 2F-85's half opening (42.5 mm) plus a finger (10 mm) and a margin
ROTATION_WINDOW = 2 * math.ceil(PATCH / math.sqrt(2)) + 3   # holds a 227 px patch turned by any angle


@dataclass
class GraspAttempts:
    """``images``: uint8 H x W x 3 RGB; ``rows``: float64 [N, 5] = image index, u, v, theta, success;
    ``heights``: per image, float16 H x W height above the table (``DepthHeight`` of the aligned
    depth, before its scaling), or None where the data has no depth.
    """

    images: list[np.ndarray]
    rows: np.ndarray
    source: str = ""
    heights: list[np.ndarray] | None = None
    scales: list[float] | None = None    # per image, pixels per metre at the table (trial folders' cameras)

    def __post_init__(self) -> None:
        self.rows = np.asarray(self.rows, np.float64).reshape(-1, 5)
        if len(self.rows) and not (0 <= self.rows[:, 0].min() and self.rows[:, 0].max() < len(self.images)):
            raise ValueError("attempt rows refer to images that are not there")
        if self.heights is not None and len(self.heights) != len(self.images):
            raise ValueError(f"{len(self.heights)} depth images for {len(self.images)} colour images")

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, image_indices) -> "GraspAttempts":
        """Return the attempts on these images (re-indexed), e.g. a validation split by image."""
        keep = sorted(set(int(i) for i in image_indices))
        remap = {old: new for new, old in enumerate(keep)}
        rows = self.rows[np.isin(self.rows[:, 0].astype(int), keep)].copy()
        rows[:, 0] = [remap[int(i)] for i in rows[:, 0]]
        heights = None if self.heights is None else [self.heights[i] for i in keep]
        scales = None if self.scales is None else [self.scales[i] for i in keep]
        return GraspAttempts([self.images[i] for i in keep], rows, self.source, heights, scales)

    def summary(self) -> dict:
        success = self.rows[:, 4] > 0.5
        summary = {"images": len(self.images), "attempts": len(self.rows),
                   "successes": int(success.sum()), "source": self.source}
        if self.scales:
            summary["table_px_per_m"] = [round(min(self.scales), 1), round(max(self.scales), 1)]
        return summary


def synthetic_attempts(scenes: int, per_scene: int, config: SceneConfig, seed: int,
                       positive_fraction: float = 0.5, progress: bool = True) -> GraspAttempts:
    """``scenes`` generated scenes with ``per_scene`` labelled trials each."""
    rng = np.random.default_rng(seed)
    images, rows = [], []
    for i in tqdm(range(scenes), desc="synthetic scenes", disable=not progress, leave=False):
        scene = generate_scene(config, rng)
        images.append(scene.image)
        for u, v, theta, ok in sample_attempts(scene, per_scene, rng, config, positive_fraction):
            if 0 <= u < config.width and 0 <= v < config.height:  # the robot tries what it sees
                rows.append((i, u, v, theta, float(ok)))
    shapes = ",".join(config.shapes)
    return GraspAttempts(images, np.array(rows), f"synthetic: {scenes} scenes x {per_scene} trials, "
                                                 f"shapes {shapes}, seed {seed}")


def merge_attempts(parts: list[GraspAttempts]) -> GraspAttempts:
    """One set from several (image indices shifted); all images must share one size."""
    images, rows = [], []
    for part in parts:
        shifted = part.rows.copy()
        shifted[:, 0] += len(images)
        images += part.images
        rows.append(shifted)
    if len({img.shape for img in images}) > 1:
        raise ValueError(f"images of different sizes: {sorted({img.shape for img in images})}")
    with_depth = [p.heights is not None for p in parts]
    if any(with_depth) and not all(with_depth):
        raise ValueError("some trial sets have depth and others not: " +
                         ", ".join(f"{p.source} ({'depth' if p.heights is not None else 'no depth'})" for p in parts))
    heights = [h for p in parts for h in p.heights] if parts and all(with_depth) else None
    scales = [x for p in parts for x in p.scales] if parts and all(p.scales for p in parts) else None
    return GraspAttempts(images, np.concatenate(rows) if rows else np.zeros((0, 5)),
                         "; ".join(p.source for p in parts), heights, scales=scales)


def load_attempt_folder(folder: str | Path, depth: bool = False, training: bool = False) -> GraspAttempts:
    """Load a folder with ``attempts.csv`` (image, u, v, angle, success) and the images it names.

    With ``depth``, each ``images/NAME`` needs its aligned depth ``depth/NAME`` (16-bit PNG, mm;
    what `tacforce sim grasp-trials` writes), kept as the height above the table. With
    ``training``, a folder whose ``trials.csv`` names held-out objects (random_urdfs 800-999) is
    refused: they are for the numbers reported, never for training or validation.
    """
    attempts = read_attempt_csv(folder, check_images=True)
    base = Path(folder) if Path(folder).is_dir() else Path(folder).parent
    if training:
        refuse_held_out_objects(base)
    index: dict[str, int] = {}
    images, rows, heights = [], [], []
    for a in attempts:
        if a.image not in index:
            path = base / a.image
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f"{path}: not a readable image")
            if max(image.shape[:2]) > MAX_SIDE:
                raise ValueError(f"{path}: {image.shape[1]}x{image.shape[0]} exceeds {MAX_SIDE} px")
            if images and image.shape != images[0].shape:
                raise ValueError(f"{path}: {image.shape[1]}x{image.shape[0]}, but the first image is "
                                 f"{images[0].shape[1]}x{images[0].shape[0]}; one camera size per folder")
            index[a.image] = len(images)
            images.append(image[..., ::-1].copy())
            if depth:
                heights.append(read_height(base / "depth" / Path(a.image).name, image.shape[:2]))
        h, w = images[index[a.image]].shape[:2]
        if not (0 <= a.u < w and 0 <= a.v < h):
            raise ValueError(f"{base / a.image}: attempt at ({a.u}, {a.v}) lies outside the {w}x{h} image")
        rows.append((index[a.image], a.u, a.v, a.angle, float(a.success)))
    # trial folders name images by scene (images/NNNNN.png); trials.csv holds each scene's camera
    scenes = [int(Path(name).stem) if Path(name).stem.isdigit() else -1 for name in index]
    cameras = trial_cameras(base)
    scales = ([table_px_per_m(*cameras[i], images[0].shape[0]) for i in scenes]
              if cameras and all(i in cameras for i in scenes) else None)
    return GraspAttempts(images, np.array(rows), f"folder {folder}", heights if depth else None, scales)


def trial_rows(folder: Path) -> list[dict[str, str]]:
    """Return the rows of a trial folder's trials.csv (`tacforce sim grasp-trials`), or [] without one."""
    trials = folder / "trials.csv"
    if not trials.is_file():
        return []
    with open(trials, newline="") as f:
        return list(csv.DictReader(f))


def trial_cameras(folder: Path) -> dict[int, tuple[float, float]]:
    """Scene -> (vertical field of view in degrees, camera height above the table in m) from a
    trial folder's trials.csv, or {} without one.
    """
    rows = trial_rows(folder)
    if not rows or not {"scene", "fov_deg", "camera_height_m"} <= set(rows[0]):
        return {}
    return {int(r["scene"]): (float(r["fov_deg"]), float(r["camera_height_m"])) for r in rows}


def table_px_per_m(fov_deg: float, camera_m: float, image_height: int) -> float:
    """Pixels per metre at the table of a top-down camera (fy = (H/2) / tan(fov/2), over its height)."""
    return (image_height / 2) / math.tan(math.radians(fov_deg) / 2) / camera_m


def empty_table_trials(folder: str | Path, attempts: GraspAttempts, per_image: int, seed: int = 0,
                       reach_m: float = EMPTY_REACH_M, min_height_m: float = 0.006) -> GraspAttempts:
    """Return ``attempts`` plus ``per_image`` failed trials per image at table pixels farther than
    ``reach_m`` from anything standing ``min_height_m`` above the table (random angle).

    The robot's trials only try pixels on objects, so a model never sees empty table and may rank
    it highest; a grasp with nothing within its fingers' reach lifts nothing, which needs no
    simulation. The reach in pixels comes from each scene's camera in ``folder/trials.csv``
    (vertical field of view and height above the table, as `tacforce sim grasp-trials` writes).
    """
    if per_image <= 0:
        return attempts
    if attempts.heights is None:
        raise ValueError(f"{folder}: empty-table trials need the aligned depth (depth/)")
    if attempts.scales is None:
        raise ValueError(f"{Path(folder) / 'trials.csv'}: needed for the camera of each scene (fov_deg, "
                         "camera_height_m)")
    rng = np.random.default_rng(seed)
    rows = [attempts.rows]
    for index, height in enumerate(attempts.heights):
        reach_px = reach_m * attempts.scales[index]
        free = (height < min_height_m).astype(np.uint8)
        far = np.argwhere(cv2.distanceTransform(free, cv2.DIST_L2, 5) > reach_px)
        if not len(far):
            continue
        for v, u in far[rng.choice(len(far), min(per_image, len(far)), replace=False)]:
            rows.append(np.array([[index, u, v, rng.uniform(0, math.pi), 0.0]]))
    return GraspAttempts(attempts.images, np.concatenate(rows), f"{attempts.source} + {per_image} empty-table "
                         f"failures per image", attempts.heights, attempts.scales)


def read_height(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """Height above the table (float16 H x W, m) of a 16-bit depth PNG in mm aligned to an image of ``shape``."""
    from ...preprocess import DepthHeight

    depth = cv2.imread(str(path), cv2.IMREAD_ANYDEPTH)
    if depth is None:
        raise ValueError(f"{path}: no readable depth image (16-bit PNG, mm) for the colour image")
    if depth.dtype != np.uint16 or depth.shape != shape:
        raise ValueError(f"{path}: depth must be 16-bit {shape[1]}x{shape[0]} (mm), got {depth.dtype} "
                         f"{depth.shape[1]}x{depth.shape[0]}")
    metres = torch.from_numpy(depth.astype(np.float32) / 1000.0)[None, :, :, None]
    unit = DepthHeight(scale=1.0)
    with torch.no_grad():
        return unit(metres)[0, 0].numpy().astype(np.float16)


def refuse_held_out_objects(folder: Path) -> None:
    """Raise ValueError when ``folder/trials.csv`` lists a held-out random_urdfs object (800-999)."""
    from tacforce_ros.sim.pybullet_grasp.scene import HELD_OUT_OBJECTS, held_out_indices

    objects = {int(i) for row in trial_rows(folder) for i in (row.get("object_indices") or "").split()}
    if bad := held_out_indices(objects):
        raise ValueError(f"{folder}: trials on held-out objects {bad[:5]}{' ...' if len(bad) > 5 else ''} "
                         f"(random_urdfs {HELD_OUT_OBJECTS[0]}-{HELD_OUT_OBJECTS[1]} are kept for evaluation); "
                         "generate training trials with --objects train")


class PatchSampler:
    """Cuts 227 px patches around trials (beyond the image: its border repeated, or the ``fill_rgb``
    colour with ``padding="mean"``, as the dense graph pads); bins labels; optional label-exact
    augmentation. With ``depth``, each patch has a height channel as well.
    """

    def __init__(self, attempts: GraspAttempts, bins: int, fill_rgb, patch: int = PATCH,
                 padding: str = "replicate", depth: bool = False, any_angle: bool = False):
        if depth and attempts.heights is None:
            raise ValueError(f"a depth model needs trials with aligned depth; {attempts.source} has none")
        self.attempts, self.bins, self.patch, self.depth = attempts, bins, patch, depth
        self.any_angle = any_angle
        self.fill = [int(round(c)) for c in fill_rgb]
        self.border = cv2.BORDER_REPLICATE if padding == "replicate" else cv2.BORDER_CONSTANT

    def _cut(self, image: np.ndarray, u: float, v: float, fill, size: int = 0) -> np.ndarray:
        """Return the ``size`` (default P) square window centred on pixel (u, v) (clipped to the image),
        padded beyond it.
        """
        p = size or self.patch
        half = p // 2
        h, w = image.shape[:2]
        u0 = min(max(int(math.floor(u + 0.5)), 0), w - 1) - half
        v0 = min(max(int(math.floor(v + 0.5)), 0), h - 1) - half
        inner = image[max(v0, 0):min(v0 + p, h), max(u0, 0):min(u0 + p, w)]
        return cv2.copyMakeBorder(inner, max(-v0, 0), max(v0 + p - h, 0), max(-u0, 0), max(u0 + p - w, 0),
                                  self.border, value=fill)

    def batch(self, indices, rng: np.random.Generator | None = None):
        """uint8 patches [n, P, P, 3], angle bins [n] int64, success [n] float32, and (with depth)
        float32 heights [n, P, P, 1] in metres, else None.

        With ``rng``, each patch gets a random rotation (by k x 90 degrees, or with ``any_angle`` by
        any angle about the trial's pixel) and a random mirror, the label angle turned with it.
        """
        rows = self.attempts.rows[np.asarray(indices, np.int64)]
        p = self.patch
        patches = np.empty((len(rows), p, p, 3), np.uint8)
        heights = np.empty((len(rows), p, p, 1), np.float32) if self.depth else None
        thetas = rows[:, 3].copy()
        for n, (img, u, v, theta, _ok) in enumerate(rows):
            if rng is not None and self.any_angle:
                turn, mirror = float(rng.uniform(0, 2 * math.pi)), bool(rng.random() < 0.5)
                window = self._cut(self.attempts.images[int(img)], u, v, self.fill, ROTATION_WINDOW)
                patches[n], thetas[n] = rotate_patch(window, theta, turn, mirror, p)
                if self.depth:
                    window = self._cut(self.attempts.heights[int(img)].astype(np.float32), u, v, 0.0, ROTATION_WINDOW)
                    heights[n, ..., 0] = rotate_patch(window, theta, turn, mirror, p)[0]
                continue
            patch = self._cut(self.attempts.images[int(img)], u, v, self.fill)
            height = self._cut(self.attempts.heights[int(img)].astype(np.float32), u, v, 0.0) if self.depth else None
            if rng is not None:
                k, mirror = int(rng.integers(4)), bool(rng.random() < 0.5)
                patch, thetas[n] = augment(patch, theta, k, mirror)
                if self.depth:
                    height, _ = augment(height, theta, k, mirror)
            patches[n] = patch
            if self.depth:
                heights[n, ..., 0] = height
        return patches, angle_to_bin(wrap_angle(thetas), self.bins), rows[:, 4].astype(np.float32), heights


def augment(image: np.ndarray, theta: float, k: int, mirror: bool) -> tuple[np.ndarray, float]:
    """``image`` turned by ``np.rot90(image, k)`` then, if ``mirror``, flipped left-right, and the
    grasp angle that describes the same grasp in the result (wrapped into [0, pi)).
    """
    image = np.rot90(image, k)
    theta = theta + k * math.pi / 2
    if mirror:
        image, theta = image[:, ::-1], math.pi - theta
    return image, float(wrap_angle(theta))


def rotate_patch(window: np.ndarray, theta: float, turn: float, mirror: bool, patch: int) -> tuple[np.ndarray, float]:
    """Return the ``patch`` px centre of ``window`` turned by ``turn`` rad (from image +u towards +v, the
    grasp angle's sense) about its centre pixel, then mirrored left-right if ``mirror``; and the
    grasp angle of the same grasp in it. ``window`` must be large enough that no corner of the
    turned patch leaves it (ROTATION_WINDOW for 227 px).
    """
    c = window.shape[0] // 2
    m = cv2.getRotationMatrix2D((float(c), float(c)), -math.degrees(turn), 1.0)   # OpenCV: + is +v to +u
    m[:, 2] -= c - patch // 2
    out = cv2.warpAffine(window, m, (patch, patch), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    theta = theta + turn
    if mirror:
        out, theta = out[:, ::-1], math.pi - theta
    return out, float(wrap_angle(theta))


def split_images(count: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Return (train, validation) image indices: ``val_fraction`` of the images (at least one) held out."""
    order = np.random.default_rng(seed).permutation(count)
    n_val = max(1, round(count * val_fraction)) if count > 1 else 0
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def batch_indices(rows: np.ndarray, size: int, balance: bool, rng: np.random.Generator) -> np.ndarray:
    """Return ``size`` attempt indices drawn with replacement; with ``balance``, half successes (when
    both outcomes are there), as real trial sets are skewed.
    """
    if not balance:
        return rng.integers(0, len(rows), size)
    pos, neg = np.flatnonzero(rows[:, 4] > 0.5), np.flatnonzero(rows[:, 4] <= 0.5)
    if not len(pos) or not len(neg):
        return rng.integers(0, len(rows), size)
    half = size // 2
    return np.concatenate([rng.choice(pos, half), rng.choice(neg, size - half)])


def mean_rgb(images, max_images: int = 200) -> np.ndarray:
    """Per-channel mean colour (0..255) of up to ``max_images`` images (the seed's mean pixel)."""
    step = max(1, len(images) // max_images)
    return np.mean([img.reshape(-1, 3).mean(axis=0) for img in images[::step]], axis=0)
