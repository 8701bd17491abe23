"""Training configuration of GraspNet: the shared loop's fields plus the task's own."""
from __future__ import annotations

from dataclasses import dataclass, field

from ...core.loop import LoopConfig
from ...models.grasp_net import GraspNetConfig


@dataclass
class GraspMapConfig(LoopConfig):
    """LoopConfig with the seed's schedule (Adam 1e-3 cosine to 1e-4, no warmup, no clipping) and the
    patch sampling settings.
    """

    model: GraspNetConfig = field(default_factory=GraspNetConfig)
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 0
    grad_clip: float = 0.0
    steps_per_epoch: int = 0      # batches per epoch; 0: one pass over the training attempts
    val_fraction: float = 0.1     # of the images, when no validation set is given
    balance: bool = True          # half successes per epoch (real trial sets are skewed)
    augment: bool = True          # rotations and mirrors, label-exact
    any_angle: bool = False       # rotations by any angle (interpolated) instead of k x 90 degrees
    alexnet_weights: str = ""     # local AlexNet file for conv1-5 (then frozen); "" = from scratch
    # warm start from a GraspNet checkpoint (e.g. synthetic pre-training before real trials); its
    # network config and mean colour are kept
    init_checkpoint: str = ""
