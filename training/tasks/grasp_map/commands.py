"""`tacforce train|eval|export grasp-map`: argparse wiring for GraspNet (seed 001) (torch imported in
the handlers; `eval` of synthetic scenes needs onnxruntime only). Each handler returns an exit code.

Data is either synthetic (``--synthetic N`` scenes of the training shapes, labelled by the
robot-like labeller) or folders of real trials (``--folder DIR`` with attempts.csv).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from tacforce_ros.sim.grasp_scenes import HELD_OUT_SHAPES, TRAIN_SHAPES

from ...core.cli import command_line, fail, loop_args, publish_run, report_eval, user_errors

DEFAULT_SIZE = (480, 640)
TABLE_DEPTH_M = 0.6   # a camera's distance to the table, for the export's sample depth images
NETWORKS = ("default", "small", "cpu", "tiny")   # = models.grasp_net.CONFIGS (no torch here)

DEFAULTS = {"train": {"epochs": 10, "batch_size": 64, "lr": 1e-3}}


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--synthetic", type=int, default=0, metavar="SCENES",
                   help="generate this many synthetic scenes (640x480) of the training shapes (seed: --seed)")
    p.add_argument("--attempts-per-scene", type=int, default=64)
    p.add_argument("--shapes", nargs="+", default=list(TRAIN_SHAPES),
                   help=f"synthetic object shapes (default: {' '.join(TRAIN_SHAPES)})")
    p.add_argument("--folder", action="extend", nargs="+", type=Path, default=None, metavar="DIR",
                   help="folder(s) of real trials: attempts.csv (image, u, v, angle, success) + images")
    p.add_argument("--val-folder", action="extend", nargs="+", type=Path, default=None, metavar="DIR",
                   help="validation trial folders (default: hold out 10%% of the images)")
    p.add_argument("--config", choices=NETWORKS, default="cpu",
                   help="network width: default = the seed's AlexNet, cpu = x0.25 (default: cpu)")
    p.add_argument("--bins", type=int, default=18, help="angle bins over [0, pi) (default: 18)")
    p.add_argument("--steps-per-epoch", type=int, default=0,
                   help="batches per epoch (default 0: one pass over the training trials)")
    p.add_argument("--alexnet-weights", type=Path, default=None,
                   help="local AlexNet state dict for conv1-5 (then frozen); never downloaded")
    p.add_argument("--init", type=Path, default=None, metavar="CHECKPOINT",
                   help="warm start from this GraspNet checkpoint, keeping its network and mean colour "
                        "(e.g. synthetic pre-training, then real trials)")
    p.add_argument("--encoding", choices=("rgb8", "bgr8"), default="rgb8",
                   help="what the camera publishes (the graph reorders bgr8)")
    add_shifts_arg(p)
    p.add_argument("--depth", action="store_true",
                   help="aligned depth as a second input (the trial folders' depth/ PNGs, mm): the model "
                        "sees the height above the table beside the colour (GG-CNN style)")
    p.add_argument("--empty-table", type=int, default=0, metavar="N",
                   help="add N failed trials per image of a trial folder at table pixels out of the fingers' reach "
                        "of every object (needs the folder's depth/ and trials.csv); robot trials only try objects, "
                        "so without them a model never sees empty table (default 0)")
    p.add_argument("--any-angle", action="store_true",
                   help="augment with rotations by any angle (default: k x 90 degrees), so every angle bin "
                        "learns from every trial")
    p.add_argument("--padding", choices=("replicate", "mean"), default="replicate",
                   help="beyond the image edge: repeat its border pixels (default), or the mean colour "
                        "(the first models'; it reads as an edge on other tables)")


def add_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenes", type=int, default=200, help="held-out synthetic scenes (default: 200)")
    p.add_argument("--shapes", nargs="+", default=list(HELD_OUT_SHAPES),
                   help=f"object shapes of the scenes (default: the held-out {' '.join(HELD_OUT_SHAPES)})")
    p.add_argument("--seed", type=int, default=1000, help="scene seed (training uses 0)")
    p.add_argument("--folder", action="extend", nargs="+", type=Path, default=None, metavar="DIR",
                   help="score folders of real trials (attempts.csv) instead of synthetic scenes")


def add_export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--height", type=int, default=DEFAULT_SIZE[0])
    p.add_argument("--width", type=int, default=DEFAULT_SIZE[1])
    p.add_argument("--encoding", choices=("rgb8", "bgr8"), default="rgb8")
    add_shifts_arg(p)


def add_shifts_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shifts", type=int, choices=(1, 2, 4), default=2,
                   help="network passes per image axis: cells every 32 / SHIFTS px (default 2: 16 px, four "
                        "passes; 1: one pass, 32 px)")


def _load_training_data(args):
    from tacforce_ros.sim.grasp_scenes import SceneConfig

    from .data import empty_table_trials, load_attempt_folder, merge_attempts, synthetic_attempts

    parts = [empty_table_trials(f, load_attempt_folder(f, depth=args.depth or args.empty_table > 0, training=True),
                                args.empty_table, seed=args.seed + i) for i, f in enumerate(args.folder or [])]
    if args.synthetic and args.depth:
        raise ValueError("--depth trains on trial folders with depth; the synthetic scenes have none")
    if args.synthetic:
        parts.append(synthetic_attempts(args.synthetic, args.attempts_per_scene,
                                        SceneConfig(shapes=tuple(args.shapes)), args.seed))
    if not parts:
        raise ValueError("no training data: give --synthetic SCENES and/or --folder DIR")
    return merge_attempts(parts)


def _folders(folders, depth: bool = False, training: bool = False):
    from .data import load_attempt_folder, merge_attempts

    return merge_attempts([load_attempt_folder(f, depth, training) for f in folders]) if folders else None


def cmd_train(args) -> int:
    """Train the GraspNet dense grasp-angle FCN.

    Train GraspNet on 227 px patches of labelled grasp trials (masked loss over the trial's angle bin),
    then export the dense OUT/grasp_map.onnx and its model card.
    """
    import dataclasses

    import numpy as np

    from ...models.grasp_net import CONFIGS
    from .config import GraspMapConfig
    from .export import export_grasp_map
    from .train import train

    try:
        attempts = _load_training_data(args)
        val = _folders(args.val_folder, args.depth, training=True)
        network = dataclasses.replace(CONFIGS[args.config], bins=args.bins, depth=args.depth, padding=args.padding)
        cfg = GraspMapConfig(model=network, **loop_args(args),
                             steps_per_epoch=args.steps_per_epoch, alexnet_weights=str(args.alexnet_weights or ""),
                             init_checkpoint=str(args.init or ""), any_angle=args.any_angle)
        print(f"training data: {attempts.summary()}")
        result = train(cfg, attempts, args.out, val_attempts=val, resume=args.resume, device=args.device)
        height, width = attempts.images[0].shape[:2]
        shown = val or attempts
        samples = np.stack(shown.images[:4])
        # depth that gives the trials' heights back (the graph measures them from the median depth)
        depths = None if shown.heights is None else TABLE_DEPTH_M - np.stack(shown.heights[:4]).astype(np.float32)
        if (onnx_path := publish_run(result, args.out, "grasp_map", export_grasp_map, height, width, samples,
                                     args.encoding, command=command_line(), metrics=result.metrics,
                                     sample_depths=depths, shifts=args.shifts)) is None:
            return 0     # under torchrun, rank 0 alone exports and reports
    except user_errors() as exc:
        return fail(exc)
    print(f"best epoch {result.best_epoch}: validation {json.dumps(result.metrics)}")
    print(f"model: {onnx_path} (card {onnx_path.with_suffix('.md')}); checkpoints {result.best_path}, "
          f"{result.last_path} (resume with --resume)")
    return 0


def cmd_eval(args) -> int:
    """Score top-1 grasp success and per-bin precision/recall.

    Run a grasp_map ONNX model on held-out synthetic scenes (top-1 grasp success by the labeller,
    per-bin precision/recall over every cell) or on folders of real trials.
    """
    from .evaluate import evaluate_attempts, evaluate_scenes, format_grasp_metrics

    try:     # a missing model file is OnnxModel's one-line ModelError
        if args.folder:
            data = _folders(args.folder)
            metrics = evaluate_attempts(args.model, data)
            what = data.source
        else:
            metrics = evaluate_scenes(args.model, args.scenes, tuple(args.shapes), args.seed,
                                      progress=not args.json)
            what = f"{args.scenes} synthetic scenes, shapes {' '.join(args.shapes)}, seed {args.seed}"
    except user_errors() as exc:
        return fail(exc)
    table = format_grasp_metrics(metrics)
    return report_eval(args, metrics, f"{args.model}: {what}", table, what)


def cmd_export(args) -> int:
    """Export a GraspNet checkpoint to a dense ONNX model.

    Re-export best.pt/last.pt for a camera size and encoding.
    """
    import numpy as np

    from tacforce_ros.sim.grasp_camera import depth_mm
    from tacforce_ros.sim.grasp_scenes import SceneConfig, generate_scene

    from .export import export_grasp_map

    try:
        rng = np.random.default_rng(0)
        config = SceneConfig(height=args.height, width=args.width)
        scenes = [generate_scene(config, rng) for _ in range(2)]
        samples = np.stack([scene.image for scene in scenes])
        depths = np.stack([depth_mm(scene, TABLE_DEPTH_M) for scene in scenes]).astype(np.float32) / 1000.0
        meta = export_grasp_map(args.checkpoint, args.out, args.height, args.width, samples,
                                args.encoding, command=command_line(), sample_depths=depths, shifts=args.shifts)
    except user_errors() as exc:
        return fail(exc)
    print(f"exported {args.checkpoint} -> {args.out} ({meta.outputs['grasp_probability']['shape']} map, "
          f"card {args.out.with_suffix('.md')})")
    return 0
