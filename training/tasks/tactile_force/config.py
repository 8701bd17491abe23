"""Training configuration of the tactile force task: the shared loop's fields plus the task's own."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from ...core.loop import LoopConfig
from ...models.temporal_force import TemporalForceConfig
from .augment import AugmentConfig

LOSSES = ("l1", "mse")


@dataclass
class TrainConfig(LoopConfig):
    model: TemporalForceConfig = field(default_factory=TemporalForceConfig)
    epochs: int = 30              # the plain encoder takes ~10-20 s an epoch on one CPU thread (10k frames)
    clip_length: int = 16         # frames per training clip (zero state at its first frame)
    val_fraction: float = 0.2     # of the sequences, when no separate validation set is given
    force_margin: float = 0.1     # sigmoid head: force range = training min/max widened by this x span
    min_force_span: float = 1.0   # N; keeps an axis that barely moves from a tiny range (or deviation)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: str = "mse"             # on standardised forces: "mse" (weighs the rare hard presses more) or "l1"
    memory_budget_mb: float = 4096.0   # preprocessed frames above this go to an on-disk memmap cache
    cache_dir: str = ""           # where that cache goes (default OUT/cache)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")


def segmenting(model_cfg: TemporalForceConfig, segmentation) -> TemporalForceConfig:
    """Return a force model config that segments markers in its graph as ``segmentation`` (a
    `tacforce_ros.perception.markers.MarkerSegmentation`) does: cross-sensor models read masks.
    """
    return replace(model_cfg, in_channels=1, marker_threshold=segmentation.threshold,
                   dark_markers=segmentation.dark_markers)
