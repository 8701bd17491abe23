"""The shipped physics-trial models on PyBullet scenes no training run saw: boxes (training used
random_urdfs objects) on a table of a colour never drawn in training, with the gripper's physics
as the judge.
"""
import dataclasses
import math

import numpy as np
import pytest

from tacforce_ros.inference.runtime import OnnxModel
from tacforce_ros.paths import resolve
from tacforce_ros.perception.grasp_success import GraspSuccessClassifier
from tacforce_ros.sim.pybullet_grasp.gripper import Gripper, GripperConfig, GraspPose, pixel_grasp_pose
from tacforce_ros.sim.pybullet_grasp.planners import ModelPlanner
from tacforce_ros.sim.pybullet_grasp.scene import (UNSEEN_TABLE_RGB, TrialSceneConfig, add_box, build_scene, render,
                                                   sample_scene, yaw_to_angle)

SCENE = TrialSceneConfig(objects_per_scene=(1, 1), settle_s=1.0, table_rgb=UNSEEN_TABLE_RGB)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    import pybullet
    from pybullet_utils import bullet_client
    p = bullet_client.BulletClient(connection_mode=pybullet.DIRECT)
    yield p, str(tmp_path_factory.mktemp("textures"))
    p.disconnect()


def box_scene(client, seed: int, yaw: float, where=(0.03, -0.02)):
    """Build a 9 x 3 x 4 cm box (longer than the 8.5 cm opening one way) on the unseen-colour table."""
    p, textures = client
    spec = dataclasses.replace(sample_scene(SCENE, (seed, 0)), objects=())
    scene = build_scene(p, spec, textures)
    add_box(p, scene, (0.045, 0.015, 0.02), where, yaw=yaw)
    rgb, depth = render(p, spec.camera, spec.lighting)
    return spec, scene, rgb, depth


def test_shipped_grasp_map_lifts_unseen_boxes_grasping_across_their_short_side(client):
    """Six boxes at spread angles: most lift, and the jaws close across the box, not along it."""
    planner, config = ModelPlanner("grasp_map.onnx"), GripperConfig()
    lifted, errors = 0, []
    for seed, yaw in zip(range(11, 17), (0.5, -1.0, 2.0, 0.0, 1.2, -0.3)):
        spec, scene, rgb, depth = box_scene(client, seed, yaw)
        grasp = planner(rgb, depth, spec.camera.intrinsics(), np.random.default_rng(0))
        assert grasp is not None
        across = yaw_to_angle(yaw + math.pi / 2)
        errors.append(min(abs(grasp.angle - across), math.pi - abs(grasp.angle - across)))
        lifted += Gripper(client[0], config).trial(scene, pixel_grasp_pose(*grasp, depth, spec.camera, config)).success
    assert lifted >= 4 and np.median(errors) < math.radians(15), (lifted, np.degrees(errors))


def test_shipped_grasp_success_trials_model_tells_held_from_missed(client):
    spec, scene, rgb, depth = box_scene(client, 13, 0.2, where=(0.0, 0.0))
    gripper = Gripper(client[0], GripperConfig())
    state = client[0].saveState()
    held = gripper.trial(scene, GraspPose(0.0, 0.0, 0.02, 0.2 + math.pi / 2), spec.lighting)
    client[0].restoreState(state)
    missed = gripper.trial(scene, GraspPose(0.15, 0.1, GripperConfig().min_tip_height_m, 0.0), spec.lighting)
    assert held.success and not missed.success
    check = GraspSuccessClassifier(OnnxModel(resolve("models", "grasp_success_trials.onnx"), "grasp_success",
                                             providers=["cpu"]))
    inp = check.model.metadata.input
    assert (inp.height, inp.width, inp.encoding) == (240, 320, "rgb8")   # the trials' after-grasp view
    assert check.probability(held.after_rgb) > 0.5 > check.probability(missed.after_rgb)
