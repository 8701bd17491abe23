"""PyBullet grasp trials: gripper physics, camera geometry and angle convention, the object split,
seeding across worker counts, the CSV + bag output and the CLI.
"""
import ast
import colorsys
import dataclasses
import math

import numpy as np
import pytest

from rosutil import ROOT
from tacforce_ros.bag_labels import load_labelled_frames
from tacforce_ros.bags import read_messages
from tacforce_ros.cli import build_parser, main
from tacforce_ros.sim.grasp_attempts import read_attempt_csv
from tacforce_ros.sim.pybullet_grasp import runs
from tacforce_ros.sim.pybullet_grasp.gripper import Gripper, GripperConfig, GraspPose, pixel_grasp_pose
from tacforce_ros.sim.pybullet_grasp.planners import NODE_DEFAULTS, object_mask, plan_analytic, plan_random
from tacforce_ros.sim.pybullet_grasp.scene import (HELD_OUT_TABLE_HUES, UNSEEN_TABLE_RGB, Camera, TrialSceneConfig,
                                                   add_box, angle_to_yaw, build_scene, object_range, render,
                                                   sample_scene, yaw_to_angle)

SMALL = TrialSceneConfig(objects_per_scene=(1, 2), settle_s=1.0)
GRIPPER = GripperConfig()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    import pybullet
    from pybullet_utils import bullet_client
    p = bullet_client.BulletClient(connection_mode=pybullet.DIRECT)
    yield p, str(tmp_path_factory.mktemp("textures"))
    p.disconnect()


def empty_table(client, seed=0):
    """Build a randomised table without objects; return its spec, the scene and a gripper."""
    p, textures = client
    spec = dataclasses.replace(sample_scene(SMALL, (seed, 0)), objects=())
    built = build_scene(p, spec, textures)
    return spec, built, Gripper(p, GRIPPER)


# ---------------------------------------------------------------- gripper physics

def test_centred_grasp_across_the_short_side_lifts_and_holds_a_box(client):
    p, _ = client
    _, scene, gripper = empty_table(client)
    box = add_box(p, scene, (0.02, 0.05, 0.025), (0.01, -0.02), yaw=0.4)
    start = p.getBasePositionAndOrientation(box)[0]
    outcome = gripper.trial(scene, GraspPose(0.01, -0.02, 0.02, 0.4))  # closing along the box's x (4 cm)
    assert outcome.success and outcome.held_body == 0 and outcome.held_after_lift and not outcome.unstable
    assert outcome.lift_m > 0.14  # lifted 15 cm with the gripper
    assert p.getBasePositionAndOrientation(box)[0][2] - start[2] > GRIPPER.success_lift_m


def test_a_weak_grip_lifts_a_slippery_box_but_the_shake_shakes_it_out(client):
    p, _ = client
    spec = dataclasses.replace(sample_scene(SMALL, (0, 0)), objects=())
    scene = build_scene(p, spec, client[1])
    weak = Gripper(p, dataclasses.replace(GRIPPER, grip_force_n=5.0))  # 2 x 5 N x 0.3 = 3 N against 2 N of weight
    add_box(p, scene, (0.02, 0.03, 0.025), (0.0, 0.0), mass_kg=0.2, friction=0.3)
    outcome = weak.trial(scene, GraspPose(0.0, 0.0, 0.02, 0.0))
    assert outcome.held_after_lift and not outcome.success


def test_grasp_on_the_empty_table_fails(client):
    _, scene, gripper = empty_table(client, seed=1)
    outcome = gripper.trial(scene, GraspPose(0.0, 0.0, GRIPPER.min_tip_height_m, 0.0))
    assert not outcome.success and outcome.held_body is None and outcome.lift_m == 0.0


def test_grasp_90_degrees_wrong_on_a_long_box_fails(client):
    p, _ = client
    _, scene, gripper = empty_table(client, seed=2)
    add_box(p, scene, (0.065, 0.015, 0.02), (0.0, 0.0), yaw=0.0)  # 13 cm long: wider than the 8.5 cm opening
    outcome = gripper.trial(scene, GraspPose(0.0, 0.0, 0.015, 0.0))  # closing along the 13 cm length
    assert not outcome.success and outcome.blocked  # a finger lands on the box


def test_grasp_across_a_long_box_holds_and_along_it_fails_from_the_same_state(client):
    p, _ = client
    _, scene, gripper = empty_table(client, seed=3)
    add_box(p, scene, (0.065, 0.015, 0.02), (0.02, 0.01), yaw=0.3)  # long axis at world yaw 0.3
    state = p.saveState()
    across = gripper.trial(scene, GraspPose(0.02, 0.01, 0.015, 0.3 + math.pi / 2))
    p.restoreState(state)
    along = gripper.trial(scene, GraspPose(0.02, 0.01, 0.015, 0.3))
    p.removeState(state)
    assert across.success and not along.success


# ---------------------------------------------------------------- camera and angles

def test_pixel_world_round_trip_through_the_intrinsics():
    camera = Camera(0.02, -0.01, 0.6, 47.0, 640, 480)
    k = camera.intrinsics()
    assert k.fx == pytest.approx(240 / math.tan(math.radians(23.5))) and k.fx == k.fy
    assert (k.cx, k.cy) == (319.5, 239.5)
    assert camera.world_to_pixel((0.02, -0.01, 0.0)) == pytest.approx((319.5, 239.5))
    for u, v, d in ((0, 0, 0.6), (639, 479, 0.55), (100.5, 300.25, 0.58)):
        xyz = camera.pixel_to_world(u, v, d)
        assert xyz[2] == pytest.approx(0.6 - d)
        assert camera.world_to_pixel(xyz) == pytest.approx((u, v))
    # u runs along world +x, v along world -y
    assert camera.pixel_to_world(400, 240, 0.6)[0] > 0.02 and camera.pixel_to_world(320, 400, 0.6)[1] < -0.01


def test_rendered_box_lies_where_the_intrinsics_say(client):
    p, _ = client
    spec, scene, _ = empty_table(client, seed=4)
    add_box(p, scene, (0.02, 0.02, 0.03), (0.05, 0.04))
    rgb, depth = render(p, spec.camera, spec.lighting)
    assert rgb.shape == (480, 640, 3) and rgb.dtype == np.uint8
    vs, us = np.nonzero(object_mask(depth))
    top = spec.camera.pixel_to_world(us.mean(), vs.mean(), float(np.median(depth[vs, us])))
    assert top == pytest.approx([0.05, 0.04, 0.06], abs=0.003)
    assert float(np.median(depth[~object_mask(depth)])) == pytest.approx(spec.camera.height_m, abs=0.002)
    pose = pixel_grasp_pose(us.mean(), vs.mean(), 0.0, depth, spec.camera, GRIPPER)
    assert (pose.x, pose.y, pose.z) == pytest.approx((0.05, 0.04, 0.06 - GRIPPER.grasp_depth_m), abs=0.003)


@pytest.mark.parametrize("yaw", [0.0, 0.5, 2.0])
def test_angle_convention_image_angle_is_minus_world_yaw(client, yaw):
    """A box's minor axis (world yaw + pi/2) comes out of the analytic planner as the image angle
    -(yaw + pi/2) mod pi, and executing that grasp lifts the box.
    """
    p, _ = client
    spec, scene, gripper = empty_table(client, seed=5)
    add_box(p, scene, (0.05, 0.015, 0.02), (0.0, 0.0), yaw=yaw)
    rgb, depth = render(p, spec.camera, spec.lighting)
    grasp = plan_analytic(rgb, depth, spec.camera.intrinsics(), np.random.default_rng(0))
    expected = yaw_to_angle(yaw + math.pi / 2)
    assert min(abs(grasp.angle - expected), math.pi - abs(grasp.angle - expected)) < 0.05
    assert angle_to_yaw(expected) == pytest.approx(-expected)
    assert gripper.trial(scene, pixel_grasp_pose(*grasp, depth, spec.camera, GRIPPER)).success


def test_random_planner_picks_object_pixels_from_depth(client):
    p, _ = client
    spec, scene, _ = empty_table(client, seed=6)
    rgb, depth = render(p, spec.camera, spec.lighting)
    assert plan_random(rgb, depth, spec.camera.intrinsics(), np.random.default_rng(0)) is None  # nothing to grasp
    add_box(p, scene, (0.02, 0.02, 0.02), (-0.03, 0.02))
    rgb, depth = render(p, spec.camera, spec.lighting)
    mask = object_mask(depth)
    for seed in range(5):
        g = plan_random(rgb, depth, spec.camera.intrinsics(), np.random.default_rng(seed))
        assert mask[int(g.v), int(g.u)] and 0 <= g.angle < math.pi


# ---------------------------------------------------------------- object split

def test_object_split_refuses_ranges_that_mix_training_and_held_out_objects():
    assert object_range("train") == (0, 799) and object_range("heldout") == (800, 999)
    assert object_range((800, 850)) == (800, 850)
    with pytest.raises(ValueError, match="mixes training"):
        object_range((700, 900))
    with pytest.raises(ValueError, match="mixes training"):
        TrialSceneConfig(objects=(799, 800))
    with pytest.raises(ValueError, match="object set"):
        object_range("test")
    with pytest.raises(ValueError, match="0 <= first"):
        object_range((900, 1000))
    spec = sample_scene(TrialSceneConfig(objects="heldout", objects_per_scene=(4, 4)), (0, 0))
    assert all(800 <= o.index <= 999 for o in spec.objects) and len(spec.objects) == 4


def test_table_colour_and_camera_height_can_be_fixed_for_unseen_conditions():
    spec = sample_scene(TrialSceneConfig(table_rgb=(255, 0, 255), camera_height_m=(0.9, 0.9)), (1, 2))
    assert spec.table_style == "plain" and spec.table_colours == ((255, 0, 255),) and spec.camera.height_m == 0.9
    specs = [sample_scene(TrialSceneConfig(), (0, i)) for i in range(200)]
    assert {s.table_style for s in specs} == {"plain", "wood", "checker"}
    hues = [colorsys.rgb_to_hsv(*(c / 255 for c in rgb))[0] for s in specs if s.table_style != "wood"
            for rgb in s.table_colours]
    low, high = HELD_OUT_TABLE_HUES
    assert not any(low + 0.01 < h < high - 0.01 for h in hues) and len({round(h, 1) for h in hues}) >= 7
    assert low < colorsys.rgb_to_hsv(*(c / 255 for c in UNSEEN_TABLE_RGB))[0] < high


# ---------------------------------------------------------------- runs, outputs, CLI

def trial_fields(results):
    return [(r.index, r.rgb.tobytes(), [dataclasses.replace(t, plan_time_s=0.0) for t in r.trials]) for r in results]


def test_scenes_do_not_depend_on_the_worker_count(monkeypatch):
    config = runs.TrialRunConfig(scenes=3, workers=1, seed=5, planners=("random", "analytic"), scene=SMALL,
                                 after_view=False)
    monkeypatch.setattr(runs, "RECONNECT_EVERY", 2)  # a fresh physics client in the middle changes nothing
    one = list(runs.iter_scenes(config))
    two = list(runs.iter_scenes(dataclasses.replace(config, workers=2)))
    assert trial_fields(one) == trial_fields(two)
    assert len({r.rgb.tobytes() for r in one}) == 3  # different scenes
    other = list(runs.iter_scenes(dataclasses.replace(config, seed=6, scenes=1)))
    assert other[0].rgb.tobytes() != one[0].rgb.tobytes()


def test_trials_write_attempts_csv_images_and_a_bag_that_read_back(tmp_path):
    config = runs.TrialRunConfig(scenes=2, seed=1, planners=("random",), trials_per_scene=3, scene=SMALL)
    summary = runs.run_trials(tmp_path / "t", config)
    assert summary.scenes == 2 and summary.trials + summary.unplanned == 6 and summary.trials_per_minute > 0
    attempts = read_attempt_csv(tmp_path / "t", check_images=True)
    assert len(attempts) == summary.trials and sum(a.success for a in attempts) == summary.successes
    assert {a.image for a in attempts} <= {"images/00000.png", "images/00001.png"}
    topics = {}
    for m in read_messages(tmp_path / "t" / "bag"):
        topics.setdefault(m.topic, []).append(m.msg)
    assert len(topics[runs.TOPICS["rgb"]]) == len(topics[runs.TOPICS["depth"]]) == len(topics[runs.TOPICS["info"]]) == 2
    info = topics[runs.TOPICS["info"]][0]
    assert info.width == 640 and info.height == 480 and info.k[0] > 0
    assert topics[runs.TOPICS["depth"]][0].encoding == "16UC1"
    labels = [__import__("json").loads(m.data) for m in topics[runs.TOPICS["trial"]]]
    assert [(x["scene"], x["success"]) for x in labels if x["planned"]] == \
        [(int(a.image[7:12]), a.success) for a in attempts]
    frames = load_labelled_frames(tmp_path / "t" / "bag", runs.TOPICS["after"], runs.TOPICS["held"])
    assert frames.labels == [int(a.success) for a in attempts]
    assert frames.images[0].shape == (240, 320, 3)
    with pytest.raises(FileExistsError):
        runs.run_trials(tmp_path / "t", config)


def test_model_planner_runs_the_shipped_model_with_the_node_defaults(client):
    p, _ = client
    spec, scene, _ = empty_table(client, seed=7)
    add_box(p, scene, (0.02, 0.03, 0.02), (0.0, 0.0))
    rgb, depth = render(p, spec.camera, spec.lighting)
    planner = runs._planner("model", "grasp_map.onnx")
    grasp = planner(rgb, depth, spec.camera.intrinsics(), np.random.default_rng(0))
    assert grasp is None or (0 <= grasp.u < 640 and 0 <= grasp.v < 480 and 0 <= grasp.angle < math.pi)


def test_node_defaults_match_grasp_planner_node():
    tree = ast.parse((ROOT / "tacforce_ros" / "nodes" / "grasp_planner_node.py").read_text())
    defaults = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "declare" and len(node.args) >= 3:
            defaults[node.args[1].value] = ast.literal_eval(node.args[2])
    assert {k: defaults[k] for k in NODE_DEFAULTS} == NODE_DEFAULTS


def test_wilson_interval_and_scores():
    assert runs.wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert runs.wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert runs.wilson_interval(0, 0) == (0.0, 1.0)
    records = [runs.TrialRecord(0, "a", 0, True, True, plan_time_s=0.01), runs.TrialRecord(1, "a", 0, False, False)]
    scores = runs.score_planners(records)
    assert scores["a"]["rate"] == 0.5 and scores["a"]["no_grasp"] == 1 and scores["a"]["trials"] == 2
    assert "a" in runs.format_scores(scores)


def test_cli_parses_grasp_trials_and_keeps_the_tactile_sim_usage(tmp_path):
    args = build_parser().parse_args(["sim", "grasp-trials", "--out", "x", "--scenes", "7", "--workers", "2",
                                      "--objects", "heldout", "--seed", "3", "--planner", "model",
                                      "--object-scale", "0.5", "0.9"])
    assert (args.what, args.out, args.scenes, args.workers, args.objects, args.seed, args.planner) == \
        ("grasp-trials", "x", 7, 2, "heldout", 3, ["model"])
    assert args.object_scale == [0.5, 0.9]
    old = build_parser().parse_args(["sim", "--bag", "b", "--seed", "2", "--raw-images"])
    assert old.what is None and old.bag == "b" and old.raw_images
    assert main(["sim", "grasp-trials"]) == 2  # no --out
    assert main(["sim", "grasp-trials", "--out", str(tmp_path / "m"), "--planner", "model",
                 "--trials-per-scene", "2"]) == 1  # the deterministic model would repeat itself
    assert main(["sim", "--out", str(tmp_path / "o")]) == 2  # --out without grasp-trials
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sim", "grasp-trials", "--objects", "all"])
