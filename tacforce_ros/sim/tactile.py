"""Marker-type tactile sensor simulator grounded in elastic half-space contact mechanics.

Sign convention (sensor frame, REP-103 style, right-handed):
    x points to the image right, y towards the image top, z out of the elastomer surface
    (towards the indenter). The reported force is the force exerted ON the sensor BY the
    indenter, so pressing gives Fz < 0 (as in GenForce and a Nano17 reading the contact) and
    dragging the indenter towards +x gives Fx > 0 and moves the markers towards +x.

Units: positions, depths and shear displacements in metres, forces in newtons, areas in m^2,
pressures in Pa. Marker positions are image pixels as (column, row); row 0 is the image top.

Image polarity: bright (white) markers on a dark elastomer, like GenForce's binary marker
images; mono8, height x width = 480 x 640 by default.

Mechanics (why it looks the way it does):
    * The elastomer is a linear elastic half-space and the indenter is rigid. The pad's finite
      thickness and rigid backing are ignored, so forces are those of a thick pad.
    * Normal contact is a boundary-element problem on a regular grid over the pad:
      piecewise-constant pressure cells, Love's exact influence coefficients for the
      Boussinesq solution, FFT convolution (zero-padded, non-periodic) and the Polonsky–Keer
      conjugate-gradient solver with non-negative pressure and a prescribed rigid-body
      indentation depth. This works for any indenter shape. The contact area places each
      contact edge inside its grid cell from the square-root edge asymptotics, so it grows
      smoothly with depth instead of in cell-sized steps.
    * Tangential load follows a friction-limited linear law Ft = min(k_t |s|, mu Fn) along the
      indenter's shear displacement s, with Mindlin's stiffness k_t = 8 G* a, 1/G* = (2-nu)/G
      and a = sqrt(area / pi). The traction is distributed in proportion to the pressure.
      Normal and tangential problems are uncoupled (Goodman's approximation, small for nu=0.45).
    * Marker motion is the surface in-plane displacement: the Boussinesq in-plane term of the
      pressure (towards the load, weak for nu close to 0.5) plus the Cerruti solution of the
      tangential traction. Markers are material points, so fields are sampled at their rest
      positions. As a rendering cue, dots grow with the local normal surface displacement
      (the pressed surface comes closer to the camera).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, NamedTuple

import cv2
import numpy as np

MARKER_LAYOUTS = ("grid", "hex", "circle", "diamond", "random")

# Height (m) standing for "never touches": beyond an indenter's footprint, far above any depth.
_FAR_HEIGHT = 0.01
_SUBPIXEL_SHIFT = 4  # cv2 fixed-point bits for anti-aliased sub-pixel dots
_CG_TOLERANCE = 1e-7
_CG_MAX_ITERATIONS = 300


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


# --------------------------------------------------------------------------- indenters

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


# --------------------------------------------------------------------------- influence functions

def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den != 0)
    return out


# Antiderivatives F(u, v) with d2F/du dv = integrand; evaluated at cell corners they give the
# exact integral of each point-load kernel over a uniformly loaded rectangular cell.
def _int_uu_r3(u, v):  # u^2 / r^3
    return v * np.arcsinh(_safe_ratio(u, np.abs(v)))


def _int_vv_r3(u, v):  # v^2 / r^3
    return u * np.arcsinh(_safe_ratio(v, np.abs(u)))


def _int_uv_r3(u, v):  # u v / r^3
    return -np.hypot(u, v)


def _int_u_r2(u, v):  # u / r^2
    r2 = u * u + v * v
    return 0.5 * v * np.log(np.where(r2 > 0, r2, 1.0)) + u * np.arctan(_safe_ratio(v, u))


def _int_v_r2(u, v):  # v / r^2
    return _int_u_r2(v, u)


def _over_cell(antiderivative, u, v, half_x, half_y):
    return (antiderivative(u + half_x, v + half_y) - antiderivative(u - half_x, v + half_y)
            - antiderivative(u + half_x, v - half_y) + antiderivative(u - half_x, v - half_y))


@dataclass(frozen=True)
class _InfluenceSpectra:
    """rfft2 of the cell influence coefficients (displacement per unit traction) on the padded grid.

    Names read <displacement><traction>: zz = normal displacement from pressure, xz = x
    displacement from pressure, xx/xy/yy = in-plane displacement from in-plane traction.
    """

    zz: np.ndarray
    xz: np.ndarray
    yz: np.ndarray
    xx: np.ndarray
    xy: np.ndarray
    yy: np.ndarray


def _influence_spectra(nx, ny, cell_x, cell_y, shear_modulus, poisson) -> _InfluenceSpectra:
    # Offsets field - source in FFT order (0..n-1, -n..-1) so a circular convolution of the
    # zero-padded (2n) arrays equals the linear one on the n x n pad.
    u = np.fft.fftfreq(2 * nx, d=1.0 / (2 * nx)) * cell_x
    v = np.fft.fftfreq(2 * ny, d=1.0 / (2 * ny)) * cell_y
    U, V = np.meshgrid(u, v)
    hx, hy = cell_x / 2, cell_y / 2
    uu = _over_cell(_int_uu_r3, U, V, hx, hy)
    vv = _over_cell(_int_vv_r3, U, V, hx, hy)
    inv_r = uu + vv
    g, nu = shear_modulus, poisson
    inward = -(1.0 - 2.0 * nu) / (4.0 * math.pi * g)  # Boussinesq: surface moves towards the load
    cerruti = 1.0 / (2.0 * math.pi * g)
    kernels = dict(
        zz=(1.0 - nu) / (2.0 * math.pi * g) * inv_r,
        xz=inward * _over_cell(_int_u_r2, U, V, hx, hy),
        yz=inward * _over_cell(_int_v_r2, U, V, hx, hy),
        xx=cerruti * ((1.0 - nu) * inv_r + nu * uu),
        xy=cerruti * nu * _over_cell(_int_uv_r3, U, V, hx, hy),
        yy=cerruti * ((1.0 - nu) * inv_r + nu * vv),
    )
    return _InfluenceSpectra(**{name: np.fft.rfft2(k) for name, k in kernels.items()})


# --------------------------------------------------------------------------- monotone interpolation

def _pchip_slopes(step: float, values: np.ndarray) -> np.ndarray:
    """Fritsch–Carlson slopes on a uniform grid, so the interpolant never overshoots."""
    secant = np.diff(values) / step
    slopes = np.zeros_like(values)
    left, right = secant[:-1], secant[1:]
    same_sign = left * right > 0
    slopes[1:-1] = np.where(same_sign, 2.0 * left * right / np.where(same_sign, left + right, 1.0), 0.0)

    def edge(first, second):
        slope = (3.0 * first - second) / 2.0
        if slope * first <= 0:
            return 0.0
        if first * second <= 0 and abs(slope) > abs(3.0 * first):
            return 3.0 * first
        return slope

    slopes[0] = edge(secant[0], secant[1])
    slopes[-1] = edge(secant[-1], secant[-2])
    return slopes


@dataclass(frozen=True)
class _DepthCurve:
    """Monotone cubic interpolant of a quantity sampled at depths 0, step, ..., n*step."""

    step: float
    values: tuple[float, ...]
    slopes: tuple[float, ...]

    @classmethod
    def fit(cls, step: float, values: np.ndarray) -> "_DepthCurve":
        values = np.maximum.accumulate(values)  # solver round-off must not break monotonicity
        return cls(step, tuple(values.tolist()), tuple(_pchip_slopes(step, values).tolist()))

    def __call__(self, depth: float) -> float:
        last = len(self.values) - 1
        position = depth / self.step
        if position >= last:  # beyond the table: continue along the end tangent
            return self.values[last] + self.slopes[last] * (depth - last * self.step)
        i = int(position)
        t = position - i
        y0, y1 = self.values[i], self.values[i + 1]
        m0, m1 = self.slopes[i] * self.step, self.slopes[i + 1] * self.step
        t2, t3 = t * t, t * t * t
        return ((2 * t3 - 3 * t2 + 1) * y0 + (t3 - 2 * t2 + t) * m0
                + (-2 * t3 + 3 * t2) * y1 + (t3 - t2) * m1)


# --------------------------------------------------------------------------- contact edge

# Near a smooth contact edge p = K sqrt(xi) inside and gap = (4 K / 3 E*) eta^1.5 outside
# (Hertz edge asymptotics). With the loaded cell at xi = tau and its free neighbour at
# eta = 1 - tau (in cells), 3 E* gap / (4 p cell) = (1 - tau)^1.5 / sqrt(tau), whatever K is.
_EDGE_TAU = np.linspace(1e-9, 1.0 - 1e-9, 2001)[::-1]
_EDGE_LOG_RATIO = np.log((1.0 - _EDGE_TAU) ** 1.5 / np.sqrt(_EDGE_TAU))  # increasing


def _edge_fraction(ratio: np.ndarray) -> np.ndarray:
    """Edge position tau in (0, 1) between a loaded cell and its free neighbour (see above)."""
    with np.errstate(divide="ignore"):
        return np.interp(np.log(ratio), _EDGE_LOG_RATIO, _EDGE_TAU)


class _NormalSolution(NamedTuple):
    pressure: np.ndarray  # Pa, on the pad grid
    displacement: np.ndarray  # m, normal surface displacement into the pad
    contact_area: float  # m^2


# --------------------------------------------------------------------------- simulator

@dataclass
class ContactState:
    """Result of one quasi-static contact; `force` is on the sensor, in the sensor frame (N)."""

    indenter: str
    position: np.ndarray  # (2,) m, indenter axis relative to the pad centre
    depth: float  # m, rigid-body indentation
    shear: np.ndarray  # (2,) m, tangential indenter displacement after touching
    force: np.ndarray  # (3,) N; Fz < 0 when pressing
    contact_area: float  # m^2
    pressure: np.ndarray  # (ny, nx) Pa on the pad grid; row 0 is the pad bottom (-y)
    marker_xy: np.ndarray  # (M, 2) displaced marker centres, pixels (column, row)
    marker_radius: np.ndarray  # (M,) dot radii, pixels

    @property
    def in_contact(self) -> bool:
        return bool(self.force[2] < 0.0)


class TactileSimulator:
    """Marker images and contact wrenches of one sensor style (see the module docstring).

    `grid` cells span the pad width; `max_depth` (m) bounds the cached force-depth curves of
    the fast path `normal_force`, which extrapolates linearly beyond it.
    """

    def __init__(self, style: SensorStyle, grid: int = 64, seed: int = 0, max_depth: float = 2.0e-3,
                 curve_samples: int = 40):
        if grid < 8:
            raise ValueError("grid must be at least 8 cells")
        self.style = style
        self.max_depth = max_depth
        self._curve_samples = curve_samples
        self._rng = np.random.default_rng(seed)

        pad_w, pad_h = style.pad_width_mm * 1e-3, style.pad_height_mm * 1e-3
        self._nx, self._ny = grid, max(1, round(grid * pad_h / pad_w))
        self._cell_x, self._cell_y = pad_w / self._nx, pad_h / self._ny
        self._cell_area = self._cell_x * self._cell_y
        xs = (np.arange(self._nx) + 0.5) * self._cell_x - pad_w / 2
        ys = (np.arange(self._ny) + 0.5) * self._cell_y - pad_h / 2
        self._grid_x, self._grid_y = np.meshgrid(xs, ys)
        self._spectra = _influence_spectra(self._nx, self._ny, self._cell_x, self._cell_y,
                                           style.shear_modulus_pa, style.poisson)
        # Mindlin tangential stiffness per unit equivalent contact radius: 8 G*.
        self._tangential_stiffness_per_radius = 8.0 * style.shear_modulus_pa / (2.0 - style.poisson)

        self.px_per_m = style.px_per_mm * 1e3
        self._image_centre = np.array([(style.width - 1) / 2, (style.height - 1) / 2])
        markers_m = marker_layout_mm(style) * 1e-3
        self._reference_xy = self._to_pixels(markers_m)
        self._reference_radius = np.full(len(markers_m), style.dot_radius_px)
        self._marker_sampler = self._bilinear_sampler(markers_m)

        rows, cols = np.mgrid[0:style.height, 0:style.width].astype(np.float32)
        angle = math.radians(style.lighting_angle_deg)
        ramp = (math.cos(angle) * (cols - self._image_centre[0])
                - math.sin(angle) * (rows - self._image_centre[1])) / max(style.width, style.height)
        lighting = style.brightness * (1.0 + style.lighting_gradient * ramp)
        self._background = (style.background_level * lighting).astype(np.float32)
        self._ink_per_level = ((style.marker_level - style.background_level) / 255.0 * lighting).astype(np.float32)

        self._curves: dict[tuple[str, int, int], tuple[_DepthCurve, _DepthCurve]] = {}
        # Shearing repeats the same normal problem many times; keep the latest solution.
        self._last_normal: tuple[tuple[str, float, float, float], _NormalSolution] | None = None

    # ----------------------------------------------------------------- public API

    @property
    def reference_marker_xy(self) -> np.ndarray:
        """Rest marker centres, pixels (column, row), shape (M, 2)."""
        return self._reference_xy.copy()

    @property
    def grid_shape(self) -> tuple[int, int]:
        return self._ny, self._nx

    def contact(self, indenter: str, x: float, y: float, depth: float,
                shear: tuple[float, float] = (0.0, 0.0)) -> ContactState:
        """Solve the quasi-static contact of `indenter` pressed `depth` m at (x, y) m, then sheared."""
        shear_vec = np.asarray(shear, dtype=float).reshape(2)
        key = (indenter, float(x), float(y), float(depth))
        if self._last_normal is None or self._last_normal[0] != key:
            self._last_normal = (key, self._solve_normal(INDENTERS[indenter], x, y, depth))
        pressure, normal_disp, area = self._last_normal[1]
        normal_force = float(pressure.sum()) * self._cell_area
        if normal_force <= 0.0:
            return ContactState(indenter, np.array([x, y], float), depth, shear_vec, np.zeros(3), 0.0,
                                np.zeros(self.grid_shape), self._reference_xy.copy(), self._reference_radius.copy())
        tangential = self._tangential_force(normal_force, area, shear_vec)

        # Traction proportional to pressure: q = tangential * p / Fn, so one spectrum serves all.
        p_hat = np.fft.rfft2(pressure, s=(2 * self._ny, 2 * self._nx))
        cx, cy = tangential / normal_force
        s = self._spectra
        ux = self._inverse(p_hat * (s.xz + cx * s.xx + cy * s.xy))
        uy = self._inverse(p_hat * (s.yz + cx * s.xy + cy * s.yy))
        disp = np.column_stack([self._marker_sampler(ux), self._marker_sampler(uy)])
        marker_xy = self._reference_xy + disp * self.px_per_m * np.array([1.0, -1.0])
        growth = 1.0 + self.style.dot_growth_per_mm * 1e3 * self._marker_sampler(normal_disp)
        force = np.array([tangential[0], tangential[1], -normal_force])
        return ContactState(indenter, np.array([x, y], float), depth, shear_vec, force, area,
                            pressure.copy(), marker_xy, self._reference_radius * growth)

    def normal_force(self, indenter: str, x: float, y: float, depth: float) -> float:
        """|Fz| (N) from a cached force-depth curve per (indenter, x, y): cheap at kHz rates."""
        if depth <= 0.0:
            return 0.0
        return max(self._depth_curves(indenter, x, y)[0](depth), 0.0)

    def force(self, indenter: str, x: float, y: float, depth: float,
              shear: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
        """Force on the sensor (N, shape (3,)) from the cached curves; matches contact().force."""
        if depth <= 0.0:
            return np.zeros(3)
        force_curve, area_curve = self._depth_curves(indenter, x, y)
        normal_force = max(force_curve(depth), 0.0)
        if normal_force <= 0.0:
            return np.zeros(3)
        tangential = self._tangential_force(normal_force, max(area_curve(depth), 0.0),
                                            np.asarray(shear, dtype=float).reshape(2))
        return np.array([tangential[0], tangential[1], -normal_force])

    def render(self, state: ContactState | None = None) -> np.ndarray:
        """mono8 (height, width) marker image; None renders the reference (no-contact) image."""
        xy = self._reference_xy if state is None else state.marker_xy
        radius = self._reference_radius if state is None else state.marker_radius
        scale = 1 << _SUBPIXEL_SHIFT
        mask = np.zeros((self.style.height, self.style.width), np.uint8)
        centres = np.rint(xy * scale).astype(np.int64).tolist()
        radii = np.rint(radius * scale).astype(np.int64).tolist()
        for centre, r in zip(centres, radii):
            cv2.circle(mask, tuple(centre), r, 255, -1, cv2.LINE_AA, _SUBPIXEL_SHIFT)
        image = self._background + self._ink_per_level * mask
        if self.style.noise_std > 0:
            image += self.style.noise_std * self._rng.standard_normal(image.shape, dtype=np.float32)
        return np.clip(image, 0, 255).astype(np.uint8)

    # ----------------------------------------------------------------- mechanics

    def _inverse(self, spectrum: np.ndarray) -> np.ndarray:
        return np.fft.irfft2(spectrum, s=(2 * self._ny, 2 * self._nx))[: self._ny, : self._nx]

    def _normal_displacement(self, pressure: np.ndarray) -> np.ndarray:
        return self._inverse(self._spectra.zz * np.fft.rfft2(pressure, s=(2 * self._ny, 2 * self._nx)))

    def _tangential_force(self, normal_force: float, area: float, shear: np.ndarray) -> np.ndarray:
        """Mindlin stick stiffness k_t = 8 G* a up to Coulomb sliding at mu Fn, along the shear."""
        magnitude = float(np.hypot(*shear))
        if magnitude == 0.0 or normal_force <= 0.0:
            return np.zeros(2)
        stiffness = self._tangential_stiffness_per_radius * math.sqrt(area / math.pi)
        return min(stiffness * magnitude, self.style.friction * normal_force) * shear / magnitude

    def _solve_normal(self, indenter: Indenter, x: float, y: float, depth: float,
                      initial: np.ndarray | None = None) -> _NormalSolution:
        """Polonsky–Keer CG for p >= 0, gap >= 0, p * gap = 0 at prescribed approach `depth`."""
        zeros = np.zeros(self.grid_shape)
        if depth <= 0.0:
            return _NormalSolution(zeros, zeros, 0.0)
        height = indenter.height(self._grid_x - x, self._grid_y - y)
        interference = depth - height
        if not np.any(interference > 0):
            return _NormalSolution(zeros, zeros, 0.0)
        if initial is not None and np.any(initial > 0):
            pressure = initial.copy()
        else:  # any positive start inside the rigid overlap; scale ~ E* depth / contact size
            overlap = np.count_nonzero(interference > 0) * self._cell_area
            pressure = np.maximum(interference, 0.0) * self.style.contact_modulus_pa / math.sqrt(overlap)

        direction = zeros
        conjugate = 0.0
        previous_norm = 1.0
        for _ in range(_CG_MAX_ITERATIONS):
            displacement = self._normal_displacement(pressure)
            gap = displacement - interference
            active = pressure > 0
            norm = float(np.sum(gap[active] ** 2))
            direction = np.where(active, gap + conjugate * (norm / previous_norm) * direction, 0.0)
            previous_norm = norm
            response = self._normal_displacement(direction)
            curvature = float(np.sum(response[active] * direction[active]))
            if curvature <= 0.0:
                break
            step = float(np.sum(gap[active] * direction[active])) / curvature
            previous = pressure
            pressure = np.maximum(pressure - step * direction, 0.0)
            penetrating = (pressure == 0) & (gap < 0)
            if np.any(penetrating):  # re-admit cells that interpenetrate and restart the CG
                pressure[penetrating] -= step * gap[penetrating]
                conjugate = 0.0
            else:
                conjugate = 1.0
            total = float(pressure.sum())
            if total <= 0.0 or float(np.abs(pressure - previous).sum()) <= _CG_TOLERANCE * total:
                break
        displacement = self._normal_displacement(pressure)
        return _NormalSolution(pressure, displacement, self._contact_area(pressure, displacement - interference))

    def _contact_area(self, pressure: np.ndarray, gap: np.ndarray) -> float:
        """Contact area with the edge placed inside the cells, so it grows smoothly with depth.

        Counting loaded cells gives a staircase in depth. Along each grid axis, every contact
        edge between a loaded cell and a free neighbour is located by `_edge_fraction`; the
        row-wise and column-wise estimates are averaged. Edges on the pad border stay at the
        cell boundary.
        """
        inside = pressure > 0
        edge_offsets = 0.0  # sum over edges of (edge position - cell boundary) / cell size
        for axis, cell in ((1, self._cell_x), (0, self._cell_y)):
            for step in (1, -1):
                edge = inside & ~np.roll(inside, -step, axis)
                border = [slice(None), slice(None)]
                border[axis] = -1 if step == 1 else 0
                edge[tuple(border)] = False  # np.roll wrapped around the pad border
                free_gap = np.maximum(np.roll(gap, -step, axis)[edge], 0.0)
                ratio = 0.75 * free_gap * self.style.contact_modulus_pa / (pressure[edge] * cell)
                edge_offsets += float(np.sum(_edge_fraction(ratio) - 0.5))
        return max(np.count_nonzero(inside) + 0.5 * edge_offsets, 0.0) * self._cell_area

    def _depth_curves(self, indenter: str, x: float, y: float) -> tuple[_DepthCurve, _DepthCurve]:
        """Force and area vs depth for one contact point, solved once (warm-started) and cached."""
        key = (indenter, round(x * 1e6), round(y * 1e6))  # micrometre resolution
        curves = self._curves.get(key)
        if curves is None:
            shape = INDENTERS[indenter]
            step = self.max_depth / self._curve_samples
            forces, areas = [0.0], [0.0]
            pressure = None
            for depth in step * np.arange(1, self._curve_samples + 1):
                pressure, _, area = self._solve_normal(shape, x, y, depth, initial=pressure)
                forces.append(float(pressure.sum()) * self._cell_area)
                areas.append(area)
            curves = (_DepthCurve.fit(step, np.array(forces)), _DepthCurve.fit(step, np.array(areas)))
            self._curves[key] = curves
        return curves

    # ----------------------------------------------------------------- geometry

    def _to_pixels(self, points_m: np.ndarray) -> np.ndarray:
        return self._image_centre + points_m * self.px_per_m * np.array([1.0, -1.0])

    def _bilinear_sampler(self, points_m: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """Precomputed bilinear interpolation of a grid field at fixed material points."""
        fx = np.clip((points_m[:, 0] - self._grid_x[0, 0]) / self._cell_x, 0, self._nx - 1)
        fy = np.clip((points_m[:, 1] - self._grid_y[0, 0]) / self._cell_y, 0, self._ny - 1)
        ix = np.minimum(fx.astype(int), self._nx - 2)
        iy = np.minimum(fy.astype(int), self._ny - 2)
        wx, wy = fx - ix, fy - iy

        def sample(field: np.ndarray) -> np.ndarray:
            return ((1 - wy) * ((1 - wx) * field[iy, ix] + wx * field[iy, ix + 1])
                    + wy * ((1 - wx) * field[iy + 1, ix] + wx * field[iy + 1, ix + 1]))
        return sample
