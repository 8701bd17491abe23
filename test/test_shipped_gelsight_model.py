"""The shipped GelSight-type force model on indenters and a sensor unit it was not trained on.

`models/tactile_force_gelsight.onnx` streams the GelSight-type simulator's rgb8 frames of a unit
seed no training bag used, through the node's estimator (reference from the first frames), for
press-and-release ramps of held-out indenters, one of them pressed past the training forces.
"""
from pathlib import Path

import numpy as np
import pytest

from tacforce_ros.inference.runtime import OnnxModel
from tacforce_ros.perception.force import TactileForceEstimator
from tacforce_ros.sim.gelsight import GELSIGHT_STYLES, GelSightSimulator

MODEL = Path(__file__).resolve().parent.parent / "models" / "tactile_force_gelsight.onnx"


@pytest.fixture(scope="module")
def model():
    return OnnxModel(MODEL, "tactile_force", providers=["cpu"])


def test_it_is_a_colour_model_with_a_reference_input(model):
    meta = model.metadata
    assert meta.input.encoding == "rgb8" and meta.input.channels == 3 and "luma" not in meta.preprocessing
    assert meta.input.reference == "reference"
    assert meta.training["config"]["model"]["head"] == "linear"


PRESSES = [("cone", 1.5e-3, 4242), ("sphere_s", 1.5e-3, 4243), ("wave", 2.4e-3, 4244), ("torus", 2.4e-3, 4245)]


@pytest.mark.parametrize("indenter, depth, seed", PRESSES)
def test_presses_of_held_out_indenters_read_close_to_the_true_force(model, indenter, depth, seed):
    sim = GelSightSimulator(GELSIGHT_STYLES["gelsight_mini"], seed=seed)
    estimator = TactileForceEstimator(model)
    for _ in range(estimator.reference_frames):
        estimator.step(sim.render(None))
    true, estimated, notes = [], [], []
    for d in np.r_[np.linspace(0.0, depth, 16), np.linspace(depth, 0.0, 16)]:
        state = sim.contact(indenter, 0.0, 0.0, d)
        true.append(state.force)
        estimated.append(estimator.step(sim.render(state)))
        notes.append(estimator.range_note)
    true, estimated = np.array(true), np.array(estimated)
    peak = np.abs(true[:, 2]).max()
    assert np.sqrt(np.mean((estimated[:, 2] - true[:, 2]) ** 2)) < 0.1 + 0.1 * peak   # N
    assert np.corrcoef(estimated[:, 2], true[:, 2])[0, 1] > 0.98
    assert abs(-estimated[:, 2].min() - peak) < 0.1 + 0.15 * peak   # the hardest press reads as hard
    trained_max = -min(model.metadata.training["train_force_min"][2], 0.0)
    if peak > 1.2 * trained_max:      # pressed past the training forces: the estimate goes past them too
        assert -estimated[:, 2].min() > trained_max
        assert any(notes)                   # ...and the estimator says so, as the node does on /diagnostics
