"""Cross-sensor transfer data: marker segmentation, paired masks, material curves, compensation."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from tacforce_ros.bags import (
    STRING,
    WRENCH,
    BagWriter,
    episode_message_json,
)
from tacforce_ros.data.tactile_pairs import load_tactile_pairs
from tacforce_ros.marker_pairs import MarkerPairs, first_frame, pairs_from_bags
from tacforce_ros.material import Compensation, MaterialCurve, fit_material_curve
from tacforce_ros.perception.markers import (
    MarkerSegmentation,
    marker_centroids,
    marker_spacing_px,
    mask_iou,
    match_centroids,
)
from tacforce_ros.sim.paired_contacts import render_paired_contacts
from tacforce_ros.sim.sensors import SimConfig, write_sim_bag
from tacforce_ros.sim.tactile import TactileSimulator
from tacforce_ros.sim.tactile_styles import SENSOR_STYLES
from tacforce_training.preprocess import ImagePreprocess
from tacforce_training.tasks.transfer.translate import masks_to_images, translate_sequences

TOPICS = ("/tactile/image_raw/compressed", "/ft_sensor/wrench", "/tactile/episode")


def dots(centres, radius=4, shape=(120, 160), bright=True):
    image = np.full(shape, 30 if bright else 220, np.uint8)
    for c in centres:
        cv2.circle(image, (int(c[0]), int(c[1])), radius, 230 if bright else 20, -1)
    return image


@pytest.mark.parametrize("bright", [True, False])
def test_segmentation_finds_markers_of_either_polarity(bright):
    grid = [(x, y) for x in range(20, 160, 20) for y in range(20, 120, 20)]
    image = dots(grid, bright=bright)
    seg = MarkerSegmentation.from_reference(image)
    assert seg.dark_markers is not bright and 30 < seg.threshold < 220
    mask = seg.mask(image)
    assert len(marker_centroids(mask)) == len(grid)
    assert marker_spacing_px(mask) == pytest.approx(20, abs=0.5)
    back = masks_to_images(mask[None], seg)  # translated masks drawn in the sensor's polarity
    assert back.shape == (1, 120, 160, 1) and np.array_equal(seg.mask(back[0]), mask)
    with pytest.raises(ValueError, match="no contrast"):
        MarkerSegmentation.from_reference(np.full((8, 8), 7, np.uint8))


def test_iou_and_centroid_matching():
    a = dots([(40, 40), (80, 40)]) > 128
    b = dots([(43, 40), (80, 40), (140, 100)]) > 128
    assert mask_iou(a, a) == 1.0 and 0.3 < mask_iou(a, b) < 0.6
    match = match_centroids(marker_centroids(b), marker_centroids(a), max_distance_px=10)
    assert (match.matched, match.predicted, match.expected) == (2, 3, 2)
    assert match.mean_error_px == pytest.approx(1.5, abs=0.2) and match.matched_fraction == 1.0
    assert match_centroids(marker_centroids(b), marker_centroids(a), max_distance_px=1).matched == 1


def test_in_graph_segmentation_matches_numpy():
    image = dots([(30, 30), (60, 50)], bright=False, shape=(96, 96))
    seg = MarkerSegmentation.from_reference(image)
    pre = ImagePreprocess(32, marker_threshold=seg.threshold, dark_markers=seg.dark_markers, mean=0.0, std=1.0)
    out = pre(torch.from_numpy(image[None, :, :, None]))
    expected = cv2.resize(seg.mask(image).astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
    assert np.allclose(out[0, 0].numpy(), expected, atol=1e-6) and expected.max() == 1.0
    assert "marker mask (grey <=" in pre.describe(96, 96)


def test_paired_contacts_render_the_same_contact_on_every_style(tmp_path):
    pairs = render_paired_contacts(["array1", "tactip1"], ("sphere",), contacts=2, frames_per_contact=2,
                                   grid=16, progress=False)
    assert len(pairs) == 4 and pairs.segmentation["tactip1"].dark_markers
    assert not pairs.segmentation["array1"].dark_markers
    a, t = pairs.masks_of("array1"), pairs.masks_of("tactip1")
    assert a.shape == t.shape == (4, 480, 640)
    assert mask_iou(a[0], t[0]) < 0.3  # different marker layouts
    assert mask_iou(a[0], pairs.references["array1"]) < 1.0  # the contact moved markers
    pairs.save(tmp_path / "p.npz")
    loaded = MarkerPairs.load(tmp_path / "p.npz")
    assert loaded.contacts == pairs.contacts and np.array_equal(loaded.masks_of("tactip1"), t)
    assert loaded.segmentation == pairs.segmentation
    train, val = loaded.split(0.25)
    assert (len(train), len(val)) == (3, 1)
    with pytest.raises(ValueError, match="no sensor 'gelsight'"):
        loaded.masks_of("gelsight")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz: not a marker-pairs file"):
        MarkerPairs.load(tmp_path / "bad.npz")


def test_pairs_from_two_runs_of_the_same_script(tmp_path):
    for style in ("array1", "diamond1"):
        config = SimConfig(style=style, indenters=("sphere",), positions=1, depths=(0.001,), shear_points=2,
                           image_rate=10.0, wrench_rate=200.0, grid=16)
        write_sim_bag(tmp_path / style, config, max_seconds=6.0, progress=False)
    pairs = pairs_from_bags(tmp_path / "array1", tmp_path / "diamond1", ("array1", "diamond1"), *TOPICS,
                            frames_per_episode=3)
    assert len(pairs) == 3 and all(c.startswith("episode 0") for c in pairs.contacts)
    reference = pairs.segmentation["diamond1"].mask(first_frame(tmp_path / "diamond1", TOPICS[0]))
    assert np.array_equal(pairs.references["diamond1"], reference)
    for name in ("array1", "diamond1"):  # the same contacts: both sensors deformed
        assert min(mask_iou(m, pairs.references[name]) for m in pairs.masks_of(name)) < 0.97


def write_material_run(path, stiffness, surface_z=0.2):
    """Write a straight press and release: pose z at 50 Hz, |Fz| = stiffness * (d + d^2) (mm), wrench 500 Hz."""
    def depth(t):  # 0 -> 1.5 mm in 1 s, back in 1 s
        return 1.5 * (t if t < 1 else 2 - t)

    with BagWriter(path) as writer:
        types = writer.typestore.types
        writer.add_topic("/tcp_pose", "geometry_msgs/msg/PoseStamped")
        writer.add_topic("/ft_sensor/wrench", WRENCH)
        writer.add_topic("/tactile/episode", STRING)

        def header(ns):
            return types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=ns // 10**9,
                                                nanosec=ns % 10**9), frame_id="base")
        for phase, start in (("press", 0.0), ("release", 1.0)):
            ns = round(start * 1e9) + 1
            writer.write_msg("/tactile/episode", ns, types["std_msgs/msg/String"](data=episode_message_json(
                stamp_ns=ns, episode=0, indenter="sphere", position_id=0, depth_m=0.0015, phase=phase)))
        vec = types["geometry_msgs/msg/Vector3"]
        for k in range(1001):
            t, ns = k / 500, k * 2_000_000
            d = depth(t)
            force = vec(x=0.0, y=0.0, z=-stiffness * (d + d * d))
            wrench = types["geometry_msgs/msg/Wrench"](force=force, torque=vec(x=0.0, y=0.0, z=0.0))
            writer.write_msg("/ft_sensor/wrench", ns, types[WRENCH](header=header(ns), wrench=wrench))
            if k % 10 == 0:
                point = types["geometry_msgs/msg/Point"](x=0.4, y=0.1, z=surface_z - d * 1e-3)
                quaternion = types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0)
                pose = types["geometry_msgs/msg/Pose"](position=point, orientation=quaternion)
                writer.write_msg("/tcp_pose", ns, types["geometry_msgs/msg/PoseStamped"](header=header(ns), pose=pose))


def test_material_curve_fit_and_compensation(tmp_path):
    write_material_run(tmp_path / "stiff", 1.0)
    write_material_run(tmp_path / "soft", 0.125)
    stiff = fit_material_curve(tmp_path / "stiff", 0.2, "stiff", degree=3)
    assert stiff.loading == pytest.approx((1.0, 1.0, 0.0), abs=1e-6)
    assert stiff.samples["loading"] > 40 and stiff.samples["unloading"] > 40
    stiff.save(tmp_path / "stiff.json")
    assert MaterialCurve.load(tmp_path / "stiff.json") == stiff
    soft = fit_material_curve(tmp_path / "soft", 0.2, "soft", degree=2)
    depth = np.array([0.3, 1.0, 2.0])  # 2 mm is beyond the run: linear extrapolation
    assert stiff.depth(stiff.force(depth)) == pytest.approx(depth, abs=1e-3)
    forces = np.zeros((4, 3))
    forces[:, 2] = -stiff.force(np.array([0.0, 0.2, 1.0, 1.4]))
    forces[:, 0] = 0.1
    phases = ["press", "shear_out", "release", "press"]
    scaled = Compensation(stiff, soft).apply(forces, phases)
    assert scaled[1:] == pytest.approx(forces[1:] * 0.125, rel=1e-3)
    half = Compensation(stiff, soft, depth_threshold_mm=0.5, weight=0.5).scale(forces, phases)
    assert half == pytest.approx([1.0, 1.0, 0.5625, 0.5625], rel=1e-3)
    with pytest.raises(ValueError, match="is surface_z"):
        fit_material_curve(tmp_path / "stiff", 0.1, "stiff")  # the TCP never goes below 0.1 m
    (tmp_path / "bad.json").write_text(json.dumps({"sensor": "x"}))
    with pytest.raises(ValueError, match="bad.json: not a material curve file"):
        MaterialCurve.load(tmp_path / "bad.json")


class ShiftTranslator:
    """Stands in for an m2m model: 'translates' by shifting the masks two pixels right."""

    source_name, target_name = "a", "b"

    def translate(self, masks, steps=1):
        return np.roll(masks, 2, axis=2)


def test_translate_sequences_keeps_stamps_and_rescales_labels(tmp_path):
    config = SimConfig(indenters=("sphere",), positions=1, depths=(0.001,), shear_points=1, image_rate=10.0,
                       wrench_rate=200.0, grid=16)
    write_sim_bag(tmp_path / "run", config, max_seconds=4.0, progress=False)
    sequences = load_tactile_pairs(tmp_path / "run", *TOPICS).sequences
    source = MarkerSegmentation.from_reference(first_frame(tmp_path / "run", TOPICS[0]))
    target = MarkerSegmentation(100.0, dark_markers=True)
    write_material_run(tmp_path / "stiff", 1.0)
    write_material_run(tmp_path / "soft", 0.25)
    curves = [fit_material_curve(tmp_path / n, 0.2, n) for n in ("stiff", "soft")]
    out = translate_sequences(sequences, source, ShiftTranslator(), target, Compensation(*curves), progress=False)
    for before, after in zip(sequences, out):
        assert np.array_equal(before.stamps_ns, after.stamps_ns) and after.images.shape == before.images.shape
        expected = np.roll(np.stack([source.mask(i) for i in before.images]), 2, axis=2)
        assert np.array_equal(np.stack([target.mask(i) for i in after.images]), expected)
        touching = np.abs(before.forces[:, 2]) > 0.05
        assert after.forces[touching] == pytest.approx(before.forces[touching] * 0.25, rel=0.05, abs=2e-3)
    assert any(np.abs(s.forces[:, 2]).max() > 0.05 for s in sequences)


def test_a_softer_sensor_shows_the_same_markers_at_a_fraction_of_the_force():
    """Why material compensation is needed: at one depth the images agree, the forces do not."""
    stiff = TactileSimulator(SENSOR_STYLES["diamond1"], grid=32)
    soft = TactileSimulator(SENSOR_STYLES["diamond1_soft"], grid=32)
    a, b = (sim.contact("sphere", 0.001, 0.0, 0.001, (0.0003, 0.0)) for sim in (stiff, soft))
    assert np.allclose(a.marker_xy, b.marker_xy, atol=1e-6)
    assert b.force == pytest.approx(a.force / 8, rel=1e-6)
