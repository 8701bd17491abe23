"""What every training task shares, checked over `tacforce_training.tasks.TASKS`: the generated CLI
with its shared flags, torch-free commands modules, and a clear refusal of another task's
checkpoint (each task's own test files cover its training, resume, export and evaluation).
"""
from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from rosutil import ROOT
from tacforce_training import tasks
from tacforce_training.core import checkpoint
from tacforce_training.core.cli import SHARED, VERBS, add_task_commands, task_commands

# Export flags a task requires besides the shared --checkpoint and --out (frames that fix the size).
EXPORT_ARGS = {"tactile_force": ["--bag", "unused", "--image-topic", "/i", "--wrench-topic", "/w"]}
# Tasks with a model to export (a task may only orchestrate others, as transfer does).
MODEL_TASKS = [t for t, m in zip(tasks.TASKS, task_commands()) if hasattr(m, "cmd_export")]


def parser() -> tuple[argparse.ArgumentParser, dict]:
    """Return the `tacforce` training parser and its train/eval/export subparsers."""
    p = argparse.ArgumentParser(prog="tacforce")
    return p, add_task_commands(p.add_subparsers(dest="cmd", required=True))


def shared_flags(verb: str) -> set[str]:
    p = argparse.ArgumentParser()
    SHARED[verb](p)
    return {s for a in p._actions for s in a.option_strings if s.startswith("--")}


@pytest.mark.parametrize("task", tasks.TASKS)
def test_every_task_has_the_shared_flags_on_each_of_its_commands(task):
    command = task.replace("_", "-")
    subparsers = parser()[1]
    verbs = [v for v in VERBS if command in subparsers[v].choices]
    assert "train" in verbs or "eval" in verbs, f"{task} registers no command"
    own = getattr(dict(zip(tasks.TASKS, task_commands()))[task], "OWN_FLAGS", ())
    for verb in verbs:
        p = subparsers[verb].choices[command]
        flags = {s for a in p._actions for s in a.option_strings}
        if verb not in own:     # e.g. `eval transfer` tabulates several models: no single --model
            assert shared_flags(verb) <= flags, (verb, shared_flags(verb) - flags)
        assert p.description and p.format_help()


def test_commands_modules_import_no_torch():
    """Building the parser (and `tacforce eval`, which needs onnxruntime only) never loads torch."""
    code = ("import sys\nfrom tacforce_training.core.cli import task_commands\n"
            "assert len(task_commands()) >= 1\nsys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


@pytest.mark.parametrize("task", MODEL_TASKS)
def test_export_refuses_a_checkpoint_of_another_task_in_one_line(task, tmp_path, capsys):
    other = next(t for t in tasks.TASKS if t != task)
    path = tmp_path / f"{other}.pt"
    checkpoint.save(checkpoint.make(other, epoch=1), path)
    args = parser()[0].parse_args(["export", task.replace("_", "-"), "--checkpoint", str(path),
                                   "--out", str(tmp_path / "x.onnx"), *EXPORT_ARGS.get(task, [])])
    assert args.func(args) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"error: {path} is a {other} checkpoint, not a {task} one"
    assert not (tmp_path / "x.onnx").exists()
