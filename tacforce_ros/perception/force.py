"""Streaming tactile force estimation: model state, no-contact reference, tare offset and output checks."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..inference.contract import MAX_SIDE, TACTILE_FORCE, NonFiniteOutput
from ..inference.runtime import OnnxModel
from .pixels import MODEL_ORDER, to_model_channels

TASK = TACTILE_FORCE
AXES = ("Fx", "Fy", "Fz")
AT_BOUND = 0.005   # of the output span: an estimate this close to a bounded head's limit is saturated
BEYOND = 0.02      # of the training span: an estimate further outside the trained range is extrapolated
REFERENCE_FRAMES = 5     # first frames averaged into the no-contact reference (as training takes it)
INPUT_MARGIN = 12.0      # grey levels a channel mean may stray beyond the training frames' range
INPUT_STRIDE = 8         # channel means are taken on every 8th row and column: cheap, and plenty


def channel_means(image: np.ndarray) -> np.ndarray:
    """Return the mean grey level of each channel of an HxWxC frame: a cheap fingerprint of lighting and gel."""
    return image[::INPUT_STRIDE, ::INPUT_STRIDE].reshape(-1, image.shape[-1]).mean(0)


@dataclass(frozen=True)
class InputRange:
    """The range of the training frames' channel means (``input_channel_means`` in a model's metadata).

    A frame whose means lie well outside it (another gel, LEDs, exposure or camera than any in
    training) is far from the training inputs: the estimate is still made, and said to be doubtful.
    """

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def from_training(cls, training: dict) -> InputRange | None:
        means = training.get("input_channel_means") or {}
        if means.get("min") is None or means.get("max") is None:
            return None
        return cls(np.asarray(means["min"], np.float64), np.asarray(means["max"], np.float64))

    def check(self, image: np.ndarray) -> str:
        """Return "" for a frame like the training frames, else how it differs."""
        means = channel_means(image)
        if means.shape != self.low.shape:
            return ""
        if ((means >= self.low - INPUT_MARGIN) & (means <= self.high + INPUT_MARGIN)).all():
            return ""
        return (f"input channel means {_fmt(means)} are far from the training frames' "
                f"{_fmt(self.low)} .. {_fmt(self.high)}")


def load_reference_image(path: str | Path, encoding: str) -> np.ndarray:
    """Read a no-contact frame from a PNG/JPEG (grey or colour, as OpenCV reads it) or an .npy file
    (uint8 HxWxC already in the model's encoding), in the channels of a model taking ``encoding``.
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.suffix == ".npy":
        image = np.load(path, allow_pickle=False, mmap_mode="r")
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or max(image.shape[:2]) > MAX_SIDE:
            raise ValueError(f"{path}: expected an HxW(xC) uint8 array, got {image.dtype} {list(image.shape)}")
        image = np.array(image)
        return image[..., None] if image.ndim == 2 else image
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint8:
        raise ValueError(f"{path}: not an 8-bit image OpenCV can read")
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]
    order = "gray" if image.ndim == 2 or image.shape[2] == 1 else "bgr"
    return np.ascontiguousarray(to_model_channels(image, order, MODEL_ORDER[encoding]))


def _fmt(values) -> str:
    return "[" + ", ".join(f"{v:.0f}" for v in values) + "]"


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

    A model with a reference input gets the sensor's no-contact frame with every frame: a given
    one (``reference``, e.g. from a file), else the mean of the first ``reference_frames``
    frames, which must show the sensor out of contact; ``capture_reference()`` takes it anew
    from the next frames (the state is reset, as the model's view of "no contact" changed).
    ``tare()`` makes the latest estimate the zero (like biasing a force sensor); ``reset()``
    clears the recurrent state (after a contact ends, or when the stream had a gap).
    """

    def __init__(self, model: OnnxModel, reference_frames: int = REFERENCE_FRAMES,
                 reference: np.ndarray | None = None):
        model.metadata.check_task(TASK, str(model.path))
        if reference_frames < 1:
            raise ValueError(f"reference_frames must be >= 1, got {reference_frames}")
        self.model = model
        self.output = next(iter(model.metadata.outputs))
        self.state = model.initial_state()
        self.offset = np.zeros(3, np.float64)
        self.last_raw: np.ndarray | None = None
        self.range = ForceRange.from_training(model.metadata.training)
        self.inputs = InputRange.from_training(model.metadata.training)
        self.range_note = ""     # the latest frame's: "" within the trained range, else what is off
        self.input_note = ""     # the latest frame's: "" like the training frames, else how it differs
        self.uses_reference = model.metadata.input.reference is not None
        self.reference_frames = reference_frames
        self.reference: np.ndarray | None = None
        self.reference_source = "none: the model takes no reference" if not self.uses_reference else ""
        self._capture: tuple | None = None    # while capturing: (sum of frames so far, count, frames wanted)
        if not self.uses_reference:
            return
        if reference is not None:
            self.set_reference(reference, "given image")
        else:
            self.capture_reference()

    def set_reference(self, image: np.ndarray, source: str) -> None:
        """Use ``image`` (HxWxC uint8, the model's input size and encoding) as the no-contact frame."""
        if not self.uses_reference:
            raise ValueError("this model takes no reference frame")
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3:
            raise ValueError(f"reference must be an HxWxC uint8 image, got {image.dtype} {list(image.shape)}")
        self.model.metadata.input.check_image(image.shape)
        self.reference, self.reference_source, self._capture = image.copy(), source, None

    def capture_reference(self, frames: int | None = None) -> None:
        """Average the next ``frames`` frames (default: reference_frames) into the reference; reset the state."""
        if not self.uses_reference:
            raise ValueError("this model takes no reference frame")
        wanted = frames or self.reference_frames
        self._capture = (None, 0, wanted)
        self.reference_source = f"capturing the next {wanted} frame(s)"
        self.reset()

    def _take_reference(self, image: np.ndarray) -> None:
        """Add a frame to the reference being captured; the mean so far is the reference meanwhile."""
        total, count, wanted = self._capture
        total = image.astype(np.float64) if total is None else total + image
        count += 1
        self.reference = (total / count).round().astype(np.uint8)
        if count < wanted:
            self._capture = (total, count, wanted)
        else:
            self._capture = None
            self.reference_source = f"mean of {count} captured frame(s)"

    def step(self, image: np.ndarray) -> np.ndarray:
        """One HxWxC uint8 frame in, force (3,) in N out (tare applied)."""
        self.model.metadata.input.check_image(image.shape)
        if self._capture is not None:
            self._take_reference(image)
        reference = self.reference[np.newaxis] if self.uses_reference else None
        outputs, state = self.model.run(image[np.newaxis], self.state, reference=reference)
        raw = np.asarray(outputs[self.output], np.float64).reshape(-1)[:3]
        if not np.isfinite(raw).all():  # a non-finite output means the state is poisoned too
            self.reset()
            raise NonFiniteOutput("model output is not finite; state reset, frame dropped")
        self.state = state
        self.last_raw = raw
        self.range_note = self.range.check(raw) if self.range else ""
        self.input_note = self.inputs.check(image) if self.inputs else ""
        return raw - self.offset

    def reset(self) -> None:
        self.state = self.model.initial_state()

    def tare(self) -> np.ndarray:
        """Zero the output at the latest raw estimate; returns the new offset."""
        if self.last_raw is None:
            raise RuntimeError("no frame processed yet; nothing to tare against")
        self.offset = self.last_raw.copy()
        return self.offset
