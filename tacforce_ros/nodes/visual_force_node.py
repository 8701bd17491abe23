"""visual_force_node: camera frames in, the pressing force out, no force sensor (seed 000).

decode (perception.image) -> ring buffer of the last T frames (perception.visual_force
.FrameWindow; a stamp gap over ``max_frame_gap``, a stamp going backwards or a size change
starts it over, counted and reported on /diagnostics) -> once full, every new frame runs the
model on the last T frames (VisualForceEstimator over OnnxModel) -> WrenchStamped stamped with
the newest frame's stamp. Only the newest frame is taken from the topic (depth-1 sensor QoS);
frames dropped by a slow node show as stamp gaps. Topics are relative (camera/image_raw,
visual_force/estimated_wrench): a namespace or a remapping moves them.
"""
from __future__ import annotations

import sys

import numpy as np
from geometry_msgs.msg import WrenchStamped
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger

from ..perception.visual_force import TASK, FrameWindow, VisualForceEstimator
from ..ros.checks import publish_finite
from ..ros.params import declare, topic
from ..ros.qos import output_qos
from .model_node import ModelNode
from .tactile_force_node import build_wrench


class VisualForceNode(ModelNode):
    def __init__(self, **kwargs):
        super().__init__("visual_force_node", TASK, "camera/image_raw", "Camera image topic", **kwargs)
        output_topic = declare(self, "output_topic", "visual_force/estimated_wrench", "WrenchStamped output topic",
                               check=topic)
        self.frame_id = declare(self, "frame_id", "camera",
                                "frame_id of the output (empty: the input image's frame_id)")
        press_axis = declare(self, "press_axis", "-z",
                             "Axis (x, y, z, -x, -y, -z) the force of a 1-output model is published on")
        max_gap = declare(self, "max_frame_gap", 0.2,
                          "Seconds: a larger stamp gap between consecutive frames restarts the frame buffer",
                          limits=(0.001, 3600.0))
        self.estimator = self.start(lambda model: VisualForceEstimator(model, press_axis))
        try:
            self.window = FrameWindow(self.estimator.frames, max_gap)
        except ValueError as exc:
            raise SystemExit(f"visual_force_node: {exc}") from None
        self.get_logger().info(f"{self.estimator.outputs} output(s)")
        self.pub = self.create_publisher(WrenchStamped, output_topic, output_qos())
        self.create_service(Trigger, "~/reset", self.on_reset)
        self.diagnostics.extra["window_frames"] = str(self.window.frames)
        self._report_buffer()

    def estimate(self, image: np.ndarray, msg: Image | CompressedImage) -> np.ndarray | None:
        """Push the frame; once the window is full, the force over the last T frames."""
        self.estimator.check_frame(image)
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        pushed = self.window.push(image, stamp)
        if pushed.reset:
            self._report_buffer(f"frame buffer restarted ({pushed.reset})")
            self.get_logger().warning(f"frame buffer restarted: {pushed.reset} before the frame stamped "
                                      f"{stamp:.3f}", throttle_duration_sec=2.0)
        self.diagnostics.extra["buffer_fill"] = f"{len(self.window)}/{self.window.frames}"
        return self.estimator.estimate(self.window.window()) if pushed.ready else None

    def publish(self, msg: Image | CompressedImage, force: np.ndarray) -> bool:
        return publish_finite(self, self.pub, build_wrench(msg.header, self.frame_id, force), self.stats)

    def _report_buffer(self, notice: str = "") -> None:
        resets = self.window.resets
        self.diagnostics.extra["buffer_resets"] = str(sum(resets.values()))
        for reason, count in sorted(resets.items()):
            self.diagnostics.extra[f"buffer_resets_{reason}"] = str(count)
        self.diagnostics.extra["buffer_fill"] = f"{len(self.window)}/{self.window.frames}"
        if notice:
            self.diagnostics.notice = notice

    def on_reset(self, _request, response):
        self.window.reset()
        self._report_buffer("frame buffer restarted (manual)")
        response.success, response.message = True, f"frame buffer cleared; {self.window.frames} frames to refill"
        return response


def main(args=None) -> None:
    from .runner import spin_nodes
    sys.exit(spin_nodes([VisualForceNode], args))


if __name__ == "__main__":
    main()
