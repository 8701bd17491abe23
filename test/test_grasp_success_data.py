"""Grasp-success data: seeds' folder layout, bags with a label topic (real MCAP bags),
class balancing, augmentations, metrics.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from tacforce_ros.bag_labels import label_of_name, load_labelled_frames, write_labelled_bag
from tacforce_ros.bags import BagError, BagWriter
from tacforce_training.tasks.grasp_success.data import (Augment, balanced_epoch, fit_frame, load_bags, load_folder,
                                                        load_synthetic, parse_size, stratified_split)
from tacforce_training.tasks.grasp_success.metrics import classification_metrics, roc_auc, save_reliability_plot


def _write(path, image_rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))


def test_folder_layout_any_image_size_and_class_names(tmp_path):
    red = np.zeros((300, 200, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((50, 80, 3), np.uint8)
    blue[..., 2] = 255
    _write(tmp_path / "Successful" / "a.png", red)
    _write(tmp_path / "Successful" / "sub" / "b.jpg", red)
    _write(tmp_path / "unsuccessful" / "c.png", blue)
    (tmp_path / "unsuccessful" / "notes.txt").write_text("not an image")
    frames = load_folder(tmp_path, (64, 48))
    assert frames.images.shape == (3, 48, 64, 3) and frames.images.dtype == np.uint8
    assert sorted(frames.labels.tolist()) == [0, 1, 1]
    by_name = dict(zip(frames.names, frames.labels))
    assert by_name["Successful/a.png"] == 1 and by_name["unsuccessful/c.png"] == 0
    # RGB order kept: the success images are red
    success = frames.images[frames.labels == 1]
    assert (success[..., 0] > 200).all() and (success[..., 2] < 50).all()
    assert frames.counts() == {"failure": 1, "success": 2}


def test_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_folder(tmp_path / "missing", (64, 48))
    _write(tmp_path / "success" / "a.png", np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="one folder per class"):
        load_folder(tmp_path, (64, 48))
    (tmp_path / "failure").mkdir()
    (tmp_path / "failure" / "broken.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match="broken.png"):
        load_folder(tmp_path, (64, 48))
    (tmp_path / "failure" / "broken.png").unlink()
    (tmp_path / "maybe").mkdir()
    with pytest.raises(ValueError, match="unknown class name 'maybe'"):
        load_folder(tmp_path, (64, 48))


def test_class_names():
    assert label_of_name("Success") == 1 and label_of_name("not-held") == 0 and label_of_name("FAILURE") == 0
    assert label_of_name("") is None and label_of_name("unknown") is None
    with pytest.raises(ValueError):
        label_of_name("perhaps")


@pytest.mark.parametrize("label_type", ["bool", "string"])
def test_bag_with_label_topic_pairs_each_image_with_the_latest_label(tmp_path, label_type):
    images, labels, _, _ = generate_small(10)
    write_labelled_bag(tmp_path / "bag", images, labels, "/cam/image_raw", "/grasp/label", rate_hz=10.0,
                       label_type=label_type)
    data = load_labelled_frames(tmp_path / "bag", "/cam/image_raw", "/grasp/label")
    assert data.labels == labels.tolist()
    assert data.encoding == "rgb8" and np.array_equal(np.stack(data.images), images)
    assert data.stamps_ns == sorted(data.stamps_ns)
    frames = load_bags([tmp_path / "bag"], "/cam/image_raw", "/grasp/label", (80, 60))
    assert frames.images.shape == (10, 60, 80, 3) and frames.labels.tolist() == labels.tolist()


def test_bag_images_before_the_first_label_and_while_unknown_are_skipped(tmp_path):
    from tacforce_ros.perception.image import encode_image_fields
    images = [np.full((48, 64, 3), v, np.uint8) for v in (10, 20, 30, 40, 50)]
    with BagWriter(tmp_path / "bag") as writer:
        types = writer.typestore.types
        writer.add_topic("/img", "sensor_msgs/msg/Image")
        writer.add_topic("/label", "std_msgs/msg/String")
        t0 = 10**18
        labels_at = {1: "success", 3: "unknown", 4: "failure"}   # frame index -> label sent just before it
        for k, image in enumerate(images):
            t = t0 + k * 10**8
            if k in labels_at:
                writer.write_msg("/label", t - 1, types["std_msgs/msg/String"](data=labels_at[k]))
            f = encode_image_fields(image, "rgb8")
            f["data"] = np.frombuffer(f["data"], np.uint8)
            stamp = types["builtin_interfaces/msg/Time"](sec=t // 10**9, nanosec=t % 10**9)
            writer.write_msg("/img", t, types["sensor_msgs/msg/Image"](
                header=types["std_msgs/msg/Header"](stamp=stamp, frame_id="c"), **f))
    data = load_labelled_frames(tmp_path / "bag", "/img", "/label")
    assert [int(im[0, 0, 0]) for im in data.images] == [20, 30, 50]
    assert data.labels == [1, 1, 0]
    assert data.skipped_unlabelled == 2 and data.images_read == 5


def test_bag_without_the_label_topic_is_a_clear_error(tmp_path):
    images, labels, _, _ = generate_small(3)
    write_labelled_bag(tmp_path / "bag", images, labels, "/cam/image_raw", "/grasp/label")
    with pytest.raises(BagError, match="no topic '/grasp/other'"):
        load_labelled_frames(tmp_path / "bag", "/cam/image_raw", "/grasp/other")


def generate_small(n):
    from tacforce_ros.sim.grasp_check_scenes import CheckSceneConfig, generate
    images, labels, kinds, shapes = generate(n, seed=9, config=CheckSceneConfig(height=48, width=64))
    labels = (np.arange(n) // 3) % 2   # runs of 3: both classes and label changes
    return images, labels, kinds, shapes


def test_balanced_epochs_show_both_classes_equally_often():
    labels = np.array([1] * 10 + [0] * 90)
    rng = np.random.default_rng(0)
    idx = balanced_epoch(labels, rng)
    assert len(idx) == 180
    assert (labels[idx] == 1).sum() == (labels[idx] == 0).sum() == 90
    assert set(idx[labels[idx] == 0]) == set(range(10, 100))          # majority walked without repeats
    assert set(idx[labels[idx] == 1]) == set(range(10))                # every minority frame used
    assert len(balanced_epoch(labels, rng, size=40)) == 40
    with pytest.raises(ValueError):
        balanced_epoch(np.zeros(5, int), rng)


def test_stratified_split_keeps_both_classes_on_both_sides():
    labels = np.array([1] * 20 + [0] * 80)
    train, held = stratified_split(labels, 0.2, seed=0)
    assert not set(train) & set(held) and len(train) + len(held) == 100
    assert (labels[held] == 1).sum() == 4 and (labels[held] == 0).sum() == 16
    with pytest.raises(ValueError, match="need 2"):
        stratified_split(np.array([1, 0, 0]), 0.2, 0)


def test_augmentations_keep_shape_and_dtype_and_change_the_frame():
    frames = load_synthetic(4, seed=0, split="train", frame_size=(96, 72))
    rng = np.random.default_rng(0)
    aug = Augment()
    for image in frames.images:
        out = aug(image, rng)
        assert out.shape == image.shape and out.dtype == np.uint8
        assert np.abs(out.astype(int) - image).mean() > 1
    mono = frames.images[0][..., :1].copy()
    assert aug(mono, rng).shape == mono.shape
    assert np.array_equal(Augment.none()(frames.images[0], rng), frames.images[0])


def test_flip_only_augmentation_mirrors():
    image = np.zeros((20, 30, 3), np.uint8)
    image[:, :5] = 255
    rng = np.random.default_rng(1)
    aug = Augment(0, 0, 0, 0, True, 0)
    outs = [aug(image, rng) for _ in range(20)]
    flipped = [o for o in outs if not np.array_equal(o, image)]
    assert flipped and all(np.array_equal(o, image[:, ::-1]) for o in flipped)


def test_fit_frame_and_sizes():
    assert fit_frame(np.zeros((10, 20), np.uint8), (40, 30)).shape == (30, 40, 3)
    assert parse_size("160x120") == (160, 120)
    with pytest.raises(ValueError):
        parse_size("160")


def test_synthetic_frames_carry_their_groups_through_subsets():
    frames = load_synthetic(10, seed=0, split="test", frame_size=(64, 48))
    assert set(frames.groups) == {"kind", "shape", "viewpoint"}
    assert all((k == "held") == bool(y) for k, y in zip(frames.groups["kind"], frames.labels))
    sub = frames.subset([1, 3])
    assert sub.groups["shape"] == [frames.groups["shape"][1], frames.groups["shape"][3]]
    from tacforce_training.tasks.grasp_success.metrics import accuracy_by_group
    by = accuracy_by_group([1, 0, 1], [0.9, 0.8, 0.2], {"kind": ["a", "a", "b"]})
    assert by == {"kind": {"a": {"n": 2, "accuracy": 0.5}, "b": {"n": 1, "accuracy": 0.0}}}


def test_metrics_on_known_scores(tmp_path):
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    scores = np.array([0.9, 0.8, 0.4, 0.1, 0.2, 0.6, 0.3, 0.7])
    m = classification_metrics(labels, scores)
    assert m["confusion_matrix"] == [[3, 1], [1, 3]]
    assert m["accuracy"] == 0.75 and m["recall"] == {"failure": 0.75, "success": 0.75}
    assert m["roc_auc"] == pytest.approx(15 / 16)
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5 and roc_auc([1, 1], [0.2, 0.3]) is None
    assert sum(m["reliability"]["counts"]) == 8
    path = save_reliability_plot(m, tmp_path / "r.png")
    assert cv2.imread(str(path)) is not None
    with pytest.raises(ValueError):
        classification_metrics([1, 0], [0.5, 1.5])
