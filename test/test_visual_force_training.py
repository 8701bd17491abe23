"""Visual-force models, data plumbing, training on the shared core and `tacforce train|eval|export
visual-force` on tiny configs (seconds on CPU).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")

from tacforce_ros.inference.runtime import OnnxModel  # noqa: E402
from tacforce_ros.sim import visual_force_scenes as scenes  # noqa: E402
from tacforce_training.core import checkpoint  # noqa: E402
from tacforce_training.core.cli import add_task_commands  # noqa: E402
from tacforce_training.models.ssam import VisualForceConfig, build, config  # noqa: E402
from tacforce_training.tasks.visual_force.config import VisualTrainConfig  # noqa: E402
from tacforce_training.tasks.visual_force.data import (EpisodeSet, held_out_split, labels, load_bags,  # noqa: E402
                                                       parse_size, windows)
from tacforce_training.tasks.visual_force.export import export_visual_force, graph_module  # noqa: E402
from tacforce_training.tasks.visual_force.train import VisualForceTask, Windows, load_model, train  # noqa: E402
from taskutil import dies_in_epoch_2  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("arch", ["ssam", "cnn_lstm"])
@pytest.mark.parametrize("outputs", [1, 3])
def test_models_map_a_window_to_the_force(arch, outputs):
    cfg = config("tiny", arch=arch, outputs=outputs)
    model = build(cfg).eval()
    out = model(torch.rand(2, cfg.frames, 1, cfg.image_size, cfg.image_size))
    assert out.shape == (2, outputs) and torch.isfinite(out).all()


def test_ssam_attention_weighs_the_newer_frame_of_each_pair():
    cfg = config("tiny", arch="ssam")
    model = build(cfg).eval()
    x = torch.rand(3, cfg.frames, 1, cfg.image_size, cfg.image_size)
    feats = model.trunk(x.flatten(0, 1))
    side = cfg.image_size // 16
    assert feats.shape[-2:] == (side, side)                      # no last pool (S/16)
    pair = torch.cat([feats, feats], 1)
    assert model.spatial(pair).shape == (len(pair), 1, side, side)
    assert model.channel(pair).shape == (len(pair), cfg.channels[-1], 1, 1)
    assert model.channel.position_logits.shape == (side * side,)  # learned weighted-average pooling
    baseline = build(config("tiny", arch="cnn_lstm"))
    assert baseline.trunk(x.flatten(0, 1)).shape[-1] == cfg.image_size // 32


def test_the_seeds_sizes_are_the_default():
    cfg = VisualForceConfig()
    assert (cfg.frames, cfg.image_size, cfg.channels, cfg.lstm_hidden, cfg.fc_hidden) == \
        (20, 128, (16, 32, 64, 128, 256), 256, 1024)


@pytest.mark.parametrize("bad", [dict(arch="vgg"), dict(outputs=2), dict(frames=1), dict(image_size=100)])
def test_bad_model_configs_are_refused(bad):
    with pytest.raises(ValueError):
        VisualForceConfig(**bad)


def small_set(**kw) -> EpisodeSet:
    cfg = scenes.SceneConfig(width=32, height=32, episodes_per_cell=1, frames_range=(8, 10), **kw)
    return EpisodeSet(scenes.generate(cfg), "test")


def test_held_out_split_keeps_the_held_out_cells_out_of_training():
    data = small_set(objects=("cup",))
    train, test = held_out_split(data, 550, 20)
    assert all(e.illumination != 550 and e.degree != 20 for e in train.episodes)
    assert all(e.illumination == 550 or e.degree == 20 for e in test.episodes)
    assert len(train) + len(test) == len(data) == 12 and len(train) == 6


def test_window_labels_are_the_force_at_the_newest_frame():
    data = small_set(objects=("box",), degrees=(10,), illuminations=(350,))
    index = windows(data, 4, stride=1)
    ep = data.episodes[0]
    assert index[:, 1].tolist() == list(range(3, len(ep)))
    np.testing.assert_array_equal(labels(data, index, 1)[:, 0], ep.force[3:])
    np.testing.assert_array_equal(labels(data, index, 3), ep.force3[3:])


def test_bags_pair_camera_frames_with_the_wrench_by_stamp(tmp_path):
    data = small_set(objects=("tube",), degrees=(0, 30), illuminations=(750,))
    n = scenes.write_bag(tmp_path / "bag", data.episodes)
    back = load_bags([tmp_path / "bag"], "/camera/image_raw", "/ft_sensor/wrench")
    assert n == data.frames() and len(back) == len(data) == 2
    for got, want in zip(back.episodes, data.episodes):
        np.testing.assert_array_equal(got.images, want.images)
        # the wrench is sampled a quarter frame either side of each image: interpolation at the
        # image stamp gives the mean of the two, close to the frame's force
        np.testing.assert_allclose(got.force3, want.force3,
                                   atol=0.35 * np.abs(np.diff(want.force3, axis=0)).max() + 1e-4)
        np.testing.assert_allclose(got.force, np.linalg.norm(got.force3, axis=1), rtol=1e-5)


def test_frame_sizes_parse_as_width_by_height():
    assert parse_size("48x40") == (48, 40) and parse_size(" 128X96 ") == (128, 96)
    for bad in ("48", "48x", "4x40", "48x40x3", "-8x8"):
        with pytest.raises(ValueError, match="not WxH"):
            parse_size(bad)


# --- training on the shared core --------------------------------------------------------------


def tiny_config(**changes) -> VisualTrainConfig:
    return dataclasses.replace(VisualTrainConfig(model=config("tiny"), epochs=2, batch_size=4, warmup_steps=2,
                                                 stride=3, val_stride=3, num_threads=1), **changes)


@pytest.fixture(scope="module")
def split():
    """Cup presses: training cells and held-out cells (the latter validate, to keep the test small)."""
    return held_out_split(small_set(objects=("cup",)), 550, 20)


@pytest.fixture(scope="module")
def trained(split, tmp_path_factory):
    return train(tiny_config(), *split, tmp_path_factory.mktemp("run"), held_out={"illumination": 550, "degree": 20})


def test_checkpoints_follow_the_core_schema(trained):
    best = checkpoint.load(trained.best_path, "visual_force")
    assert best["optimizer"] is None and best["epoch"] == trained.best_epoch
    assert best["config"]["grad_clip"] == 5.0 and best["summary"]["held_out"] == {"illumination": 550, "degree": 20}
    assert best["summary"]["samples"].shape[1:] == (4, 32, 32, 3)
    assert [r["epoch"] for r in trained.history] == [1, 2]
    assert trained.metrics["rmse"] >= trained.metrics["mae"] > 0 and trained.metrics["count"] > 0
    assert (trained.last_path.parent / "metrics.csv").is_file()


def test_resume_matches_uninterrupted_run(trained, split, tmp_path, monkeypatch):
    """Die in epoch 2, then resume: last.pt's epoch + 1 onwards, same scores and weights as without the break."""
    with dies_in_epoch_2(monkeypatch, VisualForceTask):
        train(tiny_config(), *split, tmp_path)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 1
    resumed = train(tiny_config(), *split, tmp_path, resume=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    assert [r["val_rmse"] for r in resumed.history] == [r["val_rmse"] for r in trained.history]
    full = torch.load(trained.last_path, weights_only=True)["model"]
    again = torch.load(resumed.last_path, weights_only=True)["model"]
    assert all(torch.equal(full[k], again[k]) for k in full)
    with pytest.raises(ValueError, match="was trained with model"):
        train(tiny_config(model=config("tiny", arch="cnn_lstm")), *split, tmp_path, resume=True)


def test_a_lone_last_window_sits_the_epoch_out(trained, split, tmp_path):
    """Batch norm needs two windows a batch: with k x batch + 1 windows one, drawn per epoch, is left out."""
    task = VisualForceTask(tiny_config(stride=1), *split, tmp_path)
    n = len(task.train_index)
    windows_ = Windows(task.train_frames, task.train_index, task.y_train, tiny_config(batch_size=n - 1), world=1)
    assert n > 2 and len(windows_) == n - 1
    left_out = set()
    for epoch in range(6):
        windows_.set_epoch(epoch)
        left_out |= set(range(n)) - set(windows_.keep.tolist())
    assert len(left_out) > 1
    assert len(Windows(task.train_frames, task.train_index, task.y_train, tiny_config(batch_size=n), 1)) == n
    with pytest.raises(ValueError, match="batch norm needs 2"):
        Windows(task.train_frames, task.train_index, task.y_train, tiny_config(batch_size=2), world=2)


def test_export_matches_pytorch_through_the_nodes_runtime(trained, tmp_path):
    meta = export_visual_force(trained.best_path, tmp_path / "vf.onnx", command="test")
    assert meta.task == "visual_force" and meta.state is None and meta.input.frames == 4
    model = OnnxModel(tmp_path / "vf.onnx", "visual_force", providers=["cpu"])
    graph = graph_module(checkpoint.load(trained.best_path, "visual_force"))
    rng = np.random.default_rng(0)
    for window in [*checkpoint.load(trained.best_path)["summary"]["samples"].numpy(),
                   rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)]:
        got = model.run(window[None])[0]["force"]
        with torch.no_grad():
            want = graph(torch.from_numpy(window[None].copy())).numpy()
        np.testing.assert_allclose(got, want, atol=1e-3, rtol=1e-3)
    card = (tmp_path / "vf.md").read_text()
    assert "ONNX Runtime vs PyTorch over 4 validation windows" in card and "## Made by" in card


def test_shipped_legacy_checkpoint_loads_through_the_core():
    """models/visual_force.pt (pre-core format) upgrades on load, held-out cells recovered from its source line."""
    shipped = REPO / "models" / "visual_force.pt"
    ckpt = checkpoint.load(shipped, "visual_force")
    assert ckpt["task"] == "visual_force" and ckpt["optimizer"] is None
    assert ckpt["best"]["epoch"] == ckpt["summary"]["best_epoch"] == 14
    assert ckpt["best"]["score"] == ckpt["best"]["metrics"]["rmse"]
    assert ckpt["summary"]["held_out"] == {"illumination": 550, "degree": 20}
    model = load_model(ckpt)
    recorded = OnnxModel(shipped.with_suffix(".onnx"), "visual_force", providers=["cpu"]).metadata
    assert model.cfg.to_dict() == recorded.training["config"]
    assert recorded.training["held_out"] == ckpt["summary"]["held_out"]
    assert ckpt["summary"]["input"]["width"] == recorded.input.width and recorded.input.frames == model.cfg.frames


# --- command line --------------------------------------------------------------------------------

def test_commands_and_evaluation_do_not_import_torch():
    code = ("import sys, tacforce_training.tasks.visual_force.commands, "
            "tacforce_training.tasks.visual_force.evaluate; sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def cli(argv: list[str]) -> int:
    """Run ``argv`` through the parser `tacforce` builds from the task list."""
    parser = argparse.ArgumentParser()
    add_task_commands(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_train_eval_export_commands_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--synthetic", "1", "--frame-size", "48x40", "--held-out-illumination", "350",
              "--held-out-degree", "30"]
    assert cli(["train", "visual-force", *common, "--size", "tiny", "--epochs", "1", "--out", str(out),
                "--threads", "1", "--write-data", str(tmp_path / "data")]) == 0
    onnx_path = out / "visual_force.onnx"
    model = OnnxModel(onnx_path, "visual_force", providers=["cpu"])
    meta = model.metadata
    assert meta.input.frames == 4 and (meta.input.width, meta.input.height, meta.input.encoding) == (48, 40, "rgb8")
    assert meta.training["held_out"] == {"illumination": 350, "degree": 30}
    assert meta.training["arch"] == "ssam" and meta.outputs["force"]["axes"] == ["press"]
    card = onnx_path.with_suffix(".md").read_text()
    assert "max |difference|" in card and "## Made by" in card
    assert len(list((tmp_path / "data").iterdir())) == 48

    capsys.readouterr()
    assert cli(["eval", "visual-force", "--model", str(onnx_path), "--data", str(tmp_path / "data"),
                "--held-out-illumination", "350", "--held-out-degree", "30", "--json",
                "--card", str(onnx_path.with_suffix(".md")), "--card-title", "Held out"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    cells = set(metrics["by_cell"])
    assert cells == {f"350_{d}" for d in (0, 10, 20, 30)} | {f"{lux}_30" for lux in (550, 750)}
    assert set(metrics["by_object"]) == set(scenes.OBJECTS)
    assert metrics["overall"]["rmse"] >= metrics["overall"]["mae"] > 0
    assert "## Held out" in onnx_path.with_suffix(".md").read_text()

    again = tmp_path / "again.onnx"
    assert cli(["export", "visual-force", "--checkpoint", str(out / "best.pt"), "--out", str(again)]) == 0
    window = np.zeros(meta.input.shape, np.uint8)
    a = model.run(window)[0]["force"]
    b = OnnxModel(again, "visual_force", providers=["cpu"]).run(window)[0]["force"]
    np.testing.assert_allclose(a, b, atol=1e-5)

    capsys.readouterr()
    checkpoint.save(checkpoint.make("grasp_success", epoch=1), tmp_path / "grasp_success.pt")
    assert cli(["export", "visual-force", "--checkpoint", str(tmp_path / "grasp_success.pt"),
                "--out", str(tmp_path / "x.onnx")]) == 1
    assert "grasp_success.pt is a grasp_success checkpoint, not a visual_force one" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
    assert cli(["eval", "visual-force", "--model", str(tmp_path / "missing.onnx"), "--synthetic", "1"]) == 1
    assert "missing.onnx: model file not found" in capsys.readouterr().err


def test_three_axis_model_and_bad_data_errors(tmp_path, capsys):
    out = tmp_path / "run3"
    assert cli(["train", "visual-force", "--synthetic", "1", "--frame-size", "32x32", "--size", "tiny",
                "--outputs", "3", "--epochs", "1", "--out", str(out), "--threads", "1"]) == 0
    meta = OnnxModel(out / "visual_force.onnx", "visual_force", providers=["cpu"]).metadata
    assert meta.outputs["force"]["axes"] == ["x", "y", "z"] and meta.outputs["force"]["shape"] == [1, 3]
    capsys.readouterr()
    assert cli(["train", "visual-force", "--data", str(tmp_path / "missing"), "--out", str(out)]) == 1
    assert "missing: not a folder" in capsys.readouterr().err
    # --init continues from a checkpoint of the same model only
    again = ["train", "visual-force", "--synthetic", "1", "--frame-size", "32x32", "--size", "tiny", "--epochs", "1",
             "--threads", "1", "--init", str(out / "best.pt")]
    assert cli([*again, "--outputs", "1", "--out", str(tmp_path / "x")]) == 1
    assert "not a visual-force checkpoint of this model configuration" in capsys.readouterr().err
    assert cli([*again, "--outputs", "3", "--out", str(tmp_path / "y")]) == 0
    meta = OnnxModel(tmp_path / "y" / "visual_force.onnx", "visual_force", providers=["cpu"]).metadata
    assert meta.training["initialised_from"] == str(out / "best.pt")
