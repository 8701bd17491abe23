"""grasp_success_node with real rclpy and DDS: the node and the frame publisher are child
processes; this test process subscribes and calls the service.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

rclpy = pytest.importorskip("rclpy")  # noqa: E402  (the ROS wheels are part of the test set-up)
import math  # noqa: E402

import numpy as np  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Bool, Float32  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from grasp_models import brightness_model  # noqa: E402
from live_params import set_parameter  # noqa: E402
from rosutil import ROOT, probe_node, ros_env, spin_until, start_node, stop  # noqa: E402
from tacforce_ros.perception.grasp_success import MajorityDebouncer  # noqa: E402
from tacforce_ros.ros.qos import output_qos, sensor_qos  # noqa: E402

NODE = "tacforce_ros.nodes.grasp_success_node"
SHIPPED = ROOT / "models" / "grasp_success.onnx"
BRIGHT, DARK = 230 / 255, 25 / 255


@pytest.fixture
def ros(request):
    domain = {"test_camera_encodings_reach_the_model_in_its_channel_order": 90,
              "test_probability_and_debounced_decision": 91,
              "test_bad_frames_are_counted_and_the_node_keeps_serving": 92,
              "test_shipped_model_on_held_out_synthetic_frames": 93,
              "test_stamped_result_and_live_threshold": 96}[request.node.name.split("[")[0]]
    with probe_node(domain, "grasp_probe") as node:
        yield domain, node


def publish(domain: int, pattern: str, rate: float, *flags: str) -> subprocess.Popen:
    script = str(ROOT / "test" / "publish_grasp_frames.py")
    return subprocess.Popen([sys.executable, script, pattern, str(rate), *flags],
                            env=ros_env(domain), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def subscribe(node):
    probs, held = [], []
    node.create_subscription(Float32, "/grasp_success/probability", lambda m: probs.append(m.data), output_qos(500))
    node.create_subscription(Bool, "/grasp_success/held", lambda m: held.append(m.data), output_qos(500))
    return probs, held


def call(node, name: str) -> Trigger.Response:
    client = node.create_client(Trigger, f"/grasp_success_node/{name}")
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(Trigger.Request())
    assert spin_until(node, future.done, 10)
    return future.result()


def test_probability_and_debounced_decision(ros, tmp_path):
    domain, node = ros
    model = brightness_model(tmp_path / "bright.onnx")
    probs, held = subscribe(node)
    server = start_node(NODE, domain, {"model_path": str(model), "window": 10, "min_frames": 3, "max_age": 1.0})
    try:
        assert spin_until(node, lambda: node.count_publishers("/grasp_success/held") > 0, 60, [server])
        first = call(node, "check")            # no frames yet
        pub = publish(domain, "bright:12,dark:40", 10.0)
        assert spin_until(node, lambda: sum(p < 0.5 for p in probs) >= 20, 60, [server])
        during = call(node, "check")           # while dark frames stream
        out = pub.communicate(timeout=30)[0]
        spin_until(node, lambda: False, 2.0)   # let the last frames age past max_age
        stale = call(node, "check")
        reset = call(node, "reset")
    finally:
        log = stop(server)
    assert "sent 52 good 0 bad" in out, out
    assert len(probs) >= 45, log                                    # best-effort: a few may drop under load
    assert all(abs(p - BRIGHT) < 1e-6 or abs(p - DARK) < 1e-6 for p in probs)
    assert probs[0] == pytest.approx(BRIGHT) and probs[-1] == pytest.approx(DARK)
    # the Bool stream is the majority vote over the probability stream, from the 3rd frame on
    debouncer = MajorityDebouncer(10, 0.5, 3)
    expected = [v.held for v in (debouncer.push(p) for p in probs) if v.held is not None]
    assert held == expected
    flip = held.index(False)
    assert all(held[:flip]) and not any(held[flip:])
    dark_before_flip = sum(p < 0.5 for p in probs[:flip + 2])
    assert dark_before_flip >= 4                                    # debounced: not on the first dark frame
    assert not first.success and first.message.startswith("unknown")
    assert not during.success and during.message.startswith("not held: p=0.098")
    assert "10/10" not in during.message and "/10 recent frames held" in during.message
    assert not stale.success and "unknown: 0 frame(s) in the last 1 s" in stale.message
    assert reset.success


def test_bad_frames_are_counted_and_the_node_keeps_serving(ros, tmp_path):
    domain, node = ros
    model = brightness_model(tmp_path / "bright.onnx")
    probs, held = subscribe(node)
    diagnostics = []
    node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    # every frame queued (the default keeps only the newest): the counts below must be exact under load
    server = start_node(NODE, domain, {"model_path": str(model), "diagnostics_period": 0.5, "max_age": 30.0,
                                       "queue_depth": 50})
    try:
        assert spin_until(node, lambda: node.count_publishers("/grasp_success/held") > 0, 60, [server])
        pub = publish(domain, "bright:48", 15.0, "--bad")
        spin_until(node, lambda: pub.poll() is not None and len(probs) >= 36, 60, [server])
        out = pub.communicate(timeout=30)[0]
        seen = len(diagnostics)  # reports made after every frame was handled
        spin_until(node, lambda: len(diagnostics) >= max(3, seen + 2), 10, [server])
        assert server.poll() is None, "node died on bad input"
        answer = call(node, "check")
    finally:
        log = stop(server)
    assert "sent 36 good 12 bad" in out, out
    assert "frame rejected" in log
    assert all(abs(p - BRIGHT) < 1e-6 for p in probs[:36])
    values = {kv.key: kv.value for d in diagnostics for s in d.status for kv in s.values}
    assert int(values["errors_image"]) + int(values.get("errors_shape", 0)) == 12
    assert int(values["errors_shape"]) == 2                         # the two 12x10 frames
    assert float(values["rate_hz"]) > 0 and "provider" in values
    assert answer.success and answer.message.startswith("held: p=0.902")


@pytest.mark.parametrize("transport", ["raw", "compressed"])
def test_camera_encodings_reach_the_model_in_its_channel_order(ros, tmp_path, transport):
    """The model averages the red channel only: rgb8, bgr8 and PNG frames of a red scene must
    all give 230/255 (a swapped order would give 25/255).
    """
    domain, node = ros
    model = brightness_model(tmp_path / "red.onnx", channel=0)
    probs, _ = subscribe(node)
    server = start_node(NODE, domain, {"model_path": str(model), "image_transport": transport})
    seen = {}
    try:
        assert spin_until(node, lambda: node.count_publishers("/grasp_success/held") > 0, 60, [server])
        for encoding in ("rgb8", "bgr8"):
            before = len(probs)
            flags = ["--encoding", encoding] + (["--compressed"] if transport == "compressed" else [])
            pub = publish(domain, "red:6", 15.0, *flags)
            spin_until(node, lambda: pub.poll() is not None and len(probs) >= before + 6, 30, [server])
            assert "sent 6 good 0 bad" in pub.communicate(timeout=30)[0]
            seen[encoding] = probs[before:]
    finally:
        log = stop(server)
    for encoding, values in seen.items():
        assert len(values) >= 4, log
        assert all(v == pytest.approx(BRIGHT) for v in values), (encoding, values)


def test_shipped_model_on_held_out_synthetic_frames(ros):
    domain, node = ros
    probs, held = subscribe(node)
    server = start_node(NODE, domain, {"model_path": str(SHIPPED), "max_age": 30.0})
    answers = []
    try:
        assert spin_until(node, lambda: node.count_publishers("/grasp_success/held") > 0, 60, [server])
        for pattern in ("held:15", "failure:15"):
            before = len(probs)
            pub = publish(domain, pattern, 10.0, "--size", "160x120", "--seed", "7")
            spin_until(node, lambda: pub.poll() is not None and len(probs) >= before + 12, 60, [server])
            pub.communicate(timeout=30)
            spin_until(node, lambda: False, 0.5)
            answers.append(call(node, "check"))
    finally:
        log = stop(server)
    assert len(probs) >= 24, log
    assert answers[0].success and answers[0].message.startswith("held"), answers[0].message
    assert not answers[1].success and answers[1].message.startswith("not held"), answers[1].message
    assert held[-1] is False


def test_stamped_result_and_live_threshold(ros, tmp_path):
    """~result carries each frame's stamp and frame_id with P and the decision; threshold and
    window set at run time change the decision, bad values are refused and change nothing.
    """
    domain, node = ros
    model = brightness_model(tmp_path / "bright.onnx")
    results = []
    node.create_subscription(DiagnosticArray, "/grasp_success/result", results.append, output_qos(500))
    server = start_node(NODE, domain, {"model_path": str(model), "window": 3, "min_frames": 1})
    pub = node.create_publisher(Image, "/grasp_camera/image_raw", sensor_qos(depth=5))
    frame = Image(height=48, width=64, encoding="rgb8", step=64 * 3,
                  data=np.full((48, 64, 3), 153, np.uint8).tobytes())      # P(held) = 0.6
    sent = iter(range(3000, 4000))

    def result() -> dict:
        """Send frames until one is answered; that answer's values, stamp and frame_id."""
        for _ in range(20):
            sec = next(sent)
            frame.header.stamp.sec, frame.header.stamp.nanosec, frame.header.frame_id = sec, 77, "grasp_cam"
            pub.publish(frame)
            if spin_until(node, lambda: any(r.header.stamp.sec == sec for r in results), 3, [server]):
                r = next(r for r in results if r.header.stamp.sec == sec)
                return {**{kv.key: kv.value for kv in r.status[0].values}, "message": r.status[0].message,
                        "stamp": (r.header.stamp.sec, r.header.stamp.nanosec), "frame": r.header.frame_id,
                        "sent": (sec, 77)}
        raise AssertionError("no result")
    try:
        assert spin_until(node, lambda: pub.get_subscription_count() > 0, 60, [server])
        before = result()
        assert set_parameter(node, "grasp_success_node", "threshold", 0.7).successful
        raised = [result() for _ in range(3)]     # the window of 3 fills with 'not held' votes
        refused = [set_parameter(node, "grasp_success_node", name, value) for name, value in (
            ("threshold", math.nan), ("threshold", 1.0), ("window", 0), ("min_frames", 5),
            ("probability_topic", "/x"))]
        after = result()
    finally:
        log = stop(server)
    for r in (before, *raised, after):
        assert r["stamp"] == r["sent"] and r["frame"] == "grasp_cam"           # the input's stamp
        assert float(r["probability"]) == pytest.approx(0.6)
    assert before["held"] == "true" and before["message"] == "held", log
    assert raised[-1]["held"] == "false" and raised[-1]["message"] == "not held"
    assert not any(r.successful for r in refused) and all(r.reason for r in refused)
    assert "min_frames must be in 1..window (3)" in refused[3].reason
    assert after["held"] == "false" and after["frames"] == "3"                # threshold and window kept


@pytest.mark.parametrize("content, expected", [
    (None, "model file not found"),
    (b"\x08\x01garbage that is not a protobuf", "cannot load model"),
])
def test_unusable_model_stops_start_up_naming_the_file(tmp_path, content, expected):
    path = tmp_path / "model.onnx"
    if content is not None:
        path.write_bytes(content)
    proc = start_node(NODE, 94, {"model_path": str(path)})
    proc.wait(60)
    log = stop(proc)
    assert proc.returncode != 0
    assert str(path) in log and expected in log


def test_model_of_another_task_and_bad_parameters_are_refused(tmp_path):
    path = brightness_model(tmp_path / "force.onnx", task="tactile_force")
    proc = start_node(NODE, 95, {"model_path": str(path)})
    proc.wait(60)
    log = stop(proc)
    assert proc.returncode != 0
    assert f"{path}: this is a 'tactile_force' model; this node needs a 'grasp_success' model" in log
    good = brightness_model(tmp_path / "good.onnx")
    proc = start_node(NODE, 95, {"model_path": str(good), "window": 4, "min_frames": 6})
    proc.wait(60)
    log = stop(proc)
    assert proc.returncode != 0 and "min_frames must be in 1..window (4)" in log
