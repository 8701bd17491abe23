"""Visual-force data: episodes (folders, bags or synthetic) -> windows of T frames -> labels.

An episode is one press (tacforce_ros.sim.visual_force_scenes.Episode: uint8 RGB frames, the
force along the press axis, the 3-axis force, and its object / degree / illumination cell).
A sample is a window of T consecutive frames of one episode; its label is the force at the
window's last frame (what the node publishes for the newest frame of its ring buffer).

Held-out split (the issue's Done-when): training uses only cells with neither the held-out
illumination nor the held-out direction; the test set is every cell with either.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tacforce_ros.sim.visual_force_scenes import Episode, SceneConfig, generate, read_folders


@dataclass
class EpisodeSet:
    """Episodes and a line saying where they came from (it goes into summaries and model cards)."""

    episodes: list[Episode]
    source: str

    def __len__(self) -> int:
        return len(self.episodes)

    def frames(self) -> int:
        return sum(len(e) for e in self.episodes)

    def summary(self) -> str:
        cells = sorted({e.cell for e in self.episodes})
        return (f"{self.source}: {len(self.episodes)} episodes, {self.frames()} frames, "
                f"{len(cells)} object/direction/illumination cell(s)")

    def subset(self, keep, source: str | None = None) -> "EpisodeSet":
        return EpisodeSet([self.episodes[i] for i in keep], source or self.source)


def parse_size(text: str) -> tuple[int, int]:
    """'128x96' -> (128, 96), (width, height), each 8..4096 px."""
    match = re.fullmatch(r"(\d+)x(\d+)", text.strip().lower())
    size = (int(match[1]), int(match[2])) if match else None
    if size is None or not all(8 <= v <= 4096 for v in size):
        raise ValueError(f"frame size {text!r} is not WxH with sides 8..4096")
    return size


def load_synthetic(cfg: SceneConfig) -> EpisodeSet:
    """Render the synthetic presses of tacforce_ros.sim.visual_force_scenes (deterministic per seed)."""
    return EpisodeSet(generate(cfg), f"synthetic scenes (seed {cfg.seed}, {cfg.episodes_per_cell} episode(s) "
                                     f"per cell, {cfg.width}x{cfg.height})")


def load_folder(root: Path, size: tuple[int, int] | None = None) -> EpisodeSet:
    """Read the seed's folder layout (frames resized to ``size``)."""
    return EpisodeSet(read_folders(root, size), f"folder {root}")


def load_bags(bags, image_topic: str, wrench_topic: str, episode_topic: str | None = None,
              size: tuple[int, int] | None = None, min_frames: int = 2) -> EpisodeSet:
    """Camera + wrench bags, paired by stamp (tacforce_ros.data.tactile_pairs.load_tactile_pairs: the wrench
    interpolated at each image stamp, sequences split at episodes or stamp gaps). The force
    along the press axis is the force's norm (the probe pushes along its axis); the 3-axis
    force is the wrench's. Object / direction / illumination are unknown ('bag', -1, -1).
    """
    import cv2

    from tacforce_ros.data.tactile_pairs import load_tactile_pairs

    def transform(image):
        if image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        if size is not None and (image.shape[1], image.shape[0]) != tuple(size):
            image = cv2.resize(image, tuple(size), interpolation=cv2.INTER_AREA)
        return image

    pairs = load_tactile_pairs([Path(b) for b in bags], image_topic, wrench_topic, episode_topic,
                               transform=transform)
    episodes = []
    for seq in pairs.sequences:
        if len(seq) < min_frames:
            continue
        force3 = seq.forces.astype(np.float32)
        episodes.append(Episode(np.asarray(seq.images), np.linalg.norm(force3, axis=1).astype(np.float32),
                                force3, Path(seq.bag).name.replace("_", "-") or "bag", -1, -1, source=seq.bag))
    if not episodes:
        raise ValueError(f"no sequence of at least {min_frames} paired frames in the bag(s): {pairs.summary()}")
    return EpisodeSet(episodes, f"bags ({pairs.summary()})")


def held_out_split(data: EpisodeSet, illumination: int, degree: int) -> tuple[EpisodeSet, EpisodeSet]:
    """(train: neither held-out value, test: either)."""
    train = [i for i, e in enumerate(data.episodes) if e.illumination != illumination and e.degree != degree]
    test = [i for i, e in enumerate(data.episodes) if e.illumination == illumination or e.degree == degree]
    if not train or not test:
        raise ValueError(f"holding out {illumination} lux and {degree} degrees leaves "
                         f"{len(train)} training and {len(test)} test episodes")
    return (data.subset(train, f"{data.source}, without {illumination} lux and {degree} deg"),
            data.subset(test, f"{data.source}, held out: {illumination} lux or {degree} deg"))


def episode_split(data: EpisodeSet, fraction: float, seed: int) -> tuple[EpisodeSet, EpisodeSet]:
    """Hold out ``fraction`` of the episodes of every cell (at least one where a cell has two
    or more) for validation (best-epoch choice); the rest trains.
    """
    rng = np.random.default_rng(seed)
    cells: dict[tuple, list[int]] = {}
    for i, e in enumerate(data.episodes):
        cells.setdefault(e.cell, []).append(i)
    val = []
    for idx in cells.values():
        if len(idx) >= 2:
            n = max(1, int(round(fraction * len(idx))))
            val += list(rng.choice(idx, n, replace=False))
    if not val:
        val = list(rng.choice(len(data), max(1, int(round(fraction * len(data)))), replace=False))
    keep = sorted(set(range(len(data))) - set(val))
    if not keep:
        raise ValueError("validation split leaves no training episodes")
    return (data.subset(keep, f"{data.source} (training episodes)"),
            data.subset(sorted(val), f"{data.source} ({len(val)} episodes held out for validation, seed {seed})"))


def windows(data: EpisodeSet, frames: int, stride: int = 1) -> np.ndarray:
    """(episode, last frame index) of every window of ``frames`` consecutive frames, int64 [N, 2]."""
    out = [(i, end) for i, e in enumerate(data.episodes) for end in range(frames - 1, len(e), stride)]
    if not out:
        raise ValueError(f"no episode has {frames} frames")
    return np.array(out, np.int64).reshape(-1, 2)


def labels(data: EpisodeSet, index: np.ndarray, outputs: int) -> np.ndarray:
    """float32 [N, outputs]: the force at each window's last frame."""
    if outputs == 1:
        return np.array([[data.episodes[i].force[end]] for i, end in index], np.float32).reshape(-1, 1)
    return np.array([data.episodes[i].force3[end] for i, end in index], np.float32).reshape(-1, 3)
