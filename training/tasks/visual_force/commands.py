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
import sys
from pathlib import Path

from ...core.cli import ENCODINGS, add_data_source, command_line, fail, loop_args, publish_run, report_eval, user_errors

DEFAULT_FRAME = "128x128"
ARCHS = ("ssam", "cnn_lstm")              # = models.ssam.ARCHS (no torch here)
SIZES = ("tiny", "small", "default")      # = models.ssam.CONFIGS

DEFAULTS = {"train": {"epochs": 10, "batch_size": 8, "lr": 1e-3}}


def add_train_args(p: argparse.ArgumentParser) -> None:
    _add_data_args(p, "training")
    p.add_argument("--write-data", type=Path, default=None, metavar="DIR",
                   help="with --synthetic: also write the episodes in the seed's folder layout")
    p.add_argument("--arch", choices=ARCHS, default="ssam", help="ssam (default) or cnn_lstm (the baseline)")
    p.add_argument("--size", choices=SIZES, default="small",
                   help="tiny (tests), small (CPU: 64 px, width x0.25; default), "
                        "default (the seed: 128 px, full width)")
    p.add_argument("--frames", type=int, default=None, help="sequence length T (default: per --size; the seed 20)")
    p.add_argument("--image-size", type=int, default=None, help="model input side, multiple of 32")
    p.add_argument("--width", type=float, default=None, help="channel multiplier (1.0 = the seed)")
    p.add_argument("--outputs", type=int, choices=(1, 3), default=1,
                   help="1: force along the press axis (default); 3: Fx, Fy, Fz")
    p.add_argument("--stride", type=int, default=2, help="a training window starts every STRIDE frames")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="episodes of each training cell held out for the best-epoch choice")
    p.add_argument("--init", type=Path, default=None, metavar="CHECKPOINT",
                   help="warm start from this checkpoint's weights (same model options; new optimizer and "
                        "schedule), e.g. to train longer; --resume instead continues OUT/last.pt")
    p.add_argument("--encoding", choices=ENCODINGS, default="rgb8",
                   help="camera encoding of the exported graph (default rgb8)")


def add_eval_args(p: argparse.ArgumentParser) -> None:
    _add_data_args(p, "evaluation")
    p.add_argument("--split", choices=("test", "train", "all"), default="test",
                   help="test: the held-out cells (default); train: the others; all")
    p.add_argument("--stride", type=int, default=1, help="a window ends every STRIDE frames (default 1)")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")
    p.add_argument("--out", type=Path, default=None, help="write metrics.json here")
    p.add_argument("--card-title", default=None, help="heading of the card section (default: the model's name)")


def add_export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--encoding", choices=ENCODINGS, default=None, help="default: the training encoding")


def _add_data_args(p: argparse.ArgumentParser, what: str) -> None:
    add_data_source(p, what, "the seed's layout", "synthetic presses per cell", DEFAULT_FRAME)
    p.add_argument("--image-topic", default="/camera/image_raw", help="with --bag: camera topic (Image)")
    p.add_argument("--wrench-topic", default="/ft_sensor/wrench", help="with --bag: WrenchStamped topic")
    p.add_argument("--episode-topic", default=None, help="with --bag: episode topic (optional)")
    p.add_argument("--data-seed", type=int, default=0, help="with --synthetic: generator seed (default 0)")
    p.add_argument("--held-out-illumination", type=int, default=550, help="lux level never trained on (default 550)")
    p.add_argument("--held-out-degree", type=int, default=20, help="press direction never trained on (default 20)")


def _load(args, size):
    from tacforce_ros.sim.visual_force_scenes import SceneConfig, write_folders

    from .data import load_bags, load_folder, load_synthetic

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
    """Train the SSAM / CNN-LSTM visual-force model (seed 000).

    Train on camera sequences of pressed objects (one illumination and one direction held out), then
    export OUT/visual_force.onnx and its model card.
    """
    from ...models.ssam import config
    from .config import VisualTrainConfig
    from .data import episode_split, held_out_split, parse_size
    from .export import export_visual_force
    from .train import public_summary, train

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
        cfg = VisualTrainConfig(model=mcfg, **loop_args(args), stride=args.stride,
                                init=str(args.init) if args.init else None)
        print(f"training {train_set.summary()}\nvalidation {val.summary()}")
        result = train(cfg, train_set, val, args.out, encoding=args.encoding, held_out=held, resume=args.resume,
                       device=args.device)
        if (onnx_path := publish_run(result, args.out, "visual_force", export_visual_force, args.encoding,
                                     public_summary(result.summary), result.metrics, command=command_line())) is None:
            return 0     # under torchrun, rank 0 alone exports and reports
    except user_errors() as exc:
        return fail(exc)
    m = result.metrics
    print(f"\ntrained {result.summary['epochs']} epoch(s); best epoch {result.best_epoch}; validation RMSE "
          f"{m['rmse']:.3f} N, MAE {m['mae']:.3f} N over {m['count']} windows\n"
          f"model: {onnx_path} (input {mcfg.frames} x {size[0]}x{size[1]} {args.encoding}; weights "
          f"{onnx_path.with_suffix('.pt')}, card {onnx_path.with_suffix('.md')}); checkpoints in {args.out} "
          "(best.pt; last.pt continues with --resume)")
    return 0


def cmd_eval(args) -> int:
    """Score a visual_force ONNX model.

    Run every window of T frames through the ONNX model as the node does; print RMSE/MAE overall, per
    object, and the illumination x direction table.
    """
    from .data import held_out_split, parse_size
    from .evaluate import TASK, evaluate, format_report

    try:
        if not args.model.is_file():
            raise FileNotFoundError(f"{args.model}: model file not found")
        if args.frame_size:
            size = parse_size(args.frame_size)
        else:
            from tacforce_ros.inference.runtime import OnnxModel
            spec = OnnxModel(args.model, TASK, providers=["cpu"], warmup_runs=0).metadata.input
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
    return report_eval(args, metrics, f"{args.model}: {data.source}", format_report(metrics), data.source,
                       title=args.card_title or f"Held-out evaluation: {args.model.name}")


def cmd_export(args) -> int:
    """Export a visual-force checkpoint to ONNX.

    Re-export best.pt / last.pt; the checkpoint's sample windows drive the parity check.
    """
    from .export import export_visual_force

    try:
        meta = export_visual_force(args.checkpoint, args.out, args.encoding, command=command_line())
    except user_errors() as exc:
        return fail(exc)
    m = meta.metrics
    print(f"exported {args.checkpoint} (best epoch {meta.training['best_epoch']} of {meta.training['epochs']}) -> "
          f"{args.out} (card {args.out.with_suffix('.md')}); validation RMSE {m['rmse']:.3f} N, MAE {m['mae']:.3f} N")
    return 0
