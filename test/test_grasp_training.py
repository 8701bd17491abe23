"""GraspNet training side: network, masked loss, AlexNet init, label-exact augmentation, data
sources, the task on the shared loop (checkpoints, resume, the shipped legacy checkpoint), dense
export contract, and the train/eval/export commands on tiny configs.
"""
import argparse
import dataclasses
import json
import math
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from tacforce_ros.inference.contract import ModelError
from tacforce_ros.inference.runtime import OnnxModel
from tacforce_ros.perception.grasp_map import GraspMapError, GraspMapLayout, GraspPlanner
from tacforce_ros.sim.grasp_attempts import write_attempt_csv
from tacforce_ros.sim.grasp_labels import grasp_outcomes
from tacforce_ros.sim.grasp_scenes import HELD_OUT_SHAPES, TRAIN_SHAPES, SceneConfig, generate_scene
from tacforce_training.core import checkpoint
from tacforce_training.models.grasp_net import (CONFIGS, PATCH, STRIDE, GraspNet, GraspNetConfig, load_alexnet_features,
                                                masked_bin_loss, success_probability)
from tacforce_training.tasks.grasp_map.commands import NETWORKS
from tacforce_training.tasks.grasp_map.config import GraspMapConfig
from tacforce_training.tasks.grasp_map.data import (GraspAttempts, PatchSampler, augment, batch_indices,
                                                    empty_table_trials,
                                                    load_attempt_folder, merge_attempts, synthetic_attempts)
from tacforce_training.tasks.grasp_map.export import dense_module, dense_padding, export_grasp_map
from tacforce_training.tasks.grasp_map.train import GraspMapTask, load_grasp_model, train
from tacforce_training.preprocess import DepthHeight
from taskutil import dies_in_epoch_2

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent
TINY = CONFIGS["tiny"]


def test_network_is_fully_convolutional_with_stride_32():
    net = GraspNet(TINY).eval()
    with torch.no_grad():
        assert net(torch.zeros(2, 3, PATCH, PATCH)).shape == (2, 36, 1, 1)
        assert net(torch.zeros(1, 3, PATCH + 3 * STRIDE, PATCH + 5 * STRIDE)).shape == (1, 36, 4, 6)
    seed = GraspNetConfig()
    assert seed.scaled() == (96, 256, 384, 384, 256, 4096, 1024)
    assert GraspNet(GraspNetConfig(bins=9, width=0.25)).conv8.out_channels == 18
    for c, g in zip(CONFIGS["cpu"].scaled()[:5], (2, 2, 2, 2, 2)):
        assert c % g == 0
    with pytest.raises(ValueError):
        GraspNetConfig(width=0)


def test_masked_loss_only_trains_the_active_bin():
    logits = torch.zeros(2, 36, 1, 1, requires_grad=True)
    loss = masked_bin_loss(logits, torch.tensor([3, 17]), torch.tensor([1.0, 0.0]))
    loss.backward()
    grad = logits.grad.view(2, 18, 2)
    assert loss.item() == pytest.approx(math.log(2))
    active = torch.zeros(2, 18, dtype=torch.bool)
    active[0, 3] = active[1, 17] = True
    assert (grad[~active] == 0).all() and (grad[active] != 0).all()
    assert grad[0, 3, 1] < 0 < grad[1, 17, 1]  # pushes success up for the success label
    p = success_probability(torch.randn(1, 36, 2, 3))
    assert p.shape == (1, 18, 2, 3) and ((p > 0) & (p < 1)).all()


def test_alexnet_features_load_from_a_local_file_and_freeze(tmp_path):
    ours = GraspNet(GraspNetConfig(width=1.0, fc6=64, fc7=32))
    donor = GraspNet(GraspNetConfig(width=1.0, fc6=64, fc7=32))
    torch.save({k: v for k, v in donor.state_dict().items()
                if k.startswith(("conv1", "conv2", "conv3", "conv4", "conv5"))},
               tmp_path / "alexnet_caffe.pt")
    copied = load_alexnet_features(ours, tmp_path / "alexnet_caffe.pt")
    assert len(copied) == 10 and torch.equal(ours.conv3.weight, donor.conv3.weight)
    assert not ours.conv1.weight.requires_grad and ours.conv6.weight.requires_grad
    # torchvision's AlexNet layout (features.0 ... features.10, 64/192/384/256/256, no groups)
    tv_cfg = GraspNetConfig(channels=(64, 192, 384, 256, 256), groups=(1,) * 5, fc6=64, fc7=32)
    tv = GraspNet(tv_cfg)
    keys = ("features.0", "features.3", "features.6", "features.8", "features.10")
    state = {f"{k}.{s}": getattr(tv, f"conv{i + 1}").get_parameter(s).detach().clone() + 1
             for i, k in enumerate(keys) for s in ("weight", "bias")}
    torch.save(state, tmp_path / "alexnet_tv.pt")
    load_alexnet_features(tv, tmp_path / "alexnet_tv.pt")
    assert torch.equal(tv.conv5.bias, state["features.10.bias"])
    with pytest.raises(ValueError, match="shape"):
        load_alexnet_features(GraspNet(TINY), tmp_path / "alexnet_caffe.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable"):
        load_alexnet_features(GraspNet(TINY), tmp_path / "junk.pt")
    with pytest.raises(ValueError, match="not found"):
        load_alexnet_features(GraspNet(TINY), tmp_path / "missing.pt")


def _moved(u, v, w, h, k, mirror):
    """Where pixel (u, v) of a w x h image lands after np.rot90(k) and a left-right mirror."""
    for _ in range(k % 4):
        u, v, w, h = v, w - 1 - u, h, w
    return (w - 1 - u if mirror else u), v


@pytest.mark.parametrize("k,mirror", [(0, True), (1, False), (2, False), (3, False), (1, True), (3, True)])
def test_augmentation_keeps_the_robot_label(k, mirror):
    """Turn and mirror a whole scene; the labeller gives every grasp the same outcome at the moved
    centre and the augmented angle, so augmented patches keep exact labels.
    """
    config = SceneConfig(seed=11, objects_range=(3, 4), height=200, width=200, size_range_px=(30, 60),
                         bar_length_range_px=(60, 90), noise_std=0)
    scene = generate_scene(config)
    rng = np.random.default_rng(0)
    u, v, theta = rng.uniform(20, 180, 400), rng.uniform(20, 180, 400), rng.uniform(0, math.pi, 400)
    for obj in scene.objects:  # and grasps that succeed
        u = np.append(u, obj.centre[0])
        v = np.append(v, obj.centre[1])
        theta = np.append(theta, obj.orientation + math.pi / 2)
    before = grasp_outcomes(scene, u, v, theta, config)
    labels, _ = augment(scene.labels, 0.0, k, mirror)
    moved = type(scene)(augment(scene.image, 0.0, k, mirror)[0].copy(), labels.copy(), scene.objects)
    uv = [_moved(a, b, 200, 200, k, mirror) for a, b in zip(u, v)]
    angles = [augment(scene.labels, t, k, mirror)[1] for t in theta]
    after = grasp_outcomes(moved, [p[0] for p in uv], [p[1] for p in uv], angles, config)
    assert before.sum() >= 3
    np.testing.assert_array_equal(before, after)


def test_synthetic_and_folder_attempts_give_the_same_patches(tmp_path):
    config = SceneConfig(shapes=TRAIN_SHAPES, seed=0)
    data = synthetic_attempts(3, 20, config, seed=4, progress=False)
    assert set(HELD_OUT_SHAPES).isdisjoint(TRAIN_SHAPES)
    assert len(data) > 50 and {int(i) for i in data.rows[:, 0]} == {0, 1, 2}
    assert ((data.rows[:, 1] >= 0) & (data.rows[:, 1] < 640) & (data.rows[:, 2] < 480)).all()
    names = []
    for i, img in enumerate(data.images):
        names.append(f"scene_{i}.png")
        cv2.imwrite(str(tmp_path / names[-1]), img[..., ::-1])
    write_attempt_csv(tmp_path, [(names[int(r[0])], r[1], r[2], r[3], bool(r[4])) for r in data.rows])
    folder = load_attempt_folder(tmp_path)
    np.testing.assert_allclose(folder.rows, data.rows, atol=1e-6)
    a = PatchSampler(data, 18, (120, 110, 100)).batch(np.arange(len(data)))
    b = PatchSampler(folder, 18, (120, 110, 100)).batch(np.arange(len(folder)))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    patches, bins, ok, heights = a
    assert heights is None
    assert patches.shape == (len(data), PATCH, PATCH, 3) and patches.dtype == np.uint8
    assert bins.min() >= 0 and bins.max() < 18 and set(np.unique(ok)) <= {0.0, 1.0}
    # the patch is centred on the trial's pixel
    r = data.rows[0]
    u, v = int(math.floor(r[1] + 0.5)), int(math.floor(r[2] + 0.5))
    np.testing.assert_array_equal(patches[0][PATCH // 2, PATCH // 2], data.images[int(r[0])][v, u])
    both = merge_attempts([data, folder])
    assert len(both) == 2 * len(data) and both.rows[len(data), 0] == 3
    assert len(data.subset([2])) == int((data.rows[:, 0] == 2).sum())
    bad = tmp_path / "bad"
    bad.mkdir()
    cv2.imwrite(str(bad / "a.png"), np.zeros((40, 50, 3), np.uint8))
    write_attempt_csv(bad, [("a.png", 60.0, 10.0, 0.5, True)])
    with pytest.raises(ValueError, match="outside"):
        load_attempt_folder(bad)


def test_dense_padding_gives_one_cell_per_32px_block():
    for h, w in ((480, 640), (500, 333), (32, 32)):
        (top, bottom, left, right), rows, cols = dense_padding(h, w)
        assert (rows, cols) == (math.ceil(h / 32), math.ceil(w / 32))
        assert (h + top + bottom - PATCH) // STRIDE + 1 == rows and (w + left + right - PATCH) // STRIDE + 1 == cols
        assert PATCH // 2 - top == STRIDE // 2  # cell 0 is centred on pixel 16


def test_depth_height_is_height_above_the_median_table_whatever_the_camera_height():
    for table in (0.5, 0.9):
        depth = np.full((1, 60, 80, 1), table, np.float32)
        depth[0, 10:30, 10:30] = table - 0.05   # a 5 cm block
        depth[0, 40:42, :] = 0.0                 # no reading
        depth[0, 50, 50] = np.nan
        depth[0, 55, 5] = table - 0.4            # an outlier above the clip
        height = DepthHeight()(torch.from_numpy(depth))[0, 0].numpy()
        assert height[20, 20] == pytest.approx(1.0, abs=1e-4)          # 0.05 m / 0.05 m
        assert height[5, 70] == 0 and (height[40:42] == 0).all() and height[50, 50] == 0
        assert height[55, 5] == pytest.approx(0.2 / 0.05)
    assert (DepthHeight()(torch.zeros(1, 8, 8, 1)) == 0).all()        # a frame without any depth


@pytest.mark.parametrize("padding", ["replicate", "mean"])
def test_dense_input_of_a_plain_table_has_no_edge_only_with_replicate_padding(padding):
    """A plain table of a colour far from the training mean: with replicate padding the network sees
    the same table beyond the image edge; mean padding makes the border an edge (what the first model
    read as objects on other tables).
    """
    model = GraspNet(dataclasses.replace(TINY, padding=padding, depth=True))
    ckpt = {"config": {"model": model.cfg.to_dict()}, "model": model.state_dict(),
            "summary": {"mean_rgb": [147.0, 126.0, 96.0], "std": 0.25}}
    module = dense_module(ckpt, 160, 224)[0]
    table = np.zeros((1, 160, 224, 3), np.uint8)
    table[...] = (60, 170, 230)
    depth = torch.full((1, 160, 224, 1), 0.7)
    with torch.no_grad():
        rgb, height = module.normalise(torch.from_numpy(table)), module.height(depth)
    top, bottom, left, right = dense_padding(160, 224)[0]
    assert rgb.shape[-2:] == (160 + top + bottom, 224 + left + right) == height.shape[-2:]
    flat = [bool((x == x[..., :1, :1]).all()) for x in (rgb, height)]
    assert flat == ([True, True] if padding == "replicate" else [False, True])
    if padding == "mean":   # saved configs without the key are the first models': mean padding
        legacy = {k: v for k, v in model.cfg.to_dict().items() if k != "padding"}
        assert GraspNetConfig.from_dict(legacy).padding == "mean"


def write_depth_trials(folder, scenes: int = 3, seed: int = 0, objects: str = "5 17"):
    """Write a trial folder as `tacforce sim grasp-trials` does: images/, depth/ (16-bit mm),
    attempts.csv and trials.csv; one block per scene, trials on it succeed across its short side.
    """
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    (folder / "depth").mkdir()
    rows = []
    for i in range(scenes):
        image = np.full((160, 224, 3), rng.integers(40, 220, 3), np.uint8)
        depth = np.full((160, 224), 600, np.uint16)
        u, v = int(rng.integers(60, 160)), int(rng.integers(50, 110))
        image[v - 10:v + 10, u - 25:u + 25] = 200
        depth[v - 10:v + 10, u - 25:u + 25] = 560
        cv2.imwrite(str(folder / "images" / f"{i:05d}.png"), image)
        cv2.imwrite(str(folder / "depth" / f"{i:05d}.png"), depth)
        for _ in range(8):
            theta = float(rng.uniform(0, math.pi))
            ok = abs(math.sin(theta)) > 0.8   # jaws across the 20 px side
            rows.append((f"images/{i:05d}.png", float(u + rng.integers(-3, 4)), float(v), theta, ok))
    write_attempt_csv(folder, rows)
    (folder / "trials.csv").write_text("scene,object_indices\n" + "".join(f"{i},{objects}\n" for i in range(scenes)))
    return folder


def test_depth_model_trains_on_trial_folders_and_exports_a_depth_input(tmp_path):
    data = load_attempt_folder(write_depth_trials(tmp_path / "trials", 4), depth=True, training=True)
    assert len(data.heights) == 4 and data.heights[0].dtype == np.float16
    assert float(data.heights[0].max()) == pytest.approx(0.04, abs=1e-3)  # 600 - 560 mm
    sampler = PatchSampler(data, 18, (0, 0, 0), depth=True)
    patches, _, _, heights = sampler.batch([0, 1], np.random.default_rng(0))
    assert heights.shape == (2, PATCH, PATCH, 1) and heights.max() == pytest.approx(0.04, abs=1e-3)
    assert (patches.mean(axis=-1) > 190).sum() == (heights[..., 0] > 0.03).sum()   # they stay aligned
    with pytest.raises(ValueError, match="depth"):
        PatchSampler(load_attempt_folder(tmp_path / "trials"), 18, (0, 0, 0), depth=True)
    cfg = tiny_config(model=dataclasses.replace(TINY, depth=True), epochs=1, val_fraction=0.25)
    result = train(cfg, data, tmp_path / "run")
    depths = 0.6 - np.stack(data.heights[:2]).astype(np.float32)
    meta = export_grasp_map(result.best_path, tmp_path / "gm.onnx", 160, 224, np.stack(data.images[:2]),
                            sample_depths=depths)
    assert meta.input.depth == "depth" and "median" in meta.preprocessing
    assert meta.outputs["grasp_probability"]["padding"] == "replicate"
    planner = GraspPlanner(OnnxModel(tmp_path / "gm.onnx", "grasp_map", providers=["cpu"]))
    assert planner.needs_depth
    with pytest.raises(GraspMapError, match="depth"):
        planner.grasp_map(data.images[0], "rgb")
    prob = planner.grasp_map(data.images[0], "rgb", depths[0])
    module = dense_module(checkpoint.load(result.best_path, "grasp_map"), 160, 224)[0]
    with torch.no_grad():
        expected = module(torch.from_numpy(data.images[0][None]), torch.from_numpy(depths[:1, ..., None])).numpy()
    np.testing.assert_allclose(prob, expected, atol=1e-5)
    with pytest.raises(ValueError, match="sample depths"):
        export_grasp_map(result.best_path, tmp_path / "x.onnx", 160, 224, np.stack(data.images[:2]))


def test_trial_folders_with_held_out_objects_never_train(tmp_path):
    folder = write_depth_trials(tmp_path / "trials", 1, objects="12 845")
    with pytest.raises(ValueError, match="held-out objects \\[845\\]"):
        load_attempt_folder(folder, training=True)
    assert len(load_attempt_folder(folder)) == 8   # evaluation may read them


def tiny_config(**changes) -> GraspMapConfig:
    return GraspMapConfig(**{"model": TINY, "epochs": 2, "steps_per_epoch": 3, "batch_size": 16, "num_threads": 1,
                             **changes})


@pytest.fixture(scope="module")
def tiny_data():
    return synthetic_attempts(6, 24, SceneConfig(seed=1), seed=1, progress=False)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_data):
    out = tmp_path_factory.mktemp("gm")
    return train(tiny_config(), tiny_data, out), tiny_data, out


def test_an_epoch_is_steps_of_balanced_batches_drawn_per_seed_and_epoch(tiny_data):
    task = GraspMapTask(tiny_config(), tiny_data)
    a, b = task.train_set(), task.train_set()
    rows = task.train_sampler.attempts.rows
    assert len(a) == 3 * 16 and (rows[a.order, 4] > 0.5).sum() == len(a) // 2
    assert len(GraspMapTask(tiny_config(steps_per_epoch=0), tiny_data).train_set()) == len(rows) // 16 * 16
    a.set_epoch(1)
    assert not np.array_equal(a.order, b.order)
    b.set_epoch(1)
    patch, bin_, ok, _ = a[7]
    assert all(torch.equal(x, y) for x, y in zip(a[7], b[7]))
    # patch 7 of epoch 1 is augmented by its own generator, whoever draws it
    expected = task.train_sampler.batch(a.order[7:8], np.random.default_rng([0, 1, 7]))
    np.testing.assert_array_equal(patch.numpy(), expected[0][0])
    assert int(bin_) == expected[1][0] and float(ok) == expected[2][0]
    plain = GraspMapTask(tiny_config(augment=False), tiny_data).train_set()
    np.testing.assert_array_equal(plain[0][0].numpy(), task.train_sampler.batch(plain.order[:1])[0][0])
    skewed = np.zeros((10, 5))
    skewed[:2, 4] = 1
    assert (skewed[batch_indices(skewed, 8, True, np.random.default_rng(0)), 4] == 1).sum() == 4


def test_training_checkpoints_and_dense_export_contract(tiny_run):
    result, data, out = tiny_run
    ckpt = torch.load(result.best_path, map_location="cpu", weights_only=True)
    last = torch.load(result.last_path, map_location="cpu", weights_only=True)
    assert ckpt["format"] == "tacforce.checkpoint" and ckpt["task"] == "grasp_map" and len(last["history"]) == 2
    assert ckpt["epoch"] == result.best_epoch == ckpt["history"][-1]["epoch"] and last["step"] == 6
    assert ckpt["config"]["grad_clip"] == 0.0 and ckpt["config"]["warmup_steps"] == 0
    assert ckpt["best"]["score"] == ckpt["best"]["metrics"]["loss"] == ckpt["history"][-1]["val_loss"]
    assert 0 <= result.metrics["accuracy"] <= 1 and result.summary["train"]["attempts"] > 0
    assert result.metrics["attempts"] == result.summary["val"]["attempts"]
    h, w = 240, 320  # another camera size: the graph is exported for it
    images = np.stack([generate_scene(SceneConfig(height=h, width=w, seed=s)).image for s in range(2)])
    meta = export_grasp_map(result.best_path, out / "gm.onnx", h, w, images, "rgb8", command="test")
    spec = meta.outputs["grasp_probability"]
    assert meta.task == "grasp_map" and spec["shape"] == [8, 10, 18] and spec["stride_px"] == 32
    assert spec["offset_px"] == 16 and "+u" in spec["angle_convention"]
    assert meta.training["mean_rgb"] == ckpt["summary"]["mean_rgb"] and meta.metrics == result.metrics
    model = OnnxModel(out / "gm.onnx", "grasp_map", providers=["cpu"])
    layout = GraspMapLayout.from_metadata(model.metadata.outputs)
    prob = model.run(images[:1])[0]["grasp_probability"]
    assert prob.shape == (layout.rows, layout.cols, layout.bins) and ((prob >= 0) & (prob <= 1)).all()
    module = dense_module(checkpoint.load(result.best_path, "grasp_map"), h, w)[0]
    with torch.no_grad():
        np.testing.assert_allclose(prob, module(torch.from_numpy(images[:1])).numpy(), atol=1e-5)
    with pytest.raises(ModelError, match="grasp_map"):
        OnnxModel(out / "gm.onnx", "tactile_force", providers=["cpu"])
    # a bgr8 camera: the graph reorders, so the same scene gives the same map
    export_grasp_map(result.best_path, out / "gm_bgr.onnx", h, w, images, "bgr8")
    bgr = OnnxModel(out / "gm_bgr.onnx", "grasp_map", providers=["cpu"])
    np.testing.assert_allclose(bgr.run(np.ascontiguousarray(images[:1, ..., ::-1]))[0]["grasp_probability"],
                               prob, atol=1e-5)
    assert (out / "gm.md").read_text().count("angle") >= 1


def test_resume_matches_uninterrupted_run(tiny_run, tmp_path, monkeypatch):
    """Die in epoch 2, then resume: epoch 2 follows last.pt's epoch 1 and ends as the uninterrupted run."""
    result, data, _ = tiny_run
    with dies_in_epoch_2(monkeypatch, GraspMapTask):
        train(tiny_config(), data, tmp_path)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 1
    resumed = train(tiny_config(), data, tmp_path, resume=True)
    full = torch.load(result.last_path, weights_only=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    assert [r["val_loss"] for r in resumed.history] == [r["val_loss"] for r in full["history"]]
    again = torch.load(resumed.last_path, weights_only=True)["model"]
    assert all(torch.equal(full["model"][k], again[k]) for k in again)
    other = dataclasses.replace(TINY, bins=9)
    with pytest.raises(ValueError, match="was trained with"):
        train(tiny_config(model=other, epochs=3), data, tmp_path, resume=True)


def test_shipped_legacy_checkpoint_loads_through_the_core(tiny_data):
    """models/grasp_map_synthetic.pt (pre-core format) upgrades on load, rebuilds the shipped graph and warm-starts."""
    shipped = ROOT / "models" / "grasp_map_synthetic.pt"
    assert torch.load(shipped, weights_only=True)["format"] == "tacforce.grasp_net/1"
    ckpt = checkpoint.load(shipped, "grasp_map")
    assert ckpt["task"] == "grasp_map" and ckpt["optimizer"] is None
    assert ckpt["best"]["epoch"] == ckpt["epoch"] and ckpt["best"]["score"] == ckpt["best"]["metrics"]["loss"]
    onnx = OnnxModel(shipped.with_suffix(".onnx"), "grasp_map", providers=["cpu"])
    recorded = onnx.metadata.training
    assert ckpt["summary"]["mean_rgb"] == recorded["mean_rgb"] and ckpt["summary"]["train"] == recorded["train"]
    model, normalise = load_grasp_model(ckpt)
    assert model.cfg == GraspNetConfig.from_dict(recorded["config"]["model"]) and normalise.std == 0.25
    image = generate_scene(SceneConfig(seed=3)).image[None]
    with torch.no_grad():
        expected = dense_module(ckpt, 480, 640)[0](torch.from_numpy(image)).numpy()
    np.testing.assert_allclose(onnx.run(image)[0]["grasp_probability"], expected, atol=1e-5)
    warm = GraspMapTask(tiny_config(init_checkpoint=str(shipped)), tiny_data)
    assert model.cfg.padding == "mean" and warm.config.model == dataclasses.replace(model.cfg, padding="replicate")
    assert warm.summary["mean_rgb"] == ckpt["summary"]["mean_rgb"]   # the run's padding, the start's network
    assert torch.equal(warm.build_model().conv8.weight, model.conv8.weight)


def test_commands_do_not_import_torch_and_name_every_network():
    code = ("import sys, tacforce_training.tasks.grasp_map.commands, tacforce_training.tasks.grasp_map.evaluate; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
    assert NETWORKS == tuple(CONFIGS)


def _parser():
    from tacforce_training.core.cli import add_task_commands

    parser = argparse.ArgumentParser()
    add_task_commands(parser.add_subparsers(dest="cmd", required=True))   # the CLI as `tacforce` builds it
    return parser


def _cli(parser, *argv):
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


def test_cli_train_resume_eval_export_on_synthetic_and_folder_data(tmp_path, capsys):
    parser = _parser()
    run = tmp_path / "run"
    assert _cli(parser, "train", "grasp-map", "--synthetic", 4, "--attempts-per-scene", 16, "--config", "tiny",
                "--epochs", 1, "--steps-per-epoch", 2, "--batch-size", 8, "--threads", 1, "--out", run) == 0
    assert _cli(parser, "train", "grasp-map", "--synthetic", 4, "--attempts-per-scene", 16, "--config", "tiny",
                "--epochs", 2, "--steps-per-epoch", 2, "--batch-size", 8, "--threads", 1, "--out", run,
                "--resume") == 0
    assert "resuming from" in capsys.readouterr().out
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 2
    model = run / "grasp_map.onnx"
    assert _cli(parser, "eval", "grasp-map", "--model", model, "--scenes", 2, "--json", "--card",
                run / "grasp_map.md") == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["scenes"] == 2 and 0 <= metrics["top1_success"] <= 1 and len(metrics["precision"]) == 18
    assert "## Held-out evaluation" in (run / "grasp_map.md").read_text()
    # a folder of real-style trials trains and evaluates the same way
    folder = tmp_path / "trials"
    folder.mkdir()
    data = synthetic_attempts(2, 10, SceneConfig(seed=9), seed=9, progress=False)
    for i, img in enumerate(data.images):
        cv2.imwrite(str(folder / f"{i}.png"), img[..., ::-1])
    write_attempt_csv(folder, [(f"{int(r[0])}.png", r[1], r[2], r[3], bool(r[4])) for r in data.rows])
    # warm-started from the synthetic run (--init keeps its network and mean colour)
    assert _cli(parser, "train", "grasp-map", "--folder", folder, "--val-folder", folder, "--init", run / "best.pt",
                "--epochs", 1, "--steps-per-epoch", 1, "--batch-size", 8, "--threads", 1, "--out",
                tmp_path / "run2") == 0
    first = torch.load(run / "best.pt", weights_only=True)
    tuned = torch.load(tmp_path / "run2" / "best.pt", weights_only=True)
    assert tuned["config"]["model"] == first["config"]["model"]
    assert tuned["summary"]["mean_rgb"] == first["summary"]["mean_rgb"]
    assert not torch.equal(tuned["model"]["conv8.weight"], first["model"]["conv8.weight"])
    capsys.readouterr()
    assert _cli(parser, "eval", "grasp-map", "--model", tmp_path / "run2" / "grasp_map.onnx", "--folder", folder) == 0
    assert "accuracy" in capsys.readouterr().out
    assert _cli(parser, "export", "grasp-map", "--checkpoint", run / "best.pt", "--out", tmp_path / "small.onnx",
                "--height", 256, "--width", 256) == 0
    assert OnnxModel(tmp_path / "small.onnx", "grasp_map", providers=["cpu"]).metadata.input.height == 256
    capsys.readouterr()
    assert _cli(parser, "train", "grasp-map", "--config", "tiny", "--out", tmp_path / "none") == 1
    assert "no training data" in capsys.readouterr().err
    assert _cli(parser, "eval", "grasp-map", "--model", tmp_path / "missing.onnx") == 1
    assert "not found" in capsys.readouterr().err
    checkpoint.save(checkpoint.make("grasp_success", epoch=1), tmp_path / "gs.pt")
    assert _cli(parser, "export", "grasp-map", "--checkpoint", tmp_path / "gs.pt", "--out", tmp_path / "x.onnx") == 1
    assert capsys.readouterr().err.strip().endswith("gs.pt is a grasp_success checkpoint, not a grasp_map one")


def test_attempts_must_point_at_images():
    with pytest.raises(ValueError):
        GraspAttempts([np.zeros((4, 4, 3), np.uint8)], np.array([[1, 0, 0, 0, 1]]))


@pytest.mark.parametrize("turn, mirror", [(0.0, False), (0.4, False), (2.0, True), (4.0, False)])
def test_any_angle_rotation_turns_the_grasp_with_the_image(turn, mirror):
    """A bar along the grasp line stays along it after the patch is turned (and mirrored)."""
    from tacforce_training.tasks.grasp_map.data import ROTATION_WINDOW, rotate_patch

    theta = 0.3
    window = np.zeros((ROTATION_WINDOW, ROTATION_WINDOW), np.float32)
    c = ROTATION_WINDOW // 2
    d = np.array([math.cos(theta), math.sin(theta)]) * 60
    cv2.line(window, (round(c - d[0]), round(c - d[1])), (round(c + d[0]), round(c + d[1])), 1.0, 5)
    out, angle = rotate_patch(window, theta, turn, mirror, PATCH)
    assert out.shape == (PATCH, PATCH)
    vs, us = np.nonzero(out > 0.5)
    assert abs(us.mean() - PATCH // 2) < 1.5 and abs(vs.mean() - PATCH // 2) < 1.5   # still centred
    cov = np.cov(np.stack([us, vs]).astype(float))
    axis = math.atan2(*np.linalg.eigh(cov)[1][:, 1][::-1]) % math.pi
    assert min(abs(axis - angle), math.pi - abs(axis - angle)) < 0.05


def test_empty_table_trials_lie_out_of_the_fingers_reach(tmp_path):
    folder = write_depth_trials(tmp_path / "trials", 3)
    with open(folder / "trials.csv", "w") as f:   # the camera of each scene, as grasp-trials writes it
        f.write("scene,object_indices,fov_deg,camera_height_m\n" + "".join(f"{i},5,45.0,0.6\n" for i in range(3)))
    data = load_attempt_folder(folder, depth=True)
    more = empty_table_trials(folder, data, 5, seed=0)
    added = more.rows[len(data):]
    assert len(added) == 15 and (added[:, 4] == 0).all()
    reach_px = 0.06 * 80 / math.tan(math.radians(22.5)) / 0.6
    for image, u, v, _, _ in added:
        vs, us = np.nonzero(data.heights[int(image)] > 0.006)
        assert np.hypot(us - u, vs - v).min() > reach_px
    np.testing.assert_array_equal(more.rows[:len(data)], data.rows)
    with pytest.raises(ValueError, match="depth"):
        empty_table_trials(folder, load_attempt_folder(folder), 5)


def test_shift_and_stitch_interleaves_maps_16_px_apart():
    """shifts=2: cell (2r+i, 2c+j) is the grasp centred on pixel (16 + 32c + 16j, 16 + 32r + 16i)."""
    torch.manual_seed(0)
    model = GraspNet(TINY)
    ckpt = {"config": {"model": model.cfg.to_dict()}, "model": model.state_dict(),
            "summary": {"mean_rgb": [120.0, 110.0, 100.0], "std": 0.25}}
    h, w = 320, 384
    image = generate_scene(SceneConfig(height=h + 16, width=w + 16, seed=5)).image
    coarse, rows, cols = dense_module(ckpt, h, w)
    fine, fine_rows, fine_cols = dense_module(ckpt, h, w, shifts=2)
    assert (fine_rows, fine_cols) == (2 * rows, 2 * cols)
    shifted, _, _ = dense_module(ckpt, h, w)
    with torch.no_grad():
        a = coarse(torch.from_numpy(image[None, :h, :w])).numpy()
        b = fine(torch.from_numpy(image[None, :h, :w])).numpy()
        c = shifted(torch.from_numpy(np.ascontiguousarray(image[None, 16:h + 16, 16:w + 16]))).numpy()
    np.testing.assert_allclose(b[::2, ::2], a, atol=1e-6)
    # away from the border (where padding differs) the odd cells are the map of the image moved by 16 px
    np.testing.assert_allclose(b[1::2, 1::2][4:-4, 4:-4], c[4:-4, 4:-4], atol=1e-4)
    with pytest.raises(ValueError, match="divide"):
        dense_padding(h, w, 3)


def test_a_colour_only_start_gains_a_depth_channel_that_begins_at_zero(tmp_path):
    shipped = ROOT / "models" / "grasp_map_synthetic.pt"
    data = load_attempt_folder(write_depth_trials(tmp_path / "trials", 2), depth=True)
    task = GraspMapTask(tiny_config(init_checkpoint=str(shipped), model=dataclasses.replace(TINY, depth=True)), data)
    start = checkpoint.load(shipped, "grasp_map")["model"]["conv1.weight"]
    conv1 = task.build_model().conv1.weight
    assert task.config.model.depth and conv1.shape == (start.shape[0], 4, *start.shape[2:])
    assert torch.equal(conv1[:, :3], start) and not conv1[:, 3].any()
