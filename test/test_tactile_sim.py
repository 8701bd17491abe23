"""Physics and rendering checks of the half-space marker sensor simulator."""
import math
from dataclasses import replace

import numpy as np
import pytest

from tacforce_ros.sim.indenter_shapes import INDENTERS, SEEN_INDENTERS, UNSEEN_INDENTERS
from tacforce_ros.sim.tactile import TactileSimulator
from tacforce_ros.sim.tactile_styles import SENSOR_STYLES

STYLE = SENSOR_STYLES["array1"]
E_STAR = STYLE.contact_modulus_pa


@pytest.fixture(scope="module")
def sim():
    return TactileSimulator(STYLE, grid=64, seed=0)


def test_catalogue():
    assert {"array1", "array2", "circle1", "diamond1", "array1_soft"} <= set(SENSOR_STYLES)
    assert SENSOR_STYLES["array1_soft"].youngs_modulus_pa == pytest.approx(STYLE.youngs_modulus_pa / 8)
    assert len(INDENTERS) >= 10
    assert UNSEEN_INDENTERS == ("sphere_s", "triangle", "pacman", "cone", "wave", "torus")
    assert len(SEEN_INDENTERS) >= 5
    assert set(SEEN_INDENTERS) | set(UNSEEN_INDENTERS) == set(INDENTERS)
    assert not set(SEEN_INDENTERS) & set(UNSEEN_INDENTERS)


@pytest.mark.parametrize("name", sorted(INDENTERS))
def test_indenter_profile_touches_at_zero(name):
    axis = np.linspace(-8e-3, 8e-3, 801)
    x, y = np.meshgrid(axis, axis)
    height = INDENTERS[name].height(x, y)
    assert height.min() == pytest.approx(0.0, abs=2e-6)
    assert height.min() >= 0.0


@pytest.mark.parametrize("name", sorted(INDENTERS))
def test_force_grows_with_depth(sim, name):
    depths = np.array([0.3, 0.6, 0.9, 1.2, 1.5]) * 1e-3
    forces = [-sim.contact(name, 1e-3, -0.5e-3, d).force[2] for d in depths]
    assert forces[0] > 0
    assert np.all(np.diff(forces) > 0)


def test_sphere_follows_hertz(sim):
    radius = 6e-3
    depths = np.linspace(0.3e-3, 1.5e-3, 7)  # contact radius 1.3..3 mm, well inside the pad
    forces = np.array([-sim.contact("sphere", 0.0, 0.0, d).force[2] for d in depths])
    exponent = np.polyfit(np.log(depths), np.log(forces), 1)[0]
    assert exponent == pytest.approx(1.5, abs=0.1)
    hertz = 4.0 / 3.0 * E_STAR * math.sqrt(radius) * depths ** 1.5
    np.testing.assert_allclose(forces, hertz, rtol=0.2)
    areas = [sim.contact("sphere", 0.0, 0.0, d).contact_area for d in depths]
    np.testing.assert_allclose(areas, math.pi * radius * depths, rtol=0.1)


def test_flat_punch_is_linear(sim):
    depths = np.array([0.2, 0.5, 1.0, 1.5]) * 1e-3
    forces = np.array([-sim.contact("cylinder", 0.0, 0.0, d).force[2] for d in depths])
    stiffness = forces / depths
    np.testing.assert_allclose(stiffness, stiffness[0], rtol=0.02)
    np.testing.assert_allclose(stiffness, 2.0 * E_STAR * 3e-3, rtol=0.1)  # Boussinesq punch


def test_soft_elastomer_scales_force():
    soft = TactileSimulator(SENSOR_STYLES["array1_soft"], grid=32)
    stiff = TactileSimulator(STYLE, grid=32)
    ratio = soft.contact("sphere", 0, 0, 1e-3).force[2] / stiff.contact("sphere", 0, 0, 1e-3).force[2]
    assert ratio == pytest.approx(1 / 8, rel=1e-3)


@pytest.mark.parametrize("x, y, depth", [(0.0, 0.0, 0.0), (0.0, 0.0, -1e-4), (0.05, 0.0, 1e-3)])
def test_no_contact_is_exactly_zero(x, y, depth):
    sim, twin = TactileSimulator(STYLE, seed=3), TactileSimulator(STYLE, seed=3)
    state = sim.contact("sphere", x, y, depth, shear=(1e-3, 0.0))
    assert np.all(state.force == 0.0)
    assert state.contact_area == 0.0
    assert not state.in_contact
    np.testing.assert_array_equal(state.marker_xy, sim.reference_marker_xy)
    np.testing.assert_array_equal(sim.render(state), twin.render(None))
    assert np.all(sim.force("sphere", x, y, depth, (1e-3, 0.0)) == 0.0)
    assert sim.normal_force("sphere", x, y, depth) == 0.0


def test_pressing_pushes_into_the_sensor(sim):
    state = sim.contact("sphere", 0.0, 0.0, 1e-3)
    assert state.in_contact
    assert state.force[2] < 0
    assert np.all(state.force[:2] == 0.0)
    assert state.pressure.min() >= 0.0


@pytest.mark.parametrize("direction", [(1.0, 0.0), (0.0, 1.0), (-0.6, -0.8)])
def test_shear_drags_markers_and_is_friction_limited(sim, direction):
    direction = np.array(direction)
    x, y = 2e-3, -1e-3
    small = sim.contact("sphere", x, y, 1e-3, shear=tuple(0.1e-3 * direction))
    normal = -small.force[2]
    tangential = small.force[:2]
    assert np.dot(tangential, direction) / np.linalg.norm(tangential) == pytest.approx(1.0, abs=1e-9)
    assert np.linalg.norm(tangential) < STYLE.friction * normal  # sticking

    centre_px = np.array([STYLE.width - 1, STYLE.height - 1]) / 2 + np.array([x, y]) * 1e3 * STYLE.px_per_mm  # y down
    near = np.linalg.norm(sim.reference_marker_xy - centre_px, axis=1) < 3.0 * STYLE.px_per_mm
    assert near.sum() >= 5
    moved = (small.marker_xy - sim.reference_marker_xy)[near].mean(axis=0)  # pixel axes are x, y
    assert np.dot(moved, direction) > 0.5 * np.linalg.norm(moved)

    large = sim.contact("sphere", x, y, 1e-3, shear=tuple(3e-3 * direction))
    assert np.linalg.norm(large.force[:2]) == pytest.approx(STYLE.friction * normal, rel=1e-9)
    assert np.linalg.norm(large.force[:2]) > np.linalg.norm(tangential)


def test_fast_force_matches_contact(sim):
    rng = np.random.default_rng(7)
    for name in ("sphere", "cube", "cone", "torus"):
        x, y = rng.uniform(-4e-3, 4e-3, 2)
        for _ in range(4):
            depth = rng.uniform(0.25e-3, 1.6e-3)
            shear = tuple(rng.uniform(-0.6e-3, 0.6e-3, 2))
            exact = sim.contact(name, x, y, depth, shear).force
            fast = sim.force(name, x, y, depth, shear)
            assert np.linalg.norm(fast - exact) <= 0.02 * np.linalg.norm(exact)
            assert sim.normal_force(name, x, y, depth) == pytest.approx(-exact[2], rel=0.02)


def test_render_is_mono8_and_seeded(sim):
    state = sim.contact("pacman", 1e-3, 1e-3, 1e-3, (0.5e-3, 0.0))
    a = TactileSimulator(STYLE, seed=11)
    b = TactileSimulator(STYLE, seed=11)
    c = TactileSimulator(STYLE, seed=12)
    image = a.render(state)
    assert image.shape == (480, 640) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, b.render(state))
    assert not np.array_equal(image, c.render(state))


def test_contact_changes_the_image():
    quiet = TactileSimulator(replace(STYLE, noise_std=0.0))
    reference = quiet.render(None).astype(int)
    pressed = quiet.render(quiet.contact("sphere", 0.0, 0.0, 1e-3)).astype(int)
    sheared = quiet.render(quiet.contact("sphere", 0.0, 0.0, 1e-3, (0.5e-3, 0.0))).astype(int)
    assert np.abs(pressed - reference).sum() > 0
    assert np.abs(sheared - reference).mean() > np.abs(pressed - reference).mean()


def test_styles_render_different_patterns():
    names = ["array1", "array2", "circle1", "diamond1", "hex1", "random1"]
    images = {n: TactileSimulator(replace(SENSOR_STYLES[n], noise_std=0.0)).render(None).astype(int)
              for n in names}
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            assert np.abs(images[first] - images[second]).mean() > 5.0, (first, second)


def test_sensor_frame_is_right_handed(sim):
    """The camera behind the gel looks along +z (towards the indenter). Sensor +x must show as
    image right and +y as image down: with (right, down, forward) a right-handed camera frame,
    x cross y is then +z, the way the camera looks. An indenter at +x, +y shows in the
    bottom-right quadrant, shear along +y drags markers down, and pressing gives Fz < 0.
    """
    centre = np.array([STYLE.width - 1, STYLE.height - 1]) / 2
    state = sim.contact("sphere", 3e-3, 2e-3, 1e-3, shear=(0.0, 0.3e-3))
    moved = state.marker_xy - sim.reference_marker_xy
    pressed = np.linalg.norm(moved, axis=1) > 0.2 * np.linalg.norm(moved, axis=1).max()
    assert np.all(sim.reference_marker_xy[pressed].mean(axis=0) > centre)  # right of and below centre
    assert moved[pressed, 1].mean() > 0  # +y shear: markers move down the image
    assert state.force[1] > 0 and state.force[2] < 0
