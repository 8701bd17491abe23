"""Helpers the training tasks' tests share."""
from contextlib import contextmanager

import pytest


@contextmanager
def dies_in_epoch_2(monkeypatch, task_cls):
    """Make runs of ``task_cls`` die (KeyboardInterrupt) while scoring epoch 2, as an interrupted
    run would: last.pt then holds epoch 1. The task's scoring is restored afterwards.
    """
    real_score, calls = task_cls.score, []

    def score(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_score(*args, **kwargs)

    monkeypatch.setattr(task_cls, "score", score)
    with pytest.raises(KeyboardInterrupt):
        yield
    monkeypatch.setattr(task_cls, "score", real_score)


def assert_same_run(full, resumed, score_name: str) -> None:
    """Check that a resumed run (a FitResult) repeats the uninterrupted one: epochs, scores, final weights."""
    import torch

    assert [r["epoch"] for r in resumed.history] == [r["epoch"] for r in full.history]
    assert [r[score_name] for r in resumed.history] == [r[score_name] for r in full.history]
    a = torch.load(full.last_path, weights_only=True)["model"]
    b = torch.load(resumed.last_path, weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
