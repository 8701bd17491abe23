"""The model contract shared by every exported ONNX model and every node.

An exported model takes the image exactly as it arrives from a ROS message (uint8, NHWC) and
does its own resize/normalisation in the graph.  Everything a node needs to know about it lives
in one JSON document stored in the ONNX file's metadata under ``METADATA_KEY``:

    {
      "schema": "tacforce.model/1",
      "task": "tactile_force",                      # one of TASKS
      "input": {"name": "image", "dtype": "uint8", "layout": "NHWC",
                "height": 480, "width": 640, "channels": 1, "encoding": "mono8"},
      # optional "frames": T for a model that takes the last T frames at once (uint8
      # [1, T, H, W, C]; visual_force); absent for one frame a call
      # optional "reference": the name of a second uint8 input of the image's shape: the
      # sensor's no-contact frame, fed with every frame (tactile_force); absent: none
      # optional "depth": the name of a second, float32 [1, H, W, 1] input: depth aligned to the
      # image in metres, 0 or NaN where the camera has no reading (grasp_map); absent: none
      "state": {"inputs": ["h_in"], "outputs": ["h_out"], "shapes": [[1, 32, 16, 16]]},
      "outputs": {"force": {"shape": [1, 3], "units": "N", "axes": ["x", "y", "z"],
                            "frame": "tactile sensor, z out of the elastomer; pressing gives Fz < 0"}},
      "preprocessing": "gray -> resize 128x128 bilinear -> /255 -> (x-0.5)/0.5",
      "training": {...},                            # data summary, config, seed
      "metrics": {...}                              # held-out metrics
    }

``state`` is null for models without recurrent state.  Nodes call ``check_task`` and refuse a
model made for another job.  This module is plain Python: the runtime reads metadata through
onnxruntime, training writes it through onnx.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

METADATA_KEY = "tacforce"
SCHEMA = "tacforce.model/1"
# one name per job: metadata "task", the default model file <task>.onnx, the node that takes it
TACTILE_FORCE, VISUAL_FORCE, GRASP_MAP, GRASP_SUCCESS = "tactile_force", "visual_force", "grasp_map", "grasp_success"
TASKS = (TACTILE_FORCE, VISUAL_FORCE, GRASP_MAP, GRASP_SUCCESS)
ENCODING_CHANNELS = {"mono8": 1, "rgb8": 3, "bgr8": 3}
MAX_SIDE = 8192


class ModelError(RuntimeError):
    """A model file that cannot be used: missing, corrupt, or made for another job."""


class NonFiniteOutput(ValueError):
    """The model produced NaN, Inf or an impossible value: nothing is published for this input,
    and every node counts it as errors_non_finite.
    """


@dataclass(frozen=True)
class InputSpec:
    name: str
    height: int | None
    width: int | None
    channels: int
    encoding: str
    frames: int | None = None     # None: one frame [1, H, W, C]; T: the last T frames [1, T, H, W, C]
    reference: str | None = None  # name of the no-contact reference input (same shape and encoding), if any
    depth: str | None = None      # name of the aligned depth input (float32 [1, H, W, 1], metres), if any

    @property
    def depth_shape(self) -> tuple[int, int, int, int]:
        """Return the depth input's shape, 64x64 where the size is free."""
        return (1, self.height or 64, self.width or 64, 1)

    @property
    def shape(self) -> tuple[int, ...]:
        """Return the graph input's shape, 64x64 where the size is free."""
        frame = (self.height or 64, self.width or 64, self.channels)
        return (1, *frame) if self.frames is None else (1, self.frames, *frame)

    def check_image(self, image_shape: tuple[int, ...]) -> None:
        """Raise ValueError when a decoded HxWxC image does not fit this input."""
        h, w, c = image_shape
        if c != self.channels:
            raise ValueError(f"model expects {self.channels} channel(s) ({self.encoding}), image has {c}")
        if self.height is not None and (h, w) != (self.height, self.width):
            raise ValueError(f"model expects {self.width}x{self.height} images, got {w}x{h}")


@dataclass(frozen=True)
class StateSpec:
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class ModelMetadata:
    task: str
    input: InputSpec
    outputs: dict[str, dict[str, Any]]
    state: StateSpec | None = None
    preprocessing: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        doc = {
            "schema": SCHEMA,
            "task": self.task,
            "input": {"name": self.input.name, "dtype": "uint8", "layout": "NHWC",
                      "height": self.input.height, "width": self.input.width,
                      "channels": self.input.channels, "encoding": self.input.encoding,
                      **({} if self.input.frames is None else {"frames": self.input.frames}),
                      **({} if self.input.reference is None else {"reference": self.input.reference}),
                      **({} if self.input.depth is None else {"depth": self.input.depth})},
            "state": None if self.state is None else {
                "inputs": list(self.state.inputs), "outputs": list(self.state.outputs),
                "shapes": [list(s) for s in self.state.shapes]},
            "outputs": self.outputs,
            "preprocessing": self.preprocessing,
            "training": self.training,
            "metrics": self.metrics,
        }
        return json.dumps(doc, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str = "<metadata>") -> "ModelMetadata":
        """Parse and validate; every problem is a ModelError naming ``source``."""
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"{source}: metadata is not valid JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise ModelError(f"{source}: metadata must be a JSON object")
        if doc.get("schema") != SCHEMA:
            raise ModelError(f"{source}: metadata schema is {doc.get('schema')!r}, expected {SCHEMA!r}")
        try:
            task = doc["task"]
            inp = doc["input"]
            outputs = doc["outputs"]
            state = doc.get("state")
            spec = InputSpec(name=str(inp["name"]), height=_side(inp.get("height")),
                             width=_side(inp.get("width")), channels=int(inp["channels"]),
                             encoding=str(inp["encoding"]),
                             frames=None if inp.get("frames") is None else int(inp["frames"]),
                             reference=None if inp.get("reference") is None else str(inp["reference"]),
                             depth=None if inp.get("depth") is None else str(inp["depth"]))
            state_spec = None if state is None else StateSpec(
                inputs=tuple(state["inputs"]), outputs=tuple(state["outputs"]),
                shapes=tuple(tuple(int(d) for d in s) for s in state["shapes"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{source}: metadata is missing or has a bad field ({exc!r})") from None
        if task not in TASKS:
            raise ModelError(f"{source}: unknown task {task!r} (known: {', '.join(TASKS)})")
        if (spec.height is None) != (spec.width is None):
            raise ModelError(f"{source}: input height and width must both be set or both be null")
        if spec.frames is not None and not 1 <= spec.frames <= 1000:
            raise ModelError(f"{source}: input frames {spec.frames} outside 1..1000")
        if ENCODING_CHANNELS.get(spec.encoding) != spec.channels:
            raise ModelError(f"{source}: input encoding {spec.encoding!r} does not match "
                             f"{spec.channels} channel(s)")
        if not isinstance(outputs, dict) or not outputs:
            raise ModelError(f"{source}: metadata names no outputs")
        if state_spec and not (len(state_spec.inputs) == len(state_spec.outputs) == len(state_spec.shapes)):
            raise ModelError(f"{source}: state inputs, outputs and shapes differ in length")
        return cls(task=task, input=spec, outputs=outputs, state=state_spec,
                   preprocessing=str(doc.get("preprocessing", "")),
                   training=dict(doc.get("training") or {}), metrics=dict(doc.get("metrics") or {}))

    def check_task(self, expected: str, source: str) -> None:
        if self.task != expected:
            raise ModelError(f"{source}: this is a {self.task!r} model; this node needs a {expected!r} model")


def _side(value: Any) -> int | None:
    if value is None:
        return None
    side = int(value)
    if not 0 < side <= MAX_SIDE:
        raise ValueError(f"image side {side} outside 1..{MAX_SIDE}")
    return side
