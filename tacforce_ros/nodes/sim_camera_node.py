"""sim_camera_node: a simulated top-down RGB-D camera over synthetic table scenes.

Publishes rgb8 colour frames, aligned 16UC1 depth (mm) and CameraInfo at ``rate``, all with the
same stamp and the optical frame id, and draws a new scene every ``scene_period`` seconds. It
stands in for a RealSense-style camera so grasp_planner_node runs without hardware.
"""
from __future__ import annotations

import sys

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from ..perception.image import encode_image_fields
from ..ros.params import declare, refuse_unknown, topic
from ..ros.qos import sensor_qos
from ..sim.grasp_camera import camera_matrix, depth_mm
from ..sim.grasp_scenes import SHAPES, SceneConfig, generate_scene


class SimCameraNode(Node):
    def __init__(self, **kwargs):
        super().__init__("sim_camera_node", **kwargs)
        rate = declare(self, "rate", 5.0, "Frames per second", limits=(0.01, 1000.0))
        self.scene_period = declare(self, "scene_period", 2.0, "Seconds between new scenes", limits=(0.0, 1e6))
        self.height_m = declare(self, "camera_height", 0.6, "Camera height above the table (m)", limits=(0.05, 10.0))
        shapes = declare(self, "shapes", list(SHAPES), "Object shapes to draw scenes from")
        seed = declare(self, "seed", 0, "Scene random seed")
        self.frame_id = declare(self, "frame_id", "camera_color_optical_frame", "Optical frame id")
        image_topic = declare(self, "image_topic", "camera/color/image_raw", "Colour image topic", check=topic)
        depth_topic = declare(self, "depth_topic", "camera/aligned_depth_to_color/image_raw",
                              "Aligned depth topic (16UC1, mm)", check=topic)
        info_topic = declare(self, "camera_info_topic", "camera/color/camera_info", "CameraInfo topic", check=topic)
        refuse_unknown(self)
        try:
            self.config = SceneConfig(shapes=tuple(shapes), seed=seed)
            self.k = camera_matrix(self.config, self.height_m)
        except ValueError as exc:
            raise SystemExit(f"sim_camera_node: {exc}") from None
        self.rng = np.random.default_rng(seed)
        self.pub_image = self.create_publisher(Image, image_topic, sensor_qos(depth=2))
        self.pub_depth = self.create_publisher(Image, depth_topic, sensor_qos(depth=2))
        self.pub_info = self.create_publisher(CameraInfo, info_topic, sensor_qos(depth=2))
        self.scene, self.scene_since = None, 0.0
        self.create_timer(1.0 / rate, self.publish)

    def publish(self) -> None:
        now = self.get_clock().now()
        t = now.nanoseconds * 1e-9
        if self.scene is None or t - self.scene_since >= self.scene_period:
            self.scene, self.scene_since = generate_scene(self.config, self.rng), t
            self.depth = depth_mm(self.scene, self.height_m)
        stamp = now.to_msg()
        image = Image(**encode_image_fields(self.scene.image, "rgb8"))
        depth = Image(height=self.depth.shape[0], width=self.depth.shape[1], encoding="16UC1",
                      is_bigendian=0, step=self.depth.shape[1] * 2, data=self.depth.astype("<u2").tobytes())
        info = CameraInfo(height=self.config.height, width=self.config.width, distortion_model="plumb_bob",
                          d=[0.0] * 5, k=self.k, r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
                          p=[self.k[0], 0.0, self.k[2], 0.0, 0.0, self.k[4], self.k[5], 0.0, 0.0, 0.0, 1.0, 0.0])
        for msg in (image, depth, info):
            msg.header.stamp, msg.header.frame_id = stamp, self.frame_id
        self.pub_info.publish(info)
        self.pub_depth.publish(depth)
        self.pub_image.publish(image)


def main(args=None) -> None:
    from .runner import spin_nodes
    sys.exit(spin_nodes([SimCameraNode], args))


if __name__ == "__main__":
    main()
