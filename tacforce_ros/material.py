"""Force-depth curves of a sensor's elastomer, and GenForce's material compensation.

Two sensors pressed to the same depth show nearly the same marker motion but feel different
forces when their elastomers differ in stiffness, so force labels moved from a source sensor to
a target sensor are rescaled by P_target(d) / P_source(d), the ratio of the two sensors'
force-depth curves at the contact depth d (beyond a depth threshold, blended with a weight).

Curves are polynomials |Fz| = sum_k c_k d^k (d in mm, no constant term: no force without
contact), fitted separately to the loading (press) and unloading (release) halves of a
material-curve run: the robot presses straight down in fine steps and releases through them.

A labelled run has no depth of its own when it comes from a bag without the robot pose, so the
depth of each source frame is read off the source curve from its measured |Fz|: the loading
curve while pressing or shearing, the unloading curve while releasing.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

LOADING_PHASES = ("press", "shear_out", "shear_back")
UNLOADING_PHASES = ("release",)
_TABLE = 2001  # samples of the monotone lookup table used to invert a curve


@dataclass(frozen=True)
class MaterialCurve:
    """Loading and unloading force-depth polynomials of one sensor (|Fz| in N, depth in mm)."""

    sensor: str
    loading: tuple[float, ...]  # c_1 .. c_n
    unloading: tuple[float, ...]
    max_depth_mm: float  # deepest point of the run: beyond it the curve is extrapolated linearly
    fit_rmse_n: dict
    samples: dict

    def force(self, depth_mm: np.ndarray, unloading: bool = False) -> np.ndarray:
        """|Fz| (N) at depth (mm), monotone in depth."""
        depth_mm = np.asarray(depth_mm, float)
        grid, table = self._table(unloading)
        slope = (table[-1] - table[-2]) / (grid[-1] - grid[-2])
        inside = np.interp(depth_mm, grid, table)
        return np.where(depth_mm > grid[-1], table[-1] + slope * (depth_mm - grid[-1]), np.maximum(inside, 0.0))

    def depth(self, force_n: np.ndarray, unloading: bool = False) -> np.ndarray:
        """Depth (mm) at which the curve reaches |Fz| = force (the inverse of `force`)."""
        grid, table = self._table(unloading)
        force_n = np.abs(np.asarray(force_n, float))
        slope = (table[-1] - table[-2]) / (grid[-1] - grid[-2])
        beyond = grid[-1] + (force_n - table[-1]) / max(slope, 1e-12)
        return np.where(force_n > table[-1], beyond, np.interp(force_n, table, grid))

    def _table(self, unloading: bool) -> tuple[np.ndarray, np.ndarray]:
        coefficients = self.unloading if unloading else self.loading
        grid = np.linspace(0.0, self.max_depth_mm, _TABLE)
        values = sum(c * grid ** (k + 1) for k, c in enumerate(coefficients))
        return grid, np.maximum.accumulate(np.maximum(values, 0.0))

    def describe(self) -> str:
        def poly(c):
            return " + ".join(f"{v:.4g} d^{k + 1}" for k, v in enumerate(c))
        return (f"{self.sensor}: loading |Fz| = {poly(self.loading)} (rmse {self.fit_rmse_n['loading']:.4f} N); "
                f"unloading |Fz| = {poly(self.unloading)} (rmse {self.fit_rmse_n['unloading']:.4f} N); "
                f"d in mm up to {self.max_depth_mm:.3f}; {self.samples}")

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "MaterialCurve":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            curve = cls(sensor=str(data["sensor"]), loading=tuple(float(c) for c in data["loading"]),
                        unloading=tuple(float(c) for c in data["unloading"]),
                        max_depth_mm=float(data["max_depth_mm"]), fit_rmse_n=dict(data["fit_rmse_n"]),
                        samples=dict(data["samples"]))
        except FileNotFoundError:
            raise ValueError(f"{path}: material curve file not found") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: not a material curve file ({type(exc).__name__}: {exc})") from None
        if not curve.loading or not np.isfinite(curve.max_depth_mm) or curve.max_depth_mm <= 0:
            raise ValueError(f"{path}: material curve needs coefficients and a positive max_depth_mm")
        return curve


def fit_polynomial(depth_mm: np.ndarray, force_n: np.ndarray, degree: int) -> tuple[tuple[float, ...], float]:
    """Least-squares c_1..c_degree of |Fz| = sum c_k d^k, and the fit's RMSE (N)."""
    if len(depth_mm) <= degree:
        raise ValueError(f"need more than {degree} samples in contact to fit a degree-{degree} curve, "
                         f"got {len(depth_mm)}")
    design = np.column_stack([depth_mm ** (k + 1) for k in range(degree)])
    coefficients, *_ = np.linalg.lstsq(design, force_n, rcond=None)
    rmse = float(np.sqrt(np.mean((design @ coefficients - force_n) ** 2)))
    return tuple(float(c) for c in coefficients), rmse


def fit_material_curve(bag: str | Path, surface_z: float, sensor: str, degree: int = 3,
                       pose_topic: str = "/tcp_pose", wrench_topic: str = "/ft_sensor/wrench",
                       episode_topic: str = "/tactile/episode", tolerance_s: float = 0.01) -> MaterialCurve:
    """Curves from a material-curve run: at every TCP pose sample in contact (depth =
    surface_z - z > 0), |Fz| interpolated at the pose stamp, split by the run's phase.
    """
    from .bags import BagError, parse_episode, read_messages, stamp_to_ns
    from .data.tactile_pairs import interpolate_wrench

    if not 1 <= degree <= 6:
        raise ValueError(f"degree must be 1..6, got {degree}")
    poses, wrench_t, wrench_f, marks = [], [], [], []
    for item in read_messages(bag, [pose_topic, wrench_topic, episode_topic]):
        if item.topic == pose_topic:
            poses.append((stamp_to_ns(item.msg.header.stamp), item.msg.pose.position.z))
        elif item.topic == wrench_topic:
            wrench_t.append(stamp_to_ns(item.msg.header.stamp))
            wrench_f.append(item.msg.wrench.force.z)
        else:
            marks.append(parse_episode(item.msg.data))
    if not poses or not wrench_t or not marks:
        raise BagError(f"{bag}: a material-curve run needs {pose_topic}, {wrench_topic} and {episode_topic}")
    order = np.argsort(wrench_t)
    stamps, fz = np.asarray(wrench_t, np.int64)[order], np.asarray(wrench_f, float)[order, None]
    marks.sort(key=lambda m: m.stamp_ns)
    mark_stamps = np.asarray([m.stamp_ns for m in marks], np.int64)
    halves: dict[str, tuple[list[float], list[float]]] = {"loading": ([], []), "unloading": ([], [])}
    for t_ns, z in sorted(poses):
        depth_mm = (surface_z - z) * 1e3
        index = int(np.searchsorted(mark_stamps, t_ns, side="right")) - 1
        force = interpolate_wrench(stamps, fz, t_ns, round(tolerance_s * 1e9))
        if depth_mm <= 0 or index < 0 or force is None:
            continue
        phase = marks[index].phase
        half = "loading" if phase in LOADING_PHASES else "unloading" if phase in UNLOADING_PHASES else None
        if half:
            halves[half][0].append(depth_mm)
            halves[half][1].append(abs(float(force[0])))
    fits, rmse = {}, {}
    for half, (depths, forces) in halves.items():
        if len(depths) <= degree:
            raise ValueError(f"{bag}: only {len(depths)} {half} samples in contact; is this a material-curve "
                             f"run (material_curve: true) and is surface_z {surface_z} m right?")
        fits[half], rmse[half] = fit_polynomial(np.asarray(depths), np.asarray(forces), degree)
    max_depth = max(max(halves["loading"][0]), max(halves["unloading"][0]))
    return MaterialCurve(sensor, fits["loading"], fits["unloading"], float(max_depth), rmse,
                         {half: len(d) for half, (d, _) in halves.items()} | {"bag": str(bag)})


@dataclass(frozen=True)
class Compensation:
    """Scale source force labels to the target sensor's stiffness (GenForce)."""

    source: MaterialCurve
    target: MaterialCurve
    depth_threshold_mm: float = 0.0  # no correction at or below this depth
    weight: float = 1.0  # 0: labels unchanged, 1: the full curve ratio

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"compensation weight must be in [0, 1], got {self.weight}")

    def scale(self, forces: np.ndarray, phases) -> np.ndarray:
        """Factor per frame for (N, 3) source forces and their N phase names."""
        forces = np.asarray(forces, float)
        unloading = np.array([p in UNLOADING_PHASES for p in phases], bool)
        depth = np.where(unloading, self.source.depth(forces[:, 2], True), self.source.depth(forces[:, 2]))
        source = np.where(unloading, self.source.force(depth, True), self.source.force(depth))
        target = np.where(unloading, self.target.force(depth, True), self.target.force(depth))
        ratio = np.divide(target, source, out=np.ones_like(target), where=source > 1e-9)
        factor = 1.0 + self.weight * (ratio - 1.0)
        return np.where(depth > self.depth_threshold_mm, factor, 1.0)

    def apply(self, forces: np.ndarray, phases) -> np.ndarray:
        return (np.asarray(forces, float) * self.scale(forces, phases)[:, None]).astype(np.float32)

    def info(self) -> dict:
        return {"source": self.source.sensor, "target": self.target.sensor,
                "depth_threshold_mm": self.depth_threshold_mm, "weight": self.weight}
