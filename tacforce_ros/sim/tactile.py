"""Marker-type tactile sensor simulator grounded in elastic half-space contact mechanics.

Sign convention (sensor frame, right-handed, REP-103 units):
    z points out of the elastomer surface towards the indenter, which is also the direction
    the camera behind the gel looks in; x points to the image right and y to the image
    bottom, as in a camera's optical frame (x right, y down, z forward). Lying flat on a table
    with the gel up, the frame is the table's frame seen from below. The reported force is the
    force exerted ON the sensor BY the indenter, so pressing gives Fz < 0 (as in GenForce and a
    Nano17 reading the contact) and dragging the indenter towards +x gives Fx > 0 and moves the
    markers towards +x.

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
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from .halfspace import DepthCurve, NormalSolution, edge_fraction, influence_spectra
from .indenter_shapes import INDENTERS, SEEN_INDENTERS, UNSEEN_INDENTERS, Indenter
from .tactile_styles import MARKER_LAYOUTS, SENSOR_STYLES, SensorStyle, marker_layout_mm

# Re-exported: the styles and indenters are imported from here across the package (and the CLI).
__all__ = [
    "INDENTERS",
    "MARKER_LAYOUTS",
    "SEEN_INDENTERS",
    "SENSOR_STYLES",
    "UNSEEN_INDENTERS",
    "ContactState",
    "Indenter",
    "SensorStyle",
    "TactileSimulator",
    "marker_layout_mm",
]

_SUBPIXEL_SHIFT = 4  # cv2 fixed-point bits for anti-aliased sub-pixel dots
_CG_TOLERANCE = 1e-7
_CG_MAX_ITERATIONS = 300


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
    pressure: np.ndarray  # (ny, nx) Pa on the pad grid; row 0 is the -y edge (image top)
    marker_xy: np.ndarray  # (M, 2) displaced marker centres, pixels (column, row)
    marker_radius: np.ndarray  # (M,) dot radii, pixels
    # (ny, nx, 3) m: surface displacement (ux, uy, uz) on the pad grid, sensor frame (uz < 0 where
    # pressed); what a photometric (GelSight-type) sensor images instead of markers
    surface_displacement: np.ndarray

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
        self._spectra = influence_spectra(self._nx, self._ny, self._cell_x, self._cell_y,
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

        self._curves: dict[tuple[str, int, int], tuple[DepthCurve, DepthCurve]] = {}
        # Shearing repeats the same normal problem many times; keep the latest solution.
        self._last_normal: tuple[tuple[str, float, float, float], NormalSolution] | None = None

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
                                np.zeros(self.grid_shape), self._reference_xy.copy(), self._reference_radius.copy(),
                                np.zeros((*self.grid_shape, 3)))
        tangential = self._tangential_force(normal_force, area, shear_vec)

        # Traction proportional to pressure: q = tangential * p / Fn, so one spectrum serves all.
        p_hat = np.fft.rfft2(pressure, s=(2 * self._ny, 2 * self._nx))
        cx, cy = tangential / normal_force
        s = self._spectra
        ux = self._inverse(p_hat * (s.xz + cx * s.xx + cy * s.xy))
        uy = self._inverse(p_hat * (s.yz + cx * s.xy + cy * s.yy))
        disp = np.column_stack([self._marker_sampler(ux), self._marker_sampler(uy)])
        marker_xy = self._reference_xy + disp * self.px_per_m  # x right, y down: pixel axes
        growth = 1.0 + self.style.dot_growth_per_mm * 1e3 * self._marker_sampler(normal_disp)
        force = np.array([tangential[0], tangential[1], -normal_force])
        return ContactState(indenter, np.array([x, y], float), depth, shear_vec, force, area,
                            pressure.copy(), marker_xy, self._reference_radius * growth,
                            np.stack([ux, uy, -normal_disp], axis=-1))

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
                      initial: np.ndarray | None = None) -> NormalSolution:
        """Polonsky–Keer CG for p >= 0, gap >= 0, p * gap = 0 at prescribed approach `depth`."""
        zeros = np.zeros(self.grid_shape)
        if depth <= 0.0:
            return NormalSolution(zeros, zeros, 0.0)
        height = indenter.height(self._grid_x - x, self._grid_y - y)
        interference = depth - height
        if not np.any(interference > 0):
            return NormalSolution(zeros, zeros, 0.0)
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
        return NormalSolution(pressure, displacement, self._contact_area(pressure, displacement - interference))

    def _contact_area(self, pressure: np.ndarray, gap: np.ndarray) -> float:
        """Contact area with the edge placed inside the cells, so it grows smoothly with depth.

        Counting loaded cells gives a staircase in depth. Along each grid axis, every contact
        edge between a loaded cell and a free neighbour is located by `edge_fraction`; the
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
                edge_offsets += float(np.sum(edge_fraction(ratio) - 0.5))
        return max(np.count_nonzero(inside) + 0.5 * edge_offsets, 0.0) * self._cell_area

    def _depth_curves(self, indenter: str, x: float, y: float) -> tuple[DepthCurve, DepthCurve]:
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
            curves = (DepthCurve.fit(step, np.array(forces)), DepthCurve.fit(step, np.array(areas)))
            self._curves[key] = curves
        return curves

    # ----------------------------------------------------------------- geometry

    def _to_pixels(self, points_m: np.ndarray) -> np.ndarray:
        return self._image_centre + points_m * self.px_per_m

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
