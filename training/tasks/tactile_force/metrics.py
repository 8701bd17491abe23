"""Force-regression metrics shared by training, `tacforce eval` and the model card (numpy only).

GenForce reports MAE per axis and of the force norm, and R² per axis; RMSE per axis and the Fz
RMSE as a percentage of the set's Fz range are added because they are what a force-sensor
datasheet states (error as % of full scale).
"""
from __future__ import annotations

import numpy as np

AXES = ("x", "y", "z")


def force_metrics(pred, true) -> dict:
    """Metrics of predicted vs true forces, both (N, 3) in newtons.

    R² follows scikit-learn's convention when an axis is constant in the set (no variance to
    explain): 1.0 for a perfect prediction, else 0.0. ``fz_rmse_pct_range`` is None when Fz is
    constant. Every value is a plain float so the dict goes straight into JSON.
    """
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    if pred.shape != true.shape or pred.ndim != 2 or pred.shape[1] != 3:
        raise ValueError(f"pred and true must both be (N, 3), got {pred.shape} and {true.shape}")
    if len(true) == 0:
        raise ValueError("no samples to score")
    err = pred - true
    rmse = np.sqrt((err ** 2).mean(0))
    mae = np.abs(err).mean(0)
    ss_res = (err ** 2).sum(0)
    ss_tot = ((true - true.mean(0)) ** 2).sum(0)
    r2 = [1.0 - r / t if t > 0 else float(r == 0) for r, t in zip(ss_res, ss_tot)]
    fz_range = float(true[:, 2].max() - true[:, 2].min())
    return {
        "n": int(len(true)),
        "rmse": {a: float(v) for a, v in zip(AXES, rmse)},
        "mae": {a: float(v) for a, v in zip(AXES, mae)},
        "r2": {a: float(v) for a, v in zip(AXES, r2)},
        "norm_mae": float(np.abs(np.linalg.norm(pred, axis=1) - np.linalg.norm(true, axis=1)).mean()),
        "fz_range": fz_range,
        "fz_rmse_pct_range": float(100.0 * rmse[2] / fz_range) if fz_range > 0 else None,
    }


def format_beyond(beyond: dict | None) -> str:
    """Return the lines `tacforce eval` adds for frames whose true force lies beyond the training range ("" if none)."""
    if not beyond or not beyond["frames"]:
        return ""
    m = beyond["metrics"]
    rmse = " / ".join(f"{m['rmse'][a]:.4f}" for a in AXES)
    return (f"\nbeyond the training range: {beyond['frames']} frames, RMSE x/y/z {rmse} N; the node's range "
            f"check flags {beyond['flagged']} of them (and {beyond['flagged_within']} frames within the range)")


def format_table(metrics: dict) -> str:
    """Format a small fixed-width table of ``force_metrics`` output for terminals and model cards."""
    lines = ["axis   RMSE [N]   MAE [N]       R²"]
    for a in AXES:
        lines.append(f"{a:<4} {metrics['rmse'][a]:>10.4f} {metrics['mae'][a]:>9.4f} {metrics['r2'][a]:>8.4f}")
    pct = metrics["fz_rmse_pct_range"]
    pct_text = "n/a (Fz constant)" if pct is None else f"{pct:.2f} % of the {metrics['fz_range']:.3g} N Fz range"
    lines.append(f"|F| MAE {metrics['norm_mae']:.4f} N; Fz RMSE {pct_text}; {metrics['n']} frames")
    return "\n".join(lines)
