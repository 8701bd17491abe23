"""Grasp map decoding, poses, overlay, depth decoding and the simulated RGB-D camera (no ROS, no torch)."""
import math
import re

import numpy as np
import pytest

from tacforce_ros.perception.grasp_angles import angle_to_bin, bin_to_angle
from tacforce_ros.perception.grasp_map import (Grasp, GraspMapError, GraspMapLayout, Intrinsics, angle_score,
                                               box_problem, check_map, decode_grasps, depth_at, grasp_position,
                                               grasp_quaternion, heatmap_overlay, in_workspace, point_problem,
                                               position_problem, table_point)
from tacforce_ros.perception.image import ImageError, decode_depth
from tacforce_ros.sim.grasp_camera import OBJECT_HEIGHTS_M, camera_matrix, depth_mm, table_plane
from tacforce_ros.sim.grasp_labels import grasp_outcome
from tacforce_ros.sim.grasp_scenes import SceneConfig, generate_scene

LAYOUT = GraspMapLayout(rows=15, cols=20, bins=18, stride=32.0, offset=16.0)


def metadata(**changes):
    spec = {"shape": [15, 20, 18], "stride_px": 32, "offset_px": 16, **changes}
    return {"grasp_probability": spec}


def test_layout_from_metadata_and_cell_geometry():
    assert GraspMapLayout.from_metadata(metadata()) == LAYOUT
    for bad in (metadata(shape=[15, 20]), metadata(stride_px=0), {"force": {}}):
        with pytest.raises(GraspMapError):
            GraspMapLayout.from_metadata(bad, "m.onnx")
    u, v = LAYOUT.cell_centre(2, 3)
    assert (u, v) == (16 + 32 * 3, 16 + 32 * 2)
    # every pixel of a 32 px block maps to that block's cell; outside the image clips to the border
    assert [tuple(map(int, LAYOUT.cell_of(u, v))) for u, v in ((0, 0), (31, 31), (32, 63), (639, 479))] == \
        [(0, 0), (0, 0), (1, 1), (14, 19)]
    assert tuple(map(int, LAYOUT.cell_of(-50, 1e4))) == (14, 0)


@pytest.mark.parametrize("theta", [0.0, 0.01, math.pi / 18, 0.5, math.pi / 2, 2.0, math.pi - 1e-6, 4.0, -0.3])
def test_a_decoded_grasp_reproduces_its_training_label(theta):
    """Label -> (cell, bin) as training encodes it -> the map -> decode_grasps as the node does."""
    u, v = 300.4, 211.7
    row, col = LAYOUT.cell_of(u, v)
    b = angle_to_bin(theta, LAYOUT.bins)
    prob = np.full((15, 20, 18), 0.1, np.float32)
    prob[row, col, b] = 0.9
    (g,) = decode_grasps(prob, LAYOUT, min_probability=0.5, top_k=5)
    assert abs(g.u - u) <= LAYOUT.stride / 2 and abs(g.v - v) <= LAYOUT.stride / 2
    wrapped = theta % math.pi
    diff = min(abs(g.angle - wrapped), math.pi - abs(g.angle - wrapped))  # theta and theta + pi are one grasp
    assert diff <= math.pi / 18 / 2 + 1e-9
    assert angle_to_bin(g.angle) == b and g.bin == b and g.probability == pytest.approx(0.9)


def test_bins_both_ways():
    for i in range(18):
        lo, hi = i * math.pi / 18, (i + 1) * math.pi / 18
        assert angle_to_bin(lo) == i and angle_to_bin(hi - 1e-7) == i and angle_to_bin(hi) == (i + 1) % 18
        assert lo < bin_to_angle(i) < hi


def test_decoded_grasp_label_agrees_with_the_labeller_on_a_scene():
    """A grasp across a box's short side at its centre: the labeller says success for the label,
    and for what the map decodes it to (cell centre and bin centre) when both are on the box.
    """
    config = SceneConfig(objects_range=(1, 1), shapes=("box",), seed=3, size_range_px=(90, 90),
                         aspect_range=(0.5, 0.5))
    scene = generate_scene(config)
    obj = scene.objects[0]
    theta = obj.orientation + math.pi / 2
    assert grasp_outcome(scene, *obj.centre, theta, config)
    row, col = LAYOUT.cell_of(*obj.centre)
    prob = np.zeros((15, 20, 18), np.float32)
    prob[row, col, angle_to_bin(theta)] = 1.0
    (g,) = decode_grasps(prob, LAYOUT, top_k=1)
    assert grasp_outcome(scene, g.u, g.v, g.angle, config)


def test_decode_ranks_suppresses_and_thresholds():
    prob = np.zeros((15, 20, 18), np.float32)
    prob[5, 5, 3] = 0.95
    prob[5, 6, 4] = 0.9    # 32 px from the best: suppressed at 48 px
    prob[10, 15, 7] = 0.8
    prob[0, 0, 0] = 0.4    # under the threshold
    grasps = decode_grasps(prob, LAYOUT, min_probability=0.5, top_k=5, nms_distance_px=48)
    assert [(g.row, g.col, g.bin) for g in grasps] == [(5, 5, 3), (10, 15, 7)]
    assert [(g.row, g.col) for g in decode_grasps(prob, LAYOUT, 0.5, 5, nms_distance_px=0)] == \
        [(5, 5), (5, 6), (10, 15)]
    assert len(decode_grasps(prob, LAYOUT, 0.5, top_k=1)) == 1
    assert decode_grasps(prob, LAYOUT, min_probability=0.99) == []
    assert decode_grasps(prob, LAYOUT, top_k=0) == []


def test_decode_keeps_the_best_grasps_that_keep_accepts():
    """A refused grasp neither counts towards top_k nor suppresses its neighbour; keep sees the
    grasps that survived suppression, best first, and no more than needed.
    """
    prob = np.zeros((15, 20, 18), np.float32)
    prob[5, 5, 3] = 0.95   # refused below
    prob[5, 6, 4] = 0.9    # 32 px from it: suppressed only while (5, 5) is kept
    prob[10, 15, 7] = 0.8
    prob[2, 2, 0] = 0.7
    seen = []

    def keep(g: Grasp) -> bool:
        seen.append((g.row, g.col))
        return (g.row, g.col) != (5, 5)
    grasps = decode_grasps(prob, LAYOUT, 0.5, top_k=2, nms_distance_px=48, keep=keep)
    assert [(g.row, g.col) for g in grasps] == [(5, 6), (10, 15)]
    assert seen == [(5, 5), (5, 6), (10, 15)]
    assert [(g.row, g.col) for g in decode_grasps(prob, LAYOUT, 0.5, top_k=2, nms_distance_px=48)] == \
        [(5, 5), (10, 15)]
    assert decode_grasps(prob, LAYOUT, 0.5, top_k=2, keep=lambda g: False) == []


def test_workspace_box():
    low, high = [-0.1, -0.2, 0.3], [0.1, 0.2, 0.7]
    assert in_workspace(np.array([0.0, 0.0, 0.5]), low, high)
    assert in_workspace(np.array([0.1, -0.2, 0.3]), low, high)   # faces included
    for outside in ([0.11, 0.0, 0.5], [0.0, -0.25, 0.5], [0.0, 0.0, 0.71], [0.0, 0.0, 0.29], [0.0, 0.0, np.nan]):
        assert not in_workspace(np.array(outside), low, high), outside
    assert point_problem([0.0, 0.0, 1.0]) is None and box_problem(low, high) is None
    for bad in ([0.0, 1.0], [0.0, 0.0, 1.0, 0.0], [0.0, math.inf, 1.0], [math.nan] * 3):
        assert point_problem(bad) == "must be three finite numbers [x, y, z] in metres", bad
    assert box_problem([0.0, 0.5, 0.2], [1.0, 0.5, 0.1]) == \
        "must be below workspace_max on every axis, not on y (0.5 >= 0.5), z (0.2 >= 0.1)"


def test_bad_maps_are_refused():
    with pytest.raises(GraspMapError, match="shape"):
        check_map(np.zeros((15, 20, 9), np.float32), LAYOUT)
    prob = np.zeros((15, 20, 18), np.float32)
    prob[1, 1, 1] = np.nan
    with pytest.raises(GraspMapError, match="non-finite"):
        decode_grasps(prob, LAYOUT)
    assert check_map(np.zeros((1, 15, 20, 18)), LAYOUT).shape == (15, 20, 18)


def test_positions_from_depth_and_from_the_table_plane():
    intr = Intrinsics.from_k([600.0, 0, 319.5, 0, 600.0, 239.5, 0, 0, 1])
    g = Grasp(u=419.5, v=239.5, angle=0.3, probability=0.9, row=0, col=0, bin=0)
    depth = np.full((480, 640), 0.6, np.float32)
    depth[236:243, 416:423] = 0.5
    depth[239, 419] = 0.0         # a hole: ignored
    depth[238, 418] = np.nan      # no reading: ignored
    np.testing.assert_allclose(grasp_position(g, intr, depth), [100 / 600 * 0.5, 0.0, 0.5])
    np.testing.assert_allclose(grasp_position(g, intr, None, table_plane(0.6)), [0.1, 0.0, 0.6])
    empty = np.zeros((480, 640), np.float32)
    np.testing.assert_allclose(grasp_position(g, intr, empty, table_plane(0.6)), [0.1, 0.0, 0.6])
    assert grasp_position(g, intr, empty) is None
    assert depth_at(depth, -5, 10) is None
    assert table_point(np.array([1.0, 0, 0]), np.array([0, 0, 1.0, 0.6])) is None  # parallel
    assert table_point(np.array([0, 0, 1.0]), np.array([0, 0, 1.0, -0.6])) is None  # behind the camera
    for bad in ([0, 0, 1, 0, 600, 1, 0, 0, 1], [1, 2, 3], [600, 0, float("nan"), 0, 600, 1, 0, 0, 1]):
        with pytest.raises(ValueError):
            Intrinsics.from_k(bad)


def test_implausible_camera_info_and_positions_are_refused():
    """An fx of 1e-30 put a grasp 9.6e30 m to the side; a saturated 16UC1 depth (65535 mm) 65.5 m away."""
    good = [600.0, 0, 319.5, 0, 600.0, 239.5, 0, 0, 1]
    assert Intrinsics.from_camera_info(good, 640, 480) == Intrinsics(600.0, 600.0, 319.5, 239.5)
    assert Intrinsics.from_camera_info([1e-30, *good[1:]], 0, 0).fx == 1e-30     # no size: K alone
    for k, expected in (([1e-30, *good[1:]], "fx 1e-30"), ([600.0, 0, 319.5, 0, 1e6, *good[5:]], "fy 1e+06"),
                        ([600.0, 0, 700.0, *good[3:]], "principal point (700, 239.5)"),
                        ([*good[:5], -3.0, 0, 0, 1], "principal point (319.5, -3)")):
        with pytest.raises(ValueError, match=re.escape(expected)):
            Intrinsics.from_camera_info(k, 640, 480)
    g = Grasp(u=0.0, v=239.5, angle=0.0, probability=0.9, row=0, col=0, bin=0)
    far = grasp_position(g, Intrinsics.from_k([1e-30, *good[1:]]), None, table_plane(0.6))
    assert "outside the camera's range" in position_problem(far, 0.1, 3.0)
    saturated = grasp_position(g, Intrinsics.from_k(good), np.full((480, 640), 65.535, np.float32))
    assert "outside the camera's range" in position_problem(saturated, 0.1, 3.0)
    assert "outside the camera's range" in position_problem(np.array([0.0, 0.0, 0.05]), 0.1, 3.0)
    assert position_problem(np.array([0.0, 0.0, np.nan]), 0.1, 3.0) == "position is not finite"
    assert position_problem(grasp_position(g, Intrinsics.from_k(good), None, table_plane(0.6)), 0.1, 3.0) is None


def test_orientation_is_the_grasp_angle_about_the_optical_axis():
    for angle in (0.0, 0.4, math.pi / 2, 2.9):
        x, y, z, w = grasp_quaternion(angle)
        assert x == y == 0 and math.isclose(x * x + y * y + z * z + w * w, 1.0)
        # rotate the optical x axis: it becomes the closing direction (cos, sin) in (u, v) = (x, y)
        rx = (1 - 2 * z * z, 2 * z * w)
        assert rx == pytest.approx((math.cos(angle), math.sin(angle)))


def test_overlay_is_an_rgb_image_with_the_grasps_drawn():
    image = np.full((480, 640, 3), 128, np.uint8)
    prob = np.zeros((15, 20, 18), np.float32)
    prob[7, 10, 0] = 1.0
    grasps = decode_grasps(prob, LAYOUT, top_k=1)
    out = heatmap_overlay(image, prob, LAYOUT, grasps, jaw_px=80)
    assert out.shape == image.shape and out.dtype == np.uint8
    g = grasps[0]
    assert tuple(out[int(g.v), int(g.u)]) == (255, 255, 255)            # the best grasp's centre dot
    along = (round(g.u + 30 * math.cos(g.angle)), round(g.v + 30 * math.sin(g.angle)))
    assert tuple(out[along[1], along[0]]) == (255, 255, 255)             # on its jaw line
    assert out[5, 5].tolist() == [128, 128, 128]                        # P 0: the image itself
    assert out[int(g.v) - 10, int(g.u) - 3].tolist() != [128, 128, 128]  # P ~0.6 >= 0.5: shaded


def test_overlay_blends_the_heat_map_only_where_p_reaches_the_threshold():
    """Above ``min_probability`` the heat map is alpha-blended over the image (the scene still
    shows through); below it the camera image is untouched.
    """
    import cv2
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), np.uint8)
    prob = np.zeros((15, 20, 18), np.float32)
    prob[6:9, 9:12, :] = 0.9                  # cell centres u 304..368, v 208..272
    prob[2, 3, 5] = 0.3                       # centre pixel (112, 80)
    out = heatmap_overlay(image, prob, LAYOUT, [], alpha=0.45, min_probability=0.5)
    far = np.ones((480, 640), bool)
    far[208 - 32:272 + 33, 304 - 32:368 + 33] = False
    np.testing.assert_array_equal(out[far], image[far])                 # P < 0.5 everywhere else
    heat = cv2.applyColorMap(np.uint8([[np.float32(0.9) * 255]]), cv2.COLORMAP_JET)[0, 0, ::-1]
    expected = 0.55 * image[240, 336].astype(float) + 0.45 * heat
    np.testing.assert_allclose(out[240, 336], expected, atol=1)       # blended, not painted over
    low = heatmap_overlay(image, prob, LAYOUT, [], min_probability=0.2)
    assert (low[80, 112] != image[80, 112]).any()                       # P 0.3 >= 0.2: shaded now


def test_depth_messages_decode_to_metres():
    class Msg:
        def __init__(self, array, encoding, big=False, step=None, data=None):
            self.height, self.width = array.shape
            self.encoding, self.is_bigendian = encoding, int(big)
            self.step = step if step is not None else array.shape[1] * array.itemsize
            self.data = data if data is not None else array.tobytes()

    mm = np.array([[600, 0], [525, 65535]], np.uint16)
    np.testing.assert_allclose(decode_depth(Msg(mm.astype("<u2"), "16UC1")), mm * 0.001, rtol=1e-6)
    np.testing.assert_allclose(decode_depth(Msg(mm.astype(">u2"), "16UC1", big=True)), mm * 0.001, rtol=1e-6)
    m = np.array([[0.6, np.nan], [0.5, 0.0]], np.float32)
    np.testing.assert_array_equal(decode_depth(Msg(m, "32FC1")), m)
    with pytest.raises(ImageError, match="unsupported depth encoding"):
        decode_depth(Msg(mm, "rgb8"))
    with pytest.raises(ImageError, match="truncated"):
        decode_depth(Msg(mm, "16UC1", data=mm.tobytes()[:5]))
    with pytest.raises(ImageError, match="step"):
        decode_depth(Msg(mm, "16UC1", step=3))
    with pytest.raises(ImageError, match="exceeds"):
        decode_depth(Msg(mm, "16UC1"), max_pixels=3)


def test_simulated_camera_depth_and_intrinsics_are_consistent():
    config = SceneConfig(seed=5, objects_range=(3, 4))
    scene = generate_scene(config)
    depth = depth_mm(scene, 0.6)
    assert depth.dtype == np.uint16 and depth.shape == scene.labels.shape
    assert (depth[scene.labels == 0] == 600).all()
    for obj in scene.objects:
        assert (depth[scene.labels == obj.label] == round(1000 * (0.6 - OBJECT_HEIGHTS_M[obj.label % 4]))).all()
    k = camera_matrix(config, 0.6)
    intr = Intrinsics.from_k(k)
    # one pixel on the table is 1 / pixels_per_metre metres, as the scene generator assumes
    a = grasp_position(Grasp(100, 200, 0, 1, 0, 0, 0), intr, None, table_plane(0.6))
    b = grasp_position(Grasp(101, 200, 0, 1, 0, 0, 0), intr, None, table_plane(0.6))
    assert np.linalg.norm(b - a) == pytest.approx(1 / config.pixels_per_metre)
    with pytest.raises(ValueError):
        camera_matrix(config, 0.0)


def test_ranking_prefers_grasps_whose_neighbouring_angles_also_hold():
    prob = np.zeros((15, 20, 18), np.float32)
    prob[2, 2, 3] = 0.95                      # a lone sharp peak: one bin only
    prob[9, 9, 7:10] = (0.9, 0.92, 0.9)       # robust: the neighbouring angles hold too
    prob[12, 3, [17, 0, 1]] = (0.8, 0.85, 0.8)  # robust across the wrap at pi
    best = decode_grasps(prob, LAYOUT, min_probability=0.5, top_k=3)
    assert [(g.row, g.col, g.bin) for g in best] == [(9, 9, 8), (12, 3, 0), (2, 2, 3)]
    assert best[0].probability == pytest.approx(0.92) and best[0].score == pytest.approx((0.9 + 2 * 0.92 + 0.9) / 4)
    plain = decode_grasps(prob, LAYOUT, min_probability=0.5, top_k=1, angle_window=0)
    assert (plain[0].row, plain[0].col, plain[0].bin) == (2, 2, 3)
    np.testing.assert_allclose(angle_score(prob, 1).sum(), prob.sum(), rtol=1e-6)  # weights sum to 1


def test_table_scale_says_when_the_camera_is_beyond_the_training_range():
    from tacforce_ros.perception.grasp_map import scale_problem, table_scale
    intr = Intrinsics(600.0, 600.0, 320.0, 240.0)
    depth = np.full((48, 64), 0.6, np.float32)
    depth[:10] = 0.0          # no reading
    depth[20:30, 20:30] = 0.55  # an object
    assert table_scale(depth, intr) == pytest.approx(1000.0)
    assert table_scale(np.zeros((4, 4), np.float32), intr) is None
    trained = (615.0, 1319.0)   # the shipped model's cameras: 0.5-0.75 m, 40-55 degrees
    assert scale_problem(1000.0, trained) is None and scale_problem(600.0, trained) is None   # within 10 %
    assert "trained at 615-1319 px/m" in scale_problem(500.0, trained)
    assert scale_problem(1500.0, trained) is not None
