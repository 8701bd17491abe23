"""recorder_node: record topics to a rosbag2 bag (MCAP) with the package's BagWriter.

Messages are taken serialized (raw subscriptions), so nothing is converted on the way; the
log time is the receive time, as `ros2 bag record` does. Topics whose type is not known at
start are subscribed as soon as a publisher appears. The writer flushes periodically, so a
killed recorder leaves a bag readable up to the last flush (see bags.recover_bag).
"""
from __future__ import annotations

import sys
import importlib
import re

from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..bags import BagError, BagWriter
from ..ros.params import declare, refuse_unknown

MSGTYPE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)/msg/([A-Za-z][A-Za-z0-9_]*)$")
# Best effort matches reliable and best-effort publishers; a deep queue rides out write stalls.
RECORD_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=500,
                        reliability=ReliabilityPolicy.BEST_EFFORT)


def message_class(msgtype: str):
    """'sensor_msgs/msg/Image' -> the rclpy message class (import by checked name, no eval)."""
    match = MSGTYPE.match(msgtype)
    if not match:
        raise ValueError(f"not a ROS message type name: {msgtype!r}")
    return getattr(importlib.import_module(f"{match.group(1)}.msg"), match.group(2))


class RecorderNode(Node):
    def __init__(self, **kwargs):
        super().__init__("recorder_node", **kwargs)
        self.output = declare(self, "output", "tacforce_bag", "Bag directory to create")
        self.topics = list(declare(self, "topics", ["/tactile/image_raw", "/ft_sensor/wrench",
                                                    "/tactile/episode"], "Topics to record"))
        storage = declare(self, "storage", "mcap", "rosbag2 storage: mcap or sqlite3", choices=("mcap", "sqlite3"))
        refuse_unknown(self)
        try:
            self.writer = BagWriter(self.output, storage=storage)
        except BagError as exc:  # e.g. the directory exists: never overwrite a recording
            raise SystemExit(f"recorder_node: {exc}") from None
        self.counts = {topic: 0 for topic in self.topics}
        self._pending = set(self.topics)
        self._subs = []
        self._timer = self.create_timer(0.2, self.subscribe_new)
        self._flush_timer = self.create_timer(0.5, self.writer.flush)  # durable even when input stops
        self.subscribe_new()
        self.get_logger().info(f"recording {', '.join(self.topics)} to {self.output}")

    def subscribe_new(self) -> None:
        for topic, types in self.get_topic_names_and_types():
            if topic not in self._pending:
                continue
            msgtype = types[0]
            self.writer.add_topic(topic, msgtype)
            self._subs.append(self.create_subscription(
                message_class(msgtype), topic, lambda data, t=topic: self.on_message(t, data),
                RECORD_QOS, raw=True))
            self._pending.discard(topic)
            self.get_logger().info(f"{topic} [{msgtype}]")

    def on_message(self, topic: str, data: bytes) -> None:
        self.writer.write(topic, self.get_clock().now().nanoseconds, data)
        self.counts[topic] += 1

    def close(self) -> None:
        self.writer.close()
        self.get_logger().info("bag closed: " + ", ".join(f"{t} {n}" for t, n in self.counts.items()))


def main(args=None) -> None:
    from .runner import spin_nodes
    sys.exit(spin_nodes([RecorderNode], args))


if __name__ == "__main__":
    main()
