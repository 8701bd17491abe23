"""grasp_success_node: after-grasp camera frames in; is the object held?

decode (perception.image) -> P(held) (GraspSuccessClassifier over OnnxModel) -> publish
std_msgs/Float32 per frame and the debounced std_msgs/Bool (majority over the last ``window``
frames, perception.grasp_success.MajorityDebouncer), and both together with the frame's stamp
as a diagnostic_msgs/DiagnosticArray on ``result_topic`` (std_msgs has no stamped number; see
`result_message`). The Trigger service ``~/check`` answers from the latest frames without
running the model: success = the object is held, the message gives the probabilities. Only the
newest frame is processed (depth-1 sensor QoS). threshold, window, min_frames and max_age can be
set at run time (`ros2 param set`); the vote window keeps its newest frames.
"""
from __future__ import annotations

import sys
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Bool, Float32
from std_srvs.srv import Trigger

from ..paths import resolve
from ..perception.grasp_success import (TASK, GraspSuccessClassifier, MajorityDebouncer, NonFiniteOutput, Vote,
                                        answer)
from ..perception.image import ImageError
from ..perception.stats import StageStats
from ..ros.checks import publish_finite
from ..ros.diagnostics import DiagnosticsPublisher
from ..ros.images import TRANSPORTS, decode_for_model, subscribe_image
from ..ros.model_params import declare_common, declare_runtime, load_model
from ..ros.params import declare, live, refuse_unknown, topic
from ..ros.qos import output_qos


class GraspSuccessNode(Node):
    def __init__(self, **kwargs):
        super().__init__("grasp_success_node", **kwargs)
        self.model_path = str(resolve("models", declare(
            self, "model_path", "grasp_success.onnx",
            "ONNX grasp_success model: a file name in the package's models/ or a path")))
        image_topic = declare(self, "image_topic", "/grasp_camera/image_raw", "After-grasp camera image topic",
                              check=topic)
        self.transport = declare(self, "image_transport", "raw",
                                 "'raw' (sensor_msgs/Image) or 'compressed' (CompressedImage on <image_topic>/compressed)",
                                 choices=TRANSPORTS)
        probability_topic = declare(self, "probability_topic", "/grasp_success/probability",
                                    "std_msgs/Float32 output: P(held) of every processed frame", check=topic)
        decision_topic = declare(self, "decision_topic", "/grasp_success/held",
                                 "std_msgs/Bool output: debounced decision (majority over the last "
                                 "`window` frames)", check=topic)
        result_topic = declare(self, "result_topic", "/grasp_success/result",
                               "diagnostic_msgs/DiagnosticArray output: probability and decision with the "
                               "frame's stamp", check=topic)
        window = declare(self, "window", 10, "Frames in the majority vote (live)", False, limits=(1, 1000))
        threshold = declare(self, "threshold", 0.5, "A frame votes 'held' when P(held) >= threshold (live)", False,
                            limits=(0.0, 1.0), check=lambda _node, t: None if 0.0 < t < 1.0 else "must be in (0, 1)")
        min_frames = declare(self, "min_frames", 3,
                             "No decision is published before this many frames are in the window (1..window; "
                             "live)", False, limits=(1, 1000))
        self.max_age = declare(self, "max_age", 1.0,
                               "Seconds: the service only counts frames received this recently (live)", False,
                               limits=(0.0, 3600.0))
        runtime = declare_runtime(self)
        self.max_pixels, diag_period = declare_common(self)
        refuse_unknown(self)
        live(self, ("window", "threshold", "min_frames", "max_age"), self.apply_parameters)

        self.stats = StageStats()
        try:
            self.debouncer = MajorityDebouncer(window, threshold, min_frames)
        except ValueError as exc:
            raise SystemExit(f"grasp_success_node: {exc}") from None
        self.classifier = load_model(self, self.model_path, TASK, runtime, GraspSuccessClassifier)
        model = self.classifier.model
        self.get_logger().info(f"model {self.model_path} on {model.provider}; input "
                               f"{model.metadata.input.width}x{model.metadata.input.height} "
                               f"{model.metadata.input.encoding}")
        self.prob_pub = self.create_publisher(Float32, probability_topic, output_qos())
        self.held_pub = self.create_publisher(Bool, decision_topic, output_qos())
        self.result_pub = self.create_publisher(DiagnosticArray, result_topic, output_qos())
        subscribe_image(self, image_topic, self.transport, self.process, self.process, stats=self.stats)
        self.create_service(Trigger, "~/check", self.on_check)
        self.create_service(Trigger, "~/reset", self.on_reset)
        self.diagnostics = DiagnosticsPublisher(
            self, self.stats, hardware_id=self.model_path, period=diag_period,
            extra={"provider": model.provider, "model": self.model_path})

    def process(self, msg: Image | CompressedImage) -> None:
        t0 = time.perf_counter()
        try:
            image = decode_for_model(msg, self.classifier.model.metadata.input.encoding, self.max_pixels)
            t1 = time.perf_counter()
            p = self.classifier.probability(image)
        except (ImageError, ValueError) as exc:
            kind = "image" if isinstance(exc, ImageError) else (
                "non_finite" if isinstance(exc, NonFiniteOutput) else "shape")
            self.stats.error(kind)
            self.get_logger().warning(f"frame rejected: {exc}", throttle_duration_sec=2.0)
            return
        t2 = time.perf_counter()
        if not publish_finite(self, self.prob_pub, Float32(data=p), self.stats):
            return
        vote = self.debouncer.push(p, time.monotonic())
        if vote.held is not None:
            self.held_pub.publish(Bool(data=vote.held))
        self.result_pub.publish(result_message(msg.header, p, vote, self.get_name()))
        t3 = time.perf_counter()
        self.stats.record("decode", t1 - t0)
        self.stats.record("inference", t2 - t1)
        self.stats.record("publish", t3 - t2)
        self.stats.record("total", t3 - t0)
        self.stats.tick(t3)

    def apply_parameters(self, changes: dict) -> str | None:
        """Live `threshold`, `window`, `min_frames`, `max_age`: one new debouncer holding the
        newest frames replaces the old at once, so a frame never sees half the change."""
        d = self.debouncer
        try:
            debouncer = d.reconfigured(changes.get("window", d.window), changes.get("threshold", d.threshold),
                                       changes.get("min_frames", d.min_frames))
        except ValueError as exc:
            return str(exc)
        self.debouncer = debouncer
        self.max_age = changes.get("max_age", self.max_age)
        return None

    def on_check(self, _request, response):
        vote = self.debouncer.vote(time.monotonic(), self.max_age)
        response.success, response.message = answer(vote, self.max_age)
        return response

    def on_reset(self, _request, response):
        self.debouncer.reset()
        response.success, response.message = True, "vote window cleared"
        return response


def result_message(header, probability: float, vote: Vote, name: str) -> DiagnosticArray:
    """One frame's result stamped with that frame's stamp and frame_id: a DiagnosticArray (the
    standard header plus named values) whose one status has message 'held', 'not held' or
    'undecided' and the values probability, held (true/false/unknown), held_frames, frames."""
    word = "undecided" if vote.held is None else "held" if vote.held else "not held"
    held = "unknown" if vote.held is None else str(vote.held).lower()
    values = {"probability": f"{probability:.6f}", "held": held, "held_frames": str(vote.held_frames),
              "frames": str(vote.frames)}
    status = DiagnosticStatus(level=DiagnosticStatus.OK, name=f"{name}: result", message=word,
                              values=[KeyValue(key=k, value=v) for k, v in values.items()])
    out = DiagnosticArray(status=[status])
    out.header.stamp, out.header.frame_id = header.stamp, header.frame_id
    return out


def main(args=None) -> None:
    from .runner import spin_nodes
    sys.exit(spin_nodes([GraspSuccessNode], args))


if __name__ == "__main__":
    main()
