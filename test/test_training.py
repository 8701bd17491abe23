"""Training-side smoke tests: tiny TemporalForce configs on synthetic marker sequences (CPU, s)."""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")

from tacforce_ros.inference.contract import METADATA_KEY, ModelError  # noqa: E402
from tacforce_ros.inference.runtime import OnnxModel  # noqa: E402
from tacforce_training.core import checkpoint  # noqa: E402
from tacforce_training.core.export import ExportError, Tolerance  # noqa: E402
from tacforce_training.models.temporal_force import CONFIGS, ResidualBlock, TemporalForce  # noqa: E402
from tacforce_training.preprocess import ImagePreprocess  # noqa: E402
from tacforce_training.synthetic import marker_sequences  # noqa: E402
from tacforce_training.tasks.tactile_force import data as data_mod  # noqa: E402
from tacforce_training.tasks.tactile_force.augment import Augment, AugmentConfig  # noqa: E402
from tacforce_training.tasks.tactile_force.config import TrainConfig  # noqa: E402
from tacforce_training.tasks.tactile_force.evaluate import evaluate_tactile_force  # noqa: E402
from tacforce_training.tasks.tactile_force.export import export_tactile_force, load_streaming_module  # noqa: E402
from tacforce_training.tasks.tactile_force.metrics import force_metrics, format_table  # noqa: E402
from tacforce_training.tasks.tactile_force.train import TactileForceTask, train  # noqa: E402
from taskutil import assert_same_run, dies_in_epoch_2  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
H, W = 40, 56          # deliberately not square and not a multiple of the model size


def tiny_config(**changes) -> TrainConfig:
    """Three short epochs on synthetic sequences; augmentation off, so three epochs show the loss falling
    (test_augmentation_* cover it).
    """
    return dataclasses.replace(TrainConfig(model=CONFIGS["tiny"], clip_length=8, batch_size=4, epochs=3,
                                           lr=3e-3, warmup_steps=2, num_threads=1,
                                           augment=AugmentConfig(enabled=False)), **changes)


def as_bag_sequences(seqs):
    """Convert to the shape tacforce_ros.bags hands over: images as a list of frames is accepted too."""
    return [SimpleNamespace(images=list(s.images), forces=s.forces, stamps_ns=s.stamps_ns, bag=f"bag{k}")
            for k, s in enumerate(seqs)]


@pytest.fixture(scope="module")
def sequences():
    return marker_sequences(count=6, frames=24, height=H, width=W, seed=1)


@pytest.fixture(scope="module")
def trained(sequences, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return train(tiny_config(), as_bag_sequences(sequences), out)


# --- model and preprocessing -------------------------------------------------------------------

@pytest.mark.parametrize("head", ["linear", "sigmoid"])
def test_model_shapes_and_streaming_matches_clip(head):
    torch.manual_seed(0)
    model = TemporalForce(dataclasses.replace(CONFIGS["tiny"], head=head)).eval()
    x, ref = torch.randn(2, 5, 1, 32, 32), torch.randn(2, 1, 32, 32)
    h = model.initial_state(2)
    assert h.shape == (2, 8, 4, 4)
    with torch.no_grad():
        forces = model(x, reference=ref)
        assert forces.shape == (2, 5, 3)
        steps = []
        for t in range(5):
            f, h = model.step(x[:, t], h, ref)
            steps.append(f)
        with pytest.raises(ValueError, match="reference"):
            model(x)
    assert torch.allclose(torch.stack(steps, 1), forces, atol=1e-5)
    if head == "sigmoid":
        lo, hi = model.force_min, model.force_max
        assert ((forces >= lo) & (forces <= hi)).all()


def test_linear_head_extrapolates_where_the_sigmoid_saturates():
    """The same logit far out: the sigmoid head stops at its range, the linear one keeps going."""
    linear = TemporalForce(CONFIGS["tiny"])
    linear.set_force_scale([0.0, 0.0, -2.0], [0.5, 0.5, 1.0])
    sigmoid = TemporalForce(dataclasses.replace(CONFIGS["tiny"], head="sigmoid"))
    sigmoid.set_force_range([-1, -1, -4], [1, 1, 0.5])
    z = torch.tensor([[0.0, 0.0, -6.0]])
    assert torch.allclose(linear._to_newtons(z), torch.tensor([[0.0, 0.0, -8.0]]))
    assert sigmoid._to_newtons(z)[0, 2] > -4.0
    assert torch.equal(linear.force_unit, torch.tensor([0.5, 0.5, 1.0]))
    with pytest.raises(ValueError):
        linear.set_force_scale([0, 0, 0], [1, 1, 0])
    with pytest.raises(ValueError):
        sigmoid.set_force_range([0, 0, 0], [1, 1, 0])


def test_legacy_config_keeps_its_sigmoid_grey_reference_free_model():
    """A config saved before the head/reference/norm options loads as the model it was."""
    legacy = {k: v for k, v in CONFIGS["tiny"].to_dict().items()
              if k not in ("head", "reference", "encoder_norm", "readout_features", "encoder", "reference_input")}
    cfg = type(CONFIGS["tiny"]).from_dict(legacy)
    assert (cfg.head, cfg.reference, cfg.encoder_norm, cfg.readout_features) == ("sigmoid", False, "instance", False)
    assert cfg.encoder == "residual"
    assert type(CONFIGS["tiny"]).from_dict(CONFIGS["tiny"].to_dict()) == CONFIGS["tiny"]
    model = TemporalForce(cfg)
    assert {"force_min", "force_max"} <= set(model.state_dict()) and "force_mean" not in model.state_dict()
    with pytest.raises(ValueError, match="head"):
        dataclasses.replace(CONFIGS["tiny"], head="tanh")


def test_a_config_from_before_the_plain_encoder_keeps_its_residual_frame_and_difference_model():
    """Models trained before the plain encoder (e.g. the previously shipped one) load as they were trained."""
    saved = {k: v for k, v in dataclasses.replace(CONFIGS["tiny"], encoder="residual", encoder_norm="instance",
                                                  reference_input="frame_and_difference").to_dict().items()
             if k not in ("encoder", "reference_input")}
    cfg = type(CONFIGS["tiny"]).from_dict(saved)
    assert (cfg.encoder, cfg.reference_input, cfg.encoder_norm, cfg.head) == (
        "residual", "frame_and_difference", "instance", "linear")
    assert cfg.encoder_input_channels == 2
    with pytest.raises(ValueError, match="reference_input"):
        dataclasses.replace(CONFIGS["tiny"], reference_input="ratio")
    with pytest.raises(ValueError, match="encoder must"):
        dataclasses.replace(CONFIGS["tiny"], encoder="vit")


def test_the_encoder_sees_the_change_from_the_reference():
    """Out of contact the encoder input is zero; in contact it is the frame minus the reference."""
    model = TemporalForce(CONFIGS["tiny"])
    ref = torch.rand(2, 1, 32, 32) * 2 - 1                     # preprocessed: (grey - 0.5) / 0.5
    assert torch.equal(model.encoder_input(ref, ref), torch.zeros_like(ref))
    frame = (ref + 0.2).clamp(-1, 1)
    got = model.encoder_input(frame, ref)
    assert torch.allclose(got, frame - ref, atol=1e-6)
    assert model.cfg.encoder_input_channels == 1


def test_state_size_follows_odd_image_sizes():
    cfg = dataclasses.replace(CONFIGS["tiny"], image_size=36, reference=False)
    model = TemporalForce(cfg).eval()
    with torch.no_grad():
        _, h = model.step(torch.zeros(1, 1, 36, 36), model.initial_state(1))
    assert cfg.state_size == 5 and h.shape == (1, 8, 5, 5)


def test_preprocess_mono_rgb_bgr_and_odd_sizes():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (2, 37, 53, 1), dtype=np.uint8)
    mono = ImagePreprocess(32, "mono8")
    out = mono(torch.from_numpy(gray))
    assert out.shape == (2, 1, 32, 32) and out.dtype == torch.float32
    assert out.min() >= -1 and out.max() <= 1

    rgb = rng.integers(0, 256, (2, 37, 53, 3), dtype=np.uint8)
    from_rgb = ImagePreprocess(32, "rgb8")(torch.from_numpy(rgb))
    from_bgr = ImagePreprocess(32, "bgr8")(torch.from_numpy(rgb[..., ::-1].copy()))
    assert from_rgb.shape == (2, 1, 32, 32) and torch.allclose(from_rgb, from_bgr, atol=1e-6)
    same_gray = ImagePreprocess(32, "rgb8")(torch.from_numpy(np.repeat(gray, 3, -1)))
    assert torch.allclose(same_gray, out, atol=1e-6)

    three = ImagePreprocess(32, "mono8", out_channels=3)(torch.from_numpy(gray))
    assert three.shape == (2, 3, 32, 32) and torch.equal(three[:, 0], three[:, 2])
    with pytest.raises(ValueError):
        mono(torch.from_numpy(rgb))
    assert "box average 3x5" in ImagePreprocess(128).describe(480, 640)


# --- training ------------------------------------------------------------------------------------

def test_training_reduces_loss_and_keeps_checkpoints(trained):
    losses = [r["train_loss"] for r in trained.history]
    assert len(losses) == 3 and losses[-1] < losses[0]
    for path in (trained.best_path, trained.last_path):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        assert set(ckpt) == set(checkpoint.KEYS)
        assert (ckpt["format"], ckpt["version"], ckpt["task"]) == (checkpoint.FORMAT, checkpoint.VERSION,
                                                                   "tactile_force")
        assert ckpt["summary"]["input"] == {"height": H, "width": W, "channels": 1, "encoding": "mono8"}
    last = torch.load(trained.last_path, weights_only=True)
    assert last["epoch"] == 3 and last["optimizer"] and last["scheduler"] and "torch" in last["rng"]
    assert torch.load(trained.best_path, weights_only=True)["optimizer"] is None
    assert trained.summary["sequences"] == {"train": 5, "val": 1}
    assert set(trained.metrics["r2"]) == {"x", "y", "z"}


def test_validation_split_is_by_sequence():
    tr, va = data_mod.split_sequences(10, 0.2, seed=3)
    assert sorted(tr + va) == list(range(10)) and len(va) == 2
    assert data_mod.split_sequences(10, 0.2, seed=3) == (tr, va)
    with pytest.raises(ValueError):
        data_mod.split_sequences(1, 0.2, seed=0)


def test_resume_matches_uninterrupted_run(sequences, tmp_path, monkeypatch):
    data = as_bag_sequences(sequences)
    full = train(tiny_config(), data, tmp_path / "full")

    with dies_in_epoch_2(monkeypatch, TactileForceTask):
        train(tiny_config(), data, tmp_path / "resumed")
    assert torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)["epoch"] == 1

    resumed = train(tiny_config(), data, tmp_path / "resumed", resume=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    assert_same_run(full, resumed, "val_loss")

    with pytest.raises(ValueError, match="trained with model"):
        train(tiny_config(model=dataclasses.replace(CONFIGS["tiny"], hidden_channels=4)),
              data, tmp_path / "resumed", resume=True)


# --- export and evaluation -----------------------------------------------------------------------

def test_export_parity_metadata_and_task_check(trained, sequences, tmp_path):
    onnx_path = tmp_path / "tactile_force.onnx"
    meta = export_tactile_force(trained.best_path, onnx_path, sequences[0].images, "mono8",
                                {"note": "test"}, trained.metrics, command="pytest")
    model = OnnxModel(onnx_path, "tactile_force", providers=["cpu"])
    inp = model.session.get_inputs()
    assert [(i.name, i.type) for i in inp] == [("image", "tensor(uint8)"), ("reference", "tensor(uint8)"),
                                               ("h_in", "tensor(float)")]
    assert inp[0].shape == inp[1].shape == [1, H, W, 1] and meta.input.reference == "reference"
    with pytest.raises(ValueError, match="reference"):
        model.run(sequences[0].images[:1])
    assert model.metadata == meta and model.metadata.task == "tactile_force"
    assert meta.outputs["force"]["units"] == "N" and meta.state.shapes == ((1, 8, 4, 4),)
    assert meta.training == {"note": "test"} and meta.metrics["n"] == trained.metrics["n"]
    assert "box average" not in meta.preprocessing and "resize 32x32" in meta.preprocessing
    import onnx
    props = {p.key for p in onnx.load(str(onnx_path)).metadata_props}
    assert METADATA_KEY in props
    card = onnx_path.with_suffix(".md").read_text()
    assert "pytest" in card and "Fz < 0" in card and "R²" in card
    assert "`reference`: uint8" in card and "not bounded" in card

    with pytest.raises(ModelError, match="tactile_force"):
        OnnxModel(onnx_path, "grasp_map", providers=["cpu"])

    # the file scores like the PyTorch validation did (same frames, state carried)
    val = [sequences[i] for i in trained.summary["val_sequence_indices"]]
    scored = evaluate_tactile_force(onnx_path, val)
    assert scored["n"] == trained.metrics["n"] and scored["sequences"] == 1
    assert scored["rmse"]["z"] == pytest.approx(trained.metrics["rmse"]["z"], abs=1e-3)


def test_export_refuses_on_parity_failure(trained, sequences, tmp_path):
    onnx_path = tmp_path / "bad.onnx"
    with pytest.raises(ExportError):
        export_tactile_force(trained.best_path, onnx_path, sequences[0].images[:3], "mono8", {}, {},
                             tolerance=Tolerance(-1.0, 0.0))
    assert not onnx_path.exists() and not list(tmp_path.iterdir())


def test_parity_tolerance_follows_the_output_scale(trained, sequences, tmp_path):
    """A rounding difference that is small next to the outputs passes; the message states the
    absolute and the relative part.
    """
    tol = Tolerance(atol=1e-3, rtol=1e-3, unit="N")
    assert 5.96e-3 <= tol.limit(30.0) and not 5.96e-3 <= tol.limit(0.5)
    expected = r"differ by up to .* N \(tolerance -1 N \+ 0.001 x output scale .* N = .*\); .* not written"
    with pytest.raises(ExportError, match=expected):
        export_tactile_force(trained.best_path, tmp_path / "m.onnx", sequences[0].images[:3], "mono8", {}, {},
                             tolerance=Tolerance(-1.0, 1e-3, "N"))


def test_rgb_model_exports_for_a_bgr_camera(tmp_path):
    seqs = marker_sequences(count=3, frames=8, height=H, width=W, channels=3, seed=2)
    for s in seqs:      # colour the dots so channel order matters
        s.images[..., 0] //= 2
    colour = dataclasses.replace(CONFIGS["tiny"], in_channels=3)
    result = train(tiny_config(epochs=1, model=colour), seqs, tmp_path / "rgb", encoding="rgb8")
    rgb = seqs[0].images
    export_tactile_force(result.best_path, tmp_path / "rgb.onnx", rgb, "rgb8", {}, {})
    export_tactile_force(result.best_path, tmp_path / "bgr.onnx", rgb[..., ::-1].copy(), "bgr8", {}, {})
    m_rgb = OnnxModel(tmp_path / "rgb.onnx", "tactile_force", providers=["cpu"])
    m_bgr = OnnxModel(tmp_path / "bgr.onnx", "tactile_force", providers=["cpu"])
    assert m_bgr.metadata.input.encoding == "bgr8"
    assert m_rgb.metadata.input.channels == 3 and "luma" not in m_rgb.metadata.preprocessing
    f_rgb, _ = m_rgb.run(rgb[1:2], reference=rgb[:1])
    f_bgr, _ = m_bgr.run(rgb[1:2, ..., ::-1].copy(), reference=rgb[:1, ..., ::-1].copy())
    np.testing.assert_allclose(f_rgb["force"], f_bgr["force"], atol=1e-4)
    with pytest.raises(ValueError, match="cannot export"):
        export_tactile_force(result.best_path, tmp_path / "x.onnx", rgb[..., :1].copy(), "mono8", {}, {})


# --- metrics -------------------------------------------------------------------------------------

def test_metrics_perfect_prediction():
    true = np.random.default_rng(0).normal(size=(50, 3))
    m = force_metrics(true, true)
    assert m["r2"] == {"x": 1.0, "y": 1.0, "z": 1.0}
    assert all(v == 0 for v in (*m["rmse"].values(), *m["mae"].values(), m["norm_mae"], m["fz_rmse_pct_range"]))


def test_metrics_hand_computed():
    true = np.array([[0, 0, 0], [0, 0, -2], [0, 0, -4], [0, 0, -2]], float)
    pred = np.array([[1, 0, 0], [0, 0, -2], [0, 0, -4], [1, 0, 0]], float)
    m = force_metrics(pred, true)
    assert m["rmse"]["x"] == pytest.approx(np.sqrt(0.5)) and m["mae"]["x"] == pytest.approx(0.5)
    assert m["rmse"]["z"] == pytest.approx(1.0) and m["mae"]["z"] == pytest.approx(0.5)
    assert m["r2"] == {"x": 0.0, "y": 1.0, "z": pytest.approx(0.5)}   # x, y constant in the set
    assert m["norm_mae"] == pytest.approx(0.5)    # |F|: true 0 2 4 2, pred 1 2 4 1
    assert m["fz_range"] == 4.0 and m["fz_rmse_pct_range"] == pytest.approx(25.0)
    assert m["n"] == 4 and "25.00 %" in format_table(m)
    json.dumps(m)


# --- command line --------------------------------------------------------------------------------

def test_commands_and_evaluation_do_not_import_torch():
    code = ("import sys, tacforce_training.tasks.tactile_force.commands, "
            "tacforce_training.tasks.tactile_force.evaluate; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_cli_train_eval_export(sequences, tmp_path, monkeypatch, capsys):
    from tacforce_training.core.cli import add_task_commands
    from tacforce_training.tasks.tactile_force import commands

    def fake_load(args, bags):
        return SimpleNamespace(sequences=as_bag_sequences(sequences), stats={"paired": 144},
                               summary=lambda: "fake bags", force_frame="nano17")

    monkeypatch.setattr(commands, "load_pairs", fake_load)
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    add_task_commands(sub)       # the CLI as `tacforce` builds it, from the task list
    data = ["--bag", "b1", "--image-topic", "/img", "--wrench-topic", "/ft"]
    out = tmp_path / "out"

    args = parser.parse_args(["train", "tactile-force", *data, "--out", str(out), "--config", "tiny",
                              "--epochs", "1", "--threads", "1"])
    assert args.func(args) == 0
    assert (out / "tactile_force.onnx").is_file() and (out / "tactile_force.md").is_file()
    runtime = OnnxModel(out / "tactile_force.onnx", "tactile_force", providers=["cpu"])
    assert runtime.metadata.training["bags"] == ["b1"] and runtime.metadata.training["pairing"]["paired"] == 144
    assert runtime.metadata.outputs["force"]["frame_id"] == "nano17"  # the labels' frame, the node's default
    eager = load_streaming_module(out / "tactile_force.pt")     # the weights beside the graph
    h, state, ref = eager.initial_state(), None, sequences[1].images[:1]
    with torch.no_grad():
        for frame in sequences[1].images[:5]:
            expected, h = eager(*eager.inputs(frame[None], ref), h)
            got, state = runtime.run(frame[None], state, reference=ref)
            np.testing.assert_allclose(got["force"], expected.numpy(), rtol=1e-3, atol=1e-4)

    capsys.readouterr()
    args = parser.parse_args(["eval", "tactile-force", "--model", str(out / "tactile_force.onnx"), *data, "--json",
                              "--plot", str(tmp_path / "eval.png"), "--predictions", str(tmp_path / "eval.csv")])
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)      # stdout holds the JSON object only
    assert report["n"] == 6 * 24 and set(report["rmse"]) == {"x", "y", "z"}
    beyond = report["beyond_training_range"]      # the validation sequences reach past the training labels
    low, high = (np.array(runtime.metadata.training[k]) for k in ("train_force_min", "train_force_max"))
    assert (tmp_path / "eval.png").read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.DictReader(open(tmp_path / "eval.csv")))
    assert len(rows) == 6 * 24 and rows[0]["bag"] == "bag0" and rows[-1]["sequence"] == "5"
    estimated = np.array([[float(r[f"f{a}_est"]) for a in "xyz"] for r in rows])
    true = np.array([[float(r[f"f{a}_true"]) for a in "xyz"] for r in rows])
    assert np.sqrt(((estimated - true) ** 2).mean(0))[2] == pytest.approx(report["rmse"]["z"], abs=1e-4)
    margin = 0.02 * (high - low)
    outside = ((true < low - margin) | (true > high + margin)).any(1)
    assert beyond["frames"] == outside.sum() > 0 and beyond["metrics"]["n"] == outside.sum()
    flagged = np.array([bool(r["range_note"]) for r in rows])
    assert beyond["flagged"] == (flagged & outside).sum() and beyond["flagged_within"] == (flagged & ~outside).sum()

    args = parser.parse_args(["export", "tactile-force", "--checkpoint", str(out / "last.pt"), *data,
                              "--out", str(tmp_path / "again.onnx")])
    assert args.func(args) == 0 and (tmp_path / "again.onnx").is_file()
    again = OnnxModel(tmp_path / "again.onnx", "tactile_force", providers=["cpu"])
    assert again.metadata.outputs["force"]["frame_id"] == "nano17"

    args = parser.parse_args(["eval", "tactile-force", "--model", str(tmp_path / "missing.onnx"), *data])
    assert args.func(args) == 1

    capsys.readouterr()
    checkpoint.save(checkpoint.make("grasp_map", epoch=1), tmp_path / "grasp_map.pt")
    args = parser.parse_args(["export", "tactile-force", "--checkpoint", str(tmp_path / "grasp_map.pt"), *data,
                              "--out", str(tmp_path / "x.onnx")])
    assert args.func(args) == 1
    assert "grasp_map.pt is a grasp_map checkpoint, not a tactile_force one" in capsys.readouterr().err


def test_cli_grey_and_no_reference_flags(tmp_path, monkeypatch):
    """A colour bag trains a colour reference model by default; --grey and --no-reference say otherwise."""
    from tacforce_training.core.cli import add_task_commands
    from tacforce_training.tasks.tactile_force import commands

    seqs = marker_sequences(count=3, frames=8, height=H, width=W, channels=3, seed=4)
    for s in seqs:
        s.encoding = "rgb8"
    monkeypatch.setattr(commands, "load_pairs", lambda args, bags: SimpleNamespace(
        sequences=seqs, stats={}, summary=lambda: "fake", force_frame=""))
    parser = argparse.ArgumentParser()
    add_task_commands(parser.add_subparsers(dest="cmd", required=True))
    base = ["train", "tactile-force", "--bag", "b", "--image-topic", "/i", "--wrench-topic", "/w", "--config", "tiny",
            "--epochs", "1", "--threads", "1"]
    for flags, channels, reference in (([], 3, "reference"), (["--grey", "--no-reference", "--loss", "l1"], 1, None)):
        out = tmp_path / ("-".join(flags) or "default")
        args = parser.parse_args([*base, "--out", str(out), *flags])
        assert args.func(args) == 0
        meta = OnnxModel(out / "tactile_force.onnx", "tactile_force", providers=["cpu"]).metadata
        assert meta.input.encoding == "rgb8" and meta.input.reference == reference
        assert ("luma" in meta.preprocessing) == (channels == 1)
        assert meta.training["config"]["model"]["in_channels"] == channels
        assert meta.training["config"]["loss"] == ("l1" if flags else "mse")


# --- reference, colour and augmentation ------------------------------------------------------------

def test_no_contact_reference_is_the_mean_of_the_frames_before_contact():
    from tacforce_ros.data.tactile_pairs import no_contact_reference
    images = np.stack([np.full((2, 3, 1), v, np.uint8) for v in (10, 12, 14, 200, 200, 10)])
    forces = np.zeros((6, 3))
    forces[3:5, 2] = -2.0
    ref, count = no_contact_reference(images, forces)
    assert count == 3 and ref.shape == (2, 3, 1) and (ref == 12).all()
    ref, count = no_contact_reference(images, forces, max_frames=2)
    assert count == 2 and (ref == 11).all()
    forces[0, 2] = -2.0       # in contact from the first frame: that frame, and a count of 0 to say so
    ref, count = no_contact_reference(images, forces)
    assert count == 0 and (ref == 10).all()
    with pytest.raises(ValueError, match="empty"):
        no_contact_reference(images[:0], forces[:0])


def test_augmentation_is_seeded_and_turns_shear_with_the_image():
    aug = Augment(AugmentConfig(brightness=0.0, colour_gain=0.0, reference_drift=0.0, noise=0.0, shift=0.0,
                                rotation_deg=45.0), mean=0.5, std=0.5)
    frames = -torch.ones(1, 1, 33, 33)
    frames[..., 16, 24:] = 1.0                        # a bright ray from the centre towards +x (image right)
    forces = torch.tensor([[1.0, 0.0, -3.0]])         # shear towards +x
    out, ref, turned = aug(frames, frames[0], forces, torch.Generator().manual_seed(3))
    ys, xs = np.nonzero(out[0, 0].numpy() > 0)
    ray = np.array([xs.mean() - 16, ys.mean() - 16])
    ray /= np.linalg.norm(ray)
    assert np.dot(ray, turned[0, :2].numpy()) > 0.99 and turned[0, 2] == -3.0     # the force turned with the ray
    assert abs(np.degrees(np.arctan2(ray[1], ray[0]))) > 3 and torch.equal(out[0], ref)

    full = Augment(AugmentConfig(), mean=0.5, std=0.5)
    clip, reference = torch.rand(4, 3, 16, 16), torch.rand(3, 16, 16)
    a = full(clip, reference, torch.zeros(4, 3), torch.Generator().manual_seed(7))
    b = full(clip, reference, torch.zeros(4, 3), torch.Generator().manual_seed(7))
    c = full(clip, reference, torch.zeros(4, 3), torch.Generator().manual_seed(8))
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and not torch.equal(a[0], c[0])
    masks = Augment(AugmentConfig(shift=0.0, rotation_deg=0.0), 0.5, 0.5, photometric=False)
    assert torch.equal(masks(clip, reference, torch.zeros(4, 3), torch.Generator())[0], clip)
    off = Augment(AugmentConfig(enabled=False), 0.5, 0.5)
    assert off(clip, reference, torch.ones(4, 3), torch.Generator())[0] is clip
    with pytest.raises(ValueError, match="noise"):
        AugmentConfig(noise=-0.1)


def test_training_with_augmentation_and_a_colour_reference_model(tmp_path):
    """The default path: augmentation on, colour frames, reference from each sequence's first frames."""
    seqs = marker_sequences(count=4, frames=12, height=H, width=W, channels=3, seed=5)
    cfg = tiny_config(epochs=1, augment=AugmentConfig(), model=dataclasses.replace(CONFIGS["tiny"], in_channels=3))
    result = train(cfg, seqs, tmp_path / "aug", encoding="rgb8")
    assert np.isfinite(result.history[-1]["train_loss"])
    summary = result.summary
    assert summary["config"]["augment"]["enabled"] and "frames before its first contact" in summary["reference"]
    assert len(summary["input_channel_means"]["min"]) == 3 and "force_std" in summary
    assert "model_force_range" not in summary     # the linear head has no bounded range


def test_squared_error_loss_weighs_large_errors_more(sequences, tmp_path):
    task = TactileForceTask(tiny_config(loss="mse"), as_bag_sequences(sequences), tmp_path)
    model = task.build_model()
    batch = next(iter(torch.utils.data.DataLoader(task.train_set(), batch_size=2)))
    x, ref, y, mask = batch
    with torch.no_grad():
        err = (model(x, reference=ref) - y) / task.unit
    expected = ((err ** 2).mean(-1) * mask).sum().item() / mask.sum().item()
    assert task.loss(model, batch).item() == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="loss"):
        tiny_config(loss="huber")


def test_cli_parses_augment_settings():
    from tacforce_training.tasks.tactile_force.commands import parse_augment
    assert parse_augment(None) == AugmentConfig()
    assert parse_augment("brightness=0.2, rotation_deg=0") == AugmentConfig(brightness=0.2, rotation_deg=0.0)
    assert parse_augment("enabled=false").enabled is False
    for bad in ("bright=0.2", "noise", "noise=x", "enabled=maybe", "shift=2"):
        with pytest.raises(ValueError, match="augment"):
            parse_augment(bad)


def test_shift_moves_the_clip_by_whole_pixels_without_resampling():
    aug = Augment(AugmentConfig(brightness=0.0, colour_gain=0.0, reference_drift=0.0, noise=0.0, shift=0.25),
                  mean=0.5, std=0.5)
    frames = torch.zeros(2, 1, 16, 16)
    frames[:, 0, 8, 8] = 1.0
    out, ref, forces = aug(frames, frames[0], torch.ones(2, 3), torch.Generator().manual_seed(1))
    assert sorted(out.unique().tolist()) == [0.0, 1.0] and torch.equal(out[0], ref)   # moved, not blurred
    (row, col), = torch.nonzero(out[0, 0]).tolist()
    assert (row, col) != (8, 8) and max(abs(row - 8), abs(col - 8)) <= 4 and torch.equal(forces, torch.ones(2, 3))


def test_a_checkpoint_of_the_first_train_loop_loads_as_its_sigmoid_grey_model(tmp_path):
    """The pre-core format (the first shipped models/tactile_force.pt): no head/reference keys in its config."""
    from tacforce_training.tasks.tactile_force.train import LEGACY_FORMAT, load_model
    old_cfg = {k: v for k, v in CONFIGS["tiny"].to_dict().items()
               if k not in ("head", "reference", "encoder_norm", "readout_features", "encoder", "reference_input")}
    legacy_model = TemporalForce(type(CONFIGS["tiny"]).from_dict(old_cfg))
    legacy_model.set_force_range([-1, -1, -3], [1, 1, 0.5])
    train_config = {**tiny_config().to_dict(), "model": old_cfg}
    del train_config["augment"], train_config["loss"]
    old = {"format": LEGACY_FORMAT, "epoch": 3, "step": 30, "model": legacy_model.state_dict(),
           "train_config": train_config, "summary": {"frames": {"train": 10}}, "history": [],
           "input": {"height": H, "width": W, "channels": 1, "encoding": "mono8"},
           "best": {"epoch": 2, "val_loss": 0.1, "metrics": {}}}
    torch.save(old, tmp_path / "old.pt")
    model = load_model(checkpoint.load(tmp_path / "old.pt", "tactile_force"))
    assert (model.cfg.head, model.cfg.reference, model.cfg.encoder_norm) == ("sigmoid", False, "instance")
    assert model.cfg.encoder == "residual" and isinstance(model.encoder.stages[0], ResidualBlock)
    with torch.no_grad():
        forces = model(torch.randn(1, 4, 1, 32, 32) * 5)
    assert ((forces >= model.force_min) & (forces <= model.force_max)).all()     # bounded, as trained
