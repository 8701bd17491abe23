"""Score a grasp_map ONNX model the way the planner node uses it (onnxruntime only, no torch).

Scenes: for each generated scene the whole image goes through the model once, the node's
decoder picks the best grasp (cell centre, bin-centre angle), and the robot-like labeller says
whether it would have held: top-1 grasp success. Every cell x bin of the map is also labelled
(at its centre and bin-centre angle) for per-bin precision and recall at P >= 0.5.

Folders of real trials (attempts.csv): each trial is scored at the cell nearest to its pixel
and the bin of its angle; accuracy and per-bin precision/recall at P >= 0.5.
"""
from __future__ import annotations

import numpy as np
from tqdm import tqdm

from tacforce_ros.inference.runtime import OnnxModel
from tacforce_ros.perception.grasp_angles import angle_to_bin, bin_to_angle
from tacforce_ros.perception.grasp_map import OUTPUT, TASK, GraspMapLayout, decode_grasps
from tacforce_ros.sim.grasp_labels import grasp_outcome, grasp_outcomes
from tacforce_ros.sim.grasp_scenes import SceneConfig, generate_scene


def _model(path) -> tuple[OnnxModel, GraspMapLayout]:
    model = OnnxModel(path, TASK, providers=["cpu"])
    return model, GraspMapLayout.from_metadata(model.metadata.outputs, str(path))


def _run(model: OnnxModel, image_rgb: np.ndarray) -> np.ndarray:
    image = image_rgb[..., ::-1] if model.metadata.input.encoding == "bgr8" else image_rgb
    outputs, _ = model.run(np.ascontiguousarray(image)[None])
    return outputs[OUTPUT]


def _per_bin(pred: np.ndarray, truth: np.ndarray, bins: np.ndarray, count: int) -> dict:
    out = {"precision": [], "recall": [], "positives": []}
    for b in range(count):
        m = bins == b
        tp = int((pred[m] & truth[m]).sum())
        out["precision"].append(tp / max(int(pred[m].sum()), 1))
        out["recall"].append(tp / max(int(truth[m].sum()), 1))
        out["positives"].append(int(truth[m].sum()))
    tp = int((pred & truth).sum())
    out["overall_precision"] = tp / max(int(pred.sum()), 1)
    out["overall_recall"] = tp / max(int(truth.sum()), 1)
    return out


def evaluate_scenes(model_path, scenes: int, shapes: tuple[str, ...], seed: int,
                    progress: bool = True) -> dict:
    model, layout = _model(model_path)
    inp = model.metadata.input
    config = SceneConfig(height=inp.height, width=inp.width, shapes=tuple(shapes), seed=seed)
    rng = np.random.default_rng(seed)
    rows, cols = np.meshgrid(np.arange(layout.rows), np.arange(layout.cols), indexing="ij")
    u, v = layout.cell_centre(rows, cols)
    angles = np.asarray(bin_to_angle(np.arange(layout.bins), layout.bins))
    grid = [np.broadcast_to(x[..., None], (layout.rows, layout.cols, layout.bins)).ravel()
            for x in (u, v)]
    grid_angle = np.broadcast_to(angles, (layout.rows, layout.cols, layout.bins)).ravel()
    grid_bin = np.broadcast_to(np.arange(layout.bins), (layout.rows, layout.cols, layout.bins)).ravel()
    hits, graspable, probs = 0, 0, []
    preds, truths = [], []
    for _ in tqdm(range(scenes), desc="held-out scenes", disable=not progress, leave=False):
        scene = generate_scene(config, rng)
        prob = _run(model, scene.image)
        best = decode_grasps(prob, layout, min_probability=0.0, top_k=1)[0]
        hits += grasp_outcome(scene, best.u, best.v, best.angle, config)
        probs.append(best.probability)
        truth = grasp_outcomes(scene, grid[0], grid[1], grid_angle, config)
        graspable += bool(truth.any())
        preds.append(prob.ravel() >= 0.5)
        truths.append(truth)
    per_bin = _per_bin(np.concatenate(preds), np.concatenate(truths),
                       np.tile(grid_bin, scenes), layout.bins)
    return {"scenes": scenes, "shapes": list(shapes), "seed": seed,
            "top1_success": hits / max(scenes, 1),
            "graspable_scenes": graspable,  # scenes where some cell x bin would succeed
            "top1_mean_probability": float(np.mean(probs)) if probs else 0.0,
            **per_bin}


def evaluate_attempts(model_path, attempts) -> dict:
    """Score each trial of a `GraspAttempts` at its cell and angle bin (``data`` is not imported: it needs torch)."""
    model, layout = _model(model_path)
    maps = [None] * len(attempts.images)
    pred_p = np.empty(len(attempts))
    for n, (img, u, v, theta, _ok) in enumerate(attempts.rows):
        i = int(img)
        if maps[i] is None:
            maps[i] = _run(model, attempts.images[i])
        row, col = layout.cell_of(u, v)
        pred_p[n] = maps[i][int(row), int(col), angle_to_bin(theta, layout.bins)]
    truth = attempts.rows[:, 4] > 0.5
    pred = pred_p >= 0.5
    bins = np.asarray(angle_to_bin(attempts.rows[:, 3], layout.bins))
    return {"attempts": len(attempts), "images": len(attempts.images),
            "accuracy": float((pred == truth).mean()) if len(truth) else 0.0,
            **_per_bin(pred, truth, bins, layout.bins)}


def format_grasp_metrics(m: dict) -> str:
    lines = []
    if "top1_success" in m:
        lines.append(f"top-1 grasp success: {m['top1_success']:.3f} on {m['scenes']} scenes "
                     f"(shapes {', '.join(m['shapes'])}, seed {m['seed']}; {m['graspable_scenes']} have "
                     f"a successful cell x bin; mean top-1 P {m['top1_mean_probability']:.3f})")
    else:
        lines.append(f"accuracy: {m['accuracy']:.3f} on {m['attempts']} attempts ({m['images']} images)")
    lines.append(f"all cells x bins at P >= 0.5: precision {m['overall_precision']:.3f}, "
                 f"recall {m['overall_recall']:.3f}")
    lines.append("bin  angle[deg]  precision  recall  positives")
    count = len(m["precision"])
    for b in range(count):
        lo, hi = 180 * b / count, 180 * (b + 1) / count
        lines.append(f"{b:>3}  {lo:5.0f}-{hi:<4.0f}  {m['precision'][b]:9.3f}  {m['recall'][b]:6.3f}  "
                     f"{m['positives'][b]:>9}")
    return "\n".join(lines)
