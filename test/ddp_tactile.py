"""Train the tiny tactile force config on synthetic sequences; run plainly or under torchrun (test_training_core)."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from torch import nn

from tacforce_training.core.loop import fit
from tacforce_training.models.temporal_force import CONFIGS
from tacforce_training.synthetic import marker_sequences
from tacforce_training.tasks.tactile_force.augment import AugmentConfig
from tacforce_training.tasks.tactile_force.config import TrainConfig
from tacforce_training.tasks.tactile_force.train import TactileForceTask

H, W = 40, 56


def tiny_config(**changes) -> TrainConfig:
    """Return the tiny config: 5 x 4 clips of 8 frames an epoch, global batch 4 (5 steps), no augmentation."""
    return dataclasses.replace(TrainConfig(model=CONFIGS["tiny"], clip_length=8, batch_size=4, epochs=2, lr=3e-3,
                                           warmup_steps=2, num_threads=1, augment=AugmentConfig(enabled=False)),
                               **changes)


def sequences():
    return marker_sequences(count=6, frames=32, height=H, width=W, seed=1)


class BatchFreeTask(TactileForceTask):
    """The tactile force task with GroupNorm for BatchNorm: nothing depends on how the batch is split.

    On CPU (gloo) each rank's BatchNorm sees its own half batch, so only a batch-independent model
    can show that N processes compute what one does (sharding, gradient averaging, gathered metrics).
    """

    stop_after = None   # epochs; then the run dies in validation, as an interrupted one would
    scored = 0

    def score(self, rows):
        self.scored += 1
        if self.stop_after is not None and self.scored > self.stop_after:
            raise SystemExit(3)
        return super().score(rows)

    def build_model(self):
        model = super().build_model()
        for parent in list(model.modules()):
            for name, child in parent.named_children():
                if isinstance(child, nn.BatchNorm2d):
                    setattr(parent, name, nn.GroupNorm(1, child.num_features))
        return model


def run(out: Path, epochs: int = 2, resume: bool = False, batch_free: bool = True, stop_after: int | None = None):
    """Train and return the result (every rank returns one; rank 0's is the one that wrote the files)."""
    cfg = tiny_config(epochs=epochs)
    task = (BatchFreeTask if batch_free else TactileForceTask)(cfg, sequences(), out)
    task.stop_after = stop_after
    return fit(task, cfg, out, resume=resume, device="cpu")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--stop-after", type=int, default=None, help="die in the validation after this many epochs")
    p.add_argument("--batch-norm", action="store_true", help="keep the model's BatchNorm (per-rank statistics)")
    args = p.parse_args()
    result = run(args.out, args.epochs, args.resume, not args.batch_norm, args.stop_after)
    if result.main:
        (args.out / "result.json").write_text(json.dumps({"history": result.history, "summary": result.summary}))


if __name__ == "__main__":
    main()
