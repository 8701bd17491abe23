"""`tacforce train|eval transfer`: cross-sensor transfer (GenForce); no model of its own (no torch at import).

    tacforce train transfer --bag SOURCE_BAGS --m2m DIR/m2m.pt --target-reference TARGET_BAG ...
    tacforce eval transfer --row CASE METHOD MODEL 'BAG_GLOB' ...          the experiment table

`train` translates a labelled source run with an m2m model and trains the target's force model
with the tactile_force task (`tacforce_training.tasks.tactile_force.train`). `eval` scores several
models, one table row each, so it brings its own flags instead of the shared --model/--json/--card.
"""
from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

from ...core.cli import command_line, fail, record_in_card, user_errors
from ..tactile_force import commands as tactile   # looked up at call time (tests patch load_pairs)

OWN_FLAGS = ("eval",)


def add_train_args(p: argparse.ArgumentParser) -> None:
    tactile.add_bag_args(p)
    p.add_argument("--m2m", required=True, type=Path, help="m2m.pt from `tacforce train m2m`")
    p.add_argument("--target-reference", required=True, type=Path,
                   help="a bag of the target sensor (its first frame is the no-contact reference)")
    p.add_argument("--source-curve", type=Path, help="source material curve (.json, `tacforce fit material-curve`)")
    p.add_argument("--target-curve", type=Path, help="target material curve; with --source-curve: compensate")
    p.add_argument("--compensation-depth", type=float, default=0.0, help="no compensation at or below, mm")
    p.add_argument("--compensation-weight", type=float, default=1.0, help="0..1 share of the curve ratio")
    p.add_argument("--eval-bag", action="extend", nargs="+", type=Path, default=None, metavar="DIR",
                   help="target-sensor bags to evaluate the exported model on")
    p.add_argument("--config", choices=("tiny", "small", "default"), default="default", help="force model size")
    p.add_argument("--m2m-steps", type=int, default=1, help="denoising steps of the translation")


def add_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--row", action="append", nargs=4, required=True, metavar=("CASE", "METHOD", "MODEL", "BAGS"),
                   help="one table row; BAGS is a quoted glob of target-sensor bags")
    p.add_argument("--m2m", action="append", nargs=3, default=[], metavar=("CASE", "MODEL", "PAIRS"),
                   help="also report m2m image quality of MODEL on held-out PAIRS")
    p.add_argument("--image-topic", default="/tactile/image_raw/compressed")
    p.add_argument("--wrench-topic", default="/ft_sensor/wrench")
    p.add_argument("--episode-topic", default="/tactile/episode")
    p.add_argument("--tolerance", type=float, default=0.01)
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--out", type=Path, default=None, help="write the table (.md) and the numbers (.json) here")


def cmd_train(args) -> int:
    """Translate a labelled source run and train a target force model.

    Source bags -> m2m translation (+ material compensation) -> TemporalForce for the target sensor (the
    tactile-force task) -> ONNX (metadata records source, target, m2m model) -> evaluation on target
    bags. --device runs the translation and the training.
    """
    import dataclasses
    import shutil

    from tacforce_ros.marker_pairs import bag_reference
    from tacforce_ros.material import Compensation, MaterialCurve

    from ...models.temporal_force import CONFIGS
    from ..m2m.translator import M2MTranslator
    from ..tactile_force.config import TrainConfig, segmenting
    from ..tactile_force.evaluate import evaluate_tactile_force
    from ..tactile_force.export import export_tactile_force
    from ..tactile_force.metrics import format_table
    from ..tactile_force.train import train
    from .translate import translate_sequences

    try:
        if (args.source_curve is None) != (args.target_curve is None):
            raise ValueError("material compensation needs both --source-curve and --target-curve")
        translator = M2MTranslator.load(args.m2m, device=args.device)
        source_seg = bag_reference(args.bag[0], args.image_topic)[0]
        target_seg = bag_reference(args.target_reference, args.image_topic)[0]
        compensation = None
        if args.source_curve:
            compensation = Compensation(MaterialCurve.load(args.source_curve), MaterialCurve.load(args.target_curve),
                                        args.compensation_depth, args.compensation_weight)
        pairs = tactile.load_pairs(args, args.bag)
        if not pairs.sequences:
            raise ValueError("no paired frames in the source bags")
        sequences = translate_sequences(pairs.sequences, source_seg, translator, target_seg, compensation,
                                        steps=args.m2m_steps)
        del pairs.sequences[:]  # the source frames are no longer needed
        given = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr}
        cfg = TrainConfig(model=segmenting(CONFIGS[args.config], target_seg), seed=args.seed,
                          num_threads=args.threads, num_workers=args.workers)
        cfg = dataclasses.replace(cfg, **{k: v for k, v in given.items() if v is not None})
        result = train(cfg, sequences, args.out, encoding="mono8", resume=args.resume, device=args.device)
        if not result.main:     # under torchrun, rank 0 alone exports and reports
            return 0
        transfer = {"source": translator.source_name, "target": translator.target_name,
                    "m2m": {**translator.info(), "path": str(args.m2m), "steps": args.m2m_steps},
                    "source_segmentation": source_seg.info(), "target_segmentation": target_seg.info(),
                    "target_reference": str(args.target_reference),
                    "compensation": compensation.info() if compensation else None}
        summary = {**tactile.public_summary(result.summary), "bags": [str(b) for b in args.bag],
                   "image_topic": args.image_topic, "wrench_topic": args.wrench_topic,
                   "episode_topic": args.episode_topic, "transfer": transfer,
                   "pairing": {**tactile.pairing_stats(pairs.stats), "tolerance_s": args.tolerance}}
        onnx_path = args.out / "tactile_force.onnx"
        export_tactile_force(result.best_path, onnx_path, sequences[0].images[:32], "mono8", summary,
                             result.metrics, command=command_line())
        shutil.copyfile(result.best_path, onnx_path.with_suffix(".pt"))
        print(f"\n{translator.source_name} -> {translator.target_name}: trained on {summary['frames']['train']} "
              f"translated frames; validation (translated, held-out sequences):")
        print(format_table(result.metrics))
        print(f"model: {onnx_path}")
        if args.eval_bag:
            target = tactile.load_pairs(args, args.eval_bag)
            metrics = evaluate_tactile_force(onnx_path, target.sequences)
            print(f"on the target sensor ({len(args.eval_bag)} bag(s)):")
            print(format_table(metrics))
            record_in_card(onnx_path.with_suffix(".md"), target.summary(), format_table(metrics),
                           title="Evaluation on the target sensor")
    except user_errors() as exc:
        return fail(exc)
    return 0


def cmd_eval(args) -> int:
    """Tabulate the cross-sensor experiment (MAE per axis, R²).

    Evaluate each row's tactile_force model on its target bags (streamed as the node does) and print a
    table like GenForce's.
    """
    from tacforce_ros.data.tactile_pairs import load_tactile_pairs

    from ..m2m.evaluate import format_m2m, m2m_quality
    from ..tactile_force.evaluate import evaluate_tactile_force

    rows, cache = [], {}
    try:
        for case, method, model, pattern in args.row:
            bags = sorted(glob.glob(pattern)) or [pattern]
            if pattern not in cache:
                cache[pattern] = load_tactile_pairs(bags, args.image_topic, args.wrench_topic, args.episode_topic,
                                                    tolerance_s=args.tolerance, max_frames=args.max_frames)
                print(f"{pattern}: {cache[pattern].summary()}", file=sys.stderr)
            metrics = evaluate_tactile_force(Path(model), cache[pattern].sequences)
            rows.append({"case": case, "method": method, "model": model, "bags": pattern, "metrics": metrics})
            print(f"{case} / {method}: Fz MAE {metrics['mae']['z']:.4f} N", file=sys.stderr)
        quality = [(case, model, m2m_quality(Path(model), Path(pairs), 1)) for case, model, pairs in args.m2m]
    except user_errors() as exc:
        return fail(exc)
    text = _format_rows(rows) + ("\n\n" + format_m2m(quality) if quality else "")
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(f"{text}\n\nMade by:\n\n```\n{command_line()}\n```\n", encoding="utf-8")
        args.out.with_suffix(".json").write_text(json.dumps(
            {"rows": rows, "m2m": [{"case": c, "model": m, **q} for c, m, q in quality]}, indent=1), encoding="utf-8")
    return 0


def _format_rows(rows: list[dict]) -> str:
    lines = ["| case | method | MAE x [N] | MAE y [N] | MAE z [N] | R² x | R² y | R² z | frames |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r["metrics"]
        lines.append(f"| {r['case']} | {r['method']} | " + " | ".join(f"{m['mae'][a]:.4f}" for a in "xyz") + " | "
                     + " | ".join(f"{m['r2'][a]:.3f}" for a in "xyz") + f" | {m['n']} |")
    return "\n".join(lines)
