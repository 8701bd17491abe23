"""Rviz markers: grasp candidates that also carry their scores (a PoseArray has no field for
them), and the estimated contact force as an arrow.

For candidate k (rank k, best = 0, the same order and count as ~/candidates' poses):
  ns "grasp_jaws",   id k: LINE_LIST at the grasp pose, the gripper's closing line across the
                           jaw opening with both fingers pointing back towards the camera;
                           colour from red (P = 0) to green (P = 1)
  ns "grasp_scores", id k: TEXT_VIEW_FACING just in front of the grasp, text = P(success) as a
                           plain number ("0.873"), so ``float(marker.text)`` reads it back
A DELETEALL marker comes first, so a frame with fewer candidates leaves no stale ones in rviz.

The force: ns "force", id 0, an ARROW from the frame's origin to ``metres_per_newton`` x F, in
the wrench's frame and stamp (rviz's own Wrench display draws the same from the WrenchStamped,
but a MarkerArray also shows in tools that only take markers).
"""
from __future__ import annotations

from geometry_msgs.msg import Point, Pose
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from ..perception.grasp_map import Grasp

JAWS, SCORES, FORCE = "grasp_jaws", "grasp_scores", "force"
FINGER_M = 0.04     # drawn finger length, towards the camera (optical -z)
LINE_M = 0.004      # line width
TEXT_M = 0.02       # text height


def grasp_markers(header, candidates: list[tuple[Grasp, Pose]], jaw_opening: float) -> MarkerArray:
    """Markers for (grasp, pose) pairs, best first, stamped and framed by ``header``."""
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    for rank, (grasp, pose) in enumerate(candidates):
        markers.append(_jaws(header, rank, grasp.probability, pose, jaw_opening))
        markers.append(_score(header, rank, grasp.probability, pose))
    return MarkerArray(markers=markers)


def scores(markers: MarkerArray) -> list[float]:
    """Return the candidates' P(success), best first, read back from `grasp_markers`' output."""
    texts = sorted((m.id, m.text) for m in markers.markers if m.ns == SCORES and m.action == Marker.ADD)
    return [float(text) for _, text in texts]


def _jaws(header, rank: int, probability: float, pose: Pose, opening: float) -> Marker:
    half = opening / 2
    points = [(-half, 0.0, 0.0), (half, 0.0, 0.0),                 # closing line
              (-half, 0.0, 0.0), (-half, 0.0, -FINGER_M),          # fingers, towards the camera
              (half, 0.0, 0.0), (half, 0.0, -FINGER_M)]
    marker = Marker(header=header, ns=JAWS, id=rank, type=Marker.LINE_LIST, action=Marker.ADD, pose=pose,
                    points=[Point(x=x, y=y, z=z) for x, y, z in points],
                    color=ColorRGBA(r=1.0 - probability, g=probability, b=0.0, a=1.0))
    marker.scale.x = LINE_M
    return marker


def _score(header, rank: int, probability: float, pose: Pose) -> Marker:
    marker = Marker(header=header, ns=SCORES, id=rank, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD,
                    text=f"{probability:.3f}", color=ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0))
    marker.pose.position = Point(x=pose.position.x, y=pose.position.y, z=pose.position.z - FINGER_M - 0.01)
    marker.pose.orientation.w = 1.0
    marker.scale.z = TEXT_M
    return marker


def force_arrow(header, force, metres_per_newton: float) -> MarkerArray:
    """Draw ``force`` (N, three finite values) as one arrow from the origin of ``header``'s frame."""
    tip = Point(x=float(force[0]) * metres_per_newton, y=float(force[1]) * metres_per_newton,
                z=float(force[2]) * metres_per_newton)
    marker = Marker(header=header, ns=FORCE, id=0, type=Marker.ARROW, action=Marker.ADD, points=[Point(), tip],
                    color=ColorRGBA(r=1.0, g=0.5, b=0.0, a=1.0))
    marker.pose.orientation.w = 1.0
    marker.scale.x, marker.scale.y, marker.scale.z = LINE_M, 2 * LINE_M, 3 * LINE_M  # shaft, head width, head
    return MarkerArray(markers=[marker])
