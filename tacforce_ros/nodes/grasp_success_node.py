"""grasp_success_node: after-grasp camera frames in; is the object held?

decode (perception.image) -> P(held) (GraspSuccessClassifier over OnnxModel) -> publish
std_msgs/Float32 per frame and the debounced std_msgs/Bool (majority over the last ``window``
frames, perception.grasp_success.MajorityDebouncer), and both together with the frame's stamp
as a diagnostic_msgs/DiagnosticArray on ``result_topic`` (std_msgs has no stamped number; see
`result_message`). The Trigger service ``~/check`` answers from the latest frames without
running the model: success = the object is held, the message gives the probabilities. Only the
newest frame is processed (depth-1 sensor QoS). Topics are relative (grasp_camera/image_raw,
grasp_success/...): a namespace or a remapping moves them. threshold, window, min_frames and max_age can be
set at run time (`ros2 param set`); the vote window keeps its newest frames.
"""
from __future__ import annotations

import sys
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Bool, Float32
from std_srvs.srv import Trigger

from ..perception.grasp_success import TASK, GraspSuccessClassifier, MajorityDebouncer, Vote, answer
from ..ros.checks import publish_finite
from ..ros.params import declare, live, topic
from ..ros.qos import output_qos
from .model_node import ModelNode


class GraspSuccessNode(ModelNode):
    def __init__(self, **kwargs):
        super().__init__("grasp_success_node", TASK, "grasp_camera/image_raw", "After-grasp camera image topic",
                         **kwargs)
        probability_topic = declare(self, "probability_topic", "grasp_success/probability",
                                    "std_msgs/Float32 output: P(held) of every processed frame", check=topic)
        decision_topic = declare(self, "decision_topic", "grasp_success/held",
                                 "std_msgs/Bool output: debounced decision (majority over the last "
                                 "`window` frames)", check=topic)
        result_topic = declare(self, "result_topic", "grasp_success/result",
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
        try:
            self.debouncer = MajorityDebouncer(window, threshold, min_frames)
        except ValueError as exc:
            raise SystemExit(f"grasp_success_node: {exc}") from None
        self.classifier = self.start(GraspSuccessClassifier)
        live(self, ("window", "threshold", "min_frames", "max_age"), self.apply_parameters)
        self.prob_pub = self.create_publisher(Float32, probability_topic, output_qos())
        self.held_pub = self.create_publisher(Bool, decision_topic, output_qos())
        self.result_pub = self.create_publisher(DiagnosticArray, result_topic, output_qos())
        self.create_service(Trigger, "~/check", self.on_check)
        self.create_service(Trigger, "~/reset", self.on_reset)

    def estimate(self, image: np.ndarray, msg: Image | CompressedImage) -> float:
        return self.classifier.probability(image)

    def publish(self, msg: Image | CompressedImage, p: float) -> bool:
        if not publish_finite(self, self.prob_pub, Float32(data=p), self.stats):
            return False
        vote = self.debouncer.push(p, time.monotonic())
        if vote.held is not None:
            self.held_pub.publish(Bool(data=vote.held))
        self.result_pub.publish(result_message(msg.header, p, vote, self.get_name()))
        return True

    def apply_parameters(self, changes: dict) -> str | None:
        """Live `threshold`, `window`, `min_frames`, `max_age`: one new debouncer holding the
        newest frames replaces the old at once, so a frame never sees half the change.
        """
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
    'undecided' and the values probability, held (true/false/unknown), held_frames, frames.
    """
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
