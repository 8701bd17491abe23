"""`tacforce train|eval|export <task>`, generated from the task list, shared flags in one place (no torch).

Each task's ``tasks/<task>/commands.py`` provides ``add_<verb>_args(parser)`` for its own flags
and ``cmd_<verb>(args)`` returning an exit code, for the verbs it supports; the sub-command is
the task folder's name with dashes, its help the first line of ``cmd_<verb>``'s docstring and
its description the rest. Optional ``DEFAULTS`` (per verb) overrides the shared flags' defaults.
A verb listed in the optional ``OWN_FLAGS`` gets none of the shared flags (an `eval` that
tabulates several models has no single --model). Commands modules import no torch, so building
the parser stays fast and `eval` runs on onnxruntime alone.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import json
import shlex
import shutil
import sys
from pathlib import Path

ENCODINGS = ("mono8", "rgb8", "bgr8")
VERBS = ("train", "eval", "export")
VERB_HELP = {"train": "train a model", "eval": "evaluate a model", "export": "export a checkpoint to ONNX"}


def _shared_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path,
                   help="output folder (checkpoints, ONNX, model card, metrics.csv, curves.png)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: the task's)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="samples per optimizer step over all processes (torchrun splits it; default: the task's)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the task's)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads per process (default: torch's choice)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers per process (default: 0)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="training device (default: auto = CUDA when available; under torchrun one GPU per rank)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")


def _shared_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=Path, help="the .onnx model to score")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--card", type=Path, default=None,
                   help="model card (.md) to record these results in, as its held-out section")


def _shared_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, type=Path, help="best.pt / last.pt from training")
    p.add_argument("--out", required=True, type=Path, help="output .onnx (a .md model card goes beside it)")


def loop_args(args: argparse.Namespace) -> dict:
    """Return the shared training flags as LoopConfig fields; a flag left unset keeps the task's default."""
    given = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
             "num_threads": args.threads, "num_workers": args.workers}
    return {k: v for k, v in given.items() if v is not None}


def publish_run(result, out: Path, name: str, export, *args, **kwargs) -> Path | None:
    """After training, on rank 0: ``export(best.pt, OUT/<name>.onnx, *args, **kwargs)`` and copy the
    weights beside the graph as OUT/<name>.pt. Returns the ONNX path, or None on the other torchrun ranks.
    """
    if not result.main:
        return None
    onnx_path = out / f"{name}.onnx"
    export(result.best_path, onnx_path, *args, **kwargs)
    shutil.copyfile(result.best_path, onnx_path.with_suffix(".pt"))
    return onnx_path


def add_data_source(p: argparse.ArgumentParser, what: str, layout: str, synthetic: str, frame_size: str) -> None:
    """Add the --data | --bag | --synthetic choice and --frame-size of tasks that read image folders,
    bags or generated data, worded alike for all of them.
    """
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, help=f"{what} folder in {layout}")
    src.add_argument("--bag", action="extend", nargs="+", type=Path, metavar="DIR", help=f"{what} bag folder(s)")
    src.add_argument("--synthetic", type=int, metavar="N", help=f"{what} on N {synthetic}")
    p.add_argument("--frame-size", default=None, metavar="WxH",
                   help=f"frames are resized to this (the size the node's camera sends); train default "
                        f"{frame_size}, eval default: the model's input size")


SHARED = {"train": _shared_train, "eval": _shared_eval, "export": _shared_export}


def task_commands() -> list:
    """Return the commands module of every task in `tasks.TASKS`, in that order."""
    from .. import tasks

    return [importlib.import_module(f"{tasks.__name__}.{name}.commands") for name in tasks.TASKS]


def add_task_commands(sub) -> dict:
    """Add `train`, `eval` and `export` to the ``sub`` subparsers, each with one sub-command per task;
    return the three verbs' subparsers.
    """
    verbs = {verb: sub.add_parser(verb, help=VERB_HELP[verb]).add_subparsers(dest="model", required=True,
                                                                             metavar="TASK")
             for verb in VERBS}
    for module in task_commands():
        command = module.__name__.split(".")[-2].replace("_", "-")
        for verb in VERBS:
            add, handler = getattr(module, f"add_{verb}_args", None), getattr(module, f"cmd_{verb}", None)
            if handler is None:
                continue
            summary, _, details = inspect.getdoc(handler).partition("\n")
            p = verbs[verb].add_parser(command, help=summary[0].lower() + summary[1:].rstrip("."),
                                       description=details.strip() or summary)
            if verb not in getattr(module, "OWN_FLAGS", ()):
                SHARED[verb](p)
            if add is not None:
                add(p)
            p.set_defaults(func=handler, **getattr(module, "DEFAULTS", {}).get(verb, {}))
    return verbs


def command_line() -> str:
    return shlex.join(["tacforce", *sys.argv[1:]])


def user_errors() -> tuple[type[Exception], ...]:
    """Errors that are the input's fault: printed as one line, exit code 1, no traceback.
    (ModelError covers export.ExportError; importing nothing torch keeps `eval` torch-free.)
    """
    from tacforce_ros.bags import BagError
    from tacforce_ros.inference.contract import ModelError

    return ValueError, KeyError, OSError, BagError, ModelError


def fail(exc: Exception) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return 1


def report_eval(args: argparse.Namespace, metrics: dict, heading: str, table: str, data: str, **card) -> int:
    """Print an evaluation (one JSON object with --json, else ``heading`` over ``table``), record the
    table in the --card model card (``data``: what it was measured on; ``card``: `record_in_card`'s
    title and note), and return 0.
    """
    print(json.dumps(metrics) if args.json else "\n".join(filter(None, (heading, table))))
    if args.card:
        record_in_card(args.card, data, table, **card)
    return 0


def record_in_card(card: Path, data: str, report: str, title: str = "Held-out evaluation",
                   note: str = "", command: str = "") -> None:
    """Replace (or append) the model card's ``## title`` section with these results, an optional
    note and the command that made them (default: this `tacforce` command line); other sections
    stay as they are.
    """
    text = card.read_text(encoding="utf-8") if card.is_file() else ""
    heading = f"## {title}"
    if heading in text:
        before, rest = text.split(heading, 1)
        after = rest.split("\n## ", 1)
        text = before.rstrip() + ("\n\n## " + after[1] if len(after) == 2 else "")
    text = text.rstrip() + "\n\n"
    text += f"{heading}\n\nData: {data}\n\n```\n{report}\n```\n\n"
    text += f"{note}\n\n" if note else ""
    text += f"Made by:\n\n```\n{command or command_line()}\n```\n"
    card.write_text(text, encoding="utf-8")
