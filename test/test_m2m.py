"""m2m task tests: the tiny config on synthetic dot-grid masks through the shared loop (CPU, seconds)."""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tacforce_ros.cli import main
from tacforce_ros.sim.paired_contacts import render_paired_contacts
from tacforce_training.core import checkpoint
from tacforce_training.core.loop import make_optimizer
from tacforce_training.models.m2m_unet import CONFIGS, M2MUNet, PatchDiscriminator, alpha_bar
from tacforce_training.tasks.m2m.config import M2MConfig
from tacforce_training.tasks.m2m.evaluate import evaluate_m2m
from tacforce_training.tasks.m2m.train import M2MTask, train
from tacforce_training.tasks.m2m.translator import M2MTranslator, ddim_timesteps
from taskutil import assert_same_run, dies_in_epoch_2

REPO = Path(__file__).resolve().parents[1]
H, W = 480, 640


def dots(spacing: int, radius: int, offset_rows: bool, press=None) -> np.ndarray:
    """Draw a dot grid (every other row shifted by half a spacing when ``offset_rows``); ``press`` =
    (column, row, radius, dx, dy) moves and enlarges the dots within that circle.
    """
    img = np.zeros((H, W), np.uint8)
    for j, y in enumerate(range(spacing // 2, H, spacing)):
        shift = spacing // 2 if offset_rows and j % 2 else 0
        for x in range(spacing // 2 + shift, W, spacing):
            r, cx, cy = radius, x, y
            if press is not None and (x - press[0]) ** 2 + (y - press[1]) ** 2 < press[2] ** 2:
                cx, cy, r = x + press[3], y + press[4], radius + 2
            cv2.circle(img, (cx, cy), r, 1, -1)
    return img.astype(bool)


def pairs(count: int, seed: int):
    """Location-paired source (square grid) and target (offset grid) masks of the same presses."""
    rng = np.random.default_rng(seed)
    presses = [(int(rng.integers(100, 540)), int(rng.integers(100, 380)), int(rng.integers(60, 120)),
                int(rng.integers(-8, 9)), int(rng.integers(-8, 9))) for _ in range(count)]
    source = np.stack([dots(60, 10, False, p) for p in presses])
    target = np.stack([dots(50, 9, True, p) for p in presses])
    return source, target


SOURCE_REF, TARGET_REF = dots(60, 10, False), dots(50, 9, True)


def tiny_config(**changes) -> M2MConfig:
    base = {"model": "tiny", "epochs": 6, "steps_per_epoch": 10, "batch_size": 4, "crop": 32, "lr": 3e-3,
            "gan_warmup": 30, "seed": 0, "num_threads": 1}
    return M2MConfig(**{**base, **changes})


def run(out, cfg=None, resume=False, count=2):
    """Train on ``count`` pairs (pixel loss alone for 3 epochs, then with the GAN terms), validated on 2 more."""
    source, target = pairs(count, seed=0)
    return train(cfg or tiny_config(), source, target, SOURCE_REF, TARGET_REF, out, source_name="grid",
                 target_name="hex", val=pairs(2, seed=1), resume=resume)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    result = run(tmp_path_factory.mktemp("m2m"))
    return result, pairs(2, seed=1)


def test_model_shapes_and_schedule():
    cfg = CONFIGS["tiny"]
    assert CONFIGS["cpu"].working_size(H, W) == (160, 208)
    assert CONFIGS["default"].working_size(H, W)[0] == 256
    model, disc = M2MUNet(cfg), PatchDiscriminator(cfg)
    x = torch.zeros(2, 1, 32, 48)
    assert model(x, x, x, x, torch.tensor([0, cfg.timesteps - 1])).shape == (2, 1, 32, 48)
    logits, feats = disc(x, x, x, return_features=True)
    assert logits.ndim == 4 and len(feats) == cfg.disc_layers
    ab = alpha_bar(torch.arange(cfg.timesteps), cfg.timesteps)
    assert ab[0] > 0.99 and ab[-1] < 1e-3 and bool((ab[1:] <= ab[:-1]).all())
    assert ddim_timesteps(1, 1000) == [999] and ddim_timesteps(4, 1000) == [999, 666, 333, 0]


def test_training_writes_core_checkpoints(trained):
    result, _ = trained
    ckpt = checkpoint.load(result.best_path, "m2m")
    assert ckpt["task"] == "m2m" and ckpt["optimizer"] is None and ckpt["epoch"] == result.best_epoch
    assert (ckpt["summary"]["source"], ckpt["summary"]["target"]) == ("grid", "hex")
    assert ckpt["summary"]["sensor_size"] == [H, W] and ckpt["summary"]["target_ref"].dtype == torch.uint8
    assert np.array_equal(ckpt["summary"]["target_ref"].numpy().astype(bool), TARGET_REF)
    last = checkpoint.load(result.last_path, "m2m")
    assert last["epoch"] == 6 and last["step"] == 60 and last["optimizer"] is not None
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4, 5, 6]
    assert 0.0 <= result.metrics["iou"] <= 1.0 and 0.0 < result.metrics["threshold"] < 1.0


def test_pixel_loss_decreases_before_the_gan_starts(trained):
    history = trained[0].history
    assert tiny_config().gan_epoch == 3
    assert history[2]["train_loss"] < 0.8 * history[0]["train_loss"], history


def test_samples_depend_on_seed_epoch_and_index_only(trained):
    cfg = tiny_config()
    source, target = pairs(2, seed=0)
    crops = [M2MTask(cfg, source, target, SOURCE_REF, TARGET_REF, source_name="a", target_name="b",
                     val=pairs(1, seed=1)).train_set() for _ in range(2)]
    assert len(crops[0]) == cfg.steps_per_epoch * cfg.batch_size
    crops[0].set_epoch(4)
    crops[1].set_epoch(4)
    a, b = crops[0][7], crops[1][7]
    assert all(torch.equal(a[k], b[k]) for k in a) and a["gan"] == 1.0 and a["source"].shape == (1, 32, 32)
    crops[1].set_epoch(0)
    assert not torch.equal(crops[1][7]["noise"], a["noise"]) and crops[1][7]["gan"] == 0.0


def test_discriminator_trains_at_its_own_rate():
    cfg = tiny_config(lr=1e-3, disc_lr=2e-4, weight_decay=0.0)
    source, target = pairs(2, seed=0)
    task = M2MTask(cfg, source, target, SOURCE_REF, TARGET_REF, source_name="a", target_name="b",
                   val=pairs(1, seed=1))
    model = task.build_model()
    disc, gen = model.discriminator.layers[0][0].weight, next(model.generator.parameters())
    before = [disc.detach().clone(), gen.detach().clone()]
    optimizer = make_optimizer(model, cfg, task.param_groups(model))
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    optimizer.step()        # Adam's first step moves each parameter by its group's lr
    assert torch.allclose(disc.detach() - before[0], torch.full_like(before[0], -2e-4), atol=1e-8)
    assert torch.allclose(gen.detach() - before[1], torch.full_like(before[1], -1e-3), atol=1e-8)
    assert {g["betas"] for g in optimizer.param_groups} == {(0.9, 0.999), (0.5, 0.999)}


def test_resume_matches_uninterrupted_run(tmp_path, monkeypatch):
    full = run(tmp_path / "full", tiny_config(epochs=3))
    with dies_in_epoch_2(monkeypatch, M2MTask):
        run(tmp_path / "resumed", tiny_config(epochs=3))
    assert torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)["epoch"] == 1

    resumed = run(tmp_path / "resumed", tiny_config(epochs=3), resume=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    assert_same_run(full, resumed, "val_iou")
    with pytest.raises(ValueError, match="was trained on"):
        run(tmp_path / "resumed", tiny_config(epochs=4), resume=True, count=3)
    with pytest.raises(ValueError, match="lr, disc_lr"):
        run(tmp_path / "resumed", tiny_config(epochs=4, lr=1e-3), resume=True)


def test_translate_shape_and_determinism(trained):
    result, (val_source, _) = trained
    translator = M2MTranslator.load(result.best_path)
    assert (translator.source_name, translator.target_name) == ("grid", "hex")
    first = translator.translate(val_source, seed=3)
    assert first.dtype == bool and first.shape == (2, H, W)
    assert np.array_equal(first, translator.translate(val_source, seed=3))
    assert translator.translate(val_source, steps=3, batch_size=1).shape == (2, H, W)
    info = translator.info()
    assert info["config"] == "tiny" and info["working_size"] == [48, 64]
    assert info["steps_trained"] == 10 * result.best_epoch and len(info["checkpoint_sha256"]) == 64


def test_threshold_is_calibrated_to_the_true_marker_area(trained):
    result, (val_source, val_target) = trained
    translator = M2MTranslator.load(result.best_path)
    assert translator.threshold == result.metrics["threshold"] == translator.info()["threshold"]
    area = translator.translate(val_source).mean()
    assert area == pytest.approx(val_target.mean(), rel=0.01)
    assert 0.0 <= result.metrics["iou_at_0.5"] <= 1.0


def test_legacy_checkpoint_translates_the_same(trained, tmp_path):
    """An m2m.pt as the pre-core trainer wrote it (format tacforce.m2m/1) loads through the converter."""
    result, (val_source, _) = trained
    new = checkpoint.load(result.best_path, "m2m")
    generator = {k.removeprefix("generator."): v for k, v in new["model"].items() if k.startswith("generator.")}
    legacy = {"format": "tacforce.m2m/1", "model": generator, "model_config": CONFIGS["tiny"].to_dict(),
              "train_config": {"model": "tiny", "steps": 60, "batch_size": 4, "crop": 32, "lr": 3e-3, "disc_lr": 2e-4,
                               "pixel": 1.0, "feature": 1.0, "adversarial": 0.05, "gan_warmup": 30,
                               "one_step_fraction": 0.5, "log_every": 10, "seed": 0, "threads": 1, "device": "cpu"},
              "source_name": "grid", "target_name": "hex", "source_ref": new["summary"]["source_ref"],
              "target_ref": new["summary"]["target_ref"], "sensor_height": H, "sensor_width": W,
              "summary": {"pairs": 2, "working_size": [48, 64], "steps": 60, "val_pairs": 2, "val_iou": 0.5},
              "threshold": new["best"]["metrics"]["threshold"]}
    torch.save(legacy, tmp_path / "m2m.pt")
    old, now = M2MTranslator.load(tmp_path / "m2m.pt"), M2MTranslator.load(result.best_path)
    assert old.info()["steps_trained"] == 60 and old.threshold == now.threshold
    assert np.array_equal(old.translate(val_source), now.translate(val_source))
    (tmp_path / "run").mkdir()
    torch.save(legacy, tmp_path / "run" / "last.pt")
    with pytest.raises(ValueError, match="weights only"):
        run(tmp_path / "run", resume=True)


def test_load_rejects_other_files(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pt"):
        M2MTranslator.load(garbage)
    checkpoint.save(checkpoint.make("tactile_force", epoch=1), tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt is a tactile_force checkpoint, not a m2m one"):
        M2MTranslator.load(tmp_path / "other.pt")


def test_rejects_non_binary_masks(tmp_path):
    source, target = pairs(1, seed=0)
    with pytest.raises(ValueError, match="bool"):
        train(tiny_config(), source.astype(np.uint8), target, SOURCE_REF, TARGET_REF, tmp_path,
              source_name="a", target_name="b", val=pairs(1, seed=1))


def test_evaluate(trained):
    result, (val_source, val_target) = trained
    translator = M2MTranslator.load(result.best_path)
    result = evaluate_m2m(translator, val_source, val_target)
    assert result["max_distance_px"] == pytest.approx(25.0)
    for key in ("translation", "source_as_is", "target_reference"):
        assert 0.0 <= result[key]["iou"] <= 1.0
        assert 0.0 <= result[key]["matched_fraction"] <= 1.0
        err = result[key]["centroid_error_px"]
        assert np.isnan(err) or 0.0 <= err <= result["max_distance_px"]
    # the target reference differs from a pressed target only where the dots moved
    assert result["target_reference"]["iou"] > result["source_as_is"]["iou"]

    class Oracle:  # a translator that returns the true targets scores perfectly
        target_ref = TARGET_REF

        def translate(self, source_masks, steps=1):
            return val_target

    perfect = evaluate_m2m(Oracle(), val_source, val_target)["translation"]
    assert perfect["iou"] == 1.0 and perfect["centroid_error_px"] == 0.0 and perfect["matched_fraction"] == 1.0


def test_cli_train_resume_eval(tmp_path, capsys):
    from tacforce_training.core.cli import add_task_commands

    parser = argparse.ArgumentParser()
    add_task_commands(parser.add_subparsers(dest="cmd", required=True))   # the CLI as `tacforce` builds it
    pairs_file, out = tmp_path / "pairs.npz", tmp_path / "out"
    render_paired_contacts(["array1", "diamond1"], ("sphere",), contacts=3, frames_per_contact=2, grid=16,
                           progress=False).save(pairs_file)
    common = ["train", "m2m", "--pairs", str(pairs_file), "--source", "array1", "--target", "diamond1",
              "--config", "tiny", "--steps", "4", "--threads", "1", "--out", str(out)]
    args = parser.parse_args([*common, "--epochs", "2"])
    assert args.func(args) == 0
    assert "validation IoU" in capsys.readouterr().out
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 4
    args = parser.parse_args([*common, "--epochs", "3", "--resume"])   # 2 more steps per epoch, one more epoch
    assert args.func(args) == 0
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 6
    summary = json.loads((out / "m2m_summary.json").read_text())
    assert summary["epochs"] == 3 and summary["source"] == "array1" and "source_ref" not in summary

    capsys.readouterr()
    card = tmp_path / "card.md"
    args = parser.parse_args(["eval", "m2m", "--model", str(out / "m2m.pt"), "--pairs", str(pairs_file), "--json",
                              "--card", str(card)])
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["frames"] == 6 and 0.0 <= report["translation"]["iou"] <= 1.0
    assert "## m2m image quality" in card.read_text() and "| m2m translation |" in card.read_text()

    checkpoint.save(checkpoint.make("grasp_map", epoch=1), tmp_path / "grasp_map.pt")
    args = parser.parse_args(["eval", "m2m", "--model", str(tmp_path / "grasp_map.pt"), "--pairs", str(pairs_file)])
    assert args.func(args) == 1
    assert "grasp_map.pt is a grasp_map checkpoint, not a m2m one" in capsys.readouterr().err
    # `eval transfer` tabulates several models: its own flags, none of the shared --model
    args = parser.parse_args(["eval", "transfer", "--row", "c", "m", "x.onnx", "bags/*"])
    assert args.model == "transfer" and not hasattr(args, "card")


def test_two_processes_match_one(tmp_path):
    """2 gloo ranks (2 crops each), the second epoch with the GAN terms, train as one process does: every
    parameter gets a gradient each step (GAN terms times 0 in the warm-up), so DDP's reducer never stalls.
    """
    pairs_file = tmp_path / "pairs.npz"
    render_paired_contacts(["array1", "diamond1"], ("sphere",), contacts=3, frames_per_contact=2, grid=16,
                           progress=False).save(pairs_file)
    args = ["train", "m2m", "--pairs", str(pairs_file), "--source", "array1", "--target", "diamond1", "--config",
            "tiny", "--epochs", "2", "--steps", "60", "--batch-size", "4", "--threads", "1", "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "tacforce_ros.cli", *args, "--out", str(tmp_path / "two")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    one, two = ([float(r["val_iou"]) for r in csv.DictReader((tmp_path / d / "metrics.csv").open())]
                for d in ("one", "two"))
    np.testing.assert_allclose(two, one, rtol=1e-3)
    # only the summation order differs, but conv biases ahead of GroupNorm get almost no gradient and Adam
    # scales that noise up to steps of ~lr (measured: 6e-3 after 60 steps at lr 1e-3; the other weights 5e-4)
    a, b = (checkpoint.load(tmp_path / d / "last.pt", "m2m")["model"] for d in ("one", "two"))
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 0.03


def test_commands_and_evaluation_do_not_import_torch():
    code = ("import sys, tacforce_training.tasks.m2m.commands, tacforce_training.tasks.m2m.evaluate, "
            "tacforce_training.tasks.transfer.commands; sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
