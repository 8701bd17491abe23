"""`tacforce collect --sim`: protocol run logic + simulated robot + Net F/T over loopback RDT +
tactile simulator, recorded to a bag that pairs into training data.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np

from rosutil import ROOT
from tacforce_ros.bags import read_messages
from tacforce_ros.data.tactile_pairs import load_tactile_pairs
from tacforce_ros.hardware.protocol import ProtocolConfig
from tacforce_ros.sim.collection import run_sim_collection

START = np.array([0.4, 0.1, 0.2, 0.0, np.pi, 0.0])


def short_protocol(**changes) -> ProtocolConfig:
    return ProtocolConfig(**{"indenter": "sphere", "start_pose": START, "surface_z": 0.195, "positions": 1,
                             "depths": [0.001], "shear_points": 2, "idle_time": 0.2, "approach_height": 0.001,
                             **changes})


def test_simulated_collection_records_a_bag_that_trains(tmp_path):
    result = run_sim_collection(tmp_path / "run", short_protocol())
    assert result.reason is None, result.summary()
    assert "0 lost" in result.netft
    pairs = load_tactile_pairs([tmp_path / "run"], "/tactile/image_raw/compressed", "/ft_sensor/wrench",
                               "/tactile/episode")
    # every frame is either labelled or counted as dropped (a wrench gap > 10 ms on a loaded
    # machine, or the last frame after the stream stopped); nearly all are labelled
    assert pairs.stats.paired + pairs.stats.dropped_no_wrench == result.images, pairs.summary()
    assert pairs.stats.paired >= 0.8 * result.images, pairs.summary()
    forces = np.concatenate([s.forces for s in pairs.sequences])
    assert forces[:, 2].min() < -0.3 and np.abs(forces[:, 0]).max() > 0.1  # pressed and sheared
    poses = [m.msg.pose.position.z for m in read_messages(tmp_path / "run", ["/tcp_pose"])]
    assert min(poses) < 0.195 - 0.0009  # the TCP pressed 1 mm below the surface


def test_overload_stops_the_run_and_retracts(tmp_path):
    result = run_sim_collection(tmp_path / "run", short_protocol(), overload_at=1.5)
    assert result.reason is not None and "fz" in result.reason, result.summary()
    last_z = [m.msg.pose.position.z for m in read_messages(tmp_path / "run", ["/tcp_pose"])][-1]
    assert last_z >= 0.195  # never left pressing


def test_dry_run_prints_the_plan():
    out = subprocess.run([sys.executable, "-m", "tacforce_ros.cli", "collect", "--dry-run"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "402 waypoints, 20 episodes" in out and "shear_out" in out


def test_ctrl_c_mid_run_stops_retracts_and_leaves_a_readable_bag(tmp_path):
    import signal
    import time

    # Started with SIGINT ignored, as some CI runners and `cmd &` in a script do: the command
    # must still take Ctrl-C as "abort safely".
    proc = subprocess.Popen([sys.executable, "-m", "tacforce_ros.cli", "collect", "--sim", "--config",
                             "collection_sim.yaml", "--bag", str(tmp_path / "run")], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    deadline = time.monotonic() + 60
    while not (tmp_path / "run").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(5.0)  # well into the first episode
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 1 and "interrupted" in out, out
    poses = [m.msg.pose.position.z for m in read_messages(tmp_path / "run", ["/tcp_pose"])]
    assert len(poses) > 50 and poses[-1] >= 0.195  # stopped above the surface, bag closed and readable
