"""Grasp-angle convention, synthetic scenes, the geometric grasp labeller and the attempts CSV."""
import math
import time

import numpy as np
import pytest

from tacforce_ros.perception.grasp_angles import angle_to_bin, bin_edges, bin_to_angle, wrap_angle
from tacforce_ros.sim.grasp_attempts import Attempt, read_attempt_csv, write_attempt_csv
from tacforce_ros.sim.grasp_labels import grasp_outcome, grasp_outcomes, sample_attempts
from tacforce_ros.sim.grasp_scenes import SHAPES, Scene, SceneConfig, generate_scene, rasterise

CONFIG = SceneConfig()  # 1000 px/m: 1 px = 1 mm, opening 85 mm, fingers 20 x 10 mm
H, W = CONFIG.height, CONFIG.width


def scene_with(*rects):
    """Scene of rotated rectangles given as (cu, cv, length, width, orientation)."""
    labels = np.zeros((H, W), np.int32)
    for label, (cu, cv, length, width, phi) in enumerate(rects, start=1):
        c, s = math.cos(phi), math.sin(phi)
        local = np.array([[-length, -width], [length, -width], [length, width], [-length, width]]) / 2
        corners = local @ np.array([[c, -s], [s, c]]).T + [cu, cv]
        labels[rasterise([corners], [], (H, W))] = label
    return Scene(np.zeros((H, W, 3), np.uint8), labels)


# ---------------------------------------------------------------- angle convention

@pytest.mark.parametrize("bins", [18, 9, 1, 7])
def test_bins_round_trip(bins):
    for i in range(bins):
        assert angle_to_bin(bin_to_angle(i, bins), bins) == i
        assert angle_to_bin(bin_to_angle(i, bins) + math.pi, bins) == i
        assert angle_to_bin(bin_to_angle(i, bins) - 3 * math.pi, bins) == i
        assert angle_to_bin(i * math.pi / bins, bins) == i  # lower edge belongs to the bin
    idx = np.arange(bins)
    np.testing.assert_array_equal(angle_to_bin(bin_to_angle(idx, bins), bins), idx)
    edges = bin_edges(bins)
    assert edges.shape == (bins + 1,) and edges[0] == 0.0 and edges[-1] == pytest.approx(math.pi)
    np.testing.assert_allclose(bin_to_angle(idx, bins), (edges[:-1] + edges[1:]) / 2)


def test_angle_edges_and_wrapping():
    assert angle_to_bin(0.0) == 0
    assert angle_to_bin(math.pi) == 0  # theta + pi is the same grasp
    assert angle_to_bin(math.pi - 1e-7) == 17
    assert angle_to_bin(-1e-7) == 17
    assert angle_to_bin(-1e-18) == 0
    assert angle_to_bin(math.radians(10) - 1e-6) == 0
    assert angle_to_bin(math.radians(95)) == 9
    assert bin_to_angle(0) == pytest.approx(math.radians(5))
    assert 0.0 <= wrap_angle(-1e-18) < math.pi
    theta = np.linspace(-10, 10, 1001)
    np.testing.assert_array_equal(angle_to_bin(theta), angle_to_bin(theta + math.pi))
    with pytest.raises(ValueError):
        bin_to_angle(18)
    with pytest.raises(ValueError):
        angle_to_bin(0.1, bins=0)
    with pytest.raises(ValueError):
        angle_to_bin(float("nan"))


def test_bar_at_known_angle():
    phi = math.radians(40)  # bar's long axis, from +u towards +v (clockwise on screen)
    scene = scene_with((320, 240, 200, 20, phi))
    across = phi + math.pi / 2
    assert grasp_outcome(scene, 320, 240, across, CONFIG)
    assert grasp_outcome(scene, 320, 240, across + math.pi, CONFIG)  # same grasp
    assert not grasp_outcome(scene, 320, 240, phi, CONFIG)  # 200 mm long > 85 mm opening
    # Measuring counter-clockwise instead (-across) is 10 degrees off the long axis: too long.
    assert not grasp_outcome(scene, 320, 240, -across, CONFIG)
    # The bar's pixels really do run along (cos phi, sin phi) in (u, v) with v down.
    assert scene.labels[int(round(240 + 80 * math.sin(phi))), int(round(320 + 80 * math.cos(phi)))] == 1


# ---------------------------------------------------------------- labeller

def test_labeller_cases():
    empty = Scene(np.zeros((H, W, 3), np.uint8), np.zeros((H, W), np.int32))
    assert not grasp_outcome(empty, 320, 240, 0.3, CONFIG)
    narrow = scene_with((320, 240, 60, 40, 0.0))  # 60 x 40 mm box, long axis along u
    assert grasp_outcome(narrow, 320, 240, math.pi / 2, CONFIG)  # 40 mm across: fits
    assert grasp_outcome(narrow, 320, 240, 0.0, CONFIG)  # 60 mm along: still fits
    assert grasp_outcome(narrow, 330, 250, math.pi / 2, CONFIG)  # off-centre but on the box
    assert not grasp_outcome(narrow, 320, 320, math.pi / 2, CONFIG)  # closing line misses it
    assert not grasp_outcome(narrow, 400, 240, math.pi / 2, CONFIG)  # centre beside it: empty
    wide = scene_with((320, 240, 120, 100, 0.0))  # wider than the opening both ways
    assert not grasp_outcome(wide, 320, 240, 0.0, CONFIG)
    assert not grasp_outcome(wide, 320, 240, math.pi / 2, CONFIG)
    # A neighbour 50 mm from the centre sits where the right finger starts (42.5..52.5 mm).
    crowded = scene_with((320, 240, 40, 30, 0.0), (375, 240, 20, 60, 0.0))
    assert not grasp_outcome(crowded, 320, 240, 0.0, CONFIG)
    assert grasp_outcome(crowded, 320, 240, math.pi / 2, CONFIG)  # across: fingers are free
    # Two objects between the fingers: not a single-object grasp.
    pair = scene_with((305, 240, 20, 30, 0.0), (335, 240, 20, 30, 0.0))
    assert not grasp_outcome(pair, 320, 240, 0.0, CONFIG)
    # The vectorised form agrees with the scalar one.
    u = np.array([320, 320, 400])
    th = np.array([math.pi / 2, 0.0, math.pi / 2])
    np.testing.assert_array_equal(grasp_outcomes(narrow, u, 240, th, CONFIG), [True, True, False])


# ---------------------------------------------------------------- scenes and attempts

def test_scene_deterministic_and_valid():
    cfg = SceneConfig(seed=3, objects_range=(2, 5))
    a, b = generate_scene(cfg), generate_scene(cfg)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.objects == b.objects
    assert a.image.shape == (480, 640, 3) and a.image.dtype == np.uint8
    assert 1 <= len(a.objects) <= 5
    assert set(np.unique(a.labels)) <= {0} | {o.label for o in a.objects}
    c = generate_scene(SceneConfig(seed=4, objects_range=(2, 5)))
    assert not np.array_equal(a.image, c.image)


def test_excluded_shapes_never_appear():
    held_out = {"ring", "cross", "triangle"}
    cfg = SceneConfig(shapes=tuple(s for s in SHAPES if s not in held_out), objects_range=(3, 5))
    rng = np.random.default_rng(0)
    seen = {o.shape for _ in range(30) for o in generate_scene(cfg, rng).objects}
    assert seen and not seen & held_out
    assert len(SHAPES) >= 8
    with pytest.raises(ValueError):
        SceneConfig(shapes=("box", "blob"))


def test_attempts_have_both_outcomes_and_label_fast():
    rng = np.random.default_rng(1)
    scene = generate_scene(SceneConfig(seed=1, objects_range=(3, 5)), rng)
    rows = sample_attempts(scene, 200, rng, CONFIG, positive_fraction=0.5)
    assert len(rows) == 200
    outcomes = [r[3] for r in rows]
    assert any(outcomes) and not all(outcomes)
    assert all(0.0 <= r[2] < math.pi for r in rows)
    for u, v, theta, success in rows[:20]:
        assert grasp_outcome(scene, u, v, theta, CONFIG) == success
    n = 20000
    u, v, th = rng.uniform(0, W, n), rng.uniform(0, H, n), rng.uniform(0, math.pi, n)
    start = time.perf_counter()
    grasp_outcomes(scene, u, v, th, CONFIG)
    rate = n / (time.perf_counter() - start)
    print(f"labelling rate: {rate:.0f} attempts/s")
    assert rate > 2000


# ---------------------------------------------------------------- CSV

def test_csv_round_trip(tmp_path):
    rows = [("img_000.png", 12.5, 40.0, 0.25, True), Attempt("sub/img_001.png", 0.0, 3.0, 3.0, False)]
    path = write_attempt_csv(tmp_path, rows)
    assert path.name == "attempts.csv"
    back = read_attempt_csv(tmp_path)
    assert back == [Attempt(*rows[0]), rows[1]]
    assert isinstance(back[0].success, bool)
    with pytest.raises(FileNotFoundError):
        read_attempt_csv(tmp_path, check_images=True)


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("image,u,v,angle\na.png,1,2,0.5\n", "header"),
    ("image,u,v,angle,success\na.png,1,2,0.5\n", "fields"),
    ("image,u,v,angle,success\na.png,one,2,0.5,1\n", "u must be a number"),
    ("image,u,v,angle,success\na.png,1,2,3.5,1\n", r"\[0, pi\)"),
    ("image,u,v,angle,success\na.png,1,2,-0.1,1\n", r"\[0, pi\)"),
    ("image,u,v,angle,success\na.png,1,2,nan,1\n", "finite"),
    ("image,u,v,angle,success\na.png,-1,2,0.5,1\n", ">= 0"),
    ("image,u,v,angle,success\na.png,1,2,0.5,yes\n", "success"),
    ("image,u,v,angle,success\n../a.png,1,2,0.5,1\n", "relative"),
    ("image,u,v,angle,success\n,1,2,0.5,1\n", "image"),
    ("image,u,v,angle,success\n__import__('os'),1,2,0.5,1\n", None),  # just a file name, never eval'd
])
def test_malformed_csv(tmp_path, text, message):
    path = tmp_path / "attempts.csv"
    path.write_text(text)
    if message is None:
        assert read_attempt_csv(path)[0].image == "__import__('os')"
        return
    with pytest.raises(ValueError, match=message):
        read_attempt_csv(path)


def test_write_rejects_bad_rows(tmp_path):
    with pytest.raises(ValueError, match="angle"):
        write_attempt_csv(tmp_path / "a.csv", [("a.png", 1, 2, math.pi, 1)])
    assert not (tmp_path / "a.csv").exists()
