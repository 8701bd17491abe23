"""The rig's static frames (config/frames.yaml): what the launch files publish on /tf_static."""
import math
from pathlib import Path

import numpy as np
import pytest

from tacforce_ros.frames import FramesError, StaticFrame, load_frames

ROOT = Path(__file__).resolve().parent.parent


def rotation(rpy):
    """R = Rz(yaw) Ry(pitch) Rx(roll): rotations about the parent's fixed x, then y, then z."""
    (cr, sr), (cp, sp), (cy, sy) = ((math.cos(a), math.sin(a)) for a in rpy)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def quaternion_matrix(q):
    x, y, z, w = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def test_quaternion_is_the_fixed_axis_roll_pitch_yaw_rotation():
    rng = np.random.default_rng(0)
    for rpy in rng.uniform(-math.pi, math.pi, (50, 3)):
        frame = StaticFrame("a", "b", (0.0, 0.0, 0.0), tuple(rpy))
        q = np.array(frame.quaternion())
        assert np.linalg.norm(q) == pytest.approx(1.0)
        np.testing.assert_allclose(quaternion_matrix(q), rotation(rpy), atol=1e-12)


def test_shipped_frames_place_the_sensors_and_the_camera():
    frames = {f.child: f for f in load_frames(ROOT / "config" / "frames.yaml")}
    assert frames["ft_sensor"].parent == "base" and frames["tactile_sensor"].parent == "ft_sensor"
    camera = frames["camera_color_optical_frame"]
    forward = rotation(camera.rpy) @ [0, 0, 1]  # optical z: the way the camera looks
    np.testing.assert_allclose(forward, [0, 0, -1], atol=1e-12)  # straight down at the table
    args = camera.publisher_arguments()
    assert args[args.index("--frame-id") + 1] == "base"
    assert args[args.index("--child-frame-id") + 1] == "camera_color_optical_frame"
    assert float(args[args.index("--z") + 1]) == camera.xyz[2]


def test_tactile_model_predicts_in_a_published_frame():
    """The shipped model's force frame (its training wrenches' frame_id) is on /tf_static."""
    from tacforce_ros.inference.contract import TACTILE_FORCE
    from tacforce_ros.inference.runtime import OnnxModel
    model = OnnxModel(str(ROOT / "models" / "tactile_force.onnx"), TACTILE_FORCE)
    frame_id = model.metadata.outputs["force"]["frame_id"]
    children = {f.child for f in load_frames(ROOT / "config" / "frames.yaml")}
    assert frame_id in children


BAD = {
    "millimetres": ("frames: [{parent: base, child: s, xyz: [400, 0, 20], rpy: [0, 0, 0]}]", "give metres"),
    "degrees": ("frames: [{parent: base, child: s, xyz: [0, 0, 0], rpy: [180, 0, 0]}]", "give radians"),
    "nan": ("frames: [{parent: base, child: s, xyz: [.nan, 0, 0], rpy: [0, 0, 0]}]", "three finite numbers"),
    "bool": ("frames: [{parent: base, child: s, xyz: [true, 0, 0], rpy: [0, 0, 0]}]", "three finite numbers"),
    "two values": ("frames: [{parent: base, child: s, xyz: [0, 0], rpy: [0, 0, 0]}]", "three finite numbers"),
    "missing key": ("frames: [{parent: base, child: s, xyz: [0, 0, 0]}]", "expected the keys"),
    "extra key": ("frames: [{parent: a, child: s, xyz: [0, 0, 0], rpy: [0, 0, 0], yaw: 1}]", "expected the keys"),
    "leading slash": ("frames: [{parent: /base, child: s, xyz: [0, 0, 0], rpy: [0, 0, 0]}]", "not a frame name"),
    "own parent": ("frames: [{parent: s, child: s, xyz: [0, 0, 0], rpy: [0, 0, 0]}]", "its own parent"),
    "two parents": ("frames: [{parent: a, child: s, xyz: [0, 0, 0], rpy: [0, 0, 0]},"
                    " {parent: b, child: s, xyz: [0, 0, 0], rpy: [0, 0, 0]}]", "two parents"),
    "loop": ("frames: [{parent: a, child: b, xyz: [0, 0, 0], rpy: [0, 0, 0]},"
             " {parent: b, child: a, xyz: [0, 0, 0], rpy: [0, 0, 0]}]", "form a loop"),
    "not a list": ("frames: {parent: a}", "expected a list"),
    "not yaml": ("frames: [unclosed", "cannot read frames"),
    "python tag": ("frames: !!python/object/apply:os.system ['true']", "cannot read frames"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_frames_file_is_refused_naming_file_and_entry(tmp_path, case):
    text, expected = BAD[case]
    path = tmp_path / "frames.yaml"
    path.write_text(text)
    with pytest.raises(FramesError) as err:
        load_frames(path)
    assert str(err.value).startswith(str(path)) and expected in str(err.value)


def test_a_missing_frames_file_names_it(tmp_path):
    with pytest.raises(FramesError, match="frames.yaml: cannot read frames"):
        load_frames(tmp_path / "frames.yaml")
