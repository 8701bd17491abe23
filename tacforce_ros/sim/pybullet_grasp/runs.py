"""Grasp trials over many scenes in parallel worker processes, written as the seed's folder/CSV
layout plus a bag.

Scene ``i`` of a run with seed ``s`` is drawn from ``(s, i)`` and built in a freshly reset
simulation; planner ``name``'s trial ``t`` in it draws from ``(s, i, PLANNERS.index(name), t)``.
So results do not depend on the number of workers or on which worker ran a scene. Every
planner's trials start from the same settled scene (``saveState``/``restoreState``), so
planners compared in one run face exactly the same scenes.

Output folder:

* ``attempts.csv`` (image, u, v, angle, success): every executed trial (``grasp_attempts``),
  images in ``images/NNNNN.png`` (the top-down RGB before the grasp);
* ``depth/NNNNN.png`` (uint16 mm), ``after/NNNNN_<planner>_<t>.png`` (the after-grasp side view);
* ``trials.csv``: every trial with planner, world pose, object, lift, plan time, and also
  planners' "no grasp" answers (those are failures of that planner but not physical trials);
* ``bag/``: an MCAP bag (``bags.BagWriter``) with ``TOPICS``: the top-down camera (rgb8, 16UC1
  depth in mm, CameraInfo), the after-grasp view with a ``std_msgs/Bool`` held label just
  before each frame (the layout ``bag_labels`` reads for the grasp-success check) and a JSON
  ``std_msgs/String`` per trial.
"""
from __future__ import annotations

import atexit
import csv
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ...bag_labels import BOOL
from .gripper import GripperConfig, pixel_grasp_pose
from .planners import PLANNERS
from .scene import Camera, TrialSceneConfig, is_held_out, sample_scene

TOPICS = {"rgb": "/camera/color/image_raw", "info": "/camera/color/camera_info",
          "depth": "/camera/aligned_depth_to_color/image_raw", "after": "/grasp_camera/image_raw",
          "held": "/grasp_camera/held", "trial": "/grasp_trials/trial"}
CAMERA_FRAME = "camera_color_optical_frame"
T0_NS = 1_700_000_000 * 10**9
RECONNECT_EVERY = 20


@dataclass(frozen=True)
class TrialRunConfig:
    scenes: int = 100
    workers: int = 1
    seed: int = 0
    planners: tuple[str, ...] = ("random",)
    trials_per_scene: int = 1  # per planner
    scene: TrialSceneConfig = field(default_factory=TrialSceneConfig)
    gripper: GripperConfig = field(default_factory=GripperConfig)
    model_path: str = "grasp_map.onnx"
    after_view: bool = True

    def __post_init__(self) -> None:
        if self.scenes < 1 or self.workers < 1 or self.trials_per_scene < 1:
            raise ValueError("scenes, workers and trials_per_scene must be >= 1")
        if not self.planners or set(self.planners) - set(PLANNERS):
            raise ValueError(f"planners must be a non-empty subset of {PLANNERS}, got {self.planners!r}")
        if "model" in self.planners and self.trials_per_scene > 1:
            raise ValueError("the model planner is deterministic: use trials_per_scene 1 with it")


@dataclass
class TrialRecord:
    scene: int
    planner: str
    trial: int
    planned: bool  # False: the planner found no grasp (a failure of the planner, no physics)
    success: bool
    u: float = float("nan")
    v: float = float("nan")
    angle: float = float("nan")
    x: float = float("nan")
    y: float = float("nan")
    z: float = float("nan")
    yaw: float = float("nan")
    held_object: int = -1  # random_urdfs index of the held object
    lift_m: float = 0.0
    blocked: bool = False
    unstable: bool = False
    plan_time_s: float = 0.0
    held_after_lift: bool = False  # and not success: shaken out


@dataclass
class SceneResult:
    index: int
    rgb: np.ndarray
    depth_m: np.ndarray
    camera: Camera
    table_style: str
    object_indices: tuple[int, ...]
    trials: list[TrialRecord]
    after: list[np.ndarray | None]
    seconds: float


# --------------------------------------------------------------------------- worker side

_WORKER: dict = {}


def _worker_init() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cv2.setNumThreads(1)


def _client():
    """Return this process's physics client; a fresh one every RECONNECT_EVERY scenes, as pybullet
    keeps every loaded texture (about 1.6 MB a scene) until its client disconnects. Scenes reset
    the simulation anyway, so this changes no result.
    """
    if _WORKER.get("scenes", 0) >= RECONNECT_EVERY:
        _WORKER.pop("client").disconnect()
    if "client" not in _WORKER:
        import pybullet
        from pybullet_utils import bullet_client
        _WORKER["client"] = bullet_client.BulletClient(connection_mode=pybullet.DIRECT)
        _WORKER["scenes"] = 0
        if "textures" not in _WORKER:
            _WORKER["textures"] = tempfile.mkdtemp(prefix="tacforce-grasp-trials-")
            atexit.register(shutil.rmtree, _WORKER["textures"], True)
    _WORKER["scenes"] += 1
    return _WORKER["client"], _WORKER["textures"]


def _planner(name: str, model_path: str):
    from .planners import make_planner
    key = ("planner", name, model_path)
    if key not in _WORKER:
        _WORKER[key] = make_planner(name, model_path)
    return _WORKER[key]


def run_scene(config: TrialRunConfig, index: int) -> SceneResult:
    """Build scene ``index`` of the run, let each planner choose and execute its trials."""
    from .gripper import Gripper
    from .scene import build_scene, render
    start = time.perf_counter()
    p, textures = _client()
    spec = sample_scene(config.scene, (config.seed, index))
    built = build_scene(p, spec, textures, config.scene.settle_s)
    gripper = Gripper(p, config.gripper)
    rgb, depth = render(p, spec.camera, spec.lighting)
    intrinsics = spec.camera.intrinsics()
    state = p.saveState()
    trials, after = [], []
    for name in config.planners:
        plan = _planner(name, config.model_path)
        for t in range(config.trials_per_scene):
            rng = np.random.default_rng([config.seed, index, PLANNERS.index(name), t])
            t_plan = time.perf_counter()
            grasp = plan(rgb, depth, intrinsics, rng)
            record = TrialRecord(index, name, t, False, False, plan_time_s=time.perf_counter() - t_plan)
            pose = None if grasp is None else pixel_grasp_pose(*grasp, depth, spec.camera, config.gripper)
            view = None
            if pose is not None:
                p.restoreState(state)
                outcome = gripper.trial(built, pose, spec.lighting if config.after_view else None)
                record = TrialRecord(
                    index, name, t, True, outcome.success, *grasp, pose.x, pose.y, pose.z, pose.yaw,
                    -1 if outcome.held_body is None else spec.objects[outcome.held_body].index, outcome.lift_m,
                    outcome.blocked, outcome.unstable, record.plan_time_s, outcome.held_after_lift)
                view = outcome.after_rgb
            trials.append(record)
            after.append(view)
    p.removeState(state)
    return SceneResult(index, rgb, depth, spec.camera, spec.table_style, tuple(o.index for o in spec.objects),
                       trials, after, time.perf_counter() - start)


def _run_scene_task(task: tuple[TrialRunConfig, int]) -> SceneResult:
    return run_scene(*task)


def iter_scenes(config: TrialRunConfig) -> Iterator[SceneResult]:
    """Scene results in scene order, computed by ``config.workers`` spawned processes (1: here)."""
    tasks = [(config, i) for i in range(config.scenes)]
    if config.workers == 1:
        _worker_init()
        for task in tasks:
            yield _run_scene_task(task)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(config.workers, initializer=_worker_init) as pool:
        yield from pool.imap(_run_scene_task, tasks, chunksize=1)


# --------------------------------------------------------------------------- output

@dataclass
class RunSummary:
    out: Path
    scenes: int
    trials: int  # executed (physical) trials
    successes: int
    unplanned: int
    unstable: int
    seconds: float

    @property
    def trials_per_minute(self) -> float:
        return 60.0 * self.trials / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        rate = self.successes / self.trials if self.trials else 0.0
        return (f"{self.out}: {self.scenes} scenes, {self.trials} trials ({self.successes} held, {rate:.1%}), "
                f"{self.unplanned} no-grasp answers, {self.unstable} unstable; {self.seconds:.1f} s, "
                f"{self.trials_per_minute:.1f} trials/min")


def _scene_facts(result: SceneResult) -> dict:
    """Return what a trial's row and label message say about its scene, beyond the trial record."""
    return {"objects": list(result.object_indices), "table_style": result.table_style,
            "camera_height_m": result.camera.height_m, "fov_deg": result.camera.fov_deg}


class TrialWriter:
    """Writes scene results into ``out`` (see the module docstring) as they come; use as a context manager.

    Only the attempts.csv rows are kept until ``close()``; images go to disk, trials.csv rows and
    bag messages are written per scene, so a long run's memory does not grow with its scenes.
    """

    def __init__(self, out: str | Path, bag: bool = True):
        from ...bags import IMAGE, STRING, BagWriter
        self.out = Path(out)
        if (self.out / "attempts.csv").exists() or (self.out / "bag").exists():
            raise FileExistsError(f"{self.out} already holds grasp trials; choose a new --out folder")
        for sub in ("images", "depth", "after"):
            (self.out / sub).mkdir(parents=True, exist_ok=True)
        self.rows: list[tuple] = []
        self._trials_file = open(self.out / "trials.csv", "w", newline="")
        self._trials = csv.writer(self._trials_file)
        self._trials.writerow([f.name for f in fields(TrialRecord)]
                              + ["object_indices", "table_style", "camera_height_m", "fov_deg"])
        self.clock = T0_NS
        self.bag = None
        if bag:
            self.bag = BagWriter(self.out / "bag")
            for key, msgtype in (("rgb", IMAGE), ("info", "sensor_msgs/msg/CameraInfo"), ("depth", IMAGE),
                                 ("after", IMAGE), ("held", BOOL), ("trial", STRING)):
                self.bag.add_topic(TOPICS[key], msgtype)

    def add(self, result: SceneResult) -> None:
        name = f"{result.index:05d}.png"
        cv2.imwrite(str(self.out / "images" / name), result.rgb[..., ::-1])
        depth_mm = np.round(np.clip(result.depth_m, 0, 65.535) * 1000).astype(np.uint16)
        cv2.imwrite(str(self.out / "depth" / name), depth_mm)
        if self.bag is not None:
            self._bag_scene(result, depth_mm)
        facts = _scene_facts(result)
        for record, view in zip(result.trials, result.after):
            self._trials.writerow([*asdict(record).values(), " ".join(map(str, facts["objects"])),
                                   facts["table_style"], facts["camera_height_m"], facts["fov_deg"]])
            if record.planned:
                self.rows.append((f"images/{name}", record.u, record.v, record.angle, record.success))
            if view is not None:
                cv2.imwrite(str(self.out / "after" / f"{result.index:05d}_{record.planner}_{record.trial}.png"),
                            view[..., ::-1])
            if self.bag is not None:
                self._bag_trial(record, facts, view)

    def close(self) -> None:
        from ..grasp_attempts import write_attempt_csv
        write_attempt_csv(self.out, self.rows)
        self._trials_file.close()
        if self.bag is not None:
            self.bag.close()

    def __enter__(self) -> TrialWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ bag
    def _tick(self) -> int:
        self.clock += 100_000_000  # 0.1 s between message groups
        return self.clock

    def _header(self, stamp_ns: int, frame_id: str):
        types = self.bag.typestore.types
        stamp = types["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
        return types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)

    def _image(self, stamp_ns: int, frame_id: str, array: np.ndarray, encoding: str):
        h, w = array.shape[:2]
        data = np.frombuffer(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes(), np.uint8)
        return self.bag.typestore.types["sensor_msgs/msg/Image"](
            header=self._header(stamp_ns, frame_id), height=h, width=w, encoding=encoding, is_bigendian=0,
            step=data.size // h, data=data)

    def _bag_scene(self, result: SceneResult, depth_mm: np.ndarray) -> None:
        types = self.bag.typestore.types
        t = self._tick()
        cam = result.camera
        k = cam.camera_matrix()
        info = types["sensor_msgs/msg/CameraInfo"](
            header=self._header(t, CAMERA_FRAME), height=cam.height, width=cam.width, distortion_model="plumb_bob",
            d=np.zeros(5), k=np.array(k), r=np.eye(3).ravel(),
            p=np.array([k[0], 0, k[2], 0, 0, k[4], k[5], 0, 0, 0, 1, 0], np.float64), binning_x=0, binning_y=0,
            roi=types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                          do_rectify=False))
        self.bag.write_msg(TOPICS["info"], t, info)
        self.bag.write_msg(TOPICS["rgb"], t, self._image(t, CAMERA_FRAME, result.rgb, "rgb8"))
        self.bag.write_msg(TOPICS["depth"], t, self._image(t, CAMERA_FRAME, depth_mm, "16UC1"))

    def _bag_trial(self, record: TrialRecord, facts: dict, view: np.ndarray | None) -> None:
        types = self.bag.typestore.types
        t = self._tick()
        info = {**asdict(record), **facts}
        info = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in info.items()}
        self.bag.write_msg(TOPICS["trial"], t, types["std_msgs/msg/String"](data=json.dumps(info)))
        if view is not None:
            self.bag.write_msg(TOPICS["held"], t - 1000, types[BOOL](data=bool(record.success)))
            self.bag.write_msg(TOPICS["after"], t, self._image(t, "grasp_camera", view, "rgb8"))


def run_trials(out: str | Path, config: TrialRunConfig, bag: bool = True, progress=None) -> RunSummary:
    """Run ``config`` and write everything into ``out``; return counts and the trial rate."""
    start = time.perf_counter()
    trials = successes = unplanned = unstable = scenes = 0
    with TrialWriter(out, bag) as writer:
        for result in iter_scenes(config):
            writer.add(result)
            scenes += 1
            for r in result.trials:
                trials += r.planned
                successes += r.success
                unplanned += not r.planned
                unstable += r.unstable
            if progress:
                progress(scenes, config.scenes)
    return RunSummary(Path(out), scenes, trials, successes, unplanned, unstable, time.perf_counter() - start)


def describe_split(config: TrialRunConfig) -> str:
    first, last = config.scene.objects
    return f"random_urdfs {first:03d}-{last:03d} ({'held out' if is_held_out((first, last)) else 'training'})"


# --------------------------------------------------------------------------- scoring

def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a success rate (95 % for the default z); (0, 1) for n = 0."""
    if n <= 0:
        return 0.0, 1.0
    rate = successes / n
    denom = 1 + z * z / n
    centre = (rate + z * z / (2 * n)) / denom
    half = z * np.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / denom
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def score_planners(records: list[TrialRecord]) -> dict[str, dict]:
    """Per planner: trials (a "no grasp" answer counts as a failed trial), successes, rate, Wilson
    95 % interval, no-grasp answers, blocked descents, unstable physics, objects held after the lift
    but shaken out, plan time p50/p99 (ms).
    """
    scores = {}
    for name in dict.fromkeys(r.planner for r in records):
        mine = [r for r in records if r.planner == name]
        n, held = len(mine), sum(r.success for r in mine)
        low, high = wilson_interval(held, n)
        times = np.array([r.plan_time_s for r in mine]) * 1e3
        scores[name] = {"trials": n, "successes": held, "rate": held / n, "ci95": [low, high],
                        "no_grasp": sum(not r.planned for r in mine), "blocked": sum(r.blocked for r in mine),
                        "unstable": sum(r.unstable for r in mine),
                        "shaken_out": sum(r.held_after_lift and not r.success for r in mine),
                        "plan_ms_p50": float(np.percentile(times, 50)), "plan_ms_p99": float(np.percentile(times, 99))}
    return scores


def format_scores(scores: dict[str, dict]) -> str:
    lines = [f"{'planner':<10}{'success':>9}{'95% CI':>16}{'n':>6}{'no grasp':>10}{'blocked':>9}{'shaken out':>12}"
             f"{'plan p50':>11}{'plan p99':>11}"]
    for name, s in scores.items():
        ci = f"{s['ci95'][0]:.1%}-{s['ci95'][1]:.1%}"
        lines.append(f"{name:<10}{s['rate']:>9.1%}{ci:>16}{s['trials']:>6}{s['no_grasp']:>10}{s['blocked']:>9}"
                     f"{s['shaken_out']:>12}{s['plan_ms_p50']:>8.1f} ms{s['plan_ms_p99']:>8.1f} ms")
    return "\n".join(lines)
