"""Offline simulated runs (`tacforce sim --bag`) give bags that pair into training data."""
from __future__ import annotations

import numpy as np
import pytest

from tacforce_ros.bags import read_messages
from tacforce_ros.data.tactile_pairs import load_tactile_pairs
from tacforce_ros.sim.sensors import SimConfig, SimulatedSensors, write_sim_bag


@pytest.mark.parametrize("compressed", [True, False])
def test_sim_bag_pairs_images_with_the_true_force(tmp_path, compressed):
    config = SimConfig(indenters=("sphere",), positions=1, depths=(0.001,), shear_points=2,
                       image_rate=20.0, wrench_noise=0.0)
    summary = write_sim_bag(tmp_path / "bag", config, compressed=compressed, max_seconds=2.5, progress=False)
    assert "51 images" in summary
    topic = "/tactile/image_raw" + ("/compressed" if compressed else "")
    pairs = load_tactile_pairs(tmp_path / "bag", topic, "/ft_sensor/wrench", "/tactile/episode",
                               tolerance_s=0.002)
    assert pairs.stats.paired == 51 and pairs.stats.dropped_no_wrench == 0
    sensors = SimulatedSensors(config)
    frames = np.concatenate([s.images for s in pairs.sequences])
    forces = np.concatenate([s.forces for s in pairs.sequences])
    stamps = np.concatenate([s.stamps_ns for s in pairs.sequences])
    t = (stamps - stamps[0]) * 1e-9
    expected = np.array([sensors.wrench(ti)[0] for ti in t])
    np.testing.assert_allclose(forces, expected, atol=2e-3)  # label = force at the image's stamp
    assert forces[:, 2].min() < -0.2 and np.abs(forces[:, 0]).max() > 0.05
    diff = np.abs(frames[30, :, :, 0].astype(int) - sensors.image(t[30])[0].astype(int))
    assert diff.mean() < 8  # the same markers; only the image noise differs
    phases = {m.msg.data for m in read_messages(tmp_path / "bag", ["/tactile/episode"])}
    assert any('"phase": "press"' in p for p in phases)


def test_unknown_parameters_and_shapes_are_refused():
    with pytest.raises(ValueError, match="unknown sim parameter"):
        SimConfig.from_parameters({"indenter": ["sphere"]})
    with pytest.raises(ValueError, match="unknown indenter"):
        SimConfig.from_parameters({"indenters": ["blob"]})
