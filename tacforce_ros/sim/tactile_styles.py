"""Sensor styles of the tactile simulator (``tactile``): appearance, material and marker layout
of each simulated marker sensor, as configuration data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

MARKER_LAYOUTS = ("grid", "hex", "circle", "diamond", "random")


@dataclass(frozen=True)
class SensorStyle:
    """Appearance and material of one simulated marker sensor (GenForce-like by default)."""

    name: str
    width: int = 640
    height: int = 480
    pad_width_mm: float = 25.0
    pad_height_mm: float = 25.0
    margin_px: int = 20  # image border around the pad; the pad is centred and keeps its aspect
    marker_layout: str = "grid"
    marker_spacing_mm: float = 1.2
    dot_radius_px: float = 5.0
    dot_growth_per_mm: float = 0.3  # relative dot enlargement per mm of surface indentation
    youngs_modulus_pa: float = 1.45e5
    poisson: float = 0.45
    friction: float = 1.0
    noise_std: float = 3.0  # grey levels
    brightness: float = 1.0
    lighting_gradient: float = 0.15  # relative brightness change across the image
    lighting_angle_deg: float = 0.0  # direction of increasing brightness, 0 = image right
    background_level: float = 20.0
    marker_level: float = 230.0
    layout_seed: int = 0  # only used by the 'random' layout

    def __post_init__(self) -> None:
        if self.marker_layout not in MARKER_LAYOUTS:
            raise ValueError(f"marker_layout must be one of {MARKER_LAYOUTS}, got {self.marker_layout!r}")
        if not 0.0 <= self.poisson < 0.5:
            raise ValueError("poisson must be in [0, 0.5)")

    @property
    def px_per_mm(self) -> float:
        return min((self.width - 2 * self.margin_px) / self.pad_width_mm,
                   (self.height - 2 * self.margin_px) / self.pad_height_mm)

    @property
    def shear_modulus_pa(self) -> float:
        return self.youngs_modulus_pa / (2.0 * (1.0 + self.poisson))

    @property
    def contact_modulus_pa(self) -> float:
        """E* = E / (1 - nu^2) for a rigid indenter."""
        return self.youngs_modulus_pa / (1.0 - self.poisson ** 2)


_ARRAY1 = SensorStyle(name="array1")
SENSOR_STYLES: dict[str, SensorStyle] = {
    "array1": _ARRAY1,
    "array2": replace(_ARRAY1, name="array2", marker_spacing_mm=1.7, dot_radius_px=7.5,
                      lighting_gradient=0.25, lighting_angle_deg=60.0),
    "circle1": replace(_ARRAY1, name="circle1", marker_layout="circle", marker_spacing_mm=1.3,
                       dot_radius_px=5.5, lighting_angle_deg=180.0),
    "diamond1": replace(_ARRAY1, name="diamond1", marker_layout="diamond", marker_spacing_mm=1.5,
                        dot_radius_px=6.0, lighting_angle_deg=90.0),
    "hex1": replace(_ARRAY1, name="hex1", marker_layout="hex", marker_spacing_mm=1.3,
                    dot_radius_px=5.0, noise_std=5.0),
    "random1": replace(_ARRAY1, name="random1", marker_layout="random", marker_spacing_mm=1.3,
                       dot_radius_px=4.5, layout_seed=1),
    "array1_soft": replace(_ARRAY1, name="array1_soft", youngs_modulus_pa=_ARRAY1.youngs_modulus_pa / 8),
}
# Cross-sensor transfer targets: diamond1 with an elastomer 8 times softer (GenForce's modulus
# ratios run 6..18), and a TacTip-like sensor, a very different pattern: large dark pins on a
# bright skin in a coarse hexagonal array.
SENSOR_STYLES["diamond1_soft"] = replace(SENSOR_STYLES["diamond1"], name="diamond1_soft",
                                         youngs_modulus_pa=_ARRAY1.youngs_modulus_pa / 8)
SENSOR_STYLES["tactip1"] = replace(_ARRAY1, name="tactip1", marker_layout="hex", marker_spacing_mm=2.6,
                                   dot_radius_px=13.0, dot_growth_per_mm=0.4, background_level=205.0,
                                   marker_level=35.0, lighting_gradient=0.3, lighting_angle_deg=-45.0,
                                   noise_std=4.0)


# --------------------------------------------------------------------------- marker layouts

def marker_layout_mm(style: SensorStyle) -> np.ndarray:
    """Rest marker positions (mm, sensor frame, pad centre = origin), shape (M, 2)."""
    s = style.marker_spacing_mm
    half_w, half_h = style.pad_width_mm / 2 - s / 2, style.pad_height_mm / 2 - s / 2
    reach = math.hypot(half_w, half_h)
    if style.marker_layout == "circle":
        rings = [np.zeros((1, 2))]
        for ring in range(1, int(reach / s) + 1):
            count = max(6, round(2 * math.pi * ring))
            angles = 2 * math.pi * np.arange(count) / count
            rings.append(ring * s * np.column_stack([np.cos(angles), np.sin(angles)]))
        points = np.concatenate(rings)
    else:
        n = int(math.ceil(reach / s)) + 1
        i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1))
        i, j = i.ravel().astype(float), j.ravel().astype(float)
        if style.marker_layout == "hex":
            points = np.column_stack([(i + 0.5 * (j % 2)) * s, j * s * math.sqrt(3) / 2])
        elif style.marker_layout == "diamond":
            c = math.sqrt(0.5)
            points = np.column_stack([(i - j) * c * s, (i + j) * c * s])
        else:
            points = np.column_stack([i * s, j * s])
            if style.marker_layout == "random":
                jitter = np.random.default_rng(style.layout_seed).uniform(-0.25, 0.25, points.shape)
                points = points + jitter * s
    keep = (np.abs(points[:, 0]) <= half_w + 1e-9) & (np.abs(points[:, 1]) <= half_h + 1e-9)
    return points[keep]
