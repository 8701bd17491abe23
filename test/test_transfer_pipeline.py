"""`tacforce pairs / fit material-curve / train m2m / train transfer / eval transfer` end to end on
tiny simulated runs: source array1, target diamond1_soft (other markers, 8x softer).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from test_transfer_data import write_material_run

from tacforce_ros.cli import main
from tacforce_ros.inference.runtime import OnnxModel
from tacforce_ros.sim.sensors import SimConfig, write_sim_bag

TOPICS = ["--image-topic", "/tactile/image_raw/compressed", "--wrench-topic", "/ft_sensor/wrench",
          "--episode-topic", "/tactile/episode"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer")
    for style, seed in (("array1", 0), ("diamond1_soft", 1)):
        config = SimConfig(style=style, indenters=("sphere",), positions=1, depths=(0.0008, 0.0012), shear_points=2,
                           image_rate=10.0, wrench_rate=200.0, grid=16, seed=seed)
        write_sim_bag(root / style, config, max_seconds=9.0, progress=False)
    write_material_run(root / "curve_array1", 1.0)
    write_material_run(root / "curve_soft", 0.125)
    return root


def test_transfer_pipeline_end_to_end(runs, tmp_path, capsys):
    pairs = tmp_path / "pairs.npz"
    assert main(["pairs", "--sim", "--styles", "array1", "diamond1", "--contacts", "3", "--frames", "2",
                 "--out", str(pairs)]) == 0
    assert main(["train", "m2m", "--pairs", str(pairs), "--source", "array1", "--target", "diamond1",
                 "--config", "tiny", "--steps", "6", "--threads", "1", "--out", str(tmp_path / "m2m")]) == 0
    assert "validation IoU" in capsys.readouterr().out
    for name, bag in (("array1", "curve_array1"), ("diamond1_soft", "curve_soft")):
        assert main(["fit", "material-curve", "--bag", str(runs / bag), "--surface-z", "0.2", "--sensor", name,
                     "--out", str(tmp_path / f"{name}.json")]) == 0
    out = tmp_path / "model"
    assert main(["train", "transfer", "--bag", str(runs / "array1"), *TOPICS, "--m2m", str(tmp_path / "m2m/m2m.pt"),
                 "--target-reference", str(runs / "diamond1_soft"), "--source-curve", str(tmp_path / "array1.json"),
                 "--target-curve", str(tmp_path / "diamond1_soft.json"), "--eval-bag", str(runs / "diamond1_soft"),
                 "--config", "tiny", "--epochs", "1", "--threads", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "array1 -> diamond1" in printed and "on the target sensor" in printed

    model = OnnxModel(out / "tactile_force.onnx", "tactile_force", providers=["cpu"])
    meta = model.metadata
    transfer = meta.training["transfer"]
    assert (transfer["source"], transfer["target"]) == ("array1", "diamond1")
    assert transfer["m2m"]["checkpoint_sha256"] and transfer["compensation"]["target"] == "diamond1_soft"
    assert "marker mask" in meta.preprocessing
    # compensated labels: the translated run was trained on forces 8x smaller than the source's
    assert meta.training["train_force_min"][2] > -0.5 * 0.25
    assert "## Evaluation on the target sensor" in (out / "tactile_force.md").read_text()

    table = tmp_path / "table"
    assert main(["eval", "transfer", "--row", "material", "m2m+compensation", str(out / "tactile_force.onnx"),
                 str(runs / "diamond1_*"), "--m2m", "material", str(tmp_path / "m2m/m2m.pt"), str(pairs),
                 "--out", str(table)]) == 0
    text = table.with_suffix(".md").read_text()
    assert "| material | m2m+compensation |" in text and "| m2m translation |" in text
    numbers = json.loads(table.with_suffix(".json").read_text())
    assert numbers["rows"][0]["metrics"]["n"] > 30 and np.isfinite(numbers["rows"][0]["metrics"]["mae"]["z"])
    assert 0.0 <= numbers["m2m"][0]["translation"]["iou"] <= 1.0


def test_transfer_refuses_bad_inputs(runs, tmp_path, capsys):
    common = ["train", "transfer", "--bag", str(runs / "array1"), *TOPICS, "--target-reference",
              str(runs / "diamond1_soft"), "--out", str(tmp_path / "out")]
    (tmp_path / "fake.pt").write_bytes(b"\x00garbage")
    assert main([*common, "--m2m", str(tmp_path / "fake.pt")]) == 1
    assert "fake.pt" in capsys.readouterr().err
    assert main([*common, "--m2m", str(tmp_path / "fake.pt"), "--source-curve", str(tmp_path / "a.json")]) == 1
    assert "both --source-curve and --target-curve" in capsys.readouterr().err
    assert main(["fit", "material-curve", "--bag", str(runs / "array1"), "--surface-z", "0.2", "--sensor", "x",
                 "--out", str(tmp_path / "x.json")]) == 1  # a run without /tcp_pose
    assert "/tcp_pose" in capsys.readouterr().err
    assert main(["pairs", "--sim", "--styles", "array1", "gelsight", "--out", str(tmp_path / "p.npz")]) == 1
    assert "gelsight" in capsys.readouterr().err
