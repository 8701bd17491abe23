"""One checkpoint schema for every task: plain tensors and containers, loadable with weights_only=True.

    format, version, task, epoch, step, model, optimizer, scheduler, scaler, rng, config,
    summary, history, best

``best.pt`` holds the same keys with optimizer, scheduler, scaler and rng set to None (it is for
export, not for resuming). Files are written to a temporary name and moved into place, so an
interrupted save never leaves a truncated checkpoint. Older per-task formats are converted on
load by upgrade functions a task registers.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

FORMAT = "tacforce.checkpoint"
VERSION = 1
KEYS = ("format", "version", "task", "epoch", "step", "model", "optimizer", "scheduler", "scaler", "rng",
        "config", "summary", "history", "best")
UPGRADES = {}   # legacy "format" value -> function(old dict) -> dict in this schema


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here (unreadable, other format or version, other task)."""


def register_upgrade(legacy_format: str):
    """Register a converter from a task's legacy checkpoint format to this schema."""
    def add(fn):
        UPGRADES[legacy_format] = fn
        return fn
    return add


def make(task: str, **fields) -> dict:
    """Return a checkpoint dict with every schema key (missing ones None); unknown keys are a bug."""
    unknown = set(fields) - set(KEYS)
    if unknown:
        raise TypeError(f"not checkpoint keys: {sorted(unknown)}")
    return {**dict.fromkeys(KEYS), **fields, "format": FORMAT, "version": VERSION, "task": task}


def save(ckpt: dict, path) -> None:
    """Write ``ckpt`` atomically: a temporary file beside ``path``, then os.replace."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, path)


def read(path) -> dict:
    """Load any checkpoint file with weights_only=True; a missing or unreadable file is a CheckpointError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except Exception as exc:  # torch.load raises KeyError, RuntimeError, UnpicklingError, ...
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None


def load(path, task: str | None = None) -> dict:
    """Read ``path``, upgrade a legacy format, and check its format version and (if given) its task."""
    ckpt = read(path)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: not a tacforce checkpoint (a {type(ckpt).__name__}, not a dict)")
    fmt = ckpt.get("format")
    if fmt in UPGRADES:
        ckpt = UPGRADES[fmt](ckpt)
    elif fmt != FORMAT:
        what = f"format {fmt!r}" if fmt else f"no format key; keys {sorted(ckpt)[:6]}"
        raise CheckpointError(f"{path}: not a tacforce checkpoint ({what})"
                              + (f"; expected a {task} checkpoint" if task else ""))
    if ckpt.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {ckpt.get('version')!r} is unknown "
                              f"(this code reads version {VERSION})")
    if task is not None and ckpt["task"] != task:
        raise CheckpointError(f"{path} is a {ckpt['task']} checkpoint, not a {task} one")
    return ckpt
