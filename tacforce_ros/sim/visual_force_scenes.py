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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

OBJECTS = ("sponge", "cup", "tube", "box")
DEGREES = (0, 10, 20, 30)
ILLUMINATIONS = (350, 550, 750)
FOLDER_RE = re.compile(r"^([a-z]+)_(\d+)_(\d+)$")
LABEL_FILE = "labels.csv"

# per object: stiffness k (N / px^1.5), viscosity c (N per px/frame), max depth range (px),
# dent width (px), body size range (w, h), base colour (RGB)
MATERIAL = {
    "sponge": dict(k=0.08, c=0.8, depth=(8.0, 20.0), sigma=11.0, size=((50, 64), (30, 40)), colour=(215, 190, 60)),
    "cup":    dict(k=0.55, c=0.4, depth=(3.0, 12.0), sigma=8.0, size=((34, 42), (40, 48)), colour=(235, 235, 230),
                   buckle=(4.0, 6.0)),
    "tube":   dict(k=0.30, c=0.6, depth=(4.0, 12.0), sigma=8.0, size=((54, 66), (20, 26)), colour=(70, 120, 200)),
    "box":    dict(k=0.80, c=1.0, depth=(3.0, 8.0), sigma=7.0, size=((40, 50), (32, 40)), colour=(170, 125, 80)),
}
LUX_GAIN = {350: 0.5, 550: 0.75, 750: 1.0}
LUX_NOISE = {350: 6.0, 550: 4.0, 750: 3.0}


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
    """The contact model: elastic Hertz-like term (cup: buckling) + viscous term, >= 0."""
    d = np.maximum(depth, 0.0)
    elastic = k * d ** 1.5
    if obj == "cup" and buckle is not None:
        fb = k * buckle ** 1.5
        elastic = np.where(d <= buckle, elastic, 0.8 * fb + 0.25 * k * (d - buckle))
    velocity = np.gradient(d) if len(d) > 1 else np.zeros_like(d)
    force = elastic + c * velocity * (d > 0)
    return np.maximum(force, 0.0)


@dataclass
class _Instance:
    obj: str
    w: float
    h: float
    cx: float
    colour: np.ndarray
    k: float
    c: float
    sigma: float
    buckle: float | None
    contact_dx: float
    texture_seed: int
    light: tuple[float, float] = (0.0, 0.0)
    gain: float = 1.0
    extra: dict = field(default_factory=dict)


def _instance(obj: str, rng: np.random.Generator, width: int) -> _Instance:
    m = MATERIAL[obj]
    (w0, w1), (h0, h1) = m["size"]
    scale = width / 128.0
    colour = np.clip(np.array(m["colour"], float) * rng.uniform(0.85, 1.1, 3), 0, 255)
    buckle = float(rng.uniform(*m["buckle"])) if "buckle" in m else None
    return _Instance(obj=obj, w=rng.uniform(w0, w1) * scale, h=rng.uniform(h0, h1) * scale,
                     cx=width / 2 + rng.uniform(-6, 6) * scale, colour=colour,
                     k=m["k"] * rng.uniform(0.88, 1.12), c=m["c"] * rng.uniform(0.85, 1.15),
                     sigma=m["sigma"] * scale, buckle=buckle, contact_dx=rng.uniform(-4, 4) * scale,
                     texture_seed=int(rng.integers(1 << 30)),
                     light=(rng.uniform(-0.25, 0.25), rng.uniform(-0.15, 0.15)))


def _object_layer(inst: _Instance, width: int, height: int, table_y: float) -> tuple[np.ndarray, np.ndarray]:
    """Undeformed object: RGB float image and mask (float 0..1), object resting on the table."""
    rng = np.random.default_rng(inst.texture_seed)
    img = np.zeros((height, width, 3), np.float32)
    mask = np.zeros((height, width), np.float32)
    x0, x1 = inst.cx - inst.w / 2, inst.cx + inst.w / 2
    y0, y1 = table_y - inst.h, table_y
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = inst.colour.astype(np.float32)
    if inst.obj == "cup":   # trapezoid, wider at the top, rim and thin-wall shading
        t = np.clip((yy - y0) / max(1.0, inst.h), 0, 1)
        half = inst.w / 2 * (1.0 - 0.2 * t)
        inside = (yy >= y0) & (yy <= y1) & (np.abs(xx - inst.cx) <= half)
        shade = 0.75 + 0.25 * np.cos(np.clip((xx - inst.cx) / np.maximum(half, 1), -1, 1) * math.pi / 2)
        img[:] = base * shade[..., None]
        rim = inside & (yy < y0 + 3)
        img[rim] = base * 0.6
        band = inside & (np.abs(yy - (y0 + 0.55 * inst.h)) < 4)
        img[band] = np.array([200, 60, 60], np.float32) * shade[band][:, None]
        mask[inside] = 1
    elif inst.obj == "tube":  # lying cylinder: vertical cylindrical shading, a label band
        inside = (yy >= y0) & (yy <= y1) & (xx >= x0) & (xx <= x1)
        r = np.clip((yy - (y0 + y1) / 2) / (inst.h / 2), -1, 1)
        shade = 0.45 + 0.55 * np.sqrt(1 - r ** 2)
        img[:] = base * shade[..., None]
        band = inside & (np.abs(xx - inst.cx) < inst.w * 0.18)
        img[band] = np.array([240, 240, 240], np.float32) * shade[band][:, None]
        cap = inside & ((xx - x0 < 3) | (x1 - xx < 3))
        img[cap] = base * 0.5
        mask[inside] = 1
    else:
        inside = (yy >= y0) & (yy <= y1) & (xx >= x0) & (xx <= x1)
        img[:] = base
        if inst.obj == "sponge":   # porous texture: dark pores
            n = int(inst.w * inst.h / 10)
            px, py = rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)
            pores = np.zeros((height, width), np.float32)
            for x, y in zip(px, py):
                cv2.circle(pores, (int(x), int(y)), int(rng.integers(1, 3)), 1.0, -1)
            img *= (1 - 0.45 * pores)[..., None]
            top = inside & (yy < y0 + inst.h * 0.3)
            img[top] = np.array([60, 150, 70], np.float32)   # scouring layer
        else:                      # box: cardboard, edges, tape
            img[inside & ((np.abs(xx - x0) < 2) | (np.abs(xx - x1) < 2) | (np.abs(yy - y0) < 2))] = base * 0.6
            img[inside & (np.abs(xx - inst.cx) < 3)] = np.array([210, 190, 150], np.float32)
            grain = rng.normal(0, 8, (height, width)).astype(np.float32)
            img += cv2.GaussianBlur(grain, (0, 0), 1.0)[..., None]
        mask[inside] = 1
    return img, mask


def _background(width: int, height: int, table_y: float) -> np.ndarray:
    yy = np.mgrid[0:height, 0:width][0].astype(np.float32)
    wall = np.stack([150 + 0 * yy, 160 + 0 * yy, 170 + 0 * yy], -1) * (0.9 + 0.1 * yy[..., None] / height)
    table = np.stack([110 + 0 * yy, 95 + 0 * yy, 80 + 0 * yy], -1)
    out = np.where((yy >= table_y)[..., None], table, wall).astype(np.float32)
    out[(yy >= table_y) & (yy < table_y + 1.5)] = (70, 60, 50)
    return out


def render_frame(inst: _Instance, depth: float, degree: float, lux: int, rng: np.random.Generator,
                 width: int = 128, height: int = 128) -> np.ndarray:
    table_y = height * 0.8
    obj_img, mask = _object_layer(inst, width, height, table_y)
    y_top = table_y - inst.h
    xc, yc = inst.cx + inst.contact_dx, y_top
    a = math.radians(degree)
    px, py = math.sin(a), math.cos(a)                     # press direction (image: y down)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    g = np.exp(-((xx - xc) ** 2 + (yy - yc) ** 2) / (2 * inst.sigma ** 2))
    rel_h = np.clip((table_y - yy) / max(inst.h, 1.0), 0, 1)       # 1 at the top, 0 on the table
    squash = 0.35 * depth * rel_h                                     # body squashed down
    side = np.clip((xx - inst.cx) / (inst.w / 2), -1.5, 1.5)
    bulge = 0.22 * depth * side * np.sin(math.pi * np.clip(1 - rel_h, 0, 1))
    if inst.obj == "cup" and inst.buckle is not None and depth > inst.buckle:
        extra = depth - inst.buckle                                  # buckling crease mid-wall
        bulge = bulge + 0.9 * extra * np.sign(side) * np.exp(-((rel_h - 0.6) / 0.12) ** 2)
    ux = depth * px * g + bulge
    uy = depth * py * g + squash
    map_x, map_y = (xx - ux).astype(np.float32), (yy - uy).astype(np.float32)
    warped = cv2.remap(obj_img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    wmask = cv2.remap(mask, map_x, map_y, cv2.INTER_LINEAR, borderValue=0)
    shade = 1 - 0.5 * np.clip(depth / 8.0, 0, 1) * g                # the dent is in shadow
    warped *= shade[..., None]
    bg = _background(width, height, table_y)
    # contact shadow under the object
    img = bg * (1 - wmask[..., None]) + warped * wmask[..., None]
    # the probe: a rod along the press axis, its rounded tip at the dent's bottom
    tip = (xc + depth * px, yc + depth * py - 1.5)
    far = (tip[0] - px * 3 * height, tip[1] - py * 3 * height)
    probe = np.zeros((height, width), np.uint8)
    cv2.line(probe, (int(round(far[0] * 4)), int(round(far[1] * 4))), (int(round(tip[0] * 4)), int(round(tip[1] * 4))),
             255, int(6 * width / 128 * 4), lineType=cv2.LINE_AA, shift=2)
    probe_a = probe.astype(np.float32)[..., None] / 255
    across = (xx - tip[0]) * py - (yy - tip[1]) * px
    metal = 120 + 60 * np.cos(np.clip(across / (3 * width / 128), -1.5, 1.5))
    img = img * (1 - probe_a) + np.stack([metal, metal, metal * 1.05], -1) * probe_a
    # illumination: gain, light direction gradient, sensor noise
    gain = LUX_GAIN[lux] * inst.gain
    lx, ly = inst.light
    gradient = 1 + lx * (xx / width - 0.5) * 2 + ly * (yy / height - 0.5) * 2
    img = img * gain * gradient[..., None] + 10
    img += rng.normal(0, LUX_NOISE[lux], img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_episode(obj: str, degree: int, lux: int, rng: np.random.Generator, width: int = 128,
                 height: int = 128, frames: int = 56) -> Episode:
    inst = _instance(obj, rng, width)
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
    """The seed's layout -> episodes. ``labels.csv`` needs ``frame`` and ``force``; ``episode``
    (else the folder is one sequence) and ``fx, fy, fz`` (else the force is along -z) are
    optional. ``size`` (w, h) resizes frames (area) when given. Folders whose names do not
    match ``[object]_[degree]_[illumination]`` are an error, so a typo is not silently skipped."""
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
    with ``gap_s`` of silence between episodes (so the loader splits sequences there)."""
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
