"""tactile_force_node: tactile image in, contact force out on estimated_wrench.

decode (perception.image; mono8/rgb8/bgr8 or compressed, converted to the model's encoding)
-> model (TactileForceEstimator over OnnxModel) -> WrenchStamped stamped with the input image's
stamp. Only the newest frame is processed (depth-1 sensor QoS). Topics are relative
(tactile/image_raw, estimated_wrench): a namespace or a remapping moves them.

A model with a reference input gets the sensor's no-contact frame with every frame: the
``reference_image`` file, else the mean of the first ``reference_frames`` frames after start
(the sensor must be out of contact then); ``~/capture_reference`` takes it anew. Estimates
beyond the trained force range, and frames unlike the training frames, are published and
flagged on /diagnostics (WARN) and in the log.
"""
from __future__ import annotations

import sys

import numpy as np
from geometry_msgs.msg import WrenchStamped
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from ..perception.force import REFERENCE_FRAMES, TASK, TactileForceEstimator, load_reference_image
from ..ros.checks import publish_finite
from ..ros.markers import force_arrow
from ..ros.params import declare, live, topic
from ..ros.qos import output_qos
from .model_node import ModelNode


class TactileForceNode(ModelNode):
    def __init__(self, **kwargs):
        super().__init__("tactile_force_node", TASK, "tactile/image_raw", "Tactile image topic", **kwargs)
        output_topic = declare(self, "output_topic", "estimated_wrench", "WrenchStamped output topic", check=topic)
        frame_id = declare(self, "frame_id", "",
                           "frame_id of the output (empty: the frame of the wrenches the model was trained on, "
                           "from its metadata; the input image's frame_id for a model that does not say)")
        self.metres_per_newton = declare(self, "marker_scale", 0.02, "~/markers force arrow length, m per N (live)",
                                         False, limits=(1e-6, 10.0))
        reference_frames = declare(self, "reference_frames", REFERENCE_FRAMES,
                                   "Frames averaged into the no-contact reference at start and on "
                                   "~/capture_reference (models with a reference input)", limits=(1, 1000))
        reference_image = declare(self, "reference_image", "",
                                  "No-contact reference frame file (PNG/JPEG, or .npy in the model's encoding); "
                                  "empty: capture it from the first frames")
        self.estimator = self.start(lambda model: TactileForceEstimator(
            model, reference_frames, _reference(model, reference_image)))
        self.out_of_range = self.unlike_training = 0
        if self.estimator.range:
            self.diagnostics.extra["trained_force_range"] = self.estimator.range.describe()
            self.diagnostics.extra["frames_out_of_trained_range"] = "0"
        if self.estimator.inputs:
            self.diagnostics.extra["frames_unlike_training_inputs"] = "0"
        self.diagnostics.extra["reference"] = self.estimator.reference_source
        self.frame_id = frame_id or self.model.metadata.outputs.get("force", {}).get("frame_id", "")
        self.pub = self.create_publisher(WrenchStamped, output_topic, output_qos())
        self.pub_markers = self.create_publisher(MarkerArray, "~/markers", output_qos())
        self.create_service(Trigger, "~/reset", self.on_reset)
        self.create_service(Trigger, "~/tare", self.on_tare)
        self.create_service(Trigger, "~/capture_reference", self.on_capture_reference)
        live(self, ("marker_scale",), self.apply_parameters)

    def apply_parameters(self, changes: dict) -> None:
        self.metres_per_newton = changes["marker_scale"]

    def estimate(self, image: np.ndarray, msg: Image | CompressedImage) -> np.ndarray:
        est = self.estimator
        force = est.step(image)
        self.diagnostics.extra["reference"] = est.reference_source
        if est.range_note:
            self.out_of_range += 1
            self.diagnostics.extra["frames_out_of_trained_range"] = str(self.out_of_range)
            self._flag(msg, f"out of the trained force range: {est.range_note}")
        if est.input_note:
            self.unlike_training += 1
            self.diagnostics.extra["frames_unlike_training_inputs"] = str(self.unlike_training)
            self._flag(msg, f"unlike the training frames: {est.input_note}")
        return force

    def _flag(self, msg: Image | CompressedImage, note: str) -> None:
        """Say on /diagnostics (WARN until the next report) and in the log (throttled) what is doubtful."""
        self.diagnostics.notice = note
        self.get_logger().warning(f"frame stamped {msg.header.stamp.sec}.{msg.header.stamp.nanosec:09d}: {note}",
                                  throttle_duration_sec=2.0)

    def publish(self, msg: Image | CompressedImage, force: np.ndarray) -> bool:
        wrench = build_wrench(msg.header, self.frame_id, force)
        if not publish_finite(self, self.pub, wrench, self.stats):
            return False
        if self.pub_markers.get_subscription_count():  # nothing to build for no one
            self.pub_markers.publish(force_arrow(wrench.header, force, self.metres_per_newton))
        return True

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

    def on_capture_reference(self, _request, response):
        try:
            self.estimator.capture_reference()
        except ValueError as exc:
            response.success, response.message = False, str(exc)
        else:
            response.success = True
            response.message = (f"averaging the next {self.estimator.reference_frames} frame(s) into the "
                                "no-contact reference; keep the sensor out of contact")
        return response


def _reference(model, path: str):
    """Return the reference_image file's frame in the model's encoding (None: capture one)."""
    if not path:
        return None
    if model.metadata.input.reference is None:
        raise ValueError(f"parameter 'reference_image' is set ({path}) but {model.path} takes no reference frame")
    try:
        image = load_reference_image(path, model.metadata.input.encoding)
        model.metadata.input.check_image(image.shape)
        return image
    except ValueError as exc:
        raise ValueError(f"parameter 'reference_image': {exc}") from None


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
