"""Checks of the GenForce-style indentation script."""
import numpy as np
import pytest

from tacforce_ros.sim.indentation import PHASES, IndentationConfig, IndentationScript

SHORT = dict(depths=[0.5e-3, 1.0e-3], positions=[(0.0, 0.0), (4e-3, -4e-3)], shear_points=3)


def dense_samples(script, dt=0.01):
    return [script.sample(t) for t in np.arange(0.0, script.duration + dt, dt)]


def test_default_run_length_and_positions():
    config = IndentationConfig()
    script = IndentationScript(config)
    assert 20.0 <= script.duration <= 300.0
    assert len(config.positions) == 5
    assert {abs(c) for p in config.positions for c in p} == {0.0, 4e-3}
    assert script.num_episodes == 5 * len(config.depths)


def test_covers_every_phase_with_valid_motion():
    script = IndentationScript(IndentationConfig(indenters=["sphere", "cone"], **SHORT))
    samples = dense_samples(script)
    assert {s.phase for s in samples} == set(PHASES)
    assert {s.indenter for s in samples} == {"sphere", "cone"}
    for s in samples:
        assert 0.0 <= s.depth <= s.target_depth + 1e-12
        assert np.linalg.norm(s.shear) <= 1e-3 + 1e-12
        if s.phase in ("approach", "idle"):
            assert s.depth == 0.0
        if s.phase in ("approach", "press", "release", "idle"):
            assert np.all(s.shear == 0.0)
        if s.phase in ("shear_out", "shear_back"):
            assert s.depth == s.target_depth


def test_episodes_increase_and_start_and_end_out_of_contact():
    script = IndentationScript(IndentationConfig(**SHORT))
    samples = dense_samples(script, dt=0.005)
    episodes = [s.episode for s in samples]
    assert episodes[0] == 0 and episodes[-1] == script.num_episodes - 1
    assert set(np.diff(episodes)) <= {0, 1}
    for before, after in zip(samples, samples[1:]):
        if after.episode != before.episode:
            assert before.depth == pytest.approx(0.0, abs=1e-12)
            assert after.depth == pytest.approx(0.0, abs=1e-12)
    assert samples[0].depth == 0.0 and samples[-1].depth == 0.0
    # Every (position, depth) pair is one episode.
    pairs = {(s.episode, s.position_id, s.target_depth) for s in samples}
    assert len(pairs) == script.num_episodes == 4


def test_motion_is_continuous():
    script = IndentationScript(IndentationConfig(**SHORT))
    dt = 0.002
    samples = dense_samples(script, dt=dt)
    config = script.config
    max_step = max(config.press_speed, config.release_speed, config.shear_speed) * dt * 1.01
    for before, after in zip(samples, samples[1:]):
        assert abs(after.depth - before.depth) <= max_step
        assert np.linalg.norm(after.shear - before.shear) <= max_step


def test_shear_reaches_every_point_on_the_circle():
    script = IndentationScript(IndentationConfig(depths=[1e-3], positions=[(0.0, 0.0)]))
    turning = [s.shear for s in dense_samples(script, dt=0.001)
               if s.phase in ("shear_out", "shear_back") and np.linalg.norm(s.shear) > 0.99e-3]
    angles = {round(float(np.degrees(np.arctan2(v[1], v[0]))) % 360) for v in turning}
    assert {0, 45, 90, 135, 180, 225, 270, 315} <= angles


def test_no_shear_points_gives_straight_presses():
    script = IndentationScript(IndentationConfig(depths=[1e-3], shear_points=0))
    assert {s.phase for s in dense_samples(script)} == {"approach", "press", "release", "idle"}


def test_seed_shuffles_deterministically_and_clamps_time():
    a = IndentationScript(IndentationConfig(seed=5, **SHORT))
    b = IndentationScript(IndentationConfig(seed=5, **SHORT))
    for t in np.linspace(0, a.duration, 50):
        sa, sb = a.sample(t), b.sample(t)
        assert (sa.episode, sa.position_id, sa.depth) == (sb.episode, sb.position_id, sb.depth)
        np.testing.assert_array_equal(sa.shear, sb.shear)
    assert a.sample(-1.0).time == 0.0
    end = a.sample(a.duration + 10.0)
    assert end.time == a.duration and end.depth == 0.0 and end.phase == "idle"


def test_rejects_bad_config():
    with pytest.raises(ValueError):
        IndentationConfig(depths=[])
    with pytest.raises(ValueError):
        IndentationConfig(press_speed=0.0)
