"""Visual force from the last T camera frames (plain Python; no ROS, no torch).

``FrameWindow`` is the node's ring buffer: it keeps the last T decoded frames with their
stamps and starts over when the stream breaks, because a window that spans a break is not a
sequence the model was trained on:

    gap        the new frame's stamp is more than ``max_gap`` seconds after the previous one
    backwards  the new stamp is not after the previous one (a replayed bag, a clock jump)
    size       the frame's shape differs from the frames in the buffer
    manual     ``reset()`` (the node's ~/reset service)

``VisualForceEstimator`` runs a visual_force model on a full window and maps its output to a
3-vector: a 1-output model's force along the press axis goes on ``press_axis`` (e.g. '-z': the
probe pushes down along -z), a 3-output model's (Fx, Fy, Fz) is used as is.
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

import numpy as np

from ..inference.contract import VISUAL_FORCE, NonFiniteOutput
from ..inference.runtime import OnnxModel

TASK = VISUAL_FORCE
AXES = {"x": 0, "y": 1, "z": 2}
RESET_REASONS = ("gap", "backwards", "size", "manual")


@dataclass(frozen=True)
class Push:
    reset: str | None    # why the buffer was cleared before this frame went in, or None
    ready: bool          # the buffer holds T frames (the newest is this one)


class FrameWindow:
    def __init__(self, frames: int, max_gap: float):
        if frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        if not max_gap > 0:
            raise ValueError(f"max_gap must be > 0 s, got {max_gap}")
        self.frames, self.max_gap = int(frames), float(max_gap)
        self._images: deque[np.ndarray] = deque(maxlen=self.frames)
        self._last_stamp: float | None = None
        self.resets: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._images)

    def push(self, image: np.ndarray, stamp: float) -> Push:
        reason = None
        if self._images:
            if image.shape != self._images[-1].shape:
                reason = "size"
            elif stamp <= self._last_stamp:
                reason = "backwards"
            elif stamp - self._last_stamp > self.max_gap:
                reason = "gap"
        if reason:
            self._clear(reason)
        self._images.append(image)
        self._last_stamp = stamp
        return Push(reason, len(self._images) == self.frames)

    def window(self) -> np.ndarray:
        """uint8 [T, H, W, C], oldest first."""
        if len(self._images) != self.frames:
            raise ValueError(f"window not full: {len(self._images)}/{self.frames} frames")
        return np.stack(self._images)

    def reset(self) -> None:
        self._clear("manual")

    def _clear(self, reason: str) -> None:
        self._images.clear()
        self._last_stamp = None
        self.resets[reason] += 1


def press_vector(press_axis: str) -> np.ndarray:
    """'x', 'y', 'z' or with a leading '-' -> the unit vector the press-axis force goes on."""
    axis = press_axis.strip().lower()
    sign = -1.0 if axis.startswith("-") else 1.0
    name = axis.lstrip("+-")
    if name not in AXES:
        raise ValueError(f"press_axis must be one of x, y, z, -x, -y, -z, not {press_axis!r}")
    out = np.zeros(3)
    out[AXES[name]] = sign
    return out


class VisualForceEstimator:
    """A full window of frames in (the model's encoding and size), force (3,) in N out."""

    def __init__(self, model: OnnxModel, press_axis: str = "-z"):
        model.metadata.check_task(TASK, str(model.path))
        spec = model.metadata.input
        if spec.frames is None:
            raise ValueError(f"{model.path}: a visual_force model needs input.frames in its metadata")
        self.model = model
        self.frames = spec.frames
        self.output = next(iter(model.metadata.outputs))
        self.outputs = int(np.prod(model.metadata.outputs[self.output].get("shape", [1, 1])))
        if self.outputs not in (1, 3):
            raise ValueError(f"{model.path}: force output has {self.outputs} values; expected 1 or 3")
        self.axis = press_vector(press_axis)

    def check_frame(self, image: np.ndarray) -> None:
        self.model.metadata.input.check_image(image.shape)

    def estimate(self, window: np.ndarray) -> np.ndarray:
        if window.shape[0] != self.frames:
            raise ValueError(f"model takes {self.frames} frames, got {window.shape[0]}")
        outputs, _ = self.model.run(window[np.newaxis])
        raw = np.asarray(outputs[self.output], np.float64).reshape(-1)
        if not np.isfinite(raw).all():
            raise NonFiniteOutput("model output is not finite; window dropped")
        return raw[0] * self.axis if self.outputs == 1 else raw[:3]
