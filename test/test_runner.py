"""The process runner every node uses: a node asked to stop stops, even when ROS teardown hangs."""
import subprocess
import sys
import time

from rosutil import ROOT, ros_env

STUCK_TEARDOWN = """
import time

import rclpy
from rclpy.node import Node

from tacforce_ros.nodes import runner

runner.TEARDOWN_S = 1.0


class StuckTeardown(Node):
    def __init__(self):
        super().__init__("stuck_teardown")
        self.create_timer(0.2, rclpy.try_shutdown)  # as Ctrl-C would

    def close(self):
        print("closed", flush=True)

    def destroy_node(self):  # as Fast DDS 2.14 can when it destroys a participant
        time.sleep(60)


raise SystemExit(runner.spin_nodes([StuckTeardown], ["stuck"]))
"""


def test_a_hanging_ros_teardown_ends_the_process_after_the_node_closed():
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", STUCK_TEARDOWN], env=ros_env(201), cwd=ROOT,
                          capture_output=True, text=True, timeout=50)
    assert time.monotonic() - start < 30, "the watchdog did not end the process"
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "closed"  # the node's own close() ran before the teardown
    assert "ROS teardown did not finish within 1 s; exiting" in done.stderr


FAILING_CALLBACK = """
from rclpy.node import Node

from tacforce_ros.nodes import runner


class Ticking(Node):
    def __init__(self):
        super().__init__("ticking")
        self.ticks = 0
        self.create_timer(0.01, self.tick)

    def tick(self):
        self.ticks += 1

    def close(self):
        print("ticking closed after", "many" if self.ticks > 5 else "few", "ticks", flush=True)


class Failing(Node):
    def __init__(self):
        super().__init__("failing")
        self.create_timer(0.5, self.fail)

    def fail(self):
        raise SystemExit("failing: the device stopped answering")

    def close(self):
        print("failing closed", flush=True)


raise SystemExit(runner.spin_nodes([Ticking, Failing], ["two"]))
"""


def test_a_node_that_stops_in_a_callback_stops_the_process_and_every_node_closes():
    """Nodes in one process spin side by side; the first that exits takes the others down with it."""
    done = subprocess.run([sys.executable, "-c", FAILING_CALLBACK], env=ros_env(202), cwd=ROOT,
                          capture_output=True, text=True, timeout=50)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == "failing: the device stopped answering"
    assert done.stdout.splitlines() == ["ticking closed after many ticks", "failing closed"]
