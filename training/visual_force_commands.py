"""`tacforce train|eval|export visual-force`: argparse wiring (torch imported in the handlers;
`eval` needs onnxruntime only). Each handler returns an exit code (0 ok, 1 error printed).

Data, one of:
    --data DIR                     the seed's layout: DIR/[object]_[degree]_[illumination]/ with
                                   frames and labels.csv (frame, episode, force, fx, fy, fz)
    --bag DIR.. --image-topic T --wrench-topic W [--episode-topic E]   camera + wrench bags
    --synthetic N                  N presses per object/direction/illumination cell of
                                   tacforce_ros.sim.visual_force_scenes (--write-data DIR saves them
                                   in the seed's layout)

Held out (folders and synthetic data): cells with --held-out-illumination or
--held-out-degree never train; `eval` scores exactly those cells (--split test).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from .core.cli import ENCODINGS, command_line, fail, record_in_card, user_errors

DEFAULT_FRAME = "128x128"
ARCHS = ("ssam", "cnn_lstm")              # = models.ssam.ARCHS (no torch here)
SIZES = ("tiny", "small", "default")      # = models.ssam.CONFIGS


def add_commands(train_sub, eval_sub, export_sub) -> None:
    p = train_sub.add_parser("visual-force", help="train the SSAM / CNN-LSTM visual-force model (seed 000)",
                             description="Train on camera sequences of pressed objects (one illumination and "
                                         "one direction held out), then export OUT/visual_force.onnx + card.")
    _add_data_args(p, "training")
    p.add_argument("--write-data", type=Path, default=None, metavar="DIR",
                   help="with --synthetic: also write the episodes in the seed's folder layout")
    p.add_argument("--out", required=True, type=Path, help="output folder (checkpoints, ONNX, model card)")
    p.add_argument("--arch", choices=ARCHS, default="ssam", help="ssam (default) or cnn_lstm (the baseline)")
    p.add_argument("--size", choices=SIZES, default="small",
                   help="tiny (tests), small (CPU: 64 px, width x0.25; default), "
                        "default (the seed: 128 px, full width)")
    p.add_argument("--frames", type=int, default=None, help="sequence length T (default: per --size; the seed 20)")
    p.add_argument("--image-size", type=int, default=None, help="model input side, multiple of 32")
    p.add_argument("--width", type=float, default=None, help="channel multiplier (1.0 = the seed)")
    p.add_argument("--outputs", type=int, choices=(1, 3), default=1,
                   help="1: force along the press axis (default); 3: Fx, Fy, Fz")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--stride", type=int, default=2, help="a training window starts every STRIDE frames")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="episodes of each training cell held out for the best-epoch choice")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", type=Path, default=None, metavar="CHECKPOINT",
                   help="start from this checkpoint's weights (same model options), e.g. to train longer")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--encoding", choices=ENCODINGS, default="rgb8",
                   help="camera encoding of the exported graph (default rgb8)")
    p.set_defaults(func=cmd_train)

    p = eval_sub.add_parser("visual-force", help="score a visual_force ONNX model",
                            description="Run every window of T frames through the ONNX model as the node does; "
                                        "print RMSE/MAE overall, per object, and the illumination x direction table.")
    p.add_argument("--model", required=True, type=Path, help="visual_force .onnx file")
    _add_data_args(p, "evaluation")
    p.add_argument("--split", choices=("test", "train", "all"), default="test",
                   help="test: the held-out cells (default); train: the others; all")
    p.add_argument("--stride", type=int, default=1, help="a window ends every STRIDE frames (default 1)")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")
    p.add_argument("--out", type=Path, default=None, help="write metrics.json here")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--card", type=Path, default=None, help="model card (.md) to record these results in")
    p.add_argument("--card-title", default=None, help="heading of the card section (default: the model's name)")
    p.set_defaults(func=cmd_eval)

    p = export_sub.add_parser("visual-force", help="export a visual-force checkpoint to ONNX",
                              description="Re-export best.pt / last.pt; the checkpoint's sample windows drive "
                                          "the parity check.")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="output .onnx (a .md model card goes beside it)")
    p.add_argument("--encoding", choices=ENCODINGS, default=None, help="default: the training encoding")
    p.set_defaults(func=cmd_export)


def _add_data_args(p: argparse.ArgumentParser, what: str) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, help=f"{what} folder in the seed's layout")
    src.add_argument("--bag", action="extend", nargs="+", type=Path, metavar="DIR", help=f"{what} bag folder(s)")
    src.add_argument("--synthetic", type=int, metavar="N", help=f"{what} on N synthetic presses per cell")
    p.add_argument("--image-topic", default="/camera/image_raw", help="with --bag: camera topic (Image)")
    p.add_argument("--wrench-topic", default="/ft_sensor/wrench", help="with --bag: WrenchStamped topic")
    p.add_argument("--episode-topic", default=None, help="with --bag: episode topic (optional)")
    p.add_argument("--frame-size", default=None, metavar="WxH",
                   help=f"frames are resized to this (the size the node's camera sends); train default "
                        f"{DEFAULT_FRAME}, eval default: the model's input size")
    p.add_argument("--data-seed", type=int, default=0, help="with --synthetic: generator seed (default 0)")
    p.add_argument("--held-out-illumination", type=int, default=550, help="lux level never trained on (default 550)")
    p.add_argument("--held-out-degree", type=int, default=20, help="press direction never trained on (default 20)")


def _load(args, size):
    from tacforce_ros.sim.visual_force_scenes import SceneConfig, write_folders

    from .visual_force_data import load_bags, load_folder, load_synthetic

    if args.data is not None:
        data = load_folder(args.data, size)
    elif args.bag:
        data = load_bags(args.bag, args.image_topic, args.wrench_topic, args.episode_topic, size)
    else:
        if args.synthetic < 1:
            raise ValueError("--synthetic needs at least 1 episode per cell")
        data = load_synthetic(SceneConfig(width=size[0], height=size[1], episodes_per_cell=args.synthetic,
                                          seed=args.data_seed))
        out = getattr(args, "write_data", None)
        if out is not None:
            n = write_folders(out, data.episodes)
            print(f"wrote {n} frames in the seed's layout under {out}")
    print(data.summary(), file=sys.stderr if getattr(args, "json", False) else sys.stdout)
    return data


def cmd_train(args) -> int:
    from .models.ssam import config
    from .visual_force_data import episode_split, held_out_split, parse_size
    from .visual_force_export import export_visual_force
    from .visual_force_train import VisualTrainConfig, train

    try:
        size = parse_size(args.frame_size or DEFAULT_FRAME)
        data = _load(args, size)
        if args.bag:
            train_set, val = episode_split(data, args.val_fraction, args.seed)
            held = None
        else:
            train_all, _ = held_out_split(data, args.held_out_illumination, args.held_out_degree)
            train_set, val = episode_split(train_all, args.val_fraction, args.seed)
            held = {"illumination": args.held_out_illumination, "degree": args.held_out_degree}
        overrides = {k: v for k, v in (("frames", args.frames), ("image_size", args.image_size),
                                       ("width", args.width)) if v is not None}
        mcfg = config(args.size, arch=args.arch, outputs=args.outputs, **overrides)
        cfg = VisualTrainConfig(model=mcfg, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                stride=args.stride, seed=args.seed, num_threads=args.threads,
                                init=str(args.init) if args.init else None)
        print(f"training {train_set.summary()}\nvalidation {val.summary()}")
        result = train(cfg, train_set, val, args.out, encoding=args.encoding)
        onnx_path = args.out / "visual_force.onnx"
        summary = {**result.summary, "held_out": held}
        export_visual_force(result.best_path, onnx_path, args.encoding, summary, result.metrics, command=command_line())
        shutil.copyfile(result.best_path, onnx_path.with_suffix(".pt"))
    except user_errors() as exc:
        return fail(exc)
    m = result.metrics
    print(f"\ntrained {args.epochs} epoch(s); best epoch {result.best_epoch}; validation RMSE {m['rmse']:.3f} N, "
          f"MAE {m['mae']:.3f} N over {m['count']} windows")
    print(f"model: {onnx_path} (input {args.frames or mcfg.frames} x {size[0]}x{size[1]} {args.encoding}; "
          f"weights {onnx_path.with_suffix('.pt')}, card {onnx_path.with_suffix('.md')})\n"
          f"checkpoints: {result.best_path} (best), {result.last_path}")
    return 0


def cmd_eval(args) -> int:
    from .visual_force_data import held_out_split, parse_size
    from .visual_force_evaluate import evaluate, format_report

    if not args.model.is_file():
        return fail(FileNotFoundError(f"{args.model}: model file not found"))
    try:
        if args.frame_size:
            size = parse_size(args.frame_size)
        else:
            from tacforce_ros.inference.runtime import OnnxModel
            spec = OnnxModel(args.model, "visual_force", providers=["cpu"], warmup_runs=0).metadata.input
            size = (spec.width, spec.height)
        data = _load(args, size)
        if args.split != "all" and not args.bag:
            train_set, test_set = held_out_split(data, args.held_out_illumination, args.held_out_degree)
            data = test_set if args.split == "test" else train_set
        metrics = evaluate(args.model, data, args.stride, args.threads)
        metrics["data"] = data.source
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    except user_errors() as exc:
        return fail(exc)
    report = format_report(metrics)
    if args.json:
        print(json.dumps(metrics))
    else:
        print(f"{args.model}: {data.source}")
        print(report)
    if args.card:
        record_in_card(args.card, data.source, report,
                       title=args.card_title or f"Held-out evaluation: {args.model.name}")
    return 0


def cmd_export(args) -> int:
    from .core.checkpoint import read as read_checkpoint
    from .visual_force_export import export_visual_force

    try:
        ckpt = read_checkpoint(args.checkpoint)
        metrics = ckpt["history"][-1]["metrics"]
        summary = {**ckpt["summary"], "exported_from": str(args.checkpoint)}
        export_visual_force(args.checkpoint, args.out, args.encoding, summary, metrics, command=command_line())
    except user_errors() as exc:
        return fail(exc)
    print(f"exported {args.checkpoint} (epoch {ckpt['epoch']}) -> {args.out} (card {args.out.with_suffix('.md')})")
    return 0
