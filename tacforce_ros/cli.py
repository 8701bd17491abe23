"""`tacforce`: one command for running, simulating, recording, training and evaluating.

Commands:

    tacforce demo                  simulated sensor + shipped model through the real nodes
    tacforce run [--sim] [--namespace NS]  perception nodes from config/perception.yaml in one process
    tacforce sim [--bag DIR]       simulated tactile sensor + Nano17: live topics, or a bag
    tacforce sim grasp-trials --out DIR --scenes N --workers K   PyBullet grasp trials (pip pybullet)
    tacforce record --out DIR      record topics to an MCAP bag
    tacforce bag recover DIR       make a bag a killed recorder left readable (like ros2 bag reindex)
    tacforce collect --sim --bag DIR   GenForce indentation run with simulated hardware
    tacforce pairs --out F.npz     location-paired marker masks of two or more sensors (m2m data)
    tacforce fit material-curve    force-depth curves of a sensor from a material-curve run
    tacforce train|eval|export tactile-force|grasp-map|grasp-success|visual-force|m2m|transfer ...
                                   (PyTorch; imported only for these)
"""
from __future__ import annotations

import argparse
import sys

from .paths import resolve


def _ros_args(params: list[str], namespace: str = "") -> list[str]:
    """--ros-args for the params files; a namespace moves every node and its relative topics."""
    args = ["tacforce", "--ros-args"]
    for path in params:
        args += ["--params-file", str(resolve("config", path))]
    if namespace:
        args += ["-r", f"__ns:=/{namespace.strip('/')}"]
    return args


def cmd_run(args: argparse.Namespace) -> int:
    from .nodes.runner import spin_nodes
    from .nodes.tactile_force_node import TactileForceNode
    factories, params = [TactileForceNode], [args.config]
    if args.grasp_planner:
        from .nodes.grasp_planner_node import GraspPlannerNode
        factories.append(GraspPlannerNode)
    if args.sim:
        from .nodes.sim_sensors_node import SimSensorsNode
        factories.insert(0, SimSensorsNode)
        if args.grasp_planner:
            from .nodes.sim_camera_node import SimCameraNode
            factories.insert(0, SimCameraNode)
        params.insert(0, args.sim_config)
    return spin_nodes(factories, _ros_args(params, args.namespace))


def cmd_sim(args: argparse.Namespace) -> int:
    if args.what == "grasp-trials":
        return cmd_grasp_trials(args)
    if args.out:
        print("tacforce sim: --out belongs to `tacforce sim grasp-trials`", file=sys.stderr)
        return 2
    if args.bag:
        from .sim.sensors import SimConfig, write_sim_bag
        config = SimConfig.from_yaml(resolve("config", args.config))
        if args.indenters:
            config.indenters = tuple(args.indenters)
        if args.seed is not None:
            config.seed = args.seed
        if args.style:
            config.style = args.style
            config.validate()
        summary = write_sim_bag(args.bag, config, compressed=not args.raw_images,
                                max_seconds=args.seconds)
        print(summary)
        return 0
    from .nodes.runner import spin_nodes
    from .nodes.sim_sensors_node import SimSensorsNode
    return spin_nodes([SimSensorsNode], _ros_args([args.config]))


def cmd_grasp_trials(args: argparse.Namespace) -> int:
    if not args.out:
        print("tacforce sim grasp-trials needs --out DIR", file=sys.stderr)
        return 2
    if args.bag:
        print("tacforce sim grasp-trials: --bag is the tactile simulator's; the trials' bag is written to "
              "OUT/bag (--no-trial-bag: none)", file=sys.stderr)
        return 2
    from .sim.pybullet_grasp.runs import TrialRunConfig, describe_split, run_trials
    from .sim.pybullet_grasp.scene import TrialSceneConfig
    scale = {"object_scale": tuple(args.object_scale)} if args.object_scale else {}
    try:
        config = TrialRunConfig(scenes=args.scenes, workers=args.workers, seed=args.seed or 0,
                                planners=tuple(args.planner), trials_per_scene=args.trials_per_scene,
                                scene=TrialSceneConfig(objects=args.objects, **scale), model_path=args.model)
        print(f"grasp trials: {config.scenes} scenes, {describe_split(config)}, planner(s) "
              f"{', '.join(config.planners)}, {config.workers} worker(s)", flush=True)
        summary = run_trials(args.out, config, bag=not args.no_trial_bag)
    except (ValueError, OSError) as exc:
        print(f"tacforce sim grasp-trials: {exc}", file=sys.stderr)
        return 1
    print(summary)
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from .nodes.recorder_node import RecorderNode
    from .nodes.runner import spin_nodes
    ros_args = ["tacforce", "--ros-args", "-p", f"output:={args.out}", "-p", f"storage:={args.storage}",
                "-p", "topics:=[" + ",".join(f"'{t}'" for t in args.topics) + "]"]
    return spin_nodes([RecorderNode], ros_args)


def cmd_bag_recover(args: argparse.Namespace) -> int:
    from .bags import BagError, recover_bag
    try:
        recovery = recover_bag(args.dir)
    except (OSError, BagError) as exc:
        print(f"tacforce bag recover: {exc}", file=sys.stderr)
        return 1
    print(recovery.summary())
    return 0


def cmd_pairs(args: argparse.Namespace) -> int:
    from .bags import BagError
    try:
        if args.sim:
            from .sim.paired_contacts import render_paired_contacts
            from .sim.tactile import SEEN_INDENTERS
            pairs = render_paired_contacts(args.styles, tuple(args.indenters or SEEN_INDENTERS), args.contacts,
                                           args.frames, seed=args.seed)
        else:
            from .marker_pairs import pairs_from_bags
            if not (args.source_bag and args.target_bag and len(args.styles) == 2):
                raise ValueError("pairs from bags need --source-bag, --target-bag and --styles SOURCE TARGET")
            pairs = pairs_from_bags(args.source_bag, args.target_bag, tuple(args.styles), args.image_topic,
                                    args.wrench_topic, args.episode_topic, args.frames)
        pairs.save(args.out)
    except (ValueError, OSError, BagError) as exc:
        print(f"tacforce pairs: {exc}", file=sys.stderr)
        return 1
    print(f"{args.out}: {len(pairs)} pairs of {', '.join(pairs.sensors)}")
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from .bags import BagError
    from .material import fit_material_curve
    try:
        curve = fit_material_curve(args.bag, args.surface_z, args.sensor, degree=args.degree,
                                   pose_topic=args.pose_topic, wrench_topic=args.wrench_topic,
                                   episode_topic=args.episode_topic)
        curve.save(args.out)
    except (ValueError, OSError, BagError) as exc:
        print(f"tacforce fit: {exc}", file=sys.stderr)
        return 1
    print(curve.describe())
    print(f"written to {args.out}")
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from .hardware.collection_config import CollectionConfig
    from .hardware.protocol import describe, plan
    config = CollectionConfig.from_yaml(resolve("config", args.config))
    if args.indenter:
        config.protocol.indenter = args.indenter
    if args.style:
        config.style = args.style
    if args.dry_run:
        print(describe(plan(config.protocol)))
        return 0
    if not args.sim:
        print("tacforce collect: only simulated runs (--sim) and --dry-run run here; a real UR5e + "
              "Net F/T run is the collection node: ros2 launch tacforce collection.launch.py", file=sys.stderr)
        return 2
    if not args.bag:
        print("tacforce collect --sim needs --bag DIR", file=sys.stderr)
        return 2
    from .sim.collection import run_sim_collection
    _interrupt_on_sigint_and_sigterm()
    result = run_sim_collection(args.bag, config.protocol, style=config.style, image_rate=config.image_rate,
                                control_period=config.control_period, limits=config.limits,
                                stale_after_s=config.stale_after)
    print(f"{args.bag}: {result.summary()}")
    return 0 if result.reason is None else 1


def _interrupt_on_sigint_and_sigterm() -> None:
    """Ctrl-C and SIGTERM abort a run safely (stop, retract, close the bag), even when this
    process inherited SIGINT as ignored (a background job of a non-interactive shell, some CI
    runners), where Python would otherwise never raise KeyboardInterrupt.
    """
    import signal

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tacforce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo",
                          help="simulated indentation and table scenes through the real nodes; prints and plots")
    demo.add_argument("--out", default="out/demo", help="folder for the plot and the CSV")
    demo.add_argument("--indenter", default="cone",
                      help="indenter for the scripted run (default: one held out from training)")
    demo.add_argument("--seconds", type=float, default=30.0, help="length of the run")
    demo.add_argument("--model", default="tactile_force.onnx", help="tactile_force model")
    demo.add_argument("--grasp-model", default="grasp_map_synthetic.onnx",
                      help="grasp_map model (default: the one trained on the synthetic scenes the demo draws)")
    demo.add_argument("--grasp-scenes", type=int, default=10, help="table scenes for the grasp part (0: skip it)")
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser("run", help="start the perception nodes in one process (no ros2 launch needed)")
    run.add_argument("--config", default="perception.yaml", help="ROS parameter file")
    run.add_argument("--sim", action="store_true", help="also start the simulated sensors (tactile, F/T, camera)")
    run.add_argument("--sim-config", default="sim.yaml", help="parameter file for sim_sensors_node and sim_camera_node")
    run.add_argument("--no-grasp-planner", dest="grasp_planner", action="store_false",
                     help="leave out grasp_planner_node (and the simulated camera)")
    run.add_argument("--namespace", default="",
                     help="start the nodes in this namespace (e.g. arm2), beside a copy in another one: "
                          "relative topics move with it (/arm2/tactile/image_raw -> /arm2/estimated_wrench)")
    run.set_defaults(func=cmd_run)

    sim = sub.add_parser("sim", help="simulated tactile sensor + Nano17: live topics, or a bag with --bag; "
                                     "`sim grasp-trials`: PyBullet grasp trials")
    sim.add_argument("what", nargs="?", choices=["grasp-trials"],
                     help="grasp-trials: physics grasp trials (attempts.csv + images + bag) in PyBullet "
                          "(pip install pybullet, requirements-train.txt); omitted: the tactile simulator")
    sim.add_argument("--config", default="sim.yaml", help="sim_sensors_node parameter file")
    sim.add_argument("--bag", help="write the scripted run to this bag directory instead of publishing")
    sim.add_argument("--indenters", nargs="+", help="override the indenters of the config")
    sim.add_argument("--seed", type=int, help="override the seed of the config")
    sim.add_argument("--style", help="override the sensor style of the config: a marker style (mono8, "
                     "tacforce_ros/sim/tactile_styles.py) or gelsight_mini / gelsight_r15 (rgb8, sim/gelsight.py)")
    sim.add_argument("--seconds", type=float, help="stop the bag after this much simulated time")
    sim.add_argument("--raw-images", action="store_true",
                     help="record sensor_msgs/Image instead of PNG CompressedImage")
    trials = sim.add_argument_group("grasp-trials options")
    trials.add_argument("--out", help="output folder: attempts.csv, images/, depth/, after/, trials.csv, bag/")
    trials.add_argument("--scenes", type=int, default=100, help="scenes (each seeded from --seed and its index)")
    trials.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    trials.add_argument("--objects", default="train", choices=["train", "heldout"],
                        help="random_urdfs 000-799 (train) or 800-999 (heldout, for reported numbers)")
    trials.add_argument("--planner", nargs="+", default=["random"], choices=["random", "analytic", "model"],
                        help="grasp chooser(s); several: each tries every scene from the same state")
    trials.add_argument("--model", default="grasp_map.onnx",
                        help="grasp_map model of the model planner (a bare name: models/); trials chosen by the "
                             "current model are seed 001's staged learning")
    trials.add_argument("--object-scale", type=float, nargs=2, metavar=("MIN", "MAX"),
                        help="random_urdfs scale range (default 0.45 0.75: 4-8 cm objects)")
    trials.add_argument("--trials-per-scene", type=int, default=1, help="trials per planner and scene")
    trials.add_argument("--no-trial-bag", action="store_true", help="write no bag, only the folder/CSV layout")
    sim.set_defaults(func=cmd_sim)

    record = sub.add_parser("record", help="record topics to an MCAP bag (Ctrl-C to stop)")
    record.add_argument("--out", required=True, help="bag directory to create")
    record.add_argument("--topics", nargs="+", default=["/tactile/image_raw", "/ft_sensor/wrench", "/tactile/episode"])
    record.add_argument("--storage", default="mcap", choices=["mcap", "sqlite3"])
    record.set_defaults(func=cmd_record)

    bag = sub.add_parser("bag", help="bag maintenance").add_subparsers(dest="what", required=True)
    recover = bag.add_parser("recover", help="make a bag a killed recorder left readable (like ros2 bag reindex)",
                             description="Rewrites each unfinished MCAP file with every complete record (a cut-off "
                                         "tail is dropped), settles sqlite3 files and rebuilds metadata.yaml. "
                                         "Refuses a bag a live tacforce recorder holds; do not run it on a bag "
                                         "`ros2 bag record` is still writing.")
    recover.add_argument("dir", help="bag directory")
    recover.set_defaults(func=cmd_bag_recover)

    collect = sub.add_parser("collect", help="GenForce indentation run recorded to a bag (--sim: simulated "
                                             "UR5e, Nano17 over RDT on loopback, tactile sensor)")
    collect.add_argument("--config", default="collection.yaml", help="protocol and safety parameters")
    collect.add_argument("--sim", action="store_true", help="simulated robot and sensors")
    collect.add_argument("--bag", help="bag directory to create")
    collect.add_argument("--indenter", help="override the indenter of the config")
    collect.add_argument("--style", help="override the simulated sensor style of the config (--sim)")
    collect.add_argument("--dry-run", action="store_true", help="print the planned waypoints and exit")
    collect.set_defaults(func=cmd_collect)

    pairs = sub.add_parser("pairs", help="location-paired marker masks of sensors (m2m training data)",
                           description="--sim: render random contacts on every --styles sensor; else pair "
                                       "the same protocol run recorded on two sensors (--source-bag, --target-bag).")
    pairs.add_argument("--out", required=True, help="output .npz (bit-packed masks)")
    pairs.add_argument("--styles", nargs="+", required=True, help="sensor styles (--sim) or SOURCE TARGET names")
    pairs.add_argument("--sim", action="store_true", help="render the contacts with the simulator")
    pairs.add_argument("--contacts", type=int, default=500, help="random contacts (--sim)")
    pairs.add_argument("--frames", type=int, default=4, help="frames per contact (per episode from bags)")
    pairs.add_argument("--indenters", nargs="+", help="indenters (--sim; default: the seen ones)")
    pairs.add_argument("--seed", type=int, default=0)
    pairs.add_argument("--source-bag", help="run on the source sensor")
    pairs.add_argument("--target-bag", help="the same run on the target sensor")
    pairs.add_argument("--image-topic", default="/tactile/image_raw/compressed")
    pairs.add_argument("--wrench-topic", default="/ft_sensor/wrench")
    pairs.add_argument("--episode-topic", default="/tactile/episode")
    pairs.set_defaults(func=cmd_pairs)

    fit = sub.add_parser("fit", help="fit sensor characteristics").add_subparsers(dest="what", required=True)
    curve = fit.add_parser("material-curve", help="loading/unloading force-depth polynomials of a sensor",
                           description="From a material-curve collection run (material_curve: true): depth = "
                                       "surface_z - TCP z, |Fz| from the F/T sensor, press = loading, "
                                       "release = unloading.")
    curve.add_argument("--bag", required=True, help="material-curve run bag")
    curve.add_argument("--surface-z", required=True, type=float, help="TCP z at which the indenter touches, m")
    curve.add_argument("--sensor", required=True, help="sensor name recorded in the curve file")
    curve.add_argument("--out", required=True, help="output .json")
    curve.add_argument("--degree", type=int, default=3, help="polynomial degree (no constant term)")
    curve.add_argument("--pose-topic", default="/tcp_pose")
    curve.add_argument("--wrench-topic", default="/ft_sensor/wrench")
    curve.add_argument("--episode-topic", default="/tactile/episode")
    curve.set_defaults(func=cmd_fit)

    if len(sys.argv) > 1 and sys.argv[1] in ("train", "eval", "export"):
        from tacforce_training.core.cli import add_task_commands
        add_task_commands(sub)
    else:
        for name in ("train", "eval", "export"):
            sub.add_parser(name, help=f"{name} a model (see `tacforce {name} --help`)")
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is not None:
        sys.argv = ["tacforce", *argv]
    args = build_parser().parse_args()
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
