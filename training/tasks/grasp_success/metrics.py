"""Binary grasp-success metrics and the reliability plot (numpy; matplotlib only for the plot).

Labels: 1 = held (success), 0 = not held (failure); scores are P(held). Used by training
(validation), `tacforce eval grasp-success` and the model card.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

CLASS_NAMES = ("failure", "success")


def roc_auc(labels, scores) -> float | None:
    """Area under the ROC curve (Mann-Whitney U with ties counted half); None with one class."""
    y, s = np.asarray(labels).astype(bool), np.asarray(scores, np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):                     # average ranks over ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def reliability(labels, scores, bins: int = 10) -> dict:
    """Per equal-width probability bin: mean predicted P(held), observed fraction held, count;
    and the expected calibration error (count-weighted |observed - predicted|).
    """
    y, s = np.asarray(labels, np.float64), np.asarray(scores, np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(s, edges[1:-1]), 0, bins - 1)
    predicted, observed, counts = [], [], []
    for b in range(bins):
        m = which == b
        counts.append(int(m.sum()))
        predicted.append(float(s[m].mean()) if m.any() else None)
        observed.append(float(y[m].mean()) if m.any() else None)
    ece = sum(c * abs(o - p) for c, o, p in zip(counts, observed, predicted) if c) / max(len(y), 1)
    return {"edges": edges.tolist(), "predicted": predicted, "observed": observed, "counts": counts,
            "ece": float(ece)}


def classification_metrics(labels, scores, threshold: float = 0.5) -> dict:
    """accuracy, recall per class, confusion matrix (rows true failure/success, columns
    predicted failure/success), ROC-AUC, log loss, reliability; plain floats for JSON.
    """
    y = np.asarray(labels).astype(np.int64).reshape(-1)
    s = np.asarray(scores, np.float64).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape} vs {s.shape}")
    if len(y) == 0:
        raise ValueError("no samples to score")
    if not np.isfinite(s).all() or s.min() < 0 or s.max() > 1:
        raise ValueError("scores must be probabilities in [0, 1]")
    pred = (s >= threshold).astype(np.int64)
    cm = [[int(((y == t) & (pred == p)).sum()) for p in (0, 1)] for t in (0, 1)]
    recall = {CLASS_NAMES[c]: (cm[c][c] / sum(cm[c]) if sum(cm[c]) else None) for c in (0, 1)}
    eps = 1e-7
    logloss = float(-np.mean(y * np.log(np.clip(s, eps, 1)) + (1 - y) * np.log(np.clip(1 - s, eps, 1))))
    present = [r for r in recall.values() if r is not None]
    return {
        "n": int(len(y)),
        "counts": {CLASS_NAMES[c]: int((y == c).sum()) for c in (0, 1)},
        "threshold": float(threshold),
        "accuracy": float((pred == y).mean()),
        "balanced_accuracy": float(np.mean(present)),
        "recall": recall,
        "confusion_matrix": cm,
        "roc_auc": roc_auc(y, s),
        "log_loss": logloss,
        "reliability": reliability(y, s),
    }


def format_table(m: dict) -> str:
    cm, r = m["confusion_matrix"], m["recall"]
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"   # noqa: E731
    return "\n".join([
        f"frames {m['n']} ({m['counts']['success']} success, {m['counts']['failure']} failure); "
        f"threshold {m['threshold']:g}",
        f"accuracy {m['accuracy']:.4f}  balanced {m['balanced_accuracy']:.4f}  ROC-AUC {fmt(m['roc_auc'])}  "
        f"log loss {m['log_loss']:.4f}  ECE {m['reliability']['ece']:.4f}",
        f"recall   success {fmt(r['success'])}  failure {fmt(r['failure'])}",
        "confusion matrix (rows: true, columns: predicted)",
        "                 failure  success",
        f"  true failure {cm[0][0]:>8d} {cm[0][1]:>8d}",
        f"  true success {cm[1][0]:>8d} {cm[1][1]:>8d}",
    ])


def accuracy_by_group(labels, scores, groups: dict, threshold: float = 0.5) -> dict:
    """{group: {value: {"n", "accuracy"}}} for per-frame group values (e.g. synthetic kinds)."""
    y = np.asarray(labels).astype(np.int64)
    pred = (np.asarray(scores, np.float64) >= threshold).astype(np.int64)
    out = {}
    for group, values in groups.items():
        values = np.asarray(values)
        out[group] = {str(v): {"n": int((values == v).sum()), "accuracy": float((pred == y)[values == v].mean())}
                      for v in sorted(set(values.tolist()))}
    return out


def format_groups(by_group: dict) -> str:
    lines = []
    for group, values in by_group.items():
        parts = [f"{v} {r['accuracy']:.4f} (n={r['n']})" for v, r in values.items()]
        lines.append(f"accuracy by {group}: " + ", ".join(parts))
    return "\n".join(lines)


def save_reliability_plot(m: dict, path: str | Path, title: str = "") -> Path:
    """Reliability diagram (observed fraction held vs mean predicted P(held) per bin) with the
    count of frames per bin, as PNG.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rel = m["reliability"]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax, axc) = plt.subplots(2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    pts = [(p, o) for p, o in zip(rel["predicted"], rel["observed"]) if p is not None]
    if pts:
        ax.plot(*zip(*pts), "o-", color="C0", label="model")
    ax.set_ylabel("observed fraction held")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")
    ax.set_title(title or f"reliability (ECE {rel['ece']:.3f}, accuracy {m['accuracy']:.3f}, n={m['n']})")
    centres = (np.asarray(rel["edges"][:-1]) + np.asarray(rel["edges"][1:])) / 2
    axc.bar(centres, rel["counts"], width=0.09, color="C1")
    axc.set_xlabel("predicted P(held)")
    axc.set_ylabel("frames")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
