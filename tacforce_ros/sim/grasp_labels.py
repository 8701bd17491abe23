"""Grasp outcome labels of synthetic scenes (``grasp_scenes``): the geometric labeller and sampled
self-supervised trials (the rules are in ``grasp_scenes``' docstring).
"""

from __future__ import annotations

import math

import numpy as np

from tacforce_ros.perception.grasp_angles import wrap_angle

from .grasp_scenes import Scene, SceneConfig

_LINE_STEP_PX = 0.5  # sampling step along the closing line
_FINGER_STEP_PX = 1.5  # max spacing of the finger-footprint sample grid
_LABEL_BATCH = 4096  # attempts labelled per vectorised batch (bounds memory)


def _lookup(labels: np.ndarray, pu: np.ndarray, pv: np.ndarray) -> np.ndarray:
    """Label at the nearest pixel; outside the image counts as empty table."""
    iu = np.floor(pu + 0.5).astype(np.int64)
    iv = np.floor(pv + 0.5).astype(np.int64)
    h, w = labels.shape
    inside = (iu >= 0) & (iu < w) & (iv >= 0) & (iv < h)
    return np.where(inside, labels[np.clip(iv, 0, h - 1), np.clip(iu, 0, w - 1)], 0)


def grasp_outcomes(scene: Scene, u, v, theta, config: SceneConfig | None = None) -> np.ndarray:
    """Vectorised ``grasp_outcome`` over arrays of centres and angles (bool array)."""
    config = config or SceneConfig()
    u, v, theta = (np.atleast_1d(np.asarray(x, np.float64)) for x in (u, v, theta))
    u, v, theta = np.broadcast_arrays(u, v, theta)
    u, v, theta = u.ravel(), v.ravel(), theta.ravel()
    if not (np.all(np.isfinite(u)) and np.all(np.isfinite(v)) and np.all(np.isfinite(theta))):
        raise ValueError("grasp centres and angles must be finite")
    half = config.metres_to_px(config.jaw_opening_m) / 2
    ts = np.arange(-half, half + 1e-9, _LINE_STEP_PX)
    thick = config.metres_to_px(config.finger_thickness_m)
    fw = config.metres_to_px(config.finger_width_m)
    along = half + np.linspace(0.0, thick, max(2, math.ceil(thick / _FINGER_STEP_PX) + 1))
    across = np.linspace(-fw / 2, fw / 2, max(2, math.ceil(fw / _FINGER_STEP_PX) + 1))
    fa, fb = (g.ravel() for g in np.meshgrid(np.concatenate([along, -along]), across))
    min_width = config.metres_to_px(config.min_grasp_width_m)
    tol = config.centre_tolerance_px
    out = np.zeros(u.shape, bool)
    for start in range(0, u.size, _LABEL_BATCH):
        sl = slice(start, start + _LABEL_BATCH)
        cu, cv_, c, s = u[sl, None], v[sl, None], np.cos(theta[sl])[:, None], np.sin(theta[sl])[:, None]
        line = _lookup(scene.labels, cu + ts * c, cv_ + ts * s)
        hit = line > 0
        top = line.max(axis=1)
        bottom = np.where(hit, line, np.iinfo(np.int32).max).min(axis=1)
        single = (top > 0) & (top == bottom)
        first = ts[np.argmax(hit, axis=1)]
        last = ts[ts.size - 1 - np.argmax(hit[:, ::-1], axis=1)]
        width = last - first + _LINE_STEP_PX
        fits = (width < 2 * half) & (width >= min_width)
        centred = (first - tol <= 0.0) & (0.0 <= last + tol)
        fingers = _lookup(scene.labels, cu + fa * c - fb * s, cv_ + fa * s + fb * c)
        free = ~(fingers > 0).any(axis=1)
        out[sl] = single & fits & centred & free
    return out


def grasp_outcome(scene: Scene, u: float, v: float, theta: float, config: SceneConfig | None = None) -> bool:
    """Return the success label a robot would record for one grasp at pixel (u, v), angle theta.

    The jaws close along the line through (u, v) at theta, starting at +-opening/2. Success iff
    (1) the closing segment meets exactly one object; (2) that object's width between the two
    first contacts from outside in is at least ``min_grasp_width_m`` and less than the opening;
    (3) the centre lies between the contacts (within ``centre_tolerance_px``), so the grasp is
    not empty; (4) both finger footprints (finger_width x finger_thickness rectangles just
    outside +-opening/2) are free of objects, else the descending finger collides.
    """
    return bool(grasp_outcomes(scene, u, v, theta, config)[0])


def sample_attempts(scene: Scene, n: int, rng: np.random.Generator, config: SceneConfig | None = None,
                    positive_fraction: float = 0.5) -> list[tuple[float, float, float, bool]]:
    """``n`` labelled trials (u, v, theta, success), like a self-supervised robot's.

    Proposals come in four kinds: 35% are *targeted* (a random object's centre, jittered by
    15% of its width across and 15% of its length along the major axis, angle across the minor
    axis, i.e. orientation + pi/2, +- 10 degrees), 25% *boundary* (the targeted angle, centre
    uniform over +-0.7 of the object's length and width, so as many land just off the object
    as on it: where a grasp turns empty is learnt where it matters), 30% *exploratory* (uniform
    within 0.6 object lengths + 10 px of a random object's centre, uniform angle) and 10%
    anywhere on the table. Targeted proposals succeed often, the others mostly fail. All proposals are labelled with
    ``grasp_outcomes`` and the returned set takes round(n * positive_fraction) successes and the
    rest failures, drawing more rounds when one kind is short. If the scene cannot supply enough
    of one outcome (e.g. nothing graspable) the other fills in, so the fraction is a target,
    not a guarantee.
    """
    config = config or SceneConfig()
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 <= positive_fraction <= 1.0:
        raise ValueError(f"positive_fraction must be in [0, 1], got {positive_fraction}")
    want_pos = int(round(n * positive_fraction))
    pos: list[np.ndarray] = []
    neg: list[np.ndarray] = []
    n_pos = n_neg = 0
    pool = max(4 * n, 64)
    h, w = scene.labels.shape
    for _ in range(6):
        if n_pos >= want_pos and n_neg >= n - want_pos:
            break
        n_target, n_boundary, n_explore = (pool * 7) // 20, pool // 4, (pool * 3) // 10
        n_random = pool - n_target - n_boundary - n_explore
        parts = [np.stack([rng.uniform(0, w, n_random), rng.uniform(0, h, n_random),
                           rng.uniform(0, math.pi, n_random)], axis=1)]
        if scene.objects:
            centres = np.array([o.centre for o in scene.objects])
            orient = np.array([o.orientation for o in scene.objects])
            lengths = np.array([o.length_px for o in scene.objects])
            widths = np.array([o.width_px for o in scene.objects])
            k = rng.integers(0, len(scene.objects), n_target)
            a = rng.normal(0, 0.15, n_target) * lengths[k]
            b = rng.normal(0, 0.15, n_target) * widths[k]
            tu = centres[k, 0] + a * np.cos(orient[k]) - b * np.sin(orient[k])
            tv = centres[k, 1] + a * np.sin(orient[k]) + b * np.cos(orient[k])
            tt = orient[k] + math.pi / 2 + np.radians(rng.normal(0, 10, n_target))
            parts.append(np.stack([tu, tv, tt], axis=1))
            k = rng.integers(0, len(scene.objects), n_boundary)
            a = rng.uniform(-0.7, 0.7, n_boundary) * lengths[k]
            b = rng.uniform(-0.7, 0.7, n_boundary) * widths[k]
            parts.append(np.stack([centres[k, 0] + a * np.cos(orient[k]) - b * np.sin(orient[k]),
                                   centres[k, 1] + a * np.sin(orient[k]) + b * np.cos(orient[k]),
                                   orient[k] + math.pi / 2 + np.radians(rng.normal(0, 10, n_boundary))],
                                  axis=1))
            k = rng.integers(0, len(scene.objects), n_explore)
            r = np.sqrt(rng.uniform(0, 1, n_explore)) * (0.6 * lengths[k] + 10)
            phi = rng.uniform(0, 2 * math.pi, n_explore)
            parts.append(np.stack([centres[k, 0] + r * np.cos(phi), centres[k, 1] + r * np.sin(phi),
                                   rng.uniform(0, math.pi, n_explore)], axis=1))
        else:
            parts.append(np.stack([rng.uniform(0, w, pool - n_random), rng.uniform(0, h, pool - n_random),
                                   rng.uniform(0, math.pi, pool - n_random)], axis=1))
        trials = np.concatenate(parts)
        trials[:, 2] = wrap_angle(trials[:, 2])
        ok = grasp_outcomes(scene, trials[:, 0], trials[:, 1], trials[:, 2], config)
        pos.append(trials[ok])
        neg.append(trials[~ok])
        n_pos += int(ok.sum())
        n_neg += int((~ok).sum())
    all_pos = np.concatenate(pos) if pos else np.zeros((0, 3))
    all_neg = np.concatenate(neg) if neg else np.zeros((0, 3))
    k_pos = min(want_pos, len(all_pos))
    k_neg = min(n - k_pos, len(all_neg))
    k_pos = min(n - k_neg, len(all_pos))
    rows = [(float(x[0]), float(x[1]), float(x[2]), True) for x in all_pos[:k_pos]]
    rows += [(float(x[0]), float(x[1]), float(x[2]), False) for x in all_neg[:k_neg]]
    order = rng.permutation(len(rows))
    return [rows[i] for i in order]
