"""The shared node guards in tacforce_ros/ros: parameter declaration with ranges, unknown names,
stamp and finite-output checks (an in-process rclpy node, no DDS traffic).
"""
from __future__ import annotations

import math

import pytest

rclpy = pytest.importorskip("rclpy")  # noqa: E402  (the ROS wheels are part of the test set-up)
from builtin_interfaces.msg import Time  # noqa: E402
from geometry_msgs.msg import Pose, PoseArray, WrenchStamped  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Float32  # noqa: E402

from tacforce_ros.perception.stats import StageStats  # noqa: E402
from tacforce_ros.ros.checks import non_finite_field, publish_finite, stamp_problem  # noqa: E402
from tacforce_ros.ros.params import declare, optional_topic, refuse_unknown, topic  # noqa: E402


@pytest.fixture(scope="module")
def context():
    ctx = rclpy.Context()
    ctx.init(domain_id=229)
    yield ctx
    ctx.shutdown()


@pytest.fixture
def make_node(context):
    nodes = []

    def make(**overrides):
        node = rclpy.create_node("checked_node", context=context, parameter_overrides=[
            Parameter(name, value=value) for name, value in overrides.items()])
        nodes.append(node)
        return node
    yield make
    for node in nodes:
        node.destroy_node()


def refusal(call) -> str:
    with pytest.raises(SystemExit) as info:
        call()
    return str(info.value.code)


def test_values_inside_the_limits_and_the_descriptor_carry_them(make_node):
    node = make_node(period=0.5, depth=100)
    assert declare(node, "period", 1.0, "s", limits=(0.05, 10.0)) == 0.5
    assert declare(node, "depth", 1, "frames", limits=(1, 100)) == 100   # ends are allowed
    described = node.describe_parameter("period")
    assert (described.floating_point_range[0].from_value, described.floating_point_range[0].to_value) == (0.05, 10.0)
    assert node.describe_parameter("depth").integer_range[0].to_value == 100


@pytest.mark.parametrize("default, value, limits, expected", [
    (1.0, 0.0, (0.05, 10.0), "checked_node: parameter 'p' must be in [0.05, 10.0] (got 0.0)"),
    (1.0, math.nan, (0.05, 10.0), "checked_node: parameter 'p' must be in [0.05, 10.0] (got nan)"),
    (1.0, math.inf, None, "checked_node: parameter 'p' must be finite (got inf)"),
    ([0.0, 1.0], [0.0, math.nan], None, "checked_node: parameter 'p' must be finite (got [0.0, nan])"),
    (5, 0, (1, 100), "checked_node: parameter 'p' must be in [1, 100] (got 0)"),
    (5, "abc", (1, 100), "checked_node: parameter 'p' must be an integer (got 'abc')"),
    (1.0, 1, None, "checked_node: parameter 'p' must be a double (write 1 as 1.0) (got 1)"),
    (["cpu"], "cpu", None, "checked_node: parameter 'p' must be a list of strings (got 'cpu')"),
])
def test_bad_values_stop_in_one_line(make_node, default, value, limits, expected):
    node = make_node(p=value)
    assert refusal(lambda: declare(node, "p", default, "test", limits=limits)) == expected


def test_choices_and_checks(make_node):
    node = make_node(transport="theora", topic="bad topic!", depth_topic="", rel="~/x", sub="{node}/x")
    assert refusal(lambda: declare(node, "transport", "raw", "t", choices=("raw", "compressed"))) == \
        "checked_node: parameter 'transport' must be one of 'raw', 'compressed' (got 'theora')"
    assert "parameter 'topic' is not a valid topic name: topic name must not contain characters" in \
        refusal(lambda: declare(node, "topic", "/x", "t", check=topic))
    assert declare(node, "depth_topic", "/d", "t", check=optional_topic) == ""
    assert declare(node, "rel", "/x", "t", check=topic) == "~/x"
    assert declare(node, "sub", "/x", "t", check=topic) == "{node}/x"


def test_unknown_names_are_refused_with_a_suggestion(make_node):
    node = make_node(max_image_pixel=10, use_sim_time=False)
    declare(node, "max_image_pixels", 100, "px")
    assert refusal(lambda: refuse_unknown(node)) == \
        "checked_node: unknown parameter 'max_image_pixel' (did you mean 'max_image_pixels'?)"
    ok = make_node(max_image_pixels=10, use_sim_time=True)   # rclpy's own parameters are known
    declare(ok, "max_image_pixels", 100, "px")
    refuse_unknown(ok)


def test_stamps():
    assert stamp_problem(Time(sec=10, nanosec=999_999_999)) is None
    assert "nanosec 1000000000" in stamp_problem(Time(sec=10, nanosec=1_000_000_000))
    assert "sec -1 is negative" in stamp_problem(Time(sec=-1))


def test_non_finite_fields_are_found_anywhere_in_a_message():
    wrench = WrenchStamped()
    assert non_finite_field(wrench) is None
    wrench.wrench.force.y = math.nan
    assert non_finite_field(wrench) == "wrench.force.y"
    poses = PoseArray(poses=[Pose(), Pose()])
    poses.poses[1].position.z = -math.inf
    assert non_finite_field(poses) == "poses[1].position.z"
    assert non_finite_field(Float32(data=math.inf)) == "data"
    assert non_finite_field(Image(data=bytes(100))) is None


def test_publish_finite_counts_and_drops(make_node):
    node = make_node()
    sent = []
    publisher = type("P", (), {"topic_name": "/out", "publish": lambda self, m: sent.append(m)})()
    stats = StageStats()
    assert publish_finite(node, publisher, Float32(data=1.0), stats)
    assert not publish_finite(node, publisher, Float32(data=math.nan), stats)
    assert len(sent) == 1 and stats.errors["non_finite"] == 1
