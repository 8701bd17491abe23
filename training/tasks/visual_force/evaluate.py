"""Score a visual_force ONNX model the way the node runs it: every window of T frames through
OnnxModel, label = the force at the window's last frame. Reports RMSE / MAE overall, per object
and as the seed's illumination x direction table (cells with no data are blank).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tacforce_ros.inference.runtime import OnnxModel

from .data import EpisodeSet, labels, windows

TASK = "visual_force"


def _metrics(err: np.ndarray) -> dict:
    """RMSE / MAE of force errors in N and how many windows they cover."""
    return {"rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err))), "windows": int(len(err))}


def evaluate(model_path: Path, data: EpisodeSet, stride: int = 1, threads: int = 1) -> dict:
    """Score every window ending every ``stride`` frames: overall, per object and per illumination x direction."""
    model = OnnxModel(model_path, TASK, providers=["cpu"], threads=threads, warmup_runs=1)
    spec = model.metadata.input
    t = spec.frames
    if t is None:
        raise ValueError(f"{model_path}: metadata has no input frames; not a sequence model")
    outputs = int(model.metadata.outputs["force"]["shape"][-1])
    shapes = {e.images.shape[1:] for e in data.episodes}
    if shapes != {(spec.height, spec.width, spec.channels)}:
        raise ValueError(f"{model_path} takes {spec.width}x{spec.height}x{spec.channels} frames; data has "
                         f"{sorted(shapes)} (use --frame-size)")
    index = windows(data, t, stride)
    truth = labels(data, index, outputs)
    pred = np.empty_like(truth, dtype=np.float64)
    for k, (i, end) in enumerate(index):
        window = data.episodes[i].images[end - t + 1:end + 1]
        out, _ = model.run(window[None])
        pred[k] = np.asarray(out["force"], np.float64).reshape(-1)
    err = (pred - truth).reshape(len(index), -1)
    err_flat = err.reshape(-1) if outputs == 1 else np.linalg.norm(err, axis=1)
    eps = data.episodes
    obj = np.array([eps[i].object for i, _ in index])
    deg = np.array([eps[i].degree for i, _ in index])
    lux = np.array([eps[i].illumination for i, _ in index])
    result = {"model": str(model_path), "outputs": outputs, "frames": t, "overall": _metrics(err_flat),
              "error": "force error" if outputs == 1 else "norm of the 3-axis force error",
              "by_object": {o: _metrics(err_flat[obj == o]) for o in sorted(set(obj))},
              "by_cell": {}}
    for lx in sorted(set(lux)):
        for d in sorted(set(deg)):
            sel = (lux == lx) & (deg == d)
            if sel.any():
                result["by_cell"][f"{lx}_{d}"] = _metrics(err_flat[sel])
    result["force_range"] = [float(truth.min()), float(truth.max())]
    return result


def format_report(m: dict) -> str:
    """Format `evaluate` output as the tables the terminal and the model card show."""
    o = m["overall"]
    lines = [f"windows {o['windows']}: RMSE {o['rmse']:.3f} N, MAE {o['mae']:.3f} N ({m['error']})",
             "", "per object:        RMSE (N)  MAE (N)  windows"]
    for name, v in m["by_object"].items():
        lines.append(f"  {name:<16} {v['rmse']:8.3f} {v['mae']:8.3f} {v['windows']:8d}")
    cells = m["by_cell"]
    luxes = sorted({int(k.split("_")[0]) for k in cells})
    degs = sorted({int(k.split("_")[1]) for k in cells})
    lines += ["", "illumination x direction, RMSE / MAE (N):",
              "  lux \\ deg " + "".join(f"{d:>14}" for d in degs)]
    for lx in luxes:
        row = f"  {lx:>9} "
        for d in degs:
            v = cells.get(f"{lx}_{d}")
            row += f"{'':>14}" if v is None else f"{v['rmse']:>7.3f}/{v['mae']:<6.3f}"
        lines.append(row)
    return "\n".join(lines)
