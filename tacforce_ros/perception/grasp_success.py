"""Grasp-success decision from per-frame probabilities (plain Python; no ROS, no torch).

``GraspSuccessClassifier`` runs a grasp_success model on one frame and checks its output.
``MajorityDebouncer`` turns per-frame probabilities into a steady decision the way seed 002's
video classifier did: the object counts as held when more than half of the last ``window``
frames score P(held) >= ``threshold``. Until ``min_frames`` frames are in the window there is
no decision (None). ``answer`` is what the node's Trigger service says.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ..inference.contract import GRASP_SUCCESS, NonFiniteOutput
from ..inference.runtime import OnnxModel

TASK = GRASP_SUCCESS


class GraspSuccessClassifier:
    """One HxWxC uint8 frame in (the model's encoding and size), P(held) out."""

    def __init__(self, model: OnnxModel):
        model.metadata.check_task(TASK, str(model.path))
        self.model = model
        self.output = next(iter(model.metadata.outputs))

    def probability(self, image: np.ndarray) -> float:
        self.model.metadata.input.check_image(image.shape)
        outputs, _ = self.model.run(image[np.newaxis])
        p = float(np.asarray(outputs[self.output]).reshape(-1)[0])
        if not (np.isfinite(p) and 0.0 <= p <= 1.0):
            raise NonFiniteOutput(f"model output {p!r} is not a probability; frame dropped")
        return p


@dataclass(frozen=True)
class Vote:
    held: bool | None          # None: not enough frames yet (or none recent)
    held_frames: int
    frames: int
    mean_probability: float | None
    latest_probability: float | None


class MajorityDebouncer:
    """Majority over the last ``window`` per-frame probabilities, with their times."""

    def __init__(self, window: int = 10, threshold: float = 0.5, min_frames: int = 1):
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        if not 1 <= min_frames <= window:
            raise ValueError(f"min_frames must be in 1..window ({window}), got {min_frames}")
        self.window, self.threshold, self.min_frames = window, threshold, min_frames
        self._items: deque[tuple[float, float]] = deque(maxlen=window)   # (time s, probability)

    def push(self, probability: float, now: float = 0.0) -> Vote:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability {probability!r} outside [0, 1]")
        self._items.append((float(now), float(probability)))
        return self.vote()

    def reconfigured(self, window: int, threshold: float, min_frames: int) -> MajorityDebouncer:
        """Return a new debouncer with these settings holding this one's newest ``window`` frames, so a
        setting changed at run time keeps the decision going (ValueError for bad settings).
        """
        new = MajorityDebouncer(window, threshold, min_frames)
        new._items.extend(self._items)
        return new

    def reset(self) -> None:
        self._items.clear()

    def vote(self, now: float | None = None, max_age: float | None = None) -> Vote:
        """Return the decision over the window; with ``now`` and ``max_age`` only frames at most
        ``max_age`` seconds old count (a stalled camera must not answer with old frames).
        """
        items = list(self._items)
        if now is not None and max_age is not None:
            items = [it for it in items if now - it[0] <= max_age]
        probs = [p for _, p in items]
        held_frames = sum(p >= self.threshold for p in probs)
        latest = probs[-1] if probs else None
        mean = float(np.mean(probs)) if probs else None
        if len(probs) < self.min_frames:
            return Vote(None, held_frames, len(probs), mean, latest)
        return Vote(2 * held_frames > len(probs), held_frames, len(probs), mean, latest)


def answer(vote: Vote, max_age: float) -> tuple[bool, str]:
    """Trigger response (success = the object is held) and its message."""
    if vote.held is None:
        return False, (f"unknown: {vote.frames} frame(s) in the last {max_age:g} s, not enough to decide"
                       + ("" if vote.latest_probability is None else f"; latest p={vote.latest_probability:.3f}"))
    word = "held" if vote.held else "not held"
    return vote.held, (f"{word}: p={vote.latest_probability:.3f} (latest frame), mean p={vote.mean_probability:.3f}, "
                       f"{vote.held_frames}/{vote.frames} recent frames held")
