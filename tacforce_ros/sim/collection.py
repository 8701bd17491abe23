"""`tacforce collect --sim`: the collection run with simulated hardware, recorded to a bag.

The simulated robot follows the GenForce protocol (hardware.protocol + hardware.collection,
the same run logic as on a UR5e); the simulated Nano17 is an RDT emulator on loopback read
through the real Net F/T client; tactile images come from the simulator at the robot's pose.
Everything is written to one MCAP bag with the topics a real run records, stamped with the
wall clock: /tactile/image_raw/compressed, /ft_sensor/wrench, /tcp_pose, /tactile/episode.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..bags import COMPRESSED_IMAGE, STRING, WRENCH, BagWriter, episode_message_json
from ..hardware.collection import CollectionRun
from ..hardware.netft import NetFTClient, NetFTStream, Sample
from ..hardware.netft_calibration import Calibration
from ..hardware.protocol import ProtocolConfig, Waypoint, plan
from ..hardware.robot import SimulatedRobot, rotvec_to_quaternion
from ..hardware.safety import ForceLimits, SafetyMonitor
from ..perception.compressed import encode_compressed
from .netft_box import RdtEmulator
from .rig import IndentationRig

POSE = "geometry_msgs/msg/PoseStamped"
COUNTS = 1_000_000  # emulated box configured for N and N·m


@dataclass
class SimCollectionResult:
    reason: str | None  # None: every waypoint done
    images: int
    wrenches: int
    seconds: float
    netft: str

    def summary(self) -> str:
        ended = "completed" if self.reason is None else f"stopped: {self.reason}"
        return (f"{ended}; {self.seconds:.1f} s, {self.images} images, {self.wrenches} wrenches; "
                f"Net F/T {self.netft}")


def run_sim_collection(bag: str | Path, config: ProtocolConfig, style: str = "array1",
                       image_rate: float = 20.0, control_period: float = 0.002,
                       limits: ForceLimits | None = None, stale_after_s: float = 0.1,
                       overload_at: float | None = None) -> SimCollectionResult:
    """Run the protocol in real time and record it. ``overload_at`` (s) injects a force spike
    into the simulated sensor, to exercise the safety stop end to end.
    """
    robot = SimulatedRobot(control_period=control_period, start_pose=config.start_pose)
    rig = IndentationRig.for_protocol(config, style)
    t0 = time.monotonic()

    def wrench_fn(_t: float) -> np.ndarray:
        wrench = rig.wrench(robot.tcp_pose())
        if overload_at is not None and time.monotonic() - t0 > overload_at:
            wrench[2] -= 50.0
        return wrench

    lock = threading.Lock()  # the Net F/T reader thread and this loop share the writer
    latest: list[Sample] = []
    counts = {"images": 0, "wrenches": 0}
    with BagWriter(bag) as writer, RdtEmulator(COUNTS, COUNTS, rate_hz=1000, wrench_fn=wrench_fn,
                                               keep_log=False) as box:
        types = writer.typestore.types
        for topic, msgtype in (("/tactile/image_raw/compressed", COMPRESSED_IMAGE), ("/ft_sensor/wrench", WRENCH),
                               ("/tcp_pose", POSE), ("/tactile/episode", STRING)):
            writer.add_topic(topic, msgtype)

        def header(stamp_ns: int, frame_id: str):
            stamp = types["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
            return types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)

        def on_sample(sample: Sample) -> None:
            v = [float(x) for x in sample.wrench]
            vec = types["geometry_msgs/msg/Vector3"]
            msg = types[WRENCH](header=header(sample.stamp_ns, "ft_sensor"), wrench=types["geometry_msgs/msg/Wrench"](
                force=vec(x=v[0], y=v[1], z=v[2]), torque=vec(x=v[3], y=v[4], z=v[5])))
            with lock:
                writer.write_msg("/ft_sensor/wrench", sample.stamp_ns, msg)
                counts["wrenches"] += 1
            latest[:] = [sample]

        def on_phase(wp: Waypoint) -> None:
            now = time.time_ns()
            text = episode_message_json(stamp_ns=now, episode=wp.episode, indenter=wp.indenter,
                                        position_id=wp.position_id, depth_m=wp.depth, phase=wp.phase)
            with lock:
                writer.write_msg("/tactile/episode", now, types["std_msgs/msg/String"](data=text))

        def read_wrench():
            if not latest:
                return None
            sample = latest[0]
            return sample.wrench, sample.monotonic_ns * 1e-9

        client = NetFTClient(*box.address, calibration=Calibration(COUNTS, COUNTS))
        client.start()
        stream = NetFTStream(client, on_sample).start()
        run = CollectionRun(robot, plan(config), SafetyMonitor(limits, stale_after_s), read_wrench,
                            on_phase=on_phase, control_period=control_period)
        try:
            last = next_image = time.monotonic()
            while not run.finished:
                now = time.monotonic()
                robot.advance(now - last)
                last = now
                run.step(now)
                if now >= next_image:
                    _write_frame(writer, lock, types, header, rig, robot)
                    counts["images"] += 1
                    next_image += 1.0 / image_rate
                time.sleep(max(0.0, control_period - (time.monotonic() - now)))
        except KeyboardInterrupt:
            run.abort("interrupted")
            while not run.finished:
                robot.advance(control_period)
                run.step(time.monotonic())
            _write_frame(writer, lock, types, header, rig, robot)  # the pose it was left in
        finally:
            stream.stop()
            stats = client.stats
            client.close()
    netft = (f"{stats.received} received, {stats.lost} lost, {stats.duplicated} duplicated, "
             f"{stats.malformed} malformed")
    return SimCollectionResult(run.reason, counts["images"], counts["wrenches"], time.monotonic() - t0, netft)


def _write_frame(writer, lock, types, header, rig: IndentationRig, robot: SimulatedRobot) -> None:
    pose = robot.tcp_pose()
    stamp_ns = time.time_ns()
    fmt, data = encode_compressed(rig.image(pose), "png")
    image = types[COMPRESSED_IMAGE](header=header(stamp_ns, "tactile_sensor"), format=fmt,
                                    data=np.frombuffer(data, np.uint8))
    point = types["geometry_msgs/msg/Point"](x=float(pose[0]), y=float(pose[1]), z=float(pose[2]))
    quat = types["geometry_msgs/msg/Quaternion"](**dict(zip("xyzw", rotvec_to_quaternion(pose[3:]))))
    tcp = types[POSE](header=header(stamp_ns, "base"),
                      pose=types["geometry_msgs/msg/Pose"](position=point, orientation=quat))
    with lock:
        writer.write_msg("/tactile/image_raw/compressed", stamp_ns, image)
        writer.write_msg("/tcp_pose", stamp_ns, tcp)
