"""Grasp-success training -> ONNX export (contract, parity, encodings) and the CLI commands,
on tiny data so each runs in seconds.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tacforce_ros.cli import main as cli
from tacforce_ros.inference.contract import ModelError
from tacforce_ros.inference.runtime import OnnxModel
from tacforce_ros.perception.grasp_success import GraspSuccessClassifier
from tacforce_ros.sim.grasp_check_scenes import write_folder_dataset
from tacforce_training.core.export import ExportError, Tolerance
from tacforce_training.models.grasp_success import GraspModelConfig
from tacforce_training.tasks.grasp_success.config import GraspTrainConfig
from tacforce_training.tasks.grasp_success.data import load_synthetic
from tacforce_training.tasks.grasp_success.export import GraspSuccessGraph, export_grasp_success
from tacforce_training.tasks.grasp_success.train import GraspSuccessTask, load_model, train
from taskutil import dies_in_epoch_2

torch.set_num_threads(1)
SIZE = (64, 48)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("gs_train")
    tr = load_synthetic(48, seed=1, split="train", frame_size=SIZE)
    va = load_synthetic(16, seed=2, split="train", frame_size=SIZE)
    cfg = GraspTrainConfig(model=GraspModelConfig("tiny_cnn", image_size=32), epochs=2, batch_size=16,
                           warmup_steps=2, num_threads=1)
    result = train(cfg, tr, va, out)
    return result, va


def test_checkpoints_load_with_weights_only_and_record_the_run(trained):
    result, _ = trained
    ckpt = torch.load(result.best_path, map_location="cpu", weights_only=True)
    assert ckpt["format"] == "tacforce.checkpoint" and ckpt["task"] == "grasp_success"
    assert ckpt["summary"]["input"] == {"height": 48, "width": 64, "channels": 3, "encoding": "rgb8"}
    assert len(ckpt["history"]) == ckpt["epoch"] and ckpt["summary"]["samples"].dtype == torch.uint8
    assert ckpt["config"]["grad_clip"] == 5.0 and ckpt["best"]["epoch"] == result.best_epoch
    assert ckpt["summary"]["frames"] == {"train": 48, "val": 16}
    assert len(torch.load(result.last_path, weights_only=True)["history"]) == 2
    assert set(result.metrics) >= {"accuracy", "recall", "confusion_matrix", "roc_auc"}


def test_training_is_deterministic(trained, tmp_path):
    result, va = trained
    tr = load_synthetic(48, seed=1, split="train", frame_size=SIZE)
    cfg = GraspTrainConfig(model=GraspModelConfig("tiny_cnn", image_size=32), epochs=2, batch_size=16,
                           warmup_steps=2, num_threads=1)
    again = train(cfg, tr, va, tmp_path)
    a = torch.load(result.last_path, weights_only=True)["model"]
    b = torch.load(again.last_path, weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_matches_uninterrupted_run(trained, tmp_path, monkeypatch):
    """Die in epoch 2, then --resume: same validation scores and weights as the uninterrupted run."""
    result, va = trained
    tr = load_synthetic(48, seed=1, split="train", frame_size=SIZE)
    cfg = GraspTrainConfig(model=GraspModelConfig("tiny_cnn", image_size=32), epochs=2, batch_size=16,
                           warmup_steps=2, num_threads=1)
    with dies_in_epoch_2(monkeypatch, GraspSuccessTask):
        train(cfg, tr, va, tmp_path)
    resumed = train(cfg, tr, va, tmp_path, resume=True)
    full = torch.load(result.last_path, weights_only=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    scores = [r["val_balanced_accuracy"] for r in full["history"]]
    assert [r["val_balanced_accuracy"] for r in resumed.history] == scores
    again = torch.load(resumed.last_path, weights_only=True)["model"]
    assert all(torch.equal(full["model"][k], again[k]) for k in again)
    with pytest.raises(ValueError, match="was trained with model"):
        train(dataclasses.replace(cfg, epochs=3), tr.subset(range(40)), va, tmp_path, resume=True)


def test_shipped_legacy_checkpoint_loads_through_the_core(tmp_path):
    """models/grasp_success.pt (pre-core format) upgrades on load and exports with its recorded metadata."""
    from tacforce_training.core import checkpoint
    shipped = Path(__file__).resolve().parents[1] / "models" / "grasp_success.pt"
    ckpt = checkpoint.load(shipped, "grasp_success")
    assert ckpt["best"]["epoch"] == ckpt["summary"]["best_epoch"] and ckpt["optimizer"] is None
    model = load_model(ckpt)
    assert model.config.arch == ckpt["config"]["model"]["arch"]
    recorded = OnnxModel(shipped.with_suffix(".onnx"), "grasp_success", providers=["cpu"]).metadata
    assert recorded.input.width == ckpt["summary"]["input"]["width"]


def test_export_contract_parity_and_probability_range(trained, tmp_path):
    result, va = trained
    meta = export_grasp_success(result.best_path, tmp_path / "gs.onnx", command="test")
    assert meta.task == "grasp_success" and meta.state is None
    assert (meta.input.height, meta.input.width, meta.input.channels, meta.input.encoding) == (48, 64, 3, "rgb8")
    assert list(meta.outputs) == ["probability"]
    model = OnnxModel(tmp_path / "gs.onnx", "grasp_success", providers=["cpu"])
    inputs = model.session.get_inputs()
    assert [(i.name, i.type, i.shape) for i in inputs] == [("image", "tensor(uint8)", [1, 48, 64, 3])]
    graph = GraspSuccessGraph(load_model(torch.load(result.best_path, weights_only=True)))
    probs = []
    for frame in va.images:
        out, state = model.run(frame[None])
        assert state == {} and out["probability"].shape == (1, 1)
        with torch.no_grad():
            expected = float(graph(torch.from_numpy(frame[None].copy())))
        assert abs(float(out["probability"][0, 0]) - expected) < 1e-4
        probs.append(float(out["probability"][0, 0]))
    extremes = [np.zeros((1, 48, 64, 3), np.uint8), np.full((1, 48, 64, 3), 255, np.uint8)]
    probs += [float(model.run(x)[0]["probability"][0, 0]) for x in extremes]
    assert all(0.0 <= p <= 1.0 for p in probs)
    card = (tmp_path / "gs.md").read_text()
    assert "grasp_success" in card and "ONNX vs PyTorch" in card and "test" in card


def test_wrong_task_is_refused(trained, tmp_path):
    result, _ = trained
    export_grasp_success(result.best_path, tmp_path / "gs.onnx")
    with pytest.raises(ModelError, match="this is a 'grasp_success' model; this node needs a 'tactile_force' model"):
        OnnxModel(tmp_path / "gs.onnx", "tactile_force", providers=["cpu"])
    from test_runtime import build, metadata
    path = build(tmp_path / "force.onnx", metadata(task="tactile_force"))
    with pytest.raises(ModelError, match="needs a 'grasp_success' model"):
        OnnxModel(path, "grasp_success", providers=["cpu"])


def test_bgr8_export_reorders_in_the_graph(trained, tmp_path):
    result, va = trained
    export_grasp_success(result.best_path, tmp_path / "rgb.onnx")
    export_grasp_success(result.best_path, tmp_path / "bgr.onnx", encoding="bgr8")
    rgb = GraspSuccessClassifier(OnnxModel(tmp_path / "rgb.onnx", "grasp_success", providers=["cpu"]))
    bgr = GraspSuccessClassifier(OnnxModel(tmp_path / "bgr.onnx", "grasp_success", providers=["cpu"]))
    assert bgr.model.metadata.input.encoding == "bgr8"
    for frame in va.images[:4]:
        assert abs(rgb.probability(frame) - bgr.probability(frame[..., ::-1].copy())) < 1e-5
    with pytest.raises(ValueError, match="expects 64x48"):
        rgb.probability(np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="cannot take mono8"):
        export_grasp_success(result.best_path, tmp_path / "mono.onnx", encoding="mono8")


def test_parity_failure_leaves_no_file(trained, tmp_path):
    result, _ = trained
    with pytest.raises(ExportError, match="not written"):
        export_grasp_success(result.best_path, tmp_path / "gs.onnx", tolerance=Tolerance(-1.0, 0.0))
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds_layout")
    write_folder_dataset(root, 40, seed=3, config=None)
    return root


def test_cli_train_and_eval_on_a_seeds_layout_folder(folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(["train", "grasp-success", "--data", str(folder), "--out", str(out), "--arch", "tiny_cnn",
                "--epochs", "1", "--batch-size", "16", "--threads", "1", "--frame-size", "80x60"]) == 0
    text = capsys.readouterr().out
    assert "accuracy" in text and "confusion matrix" in text
    for name in ("grasp_success.onnx", "grasp_success.md", "grasp_success.pt", "best.pt", "last.pt"):
        assert (out / name).is_file(), name
    model = OnnxModel(out / "grasp_success.onnx", "grasp_success", providers=["cpu"])
    assert (model.metadata.input.width, model.metadata.input.height) == (80, 60)

    assert cli(["eval", "grasp-success", "--model", str(out / "grasp_success.onnx"), "--data", str(folder),
                "--out", str(tmp_path / "eval"), "--card", str(out / "grasp_success.md")]) == 0
    text = capsys.readouterr().out
    for word in ("accuracy", "recall", "success", "failure", "ROC-AUC", "confusion matrix", "reliability plot"):
        assert word in text, word
    png = (tmp_path / "eval" / "reliability.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["n"] == 40 and sum(map(sum, metrics["confusion_matrix"])) == 40
    assert "## Held-out evaluation" in (out / "grasp_success.md").read_text()

    assert cli(["export", "grasp-success", "--checkpoint", str(out / "last.pt"), "--out",
                str(tmp_path / "re.onnx"), "--encoding", "bgr8"]) == 0
    assert OnnxModel(tmp_path / "re.onnx", "grasp_success").metadata.input.encoding == "bgr8"


def test_cli_eval_on_synthetic_held_out_frames_and_bags(trained, tmp_path, capsys):
    result, va = trained
    export_grasp_success(result.best_path, tmp_path / "gs.onnx")
    assert cli(["eval", "grasp-success", "--model", str(tmp_path / "gs.onnx"), "--synthetic", "12",
                "--json", "--plot", str(tmp_path / "rel.png")]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n"] == 12 and "test split" in metrics["data"]
    by = metrics["by_group"]
    assert sum(v["n"] for v in by["kind"].values()) == 12
    assert all(name.startswith("held-out ") for name in by["viewpoint"])
    assert (tmp_path / "rel.png").is_file()
    from tacforce_ros.bag_labels import write_labelled_bag
    write_labelled_bag(tmp_path / "bag", va.images, va.labels, "/cam", "/label", label_type="string")
    assert cli(["eval", "grasp-success", "--model", str(tmp_path / "gs.onnx"), "--bag", str(tmp_path / "bag"),
                "--image-topic", "/cam", "--label-topic", "/label", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == len(va)


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert cli(["train", "grasp-success", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 1
    assert "data folder not found" in capsys.readouterr().err
    assert cli(["eval", "grasp-success", "--model", str(tmp_path / "none.onnx"), "--synthetic", "4"]) == 1
    assert "model file not found" in capsys.readouterr().err
    assert cli(["train", "grasp-success", "--bag", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert "--image-topic and --label-topic" in capsys.readouterr().err
