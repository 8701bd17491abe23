"""sim_sensors_node and recorder_node as separate processes with real DDS: the recorded bag
reads back with rosbags and pairs into training data.
"""
from __future__ import annotations

import signal
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from rosbags.highlevel import AnyReader  # noqa: E402

from rosutil import start_node, stop  # noqa: E402
from tacforce_ros.bags import parse_episode, read_messages  # noqa: E402
from tacforce_ros.data.tactile_pairs import load_tactile_pairs  # noqa: E402

DOMAIN = 37


def test_simulated_run_recorded_to_a_bag_that_trains(tmp_path):
    bag = tmp_path / "run"
    recorder = start_node("tacforce_ros.nodes.recorder_node", DOMAIN,
                          {"output": str(bag),
                           "topics": "['/tactile/image_raw','/ft_sensor/wrench','/tactile/episode']"})
    time.sleep(2.0)
    sim = start_node("tacforce_ros.nodes.sim_sensors_node", DOMAIN,
                     {"indenters": "[sphere]", "positions": 1, "depths": "[0.001]", "shear_points": 2,
                      "image_rate": 15.0, "seed": 3})
    try:
        time.sleep(8.0)
        assert sim.poll() is None and recorder.poll() is None
        recorder.send_signal(signal.SIGINT)
        recorder.wait(20)
    finally:
        sim_log, rec_log = stop(sim), stop(recorder)
    assert recorder.returncode == 0, rec_log
    assert (bag / "metadata.yaml").is_file(), rec_log

    with AnyReader([bag]) as reader:  # plain rosbags, as any other tool would read it
        topics = {c.topic: c.msgtype for c in reader.connections}
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert topics == {"/tactile/image_raw": "sensor_msgs/msg/Image",
                      "/ft_sensor/wrench": "geometry_msgs/msg/WrenchStamped",
                      "/tactile/episode": "std_msgs/msg/String"}, sim_log

    wrench_stamps = np.array([m.msg.header.stamp.sec * 10**9 + m.msg.header.stamp.nanosec
                              for m in read_messages(bag, ["/ft_sensor/wrench"])])
    rate = (len(wrench_stamps) - 1) / ((wrench_stamps[-1] - wrench_stamps[0]) * 1e-9)
    assert rate > 500, f"wrench rate {rate:.0f} Hz"
    assert np.all(np.diff(wrench_stamps) > 0)
    assert counts["/tactile/image_raw"] >= 30, (counts, sim_log)
    phases = [parse_episode(m.msg.data).phase for m in read_messages(bag, ["/tactile/episode"])]
    assert {"press", "shear_out", "release"} <= set(phases)

    pairs = load_tactile_pairs([bag], "/tactile/image_raw", "/ft_sensor/wrench", "/tactile/episode")
    assert pairs.stats.paired >= counts["/tactile/image_raw"] - 3, pairs.summary()
    forces = np.concatenate([s.forces for s in pairs.sequences])
    assert forces[:, 2].min() < -0.1  # the press shows in the labels
    assert pairs.sequences[0].images.shape[1:] == (480, 640, 1)
