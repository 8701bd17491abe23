"""A Robotiq 2F-85-sized parallel-jaw gripper and one grasp trial: descend, close, lift, shake.

The gripper is built in code: a palm and two box fingers on prismatic joints along the gripper's
x axis (the closing axis). Its frame's origin is the centre between the fingertips; z points up
(the fingers hang below the palm). It is moved kinematically by a fixed constraint with a
bounded force (the arm), so it stops when it pushes on something hard enough; the fingers close
under position control with a bounded force (the grip force).

Success: after the lift and the shake an object is at least ``success_lift_m`` above where it
rested and touches both fingers (it is held between them, not balanced on the palm or lying on
another lifted object).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...perception.grasp_map import depth_at
from .scene import TIME_STEP, BuiltScene, Camera, Lighting, angle_to_yaw, render_view

PARK = (3.0, 3.0, 1.0)  # where the gripper waits while the top-down camera looks


@dataclass(frozen=True)
class GripperConfig:
    """Robotiq 2F-85-like geometry and the trial's motion (SI units)."""

    max_opening_m: float = 0.085
    finger_width_m: float = 0.022  # across the closing line
    finger_thickness_m: float = 0.010  # along the closing line
    finger_length_m: float = 0.05
    finger_friction: float = 1.0  # silicone pads; Bullet multiplies it with the object's 0.5-1.0
    grip_force_n: float = 40.0  # per finger; a 2F-85 grips with 20-235 N
    close_speed_m_s: float = 0.1  # per finger (2F-85: 20-150 mm/s)
    arm_force_n: float = 150.0  # the constraint moving the gripper
    grasp_depth_m: float = 0.03  # fingertips go this far below the surface seen at the grasp centre
    min_tip_height_m: float = 0.004  # ... but never lower above the table
    approach_m: float = 0.12  # start of the descent above the fingertip target
    speed_m_s: float = 0.3
    lift_m: float = 0.15
    shake_m: float = 0.03  # lateral amplitude
    shake_rad: float = 0.35  # yaw amplitude
    shake_cycles: int = 2
    success_lift_m: float = 0.08
    after_view_size: tuple[int, int] = (320, 240)  # (width, height) of the after-grasp view

    def __post_init__(self) -> None:
        for name in ("max_opening_m", "finger_width_m", "finger_thickness_m", "finger_length_m", "grip_force_n",
                     "close_speed_m_s", "arm_force_n", "speed_m_s", "lift_m", "success_lift_m"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.success_lift_m >= self.lift_m:
            raise ValueError(f"success_lift_m ({self.success_lift_m}) must be below lift_m ({self.lift_m})")


@dataclass(frozen=True)
class GraspPose:
    """Fingertip centre (world, m) and gripper yaw (rad about world z, closing axis)."""

    x: float
    y: float
    z: float
    yaw: float


@dataclass
class TrialOutcome:
    success: bool
    held_body: int | None  # the body held (index into BuiltScene.bodies), or None
    lift_m: float  # highest rise of any object at the end
    blocked: bool  # the descent stopped early (a finger landed on something)
    unstable: bool  # an object flew off or fell through the table (physics blew up)
    held_after_lift: bool = False  # held before the shake (held_after_lift and not success: shaken out)
    after_rgb: np.ndarray | None = None


class Gripper:
    """The gripper of one physics client; create it after ``build_scene`` (it survives restoreState)."""

    def __init__(self, p, config: GripperConfig):
        self.p, self.config = p, config
        c = config
        half_open = c.max_opening_m / 2
        palm_half = [half_open + c.finger_thickness_m + 0.005, 0.02, 0.015]
        palm_at = [0, 0, c.finger_length_m + 0.015]
        palm = p.createCollisionShape(p.GEOM_BOX, halfExtents=palm_half, collisionFramePosition=palm_at)
        palm_visual = p.createVisualShape(p.GEOM_BOX, halfExtents=palm_half, visualFramePosition=palm_at,
                                          rgbaColor=[0.2, 0.2, 0.22, 1])
        finger_half = [c.finger_thickness_m / 2, c.finger_width_m / 2, c.finger_length_m / 2]
        finger = p.createCollisionShape(p.GEOM_BOX, halfExtents=finger_half)
        finger_visual = p.createVisualShape(p.GEOM_BOX, halfExtents=finger_half, rgbaColor=[0.1, 0.1, 0.1, 1])
        t, length = c.finger_thickness_m, c.finger_length_m
        self.body = p.createMultiBody(
            0.8, palm, palm_visual, list(PARK), [0, 0, 0, 1],
            linkMasses=[0.05, 0.05], linkCollisionShapeIndices=[finger, finger],
            linkVisualShapeIndices=[finger_visual, finger_visual],
            linkPositions=[[t / 2, 0, length / 2], [-t / 2, 0, length / 2]],
            linkOrientations=[[0, 0, 0, 1]] * 2, linkInertialFramePositions=[[0, 0, 0]] * 2,
            linkInertialFrameOrientations=[[0, 0, 0, 1]] * 2, linkParentIndices=[0, 0],
            linkJointTypes=[p.JOINT_PRISMATIC] * 2, linkJointAxis=[[1, 0, 0], [-1, 0, 0]])
        for link in (0, 1):
            p.changeDynamics(self.body, link, lateralFriction=c.finger_friction, spinningFriction=0.005,
                             rollingFriction=0.0001, frictionAnchor=1, jointLowerLimit=0.0, jointUpperLimit=half_open)
        self.constraint = p.createConstraint(self.body, -1, -1, -1, p.JOINT_FIXED, [0, 0, 0], [0, 0, 0], list(PARK))
        self.target = np.array(PARK, np.float64)
        self.yaw = 0.0
        self.open_now()

    # ------------------------------------------------------------------ motion
    def place(self, xyz, yaw: float) -> None:
        """Teleport (no physics) to ``xyz``, ``yaw``, fingers open."""
        p = self.p
        orn = p.getQuaternionFromEuler([0, 0, yaw])
        p.resetBasePositionAndOrientation(self.body, list(xyz), orn)
        p.resetBaseVelocity(self.body, [0, 0, 0], [0, 0, 0])
        self.target, self.yaw = np.array(xyz, np.float64), float(yaw)
        p.changeConstraint(self.constraint, list(xyz), orn, maxForce=self.config.arm_force_n)
        self.open_now()

    def open_now(self) -> None:
        half_open = self.config.max_opening_m / 2
        for link in (0, 1):
            self.p.resetJointState(self.body, link, half_open)
            self.p.setJointMotorControl2(self.body, link, self.p.POSITION_CONTROL, targetPosition=half_open,
                                         force=self.config.grip_force_n)

    def close(self) -> None:
        for link in (0, 1):
            self.p.setJointMotorControl2(self.body, link, self.p.POSITION_CONTROL, targetPosition=0.0,
                                         force=self.config.grip_force_n, maxVelocity=self.config.close_speed_m_s)

    def move(self, xyz, yaw: float | None = None, speed: float | None = None, settle_steps: int = 12) -> float:
        """Move the constraint target in a straight line (and yaw) at ``speed``; return how far the
        gripper ends from the target (m).
        """
        p = self.p
        start, goal = self.target.copy(), np.array(xyz, np.float64)
        yaw0, yaw1 = self.yaw, self.yaw if yaw is None else float(yaw)
        speed = speed or self.config.speed_m_s
        distance = max(float(np.linalg.norm(goal - start)), abs(yaw1 - yaw0) * 0.05)
        steps = max(1, int(math.ceil(distance / speed / TIME_STEP)))
        for k in range(1, steps + settle_steps + 1):
            a = min(1.0, k / steps)
            self.target, self.yaw = start + (goal - start) * a, yaw0 + (yaw1 - yaw0) * a
            p.changeConstraint(self.constraint, self.target.tolist(), p.getQuaternionFromEuler([0, 0, self.yaw]),
                               maxForce=self.config.arm_force_n)
            p.stepSimulation()
        return float(np.linalg.norm(np.array(p.getBasePositionAndOrientation(self.body)[0]) - goal))

    def wait(self, seconds: float) -> None:
        for _ in range(int(round(seconds / TIME_STEP))):
            self.p.stepSimulation()

    def finger_contacts(self, body: int) -> tuple[bool, bool]:
        return tuple(bool(self.p.getContactPoints(self.body, body, link, -1)) for link in (0, 1))

    # ------------------------------------------------------------------ a trial
    def trial(self, scene: BuiltScene, pose: GraspPose, lighting: Lighting | None = None) -> TrialOutcome:
        """Descend to ``pose``, close, lift ``lift_m``, shake; judge success. With ``lighting``,
        also render the after-grasp view (gripper closed and lifted, before release).
        """
        p, c = self.p, self.config
        rest = {b: np.array(p.getBasePositionAndOrientation(b)[0]) for b in scene.bodies}
        tip = np.array([pose.x, pose.y, pose.z])
        self.place(tip + [0, 0, c.approach_m], pose.yaw)
        miss = self.move(tip)
        blocked = miss > 0.01
        self.close()
        self.wait(c.max_opening_m / 2 / c.close_speed_m_s + 0.25)
        reached = np.array(p.getBasePositionAndOrientation(self.body)[0])
        top = reached + [0, 0, c.lift_m]
        self.move(top, speed=0.25)
        held_after_lift = self._held(scene, rest) is not None
        side = jaw_normal(pose.yaw)
        for _ in range(c.shake_cycles):
            for sign in (1, -1):
                self.move(top + sign * c.shake_m * side, pose.yaw + sign * c.shake_rad, speed=0.5, settle_steps=0)
        self.move(top, pose.yaw, speed=0.5)
        self.wait(0.2)
        held = self._held(scene, rest)
        rises = [float(p.getBasePositionAndOrientation(b)[0][2] - rest[b][2]) for b in scene.bodies]
        unstable = any(not -0.05 < p.getBasePositionAndOrientation(b)[0][2] < 1.0
                       or np.linalg.norm(p.getBaseVelocity(b)[0]) > 3.0 for b in scene.bodies)
        after = None
        if lighting is not None:
            after = self.after_view(pose.yaw, top, lighting)
        return TrialOutcome(held is not None, held, max(rises, default=0.0), blocked, unstable, held_after_lift, after)

    def _held(self, scene: BuiltScene, rest: dict) -> int | None:
        """Index of the first body at least ``success_lift_m`` above its rest and touching both fingers."""
        for k, b in enumerate(scene.bodies):
            rise = self.p.getBasePositionAndOrientation(b)[0][2] - rest[b][2]
            if rise >= self.config.success_lift_m and all(self.finger_contacts(b)):
                return k
        return None

    def after_view(self, yaw: float, tip, lighting: Lighting) -> np.ndarray:
        """Render a side view of the closed gripper: looking along the jaw normal (between the fingers),
        slightly from above, from 0.3 m.
        """
        eye = np.asarray(tip) + 0.3 * jaw_normal(yaw) * math.cos(0.35) + [0, 0, 0.3 * math.sin(0.35)]
        return render_view(self.p, eye, np.asarray(tip) + [0, 0, 0.01], [0, 0, 1], self.config.after_view_size, 45.0,
                           lighting)


def jaw_normal(yaw: float) -> np.ndarray:
    """Horizontal unit vector across the jaws' closing line at ``yaw``: the shake axis and the side view's."""
    return np.array([math.cos(yaw + math.pi / 2), math.sin(yaw + math.pi / 2), 0.0])


def pixel_grasp_pose(u: float, v: float, angle: float, depth_m: np.ndarray, camera: Camera,
                     config: GripperConfig, radius: int = 3) -> GraspPose | None:
    """World grasp of an image grasp (u, v, angle): x, y where the pixel's ray meets the surface
    in the depth image (median of a (2r+1)^2 window), fingertips ``grasp_depth_m`` below that
    surface but not below ``min_tip_height_m``, yaw ``angle_to_yaw(angle)``. None without a
    valid depth there.
    """
    depth = depth_at(depth_m, u, v, radius)
    if depth is None:
        return None
    point = camera.pixel_to_world(u, v, depth)
    z = max(point[2] - config.grasp_depth_m, config.min_tip_height_m)
    return GraspPose(float(point[0]), float(point[1]), float(z), angle_to_yaw(angle))
