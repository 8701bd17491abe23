"""The one grasp-angle convention of tacforce, and its angle bins.

Frame: image pixels, u to the right (column), v down (row), origin at the top-left pixel.

Angle: a parallel-jaw grasp angle theta is the direction of the jaw closing line (the line the
two fingers move along towards each other), measured from the image +u axis towards +v, i.e.
clockwise on screen. Direction vector (du, dv) = (cos theta, sin theta). A grasp at theta and at
theta + pi is the same grasp (the jaws are symmetric), so angles live in [0, pi); any other value
is wrapped into it first.

Bins: with B bins (default 18, 10 degrees each), bin i covers [i*pi/B, (i+1)*pi/B); bin_to_angle
returns the bin centre (i + 0.5)*pi/B. The source GraspNet disagreed with itself here (18 bins in
the README, 9 in code, and a different decoding at inference); everything in tacforce goes
through these functions so training labels and decoded maps agree.
"""
from __future__ import annotations

import math

import numpy as np

DEFAULT_BINS = 18
# Bin positions this close to an integer count as that edge, so i*pi/B lands in bin i despite
# floating-point rounding.
_EDGE_SNAP = 1e-9


def _check_bins(bins: int) -> int:
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    return int(bins)


def _scalar_or_array(result: np.ndarray, like):
    return result.item() if np.ndim(like) == 0 else result


def wrap_angle(theta):
    """Wrap any angle (radians, scalar or array) into [0, pi); theta and theta + pi coincide."""
    arr = np.asarray(theta, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("grasp angles must be finite")
    wrapped = np.mod(arr, math.pi)
    # np.mod of a tiny negative number can round to exactly pi.
    wrapped = np.where(wrapped >= math.pi, 0.0, wrapped)
    return _scalar_or_array(wrapped, theta)


def angle_to_bin(theta, bins: int = DEFAULT_BINS):
    """Bin index of a grasp angle (scalar -> int, array -> int64 array), after wrapping."""
    bins = _check_bins(bins)
    position = np.asarray(wrap_angle(theta), dtype=np.float64) * (bins / math.pi)
    nearest = np.round(position)
    position = np.where(np.abs(position - nearest) < _EDGE_SNAP, nearest, position)
    index = np.floor(position).astype(np.int64) % bins
    return int(index) if np.ndim(theta) == 0 else index


def bin_to_angle(index, bins: int = DEFAULT_BINS):
    """Centre angle (radians) of bin ``index`` (scalar or integer array); out-of-range is an error."""
    bins = _check_bins(bins)
    arr = np.asarray(index)
    if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "f" and np.all(arr == np.round(arr))):
        raise ValueError(f"bin indices must be integers, got dtype {arr.dtype}")
    if np.any(arr < 0) or np.any(arr >= bins):
        raise ValueError(f"bin indices must be in [0, {bins}), got {index!r}")
    angle = (arr.astype(np.float64) + 0.5) * (math.pi / bins)
    return _scalar_or_array(angle, index)


def bin_edges(bins: int = DEFAULT_BINS) -> np.ndarray:
    """Return the B + 1 edges 0, pi/B, ..., pi; bin i is [edges[i], edges[i+1])."""
    bins = _check_bins(bins)
    return np.arange(bins + 1, dtype=np.float64) * (math.pi / bins)
