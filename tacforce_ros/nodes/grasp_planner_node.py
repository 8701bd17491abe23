"""grasp_planner_node: colour image (+ optional aligned depth, CameraInfo) in, grasp poses out.

decode -> dense grasp_map model (GraspPlanner) -> ranked grasps (perception.grasp_map) ->
  ~best_pose     geometry_msgs/PoseStamped  best grasp, camera optical frame
  ~candidates    geometry_msgs/PoseArray    top-k after non-maximum suppression, inside the
                                            workspace box; empty: no grasp for this frame
  ~candidate_scores std_msgs/Float32MultiArray  each candidate's P(success), same order and
                                            count; no header: sent right after ~candidates
  ~markers       visualization_msgs/MarkerArray  each candidate's jaws and P(success), same
                                            order (ros.markers), for rviz and programs
  ~overlay       sensor_msgs/Image rgb8     camera image, heat map blended where P >=
                                            min_probability, grasps drawn
  ~map           sensor_msgs/Image 32FC<B>  raw P(success): row = map row, column = map column,
                                            channel b = angle bin b (float32, row-major)
all stamped with the colour image's stamp. Poses need CameraInfo; position from the depth
image when one is given and fresh, else from the table plane. Grasps out of range or outside the
workspace box (workspace_min/max, optical frame) are skipped before top_k is counted; before
CameraInfo there is no position, so no pose and no workspace. A model that takes depth
(GraspPlanner.needs_depth) needs depth_topic and gets the fresh depth with each frame; a frame
without one is rejected (errors_no_depth). With no grasp for a frame ~candidates and
~candidate_scores go out empty, ~best_pose not at all (frames_without_grasp). ``~/plan``
(std_srvs/Trigger) plans on the latest frame and answers with the best grasp, or success false
and why not; with ``continuous`` false that is the only time the model runs. The ranking,
range, workspace and output switches are live: `ros2 param set` changes them between frames
(LIVE); topics, model and runtime are fixed at start-up. Input
topics are relative (camera/color/image_raw, camera/color/camera_info) and outputs private: a
namespace or a remapping moves them.
"""
from __future__ import annotations

import sys
from collections import Counter

import numpy as np
from geometry_msgs.msg import Pose, PoseArray, PoseStamped
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Float32MultiArray, MultiArrayDimension, MultiArrayLayout
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from ..perception.grasp_map import (TASK, Grasp, GraspPlanner, Intrinsics, box_problem, decode_grasps, depth_at,
                                    grasp_position, grasp_quaternion, heatmap_overlay, in_workspace, jaw_length_px,
                                    point_problem, position_problem, scale_problem, table_scale)
from ..perception.image import ImageError, decode_depth
from ..ros.checks import checked_stamp, publish_finite
from ..ros.images import decode_any
from ..ros.markers import grasp_markers
from ..ros.params import declare, invalid, live, optional_topic, topic
from ..ros.qos import output_qos, sensor_qos
from .model_node import ModelNode

# parameters that can be set while the node runs; each is the node attribute of the same name
LIVE = ("min_probability", "top_k", "nms_distance_px", "angle_window", "min_range", "max_range", "workspace_min",
        "workspace_max", "continuous", "publish_overlay", "publish_map", "publish_markers")


class GraspPlannerNode(ModelNode):
    def __init__(self, **kwargs):
        super().__init__("grasp_planner_node", TASK, "camera/color/image_raw", "Colour image topic", **kwargs)
        self.depth_topic = declare(self, "depth_topic", "",
                                   "Depth image aligned to the colour image (16UC1 mm or 32FC1 m); empty: none "
                                   "(required by a model that takes depth)", check=optional_topic)
        info_topic = declare(self, "camera_info_topic", "camera/color/camera_info",
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
        self.workspace_min = [float(x) for x in declare(
            self, "workspace_min", [-100.0, -100.0, 0.0],
            "Lower corner [x, y, z] (m, optical frame) of the box a published grasp must lie in (live)", False,
            check=_corner_problem)]
        self.workspace_max = [float(x) for x in declare(
            self, "workspace_max", [100.0, 100.0, 100.0],
            "Upper corner [x, y, z] (m, optical frame) of the box a published grasp must lie in (live)", False,
            check=_corner_problem)]
        self.continuous = declare(self, "continuous", True,
                                  "Plan every newest frame; false: only when ~/plan is called (live)", False)
        self.publish_overlay = declare(self, "publish_overlay", True, "Publish the ~overlay image (live)", False)
        self.publish_map = declare(self, "publish_map", True, "Publish the raw ~map image (live)", False)
        self.publish_markers = declare(self, "publish_markers", True,
                                       "Publish ~markers: each candidate's jaws and P(success) (live)", False)
        if len(self.table_plane) != 4 or not any(self.table_plane[:3]):
            raise SystemExit(f"grasp_planner_node: table_plane must be [a, b, c, d] with a non-zero "
                             f"normal, got {self.table_plane}")
        if self.min_range >= self.max_range:
            raise invalid(self, "min_range", f"must be below max_range ({self.max_range})", self.min_range)
        problem = box_problem(self.workspace_min, self.workspace_max)
        if problem:
            raise invalid(self, "workspace_min", problem, self.workspace_min)

        self.planner = self.start(GraspPlanner, check=self._check_model)
        layout = self.planner.layout
        self.get_logger().info(f"map {layout.rows}x{layout.cols}x{layout.bins}")
        self.intrinsics: Intrinsics | None = None
        self.info_size = (0, 0)  # CameraInfo width, height (0: not given)
        self.depth: tuple[float, np.ndarray] | None = None  # (stamp s, metres)
        self.latest: Image | CompressedImage | None = None  # the newest colour frame
        self.last_result = "no frame planned yet"
        self.grasps: list[Grasp] = []  # those of the last planned frame
        self.frames_without_grasp = 0
        self.frames_beyond_training = 0  # frames whose table scale lies outside the model's training data
        self.outside_workspace = 0  # grasps skipped for lying outside the workspace box

        self.pub_best = self.create_publisher(PoseStamped, "~/best_pose", output_qos())
        self.pub_candidates = self.create_publisher(PoseArray, "~/candidates", output_qos())
        self.pub_scores = self.create_publisher(Float32MultiArray, "~/candidate_scores", output_qos())
        self.pub_overlay = self.create_publisher(Image, "~/overlay", output_qos())
        self.pub_map = self.create_publisher(Image, "~/map", output_qos())
        self.pub_markers = self.create_publisher(MarkerArray, "~/markers", output_qos())
        if self.depth_topic:
            self.create_subscription(Image, self.depth_topic,
                                     checked_stamp(self, self.stats, self.on_depth, "depth frame"), sensor_qos())
        self.create_subscription(CameraInfo, info_topic, self.on_camera_info, sensor_qos())
        self.create_service(Trigger, "~/plan", self.on_plan)
        live(self, LIVE, self.apply_parameters)

    # ------------------------------------------------------------------ live parameters
    def apply_parameters(self, changes: dict) -> str | None:
        """Set the LIVE parameters in ``changes`` together, or none of them and say why:
        min_range must stay below max_range, workspace_min below workspace_max and angle_window
        fit this model's bins.
        """
        changes = {name: [float(x) for x in value] if name.startswith("workspace") else value
                   for name, value in changes.items()}
        new = {name: changes.get(name, getattr(self, name)) for name in LIVE}
        if new["min_range"] >= new["max_range"]:
            return f"min_range ({new['min_range']}) must be below max_range ({new['max_range']})"
        problem = box_problem(new["workspace_min"], new["workspace_max"])
        if problem:
            return f"workspace_min {new['workspace_min']} {problem} {new['workspace_max']}"
        problem = _angle_window_problem(new["angle_window"], self.planner.layout.bins)
        if problem:
            return f"angle_window {problem} (got {new['angle_window']})"
        for name, value in changes.items():
            setattr(self, name, value)
        return None

    def _check_model(self, planner: GraspPlanner) -> None:
        """angle_window must fit this model's angle bins; a model that takes depth needs depth_topic."""
        problem = _angle_window_problem(self.angle_window, planner.layout.bins)
        if problem:
            raise invalid(self, "angle_window", problem, self.angle_window)
        if planner.needs_depth and not self.depth_topic:
            raise invalid(self, "depth_topic", "must name the aligned depth topic: this model takes depth as input "
                          f"{planner.model.metadata.input.depth!r}", self.depth_topic)

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

    def on_frame(self, msg: Image | CompressedImage) -> None:
        """Keep the newest colour frame for ~/plan; plan it now when continuous."""
        self.latest = msg
        if self.continuous:
            self.process(msg)

    def on_plan(self, _request, response):
        if self.latest is None:
            response.success, response.message = False, "no colour image received yet"
            return response
        self.grasps = []
        self.process(self.latest)
        response.success = bool(self.grasps)
        response.message = self.last_result
        return response

    # ------------------------------------------------------------------ planning
    def decode(self, msg: Image | CompressedImage) -> tuple[np.ndarray, str]:
        """Return the frame as it came (and its channel order): the overlay draws on the camera's colours."""
        return decode_any(msg, self.max_pixels)

    def estimate(self, decoded: tuple[np.ndarray, str], msg: Image | CompressedImage) -> tuple | None:
        """Run the model on the frame (and its fresh depth, for a model that takes depth: without
        one the frame is rejected as errors_no_depth and later frames are served as usual).
        """
        image, order = decoded
        depth, why = self._depth_for(msg.header.stamp)
        if depth is None and self.planner.needs_depth:
            self.stats.error("no_depth")
            self.last_result = f"frame rejected: the model takes depth and {why}"
            self.get_logger().error(self.last_result, throttle_duration_sec=2.0)
            return None
        if depth is None and self.depth is not None:
            self.stats.error("depth_stale")
        return image, order, depth, self.planner.grasp_map(image, order, depth)

    def reject(self, exc: Exception) -> None:
        super().reject(exc)
        self.last_result = f"frame rejected: {exc}"

    def publish(self, msg: Image | CompressedImage, result: tuple) -> bool:
        """Rank the grasps, keep the best top_k in range and in the workspace, and publish poses,
        candidates and their scores (empty: no grasp), markers, map and overlay.
        """
        image, order, depth, prob = result
        header = msg.header
        frame_id = self.frame_id or header.frame_id
        if depth is not None and depth.shape != image.shape[:2]:
            self.stats.error("depth_size")
            depth = None
        positions: dict[Grasp, np.ndarray] = {}
        dropped: Counter[str] = Counter()

        def keep(grasp: Grasp) -> bool:
            xyz = self._position(grasp, depth)
            if xyz is None:
                dropped["without a plausible position"] += 1
                return False
            if not in_workspace(xyz, self.workspace_min, self.workspace_max):
                dropped["outside the workspace"] += 1
                return False
            positions[grasp] = xyz
            return True
        grasps = decode_grasps(prob, self.planner.layout, self.min_probability, self.top_k, self.nms_distance_px,
                               self.angle_window, keep if self._can_place(image.shape) else None)
        placed = [(g, _pose(positions[g], g.angle)) for g in grasps if g in positions]
        if placed:
            publish_finite(self, self.pub_best, PoseStamped(header=_header(header, frame_id), pose=placed[0][1]),
                           self.stats)
        if publish_finite(self, self.pub_candidates, PoseArray(header=_header(header, frame_id),
                                                               poses=[p for _, p in placed]), self.stats):
            self.pub_scores.publish(_scores_message([g.probability for g, _ in placed]))
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
        self._check_scale(depth)
        best = float(prob.max())
        self.outside_workspace += dropped["outside the workspace"]
        if not grasps:
            self.frames_without_grasp += 1
        self.diagnostics.extra.update(frames_without_grasp=str(self.frames_without_grasp),
                                      grasps_outside_workspace=str(self.outside_workspace),
                                      best_probability=f"{best:.3f}")
        self.grasps = grasps
        self.last_result = _describe(grasps, placed[0][1] if placed else None, frame_id, self.min_probability,
                                     best, dropped)
        return True

    def _check_scale(self, depth: np.ndarray | None) -> None:
        """Say so (log, /diagnostics) when the camera sees the table at a scale the model never trained at."""
        trained = self.planner.trained_scale
        if depth is None or self.intrinsics is None or trained is None:
            return
        scale = table_scale(depth, self.intrinsics)
        why = None if scale is None else scale_problem(scale, trained)
        if why:
            self.frames_beyond_training += 1
            self.get_logger().warning(why, throttle_duration_sec=10.0)
        self.diagnostics.extra.update(table_px_per_m=f"{scale:.0f}" if scale else "no depth",
                                      frames_beyond_training_scale=str(self.frames_beyond_training))

    def _depth_for(self, stamp) -> tuple[np.ndarray | None, str]:
        """Return the depth frame within depth_max_age of ``stamp``, or None and why not."""
        if self.depth is None:
            return None, f"no depth frame has arrived on {self.depth_topic or '(no depth_topic)'}"
        age = abs(self.depth[0] - _seconds(stamp))
        if age > self.depth_max_age:
            return None, (f"the newest depth frame is {age:.3f} s from the colour frame "
                          f"(depth_max_age {self.depth_max_age:g} s)")
        return self.depth[1], ""

    def _can_place(self, shape) -> bool:
        """Tell whether grasps can get a position: CameraInfo has arrived and is for this image size."""
        if self.intrinsics is not None and self.info_size in ((0, 0), (shape[1], shape[0])):
            return True
        self.stats.error("no_camera_info" if self.intrinsics is None else "camera_info_size")
        why = ("no CameraInfo yet" if self.intrinsics is None else
               f"CameraInfo is for {self.info_size[0]}x{self.info_size[1]}, the image is {shape[1]}x{shape[0]}")
        self.get_logger().warning(f"{why}: no poses published, workspace not applied", throttle_duration_sec=5.0)
        return False

    def _position(self, grasp: Grasp, depth: np.ndarray | None) -> np.ndarray | None:
        """Return the grasp's position (optical frame, m), or None without one or when it is out of range."""
        xyz = grasp_position(grasp, self.intrinsics, depth, self.table_plane)
        problem = None if xyz is None else position_problem(xyz, self.min_range, self.max_range)
        if problem:
            self.stats.error("pose_range" if np.isfinite(xyz).all() else "non_finite")
            self.get_logger().warning(f"grasp at pixel ({grasp.u:.0f}, {grasp.v:.0f}) dropped: {problem}",
                                      throttle_duration_sec=2.0)
            return None
        return xyz

    def _jaw_px(self, grasps: list[Grasp], depth: np.ndarray | None) -> float:
        if self.intrinsics is not None and grasps:
            z = depth_at(depth, grasps[0].u, grasps[0].v) if depth is not None else None
            if z is None:
                xyz = grasp_position(grasps[0], self.intrinsics, None, self.table_plane)
                z = None if xyz is None else float(xyz[2])
            if z:
                return jaw_length_px(self.jaw_opening, self.intrinsics.fx, z)
        return 2.5 * self.planner.layout.stride


def _corner_problem(_node, value) -> str | None:
    return point_problem(value)


def _angle_window_problem(window: int, bins: int) -> str | None:
    if window > (bins - 1) // 2:
        return f"must be at most {(bins - 1) // 2} for this model's {bins} angle bins"
    return None


def _seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def _pose(xyz: np.ndarray, angle: float) -> Pose:
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = (float(c) for c in xyz)
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = grasp_quaternion(angle)
    return pose


def _scores_message(probabilities: list[float]) -> Float32MultiArray:
    n = len(probabilities)
    layout = MultiArrayLayout(dim=[MultiArrayDimension(label="candidates", size=n, stride=n)])
    return Float32MultiArray(layout=layout, data=probabilities)


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


def _describe(grasps: list[Grasp], pose: Pose | None, frame_id: str, min_probability: float, best: float,
              dropped: Counter) -> str:
    if not grasps:
        skipped = ", ".join(f"{n} {why}" for why, n in dropped.items())
        return f"no grasp with P >= {min_probability:g} (best {best:.2f})" + (f"; {skipped}" if skipped else "")
    g = grasps[0]
    text = f"best grasp: pixel ({g.u:.0f}, {g.v:.0f}), angle {g.angle:.3f} rad, P {g.probability:.3f}"
    if pose is not None:
        p = pose.position
        text += f", position ({p.x:.3f}, {p.y:.3f}, {p.z:.3f}) m in {frame_id}"
    else:
        text += ", no pose (no usable CameraInfo yet; workspace not applied)"
    return text + f"; {len(grasps)} candidate(s)"


def main(args=None) -> None:
    from .runner import spin_nodes
    sys.exit(spin_nodes([GraspPlannerNode], args))


if __name__ == "__main__":
    main()
