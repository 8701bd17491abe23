"""`tacforce train|eval m2m` and `tacforce train|eval transfer`: cross-sensor transfer (GenForce).

Commands:

    tacforce train m2m --pairs P.npz --source S --target T --out DIR      marker-to-marker model
    tacforce eval m2m --model DIR/m2m.pt --pairs HELD_OUT.npz              mask IoU, centroid error
    tacforce train transfer --bag SOURCE_BAGS --m2m DIR/m2m.pt --target-reference TARGET_BAG ...
    tacforce eval transfer --row CASE METHOD MODEL 'BAG_GLOB' ...          the experiment table
"""
from __future__ import annotations

import glob
import json
import sys
from pathlib import Path

from .core.cli import command_line, fail, record_in_card, user_errors
from .tasks.tactile_force.commands import _add_data_args, _load, _public_summary, _stats


def add_commands(train_sub, eval_sub, export_sub) -> None:
    p = train_sub.add_parser("m2m", help="train the marker-to-marker translation model",
                             description="UNet trained from scratch on location-paired marker masks "
                                         "(`tacforce pairs`): source mask + target reference -> target mask.")
    p.add_argument("--pairs", required=True, type=Path, help="paired masks (.npz from `tacforce pairs`)")
    p.add_argument("--source", required=True, help="source sensor name in the pairs")
    p.add_argument("--target", required=True, help="target sensor name in the pairs")
    p.add_argument("--out", required=True, type=Path, help="output folder (m2m.pt, m2m_summary.json)")
    p.add_argument("--config", default="default", choices=("default", "cpu", "tiny"),
                   help="model config: default (256 px; a GPU, --device cuda), cpu (160 px, minutes on a CPU), tiny")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: per config)")
    p.add_argument("--val-fraction", type=float, default=0.05, help="pairs held out for validation IoU")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", default="cpu", help="torch device: cpu, or cuda for the default config")
    p.set_defaults(func=cmd_train_m2m)

    p = eval_sub.add_parser("m2m", help="m2m image quality against the true target rendering",
                            description="Marker-mask IoU and marker-centroid error of translated masks vs "
                                        "the target's own masks of the same contacts, with two baselines.")
    p.add_argument("--model", required=True, type=Path, help="m2m.pt")
    p.add_argument("--pairs", required=True, type=Path, help="held-out paired masks")
    p.add_argument("--steps", type=int, default=1, help="denoising steps (1: one-step)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_eval_m2m)

    p = train_sub.add_parser("transfer", help="translate a labelled source run and train a target force model",
                             description="Source bags -> m2m translation (+ material compensation) -> "
                                         "TemporalForce for the target sensor -> ONNX (metadata records source, "
                                         "target, m2m model) -> evaluation on target bags.")
    _add_data_args(p)
    p.add_argument("--m2m", required=True, type=Path, help="m2m.pt from `tacforce train m2m`")
    p.add_argument("--target-reference", required=True, type=Path,
                   help="a bag of the target sensor (its first frame is the no-contact reference)")
    p.add_argument("--source-curve", type=Path, help="source material curve (.json, `tacforce fit material-curve`)")
    p.add_argument("--target-curve", type=Path, help="target material curve; with --source-curve: compensate")
    p.add_argument("--compensation-depth", type=float, default=0.0, help="no compensation at or below, mm")
    p.add_argument("--compensation-weight", type=float, default=1.0, help="0..1 share of the curve ratio")
    p.add_argument("--eval-bag", action="extend", nargs="+", type=Path, default=None, metavar="DIR",
                   help="target-sensor bags to evaluate the exported model on")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--config", choices=("tiny", "small", "default"), default="default", help="force model size")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: 12)")
    p.add_argument("--m2m-steps", type=int, default=1, help="denoising steps of the translation")
    p.add_argument("--device", default="cpu", help="torch device of the translation (cpu, cuda)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.set_defaults(func=cmd_train_transfer)

    p = eval_sub.add_parser("transfer", help="the cross-sensor experiment table (MAE per axis, R²)",
                            description="Evaluate each row's tactile_force model on its target bags (streamed "
                                        "as the node does) and print a table like GenForce's.")
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
    p.set_defaults(func=cmd_eval_transfer)


def cmd_train_m2m(args) -> int:
    import dataclasses

    from tacforce_ros.marker_pairs import MarkerPairs

    from .m2m_train import RECIPES, M2MTrainConfig, train_m2m

    try:
        pairs = MarkerPairs.load(args.pairs)
        train_pairs, val_pairs = pairs.split(args.val_fraction, args.seed)
        cfg = M2MTrainConfig(model=args.config, seed=args.seed, threads=args.threads, device=args.device,
                             **RECIPES[args.config])
        if args.steps:
            cfg = dataclasses.replace(cfg, steps=args.steps)
        summary = train_m2m(cfg, train_pairs.masks_of(args.source), train_pairs.masks_of(args.target),
                            pairs.references[args.source], pairs.references[args.target], args.out,
                            source_name=args.source, target_name=args.target,
                            val=(val_pairs.masks_of(args.source), val_pairs.masks_of(args.target)))
    except user_errors() as exc:
        return fail(exc)
    print(f"{args.source} -> {args.target}: {summary['steps']} steps on {summary['pairs']} pairs in "
          f"{summary['train_seconds']:.0f} s ({summary['threads']} threads); final losses "
          + ", ".join(f"{k} {v:.4f}" for k, v in summary["final_losses"].items())
          + f"; validation IoU {summary['val_iou']:.3f} on {summary['val_pairs']} held-out pairs")
    print(f"model: {args.out / 'm2m.pt'} (summary {args.out / 'm2m_summary.json'})")
    return 0


def _m2m_quality(model: Path, pairs_path: Path, steps: int) -> dict:
    from tacforce_ros.marker_pairs import MarkerPairs

    from .m2m_eval import evaluate_m2m
    from .m2m_train import M2MTranslator

    translator = M2MTranslator.load(model)
    pairs = MarkerPairs.load(pairs_path)
    return evaluate_m2m(translator, pairs.masks_of(translator.source_name), pairs.masks_of(translator.target_name),
                        steps=steps)


def cmd_eval_m2m(args) -> int:
    try:
        result = _m2m_quality(args.model, args.pairs, args.steps)
    except user_errors() as exc:
        return fail(exc)
    print(json.dumps(result) if args.json else _format_m2m([("", str(args.model), result)]))
    return 0


def cmd_train_transfer(args) -> int:
    import dataclasses
    import shutil

    from tacforce_ros.marker_pairs import bag_reference
    from tacforce_ros.material import Compensation, MaterialCurve

    from .tasks.tactile_force.evaluate import evaluate_tactile_force
    from .tasks.tactile_force.export import export_tactile_force
    from .m2m_train import M2MTranslator
    from .tasks.tactile_force.metrics import format_table
    from .models.temporal_force import CONFIGS
    from .tasks.tactile_force.config import TrainConfig
    from .tasks.tactile_force.train import train
    from .transfer import segmenting, translate_sequences

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
        pairs = _load(args, args.bag)
        if not pairs.sequences:
            raise ValueError("no paired frames in the source bags")
        sequences = translate_sequences(pairs.sequences, source_seg, translator, target_seg, compensation,
                                        steps=args.m2m_steps)
        del pairs.sequences[:]  # the source frames are no longer needed
        cfg = TrainConfig(model=segmenting(CONFIGS[args.config], target_seg), seed=args.seed, num_threads=args.threads)
        if args.epochs is not None:
            cfg = dataclasses.replace(cfg, epochs=args.epochs)
        result = train(cfg, sequences, args.out, encoding="mono8")
        transfer = {"source": translator.source_name, "target": translator.target_name,
                    "m2m": {**translator.info(), "path": str(args.m2m), "steps": args.m2m_steps},
                    "source_segmentation": source_seg.info(), "target_segmentation": target_seg.info(),
                    "target_reference": str(args.target_reference),
                    "compensation": compensation.info() if compensation else None}
        summary = {**_public_summary(result.summary), "bags": [str(b) for b in args.bag],
                   "image_topic": args.image_topic, "wrench_topic": args.wrench_topic,
                   "episode_topic": args.episode_topic, "transfer": transfer,
                   "pairing": {**_stats(pairs.stats), "tolerance_s": args.tolerance}}
        onnx_path = args.out / "tactile_force.onnx"
        export_tactile_force(result.best_path, onnx_path, sequences[0].images[:32], "mono8", summary,
                             result.metrics, command=command_line())
        shutil.copyfile(result.best_path, onnx_path.with_suffix(".pt"))
        print(f"\n{translator.source_name} -> {translator.target_name}: trained on {summary['frames']['train']} "
              f"translated frames; validation (translated, held-out sequences):")
        print(format_table(result.metrics))
        print(f"model: {onnx_path}")
        if args.eval_bag:
            target = _load(args, args.eval_bag)
            metrics = evaluate_tactile_force(onnx_path, target.sequences)
            print(f"on the target sensor ({len(args.eval_bag)} bag(s)):")
            print(format_table(metrics))
            record_in_card(onnx_path.with_suffix(".md"), target.summary(), format_table(metrics),
                           title="Evaluation on the target sensor")
    except user_errors() as exc:
        return fail(exc)
    return 0


def cmd_eval_transfer(args) -> int:
    from tacforce_ros.data.tactile_pairs import load_tactile_pairs

    from .tasks.tactile_force.evaluate import evaluate_tactile_force

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
        quality = [(case, model, _m2m_quality(Path(model), Path(pairs), 1)) for case, model, pairs in args.m2m]
    except user_errors() as exc:
        return fail(exc)
    text = _format_rows(rows) + ("\n\n" + _format_m2m(quality) if quality else "")
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


def _format_m2m(quality: list[tuple[str, str, dict]]) -> str:
    lines = ["| case | m2m model | compared with the true target masks | mask IoU | centroid error [px] "
             "| matched markers |",
             "|---|---|---|---|---|---|"]
    for case, model, q in quality:
        for key, label in (("translation", "m2m translation"), ("source_as_is", "source mask as-is"),
                           ("target_reference", "target reference (no deformation)")):
            r = q[key]
            lines.append(f"| {case} | {Path(model).parent.name} | {label} | {r['iou']:.3f} | "
                         f"{r['centroid_error_px']:.2f} | {100 * r['matched_fraction']:.1f} % |")
    return "\n".join(lines)
