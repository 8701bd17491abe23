"""Grasp-success data: the seeds' folder layout, bags with a label topic, the synthetic
generator; class balancing and the seeds' augmentations. numpy + OpenCV only (no torch).

Every source becomes a ``FrameSet``: RGB uint8 frames [N, H, W, 3] of one size (the size the
exported model takes), labels (1 held, 0 not held) and a name per frame.

Folder layout (seeds 002 and 004): ``ROOT/<class>/*.png|jpg|...`` with one sub-folder per class,
named e.g. ``success``/``failure`` (``tacforce_ros.bag_labels.LABEL_WORDS`` lists the accepted
names: successful/unsuccessful, held/not_held, 1/0, ...). Images of any size are resized to
``frame_size`` (width, height) with area interpolation, or letterboxed when ``keep_aspect``.

Grasp trials (``tacforce sim grasp-trials --out DIR``): ``DIR`` or ``DIR/bag`` reads as a bag
whose topics default to the after-grasp view and its held label; each frame's group says how
the trial ended (held, shaken out, not held) and ``objects`` the random_urdfs objects of its
scenes, so training can refuse the held-out objects.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tacforce_ros.bag_labels import label_of_name, load_labelled_frames

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
CLASS_NAMES = ("failure", "success")


@dataclass
class FrameSet:
    images: np.ndarray           # uint8 [N, H, W, 3] RGB
    labels: np.ndarray           # int64 [N], 1 = held
    names: list                  # where each frame came from
    source: str = ""
    groups: dict | None = None   # optional: group name -> one value per frame (synthetic kinds, shapes)
    objects: frozenset | None = None   # grasp trials: random_urdfs indices of the scenes, else None

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> dict[str, int]:
        return {CLASS_NAMES[c]: int((self.labels == c).sum()) for c in (0, 1)}

    def summary(self) -> str:
        c = self.counts()
        shape = "x".join(map(str, self.images.shape[2:0:-1])) if len(self) else "-"
        return f"{self.source}: {len(self)} frames {shape} ({c['success']} success, {c['failure']} failure)"

    def subset(self, index) -> "FrameSet":
        index = np.asarray(index, np.int64)
        groups = None if self.groups is None else {k: [v[i] for i in index] for k, v in self.groups.items()}
        return FrameSet(self.images[index], self.labels[index], [self.names[i] for i in index], self.source, groups,
                        self.objects)


def parse_size(text: str) -> tuple[int, int]:
    """'160x120' -> (160, 120) (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size must be WIDTHxHEIGHT, e.g. 160x120, not {text!r}") from None
    if not (16 <= w <= 4096 and 16 <= h <= 4096):
        raise ValueError(f"size {text} outside 16..4096 px")
    return w, h


def fit_frame(image: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """Any uint8 (H, W[, C]) gray/RGB image -> RGB (h, w, 3) at ``frame_size`` = (w, h)."""
    if image.ndim == 2 or image.shape[2] == 1:
        image = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
    w, h = frame_size
    if image.shape[:2] != (h, w):
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image)


def load_folder(root: str | Path, frame_size: tuple[int, int], max_per_class: int | None = None) -> FrameSet:
    """Load the seeds' layout: one sub-folder per class (see module doc). Unreadable files are an
    error naming the file (a silently smaller data set hides broken copies).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: data folder not found")
    images, labels, names = [], [], []
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    seen = set()
    for folder in classes:
        label = label_of_name(folder.name)
        if label is None:
            continue
        seen.add(label)
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        for path in files[:max_per_class]:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f"{path}: not a readable image")
            images.append(fit_frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), frame_size))
            labels.append(label)
            names.append(str(path.relative_to(root)))
    if seen != {0, 1}:
        found = ", ".join(p.name for p in classes) or "none"
        raise ValueError(f"{root}: needs one folder per class, e.g. success/ and failure/ (found: {found})")
    if not images:
        raise ValueError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) in the class folders")
    return FrameSet(np.stack(images), np.asarray(labels, np.int64), names, str(root))


def trial_bag(path: str | Path) -> Path:
    """Return the bag of a ``tacforce sim grasp-trials`` output folder (``DIR/bag``); other paths unchanged."""
    path = Path(path)
    return path / "bag" if (path / "trials.csv").is_file() and (path / "bag").is_dir() else path


def trial_info(bag: Path) -> dict[int, dict]:
    """Return the grasp-trials bag's per-trial JSON by stamp (the after-grasp view's); {} for other bags."""
    from tacforce_ros.bags import read_messages
    from tacforce_ros.sim.pybullet_grasp.runs import TOPICS

    return {m.log_time_ns: json.loads(m.msg.data) for m in read_messages(bag, TOPICS["trial"])}


def trial_outcome(info: dict) -> str:
    """Return how a trial ended: held, shaken out (held after the lift, dropped by the shake), or not held."""
    return "held" if info["success"] else "shaken out" if info.get("held_after_lift") else "not held"


def load_bags(bags, image_topic: str | None, label_topic: str | None, frame_size: tuple[int, int],
              max_frames: int | None = None) -> FrameSet:
    """Bags with an image topic and a label topic (std_msgs/Bool or String; see bag_labels), or
    grasp-trials folders/bags (topics default to the after-grasp view and its label).
    """
    from tacforce_ros.sim.pybullet_grasp.runs import TOPICS
    from tacforce_ros.sim.pybullet_grasp.scene import HELD_OUT_OBJECTS, held_out_indices

    bags = [trial_bag(b) for b in bags]
    if image_topic is None and label_topic is None and all((b.parent / "trials.csv").is_file() for b in bags):
        image_topic, label_topic = TOPICS["after"], TOPICS["held"]
    if not image_topic or not label_topic:
        raise ValueError("--bag needs --image-topic and --label-topic (grasp-trials folders have defaults)")
    infos = [trial_info(b) for b in bags]
    images, labels, names, groups, summaries = [], [], [], [], []
    for bag, trials in zip(bags, infos):   # one by one: every trials bag starts at the same stamp
        left = None if max_frames is None else max_frames - len(labels)
        data = load_labelled_frames(bag, image_topic, label_topic, transform=lambda im: fit_frame(im, frame_size),
                                    max_frames=left)
        images += data.images
        labels += data.labels
        names += [f"{bag}:{image_topic}@{t}" for t in data.stamps_ns]
        groups += [trial_outcome(trials[t]) if t in trials else "?" for t in data.stamps_ns]
        summaries.append(data.summary())
    if not labels:
        raise ValueError(f"no labelled frames in {', '.join(map(str, bags))}: {'; '.join(summaries)}")
    source = f"bags {', '.join(map(str, bags))} ({'; '.join(summaries)})"
    objects = None
    if any(infos):
        objects = frozenset(int(i) for trials in infos for info in trials.values() for i in info["objects"])
        held_out = len(held_out_indices(objects))
        source += (f"; grasp trials on {len(objects)} random_urdfs objects {min(objects):03d}-{max(objects):03d}, "
                   f"{held_out} of them held out ({HELD_OUT_OBJECTS[0]}-{HELD_OUT_OBJECTS[1]})")
    return FrameSet(np.stack(images), np.asarray(labels, np.int64), names, source,
                    {"trial": groups} if all(infos) else None, objects)


def refuse_held_out_objects(frames: FrameSet, what: str) -> None:
    """Raise ValueError if ``frames`` come from grasp trials on held-out objects (800-999): those are
    kept for the reported numbers, never for training or validation.
    """
    from tacforce_ros.sim.pybullet_grasp.scene import HELD_OUT_OBJECTS, held_out_indices

    bad = held_out_indices(frames.objects or ())
    if bad:
        raise ValueError(f"{what} data holds grasp trials on held-out objects {HELD_OUT_OBJECTS[0]}-"
                         f"{HELD_OUT_OBJECTS[1]} ({len(bad)}: {', '.join(map(str, bad[:5]))}...); make it with "
                         "`tacforce sim grasp-trials --objects train` (another --seed for validation)")


def load_synthetic(count: int, seed: int, split: str, frame_size: tuple[int, int]) -> FrameSet:
    """``count`` generator frames; ``groups`` records each frame's kind, object shape and (test
    split) which viewpoint factor lies outside the training ranges, for per-group scores.
    """
    from tacforce_ros.sim.grasp_check_scenes import HELD_OUT_SHAPES, CheckSceneConfig, frames

    w, h = frame_size
    images = np.empty((count, h, w, 3), np.uint8)
    labels = np.empty(count, np.int64)
    groups = {"kind": [], "shape": [], "viewpoint": []}
    for k, frame in enumerate(frames(count, seed, split, CheckSceneConfig(height=h, width=w))):
        images[k], labels[k] = frame.image, frame.label
        groups["kind"].append(frame.kind)
        groups["shape"].append(frame.shape)
        groups["viewpoint"].append(f"held-out {frame.view['held_out']}" if frame.view["held_out"] else "training")
    names = [f"synthetic/{split}/{seed}/{k}:{kind}:{shape}"
             for k, (kind, shape) in enumerate(zip(groups["kind"], groups["shape"]))]
    what = ("held-out viewpoints (camera roll, keystone or distance outside the training ranges), "
            f"half the objects of held-out shapes ({', '.join(HELD_OUT_SHAPES)})" if split == "test"
            else "training viewpoints and shapes")
    return FrameSet(images, labels, names, f"synthetic {split} split, seed {seed}: {what}", groups)


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices; each class keeps ``fraction`` (at least one) held out."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for c in (0, 1):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) < 2:
            raise ValueError(f"class {CLASS_NAMES[c]!r} has {len(idx)} frame(s); need 2 to hold one out")
        n = min(len(idx) - 1, max(1, round(len(idx) * fraction)))
        held.append(idx[:n])
        train.append(idx[n:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(held))


def balanced_epoch(labels: np.ndarray, rng: np.random.Generator, size: int | None = None) -> np.ndarray:
    """Return the indices for one epoch with both classes equally often (the seeds' data were unbalanced;
    seed 004 augmented each class to 1000). The majority class is walked without repeats, the
    minority is repeated (then augmented differently each time). ``size`` defaults to twice the
    majority count.
    """
    groups = [np.flatnonzero(labels == c) for c in (0, 1)]
    if any(len(g) == 0 for g in groups):
        raise ValueError("both classes need at least one frame")
    per_class = (size or 2 * max(len(g) for g in groups)) // 2
    parts = []
    for g in groups:
        reps = np.concatenate([rng.permutation(g) for _ in range(math.ceil(per_class / len(g)))])
        parts.append(reps[:per_class])
    return rng.permutation(np.concatenate(parts))


@dataclass(frozen=True)
class Augment:
    """Seed 002's Keras ImageDataGenerator settings as random affine warps of a uint8 frame:
    rotation up to ``rotation_deg``, shifts up to ``shift`` of the side, shear up to ``shear``
    (a shear factor: Keras reads shear_range=0.2 as 0.2 degrees, which does nothing; the seed
    meant a visible shear), zoom in [1 - zoom, 1 + zoom], horizontal flip with p = 0.5, edges
    filled by replicating the border (Keras' 'nearest'). Plus mild brightness/contrast jitter.
    """

    rotation_deg: float = 40.0
    shift: float = 0.2
    shear: float = 0.2
    zoom: float = 0.2
    flip: bool = True
    brightness: float = 0.15

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = image.shape[:2]
        angle = math.radians(rng.uniform(-self.rotation_deg, self.rotation_deg))
        zoom = rng.uniform(1 - self.zoom, 1 + self.zoom)
        shear = rng.uniform(-self.shear, self.shear)
        tx, ty = rng.uniform(-self.shift, self.shift) * w, rng.uniform(-self.shift, self.shift) * h
        c, s = math.cos(angle), math.sin(angle)
        m = np.array([[c, -s], [s, c]]) @ np.array([[1.0, shear], [0.0, 1.0]]) * zoom
        if self.flip and rng.random() < 0.5:
            m = m @ np.array([[-1.0, 0.0], [0.0, 1.0]])
        centre = np.array([(w - 1) / 2, (h - 1) / 2])   # pixel centres: a flip maps x to w-1-x
        offset = centre - m @ centre + (tx, ty)
        out = cv2.warpAffine(image, np.hstack([m, offset[:, None]]).astype(np.float32), (w, h),
                             flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if self.brightness > 0:
            gain = rng.uniform(1 - self.brightness, 1 + self.brightness)
            bias = rng.uniform(-self.brightness, self.brightness) * 64
            out = cv2.convertScaleAbs(out, alpha=gain, beta=bias)
        return out.reshape(image.shape)

    @classmethod
    def none(cls) -> "Augment":
        return cls(0.0, 0.0, 0.0, 0.0, False, 0.0)
