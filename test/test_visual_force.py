"""Visual force without ROS: the frame window, the estimator over hand-built ONNX graphs, the
T-frame model contract, the synthetic scenes and their folder / bag round trips.
"""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from tacforce_ros.inference.contract import METADATA_KEY, InputSpec, ModelError, ModelMetadata  # noqa: E402
from tacforce_ros.inference.runtime import OnnxModel  # noqa: E402
from tacforce_ros.perception.visual_force import (FrameWindow, NonFiniteOutput, VisualForceEstimator,  # noqa: E402
                                                  press_vector)
from tacforce_ros.sim import visual_force_scenes as scenes  # noqa: E402


def vf_metadata(task="visual_force", frames=3, outputs=1) -> ModelMetadata:
    return ModelMetadata(task=task, input=InputSpec("image", 4, 6, 3, "rgb8", frames=frames),
                         outputs={"force": {"shape": [1, outputs], "units": "N"}})


def build_vf(path, meta: ModelMetadata, frames=3, outputs=1, scale=1.0):
    """Build a graph with force = mean(last frame) * scale (repeated ``outputs`` times): shows which frame is newest.
    ``frames`` None: a single-frame [1, H, W, C] graph.
    """
    nodes = [
        helper.make_node("Gather", ["image", "last"], ["newest"], axis=1) if frames else
        helper.make_node("Identity", ["image"], ["newest"]),
        helper.make_node("Cast", ["newest"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "s"], ["ms"]),
        helper.make_node("Expand", ["ms", "shape"], ["force"]),
    ]
    inits = [helper.make_tensor("last", TensorProto.INT64, [], [(frames or 1) - 1]),
             helper.make_tensor("s", TensorProto.FLOAT, [], [scale]),
             helper.make_tensor("shape", TensorProto.INT64, [2], [1, outputs])]
    graph = helper.make_graph(
        nodes, "vf", [helper.make_tensor_value_info("image", TensorProto.UINT8,
                                                    [1, frames, 4, 6, 3] if frames else [1, 4, 6, 3])],
        [helper.make_tensor_value_info("force", TensorProto.FLOAT, [1, outputs])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    helper.set_model_props(model, {METADATA_KEY: meta.to_json()})
    onnx.save(model, path)
    return path


def frame(value: int) -> np.ndarray:
    return np.full((4, 6, 3), value, np.uint8)


# --- contract and runtime -------------------------------------------------------------------

def test_frames_round_trip_in_the_contract_and_absent_for_single_frame_models():
    meta = vf_metadata(frames=20)
    back = ModelMetadata.from_json(meta.to_json())
    assert back.input.frames == 20 and back.input.shape == (1, 20, 4, 6, 3)
    single = ModelMetadata(task="grasp_success", input=InputSpec("image", 4, 6, 3, "rgb8"), outputs={"p": {}})
    assert '"frames"' not in single.to_json() and ModelMetadata.from_json(single.to_json()).input.frames is None
    bad = meta.to_json().replace('"frames": 20', '"frames": 0')
    with pytest.raises(ModelError, match="frames 0 outside"):
        ModelMetadata.from_json(bad, "m.onnx")


def test_runtime_runs_a_window_model_and_warms_up_with_a_blank_window(tmp_path):
    model = OnnxModel(build_vf(tmp_path / "m.onnx", vf_metadata()), "visual_force", providers=["cpu"])
    assert model.blank_input().shape == (1, 3, 4, 6, 3)
    window = np.stack([frame(10), frame(20), frame(30)])[None]
    out, state = model.run(window)
    assert state == {} and out["force"].tolist() == [[30.0]]


# --- frame window ------------------------------------------------------------------------------

def test_window_fills_then_slides_oldest_first():
    w = FrameWindow(3, max_gap=0.1)
    assert [w.push(frame(k), k / 30).ready for k in range(3)] == [False, False, True]
    assert w.push(frame(3), 3 / 30).ready
    assert w.window()[:, 0, 0, 0].tolist() == [1, 2, 3]
    assert sum(w.resets.values()) == 0


@pytest.mark.parametrize("stamp, image, reason", [
    (0.1 + 0.25, frame(9), "gap"),
    (0.1, frame(9), "backwards"),
    (0.05, frame(9), "backwards"),
    (0.1 + 1 / 30, np.zeros((8, 6, 3), np.uint8), "size"),
])
def test_a_broken_stream_restarts_the_window(stamp, image, reason):
    w = FrameWindow(3, max_gap=0.2)
    for k, t in enumerate((0.0, 0.05, 0.1)):
        w.push(frame(k), t)
    pushed = w.push(image, stamp)
    assert pushed.reset == reason and not pushed.ready and len(w) == 1
    assert w.resets == {reason: 1}
    with pytest.raises(ValueError, match="not full"):
        w.window()


def test_a_gap_just_under_the_limit_does_not_restart_and_manual_reset_is_counted():
    w = FrameWindow(2, max_gap=0.2)
    w.push(frame(0), 1.0)
    assert w.push(frame(1), 1.19).ready
    w.reset()
    assert len(w) == 0 and w.resets == {"manual": 1}
    assert not w.push(frame(2), 0.5).ready           # after a reset any stamp starts a new window


def test_window_rejects_bad_settings():
    with pytest.raises(ValueError):
        FrameWindow(0, 0.1)
    with pytest.raises(ValueError):
        FrameWindow(3, 0.0)


# --- estimator ---------------------------------------------------------------------------------

@pytest.mark.parametrize("axis, expected", [("-z", [0, 0, -1]), ("x", [1, 0, 0]), ("+y", [0, 1, 0])])
def test_press_axis(axis, expected):
    assert press_vector(axis).tolist() == expected


def test_press_axis_typo_is_an_error():
    with pytest.raises(ValueError, match="press_axis"):
        press_vector("up")


def test_estimator_puts_a_press_force_on_the_press_axis(tmp_path):
    model = OnnxModel(build_vf(tmp_path / "m.onnx", vf_metadata()), "visual_force", providers=["cpu"])
    est = VisualForceEstimator(model, "-z")
    force = est.estimate(np.stack([frame(1), frame(2), frame(7)]))
    assert force.tolist() == [0.0, 0.0, -7.0]
    with pytest.raises(ValueError, match="takes 3 frames"):
        est.estimate(np.stack([frame(1), frame(2)]))


def test_estimator_passes_three_axes_through(tmp_path):
    model = OnnxModel(build_vf(tmp_path / "m.onnx", vf_metadata(outputs=3), outputs=3), "visual_force",
                      providers=["cpu"])
    assert VisualForceEstimator(model, "-z").estimate(np.stack([frame(5)] * 3)).tolist() == [5.0, 5.0, 5.0]


def test_non_finite_output_is_rejected(tmp_path):
    model = OnnxModel(build_vf(tmp_path / "m.onnx", vf_metadata(), scale=float("inf")), "visual_force",
                      providers=["cpu"])
    with pytest.raises(NonFiniteOutput):
        VisualForceEstimator(model).estimate(np.stack([frame(5)] * 3))


def test_estimator_refuses_a_model_without_frames_or_of_another_task(tmp_path):
    with pytest.raises(ModelError, match="this is a 'tactile_force' model"):
        OnnxModel(build_vf(tmp_path / "a.onnx", vf_metadata(task="tactile_force")), "visual_force", providers=["cpu"])
    meta = ModelMetadata(task="visual_force", input=InputSpec("image", 4, 6, 3, "rgb8"),
                         outputs={"force": {"shape": [1, 1]}})
    single = OnnxModel(build_vf(tmp_path / "b.onnx", meta, frames=None), "visual_force", providers=["cpu"])
    with pytest.raises(ValueError, match="needs input.frames"):
        VisualForceEstimator(single)


# --- synthetic scenes ----------------------------------------------------------------------------

def test_contact_model_is_hertz_like_with_a_viscous_term_and_cup_buckling():
    d = np.linspace(0, 4, 41)
    slow = scenes.contact_force("box", d, k=2.0, c=0.0)
    np.testing.assert_allclose(slow, 2.0 * d ** 1.5)
    fast = scenes.contact_force("box", d, k=2.0, c=1.0)
    assert (fast[1:] > slow[1:]).all()               # pressing in: the viscous term adds force
    released = scenes.contact_force("box", d[::-1], k=2.0, c=1.0)
    assert (released[:-1] < slow[::-1][:-1]).all()   # releasing: less force than static
    cup = scenes.contact_force("cup", d, k=1.0, c=0.0, buckle=2.0)
    before, after = cup[d <= 2.0], cup[d > 2.0]
    assert after[0] < before[-1]                      # the wall gives way past the buckling depth


def test_episode_force_follows_the_press_and_frames_change_with_depth():
    ep = scenes.make_episode("sponge", 20, 550, np.random.default_rng(0), frames=50)
    assert ep.images.shape == (50, 128, 128, 3) and ep.images.dtype == np.uint8
    assert ep.force[0] == 0 and ep.force[-1] == 0 and ep.force.max() > 1.0
    peak = int(np.argmax(ep.depth))
    np.testing.assert_allclose(np.linalg.norm(ep.force3, axis=1), ep.force, rtol=1e-5)
    assert ep.force3[peak, 0] > 0 and ep.force3[peak, 2] < 0      # 20 deg: pushes right and down
    import cv2
    smooth = [cv2.blur(ep.images[k].astype(np.float32), (7, 7)) for k in (0, 1, peak)]
    rest = np.abs(smooth[1] - smooth[0]).max()
    pressed = np.abs(smooth[2] - smooth[0]).max()
    assert pressed > 5 * rest                          # the dent shows well above sensor noise


def test_illumination_levels_change_brightness():
    means = [scenes.make_episode("box", 0, lux, np.random.default_rng(1), frames=8).images.mean()
             for lux in scenes.ILLUMINATIONS]
    assert means[0] < means[1] < means[2]


def test_folders_round_trip_in_the_seed_layout(tmp_path):
    eps = scenes.generate(scenes.SceneConfig(width=32, height=32, objects=("cup", "tube"), degrees=(0, 30),
                                             illuminations=(350,), episodes_per_cell=2, frames_range=(6, 8)))
    n = scenes.write_folders(tmp_path, eps)
    assert n == sum(len(e) for e in eps)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cup_0_350", "cup_30_350", "tube_0_350", "tube_30_350"]
    back = scenes.read_folders(tmp_path)
    assert len(back) == len(eps)
    by_cell = {}
    for e in back:
        by_cell.setdefault(e.cell, []).append(e)
    for e in eps:
        match = [b for b in by_cell[e.cell] if len(b) == len(e) and np.array_equal(b.images, e.images)]
        assert match, e.cell
        np.testing.assert_allclose(match[0].force, e.force, atol=1e-4)
        np.testing.assert_allclose(match[0].force3, e.force3, atol=1e-4)


def test_folder_reader_names_the_problem(tmp_path):
    (tmp_path / "not-a-cell").mkdir()
    with pytest.raises(ValueError, match="not \\[object\\]_\\[degree\\]_\\[illumination\\]"):
        scenes.read_folders(tmp_path)
    (tmp_path / "not-a-cell").rmdir()
    (tmp_path / "cup_10_350").mkdir()
    with pytest.raises(ValueError, match="no labels.csv"):
        scenes.read_folders(tmp_path)
