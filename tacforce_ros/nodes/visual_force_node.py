"""visual_force_node: camera frames in, the pressing force out, no force sensor (seed 000).

decode (perception.image) -> ring buffer of the last T frames (perception.visual_force
.FrameWindow; a stamp gap over ``max_frame_gap``, a stamp going backwards or a size change
starts it over, counted and reported on /diagnostics) -> once full, every new frame runs the
model on the last T frames (VisualForceEstimator over OnnxModel) -> WrenchStamped stamped with
the newest frame's stamp. Only the newest frame is taken from the topic (depth-1 sensor QoS);
frames dropped by a slow node show as stamp gaps.
"""
from __future__ import annotations

import sys
import time

from geometry_msgs.msg import WrenchStamped
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger

from ..paths import resolve
from ..perception.image import ImageError
from ..perception.stats import StageStats
from ..perception.visual_force import TASK, FrameWindow, NonFiniteOutput, VisualForceEstimator
from ..ros.checks import publish_finite
from ..ros.diagnostics import DiagnosticsPublisher
from ..ros.images import TRANSPORTS, decode_for_model, subscribe_image
from ..ros.model_params import declare_common, declare_runtime, load_model
from ..ros.params import declare, refuse_unknown, topic
from ..ros.qos import output_qos
from .tactile_force_node import build_wrench


class VisualForceNode(Node):
    def __init__(self, **kwargs):
        super().__init__("visual_force_node", **kwargs)
        self.model_path = str(resolve("models", declare(
            self, "model_path", "visual_force.onnx",
            "ONNX visual_force model: a file name in the package's models/ or a path")))
        image_topic = declare(self, "image_topic", "/camera/image_raw", "Camera image topic", check=topic)
        self.transport = declare(self, "image_transport", "raw",
                                 "'raw' (sensor_msgs/Image) or 'compressed' (CompressedImage on <image_topic>/compressed)",
                                 choices=TRANSPORTS)
        output_topic = declare(self, "output_topic", "/visual_force/estimated_wrench", "WrenchStamped output topic",
                               check=topic)
        self.frame_id = declare(self, "frame_id", "camera",
                                "frame_id of the output (empty: the input image's frame_id)")
        press_axis = declare(self, "press_axis", "-z",
                             "Axis (x, y, z, -x, -y, -z) the force of a 1-output model is published on")
        max_gap = declare(self, "max_frame_gap", 0.2,
                          "Seconds: a larger stamp gap between consecutive frames restarts the frame buffer",
                          limits=(0.001, 3600.0))
        runtime = declare_runtime(self)
        self.max_pixels, diag_period = declare_common(self)
        refuse_unknown(self)

        self.stats = StageStats()
        self.estimator = load_model(self, self.model_path, TASK, runtime,
                                    lambda model: VisualForceEstimator(model, press_axis))
        try:
            self.window = FrameWindow(self.estimator.frames, max_gap)
        except ValueError as exc:
            raise SystemExit(f"visual_force_node: {exc}") from None
        model = self.estimator.model
        spec = model.metadata.input
        self.get_logger().info(f"model {self.model_path} on {model.provider}; input {spec.frames} x "
                               f"{spec.width}x{spec.height} {spec.encoding}; {self.estimator.outputs} output(s)")
        self.pub = self.create_publisher(WrenchStamped, output_topic, output_qos())
        subscribe_image(self, image_topic, self.transport, self.process, self.process, stats=self.stats)
        self.create_service(Trigger, "~/reset", self.on_reset)
        self.diagnostics = DiagnosticsPublisher(
            self, self.stats, hardware_id=self.model_path, period=diag_period,
            extra={"provider": model.provider, "model": self.model_path, "window_frames": str(spec.frames)})
        self._report_buffer()

    def process(self, msg: Image | CompressedImage) -> None:
        t0 = time.perf_counter()
        try:
            image = decode_for_model(msg, self.estimator.model.metadata.input.encoding, self.max_pixels)
            self.estimator.check_frame(image)
        except (ImageError, ValueError) as exc:
            self.stats.error("image" if isinstance(exc, ImageError) else "shape")
            self.get_logger().warning(f"frame rejected: {exc}", throttle_duration_sec=2.0)
            return
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        pushed = self.window.push(image, stamp)
        if pushed.reset:
            self._report_buffer(f"frame buffer restarted ({pushed.reset})")
            self.get_logger().warning(f"frame buffer restarted: {pushed.reset} before the frame stamped "
                                      f"{stamp:.3f}", throttle_duration_sec=2.0)
        if not pushed.ready:
            self.diagnostics.extra["buffer_fill"] = f"{len(self.window)}/{self.window.frames}"
            return
        t1 = time.perf_counter()
        try:
            force = self.estimator.estimate(self.window.window())
        except ValueError as exc:
            self.stats.error("non_finite" if isinstance(exc, NonFiniteOutput) else "shape")
            self.get_logger().warning(f"window rejected: {exc}", throttle_duration_sec=2.0)
            return
        t2 = time.perf_counter()
        if not publish_finite(self, self.pub, build_wrench(msg.header, self.frame_id, force), self.stats):
            return
        t3 = time.perf_counter()
        self.diagnostics.extra["buffer_fill"] = f"{len(self.window)}/{self.window.frames}"
        self.stats.record("decode", t1 - t0)
        self.stats.record("inference", t2 - t1)
        self.stats.record("publish", t3 - t2)
        self.stats.record("total", t3 - t0)
        self.stats.tick(t3)

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
