"""`tacforce train|eval|export tactile-force`: argparse wiring for the training side.

Only argparse at import time: torch, onnx and the bag reader are imported inside the handlers,
so building the `tacforce` parser stays fast; `eval` needs onnxruntime only, never torch. Each
handler takes the parsed Namespace and returns an exit code (0 ok, 1 a user-facing error already
printed).

"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ...core.cli import ENCODINGS, command_line, fail, loop_args, publish_run, report_eval, user_errors

SAMPLE_FRAMES = 32   # frames streamed through ONNX and PyTorch for the export parity check


def add_train_args(p: argparse.ArgumentParser) -> None:
    add_bag_args(p)
    p.add_argument("--val-bag", action="extend", nargs="+", type=Path, default=None, metavar="DIR",
                   help="validation bags (default: hold out 20%% of the sequences)")
    p.add_argument("--config", choices=("tiny", "small", "default"), default="default",
                   help="model size (default: default)")
    p.add_argument("--image-size", type=int, default=None, help="model input side in pixels (default: per config)")
    p.add_argument("--memory-budget-mb", type=float, default=None,
                   help="preprocessed frames above this go to a memory-mapped cache in OUT/cache (default: 4096)")
    p.add_argument("--encoding", choices=ENCODINGS, default=None,
                   help="input encoding of the exported model (default: the bag's; give bgr8 for a "
                        "colour camera that publishes bgr8, the bag reader hands training RGB)")
    p.add_argument("--segment-markers", action="store_true",
                   help="segment marker images first (threshold and polarity from the first frame of the "
                        "first bag), as cross-sensor models do; see `tacforce train transfer`")
    p.add_argument("--grey", action="store_true",
                   help="train on grey (luma) frames even from a colour bag: marker sensors carry the force in "
                        "where the dots are, not in their colour (default: rgb8/bgr8 bags train colour models, "
                        "mono8 bags grey ones)")
    p.add_argument("--no-reference", action="store_true",
                   help="a model without the no-contact reference input (default: each sequence's frames before "
                        "its first contact are its reference, and the node captures or loads one)")
    p.add_argument("--loss", choices=("l1", "mse"), default="mse",
                   help="error on standardised forces: mse, which weighs the rare hard presses more, or l1 "
                        "(default: mse)")
    p.add_argument("--augment", default=None, metavar="K=V,...",
                   help="augmentation settings, e.g. 'brightness=0.2,rotation_deg=0' or 'enabled=false' "
                        "(default: on; see training/tasks/tactile_force/augment.py)")


def add_eval_args(p: argparse.ArgumentParser) -> None:
    add_bag_args(p)
    p.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                   help="true vs estimated force over the frames and per-axis scatter, training range shaded")
    p.add_argument("--predictions", type=Path, default=None, metavar="FILE.csv",
                   help="one row per frame: bag, sequence, stamp, true and estimated force, the node's range note")


def add_export_args(p: argparse.ArgumentParser) -> None:
    add_bag_args(p)
    p.add_argument("--encoding", choices=ENCODINGS, default=None,
                   help="input encoding of the exported model (default: the one it was trained on)")


def add_bag_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bag", required=True, action="extend", nargs="+", type=Path, metavar="DIR",
                   help="bag folder(s); repeat or list several")
    p.add_argument("--image-topic", required=True, help="tactile image topic")
    p.add_argument("--wrench-topic", required=True, help="WrenchStamped topic of the reference F/T sensor")
    p.add_argument("--episode-topic", default=None, help="episode marks topic (splits sequences at episodes)")
    p.add_argument("--tolerance", type=float, default=0.01,
                   help="max seconds between an image and the wrenches it is interpolated from (default: 0.01)")
    p.add_argument("--max-frames", type=int, default=None, help="cap on paired frames loaded")


def load_pairs(args, bags):
    from tacforce_ros.data.tactile_pairs import load_tactile_pairs

    pairs = load_tactile_pairs(bags, args.image_topic, args.wrench_topic, args.episode_topic,
                               tolerance_s=args.tolerance, max_frames=args.max_frames)
    print(pairs.summary(), file=sys.stderr if getattr(args, "json", False) else sys.stdout)
    return pairs


def _force_frame(pairs, val_pairs) -> str:
    """Return the wrench frame_id of the training bags (and the validation bags, which must agree)."""
    frame = pairs.force_frame
    if val_pairs is not None and val_pairs.force_frame not in ("", frame):
        raise ValueError(f"validation wrenches are in frame {val_pairs.force_frame!r}, training ones in {frame!r}")
    return frame


def _data_encoding(sequences) -> str:
    from .data import as_frames, infer_encoding

    seq = sequences[0]
    return getattr(seq, "encoding", None) or infer_encoding(as_frames(seq.images[:1]).shape[-1])


def _samples(sequences, data_encoding: str, model_encoding: str):
    """First frames of a sequence, in the channel order the exported graph will receive."""
    from .data import as_frames

    frames = as_frames(sequences[0].images[:SAMPLE_FRAMES])
    return frames[..., ::-1].copy() if {data_encoding, model_encoding} == {"rgb8", "bgr8"} else frames


def public_summary(summary: dict) -> dict:
    """Return the training summary minus per-sequence lists (they bloat the ONNX metadata)."""
    return {k: v for k, v in summary.items() if k not in ("sequence_lengths", "val_sequence_indices")}


def pairing_stats(stats) -> dict:
    return dict(stats) if isinstance(stats, dict) else dict(vars(stats))


def cmd_train(args) -> int:
    """Train the GenForce-style TemporalForce model.

    Train TemporalForce on bags of tactile images + wrenches, then export OUT/tactile_force.onnx and its
    model card.
    """
    import dataclasses

    from ...models.temporal_force import CONFIGS
    from .config import TrainConfig
    from .export import export_tactile_force
    from .metrics import format_table
    from .train import train

    try:
        pairs = load_pairs(args, args.bag)
        val_pairs = load_pairs(args, args.val_bag) if args.val_bag else None
        if not pairs.sequences:
            raise ValueError("no paired frames in the training bags")
        model_cfg = CONFIGS[args.config]
        if args.image_size:
            model_cfg = dataclasses.replace(model_cfg, image_size=args.image_size)
        data_encoding = _data_encoding(pairs.sequences)
        model_cfg = dataclasses.replace(model_cfg, reference=not args.no_reference,
                                        in_channels=1 if args.grey or data_encoding == "mono8" else 3)
        if args.segment_markers:
            from tacforce_ros.marker_pairs import bag_reference

            from .config import segmenting
            model_cfg = segmenting(model_cfg, bag_reference(args.bag[0], args.image_topic)[0])
        cfg = TrainConfig(model=model_cfg, augment=parse_augment(args.augment), loss=args.loss, **loop_args(args))
        if args.memory_budget_mb is not None:
            cfg = dataclasses.replace(cfg, memory_budget_mb=args.memory_budget_mb)
        encoding = args.encoding or data_encoding
        result = train(cfg, pairs.sequences, args.out, resume=args.resume, encoding=data_encoding,
                       val_sequences=val_pairs.sequences if val_pairs else None, device=args.device)
        summary = {**public_summary(result.summary), "force_frame": _force_frame(pairs, val_pairs),
                   "bags": [str(b) for b in args.bag],
                   "val_bags": [str(b) for b in args.val_bag or []], "image_topic": args.image_topic,
                   "wrench_topic": args.wrench_topic, "episode_topic": args.episode_topic,
                   "pairing": {**pairing_stats(pairs.stats), "tolerance_s": args.tolerance}}
        samples = _samples((val_pairs or pairs).sequences, data_encoding, encoding)
        if (onnx_path := publish_run(result, args.out, "tactile_force", export_tactile_force, samples, encoding,
                                     summary, result.metrics, command=command_line())) is None:
            return 0     # under torchrun, rank 0 alone exports and reports
    except user_errors() as exc:
        return fail(exc)
    print(f"\ntrained {summary['epochs']} epoch(s) on {summary['frames']['train']} frames "
          f"({summary['sequences']['train']} sequences); best epoch {result.best_epoch}, validation on "
          f"{summary['frames']['val']} frames ({summary['sequences']['val']} sequences):")
    print(format_table(result.metrics))
    print(f"model: {onnx_path} (weights {onnx_path.with_suffix('.pt')}, card {onnx_path.with_suffix('.md')})\n"
          f"checkpoints: {result.best_path} (best), {result.last_path} (resume with --resume)")
    return 0


def parse_augment(text: str | None):
    """Return the AugmentConfig of a --augment 'key=value,...' string (None: the defaults)."""
    import dataclasses

    from .augment import AugmentConfig

    if not text:
        return AugmentConfig()
    known = {f.name: f.type for f in dataclasses.fields(AugmentConfig)}
    values = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in known:
            raise ValueError(f"--augment: {item!r} is not one of {', '.join(f'{k}=...' for k in known)}")
        if key == "enabled":
            if value.strip().lower() not in ("true", "false"):
                raise ValueError(f"--augment: enabled must be true or false, got {value!r}")
            values[key] = value.strip().lower() == "true"
        else:
            try:
                values[key] = float(value)
            except ValueError:
                raise ValueError(f"--augment: {key} must be a number, got {value!r}") from None
    return AugmentConfig(**values)


def cmd_eval(args) -> int:
    """Score a tactile_force ONNX model on bags.

    Stream each sequence through the ONNX model as the node does (state carried, reset per sequence) and
    print force errors.
    """
    from .evaluate import plot_predictions, predict_sequences, score, write_predictions
    from .metrics import format_beyond, format_table

    if not args.model.is_file():
        return fail(FileNotFoundError(f"{args.model}: model file not found"))
    try:
        pairs = load_pairs(args, args.bag)
        predictions = predict_sequences(args.model, pairs.sequences)
        metrics = score(predictions, args.model)
        if args.predictions:
            write_predictions(args.predictions, predictions)
        if args.plot:
            plot_predictions(args.plot, predictions, f"{args.model.name} on {pairs.summary().split(':')[0]}")
    except user_errors() as exc:
        return fail(exc)
    table = format_table(metrics) + format_beyond(metrics.get("beyond_training_range"))
    return report_eval(args, metrics, f"{args.model}: {metrics['sequences']} sequence(s)", table, pairs.summary(),
                       note=f"Fz RMSE is {metrics['fz_rmse_pct_range']:.2f}% of the set's Fz range.")


def cmd_export(args) -> int:
    """Export a TemporalForce checkpoint to ONNX.

    Re-export a checkpoint (best.pt or last.pt); frames from the bags fix the input size and drive the
    parity check.
    """
    from ...core import checkpoint
    from .export import export_tactile_force
    from .metrics import format_table
    from .train import TASK

    try:
        ckpt = checkpoint.load(args.checkpoint, TASK)
        trained_encoding = ckpt["summary"]["input"]["encoding"]
        pairs = load_pairs(args, args.bag)
        if not pairs.sequences:
            raise ValueError("no paired frames in the bags")
        encoding = args.encoding or trained_encoding
        # the newest history entry belongs to the weights in this file (best.pt or last.pt)
        metrics = ckpt["history"][-1]["metrics"]
        summary = {**public_summary(ckpt["summary"]), "epochs": ckpt["epoch"],
                   "best_epoch": ckpt["best"]["epoch"], "exported_from": str(args.checkpoint),
                   "force_frame": pairs.force_frame}
        export_tactile_force(args.checkpoint, args.out,
                             _samples(pairs.sequences, _data_encoding(pairs.sequences), encoding),
                             encoding, summary, metrics, command=command_line())
    except user_errors() as exc:
        return fail(exc)
    print(f"exported {args.checkpoint} (epoch {ckpt['epoch']}) -> {args.out} "
          f"(card {args.out.with_suffix('.md')})")
    print("validation metrics of these weights:")
    print(format_table(metrics))
    return 0
