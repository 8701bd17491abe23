"""Training configuration of the m2m task: the shared loop's fields plus the GAN and crop settings."""
from __future__ import annotations

from dataclasses import dataclass

from ...core.loop import LoopConfig
from ...models.m2m_unet import CONFIGS, M2MModelConfig


@dataclass
class M2MConfig(LoopConfig):
    """Loss mix and schedule. ``feature`` is pix2pixHD's discriminator feature matching: our
    perceptual term, since no pretrained VGG / LPIPS weights can be downloaded here.

    An epoch is ``steps_per_epoch`` optimizer steps on random crops; the loop's cosine runs from
    ``lr`` to ``min_lr`` (lr / 10, as the step-based trainer before it) over all of them.
    """

    model: str = "cpu"            # key of tacforce_training.models.m2m_unet.CONFIGS
    epochs: int = 12
    steps_per_epoch: int = 100
    batch_size: int = 8
    crop: int = 96                # training crop side in working pixels (multiple of 2**levels)
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 0
    disc_lr: float = 2e-4         # the discriminator's peak learning rate (see train.M2MPair)
    pixel: float = 1.0            # BCE-with-logits of x0 against the (area-averaged) target
    feature: float = 1.0          # L1 between discriminator features of fake and real
    adversarial: float = 0.05     # hinge GAN, generator side
    gan_warmup: int = 300         # steps of pixel loss alone; the GAN terms start at the next epoch boundary
    one_step_fraction: float = 0.5   # share of crops at t = T - 1 (pure noise: the one-step translation)

    def __post_init__(self) -> None:
        if self.model not in CONFIGS:
            raise ValueError(f"unknown m2m model config {self.model!r}; choose from {sorted(CONFIGS)}")
        if not 0.0 <= self.one_step_fraction <= 1.0:
            raise ValueError(f"one_step_fraction must be in [0, 1], got {self.one_step_fraction}")
        if self.crop % 2 ** CONFIGS[self.model].levels:
            raise ValueError(f"crop {self.crop} is not divisible by 2**levels of model {self.model!r}")

    @property
    def model_config(self) -> M2MModelConfig:
        return CONFIGS[self.model]

    @property
    def gan_epoch(self) -> int:
        """Return the first epoch (0-based) with the GAN terms on."""
        return -(-self.gan_warmup // self.steps_per_epoch)


# Per model config: what `tacforce train m2m --config NAME` trains with (epochs x steps_per_epoch steps).
RECIPES = {
    "default": {"epochs": 20, "steps_per_epoch": 1000, "batch_size": 16, "crop": 128, "gan_warmup": 2000},
    "cpu": {"epochs": 12, "steps_per_epoch": 100, "batch_size": 8, "crop": 96, "gan_warmup": 300},
    "tiny": {"epochs": 6, "steps_per_epoch": 10, "batch_size": 4, "crop": 32, "gan_warmup": 30},
}
