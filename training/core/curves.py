"""Training curves of every run: OUT/metrics.csv (one row per epoch), OUT/curves.png, and TensorBoard if installed."""
from __future__ import annotations

import csv
import importlib.util
from pathlib import Path


def flatten(record: dict, prefix: str = "") -> dict:
    """Return ``record`` with nested dicts as dotted keys and only scalar values (numbers, strings, None)."""
    flat = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        elif value is None or isinstance(value, (int, float, str)):
            flat[f"{prefix}{key}"] = value
    return flat


def write_csv(history: list[dict], path: Path) -> None:
    """Write one row per epoch; columns are the union over epochs, in first-seen order."""
    rows = [flatten(r) for r in history]
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)


def write_png(history: list[dict], path: Path, score: str) -> None:
    """Plot the training loss and the selection score, the learning rate and the throughput per epoch."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(epochs, [r["train_loss"] for r in history], "o-", label="train loss")
    axes[0].plot(epochs, [r[score] for r in history], "o-", label=score)
    axes[0].legend()
    axes[1].plot(epochs, [r["lr"] for r in history], "o-")
    axes[2].plot(epochs, [r["samples_per_s"] for r in history], "o-")
    for ax, title in zip(axes, ("loss", "learning rate (end of epoch)", "training samples/s")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


class Curves:
    """Write the curves after every epoch (rank 0 only); the files always describe the whole history."""

    def __init__(self, out_dir, score: str):
        self.out_dir, self.score = Path(out_dir), score
        self.tensorboard = None
        if importlib.util.find_spec("tensorboard") is not None:
            from torch.utils.tensorboard import SummaryWriter
            self.tensorboard = SummaryWriter(str(self.out_dir / "tensorboard"))

    def update(self, history: list[dict]) -> None:
        write_csv(history, self.out_dir / "metrics.csv")
        write_png(history, self.out_dir / "curves.png", self.score)
        if self.tensorboard is not None:
            last = flatten(history[-1])
            for key, value in last.items():
                if isinstance(value, (int, float)) and key != "epoch":
                    self.tensorboard.add_scalar(key, value, last["epoch"])
            self.tensorboard.flush()

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
