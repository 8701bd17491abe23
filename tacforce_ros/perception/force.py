"""Streaming tactile force estimation: model state, tare offset and output checks."""
from __future__ import annotations

import numpy as np

from ..inference.contract import TACTILE_FORCE, NonFiniteOutput
from ..inference.runtime import OnnxModel

TASK = TACTILE_FORCE


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
        return raw - self.offset

    def reset(self) -> None:
        self.state = self.model.initial_state()

    def tare(self) -> np.ndarray:
        """Zero the output at the latest raw estimate; returns the new offset."""
        if self.last_raw is None:
            raise RuntimeError("no frame processed yet; nothing to tare against")
        self.offset = self.last_raw.copy()
        return self.offset
