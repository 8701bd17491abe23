"""GraspNet training side: network, masked loss, AlexNet init, label-exact augmentation, data
sources, dense export contract, and the train/eval/export commands on tiny configs.
"""
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
from tacforce_ros.perception.grasp_map import GraspMapLayout
from tacforce_ros.sim.grasp_attempts import write_attempt_csv
from tacforce_ros.sim.grasp_labels import grasp_outcomes
from tacforce_ros.sim.grasp_scenes import HELD_OUT_SHAPES, TRAIN_SHAPES, SceneConfig, generate_scene
from tacforce_training.grasp_map_data import (GraspAttempts, PatchSampler, augment, load_attempt_folder, merge_attempts,
                                              synthetic_attempts)
from tacforce_training.grasp_map_export import dense_padding, export_grasp_map
from tacforce_training.grasp_map_train import GraspTrainConfig, train_grasp_net
from tacforce_training.models.grasp_net import (CONFIGS, PATCH, STRIDE, GraspNet, GraspNetConfig, load_alexnet_features,
                                                masked_bin_loss, success_probability)

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
    patches, bins, ok = a
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


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gm")
    data = synthetic_attempts(6, 24, SceneConfig(seed=1), seed=1, progress=False)
    cfg = GraspTrainConfig(model=TINY, epochs=2, steps_per_epoch=3, batch_size=16, num_threads=1)
    result = train_grasp_net(cfg, data, out, progress=False)
    return result, data, out


def test_training_checkpoints_and_dense_export_contract(tiny_run):
    result, data, out = tiny_run
    ckpt = torch.load(result.best_path, map_location="cpu", weights_only=True)
    last = torch.load(result.last_path, map_location="cpu", weights_only=True)
    assert ckpt["format"] == "tacforce.grasp_net/1" and len(last["history"]) == 2
    assert ckpt["epoch"] == result.best_epoch == ckpt["history"][-1]["epoch"]
    assert 0 <= result.metrics["accuracy"] <= 1 and result.summary["train"]["attempts"] > 0
    h, w = 240, 320  # another camera size: the graph is exported for it
    images = np.stack([generate_scene(SceneConfig(height=h, width=w, seed=s)).image for s in range(2)])
    meta = export_grasp_map(result.best_path, out / "gm.onnx", h, w, images, "rgb8", command="test")
    spec = meta.outputs["grasp_probability"]
    assert meta.task == "grasp_map" and spec["shape"] == [8, 10, 18] and spec["stride_px"] == 32
    assert spec["offset_px"] == 16 and "+u" in spec["angle_convention"]
    model = OnnxModel(out / "gm.onnx", "grasp_map", providers=["cpu"])
    layout = GraspMapLayout.from_metadata(model.metadata.outputs)
    prob = model.run(images[:1])[0]["grasp_probability"]
    assert prob.shape == (layout.rows, layout.cols, layout.bins) and ((prob >= 0) & (prob <= 1)).all()
    with pytest.raises(ModelError, match="grasp_map"):
        OnnxModel(out / "gm.onnx", "tactile_force", providers=["cpu"])
    # a bgr8 camera: the graph reorders, so the same scene gives the same map
    export_grasp_map(result.best_path, out / "gm_bgr.onnx", h, w, images, "bgr8")
    bgr = OnnxModel(out / "gm_bgr.onnx", "grasp_map", providers=["cpu"])
    np.testing.assert_allclose(bgr.run(np.ascontiguousarray(images[:1, ..., ::-1]))[0]["grasp_probability"],
                               prob, atol=1e-5)
    assert (out / "gm.md").read_text().count("angle") >= 1


def _cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "tacforce_ros.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_cli_train_eval_export_on_synthetic_and_folder_data(tmp_path):
    r = _cli("train", "grasp-map", "--synthetic", "4", "--attempts-per-scene", "16", "--config", "tiny",
             "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "8", "--threads", "1",
             "--out", str(tmp_path / "run"))
    assert r.returncode == 0, r.stdout + r.stderr
    model = tmp_path / "run" / "grasp_map.onnx"
    r = _cli("eval", "grasp-map", "--model", str(model), "--scenes", "2", "--json", "--card",
             str(tmp_path / "run" / "grasp_map.md"))
    assert r.returncode == 0, r.stderr
    metrics = json.loads(r.stdout)
    assert metrics["scenes"] == 2 and 0 <= metrics["top1_success"] <= 1 and len(metrics["precision"]) == 18
    assert "## Held-out evaluation" in (tmp_path / "run" / "grasp_map.md").read_text()
    # a folder of real-style trials trains and evaluates the same way
    folder = tmp_path / "trials"
    folder.mkdir()
    data = synthetic_attempts(2, 10, SceneConfig(seed=9), seed=9, progress=False)
    for i, img in enumerate(data.images):
        cv2.imwrite(str(folder / f"{i}.png"), img[..., ::-1])
    write_attempt_csv(folder, [(f"{int(r[0])}.png", r[1], r[2], r[3], bool(r[4])) for r in data.rows])
    # fine-tuned from the synthetic run (--init keeps its network and mean colour)
    r = _cli("train", "grasp-map", "--folder", str(folder), "--val-folder", str(folder), "--init",
             str(tmp_path / "run" / "best.pt"), "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "8",
             "--threads", "1", "--out", str(tmp_path / "run2"))
    assert r.returncode == 0, r.stdout + r.stderr
    first = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    tuned = torch.load(tmp_path / "run2" / "best.pt", weights_only=True)
    assert tuned["config"]["model"] == first["config"]["model"]
    assert tuned["normalisation"] == first["normalisation"]
    assert not torch.equal(tuned["model"]["conv8.weight"], first["model"]["conv8.weight"])
    r = _cli("eval", "grasp-map", "--model", str(tmp_path / "run2" / "grasp_map.onnx"), "--folder", str(folder))
    assert r.returncode == 0 and "accuracy" in r.stdout, r.stdout + r.stderr
    r = _cli("export", "grasp-map", "--checkpoint", str(tmp_path / "run" / "best.pt"), "--out",
             str(tmp_path / "small.onnx"), "--height", "256", "--width", "256")
    assert r.returncode == 0, r.stderr
    assert OnnxModel(tmp_path / "small.onnx", "grasp_map", providers=["cpu"]).metadata.input.height == 256
    r = _cli("train", "grasp-map", "--config", "tiny", "--out", str(tmp_path / "none"))
    assert r.returncode == 1 and "no training data" in r.stderr
    r = _cli("eval", "grasp-map", "--model", str(tmp_path / "missing.onnx"))
    assert r.returncode == 1 and "not found" in r.stderr


def test_attempts_must_point_at_images():
    with pytest.raises(ValueError):
        GraspAttempts([np.zeros((4, 4, 3), np.uint8)], np.array([[1, 0, 0, 0, 1]]))
