"""tactile_force_node with real rclpy and DDS: publisher, node and subscriber in separate
processes (the node and the publisher are children; this test process subscribes).
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")  # noqa: E402  (the ROS wheels are part of the test set-up)
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from geometry_msgs.msg import WrenchStamped  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from rosutil import ROOT, probe_node, ros_env, spin_until, start_node, stop  # noqa: E402
from tacforce_ros.ros.qos import output_qos  # noqa: E402

MODEL = ROOT / "models" / "tactile_force.onnx"
NODE = "tacforce_ros.nodes.tactile_force_node"


@pytest.fixture
def ros(request):
    domain = 40 + (abs(hash(request.node.name)) % 50)
    with probe_node(domain) as node:
        yield domain, node


def publish(domain: int, count: int, rate: float, *flags: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "test" / "publish_images.py"), str(count), str(rate), *flags],
                            env=ros_env(domain), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def collect(node):
    got = []
    node.create_subscription(WrenchStamped, "/estimated_wrench", got.append, output_qos(500))
    return got


def send_level(node, pub, server, got, sec: int, level: int) -> None:
    """Publish a 6x4 mono8 frame of one grey level stamped ``sec``; again (best effort) until its wrench is back."""
    from tacforce_ros.perception.image import encode_image_fields
    msg = Image(**encode_image_fields(np.full((4, 6), level, np.uint8), "mono8"))
    msg.header.stamp.sec = sec
    for _ in range(5):
        pub.publish(msg)
        if spin_until(node, lambda: any(m.header.stamp.sec == sec for m in got), 2, [server]):
            return


def test_every_frame_gets_a_wrench_with_its_stamp(ros):
    domain, node = ros
    got, arrows = collect(node), []
    node.create_subscription(MarkerArray, "/tactile_force_node/markers", arrows.append, output_qos(500))
    # a short input queue: a momentary stall under CI load must not drop a frame (1 = newest only)
    server = start_node(NODE, domain, {"model_path": str(MODEL), "frame_id": "tactile_pad", "queue_depth": 5,
                                       "marker_scale": 0.05})
    try:
        assert spin_until(node, lambda: node.count_publishers("/estimated_wrench") > 0, 60, [server])
        assert spin_until(node, lambda: node.count_subscribers("/tactile_force_node/markers") > 0, 10, [server])
        pub = publish(domain, 200, 30.0)
        spin_until(node, lambda: pub.poll() is not None and len(got) >= 200, 60, [server])
        out = pub.communicate(timeout=30)[0]
        spin_until(node, lambda: False, 1.0)
    finally:
        log = stop(server)
    assert "sent 200 good 0 bad" in out, out
    assert len(got) == 200, log
    stamps = [(m.header.stamp.sec, m.header.stamp.nanosec) for m in got]
    assert sorted(stamps) == [(1000 + k, 123) for k in range(200)]
    assert {m.header.frame_id for m in got} == {"tactile_pad"}
    forces = np.array([[m.wrench.force.x, m.wrench.force.y, m.wrench.force.z] for m in got])
    assert np.isfinite(forces).all()
    assert all(m.wrench.torque.x == m.wrench.torque.y == m.wrench.torque.z == 0.0 for m in got)
    # the rviz arrow of each answer: same stamp and frame, from the origin to 0.05 m/N x F
    by_stamp = {(m.header.stamp.sec, m.header.stamp.nanosec): m.wrench.force for m in got}
    assert len(arrows) >= 190, log  # best effort on the probe's side, like any topic
    for arrow in (a.markers[0] for a in arrows):
        force = by_stamp[(arrow.header.stamp.sec, arrow.header.stamp.nanosec)]
        assert arrow.type == Marker.ARROW and arrow.header.frame_id == "tactile_pad"
        tip = arrow.points[1]
        assert (tip.x, tip.y, tip.z) == pytest.approx((0.05 * force.x, 0.05 * force.y, 0.05 * force.z))


@pytest.mark.parametrize("transport", ["raw", "compressed"])
def test_bad_frames_are_rejected_and_good_ones_still_served(ros, transport):
    domain, node = ros
    got = collect(node)
    diagnostics = []
    node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    server = start_node(NODE, domain, {"model_path": str(MODEL), "diagnostics_period": 0.5,
                                       "image_transport": transport})
    try:
        assert spin_until(node, lambda: node.count_publishers("/estimated_wrench") > 0, 60, [server])
        # 15 Hz: every good frame must come back, so leave the node slack on a loaded machine
        pub = publish(domain, 80, 15.0, "--bad", *(["--compressed"] if transport == "compressed" else []))
        spin_until(node, lambda: pub.poll() is not None and len(got) >= 60, 60, [server])
        out = pub.communicate(timeout=30)[0]
        seen = len(diagnostics)  # reports made after every frame was handled
        spin_until(node, lambda: len(diagnostics) >= max(3, seen + 2), 10, [server])
        assert server.poll() is None, "node died on bad input"
        tare, reset = (node.create_client(Trigger, f"/tactile_force_node/{s}") for s in ("tare", "reset"))
        results = []
        for client in (tare, reset):
            assert client.wait_for_service(timeout_sec=10)
            future = client.call_async(Trigger.Request())
            spin_until(node, future.done, 10)
            results.append(future.result())
    finally:
        log = stop(server)
    assert "sent 60 good 20 bad" in out, out
    assert len(got) == 60
    assert all(m.header.stamp.sec % 4 != 3 for m in got)
    assert "frame rejected" in log
    values = {kv.key: kv.value for d in diagnostics for s in d.status for kv in s.values}
    assert int(values["errors_image"]) + int(values.get("errors_shape", 0)) == 20
    assert "provider" in values and float(values["rate_hz"]) > 0
    assert results[0].success and "tared" in results[0].message
    assert results[1].success


def test_colour_frames_reach_a_mono8_model_as_grey(ros):
    """README: mono8, rgb8 and bgr8 frames are all taken. A grey picture sent as rgb8 or bgr8
    (three equal channels) must give exactly the force of the same picture as mono8.
    """
    from tacforce_ros.perception.image import encode_image_fields
    from tacforce_ros.ros.qos import sensor_qos
    from tacforce_ros.sim.sensors import SimConfig, SimulatedSensors
    domain, node = ros
    got = collect(node)
    grey = SimulatedSensors(SimConfig(indenters=("cone",), positions=1, shear_points=2)).image(1.5)[0]
    frames = {"mono8": grey, "rgb8": np.repeat(grey[..., None], 3, 2), "bgr8": np.repeat(grey[..., None], 3, 2)}
    server = start_node(NODE, domain, {"model_path": str(MODEL)})
    forces = {}
    try:
        pub = node.create_publisher(Image, "/tactile/image_raw", sensor_qos(depth=5))
        reset = node.create_client(Trigger, "/tactile_force_node/reset")
        assert spin_until(node, lambda: pub.get_subscription_count() > 0, 60, [server])
        assert reset.wait_for_service(timeout_sec=30)
        for sec, (encoding, frame) in enumerate(frames.items(), 3000):
            future = reset.call_async(Trigger.Request())   # the same recurrent state for each
            assert spin_until(node, future.done, 10, [server])
            msg = Image(**encode_image_fields(frame, encoding))
            msg.header.stamp.sec = sec
            answer = []
            for _ in range(5):  # best effort: send again if it was lost
                pub.publish(msg)
                if spin_until(node, lambda: answer.extend(m for m in got if m.header.stamp.sec == sec) or answer,
                              2, [server]):
                    break
            assert answer, encoding
            forces[encoding] = [answer[0].wrench.force.x, answer[0].wrench.force.y, answer[0].wrench.force.z]
    finally:
        log = stop(server)
    assert forces["rgb8"] == pytest.approx(forces["mono8"], abs=1e-6), log
    assert forces["bgr8"] == pytest.approx(forces["mono8"], abs=1e-6), log


@pytest.mark.parametrize("content, expected", [
    (None, "model file not found"),
    (b"\x08\x01garbage that is not a protobuf", "cannot load model"),
])
def test_unusable_model_stops_start_up_naming_the_file(tmp_path, content, expected):
    path = tmp_path / "model.onnx"
    if content is not None:
        path.write_bytes(content)
    proc = start_node(NODE, 99, {"model_path": str(path)})
    proc.wait(60)
    log = stop(proc)
    assert proc.returncode != 0
    assert str(path) in log and expected in log


def test_model_of_another_task_is_refused_at_start_up(tmp_path):
    from test_runtime import build, metadata
    path = build(tmp_path / "grasp.onnx", metadata(task="grasp_map"))
    proc = start_node(NODE, 98, {"model_path": str(path)})
    proc.wait(60)
    log = stop(proc)
    assert proc.returncode != 0
    assert f"{path}: this is a 'grasp_map' model; this node needs a 'tactile_force' model" in log


def test_tacforce_run_starts_sim_and_perception_from_the_yaml(ros):
    """`tacforce run --sim`: both nodes in one process from config/*.yaml, no ros2 launch."""
    domain, node = ros
    got = collect(node)
    proc = subprocess.Popen([sys.executable, "-m", "tacforce_ros.cli", "run", "--sim"], env=ros_env(domain),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        arrived = spin_until(node, lambda: len(got) >= 20, 60, [proc])
    finally:
        log = stop(proc)
    assert arrived, f"{len(got)} wrenches in 60 s:\n{log}"
    # the frame of the wrenches the shipped model was trained on (its metadata; config/frames.yaml)
    assert {m.header.frame_id for m in got} == {"ft_sensor"}, log
    assert all(np.isfinite([m.wrench.force.x, m.wrench.force.y, m.wrench.force.z]).all() for m in got)


def test_estimates_beyond_the_trained_range_are_published_and_flagged_on_diagnostics(ros, tmp_path):
    """A harder press than any in training still gets its wrench, and /diagnostics says it was extrapolated."""
    from test_runtime import build, metadata
    from tacforce_ros.ros.qos import sensor_qos
    domain, node = ros
    # the test graph's force is [mean(image), sum of its state (grows each frame), 1]
    training = {"train_force_min": [0.0, -1.0, 0.0], "train_force_max": [100.0, 1e6, 2.0]}
    model = build(tmp_path / "m.onnx", metadata(training=training))
    got, reports = collect(node), []
    node.create_subscription(DiagnosticArray, "/diagnostics", reports.append, 50)
    server = start_node(NODE, domain, {"model_path": str(model), "diagnostics_period": 0.2})
    try:
        pub = node.create_publisher(Image, "/tactile/image_raw", sensor_qos(depth=5))
        assert spin_until(node, lambda: pub.get_subscription_count() > 0, 60, [server])
        for sec, level in enumerate([50] * 3 + [250] * 2, 4000):    # mean 250 > the trained 100
            send_level(node, pub, server, got, sec, level)
        spin_until(node, lambda: False, 1.0)
    finally:
        log = stop(server)
    forces = {m.header.stamp.sec: m.wrench.force.x for m in got}
    assert [forces.get(s) for s in range(4000, 4005)] == [50.0] * 3 + [250.0] * 2, log  # published, not clipped
    values = [{kv.key: kv.value for kv in s.values} for d in reports for s in d.status]
    assert values[-1]["frames_out_of_trained_range"] == "2", values[-1]
    assert values[-1]["trained_force_range"] == "Fx [0, 100], Fy [-1, 1e+06], Fz [0, 2] N"
    warnings = [s.message for d in reports for s in d.status if s.level == DiagnosticStatus.WARN]
    assert any("Fx 250 N is beyond the trained range [0, 100] N (extrapolated)" in w for w in warnings), warnings
    assert "Fx 250 N is beyond the trained range" in log      # and the node's log says it


def test_reference_is_captured_recaptured_on_request_and_flags_unlike_inputs(ros, tmp_path):
    """A reference model: the first frames become the no-contact reference, ~/capture_reference takes it anew,
    and a frame unlike any training frame is published and flagged on /diagnostics.
    """
    from test_runtime import build, metadata
    from tacforce_ros.inference.contract import InputSpec
    from tacforce_ros.ros.qos import sensor_qos
    domain, node = ros
    # the test graph's force is [mean(image) - mean(reference), sum of its state, 1]
    meta = metadata(input=InputSpec("image", 4, 6, 1, "mono8", reference="reference"),
                    training={"input_channel_means": {"min": [20.0], "max": [90.0]}})
    model = build(tmp_path / "ref.onnx", meta, reference=True)
    got, reports = collect(node), []
    node.create_subscription(DiagnosticArray, "/diagnostics", reports.append, 50)
    server = start_node(NODE, domain, {"model_path": str(model), "diagnostics_period": 0.2, "reference_frames": 2})
    client = node.create_client(Trigger, "/tactile_force_node/capture_reference")
    pub = node.create_publisher(Image, "/tactile/image_raw", sensor_qos(depth=5))

    try:
        assert spin_until(node, lambda: pub.get_subscription_count() > 0 and client.service_is_ready(), 60, [server])
        for sec, level in enumerate([30, 50, 70], 100):      # reference: 30, then the mean of 30 and 50
            send_level(node, pub, server, got, sec, level)
        future = client.call_async(Trigger.Request())
        assert spin_until(node, future.done, 10, [server]) and future.result().success
        for sec, level in enumerate([60, 60, 80, 250], 200):   # reference anew: 60
            send_level(node, pub, server, got, sec, level)
        spin_until(node, lambda: False, 1.0)
    finally:
        log = stop(server)
    forces = {m.header.stamp.sec: m.wrench.force.x for m in got}
    assert [forces.get(s) for s in (100, 101, 102)] == [0.0, 10.0, 30.0], log
    assert [forces.get(s) for s in (200, 201, 202, 203)] == [0.0, 0.0, 20.0, 190.0], log
    values = [{kv.key: kv.value for kv in s.values} for d in reports for s in d.status]
    assert values[-1]["reference"] == "mean of 2 captured frame(s)"
    assert values[-1]["frames_unlike_training_inputs"] == "1"
    warnings = [s.message for d in reports for s in d.status if s.level == DiagnosticStatus.WARN]
    assert any("unlike the training frames: input channel means [250]" in w for w in warnings), warnings


@pytest.mark.parametrize("setting, expected", [
    ("missing.png", "parameter 'reference_image': {tmp}/missing.png: no such file"),
    ("small.png", "parameter 'reference_image': model expects 6x4 images, got 3x2"),
])
def test_bad_reference_image_stops_start_up_naming_the_parameter(tmp_path, setting, expected):
    import cv2
    from test_runtime import build, metadata
    from tacforce_ros.inference.contract import InputSpec
    cv2.imwrite(str(tmp_path / "small.png"), np.zeros((2, 3), np.uint8))
    meta = metadata(input=InputSpec("image", 4, 6, 1, "mono8", reference="reference"))
    model = build(tmp_path / "ref.onnx", meta, reference=True)
    proc = start_node(NODE, 97, {"model_path": str(model), "reference_image": str(tmp_path / setting)})
    proc.wait(60)
    log = stop(proc)
    assert proc.returncode == 1 and expected.format(tmp=tmp_path) in log and "Traceback" not in log, log
