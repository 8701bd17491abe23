"""grasp_planner_node: colour image (+ optional aligned depth, CameraInfo) in, grasp poses out.

decode -> dense grasp_map model (GraspPlanner) -> ranked grasps (perception.grasp_map) ->
  ~best_pose     geometry_msgs/PoseStamped  best grasp, camera optical frame
  ~candidates    geometry_msgs/PoseArray    top-k after non-maximum suppression
  ~markers       visualization_msgs/MarkerArray  each candidate's jaws and P(success), same
                                            order (ros.markers), for rviz and programs
  ~overlay       sensor_msgs/Image rgb8     camera image, heat map blended where P >=
                                            min_probability, grasps drawn
  ~map           sensor_msgs/Image 32FC<B>  raw P(success): row = map row, column = map column,
                                            channel b = angle bin b (float32, row-major)
all stamped with the colour image's stamp. Poses need CameraInfo; position from the depth
image when one is given and fresh, else from the table plane. ``~/plan`` (std_srvs/Trigger)
plans on the latest frame and answers with the best grasp; with ``continuous`` false that is
the only time the model runs. The ranking, range and output switches are live: `ros2 param
set` changes them between frames (LIVE); topics, model and runtime are fixed at start-up.
"""
from __future__ import annotations

import sys
import time

import numpy as np
from geometry_msgs.msg import Pose, PoseArray, PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from ..paths import resolve
from ..perception.grasp_map import (Grasp, GraspMapError, GraspPlanner, Intrinsics, decode_grasps,
                                    depth_at, grasp_position, grasp_quaternion, heatmap_overlay,
                                    jaw_length_px, position_problem)
from ..perception.image import ImageError, decode_depth
from ..perception.stats import StageStats
from ..ros.checks import checked_stamp, publish_finite
from ..ros.diagnostics import DiagnosticsPublisher
from ..ros.markers import grasp_markers
from ..ros.images import TRANSPORTS, decode_any, subscribe_image
from ..ros.model_params import declare_common, declare_runtime, load_model
from ..ros.params import declare, invalid, live, optional_topic, refuse_unknown, topic
from ..ros.qos import output_qos, sensor_qos

# parameters that can be set while the node runs; each is the node attribute of the same name
LIVE = ("min_probability", "top_k", "nms_distance_px", "angle_window", "min_range", "max_range", "continuous",
        "publish_overlay", "publish_map", "publish_markers")


class GraspPlannerNode(Node):
    def __init__(self, **kwargs):
        super().__init__("grasp_planner_node", **kwargs)
        self.model_path = str(resolve("models", declare(
            self, "model_path", "grasp_map.onnx",
            "ONNX grasp_map model: a file name in the package's models/ or a path")))
        image_topic = declare(self, "image_topic", "/camera/color/image_raw", "Colour image topic", check=topic)
        transport = declare(self, "image_transport", "raw",
                            "'raw' (sensor_msgs/Image) or 'compressed' (CompressedImage on <image_topic>/compressed)",
                            choices=TRANSPORTS)
        depth_topic = declare(self, "depth_topic", "",
                              "Depth image aligned to the colour image (16UC1 mm or 32FC1 m); empty: none",
                              check=optional_topic)
        info_topic = declare(self, "camera_info_topic", "/camera/color/camera_info",
                             "CameraInfo of the colour image (intrinsics for poses)", check=topic)
        self.depth_max_age = declare(self, "depth_max_age", 0.1,
                                     "Seconds a depth frame may differ from the colour frame and still be used",
                                     limits=(0.0, 60.0))
        self.table_plane = [float(x) for x in declare(
            self, "table_plane", [0.0, 0.0, 1.0, 0.6],
            "Table plane a*x + b*y + c*z = d in the camera optical frame (m); used without depth")]
        self.frame_id = declare(self, "frame_id", "",
                                "frame_id of the outputs (empty: the colour image's optical frame)")
        self.min_probability = declare(self, "min_probability", 0.5,
                                       "Grasps with a lower success probability are not published (live)",
                                       False, limits=(0.0, 1.0))
        self.top_k = declare(self, "top_k", 5, "Grasp candidates published on ~candidates (live)", False,
                             limits=(1, 1000))
        self.nms_distance_px = declare(self, "nms_distance_px", 48.0,
                                       "A grasp closer than this (pixels) to a better one is suppressed (live)",
                                       False, limits=(0.0, 100000.0))
        self.angle_window = declare(self, "angle_window", 1,
                                    "Rank grasps by P averaged over this many neighbouring angle bins "
                                    "each side (1-2-1 weights); 0: by the bin's own P; at most (bins - 1) / 2 (live)",
                                    False, limits=(0, 64))
        self.jaw_opening = declare(self, "jaw_opening", 0.085,
                                   "Gripper opening in metres (drawn in the overlay; reported by ~/plan)",
                                   limits=(0.001, 0.5))
        self.min_range = declare(self, "min_range", 0.1,
                                 "Metres: grasps nearer the camera (optical z) are dropped as implausible (live)",
                                 False, limits=(0.0, 100.0))
        self.max_range = declare(self, "max_range", 3.0,
                                 "Metres: grasps farther from the camera are dropped as implausible (live)",
                                 False, limits=(0.01, 100.0))
        self.continuous = declare(self, "continuous", True,
                                  "Plan every newest frame; false: only when ~/plan is called (live)", False)
        self.publish_overlay = declare(self, "publish_overlay", True, "Publish the ~overlay image (live)", False)
        self.publish_map = declare(self, "publish_map", True, "Publish the raw ~map image (live)", False)
        self.publish_markers = declare(self, "publish_markers", True,
                                       "Publish ~markers: each candidate's jaws and P(success) (live)", False)
        runtime = declare_runtime(self)
        self.max_pixels, diag_period = declare_common(self)
        refuse_unknown(self)
        if len(self.table_plane) != 4 or not any(self.table_plane[:3]):
            raise SystemExit(f"grasp_planner_node: table_plane must be [a, b, c, d] with a non-zero "
                             f"normal, got {self.table_plane}")
        if self.min_range >= self.max_range:
            raise invalid(self, "min_range", f"must be below max_range ({self.max_range})", self.min_range)

        self.stats = StageStats()
        self.planner = load_model(self, self.model_path, "grasp_map", runtime, GraspPlanner)
        model, layout = self.planner.model, self.planner.layout
        problem = self._angle_window_problem(self.angle_window)
        if problem:
            raise invalid(self, "angle_window", problem, self.angle_window)
        self.get_logger().info(
            f"model {self.model_path} on {model.provider}; input {model.metadata.input.width}x"
            f"{model.metadata.input.height} {model.metadata.input.encoding}; map {layout.rows}x{layout.cols}"
            f"x{layout.bins}")
        self.intrinsics: Intrinsics | None = None
        self.info_size = (0, 0)  # CameraInfo width, height (0: not given)
        self.depth: tuple[float, np.ndarray] | None = None  # (stamp s, metres)
        self.latest: Image | CompressedImage | None = None  # the newest colour frame
        self.last_result = "no frame planned yet"

        self.pub_best = self.create_publisher(PoseStamped, "~/best_pose", output_qos())
        self.pub_candidates = self.create_publisher(PoseArray, "~/candidates", output_qos())
        self.pub_overlay = self.create_publisher(Image, "~/overlay", output_qos())
        self.pub_map = self.create_publisher(Image, "~/map", output_qos())
        self.pub_markers = self.create_publisher(MarkerArray, "~/markers", output_qos())
        subscribe_image(self, image_topic, transport, self.on_colour, self.on_colour, stats=self.stats)
        if depth_topic:
            self.create_subscription(Image, depth_topic, checked_stamp(self, self.stats, self.on_depth, "depth frame"),
                                     sensor_qos())
        self.create_subscription(CameraInfo, info_topic, self.on_camera_info, sensor_qos())
        self.create_service(Trigger, "~/plan", self.on_plan)
        self.diagnostics = DiagnosticsPublisher(
            self, self.stats, hardware_id=self.model_path, period=diag_period,
            extra={"provider": model.provider, "model": self.model_path})
        live(self, LIVE, self.apply_parameters)

    # ------------------------------------------------------------------ live parameters
    def apply_parameters(self, changes: dict) -> str | None:
        """Set the LIVE parameters in ``changes`` together, or none of them and say why:
        min_range must stay below max_range and angle_window fit this model's bins."""
        new = {name: changes.get(name, getattr(self, name)) for name in LIVE}
        if new["min_range"] >= new["max_range"]:
            return f"min_range ({new['min_range']}) must be below max_range ({new['max_range']})"
        problem = self._angle_window_problem(new["angle_window"])
        if problem:
            return f"angle_window {problem} (got {new['angle_window']})"
        for name, value in changes.items():
            setattr(self, name, value)
        return None

    def _angle_window_problem(self, window: int) -> str | None:
        bins = self.planner.layout.bins
        if window > (bins - 1) // 2:
            return f"must be at most {(bins - 1) // 2} for this model's {bins} angle bins"
        return None

    # ------------------------------------------------------------------ inputs
    def on_camera_info(self, msg: CameraInfo) -> None:
        try:
            self.intrinsics = Intrinsics.from_camera_info(msg.k, msg.width, msg.height)
            self.info_size = (int(msg.width), int(msg.height))
        except ValueError as exc:
            self.stats.error("camera_info")
            self.get_logger().warning(f"CameraInfo rejected: {exc}", throttle_duration_sec=2.0)

    def on_depth(self, msg: Image) -> None:
        try:
            self.depth = (_seconds(msg.header.stamp), decode_depth(msg, self.max_pixels))
        except ImageError as exc:
            self.stats.error("depth")
            self.get_logger().warning(f"depth frame rejected: {exc}", throttle_duration_sec=2.0)

    def on_colour(self, msg: Image | CompressedImage) -> None:
        self.latest = msg
        if self.continuous:
            self.plan(msg)

    def on_plan(self, _request, response):
        if self.latest is None:
            response.success, response.message = False, "no colour image received yet"
            return response
        grasps = self.plan(self.latest)
        response.success = bool(grasps)
        response.message = self.last_result
        return response

    # ------------------------------------------------------------------ planning
    def plan(self, msg: Image | CompressedImage) -> list[Grasp]:
        t0 = time.perf_counter()
        try:
            image, order = decode_any(msg, self.max_pixels)
            t1 = time.perf_counter()
            prob = self.planner.grasp_map(image, order)
        except (ImageError, ValueError) as exc:
            kind = "image" if isinstance(exc, ImageError) else (
                "non_finite" if isinstance(exc, GraspMapError) else "shape")
            self.stats.error(kind)
            self.last_result = f"frame rejected: {exc}"
            self.get_logger().warning(self.last_result, throttle_duration_sec=2.0)
            return []
        t2 = time.perf_counter()
        grasps = decode_grasps(prob, self.planner.layout, self.min_probability, self.top_k, self.nms_distance_px,
                               self.angle_window)
        header = msg.header
        frame_id = self.frame_id or header.frame_id
        depth = self._depth_for(header.stamp)
        poses = self._poses(grasps, depth, image.shape)
        if poses and poses[0] is not None:
            publish_finite(self, self.pub_best, PoseStamped(header=_header(header, frame_id), pose=poses[0]),
                           self.stats)
        placed = [(g, p) for g, p in zip(grasps, poses) if p is not None]
        publish_finite(self, self.pub_candidates, PoseArray(header=_header(header, frame_id),
                                                            poses=[p for _, p in placed]), self.stats)
        if self.publish_markers:
            publish_finite(self, self.pub_markers, grasp_markers(_header(header, frame_id), placed, self.jaw_opening),
                           self.stats)
        if self.publish_map:
            self.pub_map.publish(_map_message(prob, header, frame_id))  # finite: check_map
        if self.publish_overlay:
            rgb = image if order == "rgb" else image[..., ::-1] if order == "bgr" else np.repeat(image, 3, 2)
            overlay = heatmap_overlay(rgb, prob, self.planner.layout, grasps, self._jaw_px(grasps, depth),
                                      min_probability=self.min_probability)
            self.pub_overlay.publish(_rgb_message(overlay, header, frame_id))  # uint8
        t3 = time.perf_counter()
        self.last_result = _describe(grasps, poses, frame_id, self.min_probability)
        for stage, seconds in (("decode", t1 - t0), ("inference", t2 - t1), ("publish", t3 - t2),
                               ("total", t3 - t0)):
            self.stats.record(stage, seconds)
        self.stats.tick(t3)
        return grasps

    def _depth_for(self, stamp) -> np.ndarray | None:
        if self.depth is None:
            return None
        if abs(self.depth[0] - _seconds(stamp)) > self.depth_max_age:
            self.stats.error("depth_stale")
            return None
        return self.depth[1]

    def _poses(self, grasps: list[Grasp], depth: np.ndarray | None, shape) -> list[Pose | None]:
        if not grasps:
            return []
        if self.intrinsics is None or self.info_size not in ((0, 0), (shape[1], shape[0])):
            self.stats.error("no_camera_info" if self.intrinsics is None else "camera_info_size")
            why = ("no CameraInfo yet" if self.intrinsics is None else
                   f"CameraInfo is for {self.info_size[0]}x{self.info_size[1]}, the image is {shape[1]}x{shape[0]}")
            self.get_logger().warning(f"{why}: grasps found, poses not published", throttle_duration_sec=5.0)
            return [None] * len(grasps)
        if depth is not None and depth.shape != tuple(shape[:2]):
            self.stats.error("depth_size")
            depth = None
        poses = []
        for g in grasps:
            xyz = grasp_position(g, self.intrinsics, depth, self.table_plane)
            problem = None if xyz is None else position_problem(xyz, self.min_range, self.max_range)
            if problem:
                self.stats.error("pose_range" if np.isfinite(xyz).all() else "non_finite")
                self.get_logger().warning(f"grasp at pixel ({g.u:.0f}, {g.v:.0f}) dropped: {problem}",
                                          throttle_duration_sec=2.0)
            if xyz is None or problem:
                poses.append(None)
                continue
            pose = Pose()
            pose.position.x, pose.position.y, pose.position.z = (float(c) for c in xyz)
            q = grasp_quaternion(g.angle)
            pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = q
            poses.append(pose)
        return poses

    def _jaw_px(self, grasps: list[Grasp], depth: np.ndarray | None) -> float:
        if self.intrinsics is not None and grasps:
            z = depth_at(depth, grasps[0].u, grasps[0].v) if depth is not None else None
            if z is None:
                xyz = grasp_position(grasps[0], self.intrinsics, None, self.table_plane)
                z = None if xyz is None else float(xyz[2])
            if z:
                return jaw_length_px(self.jaw_opening, self.intrinsics.fx, z)
        return 2.5 * self.planner.layout.stride


def _seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def _header(header, frame_id: str):
    out = type(header)()
    out.stamp, out.frame_id = header.stamp, frame_id
    return out


def _map_message(prob: np.ndarray, header, frame_id: str) -> Image:
    rows, cols, bins = prob.shape
    return Image(header=_header(header, frame_id), height=rows, width=cols, encoding=f"32FC{bins}",
                 is_bigendian=0, step=cols * bins * 4,
                 data=np.ascontiguousarray(prob, dtype="<f4").tobytes())


def _rgb_message(rgb: np.ndarray, header, frame_id: str) -> Image:
    h, w = rgb.shape[:2]
    return Image(header=_header(header, frame_id), height=h, width=w, encoding="rgb8", is_bigendian=0,
                 step=w * 3, data=np.ascontiguousarray(rgb).tobytes())


def _describe(grasps: list[Grasp], poses: list, frame_id: str, min_probability: float) -> str:
    if not grasps:
        return f"no grasp with P >= {min_probability:g}"
    g = grasps[0]
    text = f"best grasp: pixel ({g.u:.0f}, {g.v:.0f}), angle {g.angle:.3f} rad, P {g.probability:.3f}"
    if poses[0] is not None:
        p = poses[0].position
        text += f", position ({p.x:.3f}, {p.y:.3f}, {p.z:.3f}) m in {frame_id}"
    else:
        text += ", no pose (no CameraInfo, no depth/table intersection, or out of range)"
    return text + f"; {len(grasps)} candidate(s)"


def main(args=None) -> None:
    from .runner import spin_nodes
    sys.exit(spin_nodes([GraspPlannerNode], args))


if __name__ == "__main__":
    main()
