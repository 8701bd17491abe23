"""Publishes a node's StageStats on /diagnostics (diagnostic_updater is not on PyPI)."""
from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

from ..perception.stats import StageStats


class DiagnosticsPublisher:
    """Every ``period`` seconds publishes one DiagnosticStatus built from ``stats``.

    The level is ERROR when ``problem`` is set (e.g. no model), WARN when inputs were
    rejected since the last report, when ``notice`` is set (a one-off event such as a buffer
    reset; cleared once reported) or no frame arrived, OK otherwise. ``extra`` values may be
    updated between reports.
    """

    def __init__(self, node: Node, stats: StageStats, hardware_id: str, period: float = 1.0,
                 extra: dict[str, str] | None = None):
        self.node = node
        self.stats = stats
        self.hardware_id = hardware_id
        self.extra = dict(extra or {})
        self.problem = ""
        self.notice = ""
        self._errors_seen = 0
        self._frames_seen = 0
        # absolute in any namespace: one aggregator reads every node's reports (the ROS convention)
        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._timer = node.create_timer(period, self.publish)

    def publish(self) -> None:
        errors = sum(self.stats.errors.values())
        status = DiagnosticStatus(name=f"{self.node.get_name()}: {self.hardware_id}",
                                  hardware_id=self.hardware_id)
        if self.problem:
            status.level, status.message = DiagnosticStatus.ERROR, self.problem
        elif errors > self._errors_seen:
            status.level = DiagnosticStatus.WARN
            status.message = f"{errors - self._errors_seen} input(s) rejected"
        elif self.notice:
            status.level, status.message = DiagnosticStatus.WARN, self.notice
        elif self.stats.frames == self._frames_seen:
            status.level, status.message = DiagnosticStatus.WARN, "no input"
        else:
            status.level, status.message = DiagnosticStatus.OK, "ok"
        self._errors_seen, self._frames_seen = errors, self.stats.frames
        self.notice = ""
        values = {**self.extra, **self.stats.key_values()}
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self._pub.publish(msg)
