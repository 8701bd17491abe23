"""Visual-force models, data plumbing and `tacforce train|eval|export visual-force` on tiny
configs (seconds on CPU).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tacforce_ros.inference.runtime import OnnxModel  # noqa: E402
from tacforce_ros.sim import visual_force_scenes as scenes  # noqa: E402
from tacforce_training.models.ssam import VisualForceConfig, build, config  # noqa: E402
from tacforce_training.visual_force_data import (EpisodeSet, held_out_split, labels, load_bags,  # noqa: E402
                                                 windows)


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


def test_train_eval_export_commands_end_to_end(tmp_path, capsys):
    from tacforce_ros.cli import main

    out = tmp_path / "run"
    common = ["--synthetic", "1", "--frame-size", "48x40", "--held-out-illumination", "350",
              "--held-out-degree", "30"]
    assert main(["train", "visual-force", *common, "--size", "tiny", "--epochs", "1", "--out", str(out),
                 "--threads", "1", "--write-data", str(tmp_path / "data")]) == 0
    onnx_path = out / "visual_force.onnx"
    model = OnnxModel(onnx_path, "visual_force", providers=["cpu"])
    meta = model.metadata
    assert meta.input.frames == 4 and (meta.input.width, meta.input.height, meta.input.encoding) == (48, 40, "rgb8")
    assert meta.training["held_out"] == {"illumination": 350, "degree": 30}
    assert meta.training["arch"] == "ssam" and meta.outputs["force"]["axes"] == ["press"]
    card = onnx_path.with_suffix(".md").read_text()
    assert "max |difference|" in card and "tacforce train visual-force" in card
    assert len(list((tmp_path / "data").iterdir())) == 48

    capsys.readouterr()
    assert main(["eval", "visual-force", "--model", str(onnx_path), "--data", str(tmp_path / "data"),
                 "--held-out-illumination", "350", "--held-out-degree", "30", "--json",
                 "--card", str(onnx_path.with_suffix(".md")), "--card-title", "Held out"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    cells = set(metrics["by_cell"])
    assert cells == {f"350_{d}" for d in (0, 10, 20, 30)} | {f"{lux}_30" for lux in (550, 750)}
    assert set(metrics["by_object"]) == set(scenes.OBJECTS)
    assert metrics["overall"]["rmse"] >= metrics["overall"]["mae"] > 0
    assert "## Held out" in onnx_path.with_suffix(".md").read_text()

    again = tmp_path / "again.onnx"
    assert main(["export", "visual-force", "--checkpoint", str(out / "best.pt"), "--out", str(again)]) == 0
    window = np.zeros(meta.input.shape, np.uint8)
    a = model.run(window)[0]["force"]
    b = OnnxModel(again, "visual_force", providers=["cpu"]).run(window)[0]["force"]
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_three_axis_model_and_bad_data_errors(tmp_path, capsys):
    from tacforce_ros.cli import main

    out = tmp_path / "run3"
    assert main(["train", "visual-force", "--synthetic", "1", "--frame-size", "32x32", "--size", "tiny",
                 "--outputs", "3", "--epochs", "1", "--out", str(out), "--threads", "1"]) == 0
    meta = OnnxModel(out / "visual_force.onnx", "visual_force", providers=["cpu"]).metadata
    assert meta.outputs["force"]["axes"] == ["x", "y", "z"] and meta.outputs["force"]["shape"] == [1, 3]
    capsys.readouterr()
    assert main(["train", "visual-force", "--data", str(tmp_path / "missing"), "--out", str(out)]) == 1
    assert "missing: not a folder" in capsys.readouterr().err
    # --init continues from a checkpoint of the same model only
    again = ["train", "visual-force", "--synthetic", "1", "--frame-size", "32x32", "--size", "tiny", "--epochs", "1",
             "--threads", "1", "--init", str(out / "best.pt")]
    assert main([*again, "--outputs", "1", "--out", str(tmp_path / "x")]) == 1
    assert "not a visual-force checkpoint of this model configuration" in capsys.readouterr().err
    assert main([*again, "--outputs", "3", "--out", str(tmp_path / "y")]) == 0
    meta = OnnxModel(tmp_path / "y" / "visual_force.onnx", "visual_force", providers=["cpu"]).metadata
    assert meta.training["initialised_from"] == str(out / "best.pt")
