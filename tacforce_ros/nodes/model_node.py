"""The base of every node that runs one ONNX model on camera or tactile images.

It owns what the model nodes share, so each node says only what is its own: the common
parameters (model_path, image_topic, image_transport, queue_depth, runtime, max_image_pixels,
diagnostics_period), the start-up refusals (unknown parameters, a model that cannot be used),
the image subscription with its stamp check, decoding to the model's encoding, the timed
decode -> estimate -> publish cycle (StageStats), rejected-input counting and /diagnostics.

A node calls ``super().__init__(name, task, image_topic, ...)``, declares its own parameters,
then ``self.start(wrap)`` (the last step of parameter handling: refuse_unknown, load the model,
subscribe), and implements ``estimate(image, msg)`` and ``publish(msg, result)``.
Topic names default to relative names, so a namespace or a remapping moves all of them.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any, Callable, TypeVar

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image

from ..inference.contract import NonFiniteOutput
from ..inference.runtime import OnnxModel
from ..paths import resolve
from ..perception.image import ImageError
from ..perception.stats import StageStats
from ..ros.diagnostics import DiagnosticsPublisher
from ..ros.images import TRANSPORTS, decode_for_model, subscribe_image
from ..ros.model_params import declare_common, declare_runtime, load_model
from ..ros.params import declare, refuse_unknown, topic

T = TypeVar("T")
STAGES = ("decode", "inference", "publish", "total")


class ModelNode(Node, ABC):
    """One model, one image input; see the module docstring for the split of work."""

    def __init__(self, name: str, task: str, image_topic: str, image_description: str, **kwargs):
        super().__init__(name, **kwargs)
        self.task = task
        self.model_path = str(resolve("models", declare(
            self, "model_path", f"{task}.onnx",
            f"ONNX {task} model: a file name in the package's models/ or a path")))
        self.image_topic = declare(self, "image_topic", image_topic, image_description, check=topic)
        self.transport = declare(self, "image_transport", "raw",
                                 "'raw' (sensor_msgs/Image) or 'compressed' "
                                 "(CompressedImage on <image_topic>/compressed)",
                                 choices=TRANSPORTS)
        self.queue_depth = declare(self, "queue_depth", 1, "Input frames kept while the node is busy (1: newest "
                                   "frame only; more when every frame counts, e.g. recording or evaluation)",
                                   limits=(1, 100))
        self.runtime = declare_runtime(self)
        self.max_pixels, self.diagnostics_period = declare_common(self)
        self.stats = StageStats()
        self.model: OnnxModel | None = None
        self.diagnostics: DiagnosticsPublisher | None = None

    def start(self, wrap: Callable[[OnnxModel], T] = lambda model: model,
              check: Callable[[T], None] = lambda wrapped: None) -> T:
        """Call once every parameter is declared: refuse unknown ones, load and wrap the model
        and ``check`` it against the parameters (any refusal stops the node with one line),
        then start /diagnostics and the image input.
        """
        refuse_unknown(self)
        wrapped = load_model(self, self.model_path, self.task, self.runtime, wrap)
        check(wrapped)
        self.model = getattr(wrapped, "model", wrapped)
        spec = self.model.metadata.input
        frames = f"{spec.frames} x " if spec.frames else ""
        self.get_logger().info(f"model {self.model_path} on {self.model.provider}; input {frames}"
                               f"{spec.width}x{spec.height} {spec.encoding}")
        self.diagnostics = DiagnosticsPublisher(
            self, self.stats, hardware_id=self.model_path, period=self.diagnostics_period,
            extra={"provider": self.model.provider, "model": self.model_path})
        subscribe_image(self, self.image_topic, self.transport, self.on_frame, self.on_frame, self.queue_depth,
                        stats=self.stats)
        return wrapped

    def on_frame(self, msg: Image | CompressedImage) -> None:
        """Each frame that passed the stamp check; a node may keep it for later (grasp planner)."""
        self.process(msg)

    def process(self, msg: Image | CompressedImage) -> bool:
        """Decode -> estimate -> publish with each stage timed; False when the frame was
        rejected (counted by kind, logged) or gave nothing to publish.
        """
        t0 = time.perf_counter()
        try:
            image = self.decode(msg)
            t1 = time.perf_counter()
            result = self.estimate(image, msg)
        except (ImageError, ValueError) as exc:
            self.reject(exc)
            return False
        if result is None:
            return False
        t2 = time.perf_counter()
        if not self.publish(msg, result):
            return False
        t3 = time.perf_counter()
        for stage, seconds in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
            self.stats.record(stage, seconds)
        self.stats.tick(t3)
        return True

    def decode(self, msg: Image | CompressedImage) -> Any:
        """Return the frame in the channels the model was trained on, whatever the camera sends."""
        return decode_for_model(msg, self.model.metadata.input.encoding, self.max_pixels)

    @abstractmethod
    def estimate(self, image: np.ndarray, msg: Image | CompressedImage) -> Any:
        """Run the model; None: nothing to publish yet. Raise ImageError/ValueError to reject."""

    @abstractmethod
    def publish(self, msg: Image | CompressedImage, result: Any) -> bool:
        """Publish ``result`` stamped like ``msg``; False when it did not go out (non-finite)."""

    def reject(self, exc: Exception) -> None:
        """Count a rejected input as errors_image, errors_non_finite or errors_shape and log it."""
        kind = ("image" if isinstance(exc, ImageError) else
                "non_finite" if isinstance(exc, NonFiniteOutput) else "shape")
        self.stats.error(kind)
        self.get_logger().warning(f"frame rejected: {exc}", throttle_duration_sec=2.0)
