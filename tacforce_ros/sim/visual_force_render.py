"""Rendering of the visual-force scenes (``visual_force_scenes``; its docstring describes the
scene): object instances with their material, the dented object layer and the lit, noisy frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

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


def sample_instance(obj: str, rng: np.random.Generator, width: int) -> _Instance:
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
