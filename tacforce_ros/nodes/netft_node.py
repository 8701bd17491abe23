"""netft_node: an ATI Net F/T box (e.g. a Nano17) streamed over RDT to /ft_sensor/wrench.

Every record the box streams becomes one WrenchStamped (N, N·m; stamped at receipt), so the
rate is the box's (>= 1 kHz). The client's reader thread only queues samples (bounded); a
200 Hz timer publishes them, so all publishing stays on the executor's thread (publishing from
two threads at once was seen to stall rclpy here). Counts per force/torque
come from the box's calibration page unless set as parameters. ~/tare zeroes the output here
(client side); ~/bias sends the box's own software bias. /diagnostics reports rate, lost,
duplicated and out-of-order records, resyncs, the last status word, and a stale stream (ERROR:
no accepted record for stale_after). Malformed packets, records numbered far from the stream
(forged or unconfirmed jumps) and non-finite wrenches (never published) are rejected inputs:
WARN in the report after them.

A lifecycle node (ros/lifecycle.py): configure reads the calibration and opens the RDT socket,
activate starts streaming and publishing, deactivate asks the box to stop and publishes the
records still in flight (none received while active is lost), cleanup closes the socket.
"""
from __future__ import annotations

import sys
from collections import deque

import numpy as np
from geometry_msgs.msg import WrenchStamped
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.time import Time
from std_srvs.srv import Trigger

from ..hardware.netft import NetFTClient, NetFTConnectionError, NetFTError, NetFTStream, Sample
from ..hardware.netft_calibration import COUNTS_PER_UNIT_RANGE, Calibration, fetch_calibration
from ..perception.stats import StageStats
from ..ros.diagnostics import DiagnosticsPublisher
from ..ros.lifecycle import ManagedNode
from ..ros.params import declare, refuse_unknown, topic
from ..ros.qos import sensor_qos

PUBLISH_PERIOD_S = 0.005
QUEUE_LIMIT = 10_000  # 10 s at 1 kHz: a stalled executor loses old samples, never grows memory
DRAIN_QUIET_S = 0.5  # on deactivate: the stream has ended once no record came for this long
SUCCESS = TransitionCallbackReturn.SUCCESS
NOT_CONFIGURED = "not configured: configure the node first (ros2 lifecycle set <node> configure)"


class NetFTNode(ManagedNode):
    def __init__(self, **kwargs):
        super().__init__("netft_node", **kwargs)
        self.host = declare(self, "host", "192.168.1.1", "Net F/T box address")
        self.port = declare(self, "port", 49152, "RDT UDP port", limits=(1, 65535))
        self.http_port = declare(self, "calibration_port", 80, "HTTP port of the box's netftapi2.xml page",
                                 limits=(1, 65535))
        self.cpf = declare(self, "counts_per_force", 0.0, "counts per N; 0 reads the box's calibration page",
                           limits=(0.0, COUNTS_PER_UNIT_RANGE[1]))
        self.cpt = declare(self, "counts_per_torque", 0.0, "counts per N·m; 0 reads the box's calibration page",
                           limits=(0.0, COUNTS_PER_UNIT_RANGE[1]))
        self.frame_id = declare(self, "frame_id", "ft_sensor", "frame_id of the wrench")
        self.topic = declare(self, "topic", "ft_sensor/wrench", "WrenchStamped output topic", check=topic)
        self.stale_after = declare(self, "stale_after", 0.1,
                                   "seconds without an accepted record before the stream is stale",
                                   limits=(0.001, 60.0))
        self.bias_on_start = declare(self, "bias_on_start", False, "send the box's software bias when streaming starts")
        period = declare(self, "diagnostics_period", 1.0, "Seconds between /diagnostics reports",
                         limits=(0.05, 3600.0))
        refuse_unknown(self)
        self.client: NetFTClient | None = None  # while configured
        self.stream: NetFTStream | None = None  # while active
        self.pub = self.create_lifecycle_publisher(WrenchStamped, self.topic, sensor_qos(depth=100))
        self.stats = StageStats(window=2000)
        self.pending: deque[Sample] = deque(maxlen=QUEUE_LIMIT)
        self.create_timer(PUBLISH_PERIOD_S, self.publish_pending)
        self.create_service(Trigger, "~/tare", self.on_tare)
        self.create_service(Trigger, "~/bias", self.on_bias)
        self.diagnostics = DiagnosticsPublisher(self, self.stats, f"Net F/T {self.host}:{self.port}", period)
        self.create_timer(period, self.update_diagnostics)
        self.start()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            calibration = (Calibration(self.cpf, self.cpt) if self.cpf > 0 and self.cpt > 0
                           else fetch_calibration(self.host, self.http_port))
            self.client = NetFTClient(self.host, self.port, calibration=calibration,
                                      bias_on_start=self.bias_on_start)
        except (NetFTError, ValueError) as exc:
            return self.refuse(str(exc))
        self.get_logger().info(f"configured for {self.host}:{self.port} ({calibration.counts_per_force:g} "
                               f"counts/N, {calibration.counts_per_torque:g} counts/N·m)")
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.client.start()
        except NetFTError as exc:
            return self.refuse(str(exc))
        self.stream = NetFTStream(self.client, self.pending.append).start()
        self.get_logger().info(f"streaming {self.host}:{self.port} to {self.topic}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_streaming()
        self.publish_pending()  # received while active: published before the publisher is disabled
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.close()
        return super().on_cleanup(state)

    def stop_streaming(self) -> None:
        """Ask the box to stop, then read what it sent until then (the stream drains)."""
        if self.stream is None:
            return
        try:
            self.client.stop()
        except NetFTConnectionError as exc:  # the box is gone: nothing more will come
            self.get_logger().warning(f"stop request not sent: {exc}")
        self.stream.drain(DRAIN_QUIET_S)
        self.stream = None

    def publish_pending(self) -> None:
        for _ in range(len(self.pending)):
            self.publish(self.pending.popleft())

    def publish(self, sample: Sample) -> None:
        if not np.isfinite(sample.wrench).all():  # the calibration is bounded; this is the last guard
            self.stats.error("non_finite")
            return
        msg = WrenchStamped()
        msg.header.stamp = Time(nanoseconds=sample.stamp_ns).to_msg()
        msg.header.frame_id = self.frame_id
        f, w = msg.wrench.force, msg.wrench.torque
        f.x, f.y, f.z, w.x, w.y, w.z = (float(v) for v in sample.wrench)
        self.pub.publish(msg)
        self.stats.tick(sample.monotonic_ns * 1e-9)

    def update_diagnostics(self) -> None:
        if self.stream is None:  # not active: no stream is expected, so none is stale
            self.diagnostics.problem = ""
            return
        s = self.client.stats
        # The client's junk counts as rejected inputs: any new ones make the next report WARN.
        self.stats.errors.update(malformed=s.malformed, out_of_range=s.out_of_range)
        self.diagnostics.extra.update(
            received=str(s.received), lost=str(s.lost), duplicated=str(s.duplicated),
            out_of_order=str(s.out_of_order), resyncs=str(s.resyncs),
            last_status=hex(s.last_status) if s.last_status is not None else "none",
            box_rate_hz=f"{s.rate_hz:.1f}")
        silence = self.client.seconds_since_last_packet()
        if self.stream.error is not None:
            self.diagnostics.problem = f"stream stopped: {self.stream.error}"
        elif silence > self.stale_after:
            self.diagnostics.problem = f"stale: no valid record for {silence:.2f} s"
        else:
            self.diagnostics.problem = ""
        if self.diagnostics.problem:
            self.get_logger().error(self.diagnostics.problem, throttle_duration_sec=2.0)

    def on_tare(self, _request, response):
        if self.client is None:
            response.success, response.message = False, NOT_CONFIGURED
            return response
        try:
            offset = self.client.tare(samples=100)
        except (NetFTError, ValueError) as exc:
            response.success, response.message = False, str(exc)
        else:
            response.success = True
            response.message = "tared at [" + ", ".join(f"{v:.4f}" for v in offset) + "]"
        return response

    def on_bias(self, _request, response):
        if self.client is None:
            response.success, response.message = False, NOT_CONFIGURED
            return response
        try:
            self.client.bias()
        except NetFTConnectionError as exc:
            response.success, response.message = False, str(exc)
        else:
            response.success, response.message = True, "software bias sent to the box"
        return response

    def close(self) -> None:
        """Release the box from any state: stop reading, stop its stream, close the socket."""
        self.drop("stream", "stop")
        self.drop("client")


def main(args=None) -> None:
    from .runner import spin_nodes
    sys.exit(spin_nodes([NetFTNode], args))


if __name__ == "__main__":
    main()
