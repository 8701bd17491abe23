"""`tacforce train|eval m2m`: the marker-to-marker translator of cross-sensor transfer (no torch at import).

    tacforce train m2m --pairs P.npz --source S --target T --out DIR      DIR/m2m.pt (= best.pt)
    tacforce eval m2m --model DIR/m2m.pt --pairs HELD_OUT.npz              mask IoU, centroid error

There is no export: the translator runs in PyTorch, offline, on the source run it translates.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ...core.cli import command_line, fail, report_eval, user_errors


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pairs", required=True, type=Path, help="paired masks (.npz from `tacforce pairs`)")
    p.add_argument("--source", required=True, help="source sensor name in the pairs")
    p.add_argument("--target", required=True, help="target sensor name in the pairs")
    p.add_argument("--config", default="default", choices=("default", "cpu", "tiny"),
                   help="model config and recipe: default (256 px; a GPU), cpu (160 px, minutes on a CPU), tiny")
    p.add_argument("--steps", type=int, default=None,
                   help="optimizer steps in all, spread evenly over the epochs (default: per config)")
    p.add_argument("--val-fraction", type=float, default=0.05, help="pairs held out for validation IoU")


def add_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pairs", required=True, type=Path, help="held-out paired masks")
    p.add_argument("--steps", type=int, default=1, help="denoising steps (1: one-step)")


def cmd_train(args) -> int:
    """Train the marker-to-marker translation model.

    UNet trained from scratch on location-paired marker masks (`tacforce pairs`): source mask + both
    references -> target mask. Writes OUT/best.pt, OUT/last.pt, OUT/m2m.pt (a copy of best.pt) and
    OUT/m2m_summary.json.
    """
    import dataclasses
    import shutil

    from tacforce_ros.marker_pairs import MarkerPairs

    from .config import RECIPES, M2MConfig
    from .train import public_summary, train

    try:
        pairs = MarkerPairs.load(args.pairs)
        train_pairs, val_pairs = pairs.split(args.val_fraction, args.seed)
        given = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr}
        cfg = M2MConfig(model=args.config, seed=args.seed, num_threads=args.threads, num_workers=args.workers,
                        **{**RECIPES[args.config], **{k: v for k, v in given.items() if v is not None}})
        if args.steps:
            cfg = dataclasses.replace(cfg, steps_per_epoch=-(-args.steps // cfg.epochs))
        result = train(cfg, train_pairs.masks_of(args.source), train_pairs.masks_of(args.target),
                       pairs.references[args.source], pairs.references[args.target], args.out,
                       source_name=args.source, target_name=args.target,
                       val=(val_pairs.masks_of(args.source), val_pairs.masks_of(args.target)),
                       resume=args.resume, device=args.device)
        if not result.main:     # under torchrun, rank 0 alone writes the model and reports
            return 0
        shutil.copyfile(result.best_path, args.out / "m2m.pt")
        summary = {**public_summary(result.summary), "validation": result.metrics, "pairs_file": str(args.pairs),
                   "command": command_line()}
        (args.out / "m2m_summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    except user_errors() as exc:
        return fail(exc)
    m = result.metrics
    print(f"{args.source} -> {args.target}: {cfg.epochs * cfg.steps_per_epoch} steps ({cfg.epochs} epochs) on "
          f"{summary['pairs']} pairs in {summary['train_seconds_this_run']:.0f} s; best epoch {result.best_epoch}: "
          f"validation IoU {m['iou']:.3f} on {m['pairs']} held-out pairs (threshold {m['threshold']:.2f})")
    print(f"model: {args.out / 'm2m.pt'} (summary {args.out / 'm2m_summary.json'}; resume with --resume)")
    return 0


def cmd_eval(args) -> int:
    """Score m2m image quality against the true target rendering.

    Marker-mask IoU and marker-centroid error of translated masks vs the target's own masks of the same
    contacts, with two baselines. --model is an m2m checkpoint (m2m.pt).
    """
    from .evaluate import format_m2m, m2m_quality

    try:
        result = m2m_quality(args.model, args.pairs, args.steps)
    except user_errors() as exc:
        return fail(exc)
    table = format_m2m([("", str(args.model), result)])
    return report_eval(args, result, "", table, f"{args.pairs}: {result['frames']} pairs, {args.steps} denoising "
                       "step(s)", title="m2m image quality")
