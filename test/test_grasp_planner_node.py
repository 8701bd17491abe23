"""grasp_planner_node with real rclpy and DDS: the simulated RGB-D camera and the planner run as
separate processes; this test process subscribes to the camera and the planner, calls the
service and injects bad frames.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")  # noqa: E402  (the ROS wheels are part of the test set-up)
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseArray, PoseStamped  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import Float32MultiArray  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from grasp_models import depth_grasp_map_model  # noqa: E402
from live_params import get_parameter, set_parameter  # noqa: E402
from rosutil import ROOT, probe_node, spin_until, start_node, stop  # noqa: E402
from tacforce_ros.perception.image import encode_image_fields  # noqa: E402
from tacforce_ros.ros.markers import SCORES, scores  # noqa: E402
from tacforce_ros.ros.qos import output_qos, sensor_qos  # noqa: E402
from tacforce_ros.sim.grasp_camera import camera_matrix  # noqa: E402
from tacforce_ros.sim.grasp_scenes import SceneConfig, generate_scene  # noqa: E402

MODEL = ROOT / "models" / "grasp_map_synthetic.onnx"
NODE = "tacforce_ros.nodes.grasp_planner_node"
CAMERA = "tacforce_ros.nodes.sim_camera_node"
OUT = "/grasp_planner_node"


def rejected(diagnostics) -> int:
    """Count the frames the planner's newest diagnostics report as rejected, for a bad image or shape."""
    for array in reversed(diagnostics):
        for status in array.status:
            values = {kv.key: kv.value for kv in status.values}
            if "rate_hz" in values:  # the planner's status (errors_<kind> appear once counted)
                return int(values.get("errors_image", 0)) + int(values.get("errors_shape", 0))
    return 0


@pytest.fixture
def ros(request):
    domain = 150 + (abs(hash(request.node.name)) % 30)
    with probe_node(domain, "grasp_probe") as node:
        yield domain, node


def subscribe(node):
    got = {"camera": [], "best": [], "candidates": [], "map": [], "overlay": [], "diagnostics": []}
    # the camera's stamps, from its CameraInfo (same stamp as each frame, and small: a best-effort
    # subscriber under load keeps up with it, where whole frames may be dropped)
    node.create_subscription(CameraInfo, "/camera/color/camera_info", got["camera"].append, sensor_qos(depth=100))
    node.create_subscription(PoseStamped, f"{OUT}/best_pose", got["best"].append, output_qos(100))
    node.create_subscription(PoseArray, f"{OUT}/candidates", got["candidates"].append, output_qos(100))
    node.create_subscription(Image, f"{OUT}/map", got["map"].append, output_qos(100))
    node.create_subscription(Image, f"{OUT}/overlay", got["overlay"].append, output_qos(100))
    node.create_subscription(DiagnosticArray, "/diagnostics", got["diagnostics"].append, 20)
    return got


def call(node, name: str):
    client = node.create_client(Trigger, name)
    assert client.wait_for_service(timeout_sec=20)
    future = client.call_async(Trigger.Request())
    assert spin_until(node, future.done, 30)
    return future.result()


def stamp(msg) -> tuple[int, int]:
    return msg.header.stamp.sec, msg.header.stamp.nanosec


def bad_frames():
    good = np.zeros((480, 640, 3), np.uint8).tobytes()
    frames = [dict(encoding="32FC1", step=640 * 4, data=good[:480 * 640 * 4 // 3 * 3]),
              dict(encoding="rgb8", step=640 * 3, data=good[:1000]),              # truncated
              dict(encoding="rgb8", step=100, data=good),                         # step < width * 3
              dict(encoding="rgb8", step=320 * 3, data=good[:320 * 240 * 3], height=240, width=320)]  # size
    out = []
    for k, fields in enumerate(frames):
        msg = Image(height=fields.pop("height", 480), width=fields.pop("width", 640), **fields)
        msg.header.stamp.sec, msg.header.frame_id = 5000 + k, "bad"
        out.append(msg)
    return out


def test_grasps_poses_maps_and_overlays_carry_the_camera_stamp(ros):
    domain, node = ros
    got = subscribe(node)
    camera = start_node(CAMERA, domain, {"rate": 4.0, "scene_period": 1.0})
    # the planner starts once this probe hears the camera, so it sees the stamps of every frame planned
    if not spin_until(node, lambda: got["camera"], 60, [camera]):
        raise AssertionError(f"no CameraInfo from the camera:\n{stop(camera)}")
    planner = start_node(NODE, domain, {"model_path": str(MODEL), "min_probability": 0.0, "top_k": 3,
                                        "diagnostics_period": 0.5})
    try:
        assert spin_until(node, lambda: len(got["best"]) >= 8 and len(got["overlay"]) >= 8, 90, [camera, planner])
        stop(camera)  # the node keeps only the newest frame: let nothing overtake the bad ones
        pub = node.create_publisher(Image, "/camera/color/image_raw", sensor_qos(depth=5))
        assert spin_until(node, lambda: pub.get_subscription_count() > 0, 20, [planner])
        for count, msg in enumerate(bad_frames(), 1):  # one at a time: a newest-only queue drops overtaken frames
            pub.publish(msg)
            spin_until(node, lambda: rejected(got["diagnostics"]) >= count, 10, [planner])
        good = Image(**encode_image_fields(generate_scene(SceneConfig(seed=3)).image, "rgb8"))
        good.header.stamp.sec, good.header.frame_id = 6000, "camera_color_optical_frame"
        got["camera"].append(good)
        pub.publish(good)
        assert spin_until(node, lambda: stamp(got["best"][-1]) == (6000, 0), 30, [planner])  # still serving
        answer = call(node, f"{OUT}/plan")
        seen = len(got["diagnostics"])  # wait for reports made after every bad frame was handled
        spin_until(node, lambda: len(got["diagnostics"]) >= seen + 2, 10)
        assert planner.poll() is None, "planner died on bad input"
    finally:
        log = stop(planner)
        stop(camera)
    sent = {stamp(m) for m in got["camera"]}
    assert (5000, 0) not in {stamp(m) for m in got["best"]}
    for key in ("best", "candidates", "map", "overlay"):
        assert got[key] and {stamp(m) for m in got[key]} <= sent, key  # output stamp = input stamp
        assert {m.header.frame_id for m in got[key]} == {"camera_color_optical_frame"}, key
    m = got["map"][0]
    assert (m.height, m.width, m.encoding, m.step) == (15, 20, "32FC18", 20 * 18 * 4)
    prob = np.frombuffer(bytes(m.data), "<f4").reshape(15, 20, 18)
    assert ((prob >= 0) & (prob <= 1)).all()
    o = got["overlay"][0]
    assert (o.height, o.width, o.encoding) == (480, 640, "rgb8")
    for msg in got["best"]:
        p, q = msg.pose.position, msg.pose.orientation
        # from the aligned depth: on an object top (0.525..0.57 m) or the table (0.6 m), in view
        assert 0.52 <= p.z <= 0.6 + 1e-6 and abs(p.x) < 0.33 and abs(p.y) < 0.25
        assert q.x == q.y == 0 and math.isclose(q.z ** 2 + q.w ** 2, 1.0, rel_tol=1e-6)
    # top_k 3; empty only for frames planned before the CameraInfo arrived (no best pose then)
    assert all(len(c.poses) <= 3 for c in got["candidates"])
    assert sum(1 for c in got["candidates"] if c.poses) == len(got["best"])
    assert answer.success and "best grasp" in answer.message and "position" in answer.message, answer.message
    assert "frame rejected" in log
    values = {kv.key: kv.value for d in got["diagnostics"] for s in d.status for kv in s.values}
    assert int(values["errors_image"]) + int(values.get("errors_shape", 0)) == 4, values
    assert float(values["rate_hz"]) > 0 and "provider" in values


def test_on_demand_planning_without_depth_uses_the_table_plane(ros):
    domain, node = ros
    got = subscribe(node)
    camera = start_node(CAMERA, domain, {"rate": 4.0})
    planner = start_node(NODE, domain, {"model_path": str(MODEL), "continuous": False, "depth_topic": "''",
                                        "min_probability": 0.0, "table_plane": "[0.0, 0.0, 1.0, 0.6]"})
    try:
        assert spin_until(node, lambda: len(got["camera"]) >= 6, 60, [camera, planner])
        assert got["best"] == []  # nothing planned until asked
        answer = call(node, f"{OUT}/plan")
        assert spin_until(node, lambda: len(got["best"]) == 1, 10)
    finally:
        stop(planner)
        stop(camera)
    assert answer.success and "best grasp" in answer.message
    assert got["best"][0].pose.position.z == pytest.approx(0.6)   # on the table plane
    assert stamp(got["best"][0]) in {stamp(m) for m in got["camera"]}


def test_implausible_camera_info_and_depth_give_no_pose(ros):
    """An fx of 1e-30 (a grasp 1e30 m to the side) is refused and counted; a saturated depth (65535 mm,
    65.5 m) drops the grasp and counts it; the same scene at 0.6 m then gets its pose.
    """
    domain, node = ros
    got = subscribe(node)
    planner = start_node(NODE, domain, {"model_path": str(MODEL), "min_probability": 0.0, "top_k": 1,
                                        "image_topic": "/t/image", "depth_topic": "/t/depth",
                                        "camera_info_topic": "/t/info", "diagnostics_period": 0.2,
                                        "publish_overlay": False, "publish_map": False})
    pubs = {name: node.create_publisher(kind, f"/t/{name}", sensor_qos(depth=5))
            for name, kind in (("image", Image), ("depth", Image), ("info", CameraInfo))}
    scene = generate_scene(SceneConfig(seed=3))
    k = camera_matrix(SceneConfig(), 0.6)

    def send(sec: int, fx: float, depth_mm: int) -> None:
        info = CameraInfo(height=480, width=640, k=[fx, *k[1:]])
        depth = Image(height=480, width=640, encoding="16UC1", step=1280,
                      data=np.full((480, 640), depth_mm, "<u2").tobytes())
        image = Image(**encode_image_fields(scene.image, "rgb8"))
        for msg in (info, depth, image):
            msg.header.stamp.sec, msg.header.frame_id = sec, "camera_color_optical_frame"
        pubs["info"].publish(info)
        pubs["depth"].publish(depth)
        spin_until(node, lambda: False, 0.2)  # the depth is in before the frame it belongs to
        pubs["image"].publish(image)

    def planned(sec: int) -> bool:
        return any(stamp(m) == (sec, 0) for m in got["candidates"])
    try:
        assert spin_until(node, lambda: all(p.get_subscription_count() for p in pubs.values()), 60, [planner])
        for sec in range(7000, 7010):  # best effort: send again until one is planned and counted
            send(sec, 1e-30, 600)
            if spin_until(node, lambda: errors(got["diagnostics"], "camera_info") >= 1, 3, [planner]):
                break
        for sec in range(7100, 7110):
            send(sec, k[0], 65535)
            if spin_until(node, lambda: errors(got["diagnostics"], "pose_range") >= 1 and planned(sec), 3, [planner]):
                break
        saturated = sec
        for sec in range(7200, 7210):
            send(sec, k[0], 600)
            if spin_until(node, lambda: any(stamp(m) == (sec, 0) for m in got["best"]), 3, [planner]):
                break
    finally:
        log = stop(planner)
    assert errors(got["diagnostics"], "camera_info") >= 1, log
    assert errors(got["diagnostics"], "pose_range") >= 1 and planned(saturated), log
    assert not [m for m in got["best"] if stamp(m)[0] < 7200], "a pose from bad intrinsics or depth"
    assert all(not m.poses for m in got["candidates"] if stamp(m)[0] < 7200)
    good = [m for m in got["best"] if stamp(m)[0] >= 7200]
    assert good and 0.52 <= good[-1].pose.position.z <= 0.6 + 1e-6, log


def test_live_parameters_change_the_output_and_bad_values_are_refused(ros):
    """top_k 5 -> 1 and min_probability 0 -> 1 set through /grasp_planner_node/set_parameters
    change the next frame's candidates; out-of-range, NaN and inconsistent values are refused
    and change nothing. ~/markers carries each candidate's score, stamped like the image.
    """
    domain, node = ros
    got = {"candidates": [], "best": [], "markers": []}
    node.create_subscription(PoseArray, f"{OUT}/candidates", got["candidates"].append, output_qos(100))
    node.create_subscription(PoseStamped, f"{OUT}/best_pose", got["best"].append, output_qos(100))
    node.create_subscription(MarkerArray, f"{OUT}/markers", got["markers"].append, output_qos(100))
    planner = start_node(NODE, domain, {"model_path": str(MODEL), "min_probability": 0.0, "top_k": 5,
                                        "nms_distance_px": 10.0, "image_topic": "/t/image", "depth_topic": "''",
                                        "camera_info_topic": "/t/info", "publish_overlay": False,
                                        "publish_map": False})
    pub_image = node.create_publisher(Image, "/t/image", sensor_qos(depth=5))
    pub_info = node.create_publisher(CameraInfo, "/t/info", sensor_qos(depth=5))
    image = Image(**encode_image_fields(generate_scene(SceneConfig(seed=3)).image, "rgb8"))
    info = CameraInfo(height=480, width=640, k=camera_matrix(SceneConfig(), 0.6))
    sent = iter(range(8000, 9000))

    def frame(posed: bool = True) -> tuple[PoseArray, MarkerArray]:
        """Send frames until one is planned (with poses, when ``posed``: a frame planned before
        the best-effort CameraInfo arrived has none); its candidates and markers.
        """
        for _ in range(20):  # best effort: a frame may be dropped
            sec = next(sent)
            for msg in (info, image):
                msg.header.stamp.sec, msg.header.frame_id = sec, "camera_color_optical_frame"
            pub_info.publish(info)
            spin_until(node, lambda: False, 0.1)
            pub_image.publish(image)
            if spin_until(node, lambda: any(stamp(m) == (sec, 0) for m in got["candidates"]) and
                          any(stamp(m.markers[0]) == (sec, 0) for m in got["markers"]), 3, [planner]):
                candidates = next(m for m in got["candidates"] if stamp(m) == (sec, 0))
                if candidates.poses or not posed:
                    return candidates, next(m for m in got["markers"] if stamp(m.markers[0]) == (sec, 0))
        raise AssertionError("no frame planned")
    try:
        assert spin_until(node, lambda: pub_image.get_subscription_count() and pub_info.get_subscription_count(),
                          60, [planner])
        five, markers = frame()
        assert set_parameter(node, "grasp_planner_node", "top_k", 1).successful
        one, _ = frame()
        refused = {name_value: set_parameter(node, "grasp_planner_node", *name_value) for name_value in (
            ("min_probability", 2.0), ("min_probability", math.nan), ("min_range", 5.0),
            ("angle_window", 20), ("top_k", 0), ("model_path", "other.onnx"))}
        still, _ = frame()
        kept = get_parameter(node, "grasp_planner_node", "min_probability")
        assert set_parameter(node, "grasp_planner_node", "min_probability", 1.0).successful
        none, empty = frame(posed=False)
    finally:
        log = stop(planner)
    assert len(five.poses) == 5 and len(one.poses) == 1 and len(still.poses) == 1, log
    assert not none.poses and stamp(none)[0] not in {stamp(m)[0] for m in got["best"]}  # best pose stops
    for (name, value), result in refused.items():
        assert not result.successful and result.reason, (name, value)
    assert "max_range" in refused[("min_range", 5.0)].reason
    assert "18 angle bins" in refused[("angle_window", 20)].reason
    assert kept == 0.0
    # markers: stamped like the image, in its frame, one jaw and one score per candidate, best first
    assert {m.header.frame_id for m in markers.markers} == {"camera_color_optical_frame"}
    assert {stamp(m) for m in markers.markers} == {stamp(five)}
    p = scores(markers)
    assert len(p) == 5 and all(0.0 <= x <= 1.0 for x in p)   # ranked by angle score, so P may not fall
    text = [m for m in markers.markers if m.ns == SCORES]
    assert [m.id for m in text] == [0, 1, 2, 3, 4]                # id = index in ~/candidates
    for pose, marker in zip(five.poses, text):
        assert marker.pose.position.x == pytest.approx(pose.position.x)
    assert scores(empty) == []


def errors(diagnostics, kind: str) -> int:
    """Return the planner's newest errors_<kind> on /diagnostics."""
    for array in reversed(diagnostics):
        for status in array.status:
            if status.name.startswith("grasp_planner_node:"):
                return int({kv.key: kv.value for kv in status.values}.get(f"errors_{kind}", 0))
    return 0


# The depth planner: 64x48 frames, 16 px cells, every cell's P = the depth (m) of its block
# (grasp_models.depth_grasp_map_model), so P = the grasp's z and a test sets each cell's P.
K64 = [60.0, 0.0, 32.0, 0.0, 60.0, 24.0, 0.0, 0.0, 1.0]
BLOCKS = np.array([[0.30, 0.55, 0.90, 0.35],   # columns 0-1 lie left of the optical axis (x < 0),
                   [0.60, 0.30, 0.85, 0.30],   # columns 2-3 right of it
                   [0.30, 0.70, 0.30, 0.80]])


def depth_planner(tmp_path, domain: int, trained_px_per_m=None, **params):
    model = depth_grasp_map_model(tmp_path / "depth_grasp_map.onnx", trained_px_per_m=trained_px_per_m)
    return start_node(NODE, domain, {"model_path": str(model), "image_topic": "/t/image", "depth_topic": "/t/depth",
                                     "camera_info_topic": "/t/info", "min_probability": 0.5, "top_k": 2,
                                     "nms_distance_px": 1.0, "diagnostics_period": 0.2, "publish_overlay": False,
                                     "publish_map": False, **params})


class DepthCamera:
    """This test's RGB-D camera on /t/* (CameraInfo, 32FC1 depth, rgb8 frame) and the planner's outputs."""

    def __init__(self, node):
        self.node = node
        self.stamps = iter(range(9000, 10000))
        self.pubs = {name: node.create_publisher(kind, f"/t/{name}", sensor_qos(depth=5))
                     for name, kind in (("image", Image), ("depth", Image), ("info", CameraInfo))}
        self.got = {"candidates": [], "candidate_scores": [], "best_pose": [], "diagnostics": []}
        self.subs = [node.create_subscription(kind, f"{OUT}/{name}", self.got[name].append, output_qos(100))
                     for name, kind in (("candidates", PoseArray), ("candidate_scores", Float32MultiArray),
                                        ("best_pose", PoseStamped))]
        node.create_subscription(DiagnosticArray, "/diagnostics", self.got["diagnostics"].append, 20)

    def connected(self) -> bool:
        return all(p.get_subscription_count() for p in self.pubs.values()) and \
            all(s.get_publisher_count() for s in self.subs)

    def send(self, blocks: np.ndarray | None) -> int:
        """Publish CameraInfo and (unless None) the depth of ``blocks``, then a frame; return its stamp (sec)."""
        sec = next(self.stamps)
        msgs = {"info": CameraInfo(height=48, width=64, k=K64),
                "image": Image(**encode_image_fields(np.full((48, 64, 3), 128, np.uint8), "rgb8"))}
        if blocks is not None:
            depth = np.repeat(np.repeat(np.asarray(blocks, "<f4"), 16, 0), 16, 1)
            msgs["depth"] = Image(height=48, width=64, encoding="32FC1", step=64 * 4, data=depth.tobytes())
        for name, msg in msgs.items():
            msg.header.stamp.sec, msg.header.frame_id = sec, "camera_color_optical_frame"
            if name != "image":
                self.pubs[name].publish(msg)
        spin_until(self.node, lambda: False, 0.2)  # the depth is in before the frame it belongs to
        self.pubs["image"].publish(msgs["image"])
        return sec

    def plan(self, blocks: np.ndarray, planner) -> tuple[PoseArray, list[float]]:
        """Send frames until one is planned (best effort); its candidates and their scores, which
        come one message for one message (reliable), so the n-th scores belong to the n-th candidates.
        """
        for _ in range(10):
            sec = self.send(blocks)
            if spin_until(self.node, lambda: any(stamp(m) == (sec, 0) for m in self.got["candidates"]), 3, [planner]):
                n = next(i for i, m in enumerate(self.got["candidates"]) if stamp(m) == (sec, 0))
                assert spin_until(self.node, lambda: len(self.got["candidate_scores"]) > n, 5)
                return self.got["candidates"][n], list(self.got["candidate_scores"][n].data)
        raise AssertionError("no frame planned")

    def value(self, key: str) -> str | None:
        """Return the planner's newest diagnostics value ``key``."""
        for array in reversed(self.got["diagnostics"]):
            for status in array.status:
                values = {kv.key: kv.value for kv in status.values}
                if status.name.startswith("grasp_planner_node:") and key in values:
                    return values[key]
        return None


def test_the_workspace_keeps_the_best_grasps_inside_it_with_their_scores(ros, tmp_path):
    """workspace_max x = 0 keeps the left half: the best two there, not the best two overall, and
    ~/candidate_scores gives each one's P in the order of ~/candidates. Bad boxes are refused live.
    """
    domain, node = ros
    camera = DepthCamera(node)
    planner = depth_planner(tmp_path, domain)
    try:
        assert spin_until(node, camera.connected, 60, [planner])
        anywhere = camera.plan(BLOCKS, planner)
        assert set_parameter(node, "grasp_planner_node", "workspace_max", [0.0, 100.0, 100.0]).successful
        left = camera.plan(BLOCKS, planner)
        refused = [set_parameter(node, "grasp_planner_node", name, value) for name, value in (
            ("workspace_max", [0.0, 1.0]), ("workspace_min", [0.0, -100.0, 0.0]),
            ("workspace_min", [0.0, 0.0, math.nan]))]
        still = camera.plan(BLOCKS, planner)
    finally:
        log = stop(planner)
    assert anywhere[1] == pytest.approx([0.90, 0.85], abs=1e-4), log
    assert left[1] == still[1] == pytest.approx([0.70, 0.60], abs=1e-4)
    assert all(p.position.x < 0 for p in left[0].poses + still[0].poses)
    for candidates, p in (anywhere, left, still):  # same count, same order: P = depth = z here
        assert p == pytest.approx([pose.position.z for pose in candidates.poses], abs=1e-4)
    reasons = [r.reason for r in refused]
    assert not any(r.successful for r in refused), reasons
    assert "three finite numbers" in reasons[0] and "three finite numbers" in reasons[2]
    assert "must be below workspace_max on every axis, not on x (0 >= 0)" in reasons[1]


def test_no_grasp_is_published_as_empty_candidates_and_plan_says_why(ros, tmp_path):
    """No cell reaching min_probability, then every grasp outside the workspace: empty ~/candidates
    and ~/candidate_scores for the frame, no ~/best_pose, ~/plan false with the reason, counted.
    """
    domain, node = ros
    camera = DepthCamera(node)
    planner = depth_planner(tmp_path, domain, min_probability=0.95)
    try:
        assert spin_until(node, camera.connected, 60, [planner])
        weak = camera.plan(BLOCKS, planner)
        weak_answer = call(node, f"{OUT}/plan")
        assert set_parameter(node, "grasp_planner_node", "min_probability", 0.5).successful
        assert set_parameter(node, "grasp_planner_node", "workspace_min", [-100.0, -100.0, 5.0]).successful
        outside = camera.plan(BLOCKS, planner)
        outside_answer = call(node, f"{OUT}/plan")
        empty = [m for m in camera.got["candidates"] if not m.poses]
        counted = spin_until(node, lambda: camera.value("frames_without_grasp") == str(len(empty)), 10)
    finally:
        log = stop(planner)
    for candidates, p in (weak, outside):
        assert candidates.poses == [] and p == [], log
    assert camera.got["best_pose"] == []
    assert not weak_answer.success and weak_answer.message == "no grasp with P >= 0.95 (best 0.90)"
    assert not outside_answer.success
    assert outside_answer.message == "no grasp with P >= 0.5 (best 0.90); 6 outside the workspace"
    assert counted and len(empty) >= 4, camera.value("frames_without_grasp")   # two frames, each planned again
    assert camera.value("best_probability") == "0.900"


def test_a_depth_model_plans_each_frame_on_its_depth_and_rejects_frames_without_fresh_depth(ros, tmp_path):
    domain, node = ros
    camera = DepthCamera(node)
    # trained with the table at 200-400 px/m; this camera (fy 60 px, blocks 0.3-0.95 m away) is far below: it says so
    planner = depth_planner(tmp_path, domain, trained_px_per_m=(200.0, 400.0), top_k=1)
    moved = BLOCKS.copy()
    moved[0, 2], moved[2, 0] = 0.3, 0.95   # the best cell moves from pixel (40, 8) to (8, 40)
    try:
        assert spin_until(node, camera.connected, 60, [planner])
        first = camera.plan(BLOCKS, planner)
        second = camera.plan(moved, planner)
        before = int(camera.value("errors_no_depth") or 0)
        for _ in range(10):   # a frame 1 s after the newest depth (depth_max_age 0.1 s), best effort
            stale = camera.send(None)
            if spin_until(node, lambda: int(camera.value("errors_no_depth") or 0) > before, 3, [planner]):
                break
        third = camera.plan(BLOCKS, planner)   # still serving
    finally:
        log = stop(planner)
    for (candidates, p), (u, v, z) in zip((first, second, third), ((40, 8, 0.9), (8, 40, 0.95), (40, 8, 0.9))):
        (pose,) = candidates.poses
        assert (pose.position.x, pose.position.y, pose.position.z) == pytest.approx(
            ((u - 32) / 60 * z, (v - 24) / 60 * z, z), abs=1e-4), log
        assert p == pytest.approx([z], abs=1e-4)
    assert int(camera.value("errors_no_depth")) > before, log
    assert stale not in {stamp(m)[0] for m in camera.got["candidates"]}
    assert "frame rejected: the model takes depth and the newest depth frame is" in log
    assert int(camera.value("frames_beyond_training_scale")) >= 1 and int(camera.value("table_px_per_m")) < 180
    assert "the model was trained at 200-400 px/m" in log


def test_a_depth_model_without_depth_topic_stops_in_one_line(tmp_path):
    from test_startup_errors import assert_one_line, run
    model = depth_grasp_map_model(tmp_path / "depth_grasp_map.onnx")
    result = run(["-m", NODE, "--ros-args", "-p", f"model_path:={model}", "-p", "depth_topic:=''"], 183)
    assert_one_line(result, "grasp_planner_node: ", "parameter 'depth_topic' must name the aligned depth topic: "
                    "this model takes depth as input 'depth' (got '')")


def test_model_of_another_task_is_refused_at_start_up():
    proc = start_node(NODE, 181, {"model_path": str(ROOT / "models" / "tactile_force.onnx")})
    proc.wait(60)
    log = stop(proc)
    assert proc.returncode != 0
    assert "this is a 'tactile_force' model; this node needs a 'grasp_map' model" in log


def test_demo_grasp_part_runs_the_node_and_writes_the_overlay(tmp_path):
    """`tacforce demo`'s grasp part: planner process, frames from the demo, poses projected back
    to pixels and labelled, the overlay saved.
    """
    import subprocess
    import sys

    import cv2

    from rosutil import ros_env
    code = ("import sys; from pathlib import Path; from tacforce_ros.demo import _grasp_demo; "
            f"sys.exit(_grasp_demo(Path({str(tmp_path)!r}), {str(MODEL)!r}, 2))")
    r = subprocess.run([sys.executable, "-c", code], env=ros_env(182), capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [line for line in r.stdout.splitlines() if line.rstrip().endswith(("yes", "no"))]
    assert len(rows) == 2 and "top-1 grasp would hold in" in r.stdout
    overlay = cv2.imread(str(tmp_path / "grasp_overlay.png"))
    assert overlay is not None and overlay.shape == (480, 640, 3)
