"""Training configuration of the visual-force task: the shared loop's fields plus the task's own."""
from __future__ import annotations

from dataclasses import dataclass, field

from ...core.loop import LoopConfig
from ...models.ssam import VisualForceConfig


@dataclass
class VisualTrainConfig(LoopConfig):
    """LoopConfig with the visual-force defaults, the model, the window strides and the warm start."""

    model: VisualForceConfig = field(default_factory=VisualForceConfig)
    epochs: int = 10
    batch_size: int = 8
    lr: float = 1e-3              # AdamW peak (the seed: Adam 1e-4 at batch 256 for ~100 epochs)
    min_lr: float = 1e-5          # cosine floor: the old step schedule's two x0.1 steps
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    stride: int = 2               # training windows start every `stride` frames
    val_stride: int = 2           # validation windows end every `val_stride` frames
    init: str | None = None       # warm start from this checkpoint's weights (same model config)
    memory_budget_mb: float = 4096.0   # preprocessed frames above this go to an on-disk memmap cache
    cache_dir: str = ""           # where that cache goes (default OUT/cache)
