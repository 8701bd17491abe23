"""The numeric core of grasp_success_node without ROS: per-frame classifier checks, the
majority-vote debouncer, the service answer; and the node's parameter file.
"""
from __future__ import annotations


import numpy as np
import pytest

from grasp_models import brightness_model
from rosutil import ROOT
from tacforce_ros.inference.contract import ModelError
from tacforce_ros.inference.runtime import OnnxModel
from tacforce_ros.perception.grasp_success import (GraspSuccessClassifier, MajorityDebouncer, NonFiniteOutput,
                                                   answer)


def test_majority_over_the_last_window_frames():
    d = MajorityDebouncer(window=5, threshold=0.5, min_frames=3)
    assert d.push(0.9).held is None and d.push(0.8).held is None      # fewer than min_frames
    assert d.push(0.2).held is True                                    # 2 of 3 held
    assert d.push(0.1).held is False                                   # 2 of 4: a tie is not a majority
    assert d.push(0.7).held is True                                    # 3 of 5
    vote = d.push(0.3)                                                 # window drops the first 0.9
    assert (vote.held, vote.held_frames, vote.frames) == (False, 2, 5)
    assert vote.latest_probability == 0.3 and vote.mean_probability == pytest.approx((0.8 + 0.2 + 0.1 + 0.7 + 0.3) / 5)


def test_threshold_is_inclusive_and_one_outlier_does_not_flip_the_decision():
    d = MajorityDebouncer(window=10, threshold=0.6, min_frames=1)
    assert d.push(0.6).held is True
    for _ in range(9):
        d.push(0.95)
    assert d.push(0.01).held is True                                   # a single bad frame
    for _ in range(3):
        assert d.push(0.01).held is True                               # 6 of 10 still held
    assert d.push(0.01).held is False                                  # 5 of 10: no majority


def test_only_recent_frames_count_and_reset_clears():
    d = MajorityDebouncer(window=10, threshold=0.5, min_frames=2)
    for t in (0.0, 0.1, 0.2):
        d.push(0.9, now=t)
    assert d.vote(now=0.5, max_age=1.0).held is True
    stale = d.vote(now=5.0, max_age=1.0)
    assert stale.held is None and stale.frames == 0
    assert d.vote(now=1.15, max_age=1.0).frames == 1
    d.reset()
    assert d.vote().frames == 0


@pytest.mark.parametrize("kwargs", [dict(window=0), dict(threshold=0.0), dict(threshold=1.0),
                                    dict(window=3, min_frames=4), dict(min_frames=0)])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        MajorityDebouncer(**kwargs)


def test_reconfigured_keeps_the_newest_frames_under_the_new_settings():
    d = MajorityDebouncer(window=5, threshold=0.5, min_frames=1)
    for p in (0.9, 0.9, 0.9, 0.2, 0.2):
        d.push(p)
    assert d.vote().held is True
    smaller = d.reconfigured(window=3, threshold=0.5, min_frames=3)
    assert smaller.vote().frames == 3 and smaller.vote().held is False     # the newest 3: 0.9, 0.2, 0.2
    assert d.reconfigured(window=5, threshold=0.1, min_frames=1).vote().held_frames == 5
    assert d.vote().frames == 5                                            # the old one is untouched
    with pytest.raises(ValueError):
        d.reconfigured(window=2, threshold=0.5, min_frames=3)


def test_probabilities_outside_0_1_are_refused():
    with pytest.raises(ValueError):
        MajorityDebouncer().push(1.2)


def test_service_answers():
    d = MajorityDebouncer(window=4, threshold=0.5, min_frames=2)
    ok, msg = answer(d.vote(), 1.0)
    assert not ok and msg == "unknown: 0 frame(s) in the last 1 s, not enough to decide"
    d.push(0.91)
    ok, msg = answer(d.vote(), 1.0)
    assert not ok and msg.startswith("unknown: 1 frame(s)") and "latest p=0.910" in msg
    d.push(0.85)
    ok, msg = answer(d.vote(), 1.0)
    assert ok and msg == "held: p=0.850 (latest frame), mean p=0.880, 2/2 recent frames held"
    d.push(0.1)
    d.push(0.2)
    ok, msg = answer(d.vote(), 1.0)
    assert not ok and msg.startswith("not held: p=0.200") and "2/4 recent frames held" in msg


def test_classifier_gives_the_models_probability_and_checks_it(tmp_path):
    clf = GraspSuccessClassifier(OnnxModel(brightness_model(tmp_path / "m.onnx"), "grasp_success", providers=["cpu"]))
    assert clf.probability(np.full((48, 64, 3), 51, np.uint8)) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="expects 64x48"):
        clf.probability(np.zeros((48, 65, 3), np.uint8))
    with pytest.raises(ValueError, match="channel"):
        clf.probability(np.zeros((48, 64, 1), np.uint8))
    over = GraspSuccessClassifier(OnnxModel(brightness_model(tmp_path / "o.onnx", full_scale=100.0),
                                            "grasp_success", providers=["cpu"]))
    assert over.probability(np.full((48, 64, 3), 50, np.uint8)) == pytest.approx(0.5)
    with pytest.raises(NonFiniteOutput):
        over.probability(np.full((48, 64, 3), 200, np.uint8))
    with pytest.raises(ModelError, match="needs a 'grasp_success' model"):
        OnnxModel(brightness_model(tmp_path / "f.onnx", task="tactile_force"), "grasp_success")


def test_launch_file_starts_the_node():
    # config/perception.yaml vs the node's parameters: test_package.py, for every model node
    launch = (ROOT / "launch" / "grasp_success.launch.py").read_text()
    assert 'executable="grasp_success_node"' in launch


def test_training_modules_never_import_rclpy():
    import subprocess
    import sys
    code = ("import sys, tacforce_training.tasks.grasp_success.train, tacforce_training.tasks.grasp_success.export, "
            "tacforce_training.tasks.grasp_success.commands, tacforce_training.tasks.grasp_success.evaluate, "
            "tacforce_training.tasks.grasp_success.data, tacforce_training.tasks.grasp_success.config\n"
            "assert 'torch' in sys.modules and 'rclpy' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    code = ("import sys, tacforce_training.tasks.grasp_success.commands, "
            "tacforce_training.tasks.grasp_success.evaluate\n"
            "assert 'torch' not in sys.modules, 'eval must not need torch'\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
