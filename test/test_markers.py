"""Grasp markers: one jaw and one score per candidate, ranked, stamped by the caller's header."""
import pytest

from geometry_msgs.msg import Pose
from std_msgs.msg import Header
from visualization_msgs.msg import Marker  # pinned in requirements-ros.txt, a package.xml dependency

from tacforce_ros.perception.grasp_map import Grasp
from tacforce_ros.ros.markers import FORCE, JAWS, SCORES, force_arrow, grasp_markers, scores


def test_jaws_and_scores_per_candidate_after_a_delete_all():
    header = Header(frame_id="cam")
    header.stamp.sec = 42
    poses = [Pose(), Pose()]
    poses[1].position.z = 0.6
    grasps = [Grasp(1, 2, 0.0, 0.9, 0, 0, 0), Grasp(3, 4, 0.5, 0.25, 0, 1, 2)]
    out = grasp_markers(header, list(zip(grasps, poses)), jaw_opening=0.08)
    assert out.markers[0].action == Marker.DELETEALL
    assert [(m.ns, m.id) for m in out.markers[1:]] == [(JAWS, 0), (SCORES, 0), (JAWS, 1), (SCORES, 1)]
    assert all(m.header.stamp.sec == 42 and m.header.frame_id == "cam" for m in out.markers)
    assert scores(out) == [0.9, 0.25]
    jaw = out.markers[3]
    assert jaw.type == Marker.LINE_LIST and len(jaw.points) == 6 and jaw.pose.position.z == 0.6
    assert {round(p.x, 6) for p in jaw.points} == {-0.04, 0.04}            # the jaw opening
    assert out.markers[4].pose.position.z < 0.6                              # text in front, towards the camera
    assert scores(grasp_markers(header, [], 0.08)) == []


def test_force_arrow_points_along_the_force_from_the_frame_origin():
    header = Header(frame_id="ft_sensor")
    header.stamp.sec = 7
    [arrow] = force_arrow(header, [1.0, -2.0, -4.0], metres_per_newton=0.01).markers
    assert (arrow.ns, arrow.id, arrow.type) == (FORCE, 0, Marker.ARROW)
    assert arrow.header.frame_id == "ft_sensor" and arrow.header.stamp.sec == 7
    start, tip = arrow.points
    assert (start.x, start.y, start.z) == (0.0, 0.0, 0.0)
    assert (tip.x, tip.y, tip.z) == pytest.approx((0.01, -0.02, -0.04))
