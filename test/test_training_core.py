"""The shared training core: checkpoint schema, resume, curves, memmap frame cache, and 2-process DDP (CPU, s)."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tacforce_training.core import checkpoint  # noqa: E402
from tacforce_training.core.cache import Frames, loader_frames_per_s  # noqa: E402
from tacforce_training.core.registry import TASKS, get, register  # noqa: E402
from tacforce_training.preprocess import ImagePreprocess  # noqa: E402
from tacforce_training.tasks.tactile_force.data import Clips, SequenceFrames  # noqa: E402
from tacforce_training.tasks.tactile_force.train import TactileForceTask  # noqa: E402

TEST = Path(__file__).resolve().parent
sys.path.insert(0, str(TEST))
import ddp_tactile  # noqa: E402

# 1 vs 2 processes on the batch-independent tiny model: the same clips per global step, gradients
# averaged over ranks; only float summation order differs (measured: 5e-7 on the weights after 3 epochs)
DDP_RTOL = 1e-4         # on each epoch's validation loss
DDP_WEIGHT_ATOL = 1e-4  # on every weight after 2 epochs


def test_checkpoint_schema_atomic_save_and_wrong_task(tmp_path):
    path = tmp_path / "c.pt"
    ckpt = checkpoint.make("tactile_force", epoch=1, step=5, model={"w": torch.ones(2)}, history=[], best={})
    assert set(ckpt) == set(checkpoint.KEYS) and ckpt["optimizer"] is None
    checkpoint.save(ckpt, path)
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]          # no temporary file left
    assert torch.equal(checkpoint.load(path, "tactile_force")["model"]["w"], torch.ones(2))
    with pytest.raises(checkpoint.CheckpointError, match=rf"{path} is a tactile_force checkpoint, not a grasp_map"):
        checkpoint.load(path, "grasp_map")
    checkpoint.save({**ckpt, "version": 99}, path)
    with pytest.raises(checkpoint.CheckpointError, match=r"c\.pt: checkpoint format version 99 is unknown"):
        checkpoint.load(path)
    torch.save({"state_dict": {}, "config": {}}, tmp_path / "other.pt")
    with pytest.raises(checkpoint.CheckpointError, match=r"other\.pt: not a tacforce checkpoint"):
        checkpoint.load(tmp_path / "other.pt", "tactile_force")
    with pytest.raises(checkpoint.CheckpointError, match="not found"):
        checkpoint.load(tmp_path / "missing.pt")
    with pytest.raises(TypeError):
        checkpoint.make("tactile_force", input={})


def test_registry():
    assert get("tactile_force") is TactileForceTask and TactileForceTask.name == "tactile_force"
    with pytest.raises(ValueError, match="known: .*tactile_force"):
        get("nope")
    with pytest.raises(ValueError, match="registered twice"):
        register("tactile_force")(type("Other", (), {}))
    assert TASKS["tactile_force"] is TactileForceTask


def test_resume_and_curves(tmp_path):
    """Die in epoch 2, resume: same validation losses and weights as an uninterrupted run; curves written."""
    full = ddp_tactile.run(tmp_path / "full")
    with pytest.raises(SystemExit):
        ddp_tactile.run(tmp_path / "split", stop_after=1)
    assert checkpoint.load(tmp_path / "split" / "last.pt")["epoch"] == 1
    resumed = ddp_tactile.run(tmp_path / "split", resume=True)
    assert [r["val_loss"] for r in resumed.history] == [r["val_loss"] for r in full.history]
    a, b = (checkpoint.load(p / "last.pt")["model"] for p in (tmp_path / "full", tmp_path / "split"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    with open(tmp_path / "split" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"train_loss", "val_loss", "lr", "samples_per_s", "metrics.rmse.z"} <= set(rows[0])
    assert (tmp_path / "split" / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_frames_go_to_a_memmap_over_the_budget_and_workers_read_them(tmp_path):
    seqs = ddp_tactile.sequences()
    pre = ImagePreprocess(32)
    ram = SequenceFrames(seqs, pre, "t", budget_bytes=1e9, cache_path=tmp_path / "ram.npy")
    disk = SequenceFrames(seqs, pre, "t", budget_bytes=1e4, cache_path=tmp_path / "disk.npy")
    assert not ram.store.on_disk and not (tmp_path / "ram.npy").exists()
    assert disk.store.on_disk and isinstance(np.load(tmp_path / "disk.npy", mmap_mode="r"), np.memmap)
    assert torch.equal(ram.frames(2, 3, 9), disk.frames(2, 3, 9))
    clips = Clips(disk, clip_length=8, seed=0)
    # spawned workers: each maps the file itself (and this process may hold DDS threads that a fork copies badly)
    spawn = {"num_workers": 2, "multiprocessing_context": "spawn"}
    loader = torch.utils.data.DataLoader(clips, batch_size=4, **spawn)
    fps, frames = loader_frames_per_s(loader, lambda b: b[0].shape[0] * b[0].shape[1])
    assert frames == len(clips) * 8 and fps > 0
    x, reference, y, mask = next(iter(torch.utils.data.DataLoader(clips, batch_size=len(clips), **spawn)))
    ref = torch.utils.data.default_collate([Clips(ram, 8, 0)[i] for i in range(len(clips))])
    assert torch.equal(x, ref[0]) and torch.equal(reference, ref[1]) and torch.equal(y, ref[2]) and mask.all()


def test_frames_store_hands_workers_a_path_not_its_data(tmp_path):
    store = Frames((100, 8), budget_bytes=0, path=tmp_path / "f.npy")
    store.array[:] = 1
    store.finish()
    state = store.__getstate__()        # what a spawned DataLoader worker is sent
    assert state["_array"] is None and state["path"] == tmp_path / "f.npy"
    assert float(store.array.sum()) == 800 and isinstance(store.array, np.memmap)


def torchrun(*args: str) -> int:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TEST.parent), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(TEST / "ddp_tactile.py"), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    if proc.returncode not in (0, 1):
        pytest.fail(proc.stdout[-3000:] + proc.stderr[-3000:])
    return proc.returncode


def test_torchrun_two_processes_match_one_and_resume(tmp_path):
    """2 gloo processes, global batch 4 (2 a rank): (a) finish, (c) resume from last.pt, (b) match 1 process."""
    one = ddp_tactile.run(tmp_path / "one")
    assert torchrun("--out", str(tmp_path / "two"), "--stop-after", "1") != 0     # dies in epoch 2
    assert checkpoint.load(tmp_path / "two" / "last.pt")["epoch"] == 1
    assert torchrun("--out", str(tmp_path / "two"), "--resume") == 0
    two = json.loads((tmp_path / "two" / "result.json").read_text())
    assert two["summary"]["processes"] == 2 and [r["epoch"] for r in two["history"]] == [1, 2]
    np.testing.assert_allclose([r["val_loss"] for r in two["history"]], [r["val_loss"] for r in one.history],
                               rtol=DDP_RTOL)
    a, b = (checkpoint.load(p / "last.pt")["model"] for p in (tmp_path / "one", tmp_path / "two"))
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert worst < DDP_WEIGHT_ATOL, worst
    assert sorted(p.name for p in (tmp_path / "two").glob("*.pt")) == ["best.pt", "last.pt"]
