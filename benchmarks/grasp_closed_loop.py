"""Closed-loop grasping in PyBullet on held-out objects: the shipped grasp_map model vs. baselines.

Each scene (random_urdfs 800-999 only, never used for training) is built once; the random
(random object pixel, random angle), analytic (mask centroid, jaws across the minor axis) and
model (grasp_map.onnx through GraspPlanner + decode_grasps with grasp_planner_node's default
parameters, top-1) planners then each try one grasp from the same settled state, so all three
face the same scenes. A trial succeeds when an object is lifted >= 8 cm and stays between the
fingers through a shake; a planner's "no grasp" is a failure. Prints the success rate with a
Wilson 95 % interval and the plan time per planner.

    python benchmarks/grasp_closed_loop.py [--scenes 200] [--workers 2] [--json out.json]
        [--table-rgb 200 40 220] [--camera-height 0.9]   # a table colour / height never trained on
        [--card models/grasp_map.md]                     # record the scores in the model card

Needs pybullet (requirements-train.txt).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1000, help="scene i is drawn from (seed, i)")
    parser.add_argument("--model", default="grasp_map.onnx", help="grasp_map model (a bare name: models/)")
    parser.add_argument("--planners", nargs="+", default=["random", "analytic", "model"],
                        choices=["random", "analytic", "model"])
    parser.add_argument("--table-rgb", type=int, nargs=3, metavar=("R", "G", "B"),
                        help="plain table of this colour in every scene (a colour never seen in training)")
    parser.add_argument("--camera-height", type=float, help="camera height in m in every scene (training: 0.5-0.75)")
    parser.add_argument("--object-scale", type=float, nargs=2, metavar=("MIN", "MAX"),
                        help="random_urdfs scale range (default 0.45 0.75: 4-8 cm objects; 1 1: their native ~10 cm)")
    parser.add_argument("--json", help="write the scores and the settings to this file")
    parser.add_argument("--out", help="also write the trials (attempts.csv, images, bag) to this new folder")
    parser.add_argument("--card", help="record the scores in this model card (.md), one section per scene setting")
    args = parser.parse_args(argv)

    from tacforce_ros.sim.pybullet_grasp.runs import (TrialRunConfig, TrialWriter, describe_split, format_scores,
                                                      iter_scenes, score_planners)
    from tacforce_ros.sim.pybullet_grasp.scene import TrialSceneConfig

    overrides = {"camera_height_m": (args.camera_height,) * 2} if args.camera_height else {}
    if args.object_scale:
        overrides["object_scale"] = tuple(args.object_scale)
    scene = TrialSceneConfig(objects="heldout", table_rgb=tuple(args.table_rgb) if args.table_rgb else None,
                             **overrides)
    config = TrialRunConfig(scenes=args.scenes, workers=args.workers, seed=args.seed, planners=tuple(args.planners),
                            scene=scene, model_path=args.model, after_view=bool(args.out))
    print(f"closed loop: {args.scenes} scenes, {describe_split(config)}, {args.workers} worker(s), "
          f"table {'rgb ' + str(tuple(args.table_rgb)) if args.table_rgb else 'randomised'}, camera height "
          f"{args.camera_height or 'randomised'}, object scale {scene.object_scale}", flush=True)
    start = time.perf_counter()
    records = []
    with TrialWriter(args.out) if args.out else contextlib.nullcontext() as writer:
        for result in iter_scenes(config):
            if writer:
                writer.add(result)
            records += result.trials
    seconds = time.perf_counter() - start
    scores = score_planners(records)
    table = format_scores(scores)
    print(table)
    print(f"wall time {seconds:.1f} s ({60 * len(records) / seconds:.1f} trials/min incl. scene building)")
    if args.card:
        from tacforce_training.core.cli import record_in_card
        setting = ", ".join(filter(None, (f"table rgb {tuple(args.table_rgb)}" if args.table_rgb else "",
                                          f"camera height {args.camera_height:g} m" if args.camera_height else "",
                                          f"object scale {args.object_scale[0]:g}-{args.object_scale[1]:g}"
                                          if args.object_scale else ""))) or "randomised scenes"
        record_in_card(Path(args.card), f"{args.scenes} PyBullet scenes of held-out random_urdfs "
                       f"{scene.objects[0]}-{scene.objects[1]}, seed {args.seed}, {setting}; model {args.model}",
                       table, title=f"Closed loop: {setting}",
                       note="One top-1 grasp per planner and scene, all from the same settled scene; success = "
                            "lifted >= 8 cm and still between the fingers after a shake; no grasp counts as a "
                            "failure; 95 % Wilson intervals.",
                       command=" ".join(["python", "benchmarks/grasp_closed_loop.py", *sys.argv[1:]]))
    if args.json:
        Path(args.json).write_text(json.dumps({"scores": scores, "scenes": args.scenes, "seed": args.seed,
                                               "objects": list(scene.objects), "table_rgb": args.table_rgb,
                                               "camera_height_m": args.camera_height, "model": args.model,
                                               "object_scale": list(scene.object_scale),
                                               "wall_time_s": seconds}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
