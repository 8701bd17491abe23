"""The grasp-success check on PyBullet grasp trials: `tacforce sim grasp-trials` output trains a
tiny model end to end and `eval` scores held-out trials; held-out objects never reach training or
validation.
"""
from __future__ import annotations

import csv
import json

import pytest
import torch

from tacforce_ros.cli import main as cli
from tacforce_ros.sim.pybullet_grasp import runs
from tacforce_ros.sim.pybullet_grasp.scene import TrialSceneConfig
from tacforce_training.tasks.grasp_success.data import load_bags, trial_bag

torch.set_num_threads(1)
SMALL = TrialSceneConfig(objects_per_scene=(1, 2), settle_s=1.0)
TINY = ["--arch", "tiny_cnn", "--image-size", "32", "--epochs", "1", "--batch-size", "8", "--threads", "1",
        "--frame-size", "64x48"]


@pytest.fixture(scope="module")
def trials(tmp_path_factory):
    """Two small runs: training objects (seed 1) and held-out objects (seed 2), 3 scenes x 4 trials."""
    root = tmp_path_factory.mktemp("trials")
    out = {}
    for name, objects, seed in (("train", (0, 799), 1), ("heldout", (800, 999), 2)):
        scene = TrialSceneConfig(objects=objects, objects_per_scene=SMALL.objects_per_scene, settle_s=SMALL.settle_s)
        config = runs.TrialRunConfig(scenes=3, seed=seed, trials_per_scene=4, scene=scene)
        summary = runs.run_trials(root / name, config)
        assert 2 <= summary.successes <= summary.trials - 2, summary   # both classes, for the stratified split
        out[name] = root / name
    return out


def test_trial_folders_read_with_default_topics_groups_and_objects(trials):
    frames = load_bags([trials["heldout"]], None, None, (64, 48))
    again = load_bags([trial_bag(trials["heldout"])], runs.TOPICS["after"], runs.TOPICS["held"], (64, 48))
    assert frames.images.shape[1:] == (48, 64, 3) and (frames.labels == again.labels).all()
    with open(trials["heldout"] / "trials.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["planned"] == "True"]
    assert len(frames) == len(rows) and list(frames.labels) == [int(r["success"] == "True") for r in rows]
    outcomes = frames.groups["trial"]
    assert {o for o, y in zip(outcomes, frames.labels) if y == 1} == {"held"}
    assert set(outcomes) <= {"held", "shaken out", "not held"}
    assert frames.objects and min(frames.objects) >= 800 and "held out (800-999)" in frames.source
    both = load_bags([trials["train"], trials["heldout"]], None, None, (64, 48))
    assert len(both) == len(frames) + len(load_bags([trials["train"]], None, None, (64, 48)))
    assert both.groups["trial"][-len(frames):] == outcomes   # each bag's trials, although both start at one stamp


def test_trials_train_a_tiny_model_and_eval_scores_held_out_objects(trials, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(["train", "grasp-success", "--bag", str(trials["train"]), "--out", str(out), *TINY]) == 0
    assert "0 of them held out" in capsys.readouterr().out
    card = (out / "grasp_success.md").read_text()
    assert "grasp trials on" in card and "0 of them held out" in card
    assert cli(["eval", "grasp-success", "--model", str(out / "grasp_success.onnx"), "--bag",
                str(trials["heldout"] / "bag"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    frames = load_bags([trials["heldout"]], None, None, (64, 48))
    assert metrics["n"] == len(frames) and sum(map(sum, metrics["confusion_matrix"])) == len(frames)
    assert sum(v["n"] for v in metrics["by_group"]["trial"].values()) == len(frames)
    assert "held out (800-999)" in metrics["data"]


def test_held_out_objects_are_refused_for_training_and_validation(trials, tmp_path, capsys):
    assert cli(["train", "grasp-success", "--bag", str(trials["heldout"]), "--out", str(tmp_path / "a"), *TINY]) == 1
    assert "training data holds grasp trials on held-out objects 800-999" in capsys.readouterr().err
    assert cli(["train", "grasp-success", "--bag", str(trials["train"]), "--val-bag", str(trials["heldout"]),
                "--out", str(tmp_path / "b"), *TINY]) == 1
    assert "validation data holds grasp trials on held-out objects" in capsys.readouterr().err
    assert not (tmp_path / "a" / "grasp_success.onnx").exists() and not (tmp_path / "b" / "grasp_success.onnx").exists()
