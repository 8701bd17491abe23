"""sim_sensors_node: a simulated tactile sensor and Nano17 following an indentation script.

Publishes tactile images (sensor_msgs/Image: mono8 for marker styles, rgb8 for the GelSight-type
ones) at image_rate, the true contact wrench (WrenchStamped) at wrench_rate in batches from a
100 Hz timer, and a JSON phase/episode mark (std_msgs/String) at every phase change; all stamps
come from this node's clock, with the script time t = now - start - start_delay, so images and
wrenches share one time base.
"""
from __future__ import annotations

import sys
from geometry_msgs.msg import WrenchStamped
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import Image
from std_msgs.msg import String

from ..bags import episode_message_json
from ..perception.image import encode_image_fields
from ..ros.params import declare, refuse_unknown
from ..ros.qos import output_qos, sensor_qos
from ..sim.sensors import NODE_NAME, SimConfig, SimulatedSensors

WRENCH_TICK_S = 0.01


class SimSensorsNode(Node):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        defaults = SimConfig()
        values = {name: declare(self, name, _ros_default(getattr(defaults, name)), SimConfig.DESCRIPTIONS[name])
                  for name in SimConfig.parameter_names()}
        refuse_unknown(self)
        try:
            self.config = SimConfig.from_parameters(values)
        except ValueError as exc:
            raise SystemExit(f"{NODE_NAME}: {exc}") from None
        self.sensors = SimulatedSensors(self.config)
        c = self.config
        self.image_pub = self.create_publisher(Image, c.image_topic, sensor_qos(depth=5))
        self.wrench_pub = self.create_publisher(WrenchStamped, c.wrench_topic, sensor_qos(depth=100))
        self.episode_pub = self.create_publisher(String, c.episode_topic, output_qos(depth=50))
        self.start_ns = self.get_clock().now().nanoseconds
        self.next_wrench = 0
        self.last_mark = None
        self.create_timer(1.0 / c.image_rate, self.publish_image)
        self.create_timer(WRENCH_TICK_S, self.publish_wrenches)
        self.get_logger().info(
            f"{', '.join(c.indenters)} on style {c.style}: {self.sensors.duration:.1f} s script, "
            f"{self.sensors.script.num_episodes} episodes, images {c.image_rate:g} Hz, wrench {c.wrench_rate:g} Hz")

    def script_time(self, stamp_ns: int) -> float | None:
        """Script time of a stamp (0 during the start delay); None after a non-looping run."""
        t = max((stamp_ns - self.start_ns) * 1e-9 - self.config.start_delay, 0.0)
        if t <= self.sensors.duration:
            return t
        return t % self.sensors.duration if self.config.loop else None

    def publish_image(self) -> None:
        now_ns = self.get_clock().now().nanoseconds
        t = self.script_time(now_ns)
        image, _ = self.sensors.image(self.sensors.duration if t is None else t)
        msg = Image(**encode_image_fields(image, self.sensors.encoding))
        msg.header.stamp = Time(nanoseconds=now_ns).to_msg()
        msg.header.frame_id = self.config.tactile_frame_id
        self.image_pub.publish(msg)

    def publish_wrenches(self) -> None:
        """Publish every wrench sample due since the last tick, each at its own sample time."""
        now_ns = self.get_clock().now().nanoseconds
        period_ns = round(1e9 / self.config.wrench_rate)
        while self.start_ns + self.next_wrench * period_ns <= now_ns:
            stamp_ns = self.start_ns + self.next_wrench * period_ns
            self.next_wrench += 1
            t = self.script_time(stamp_ns)
            if t is None:
                self.mark(stamp_ns, None)
                t = self.sensors.duration
            force, sample = self.sensors.wrench(t)
            self.mark(stamp_ns, sample)
            msg = WrenchStamped()
            msg.header.stamp = Time(nanoseconds=stamp_ns).to_msg()
            msg.header.frame_id = self.config.ft_frame_id
            msg.wrench.force.x, msg.wrench.force.y, msg.wrench.force.z = (float(v) for v in force)
            self.wrench_pub.publish(msg)

    def mark(self, stamp_ns: int, sample) -> None:
        key = ("done",) if sample is None else (sample.episode, sample.phase)
        if key == self.last_mark or (self.last_mark == ("done",)):
            return
        self.last_mark = key
        if sample is None:
            text = episode_message_json(stamp_ns=stamp_ns, episode=-1, indenter="", position_id=-1,
                                        depth_m=0.0, phase="done")
        else:
            text = episode_message_json(stamp_ns=stamp_ns, episode=sample.episode, indenter=sample.indenter,
                                        position_id=sample.position_id, depth_m=sample.target_depth,
                                        phase=sample.phase)
        self.episode_pub.publish(String(data=text))


def _ros_default(value):
    return list(value) if isinstance(value, tuple) else value


def main(args=None) -> None:
    from .runner import spin_nodes
    sys.exit(spin_nodes([SimSensorsNode], args))


if __name__ == "__main__":
    main()
