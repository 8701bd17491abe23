"""Synthetic camera sequences of deformable objects pressed by a probe (seed 000's data set).

Why: seed 000 infers the pressing force from what the camera sees, with no force sensor. Its
data set (paper cup, sponge, stapler, tube; press directions 0/10/20/30 degrees; 350/550/750
lux) is not available here, so this module renders a stand-in that keeps the structure that
matters: the force is a function of how far the object is indented (visible as a dent, a
squashed and bulging silhouette, displaced texture, shading and the probe's position) and of
the object's stiffness (visible only through what kind of object it is), plus a viscous term
that depends on the indentation speed, so one frame is not enough and the sequence matters.

Scene (side view, RGB uint8, 128x128 by default): wall and table, one object on the table, a
rod probe coming from above at ``degree`` off vertical (tilted in the image plane) pressing the
top of the object. Per episode the indentation depth d (pixels) follows rest -> press (smooth)
-> hold -> release -> rest. The object's appearance is warped by a displacement field: a
Gaussian dent along the press direction around the contact point, vertical squash of the body
and a sideways bulge (cup: a buckling crease once past its buckling depth); the dent is shaded.

Contact model, force along the press axis in newtons:
    F = k * d^1.5 + c * dd/dt     (Hertz-like; cup: after buckling depth d_b the force drops to
                                   0.8 F(d_b) and then grows slowly, like a thin wall folding)
clipped at 0, k and c per object type with per-instance variation (+-12 % stiffness), so the
same depth on two instances gives different forces: an irreducible error a camera-only model
cannot remove. The 3-axis force (the probe pushing on the object, camera frame: x right in the
image, y towards the camera, z up) is F * (sin a, 0, -cos a).

Illumination levels (lux, as the seed): 350, 550, 750 -> gain, contrast and sensor noise; the
light direction (a brightness gradient) varies per episode.

Folder layout (the seed's): ``ROOT/[object]_[degree]_[illumination]/`` with ``EEE_FFFF.png``
frames (episode, frame; RGB) and ``labels.csv``: ``frame,episode,force,fx,fy,fz``.
"""
from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from .visual_force_render import MATERIAL, render_frame, sample_instance

OBJECTS = ("sponge", "cup", "tube", "box")
DEGREES = (0, 10, 20, 30)
ILLUMINATIONS = (350, 550, 750)
FOLDER_RE = re.compile(r"^([a-z]+)_(\d+)_(\d+)$")
LABEL_FILE = "labels.csv"


@dataclass
class Episode:
    """One press of one object instance: frames and per-frame labels."""

    images: np.ndarray            # (N, H, W, 3) uint8 RGB
    force: np.ndarray             # (N,) float32, N along the press axis
    force3: np.ndarray            # (N, 3) float32, N (camera frame)
    object: str
    degree: int
    illumination: int
    depth: np.ndarray | None = None   # (N,) px, when generated
    source: str = ""

    def __len__(self) -> int:
        return len(self.force)

    @property
    def cell(self) -> tuple[str, int, int]:
        return self.object, self.degree, self.illumination


@dataclass
class SceneConfig:
    width: int = 128
    height: int = 128
    objects: tuple[str, ...] = OBJECTS
    degrees: tuple[int, ...] = DEGREES
    illuminations: tuple[int, ...] = ILLUMINATIONS
    episodes_per_cell: int = 3
    seed: int = 0
    frames_range: tuple[int, int] = (48, 64)   # frames per episode


def press_profile(n: int, rng: np.random.Generator, depth_max: float) -> np.ndarray:
    """Rest -> smooth press -> hold -> release -> rest, ``n`` frames, depths in px."""
    rest0 = int(rng.integers(2, 6))
    rest1 = int(rng.integers(2, 6))
    active = max(6, n - rest0 - rest1)
    fr = rng.dirichlet((4.0, 2.0, 4.0))
    press = max(2, int(round(active * fr[0])))
    hold = max(1, int(round(active * fr[1])))
    release = max(2, active - press - hold)
    up = 0.5 - 0.5 * np.cos(np.linspace(0, math.pi, press))
    down = 0.5 + 0.5 * np.cos(np.linspace(0, math.pi, release))
    d = np.concatenate([np.zeros(rest0), up, np.ones(hold), down, np.zeros(rest1)]) * depth_max
    return d[:n] if len(d) >= n else np.concatenate([d, np.zeros(n - len(d))])


def contact_force(obj: str, depth: np.ndarray, k: float, c: float, buckle: float | None = None) -> np.ndarray:
    """Apply the contact model: elastic Hertz-like term (cup: buckling) + viscous term, >= 0."""
    d = np.maximum(depth, 0.0)
    elastic = k * d ** 1.5
    if obj == "cup" and buckle is not None:
        fb = k * buckle ** 1.5
        elastic = np.where(d <= buckle, elastic, 0.8 * fb + 0.25 * k * (d - buckle))
    velocity = np.gradient(d) if len(d) > 1 else np.zeros_like(d)
    force = elastic + c * velocity * (d > 0)
    return np.maximum(force, 0.0)


def make_episode(obj: str, degree: int, lux: int, rng: np.random.Generator, width: int = 128,
                 height: int = 128, frames: int = 56) -> Episode:
    inst = sample_instance(obj, rng, width)
    inst.gain = float(rng.uniform(0.95, 1.05))
    m = MATERIAL[obj]
    depth_max = float(rng.uniform(*m["depth"])) * width / 128
    depth = press_profile(frames, rng, depth_max)
    # the contact model works in 128-px units whatever the render size
    force = contact_force(obj, depth * 128 / width, inst.k, inst.c, inst.buckle).astype(np.float32)
    a = math.radians(degree)
    force3 = np.stack([force * math.sin(a), np.zeros_like(force), -force * math.cos(a)], 1).astype(np.float32)
    images = np.stack([render_frame(inst, d, degree, lux, rng, width, height) for d in depth])
    return Episode(images, force, force3, obj, degree, lux, depth.astype(np.float32),
                   source=f"synthetic {obj}_{degree}_{lux}")


def generate(cfg: SceneConfig) -> list[Episode]:
    """Every (object, degree, illumination) cell, ``episodes_per_cell`` presses each."""
    episodes = []
    for obj in cfg.objects:
        for degree in cfg.degrees:
            for lux in cfg.illuminations:
                # one generator per cell: a cell's episodes do not change when others are added
                rng = np.random.default_rng([cfg.seed, OBJECTS.index(obj), degree, lux])
                for _ in range(cfg.episodes_per_cell):
                    n = int(rng.integers(cfg.frames_range[0], cfg.frames_range[1] + 1))
                    episodes.append(make_episode(obj, degree, lux, rng, cfg.width, cfg.height, n))
    return episodes


def folder_name(obj: str, degree: int, lux: int) -> str:
    return f"{obj}_{degree}_{lux}"


def write_folders(root: Path | str, episodes: Iterable[Episode]) -> int:
    """Write episodes in the seed's layout; returns the number of frames written."""
    root = Path(root)
    cells: dict[tuple, list[Episode]] = {}
    for ep in episodes:
        cells.setdefault(ep.cell, []).append(ep)
    total = 0
    for (obj, degree, lux), eps in cells.items():
        folder = root / folder_name(obj, degree, lux)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / LABEL_FILE, "w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(["frame", "episode", "force", "fx", "fy", "fz"])
            for e, ep in enumerate(eps):
                for f, (image, force, f3) in enumerate(zip(ep.images, ep.force, ep.force3)):
                    name = f"{e:03d}_{f:04d}.png"
                    if not cv2.imwrite(str(folder / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
                        raise OSError(f"cannot write {folder / name}")
                    out.writerow([name, e, f"{force:.5f}", *(f"{v:.5f}" for v in f3)])
                    total += 1
    return total


def read_folders(root: Path | str, size: tuple[int, int] | None = None) -> list[Episode]:
    """Read the seed's layout -> episodes. ``labels.csv`` needs ``frame`` and ``force``; ``episode``
    (else the folder is one sequence) and ``fx, fy, fz`` (else the force is along -z) are
    optional. ``size`` (w, h) resizes frames (area) when given. Folders whose names do not
    match ``[object]_[degree]_[illumination]`` are an error, so a typo is not silently skipped.
    """
    root = Path(root)
    if not root.is_dir():
        raise OSError(f"{root}: not a folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if (root / LABEL_FILE).is_file():
        folders = [root]
    if not folders:
        raise ValueError(f"{root}: no [object]_[degree]_[illumination] folders")
    episodes = []
    for folder in folders:
        m = FOLDER_RE.match(folder.name)
        if not m:
            raise ValueError(f"{folder}: folder name is not [object]_[degree]_[illumination]")
        obj, degree, lux = m.group(1), int(m.group(2)), int(m.group(3))
        labels = folder / LABEL_FILE
        if not labels.is_file():
            raise ValueError(f"{folder}: no {LABEL_FILE}")
        with open(labels, newline="") as fh:
            rows = list(csv.DictReader(fh))
        if not rows or "frame" not in rows[0] or "force" not in rows[0]:
            raise ValueError(f"{labels}: needs columns frame, force")
        groups: dict[str, list[dict]] = {}
        for row in rows:
            groups.setdefault(row.get("episode", "0"), []).append(row)
        for key, group in groups.items():
            images = []
            for row in group:
                image = cv2.imread(str(folder / row["frame"]), cv2.IMREAD_COLOR)
                if image is None:
                    raise ValueError(f"{folder / row['frame']}: missing or unreadable image")
                image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
                if size is not None and (image.shape[1], image.shape[0]) != tuple(size):
                    image = cv2.resize(image, tuple(size), interpolation=cv2.INTER_AREA)
                images.append(image)
            force = np.array([float(r["force"]) for r in group], np.float32)
            if all(k in group[0] for k in ("fx", "fy", "fz")):
                force3 = np.array([[float(r["fx"]), float(r["fy"]), float(r["fz"])] for r in group], np.float32)
            else:
                force3 = np.stack([np.zeros_like(force), np.zeros_like(force), -force], 1)
            episodes.append(Episode(np.stack(images), force, force3, obj, degree, lux,
                                    source=f"{folder.name} episode {key}"))
    return episodes


def write_bag(path: Path | str, episodes: Iterable[Episode], image_topic: str = "/camera/image_raw",
              wrench_topic: str = "/ft_sensor/wrench", rate_hz: float = 30.0, gap_s: float = 2.0,
              t0_ns: int = 1_700_000_000 * 10**9) -> int:
    """Record episodes as a camera topic (rgb8 sensor_msgs/Image) and a WrenchStamped topic at
    twice the camera rate (the force sampled between frames, as a real F/T sensor would be),
    with ``gap_s`` of silence between episodes (so the loader splits sequences there).
    """
    from ..bags import BagWriter
    from ..perception.image import encode_image_fields

    image_type, wrench_type = "sensor_msgs/msg/Image", "geometry_msgs/msg/WrenchStamped"
    t = t0_ns
    count = 0
    with BagWriter(path) as writer:
        types = writer.typestore.types
        writer.add_topic(image_topic, image_type)
        writer.add_topic(wrench_topic, wrench_type)

        def header(t_ns: int, frame: str):
            stamp = types["builtin_interfaces/msg/Time"](sec=t_ns // 10**9, nanosec=t_ns % 10**9)
            return types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame)

        period = round(1e9 / rate_hz)
        for ep in episodes:
            for k, image in enumerate(ep.images):
                t_img = t + k * period
                vec = types["geometry_msgs/msg/Vector3"]
                for half in (0, 1):    # wrench samples at -period/4 and +period/4 around the frame
                    t_w = t_img + (2 * half - 1) * period // 4
                    k2 = min(max(k + (2 * half - 1) * 0.25, 0), len(ep) - 1)
                    f3 = [float(np.interp(k2, np.arange(len(ep)), ep.force3[:, i])) for i in range(3)]
                    wrench = types["geometry_msgs/msg/Wrench"](force=vec(x=f3[0], y=f3[1], z=f3[2]),
                                                               torque=vec(x=0.0, y=0.0, z=0.0))
                    if half == 1:
                        fields_ = encode_image_fields(np.asarray(image), "rgb8")
                        fields_["data"] = np.frombuffer(fields_["data"], np.uint8)
                        writer.write_msg(image_topic, t_img,
                                         types[image_type](header=header(t_img, "camera"), **fields_))
                    writer.write_msg(wrench_topic, t_w, types[wrench_type](header=header(t_w, "ft_sensor"),
                                                                           wrench=wrench))
                count += 1
            t += len(ep) * period + round(gap_s * 1e9)
    return count
