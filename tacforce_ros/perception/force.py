"""Streaming tactile force estimation: model state, tare offset and output checks."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..inference.contract import TACTILE_FORCE, NonFiniteOutput
from ..inference.runtime import OnnxModel

TASK = TACTILE_FORCE
AXES = ("Fx", "Fy", "Fz")
AT_BOUND = 0.005   # of the output span: an estimate this close to a bounded head's limit is saturated
BEYOND = 0.02      # of the training span: an estimate further outside the trained range is extrapolated


@dataclass(frozen=True)
class ForceRange:
    """What a model's metadata says about the forces it knows: the range of its training labels
    and, for a bounded head, the range its output cannot leave. An estimate outside the first is
    extrapolated; one at the second may be less than the true force. Neither is refused, both
    are said.
    """

    low: np.ndarray
    high: np.ndarray
    bound_low: np.ndarray | None = None
    bound_high: np.ndarray | None = None
    # worked out once, as check() runs every frame: where an estimate counts as saturated
    # (at or past these, for a bounded head) and where it passes without a note
    saturated: tuple = field(init=False, repr=False)
    quiet: tuple = field(init=False, repr=False)

    def __post_init__(self) -> None:
        margin = BEYOND * (self.high - self.low)    # sensor noise at rest is not extrapolation
        saturated = (np.full_like(self.low, -np.inf), np.full_like(self.high, np.inf))
        if self.bound_low is not None:
            at_bound = AT_BOUND * (self.bound_high - self.bound_low)
            saturated = (self.bound_low + at_bound, self.bound_high - at_bound)
        object.__setattr__(self, "saturated", saturated)
        object.__setattr__(self, "quiet", (np.maximum(self.low - margin, saturated[0]),
                                           np.minimum(self.high + margin, saturated[1])))

    @classmethod
    def from_training(cls, training: dict) -> ForceRange | None:
        """Read ``train_force_min/max`` (and ``model_force_range``) from a model's training metadata."""
        if training.get("train_force_min") is None or training.get("train_force_max") is None:
            return None
        bound = training.get("model_force_range") or {}
        as_array = (lambda v: None if v is None else np.asarray(v, np.float64))
        return cls(as_array(training["train_force_min"]), as_array(training["train_force_max"]),
                   as_array(bound.get("min")), as_array(bound.get("max")))

    def check(self, force: np.ndarray) -> str:
        """Return "" for an estimate within the trained range, else what is off, axis by axis."""
        force = np.asarray(force, np.float64)[:len(self.low)]
        outside = np.flatnonzero((force < self.quiet[0]) | (force > self.quiet[1]))
        return "; ".join(self._note(AXES[i], float(force[i]), i) for i in outside)

    def _note(self, axis: str, value: float, i: int) -> str:
        if not self.saturated[0][i] < value < self.saturated[1][i]:
            return (f"{axis} {value:.3g} N is at the model's output bound "
                    f"[{self.bound_low[i]:.3g}, {self.bound_high[i]:.3g}] N: the true force may be larger")
        return (f"{axis} {value:.3g} N is beyond the trained range "
                f"[{self.low[i]:.3g}, {self.high[i]:.3g}] N (extrapolated)")

    def describe(self) -> str:
        return ", ".join(f"{a} [{lo:.3g}, {hi:.3g}]" for a, lo, hi in zip(AXES, self.low, self.high)) + " N"


class TactileForceEstimator:
    """Feeds frames one at a time to a tactile_force model, carrying its recurrent state.

    ``tare()`` makes the latest estimate the zero (like biasing a force sensor); ``reset()``
    clears the recurrent state (after a contact ends, or when the stream had a gap).
    """

    def __init__(self, model: OnnxModel):
        model.metadata.check_task(TASK, str(model.path))
        self.model = model
        self.output = next(iter(model.metadata.outputs))
        self.state = model.initial_state()
        self.offset = np.zeros(3, np.float64)
        self.last_raw: np.ndarray | None = None
        self.range = ForceRange.from_training(model.metadata.training)
        self.range_note = ""     # the latest frame's: "" within the trained range, else what is off

    def step(self, image: np.ndarray) -> np.ndarray:
        """One HxWxC uint8 frame in, force (3,) in N out (tare applied)."""
        self.model.metadata.input.check_image(image.shape)
        outputs, state = self.model.run(image[np.newaxis], self.state)
        raw = np.asarray(outputs[self.output], np.float64).reshape(-1)[:3]
        if not np.isfinite(raw).all():  # a non-finite output means the state is poisoned too
            self.reset()
            raise NonFiniteOutput("model output is not finite; state reset, frame dropped")
        self.state = state
        self.last_raw = raw
        self.range_note = self.range.check(raw) if self.range else ""
        return raw - self.offset

    def reset(self) -> None:
        self.state = self.model.initial_state()

    def tare(self) -> np.ndarray:
        """Zero the output at the latest raw estimate; returns the new offset."""
        if self.last_raw is None:
            raise RuntimeError("no frame processed yet; nothing to tare against")
        self.offset = self.last_raw.copy()
        return self.offset
