"""Location-paired marker masks of several sensors: the training data of m2m translation.

GenForce pairs images of different sensors pressed by the same indenter at the same place and
depth, and trains the translation on a few frames per contact. Pairs come from the simulator
(`tacforce_ros.sim.paired_contacts`) or from bags of the same protocol run on two sensors
(`pairs_from_bags`). Masks are stored bit-packed in a .npz (as GenForce stores its marker
images), and loaded without pickle.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .perception.markers import MarkerSegmentation

# Phases in which the indenter touches the sensor (see tacforce_ros.sim.indentation).
CONTACT_PHASES = ("press", "shear_out", "shear_back")
MAX_PIXELS = 4096 * 4096  # bound before allocating the unpacked masks


@dataclass
class MarkerPairs:
    """masks[sensor][i] of every sensor show contact i; references are the no-contact masks."""

    masks: dict[str, np.ndarray]  # sensor -> bool (N, H, W)
    references: dict[str, np.ndarray]  # sensor -> bool (H, W)
    segmentation: dict[str, MarkerSegmentation]
    contacts: list[str] = field(default_factory=list)  # one description per pair (where it came from)

    def __post_init__(self) -> None:
        sizes = {name: m.shape for name, m in self.masks.items()}
        if len({s[0] for s in sizes.values()}) > 1 or len({s[1:] for s in sizes.values()}) > 1:
            raise ValueError(f"paired masks must share count and size, got {sizes}")
        if set(self.references) != set(self.masks) or set(self.segmentation) != set(self.masks):
            raise ValueError("every sensor needs masks, a reference mask and its segmentation")

    @property
    def sensors(self) -> tuple[str, ...]:
        return tuple(self.masks)

    def __len__(self) -> int:
        return len(next(iter(self.masks.values())))

    def masks_of(self, sensor: str) -> np.ndarray:
        if sensor not in self.masks:
            raise ValueError(f"no sensor {sensor!r} in these pairs (have: {', '.join(self.sensors)})")
        return self.masks[sensor]

    def save(self, path: str | Path) -> None:
        arrays = {"sensors": np.array(self.sensors), "contacts": np.array(self.contacts, dtype=str),
                  "shape": np.array(next(iter(self.masks.values())).shape, np.int64)}
        for name in self.sensors:
            arrays[f"mask/{name}"] = np.packbits(self.masks[name], axis=None)
            arrays[f"reference/{name}"] = np.packbits(self.references[name], axis=None)
            seg = self.segmentation[name]
            arrays[f"segmentation/{name}"] = np.array([seg.threshold, float(seg.dark_markers)])
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            np.savez_compressed(f, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> "MarkerPairs":
        try:
            with np.load(path, allow_pickle=False) as data:
                count, height, width = (int(v) for v in data["shape"])
                if not (0 < height * width <= MAX_PIXELS and count >= 0):
                    raise ValueError(f"bad mask size {count}x{height}x{width}")
                masks, references, segmentation = {}, {}, {}
                for name in (str(s) for s in data["sensors"]):
                    masks[name] = _unpack(data[f"mask/{name}"], (count, height, width))
                    references[name] = _unpack(data[f"reference/{name}"], (height, width))
                    threshold, dark = data[f"segmentation/{name}"].tolist()
                    segmentation[name] = MarkerSegmentation(threshold, bool(dark))
                contacts = [str(c) for c in data["contacts"]]
        except FileNotFoundError:
            raise ValueError(f"{path}: paired-mask file not found") from None
        except (KeyError, ValueError, OSError) as exc:
            raise ValueError(f"{path}: not a marker-pairs file ({exc})") from None
        return cls(masks, references, segmentation, contacts)

    def split(self, fraction: float, seed: int = 0) -> tuple["MarkerPairs", "MarkerPairs"]:
        """Random (1 - fraction, fraction) split of the pairs, e.g. for validation."""
        order = np.random.default_rng(seed).permutation(len(self))
        cut = len(self) - max(1, round(fraction * len(self)))
        return self._subset(order[:cut]), self._subset(order[cut:])

    def _subset(self, index: np.ndarray) -> "MarkerPairs":
        index = np.sort(index)
        return MarkerPairs({n: m[index] for n, m in self.masks.items()}, self.references, self.segmentation,
                           [self.contacts[i] for i in index] if self.contacts else [])


def _unpack(packed: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    size = int(np.prod(shape))
    bits = np.unpackbits(packed, count=size) if packed.size * 8 >= size else None
    if bits is None:
        raise ValueError(f"truncated mask data for shape {shape}")
    return bits.reshape(shape).astype(bool)


def first_frame(bag: str | Path, image_topic: str) -> np.ndarray:
    """Return the first image of a bag, mono8 (H, W): a run starts out of contact, so this is the
    sensor's reference image.
    """
    from .bags import BagError, read_messages
    from .perception.compressed import decode_compressed
    from .perception.image import decode_image

    for item in read_messages(bag, [image_topic]):
        image = decode_compressed(item.msg) if item.msgtype.endswith("CompressedImage") else decode_image(item.msg)
        if image.ndim == 3 and image.shape[2] != 1:
            raise BagError(f"{bag}: marker images must be mono8, {image_topic} has {image.shape[2]} channels")
        return np.ascontiguousarray(image.reshape(image.shape[:2]))
    raise BagError(f"{bag}: no image on {image_topic}")


def bag_reference(bag: str | Path, image_topic: str) -> tuple[MarkerSegmentation, np.ndarray]:
    """Return a recorded sensor's segmentation and no-contact marker mask, from the bag's first frame."""
    image = first_frame(bag, image_topic)
    segmentation = MarkerSegmentation.from_reference(image)
    return segmentation, segmentation.mask(image)


def pairs_from_bags(source_bag: str | Path, target_bag: str | Path, names: tuple[str, str], image_topic: str,
                    wrench_topic: str, episode_topic: str, frames_per_episode: int = 4) -> MarkerPairs:
    """Pairs from the same protocol run on two sensors: in each episode both bags have, take
    `frames_per_episode` in-contact source frames evenly spread, and the target frame recorded
    at the same time since the episode started (a repeated robot trajectory).
    """
    from .data.tactile_pairs import load_tactile_pairs

    masks: dict[str, list[np.ndarray]] = {names[0]: [], names[1]: []}
    segmentation, references = {}, {}
    episodes = []
    for name, bag in zip(names, (source_bag, target_bag)):
        segmentation[name], references[name] = bag_reference(bag, image_topic)
        sequences = load_tactile_pairs(bag, image_topic, wrench_topic, episode_topic).sequences
        episodes.append({s.episode["episode"]: s for s in sequences if s.episode and s.phases})
    contacts = []
    for number in sorted(set(episodes[0]) & set(episodes[1])):
        source, target = episodes[0][number], episodes[1][number]
        touching = [i for i, p in enumerate(source.phases) if p in CONTACT_PHASES]
        if not touching:
            continue
        picks = np.unique(np.linspace(0, len(touching) - 1, frames_per_episode).round().astype(int))
        source_t = source.stamps_ns - source.stamps_ns[0]
        target_t = target.stamps_ns - target.stamps_ns[0]
        for k in picks:
            i = touching[k]
            j = int(np.abs(target_t - source_t[i]).argmin())
            masks[names[0]].append(segmentation[names[0]].mask(source.images[i]))
            masks[names[1]].append(segmentation[names[1]].mask(target.images[j]))
            contacts.append(f"episode {number} {source.phases[i]} t={source_t[i] * 1e-9:.3f}s")
    if not contacts:
        raise ValueError(f"{source_bag} and {target_bag} share no episode with in-contact frames")
    return MarkerPairs({n: np.stack(m) for n, m in masks.items()}, references, segmentation, contacts)
