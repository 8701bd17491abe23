"""Training configuration of the grasp-success classifiers: the loop's fields plus the task's own."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ...core.loop import LoopConfig
from ...models.grasp_success import GraspModelConfig
from .data import Augment


@dataclass
class GraspTrainConfig(LoopConfig):
    """LoopConfig with the grasp-success defaults, the model and the data/augmentation settings."""

    model: GraspModelConfig = field(default_factory=GraspModelConfig)
    epochs: int = 15
    batch_size: int = 32
    lr: float = 2e-3              # AdamW peak (seed 002: RMSprop 1e-4; seed 004: SGD 1e-3)
    min_lr: float = 2e-5
    warmup_steps: int = 50
    grad_clip: float = 5.0
    epoch_size: int = 0           # frames per epoch; 0 = twice the larger class (balanced) / all
    balance: bool = True          # equal class frequency per epoch (oversample the minority)
    augment: dict | None = field(default_factory=lambda: asdict(Augment()))
    weights: str | None = None    # local pretrained weights file (freezes the early layers)
