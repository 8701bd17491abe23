"""collection_node: drives a GenForce indentation run on a UR5e (or the simulated robot) while
the force sensor streams, and publishes what a bag of the run needs.

Subscribes the Net F/T wrench (netft_node), runs hardware.collection.CollectionRun every
control period (safety checked before any move: overload, stale stream, robot fault stop the
robot in that cycle and retract it), publishes the TCP pose (PoseStamped, base frame) and a
JSON phase/episode mark (std_msgs/String) at each new waypoint. Record with `ros2 bag record`
(README). Exits 0 when the run completes, 1 when it was stopped; Ctrl-C stops and retracts.

A lifecycle node (ros/lifecycle.py): configure connects the robot (and, with simulate_sensors,
starts the simulated box and camera), activate starts a run from the first waypoint, deactivate
stops the robot and retracts it above the surface (the abort path: never left pressing),
cleanup lets go of the robot and the simulated sensors.
"""
from __future__ import annotations

import sys
import time

import numpy as np
from geometry_msgs.msg import PoseStamped, WrenchStamped
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.timer import Timer
from sensor_msgs.msg import Image
from std_msgs.msg import String

from ..bags import episode_message_json
from ..hardware.collection import CollectionRun
from ..hardware.collection_config import NODE_NAME, CollectionConfig
from ..hardware.protocol import Waypoint, describe, plan
from ..hardware.robot import SimulatedRobot, URRobot, rotvec_to_quaternion
from ..hardware.safety import SafetyMonitor
from ..perception.image import encode_image_fields
from ..ros.lifecycle import ManagedNode
from ..ros.params import declare, refuse_unknown, topic
from ..ros.qos import output_qos, sensor_qos

FORCE_STREAM_WAIT_S = 10.0
PARAMETERS = {  # name: (default, description); the protocol's are documented in config/collection.yaml
    "indenter": ("sphere", "indenter mounted on the robot"),
    "start_pose": ([0.4, 0.1, 0.2, 0.0, 3.14159, 0.0], "TCP [x y z rx ry rz] above the sensor centre, base frame"),
    "surface_z": (0.195, "TCP z at which the indenter just touches the elastomer, m"),
    "positions": (5, "contact positions: 1 (centre) .. 5 (centre and four corners)"),
    "position_step": (0.004, "corner offset from the centre, m"),
    "depths": ([0.00025, 0.0005, 0.00075, 0.001], "press depths below the surface, m"),
    "shear_points": (8, "shear points on a circle per depth (0: press/release only)"),
    "shear_radius": (0.001, "shear circle radius, m"),
    "approach_height": (0.002, "hover height above the surface before pressing, m"),
    "approach_speed": (0.01, "m/s"),
    "press_speed": (0.002, "m/s"),
    "shear_speed": (0.004, "m/s"),
    "dwell": (0.2, "rest at each press and shear point, s"),
    "idle_time": (0.5, "rest out of contact after each episode, s"),
    "material_curve": (False, "straight press/release in fine steps (force-depth curves)"),
    "material_depth_step": (0.1e-3, "depth step of the material curve, m"),
    "force_limits": ([8.0, 8.0, 12.0, 0.08, 0.08, 0.08], "|Fx| |Fy| |Fz| N, |Tx| |Ty| |Tz| N·m"),
    "stale_after": (0.1, "stop when the force stream is silent this long, s"),
    "control_period": (0.002, "run-logic cycle, s"),
    "image_rate": (20.0, "simulated camera rate (tacforce collect --sim only), Hz"),
    "style": ("array1", "simulated sensor style (tacforce collect --sim only)"),
}


class CollectionNode(ManagedNode):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        values = {name: declare(self, name, default, text) for name, (default, text) in PARAMETERS.items()}
        self.robot_kind = declare(self, "robot", "ur", "'ur' (ur_rtde at robot_host) or 'sim' (simulated robot)")
        self.robot_host = declare(self, "robot_host", "192.168.1.102", "UR controller address")
        self.wrench_topic = declare(self, "wrench_topic", "ft_sensor/wrench", "force sensor WrenchStamped",
                                    check=topic)
        self.base_frame = declare(self, "base_frame", "base", "frame_id of the TCP pose")
        dry_run = declare(self, "dry_run", False, "log the planned waypoints and exit without moving")
        self.simulate = declare(self, "simulate_sensors", False,
                                "with robot 'sim': serve a simulated Net F/T box (RDT on 127.0.0.1:sim_rdt_port) "
                                "and publish simulated tactile images, both following the simulated robot")
        self.sim_port = declare(self, "sim_rdt_port", 49152, "UDP port of the simulated Net F/T box")
        refuse_unknown(self)
        try:
            self.config = CollectionConfig.from_parameters(values)
            self.waypoints = plan(self.config.protocol)
        except (TypeError, ValueError) as exc:
            raise SystemExit(f"{NODE_NAME}: {exc}") from None
        if dry_run:
            print(describe(self.waypoints), flush=True)
            raise SystemExit(0)
        if self.simulate and self.robot_kind != "sim":
            raise SystemExit(f"{NODE_NAME}: simulate_sensors needs robot 'sim'")
        self.robot: SimulatedRobot | URRobot | None = None  # while configured
        self.sensors: SimulatedSensorsAtPose | None = None  # while configured, with simulate_sensors
        self.run: CollectionRun | None = None  # while active (and after, until the next activate)
        self.timer: Timer | None = None  # the control cycle, while active
        self.latest: tuple[np.ndarray, float] | None = None
        self.create_subscription(WrenchStamped, self.wrench_topic, self.on_wrench, sensor_qos(depth=100))
        self.pose_pub = self.create_lifecycle_publisher(PoseStamped, "tcp_pose", output_qos())
        self.episode_pub = self.create_lifecycle_publisher(String, "tactile/episode", output_qos(depth=50))
        self.get_logger().info(f"{len(self.waypoints)} waypoints, {self.config.protocol.indenter}, "
                               f"robot {self.robot_kind}")
        self.start()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        period = self.config.control_period
        try:
            self.robot = (SimulatedRobot(period, self.config.protocol.start_pose) if self.robot_kind == "sim"
                          else URRobot(self.robot_host, frequency=1.0 / period))
        except (ImportError, RuntimeError, OSError) as exc:
            return self.refuse(f"robot at {self.robot_host}: {exc}")
        if self.simulate:
            try:
                self.sensors = SimulatedSensorsAtPose(self, self.robot, self.config, self.sim_port)
            except OSError as exc:
                self.release()
                return self.refuse(f"simulated Net F/T box on 127.0.0.1:{self.sim_port}: {exc}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Start a run from the first waypoint; it moves once the force stream is heard from."""
        period = self.config.control_period
        self.latest = None
        self.run = CollectionRun(self.robot, self.waypoints, SafetyMonitor(self.config.limits, self.config.stale_after),
                                 lambda: self.latest, on_phase=self.on_phase, control_period=period)
        self.started = self.last_cycle = time.monotonic()
        self.timer = self.create_timer(period, self.cycle)
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_run("deactivated")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release()
        return super().on_cleanup(state)

    def on_wrench(self, msg: WrenchStamped) -> None:
        f, t = msg.wrench.force, msg.wrench.torque
        self.latest = (np.array([f.x, f.y, f.z, t.x, t.y, t.z]), time.monotonic())

    def cycle(self) -> None:
        now = time.monotonic()
        if self.latest is None:  # never move before the force sensor is heard from
            self.last_cycle = now
            if now - self.started > FORCE_STREAM_WAIT_S:
                raise SystemExit(f"{NODE_NAME}: no force stream on {self.wrench_topic} within "
                                 f"{FORCE_STREAM_WAIT_S:g} s; is netft_node running?")
            return
        if isinstance(self.robot, SimulatedRobot):
            self.robot.advance(now - self.last_cycle)
        self.last_cycle = now
        self.run.step(now)
        self.publish_pose()
        if self.run.finished:
            if self.run.reason is None:
                self.get_logger().info("run completed")
                raise SystemExit(0)
            raise SystemExit(f"{NODE_NAME}: run stopped: {self.run.reason}")

    def publish_pose(self) -> None:
        pose = self.robot.tcp_pose()
        msg = PoseStamped()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.base_frame
        p = msg.pose.position
        p.x, p.y, p.z = (float(v) for v in pose[:3])
        q = msg.pose.orientation
        q.x, q.y, q.z, q.w = rotvec_to_quaternion(pose[3:])
        self.pose_pub.publish(msg)

    def on_phase(self, wp: Waypoint) -> None:
        text = episode_message_json(stamp_ns=self.get_clock().now().nanoseconds, episode=wp.episode,
                                    indenter=wp.indenter, position_id=wp.position_id, depth_m=wp.depth,
                                    phase=wp.phase)
        self.episode_pub.publish(String(data=text))

    def stop_run(self, why: str) -> None:
        """Stop the control cycle; a run still going is aborted: stop, retract above the surface."""
        if self.timer is not None:
            self.destroy_timer(self.timer)
            self.timer = None
        if self.run is not None and not self.run.finished:
            self.run.abort(why)
            deadline = time.monotonic() + 10.0
            while not self.run.finished and time.monotonic() < deadline:
                if isinstance(self.robot, SimulatedRobot):
                    self.robot.advance(self.config.control_period)
                self.run.step(time.monotonic())
                time.sleep(self.config.control_period)
            self.get_logger().warning(f"run ended: {self.run.reason}")

    def release(self) -> None:
        """Let go of the simulated sensors and the robot."""
        self.drop("sensors")
        self.drop("robot")

    def close(self) -> None:
        """On shutdown (Ctrl-C, SIGTERM) from any state: stop and retract a run, then release."""
        self.stop_run("node shut down")
        self.release()


class SimulatedSensorsAtPose:
    """The simulated rig for a simulated run through ROS: a Net F/T box on loopback (read by
    netft_node over real RDT) and a tactile camera, both reading the robot's current pose.
    """

    def __init__(self, node: Node, robot: SimulatedRobot, config: CollectionConfig, rdt_port: int):
        from ..sim.netft_box import RdtEmulator
        from ..sim.rig import IndentationRig

        self.robot = robot
        self.rig = IndentationRig.for_protocol(config.protocol, config.style)
        self.box = RdtEmulator(SIM_COUNTS, SIM_COUNTS, rate_hz=1000, keep_log=False, port=rdt_port,
                               wrench_fn=lambda _t: self.rig.wrench(self.robot.tcp_pose()))
        self.node = node
        self.pub = node.create_publisher(Image, "tactile/image_raw", sensor_qos(depth=5))
        self.timer = node.create_timer(1.0 / config.image_rate, self.publish_image)
        node.get_logger().info(f"simulated Net F/T box on 127.0.0.1:{self.box.address[1]} "
                               f"({SIM_COUNTS} counts per N and per N·m)")

    def publish_image(self) -> None:
        stamp = self.node.get_clock().now().to_msg()
        msg = Image(**encode_image_fields(self.rig.image(self.robot.tcp_pose()), "mono8"))
        msg.header.stamp = stamp
        msg.header.frame_id = "tactile_sensor"
        self.pub.publish(msg)

    def close(self) -> None:
        self.node.destroy_timer(self.timer)
        self.node.destroy_publisher(self.pub)
        self.box.close()


SIM_COUNTS = 1_000_000


def main(args=None) -> None:
    from .runner import spin_nodes
    sys.exit(spin_nodes([CollectionNode], args))


if __name__ == "__main__":
    main()
