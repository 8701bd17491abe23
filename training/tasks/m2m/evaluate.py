"""How well an m2m translator reproduces the target sensor's marker masks, next to two baselines.

    translation        translator.translate(source) vs the true target mask
    source as-is       the source mask vs the target mask (no translation at all)
    target reference   the target's no-contact mask vs the target mask (ignores the deformation)

Each gets the mean marker-mask IoU and the mean marker-centroid error (px at sensor
resolution; centroids matched mutually nearest within half the target's marker spacing, so a
marker that moved by more than that counts as unmatched rather than as a huge error). The
translation has to beat "target reference" for it to carry any contact information.

Torch is imported only to load a checkpoint (`m2m_quality`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tacforce_ros.perception.markers import (
    marker_centroids,
    marker_spacing_px,
    mask_iou,
    match_centroids,
)


def _scores(predicted: np.ndarray, expected: np.ndarray, max_distance_px: float) -> dict:
    ious, errors, matched, total = [], [], 0, 0
    for p, e in zip(predicted, expected):
        ious.append(mask_iou(p, e))
        match = match_centroids(marker_centroids(p), marker_centroids(e), max_distance_px)
        if match.matched:
            errors.append(match.mean_error_px)
        matched, total = matched + match.matched, total + match.expected
    return {"iou": float(np.mean(ious)),
            "centroid_error_px": float(np.mean(errors)) if errors else float("nan"),
            "matched_fraction": matched / total if total else 1.0}


def evaluate_m2m(translator, source_masks: np.ndarray, target_masks: np.ndarray, steps: int = 1) -> dict:
    """Evaluate bool (N, H, W) paired masks -> {"translation", "source_as_is", "target_reference"}: each
    {"iou", "centroid_error_px", "matched_fraction"}, plus "frames" and "max_distance_px".
    """
    source_masks, target_masks = np.asarray(source_masks, bool), np.asarray(target_masks, bool)
    if source_masks.shape != target_masks.shape or source_masks.ndim != 3:
        raise ValueError(f"need paired (N, H, W) masks, got {source_masks.shape} and {target_masks.shape}")
    max_distance = marker_spacing_px(translator.target_ref) / 2
    translated = translator.translate(source_masks, steps=steps)
    reference = np.broadcast_to(translator.target_ref, target_masks.shape)
    return {"frames": len(target_masks), "steps": steps, "max_distance_px": max_distance,
            "translation": _scores(translated, target_masks, max_distance),
            "source_as_is": _scores(source_masks, target_masks, max_distance),
            "target_reference": _scores(reference, target_masks, max_distance)}


def m2m_quality(model: Path, pairs_path: Path, steps: int = 1) -> dict:
    """`evaluate_m2m` of the m2m checkpoint ``model`` on the held-out pairs file ``pairs_path``."""
    from tacforce_ros.marker_pairs import MarkerPairs

    from .translator import M2MTranslator

    translator = M2MTranslator.load(model)
    pairs = MarkerPairs.load(pairs_path)
    return evaluate_m2m(translator, pairs.masks_of(translator.source_name), pairs.masks_of(translator.target_name),
                        steps=steps)


def format_m2m(quality: list[tuple[str, str, dict]]) -> str:
    """Format (case, model path, `evaluate_m2m` result) rows as a markdown table, baselines included."""
    lines = ["| case | m2m model | compared with the true target masks | mask IoU | centroid error [px] "
             "| matched markers |",
             "|---|---|---|---|---|---|"]
    for case, model, q in quality:
        for key, label in (("translation", "m2m translation"), ("source_as_is", "source mask as-is"),
                           ("target_reference", "target reference (no deformation)")):
            r = q[key]
            lines.append(f"| {case} | {Path(model).parent.name} | {label} | {r['iou']:.3f} | "
                         f"{r['centroid_error_px']:.2f} | {100 * r['matched_fraction']:.1f} % |")
    return "\n".join(lines)
