"""Synthetic after-grasp frames: labels follow the kind, splits are reproducible, the held-out
split uses viewpoints and shapes that training never sees, and the seeds' folder layout.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from tacforce_ros.sim.grasp_check_scenes import (CLASS_NAMES, FAILURE_KINDS, HELD_OUT_SHAPES, KINDS, TRAIN_SHAPES,
                                                 CheckSceneConfig, ViewRanges, frames, generate, main,
                                                 render_frame, write_folder_dataset)


def test_labels_follow_the_kind_for_every_kind_and_split():
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for kind in KINDS:
            frame = render_frame(rng, split=split, kind=kind)
            assert frame.kind == kind
            assert frame.label == (1 if kind == "held" else 0)
            assert frame.image.dtype == np.uint8 and frame.image.shape == (120, 160, 3)


def test_frames_are_reproducible_from_the_seed_and_differ_across_seeds():
    a, la, ka, _ = generate(12, seed=5)
    b, lb, kb, _ = generate(12, seed=5)
    c, _, _, _ = generate(12, seed=6)
    assert np.array_equal(a, b) and np.array_equal(la, lb) and ka == kb
    assert not np.array_equal(a, c)


def test_kinds_drawn_with_the_configured_mix():
    _, labels, kinds, _ = generate(400, seed=1, config=CheckSceneConfig(success_fraction=0.25))
    assert 0.17 < labels.mean() < 0.33
    assert set(kinds) == set(KINDS)
    assert all((k == "held") == bool(y) for k, y in zip(kinds, labels))
    _, labels, kinds, _ = generate(60, seed=1, config=CheckSceneConfig(success_fraction=0.0,
                                                                       failure_weights=(0, 0, 1, 0)))
    assert labels.sum() == 0 and set(kinds) == {"slipping"}


def test_held_out_split_is_disjoint_from_training_viewpoints_and_shapes():
    views = ViewRanges()
    train = list(frames(300, seed=2, split="train"))
    test = list(frames(300, seed=2, split="test"))

    def outside_training(view):
        kx, ky = view["keystone"]
        return (not views.roll_deg[0] <= view["roll_deg"] <= views.roll_deg[1]
                or not all(views.keystone[0] <= k <= views.keystone[1] for k in (kx, ky))
                or not views.scale[0] <= view["scale"] <= views.scale[1])

    assert {f.shape for f in train} <= set(TRAIN_SHAPES)
    assert not any(outside_training(f.view) for f in train)
    # every test frame has a viewpoint factor outside the training ranges
    assert all(outside_training(f.view) for f in test)
    assert {f.view["held_out"] for f in test} == {"roll", "keystone", "scale"}
    assert {f.shape for f in test} & set(HELD_OUT_SHAPES) == set(HELD_OUT_SHAPES)
    assert not set(TRAIN_SHAPES) & set(HELD_OUT_SHAPES)


def test_classes_look_different_on_average():
    """Not a trivially constant image: frames of one class vary, and held frames differ from
    failure frames (the object between the fingers).
    """
    images, labels, _, _ = generate(80, seed=3)
    assert images.std(axis=0).mean() > 20
    held = images[labels == 1].astype(float).mean(0)
    not_held = images[labels == 0].astype(float).mean(0)
    assert np.abs(held - not_held).mean() > 1.0


def test_in_motion_frames_are_blurred():
    rng = np.random.default_rng(4)

    def sharpness(kind):
        return np.mean([cv2.Laplacian(cv2.cvtColor(render_frame(rng, kind=kind).image, cv2.COLOR_RGB2GRAY),
                                      cv2.CV_64F).var() for _ in range(20)])

    assert sharpness("in_motion") < 0.8 * sharpness("empty")


def test_folder_dataset_has_the_seeds_layout(tmp_path):
    written = write_folder_dataset(tmp_path, 30, seed=0)
    assert sum(written.values()) == 30
    for name in CLASS_NAMES:
        files = sorted((tmp_path / name).glob("*.png"))
        assert len(files) == written[name]
        assert all(("_held_" in f.name) == (name == "success") for f in files)
    image = cv2.imread(str(next((tmp_path / "success").glob("*.png"))))
    assert image.shape == (120, 160, 3)


def test_command_line_writer(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "d"), "--count", "8", "--split", "test", "--size", "96x64"]) == 0
    assert "test split" in capsys.readouterr().out
    files = list((tmp_path / "d").rglob("*.png"))
    assert len(files) == 8 and cv2.imread(str(files[0])).shape == (64, 96, 3)


@pytest.mark.parametrize("kwargs", [dict(success_fraction=1.5), dict(failure_weights=(1, 1)),
                                    dict(train_shapes=("box", "mug")), dict(train_shapes=("pyramid",)),
                                    dict(height=20)])
def test_bad_configs_are_refused(kwargs):
    with pytest.raises(ValueError):
        CheckSceneConfig(**kwargs)


def test_unknown_kind_and_split_are_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="kind"):
        render_frame(rng, kind="levitating")
    with pytest.raises(ValueError, match="split"):
        render_frame(rng, split="validation")
    assert FAILURE_KINDS == KINDS[1:]
