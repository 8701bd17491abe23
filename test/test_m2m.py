"""m2m translator smoke tests: the tiny config on synthetic dot-grid masks (CPU, seconds)."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from tacforce_training.m2m_eval import evaluate_m2m
from tacforce_training.m2m_train import M2MTrainConfig, M2MTranslator, ddim_timesteps, train_m2m
from tacforce_training.models.m2m_unet import CONFIGS, M2MUNet, PatchDiscriminator, alpha_bar

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


def tiny_config(**changes) -> M2MTrainConfig:
    base = {"model": "tiny", "steps": 60, "batch_size": 4, "crop": 32, "lr": 3e-3, "gan_warmup": 30,
            "log_every": 10, "seed": 0, "threads": 1}
    return M2MTrainConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Run an overfit training on 2 pairs (pixel loss alone, then with the GAN terms), validated on 2 more."""
    out = tmp_path_factory.mktemp("m2m")
    source, target = pairs(2, seed=0)
    val = pairs(2, seed=1)
    summary = train_m2m(tiny_config(), source, target, SOURCE_REF, TARGET_REF, out,
                        source_name="grid", target_name="hex", val=val, progress=False)
    return out, summary, val


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


def test_training_writes_loadable_checkpoint(trained):
    out, summary, _ = trained
    ckpt = torch.load(out / "m2m.pt", map_location="cpu", weights_only=True)
    assert ckpt["format"] == "tacforce.m2m/1"
    assert (ckpt["source_name"], ckpt["target_name"]) == ("grid", "hex")
    assert (ckpt["sensor_height"], ckpt["sensor_width"]) == (H, W)
    assert ckpt["target_ref"].dtype == torch.uint8
    assert np.array_equal(ckpt["target_ref"].numpy().astype(bool), TARGET_REF)
    saved = json.loads((out / "m2m_summary.json").read_text())
    assert saved["steps"] == 60 and saved["seconds"] > 0 and 0.0 <= saved["val_iou"] <= 1.0
    assert {"pixel", "feature", "adversarial", "discriminator"} <= set(summary["final_losses"])


def test_pixel_loss_decreases(trained):
    history = trained[1]["history"]
    assert len(history) == 6
    assert history[-1]["pixel"] < 0.8 * history[0]["pixel"], history


def test_translate_shape_and_determinism(trained):
    out, _, (val_source, _) = trained
    translator = M2MTranslator.load(out / "m2m.pt")
    assert (translator.source_name, translator.target_name) == ("grid", "hex")
    first = translator.translate(val_source, seed=3)
    assert first.dtype == bool and first.shape == (2, H, W)
    assert np.array_equal(first, translator.translate(val_source, seed=3))
    assert translator.translate(val_source, steps=3, batch_size=1).shape == (2, H, W)
    info = translator.info()
    assert info["config"] == "tiny" and info["working_size"] == [48, 64] and info["steps_trained"] == 60
    assert len(info["checkpoint_sha256"]) == 64


def test_threshold_is_calibrated_to_the_true_marker_area(trained):
    out, summary, (val_source, val_target) = trained
    translator = M2MTranslator.load(out / "m2m.pt")
    assert 0.0 < translator.threshold < 1.0 and translator.info()["threshold"] == translator.threshold
    assert torch.load(out / "m2m.pt", weights_only=True)["threshold"] == translator.threshold
    translator.calibrate(val_source, val_target)
    area = translator.translate(val_source).mean()
    assert area == pytest.approx(val_target.mean(), rel=0.01)
    assert "val_iou_at_0.5" in summary


def test_load_rejects_other_files(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pt"):
        M2MTranslator.load(garbage)
    other = tmp_path / "other.pt"
    torch.save({"format": "tacforce.temporal_force/1"}, other)
    with pytest.raises(ValueError, match="other.pt.*not an m2m checkpoint"):
        M2MTranslator.load(other)


def test_rejects_non_binary_masks(tmp_path):
    source, target = pairs(1, seed=0)
    with pytest.raises(ValueError, match="bool"):
        train_m2m(tiny_config(), source.astype(np.uint8), target, SOURCE_REF, TARGET_REF, tmp_path,
                  source_name="a", target_name="b", progress=False)


def test_evaluate(trained):
    out, _, (val_source, val_target) = trained
    translator = M2MTranslator.load(out / "m2m.pt")
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
