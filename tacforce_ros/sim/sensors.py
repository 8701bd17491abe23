"""Simulated tactile camera + Nano17 following an indentation script, on one clock.

`SimulatedSensors` answers "what do the sensors read at script time t": the node publishes
that live, `write_sim_bag` writes it straight to a bag (same topics and types as a recorded
run, so training cannot tell the difference, only much faster than real time).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from .gelsight import GELSIGHT_STYLES, GelSightSimulator
from .indentation import IndentationConfig, IndentationScript, ScriptSample, corner_positions
from .indenter_shapes import INDENTERS
from .tactile import TactileSimulator
from .tactile_styles import SENSOR_STYLES

# every style `style` may name: marker sensors (mono8 images) and GelSight-type ones (rgb8)
STYLE_NAMES = (*SENSOR_STYLES, *GELSIGHT_STYLES)

NODE_NAME = "sim_sensors_node"
T0_NS = 1_700_000_000 * 10**9  # fixed start stamp of offline bags: deterministic output


@dataclass
class SimConfig:
    """Parameters of sim_sensors_node (config/sim.yaml); SI units."""

    style: str = "array1"
    indenters: tuple[str, ...] = ("sphere",)
    positions: int = 5
    position_step: float = 0.004
    depths: tuple[float, ...] = (0.0005, 0.001, 0.0015)
    shear_points: int = 8
    shear_radius: float = 0.001
    press_speed: float = 0.002
    shear_speed: float = 0.004
    image_rate: float = 30.0
    wrench_rate: float = 1000.0
    wrench_noise: float = 0.005
    image_topic: str = "tactile/image_raw"  # relative: a namespace moves them; a bag gets /<name>
    wrench_topic: str = "ft_sensor/wrench"
    episode_topic: str = "tactile/episode"
    tactile_frame_id: str = "tactile_sensor"
    ft_frame_id: str = "ft_sensor"
    grid: int = 64
    seed: int = 0
    loop: bool = True
    start_delay: float = 1.0
    extra: dict = field(default_factory=dict, repr=False)

    DESCRIPTIONS = {
        "style": "sensor style: a marker sensor (mono8 images) or a GelSight-type one (gelsight_*, rgb8)",
        "indenters": "indenter shapes, pressed in turn",
        "positions": "contact positions: 1 (centre) to 5 (centre and four corners)",
        "position_step": "offset of the corner positions from the centre, m",
        "depths": "press depths, m",
        "shear_points": "shear points on a circle per depth (0: straight press/release)",
        "shear_radius": "radius of the shear circle, m",
        "press_speed": "indenter speed pressing and releasing, m/s",
        "shear_speed": "indenter speed shearing, m/s",
        "image_rate": "tactile image rate, Hz",
        "wrench_rate": "simulated Nano17 sample rate, Hz",
        "wrench_noise": "standard deviation of the simulated force noise, N",
        "image_topic": "sensor_msgs/Image output",
        "wrench_topic": "geometry_msgs/WrenchStamped output (the true force)",
        "episode_topic": "std_msgs/String JSON phase/episode marks",
        "tactile_frame_id": "frame_id of the images",
        "ft_frame_id": "frame_id of the wrench",
        "grid": "contact solver cells across the pad",
        "seed": "random seed (image and force noise)",
        "loop": "repeat the script when it ends (else publish 'done' and rest)",
        "start_delay": "seconds out of contact before the script starts (lets subscribers connect)",
    }

    @classmethod
    def parameter_names(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "extra"]

    @classmethod
    def from_parameters(cls, values: dict) -> "SimConfig":
        """From a ROS parameter dict (unknown keys are an error: a typo must not be ignored)."""
        unknown = set(values) - set(cls.parameter_names())
        if unknown:
            raise ValueError(f"unknown sim parameter(s): {', '.join(sorted(unknown))}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        config = cls(**kwargs)
        config.validate()
        return config

    @classmethod
    def from_yaml(cls, path: str | Path) -> "SimConfig":
        from ..paths import node_parameters
        return cls.from_parameters(node_parameters(path, NODE_NAME))

    def validate(self) -> None:
        if self.style not in STYLE_NAMES:
            raise ValueError(f"unknown sensor style {self.style!r} (known: {', '.join(STYLE_NAMES)})")
        bad = [name for name in self.indenters if name not in INDENTERS]
        if bad or not self.indenters:
            raise ValueError(f"unknown indenter(s) {bad} (known: {', '.join(INDENTERS)})")
        if not 1 <= self.positions <= 5:
            raise ValueError("positions must be 1..5")
        if self.image_rate <= 0 or self.wrench_rate <= 0:
            raise ValueError("image_rate and wrench_rate must be positive")

    def script_config(self) -> IndentationConfig:
        return IndentationConfig(
            indenters=list(self.indenters),
            positions=corner_positions(self.position_step)[: self.positions],
            depths=list(self.depths), shear_points=self.shear_points, shear_radius=self.shear_radius,
            press_speed=self.press_speed, release_speed=self.press_speed, shear_speed=self.shear_speed)


class SimulatedSensors:
    """Images and wrenches of the scripted run at script time t (seconds)."""

    def __init__(self, config: SimConfig):
        config.validate()
        self.config = config
        self.script = IndentationScript(config.script_config())
        # the cached force-depth curves must cover the deepest press (they extrapolate beyond)
        max_depth = max(2.0e-3, *config.depths)
        if config.style in GELSIGHT_STYLES:
            self.sim = GelSightSimulator(GELSIGHT_STYLES[config.style], grid=config.grid, seed=config.seed,
                                         max_depth=max_depth)
            self.encoding = self.sim.encoding
        else:
            self.sim = TactileSimulator(SENSOR_STYLES[config.style], grid=config.grid, seed=config.seed,
                                        max_depth=max_depth)
            self.encoding = "mono8"
        self._noise = np.random.default_rng(config.seed + 1)

    @property
    def duration(self) -> float:
        return self.script.duration

    def image(self, t: float) -> tuple[np.ndarray, ScriptSample]:
        """Image at time t in `encoding` (mono8 (H, W) or rgb8 (H, W, 3)), and the script sample it shows."""
        s = self.script.sample(t)
        if s.depth <= 0.0:
            return self.sim.render(None), s
        return self.sim.render(self.sim.contact(s.indenter, s.x, s.y, s.depth, tuple(s.shear))), s

    def wrench(self, t: float) -> tuple[np.ndarray, ScriptSample]:
        """Force (3,) N on the sensor at time t (cached force-depth curves), with sensor noise."""
        s = self.script.sample(t)
        force = self.sim.force(s.indenter, s.x, s.y, s.depth, tuple(s.shear))
        if self.config.wrench_noise > 0:
            force = force + self._noise.normal(0.0, self.config.wrench_noise, 3)
        return force, s


def write_sim_bag(path: str | Path, config: SimConfig, compressed: bool = True,
                  max_seconds: float | None = None, progress: bool = True) -> str:
    """Write the scripted run to an MCAP bag: images (PNG CompressedImage on
    <image_topic>/compressed, or raw Image), wrenches at wrench_rate, and an episode mark at
    every phase change. Returns a one-line summary.
    """
    from tqdm import tqdm

    from ..bags import COMPRESSED_IMAGE, IMAGE, STRING, WRENCH, BagWriter, episode_message_json
    from ..perception.compressed import encode_compressed
    from ..perception.image import encode_image_fields

    sensors = SimulatedSensors(config)
    duration = sensors.duration if max_seconds is None else min(max_seconds, sensors.duration)
    # the names a node in the root namespace would publish: bags hold absolute topic names
    image_topic, wrench_topic, episode_topic = ("/" + name.lstrip("/") for name in (
        config.image_topic + ("/compressed" if compressed else ""), config.wrench_topic, config.episode_topic))
    n_images = int(duration * config.image_rate) + 1
    n_wrenches = int(duration * config.wrench_rate) + 1
    with BagWriter(path, flush_every=2000) as writer:
        types = writer.typestore.types
        writer.add_topic(image_topic, COMPRESSED_IMAGE if compressed else IMAGE)
        writer.add_topic(wrench_topic, WRENCH)
        writer.add_topic(episode_topic, STRING)

        def header(t_ns: int, frame_id: str):
            stamp = types["builtin_interfaces/msg/Time"](sec=t_ns // 10**9, nanosec=t_ns % 10**9)
            return types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)

        def vector(v):
            return types["geometry_msgs/msg/Vector3"](x=float(v[0]), y=float(v[1]), z=float(v[2]))

        last_phase = None
        next_image = 0
        for k in tqdm(range(n_wrenches), desc=f"sim {Path(path).name}", unit="wrench",
                      disable=not progress, mininterval=1.0):
            t = k / config.wrench_rate
            t_ns = T0_NS + round(t * 1e9)
            force, sample = sensors.wrench(t)
            if (sample.episode, sample.phase) != last_phase:
                last_phase = (sample.episode, sample.phase)
                text = episode_message_json(stamp_ns=t_ns, episode=sample.episode, indenter=sample.indenter,
                                            position_id=sample.position_id, depth_m=sample.target_depth,
                                            phase=sample.phase)
                writer.write_msg(episode_topic, t_ns, types["std_msgs/msg/String"](data=text))
            writer.write_msg(wrench_topic, t_ns, types["geometry_msgs/msg/WrenchStamped"](
                header=header(t_ns, config.ft_frame_id),
                wrench=types["geometry_msgs/msg/Wrench"](force=vector(force), torque=vector((0, 0, 0)))))
            while next_image < n_images and next_image / config.image_rate <= t:
                ti = next_image / config.image_rate
                ti_ns = T0_NS + round(ti * 1e9)
                image, _ = sensors.image(ti)
                if compressed:
                    fmt, data = encode_compressed(image, "png", order="rgb" if sensors.encoding == "rgb8" else "gray")
                    msg = types[COMPRESSED_IMAGE](header=header(ti_ns, config.tactile_frame_id), format=fmt,
                                                  data=np.frombuffer(data, np.uint8))
                else:
                    fields_ = encode_image_fields(image, sensors.encoding)
                    fields_["data"] = np.frombuffer(fields_["data"], np.uint8)
                    msg = types[IMAGE](header=header(ti_ns, config.tactile_frame_id), **fields_)
                writer.write_msg(image_topic, ti_ns, msg)
                next_image += 1
    return (f"{path}: {duration:.1f} s simulated, {next_image} images on {image_topic}, "
            f"{n_wrenches} wrenches on {wrench_topic}, {sensors.script.num_episodes} episodes "
            f"({', '.join(config.indenters)}; style {config.style})")
