"""`tacforce train|eval|export grasp-success`: argparse wiring (torch imported in the handlers;
`eval` needs onnxruntime only). Each handler returns an exit code (0 ok, 1 error printed).

Data, one of:
    --data DIR                     the seeds' layout: DIR/success/*.png, DIR/failure/*.png
    --bag DIR.. --image-topic T --label-topic L    label topic std_msgs/Bool or String
    --bag TRIALS..                 `tacforce sim grasp-trials` folders (or their bag/): the after-grasp
                                   view and its label; training refuses held-out objects (800-999)
    --synthetic N                  N frames of tacforce_ros.sim.grasp_check_scenes
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ...core.cli import ENCODINGS, add_data_source, command_line, fail, loop_args, publish_run, report_eval, user_errors

DEFAULT_FRAME = "160x120"
ARCHS = ("small_cnn", "tiny_cnn", "resnet34", "inception_v3_mixed7")   # = models.grasp_success.ARCHS (no torch here)


DEFAULTS = {"train": {"epochs": 15, "batch_size": 32, "lr": 2e-3}}


def add_train_args(p: argparse.ArgumentParser) -> None:
    _add_data_args(p, "training")
    p.add_argument("--val-data", type=Path, default=None, help="validation folder (seeds layout)")
    p.add_argument("--val-bag", action="extend", nargs="+", type=Path, default=None, metavar="DIR",
                   help="validation bags (same topics)")
    p.add_argument("--val-synthetic", type=int, default=None, metavar="N",
                   help="validation: N synthetic frames (training viewpoints and shapes, another seed)")
    p.add_argument("--val-fraction", type=float, default=0.15,
                   help="held out of the training data per class when no validation set is given (default 0.15)")
    p.add_argument("--arch", choices=ARCHS, default="small_cnn", help="architecture (default: small_cnn)")
    p.add_argument("--weights", type=Path, default=None,
                   help="local pretrained weights (torchvision state_dict); freezes the early layers")
    p.add_argument("--image-size", type=int, default=0, help="model input side (default: per architecture)")
    p.add_argument("--epoch-size", type=int, default=0, help="frames per epoch (default: 2x the larger class)")
    p.add_argument("--no-balance", action="store_true", help="do not balance the classes per epoch")
    p.add_argument("--no-augment", action="store_true", help="no rotation/shift/shear/zoom/flip augmentation")
    p.add_argument("--encoding", choices=("rgb8", "bgr8"), default="rgb8",
                   help="input encoding of the exported graph (default rgb8; bgr8 reorders in the graph)")


def add_eval_args(p: argparse.ArgumentParser) -> None:
    _add_data_args(p, "evaluation")
    p.add_argument("--split", choices=("train", "test"), default="test",
                   help="with --synthetic: test = held-out viewpoints and shapes (default)")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--plot", type=Path, default=None, help="reliability plot PNG (default: reliability.png "
                                                           "beside the model, or in --out)")
    p.add_argument("--out", type=Path, default=None, help="folder for metrics.json and reliability.png")


def add_export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--encoding", choices=ENCODINGS, default=None, help="default: the training encoding")


def _add_data_args(p: argparse.ArgumentParser, what: str) -> None:
    add_data_source(p, what, "the seeds' layout (success/, failure/)", "synthetic after-grasp frames", DEFAULT_FRAME)
    p.add_argument("--image-topic", default=None, help="with --bag: sensor_msgs/Image or CompressedImage topic "
                                                       "(grasp-trials bags: /grasp_camera/image_raw)")
    p.add_argument("--label-topic", default=None, help="with --bag: std_msgs/Bool (True = held) or std_msgs/String "
                                                       "(success/failure) topic "
                                                       "(grasp-trials bags: /grasp_camera/held)")
    p.add_argument("--data-seed", type=int, default=None, help="with --synthetic: generator seed")
    p.add_argument("--max-frames", type=int, default=None, help="cap on frames loaded (per class for --data)")


def _load(args, data=None, bags=None, synthetic=None, split="train", seed=0, frame_size=(160, 120)):
    from .data import load_bags, load_folder, load_synthetic

    if data is not None:
        frames = load_folder(data, frame_size, args.max_frames)
    elif bags:
        frames = load_bags(bags, args.image_topic, args.label_topic, frame_size, args.max_frames)
    else:
        if synthetic < 2:
            raise ValueError("--synthetic needs at least 2 frames")
        frames = load_synthetic(synthetic, seed, split, frame_size)
    print(frames.summary(), file=sys.stderr if getattr(args, "json", False) else sys.stdout)
    return frames


def cmd_train(args) -> int:
    """Train a grasp-success classifier (is the object held?).

    Train on a seeds-layout folder, labelled bags or synthetic frames, then export
    OUT/grasp_success.onnx and its model card.
    """
    import dataclasses

    from .data import Augment, parse_size, refuse_held_out_objects, stratified_split
    from .export import export_grasp_success
    from .metrics import format_table
    from ...models.grasp_success import GraspModelConfig
    from .config import GraspTrainConfig
    from .train import public_summary, train

    try:
        size = parse_size(args.frame_size or DEFAULT_FRAME)
        seed = args.seed if args.data_seed is None else args.data_seed
        frames = _load(args, args.data, args.bag, args.synthetic, "train", seed, size)
        refuse_held_out_objects(frames, "training")
        if args.val_data or args.val_bag or args.val_synthetic:
            val = _load(args, args.val_data, args.val_bag, args.val_synthetic, "train", seed + 1000, size)
            refuse_held_out_objects(val, "validation")
            train_set = frames
        else:
            tr, va = stratified_split(frames.labels, args.val_fraction, args.seed)
            train_set, val = frames.subset(tr), frames.subset(va)
            val.source = f"{frames.source} ({len(va)} frames held out, stratified, seed {args.seed})"
        cfg = GraspTrainConfig(
            model=GraspModelConfig(arch=args.arch, image_size=args.image_size),
            **loop_args(args), epoch_size=args.epoch_size, balance=not args.no_balance,
            augment=None if args.no_augment else dataclasses.asdict(Augment()),
            weights=str(args.weights) if args.weights else None)
        result = train(cfg, train_set, val, args.out, resume=args.resume, device=args.device)
        if (onnx_path := publish_run(result, args.out, "grasp_success", export_grasp_success, args.encoding,
                                     public_summary(result.summary), result.metrics, command=command_line())) is None:
            return 0     # under torchrun, rank 0 alone exports and reports
    except user_errors() as exc:
        return fail(exc)
    print(f"\ntrained {result.summary['epochs']} epoch(s) on {len(train_set)} frames; best epoch "
          f"{result.best_epoch}; validation ({len(val)} frames):")
    print(format_table(result.metrics))
    print(f"model: {onnx_path} (input {size[0]}x{size[1]} {args.encoding}; weights {onnx_path.with_suffix('.pt')}, "
          f"card {onnx_path.with_suffix('.md')})\ncheckpoints: {result.best_path} (best), {result.last_path} "
          "(resume with --resume)")
    return 0


def cmd_eval(args) -> int:
    """Score a grasp_success ONNX model.

    Run every frame through the ONNX model as the node does; print accuracy, per-class recall, confusion
    matrix, ROC-AUC; save a reliability plot.
    """
    from .data import parse_size
    from .evaluate import evaluate_grasp_success, model_frame_size
    from .metrics import (
        format_groups,
        format_table,
        save_reliability_plot,
    )

    if not args.model.is_file():
        return fail(FileNotFoundError(f"{args.model}: model file not found"))
    try:
        size = parse_size(args.frame_size) if args.frame_size else model_frame_size(args.model)
        seed = 12345 if args.data_seed is None else args.data_seed
        frames = _load(args, args.data, args.bag, args.synthetic, args.split, seed, size)
        metrics, probs = evaluate_grasp_success(args.model, frames, args.threshold)
        plot = args.plot or ((args.out or args.model.parent) / "reliability.png")
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "metrics.json").write_text(json.dumps(metrics, indent=1))
        save_reliability_plot(metrics, plot, f"{args.model.name} on {len(frames)} frames: "
                                             f"ECE {metrics['reliability']['ece']:.3f}")
    except user_errors() as exc:
        return fail(exc)
    table = format_table(metrics)
    if metrics.get("by_group"):
        table += "\n" + format_groups(metrics["by_group"])
    report_eval(args, metrics, f"{args.model}: {frames.source}", table, frames.source)
    if not args.json:
        print(f"reliability plot: {plot}")
    return 0


def cmd_export(args) -> int:
    """Export a grasp-success checkpoint to ONNX.

    Re-export best.pt / last.pt; the validation frames stored in the checkpoint drive the parity check.
    """
    from ...core import checkpoint
    from .export import export_grasp_success
    from .metrics import format_table
    from .train import TASK, public_summary

    try:
        ckpt = checkpoint.load(args.checkpoint, TASK)
        # the newest history entry belongs to the weights in this file (best.pt or last.pt)
        metrics = ckpt["history"][-1]["metrics"]
        summary = public_summary(ckpt["summary"])
        for key, value in (("epochs", ckpt["epoch"]), ("best_epoch", ckpt["best"]["epoch"])):
            summary.setdefault(key, value)     # legacy checkpoints record both in their summary
        summary["exported_from"] = str(args.checkpoint)
        export_grasp_success(args.checkpoint, args.out, args.encoding, summary, metrics, command=command_line())
    except user_errors() as exc:
        return fail(exc)
    print(f"exported {args.checkpoint} (epoch {ckpt['epoch']}) -> {args.out} (card {args.out.with_suffix('.md')})")
    print(format_table(metrics))
    return 0
