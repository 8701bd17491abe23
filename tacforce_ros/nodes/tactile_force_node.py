"""tactile_force_node: tactile image in, contact force out on /estimated_wrench.

decode (perception.image; mono8/rgb8/bgr8 or compressed, converted to the model's encoding)
-> model (TactileForceEstimator over OnnxModel) -> WrenchStamped stamped with the input image's
stamp. Only the newest frame is processed (depth-1 sensor QoS).
"""
from __future__ import annotations

import sys
import time

import numpy as np
from geometry_msgs.msg import WrenchStamped
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger

from ..paths import resolve
from ..perception.force import TASK, NonFiniteOutput, TactileForceEstimator
from ..perception.image import ImageError
from ..perception.stats import StageStats
from ..ros.checks import publish_finite
from ..ros.diagnostics import DiagnosticsPublisher
from ..ros.images import TRANSPORTS, decode_for_model, subscribe_image
from ..ros.model_params import declare_common, declare_runtime, load_model
from ..ros.params import declare, refuse_unknown, topic
from ..ros.qos import output_qos


class TactileForceNode(Node):
    def __init__(self, **kwargs):
        super().__init__("tactile_force_node", **kwargs)
        self.model_path = str(resolve("models", declare(
            self, "model_path", "tactile_force.onnx",
            "ONNX tactile_force model: a file name in the package's models/ or a path")))
        image_topic = declare(self, "image_topic", "/tactile/image_raw", "Tactile image topic", check=topic)
        self.transport = declare(self, "image_transport", "raw",
                                 "'raw' (sensor_msgs/Image) or 'compressed' (CompressedImage on <image_topic>/compressed)",
                                 choices=TRANSPORTS)
        queue_depth = declare(self, "queue_depth", 1,
                              "Input frames kept while the node is busy (1: newest frame only)", limits=(1, 100))
        output_topic = declare(self, "output_topic", "/estimated_wrench", "WrenchStamped output topic", check=topic)
        self.frame_id = declare(self, "frame_id", "tactile_sensor",
                                "frame_id of the output (empty: the input image's frame_id)")
        runtime = declare_runtime(self)
        self.max_pixels, diag_period = declare_common(self)
        refuse_unknown(self)

        self.stats = StageStats()
        self.estimator = load_model(self, self.model_path, TASK, runtime, TactileForceEstimator)
        model = self.estimator.model
        self.get_logger().info(f"model {self.model_path} on {model.provider}; "
                               f"input {model.metadata.input.width}x{model.metadata.input.height} "
                               f"{model.metadata.input.encoding}")
        self.pub = self.create_publisher(WrenchStamped, output_topic, output_qos())
        subscribe_image(self, image_topic, self.transport, self.process, self.process, queue_depth, stats=self.stats)
        self.create_service(Trigger, "~/reset_state", self.on_reset)
        self.create_service(Trigger, "~/tare", self.on_tare)
        self.diagnostics = DiagnosticsPublisher(
            self, self.stats, hardware_id=self.model_path, period=diag_period,
            extra={"provider": model.provider, "model": self.model_path})

    def process(self, msg: Image | CompressedImage) -> None:
        t0 = time.perf_counter()
        try:
            image = decode_for_model(msg, self.estimator.model.metadata.input.encoding, self.max_pixels)
            t1 = time.perf_counter()
            force = self.estimator.step(image)
        except (ImageError, ValueError) as exc:
            kind = "image" if isinstance(exc, ImageError) else (
                "non_finite" if isinstance(exc, NonFiniteOutput) else "shape")
            self.stats.error(kind)
            self.get_logger().warning(f"frame rejected: {exc}", throttle_duration_sec=2.0)
            return
        t2 = time.perf_counter()
        if not publish_finite(self, self.pub, build_wrench(msg.header, self.frame_id, force), self.stats):
            return
        t3 = time.perf_counter()
        self.stats.record("decode", t1 - t0)
        self.stats.record("inference", t2 - t1)
        self.stats.record("publish", t3 - t2)
        self.stats.record("total", t3 - t0)
        self.stats.tick(t3)

    def on_reset(self, _request, response):
        self.estimator.reset()
        response.success, response.message = True, "recurrent state reset"
        return response

    def on_tare(self, _request, response):
        try:
            offset = self.estimator.tare()
        except RuntimeError as exc:
            response.success, response.message = False, str(exc)
        else:
            response.success = True
            response.message = "tared at [" + ", ".join(f"{v:.3f}" for v in offset) + "] N"
        return response


def build_wrench(header, frame_id: str, force: np.ndarray) -> WrenchStamped:
    """Force in N; torque stays zero (this model predicts force only)."""
    out = WrenchStamped()
    out.header.stamp = header.stamp
    out.header.frame_id = frame_id or header.frame_id
    out.wrench.force.x, out.wrench.force.y, out.wrench.force.z = (float(v) for v in force)
    return out


def main(args=None) -> None:
    from .runner import spin_nodes
    sys.exit(spin_nodes([TactileForceNode], args))


if __name__ == "__main__":
    main()
