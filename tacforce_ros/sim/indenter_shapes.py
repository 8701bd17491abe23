"""Rigid indenters of the tactile simulator (``tactile``), each a height profile above its tip."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

# Height (m) standing for "never touches": beyond an indenter's footprint, far above any depth.
_FAR_HEIGHT = 0.01


@dataclass(frozen=True)
class Indenter:
    """Rigid indenter given by its height profile above the lowest point of its tip.

    `profile(x, y)` takes coordinates (m) relative to the indenter's axis and returns the gap
    (m) between the indenter surface and the undeformed elastomer when the tip just touches:
    zero on the lowest points, large where the indenter never reaches.
    """

    name: str
    description: str
    profile: Callable[[np.ndarray, np.ndarray], np.ndarray]

    def height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.minimum(self.profile(x, y), _FAR_HEIGHT)


def _rounded_face(signed_distance: np.ndarray, edge_radius: float) -> np.ndarray:
    """Flat face (signed distance <= 0) with a quarter-round edge, as on a printed prism."""
    outside = np.maximum(signed_distance, 0.0)
    rounded = edge_radius - np.sqrt(np.maximum(edge_radius ** 2 - outside ** 2, 0.0))
    return np.where(outside <= edge_radius, rounded, _FAR_HEIGHT)


def _disk_distance(x, y, radius, cx=0.0, cy=0.0):
    return np.hypot(x - cx, y - cy) - radius


def _convex_polygon_distance(x, y, apothem, normal_angles_deg):
    """Signed distance to a convex polygon given by its edge normals (exact inside)."""
    angles = np.deg2rad(normal_angles_deg)
    return np.max([x * math.cos(a) + y * math.sin(a) - apothem for a in angles], axis=0)


def _sphere(radius):
    def profile(x, y):
        r2 = x * x + y * y
        return np.where(r2 < radius ** 2, radius - np.sqrt(np.maximum(radius ** 2 - r2, 0.0)), _FAR_HEIGHT)
    return profile


def _flat(signed_distance, edge_radius=0.5e-3):
    return lambda x, y: _rounded_face(signed_distance(x, y), edge_radius)


def _cone(slope_deg):
    return lambda x, y: np.hypot(x, y) * math.tan(math.radians(slope_deg))


def _capsule(radius, length):
    """Rod of `radius` lying along x with rounded ends."""
    def profile(x, y):
        dist2 = np.maximum(np.abs(x) - length / 2, 0.0) ** 2 + y * y
        return np.where(dist2 < radius ** 2, radius - np.sqrt(np.maximum(radius ** 2 - dist2, 0.0)), _FAR_HEIGHT)
    return profile


def _torus(major_radius, tube_radius):
    def profile(x, y):
        off_ring = np.hypot(x, y) - major_radius
        inside = np.abs(off_ring) < tube_radius
        return np.where(inside, tube_radius - np.sqrt(np.maximum(tube_radius ** 2 - off_ring ** 2, 0.0)), _FAR_HEIGHT)
    return profile


def _wave(face_radius, amplitude, wavelength):
    """Round flat punch whose face carries ridges along y."""
    def profile(x, y):
        face = _rounded_face(_disk_distance(x, y, face_radius), 0.5e-3)
        ridges = 0.5 * amplitude * (1.0 - np.cos(2.0 * np.pi * x / wavelength))
        return np.where(face < _FAR_HEIGHT, face + ridges, _FAR_HEIGHT)
    return profile


def _pacman_distance(x, y):
    mouth = np.maximum((y - x) / math.sqrt(2), (-y - x) / math.sqrt(2))  # 90 deg wedge facing +x
    return np.maximum(_disk_distance(x, y, 3.5e-3), -mouth)


def _moon_distance(x, y):
    return np.maximum(_disk_distance(x, y, 3.5e-3), -_disk_distance(x, y, 3.0e-3, cx=1.5e-3))


INDENTERS: dict[str, Indenter] = {ind.name: ind for ind in (
    Indenter("sphere", "sphere R = 6 mm", _sphere(6e-3)),
    Indenter("sphere_s", "small sphere R = 3 mm", _sphere(3e-3)),
    Indenter("cylinder", "flat punch, radius 3 mm, sharp edge", _flat(lambda x, y: _disk_distance(x, y, 3e-3), 0.0)),
    Indenter("cone", "cone, flank 30 deg above the surface", _cone(30.0)),
    Indenter("triangle", "equilateral triangular prism end face, side 6.9 mm",
             _flat(lambda x, y: _convex_polygon_distance(x, y, 2e-3, (-90.0, 30.0, 150.0)))),
    Indenter("cube", "square prism end face, 5 x 5 mm",
             _flat(lambda x, y: _convex_polygon_distance(x, y, 2.5e-3, (0.0, 90.0, 180.0, 270.0)))),
    Indenter("hexagon", "hexagonal prism end face, across flats 5.2 mm",
             _flat(lambda x, y: _convex_polygon_distance(x, y, 2.6e-3, (0.0, 60.0, 120.0, 180.0, 240.0, 300.0)))),
    Indenter("pacman", "disk R = 3.5 mm with a 90 deg mouth towards +x", _flat(_pacman_distance)),
    Indenter("moon", "crescent: disk R = 3.5 mm minus disk R = 3 mm offset 1.5 mm in +x", _flat(_moon_distance)),
    Indenter("wave", "round punch R = 4 mm with 0.4 mm ridges every 2.5 mm", _wave(4e-3, 0.4e-3, 2.5e-3)),
    Indenter("torus", "ring, major radius 3.5 mm, tube radius 1.2 mm", _torus(3.5e-3, 1.2e-3)),
    Indenter("line", "rod R = 2 mm, 10 mm long, along x", _capsule(2e-3, 10e-3)),
)}

UNSEEN_INDENTERS = ("sphere_s", "triangle", "pacman", "cone", "wave", "torus")
SEEN_INDENTERS = tuple(name for name in INDENTERS if name not in UNSEEN_INDENTERS)
