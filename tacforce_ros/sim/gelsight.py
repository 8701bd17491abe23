"""GelSight-type photometric tactile sensor simulator: RGB images of the gel surface's shape.

A GelSight sensor looks through a clear elastomer at its reflective skin lit from several
sides in different colours, so each pixel's colour encodes the local surface normal. The
simulator follows Taxim's calibrated look-up (Si & Yuan, RA-L 2022) with real calibrations
shipped by the ``taxim`` package, and the contact mechanics of the marker simulator:

    * Shape: the gel's surface displacement is the elastic half-space BEM solution of
      ``TactileSimulator`` (inside the contact it follows the indenter, outside it is the
      elastic sag), so indenters, depths, positions, shear and forces are the same as for the
      marker sensors. The grid field is upsampled (bicubic) to the image, the contact is
      sharpened with the indenter's exact profile at pixel resolution, and the surface is
      warped by its in-plane displacement (a stuck contact moves with the shear).
    * Colour: surface gradients -> (magnitude, direction) bins -> the calibration's
      per-bin quadratic polynomial in the pixel position -> RGB change, taken relative to a
      flat gel's so that an untouched gel shows the calibration's background frame f0
      (lightly blurred, as Taxim does). Shadows and the gel's slight dome are left out.
    * Unit: a per-seed colour gain and offset (units differ), brightness, pixel noise and
      optional dark markers that move with the surface (they make shear visible).

Images are rgb8, row 0 at the image top, x right and y down as in ``tactile``; the image
spans the calibrated field of view, so the pad is (640 x 480) * pixmm mm whatever the size.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from .indenter_shapes import INDENTERS
from .tactile import ContactState, TactileSimulator
from .tactile_styles import SensorStyle

CALIBRATIONS = ("gelsight_mini", "gelsight")
IMAGE_ENCODING = "rgb8"
_SUBPIXEL_SHIFT = 4  # cv2 fixed-point bits for anti-aliased sub-pixel dots
# Taxim's image processing, relative to the image width (params.json): background blur and mix,
# and the final smoothing of the deformed surface.
_BACKGROUND_SIGMA_REL = 0.078125
_BACKGROUND_MIX = 0.15
_SURFACE_SIGMA_REL = 0.003125


@dataclass(frozen=True)
class GelSightStyle:
    """Appearance and material of one simulated GelSight-type sensor (GelSight Mini by default).

    Markers are on by default: the issue's force estimate includes Fx and Fy, and without
    markers shear only shows as the contact spot's small shift, as on a real marker-less gel.
    """

    name: str
    calibration: str = "gelsight_mini"
    width: int = 320
    height: int = 240
    youngs_modulus_pa: float = 1.45e5
    poisson: float = 0.45
    friction: float = 1.0
    noise_std: float = 2.0  # grey levels, per channel
    brightness: float = 1.0
    colour_gain: tuple[float, float, float] = (1.0, 1.0, 1.0)  # R, G, B
    unit_gain_std: float = 0.04  # relative per-channel gain spread between units (seeds)
    unit_offset_std: float = 4.0  # grey-level per-channel offset spread between units (seeds)
    marker_spacing_mm: float = 1.6  # 0: no markers
    marker_radius_mm: float = 0.25
    marker_darkness: float = 0.75  # fraction of the light a marker absorbs

    def __post_init__(self) -> None:
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {self.calibration!r}")
        if self.width < 16 or self.height < 16:
            raise ValueError(f"image size must be at least 16 x 16 pixels, got {self.width} x {self.height}")
        if self.youngs_modulus_pa <= 0 or self.friction < 0:
            raise ValueError("youngs_modulus_pa must be positive and friction non-negative")
        if not 0.0 <= self.poisson < 0.5:
            raise ValueError("poisson must be in [0, 0.5)")
        if self.noise_std < 0 or self.unit_gain_std < 0 or self.unit_offset_std < 0:
            raise ValueError("noise_std, unit_gain_std and unit_offset_std must be non-negative")
        if self.brightness <= 0 or len(self.colour_gain) != 3 or min(self.colour_gain) <= 0:
            raise ValueError("brightness and the three colour_gain values must be positive")
        if self.marker_spacing_mm < 0 or self.marker_radius_mm <= 0 or not 0.0 <= self.marker_darkness <= 1.0:
            raise ValueError("marker_spacing_mm must be >= 0, marker_radius_mm > 0, marker_darkness in [0, 1]")
        if 0 < self.marker_spacing_mm < 2 * self.marker_radius_mm:
            raise ValueError("marker_spacing_mm must exceed the marker diameter")

    @property
    def pad_width_mm(self) -> float:
        return load_calibration(self.calibration).pad_width_mm

    @property
    def pad_height_mm(self) -> float:
        return load_calibration(self.calibration).pad_height_mm

    @property
    def px_per_mm(self) -> float:
        return self.width / self.pad_width_mm

    def mechanics(self) -> SensorStyle:
        """Return the marker simulator's style with this gel and pad, for its contact solver."""
        return SensorStyle(name=self.name, width=self.width, height=self.height, pad_width_mm=self.pad_width_mm,
                           pad_height_mm=self.pad_height_mm, margin_px=0, youngs_modulus_pa=self.youngs_modulus_pa,
                           poisson=self.poisson, friction=self.friction, noise_std=0.0)


_MINI = GelSightStyle(name="gelsight_mini")
GELSIGHT_STYLES: dict[str, GelSightStyle] = {
    "gelsight_mini": _MINI,
    # the older R1.5-like GelSight of Taxim's `gelsight` calibration: a stiffer gel without markers
    "gelsight_r15": replace(_MINI, name="gelsight_r15", calibration="gelsight", youngs_modulus_pa=3.0e5,
                            marker_spacing_mm=0.0, noise_std=1.5),
}


@dataclass(frozen=True)
class Calibration:
    """One Taxim calibration: the polynomial table and the background frame."""

    pixmm: float  # mm per pixel at the calibration size
    width: int  # calibration image size, pixels
    height: int
    poly: np.ndarray  # (3, bins, bins, 6) RGB intensity change / 255 per (magnitude, direction) bin
    background: np.ndarray  # (height, width, 3) float RGB / 255, processed as Taxim does

    @property
    def pad_width_mm(self) -> float:
        return self.width * self.pixmm

    @property
    def pad_height_mm(self) -> float:
        return self.height * self.pixmm

    @property
    def bins(self) -> int:
        return self.poly.shape[1]


def calibration_dir(name: str) -> Path:
    """Folder of a calibration in the installed taxim package (its numpy-only part)."""
    from taxim.calibration import CALIB_GELSIGHT, CALIB_GELSIGHT_MINI
    return {"gelsight_mini": CALIB_GELSIGHT_MINI, "gelsight": CALIB_GELSIGHT}[name]


@lru_cache(maxsize=None)
def load_calibration(name: str) -> Calibration:
    """Read a calibration; grad_r and grad_b are swapped in Taxim's data (see its renderers)."""
    if name not in CALIBRATIONS:
        raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {name!r}")
    folder = calibration_dir(name)
    sensor = json.loads((folder / "params.json").read_text())["sensor"]
    with np.load(folder / "polycalib.npz") as data:
        poly = np.stack([data["grad_b"], data["grad_g"], data["grad_r"]]) / 255.0
    with np.load(folder / "dataPack.npz") as data:  # f0 only: no pickled arrays are read
        f0 = data["f0"][:, :, ::-1].astype(np.float64) / 255.0  # BGR -> RGB
    height, width = f0.shape[:2]
    sigma = _BACKGROUND_SIGMA_REL * width
    background = (1 - _BACKGROUND_MIX) * f0 + _BACKGROUND_MIX * cv2.GaussianBlur(
        f0, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    return Calibration(float(sensor["pixmm"]), width, height, poly, background)


class GelSightSimulator:
    """RGB GelSight-type images and contact forces of one style (see the module docstring).

    The contact mechanics and forces are ``TactileSimulator``'s (`mechanics`), so `contact` and
    `force` match a marker sensor with the same gel and pad; `seed` sets the unit's colour
    gain and offset and the noise.
    """

    encoding = IMAGE_ENCODING

    def __init__(self, style: GelSightStyle, grid: int = 64, seed: int = 0, max_depth: float = 2.0e-3):
        self.style = style
        self.mechanics = TactileSimulator(style.mechanics(), grid=grid, seed=seed, max_depth=max_depth)
        self._rng = np.random.default_rng(seed)
        self._calib = load_calibration(style.calibration)
        w, h = style.width, style.height
        self.px_per_m = style.px_per_mm * 1e3
        self._m_per_calib_px = self._calib.pixmm * 1e-3
        self._calib_px_per_px = self._calib.width / w
        self._surface_sigma = _SURFACE_SIGMA_REL * w

        cols, rows = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        self._cols, self._rows = cols, rows
        self._x_m = (cols - (w - 1) / 2) / self.px_per_m  # pixel centres, sensor frame
        self._y_m = (rows - (h - 1) / 2) / self.px_per_m
        # polynomial features (x^2, y^2, xy, x, y, 1) in calibration pixels, as calibrated
        xc = np.linspace(0, self._calib.width, w + 1)[:-1][np.newaxis, :].repeat(h, 0)
        yc = np.linspace(0, self._calib.height, h + 1)[:-1][:, np.newaxis].repeat(w, 1)
        self._features = np.stack([xc * xc, yc * yc, xc * yc, xc, yc, np.ones_like(xc)], axis=-1)
        self._flat_bin = self._direction_bin(np.zeros(1))[0]
        self._flat = self._shade(np.zeros((h, w), int), np.full((h, w), self._flat_bin))

        unit_gain = 1.0 + style.unit_gain_std * self._rng.standard_normal(3)
        self._gain = style.brightness * np.asarray(style.colour_gain) * unit_gain * 255.0
        self._offset = style.unit_offset_std * self._rng.standard_normal(3)
        self._background = cv2.resize(self._calib.background, (w, h), interpolation=cv2.INTER_AREA)
        self._markers = self._marker_layout()

    # ----------------------------------------------------------------- public API

    @property
    def reference_marker_xy(self) -> np.ndarray:
        """Rest marker centres, pixels (column, row), shape (M, 2); empty without markers."""
        return self._markers.copy()

    def contact(self, indenter: str, x: float, y: float, depth: float,
                shear: tuple[float, float] = (0.0, 0.0)) -> ContactState:
        """Solve the contact with the marker simulator's mechanics (same force, same fields)."""
        return self.mechanics.contact(indenter, x, y, depth, shear)

    def force(self, indenter: str, x: float, y: float, depth: float,
              shear: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
        """Force on the sensor (N, shape (3,)) from the cached force-depth curves."""
        return self.mechanics.force(indenter, x, y, depth, shear)

    def surface(self, state: ContactState | None) -> tuple[np.ndarray, np.ndarray]:
        """Return the gel surface per pixel as the camera sees it (None: the flat gel).

        The indentation (m, > 0 into the gel, (H, W)) and the in-plane displacement (m,
        (2, H, W)) of the material seen at each pixel.
        """
        h, w = self.style.height, self.style.width
        if state is None or not state.in_contact:
            return np.zeros((h, w), np.float32), np.zeros((2, h, w), np.float32)
        fields = [cv2.resize(state.surface_displacement[:, :, k].astype(np.float32), (w, h),
                             interpolation=cv2.INTER_CUBIC) for k in range(3)]
        ux, uy, indentation = fields[0], fields[1], -fields[2]
        # the indenter's exact profile at pixel resolution: the gel lies on or below it
        profile = INDENTERS[state.indenter].height(self._x_m - state.position[0], self._y_m - state.position[1])
        indentation = np.maximum(indentation, (state.depth - profile).astype(np.float32))
        # material at rest position X appears at X + u(X): sample at x - u(x)
        map_x = self._cols - ux * self.px_per_m
        map_y = self._rows - uy * self.px_per_m
        warped = cv2.remap(indentation, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return cv2.GaussianBlur(warped, (0, 0), self._surface_sigma), np.stack([ux, uy])

    def render(self, state: ContactState | None = None) -> np.ndarray:
        """rgb8 (height, width, 3) image of a contact; None renders the untouched gel."""
        indentation, shift = self.surface(state)
        delta = self._shade(*self._bins(indentation)) - self._flat
        image = (self._background + delta) * self._gain + self._offset
        if self._markers.size:
            image *= 1.0 - self.style.marker_darkness * self._marker_mask(shift)[:, :, np.newaxis]
        if self.style.noise_std > 0:
            image += self.style.noise_std * self._rng.standard_normal(image.shape)
        return np.clip(image, 0, 255).astype(np.uint8)

    # ----------------------------------------------------------------- photometry

    def _bins(self, indentation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gradient magnitude and direction bins of the surface, slopes per calibration pixel."""
        z = indentation / self._m_per_calib_px  # calibration pixels
        d_row = np.zeros_like(z)
        d_col = np.zeros_like(z)
        d_row[1:-1, :] = (z[2:, :] - z[:-2, :]) / (2.0 * self._calib_px_per_px)
        d_col[:, 1:-1] = (z[:, 2:] - z[:, :-2]) / (2.0 * self._calib_px_per_px)
        magnitude = np.arctan(np.hypot(d_row, d_col))
        direction = np.arctan2(d_row, d_col)
        mag_bin = np.floor(magnitude / (0.5 * math.pi / (self._calib.bins - 1))).astype(int)
        dir_bin = np.where(magnitude > 0, self._direction_bin(direction), self._flat_bin)
        return np.clip(mag_bin, 0, self._calib.bins - 1), dir_bin

    def _direction_bin(self, direction: np.ndarray) -> np.ndarray:
        step = 2.0 * math.pi / (self._calib.bins - 1)
        return np.clip(np.floor((direction + math.pi) / step).astype(int), 0, self._calib.bins - 1)

    def _shade(self, mag_bin: np.ndarray, dir_bin: np.ndarray) -> np.ndarray:
        """RGB intensity change / 255 (H, W, 3) of the calibration polynomial per pixel."""
        coefficients = self._calib.poly[:, mag_bin, dir_bin]  # (3, H, W, 6)
        return np.einsum("chwk,hwk->hwc", coefficients, self._features)

    # ----------------------------------------------------------------- markers

    def _marker_layout(self) -> np.ndarray:
        spacing = self.style.marker_spacing_mm
        if spacing <= 0:
            return np.zeros((0, 2))
        half_w, half_h = self.style.pad_width_mm / 2, self.style.pad_height_mm / 2
        xs = np.arange(-math.floor(half_w / spacing - 0.5), math.floor(half_w / spacing - 0.5) + 1) * spacing
        ys = np.arange(-math.floor(half_h / spacing - 0.5), math.floor(half_h / spacing - 0.5) + 1) * spacing
        gx, gy = np.meshgrid(xs, ys)
        centre = np.array([(self.style.width - 1) / 2, (self.style.height - 1) / 2])
        return centre + np.column_stack([gx.ravel(), gy.ravel()]) * self.style.px_per_mm

    def _marker_mask(self, shift: np.ndarray) -> np.ndarray:
        """Marker coverage in [0, 1] (H, W), dots moved with the surface's in-plane displacement."""
        cols = np.clip(np.rint(self._markers[:, 0]).astype(int), 0, self.style.width - 1)
        rows = np.clip(np.rint(self._markers[:, 1]).astype(int), 0, self.style.height - 1)
        centres = self._markers + shift[:, rows, cols].T * self.px_per_m
        scale = 1 << _SUBPIXEL_SHIFT
        radius = round(self.style.marker_radius_mm * self.style.px_per_mm * scale)
        mask = np.zeros((self.style.height, self.style.width), np.uint8)
        for centre in np.rint(centres * scale).astype(np.int64).tolist():
            cv2.circle(mask, tuple(centre), radius, 255, -1, cv2.LINE_AA, _SUBPIXEL_SHIFT)
        return mask.astype(np.float32) / 255.0
