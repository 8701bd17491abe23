"""GelSight-type simulator: photometric images on the marker simulator's contact mechanics."""

from dataclasses import replace

import cv2
import numpy as np
import pytest

from tacforce_ros.data.tactile_pairs import load_tactile_pairs
from tacforce_ros.sim.gelsight import (GELSIGHT_STYLES, GelSightSimulator, GelSightStyle, calibration_dir,
                                       load_calibration)
from tacforce_ros.sim.sensors import SimConfig, SimulatedSensors, write_sim_bag
from tacforce_ros.sim.tactile import TactileSimulator
from tacforce_ros.sim.tactile_styles import SENSOR_STYLES

MINI = GELSIGHT_STYLES["gelsight_mini"]
# noiseless, marker-less and without a unit's colour deviation: the image is the shading alone
PLAIN = replace(MINI, noise_std=0.0, unit_gain_std=0.0, unit_offset_std=0.0, marker_spacing_mm=0.0)
GRID = 48  # coarser than the node's 64 to keep the tests fast; the pipeline is the same


def _sim(style: GelSightStyle = PLAIN, seed: int = 0) -> GelSightSimulator:
    return GelSightSimulator(style, grid=GRID, seed=seed)


def _change(sim: GelSightSimulator, image: np.ndarray) -> np.ndarray:
    """Per-pixel largest channel change from the untouched gel, grey levels."""
    return np.abs(image.astype(int) - sim.render(None).astype(int)).max(axis=2)


def test_styles_are_registered_with_their_calibrations():
    assert {"gelsight_mini", "gelsight_r15"} <= set(GELSIGHT_STYLES)
    assert not set(GELSIGHT_STYLES) & set(SENSOR_STYLES)
    assert GELSIGHT_STYLES["gelsight_r15"].calibration == "gelsight"
    assert MINI.marker_spacing_mm > 0 and GELSIGHT_STYLES["gelsight_r15"].marker_spacing_mm == 0
    calib = load_calibration("gelsight_mini")
    assert calib.pixmm == pytest.approx(0.0295) and (calib.width, calib.height) == (640, 480)
    # the image spans the calibrated field of view: 640 x 480 px at 0.0295 mm/px
    assert MINI.pad_width_mm == pytest.approx(18.88) and MINI.pad_height_mm == pytest.approx(14.16)
    assert (MINI.width, MINI.height) == (320, 240)
    assert MINI.px_per_mm == pytest.approx(0.5 / 0.0295)


def test_untouched_gel_is_the_processed_background():
    sim = _sim()
    calib = load_calibration("gelsight_mini")
    expected = cv2.resize(calib.background, (320, 240), interpolation=cv2.INTER_AREA) * 255.0
    image = sim.render(None)
    assert image.shape == (240, 320, 3) and image.dtype == np.uint8
    assert np.abs(image - expected).max() <= 1.0
    # ...which is the calibration's real no-contact frame (stored BGR), lightly blurred
    with np.load(calibration_dir("gelsight_mini") / "dataPack.npz") as data:
        f0_rgb = cv2.resize(data["f0"], (320, 240), interpolation=cv2.INTER_AREA)[:, :, ::-1]
    assert np.abs(image.astype(float) - f0_rgb).mean() < 3.0
    assert image[:, :, 0].mean() < image[:, :, 2].mean() - 20  # the Mini's gel looks blue
    # out of contact (the indenter above the gel) renders the same
    assert np.array_equal(sim.render(sim.contact("sphere", 0.0, 0.0, -1e-4)), image)
    noisy = _sim(replace(PLAIN, noise_std=3.0)).render(None).astype(float)
    assert abs(float((noisy - image).mean())) < 0.2
    assert 2.0 < float((noisy - image).std()) < 4.0


def test_deeper_press_changes_more_pixels_more_strongly():
    sim = _sim()
    changes = [_change(sim, sim.render(sim.contact("sphere", 0.0, 0.0, d))) for d in (0.4e-3, 0.9e-3, 1.5e-3)]
    touched = [int(np.count_nonzero(c > 8)) for c in changes]
    totals = [float(c.sum()) for c in changes]
    assert 0 < touched[0] < touched[1] < touched[2]
    assert totals[0] < totals[1] < totals[2]
    assert changes[0].max() > 20


def _centroid(weights: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(weights)
    w = weights[rows, cols]
    return np.array([np.average(cols, weights=w), np.average(rows, weights=w)])


def test_sphere_spot_is_round_and_follows_the_indenter():
    sim = _sim()
    background = sim.render(None).astype(float)
    spots = {}
    for x, y in ((0.0, 0.0), (2e-3, -1e-3)):
        state = sim.contact("sphere", x, y, 1e-3)
        centre = np.array([(320 - 1) / 2 + x * sim.px_per_m, (240 - 1) / 2 + y * sim.px_per_m])
        indentation, _ = sim.surface(state)  # the shape the camera sees: centred on the indenter
        assert np.allclose(_centroid(indentation * (indentation > 0.5 * indentation.max())), centre, atol=0.5)
        change = np.linalg.norm(sim.render(state) - background, axis=2)
        spots[(x, y)] = _centroid((change > 15).astype(float))
        # the lights shade the dent unevenly, but the changed spot is centred and round
        assert np.allclose(spots[(x, y)], centre, atol=8.0)
        reach = np.arange(110)
        extents = []
        for angle in np.deg2rad(np.arange(0, 360, 45)):
            cols = np.clip(np.rint(centre[0] + reach * np.cos(angle)).astype(int), 0, 319)
            rows = np.clip(np.rint(centre[1] + reach * np.sin(angle)).astype(int), 0, 239)
            extents.append(reach[change[rows, cols] > 8].max())
        assert max(extents) < 1.2 * np.median(extents) and min(extents) > 0.8 * np.median(extents)
    moved = spots[(2e-3, -1e-3)] - spots[(0.0, 0.0)]
    expected = np.array([2e-3, -1e-3]) * sim.px_per_m
    assert np.linalg.norm(moved - expected) < 0.3 * np.linalg.norm(expected)


def test_channels_respond_differently_to_the_gradient_direction():
    sim = _sim()
    delta = sim.render(sim.contact("sphere", 0.0, 0.0, 1e-3)).astype(float) - sim.render(None)
    centre = np.array([(320 - 1) / 2, (240 - 1) / 2])
    radius = 0.7 * np.sqrt(6e-3 * 1e-3) * sim.px_per_m  # inside the contact, a = sqrt(R d)
    angles = np.deg2rad(np.arange(0, 360, 45))
    samples = np.array([delta[int(round(centre[1] + radius * np.sin(a))), int(round(centre[0] + radius * np.cos(a)))]
                        for a in angles])  # (angles, RGB)
    assert np.ptp(samples, axis=0).min() > 15  # every channel varies around the dent
    correlation = np.corrcoef(samples.T)
    assert correlation[np.triu_indices(3, 1)].min() < 0.5  # ...and not in step with the others


def test_force_is_the_marker_simulators():
    gel = _sim(MINI)
    marker = TactileSimulator(replace(SENSOR_STYLES["array1"], pad_width_mm=MINI.pad_width_mm,
                                      pad_height_mm=MINI.pad_height_mm, youngs_modulus_pa=MINI.youngs_modulus_pa,
                                      poisson=MINI.poisson, friction=MINI.friction), grid=GRID)
    for args in (("sphere", 0.0, 0.0, 1e-3, (0.0, 0.0)), ("cube", 2e-3, 1e-3, 0.8e-3, (3e-4, -2e-4))):
        expected = marker.contact(*args).force
        assert expected[2] < 0
        assert np.allclose(gel.contact(*args).force, expected, rtol=1e-9, atol=1e-12)
        assert np.allclose(gel.force(*args), expected, rtol=0.02, atol=0.01)


def test_shear_moves_the_spot_and_the_markers():
    sim = _sim(replace(MINI, noise_std=0.0))
    still = sim.contact("sphere", 0.0, 0.0, 1e-3)
    sheared = sim.contact("sphere", 0.0, 0.0, 1e-3, (4e-4, 0.0))
    assert sheared.force[0] > 0
    indentation, shift = sim.surface(sheared)
    dent = sim.surface(still)[0]
    spot_still = _centroid(dent * (dent > 0.5 * dent.max()))
    spot_sheared = _centroid(indentation * (indentation > 0.5 * indentation.max()))
    assert spot_sheared[0] - spot_still[0] > 0.5 * 4e-4 * sim.px_per_m  # a stuck contact moves with the indenter
    assert abs(spot_sheared[1] - spot_still[1]) < 0.5
    assert shift[0].max() > 0 and abs(shift[1]).max() < shift[0].max()
    # dark markers: darker pixels move towards +x
    dark_still, dark_sheared = (_dark(sim.render(state)) for state in (still, sheared))
    assert dark_still.any() and not np.array_equal(dark_still, dark_sheared)
    centre = np.array([(320 - 1) / 2, (240 - 1) / 2])
    inside = [m for m in sim.reference_marker_xy if np.linalg.norm(m - centre) < 30]  # in the contact
    assert inside
    for col, row in np.rint(inside).astype(int):
        window = (slice(row - 12, row + 13), slice(col - 12, col + 13))
        moved = _centroid(dark_sheared[window].astype(float)) - _centroid(dark_still[window].astype(float))
        assert moved[0] > 0.5 * 4e-4 * sim.px_per_m and abs(moved[1]) < 1.0


def _dark(image: np.ndarray) -> np.ndarray:
    brightness = image.astype(float).sum(axis=2)
    return brightness < 0.5 * np.median(brightness)


def test_seed_sets_the_unit_and_the_noise():
    state = _sim(MINI).contact("cube", 0.0, 0.0, 1e-3)
    a, b, c = (_sim(MINI, seed).render(state) for seed in (3, 3, 4))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    # different units differ in colour, not only in noise
    assert np.abs(a.reshape(-1, 3).mean(0) - c.reshape(-1, 3).mean(0)).max() > 1.0


@pytest.mark.parametrize("bad, message", [
    (dict(calibration="digit"), "calibration"),
    (dict(width=8), "image size"),
    (dict(poisson=0.5), "poisson"),
    (dict(youngs_modulus_pa=0.0), "youngs_modulus_pa"),
    (dict(noise_std=-1.0), "noise_std"),
    (dict(colour_gain=(1.0, 0.0, 1.0)), "colour_gain"),
    (dict(marker_darkness=1.5), "marker_darkness"),
    (dict(marker_spacing_mm=0.3, marker_radius_mm=0.25), "diameter"),
])
def test_bad_style_parameters_raise(bad, message):
    with pytest.raises(ValueError, match=message):
        replace(MINI, **bad)


def test_unknown_style_is_refused_by_the_sim_config():
    with pytest.raises(ValueError, match="gelsight_mini"):
        SimConfig(style="gelsight_nano").validate()


@pytest.mark.parametrize("compressed", [True, False])
def test_bag_reads_back_as_rgb_frames_with_forces(tmp_path, compressed):
    config = SimConfig(style="gelsight_mini", indenters=("sphere",), positions=1, depths=(0.001,), shear_points=2,
                       wrench_rate=500.0, grid=GRID, seed=5)
    write_sim_bag(tmp_path / "bag", config, compressed=compressed, max_seconds=2.0, progress=False)
    topic = "/tactile/image_raw" + ("/compressed" if compressed else "")
    pairs = load_tactile_pairs(tmp_path / "bag", topic, "/ft_sensor/wrench", "/tactile/episode")
    sequences = pairs.sequences
    images = np.concatenate([s.images for s in sequences])
    forces = np.concatenate([s.forces for s in sequences])
    assert {s.encoding for s in sequences} == {"rgb8"}
    assert images.shape == (61, 240, 320, 3) and images.dtype == np.uint8
    assert forces[:, 2].min() < -0.3  # pressed
    assert np.abs(forces[0]).max() < 0.05  # at rest
    # the first frame is the sensor's first image, channels in RGB order
    first, _ = SimulatedSensors(config).image(0.0)
    assert np.array_equal(images[0], first)
    assert images[0, :, :, 0].mean() < images[0, :, :, 2].mean() - 20  # still RGB: the blue gel


def test_split_configs_test_forces_beyond_the_training_range():
    """config/sim_gelsight_{train,test}.yaml: unseen shapes pressed to >= 1.75x the training |Fz|."""
    from tacforce_ros.paths import SOURCE_ROOT
    from tacforce_ros.sim.indentation import corner_positions
    from tacforce_ros.sim.indenter_shapes import SEEN_INDENTERS, UNSEEN_INDENTERS
    train, test = (SimConfig.from_yaml(SOURCE_ROOT / "config" / f"sim_gelsight_{split}.yaml")
                   for split in ("train", "test"))
    assert set(train.indenters) == set(SEEN_INDENTERS) and set(test.indenters) == set(UNSEEN_INDENTERS)
    assert train.style == test.style == "gelsight_mini" and train.seed != test.seed
    assert train.wrench_rate == test.wrench_rate == 500.0
    sim = GelSightSimulator(GELSIGHT_STYLES[train.style], grid=train.grid)

    def max_force(config: SimConfig) -> float:
        return max(-sim.contact(name, x, y, max(config.depths)).force[2] for name in config.indenters
                   for x, y in corner_positions(config.position_step)[: config.positions])
    assert max_force(test) >= 1.75 * max_force(train)
