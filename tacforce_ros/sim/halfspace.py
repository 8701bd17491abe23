"""Elastic half-space mechanics of the tactile simulator (``tactile``; its docstring explains the
model): point-load influence functions over pad cells, force-depth curves and contact edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


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
class InfluenceSpectra:
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


def influence_spectra(nx, ny, cell_x, cell_y, shear_modulus, poisson) -> InfluenceSpectra:
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
    return InfluenceSpectra(**{name: np.fft.rfft2(k) for name, k in kernels.items()})


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
class DepthCurve:
    """Monotone cubic interpolant of a quantity sampled at depths 0, step, ..., n*step."""

    step: float
    values: tuple[float, ...]
    slopes: tuple[float, ...]

    @classmethod
    def fit(cls, step: float, values: np.ndarray) -> "DepthCurve":
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


def edge_fraction(ratio: np.ndarray) -> np.ndarray:
    """Edge position tau in (0, 1) between a loaded cell and its free neighbour (see above)."""
    with np.errstate(divide="ignore"):
        return np.interp(np.log(ratio), _EDGE_LOG_RATIO, _EDGE_TAU)


class NormalSolution(NamedTuple):
    pressure: np.ndarray  # Pa, on the pad grid
    displacement: np.ndarray  # m, normal surface displacement into the pad
    contact_area: float  # m^2
