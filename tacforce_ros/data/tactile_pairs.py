"""Tactile images paired with the wrench at each image's stamp, read from bags.

Training, evaluation and the transfer tools all read recorded runs through
``load_tactile_pairs``: plain numpy arrays per sequence, split at episode
marks (or time gaps), with every dropped frame counted.

"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from tacforce_ros.bags import (
    COMPRESSED_IMAGE,
    IMAGE,
    STRING,
    WRENCH,
    BagError,
    EpisodeError,
    EpisodeMark,
    default_typestore,
    open_bag,
    parse_episode,
    stamp_to_ns,
)
from tacforce_ros.perception.compressed import decode_compressed
from tacforce_ros.perception.force import REFERENCE_FRAMES
from tacforce_ros.perception.image import (
    ImageError,
    decode_image,
    image_order,
    to_model_channels,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from rosbags.interfaces import Connection
    from rosbags.rosbag2 import Reader

log = logging.getLogger(__name__)

_GAP_FACTOR = 5.0


@dataclass
class Sequence:
    """Consecutive frames of one bag (and one episode when the bag has an episode topic)."""

    images: np.ndarray  # (N, H, W, C), as returned by the transform (uint8 without one)
    forces: np.ndarray  # (N, 3) float32, newtons
    torques: np.ndarray  # (N, 3) float32, newton metres
    stamps_ns: np.ndarray  # (N,) int64, image header stamps
    encoding: str  # 'mono8' (C=1) or 'rgb8' (colour frames are always RGB)
    bag: str
    episode: dict[str, Any] | None = None  # EpisodeMark.info() of the episode, if known
    phases: tuple[str, ...] | None = None  # per-frame phase, if the bag has episode marks

    def __len__(self) -> int:
        return len(self.stamps_ns)


@dataclass
class LoadStats:
    """What `load_tactile_pairs` read, kept and dropped."""

    bags: int = 0
    images_read: int = 0
    paired: int = 0
    dropped_no_wrench: int = 0
    dropped_bad_image: int = 0
    wrenches_read: int = 0
    episodes_malformed: int = 0
    sequences: int = 0
    wrench_frames: dict[str, int] = field(default_factory=dict)  # header.frame_id -> wrenches


@dataclass
class TactilePairs:
    """Images with the wrench interpolated at each image's stamp, split into sequences."""

    sequences: list[Sequence]
    stats: LoadStats = field(default_factory=LoadStats)
    tolerance_s: float = 0.01

    def summary(self) -> str:
        """One line for logs."""
        s = self.stats
        return (
            f"{s.bags} bag(s): {s.images_read} images read, {s.paired} paired in "
            f"{s.sequences} sequence(s); dropped {s.dropped_no_wrench} with no wrench within "
            f"{self.tolerance_s * 1e3:g} ms, {s.dropped_bad_image} undecodable; "
            f"{s.wrenches_read} wrenches; {s.episodes_malformed} malformed episode message(s)"
        )

    @property
    def force_frame(self) -> str:
        """Return the frame_id of the wrenches the labels came from: the frame the model's force is
        in. '' when the bags never said; ValueError when they disagree (one model, one frame).
        """
        frames = [name for name in self.stats.wrench_frames if name]
        if len(frames) > 1:
            raise ValueError(f"wrenches in several frames {sorted(frames)}: one model predicts in one "
                             "frame; train on bags from one force sensor mounting")
        return frames[0] if frames else ""


def interpolate_wrench(
    stamps_ns: np.ndarray,
    values: np.ndarray,
    t_ns: int,
    tolerance_ns: int,
) -> np.ndarray | None:
    """Linear interpolation of ``values`` (sorted by ``stamps_ns``) at ``t_ns``.

    None unless there is a sample at most ``tolerance_ns`` before *and* after
    ``t_ns`` (one sample exactly at ``t_ns`` is both).
    """
    before = int(np.searchsorted(stamps_ns, t_ns, side="right")) - 1
    after = int(np.searchsorted(stamps_ns, t_ns, side="left"))
    if before < 0 or after >= len(stamps_ns):
        return None
    t0, t1 = int(stamps_ns[before]), int(stamps_ns[after])
    if t_ns - t0 > tolerance_ns or t1 - t_ns > tolerance_ns:
        return None
    if t1 == t0:
        return values[before].copy()
    frac = (t_ns - t0) / (t1 - t0)
    return values[before] + frac * (values[after] - values[before])


@dataclass
class _Frame:
    stamp_ns: int
    image: np.ndarray
    wrench: np.ndarray
    encoding: str
    mark: EpisodeMark | None


def load_tactile_pairs(
    bags: Iterable[Path | str] | Path | str,
    image_topic: str,
    wrench_topic: str,
    episode_topic: str | None = None,
    tolerance_s: float = 0.01,
    max_frames: int | None = None,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> TactilePairs:
    """Pair every image with the wrench interpolated at its header stamp.

    Frames are mono8 (H, W, 1) or RGB (H, W, 3) uint8 before ``transform``
    (applied per frame while loading, e.g. to downscale and save memory).
    Within a bag, frames are split into sequences at episode changes when the
    bag has valid episode marks, else where the stamp gap exceeds 5x the
    median frame interval; also wherever the frame shape or encoding changes.
    Sequences never span bags. ``max_frames`` caps the paired frames in total.
    """
    spec = _PairingSpec(
        image_topic, wrench_topic, episode_topic, round(tolerance_s * 1e9), transform
    )
    stats = LoadStats()
    sequences: list[Sequence] = []
    for bag in [bags] if isinstance(bags, (str, Path)) else bags:
        remaining = None if max_frames is None else max_frames - stats.paired
        if remaining is not None and remaining <= 0:
            break
        frames = _load_bag_frames(Path(bag), spec, remaining, stats)
        sequences.extend(_split_sequences(frames, str(bag)))
        stats.bags += 1
    stats.sequences = len(sequences)
    return TactilePairs(sequences, stats, tolerance_s)


@dataclass(frozen=True)
class _PairingSpec:
    image_topic: str
    wrench_topic: str
    episode_topic: str | None
    tolerance_ns: int
    transform: Callable[[np.ndarray], np.ndarray] | None


def _load_bag_frames(
    bag: Path,
    spec: _PairingSpec,
    max_frames: int | None,
    stats: LoadStats,
) -> list[_Frame]:
    """Two passes: wrenches and episode marks first, so images are decoded only when paired."""
    store = default_typestore()
    with open_bag(bag) as reader:
        image_conns = topic_connections(reader, bag, spec.image_topic, {IMAGE, COMPRESSED_IMAGE})
        wrench_conns = topic_connections(reader, bag, spec.wrench_topic, {WRENCH})
        episode_conns = (
            topic_connections(reader, bag, spec.episode_topic, {STRING}, required=False)
            if spec.episode_topic
            else []
        )
        wrench_stamps, wrench_values, marks = _read_wrenches_and_marks(
            reader, wrench_conns + episode_conns, bag, stats
        )
        mark_stamps = np.asarray([m.stamp_ns for m in marks], dtype=np.int64)
        frames: list[_Frame] = []
        for conn, _, raw in reader.messages(connections=image_conns):
            if max_frames is not None and len(frames) >= max_frames:
                break
            msg = store.deserialize_cdr(raw, conn.msgtype)
            stats.images_read += 1
            t_ns = stamp_to_ns(msg.header.stamp)
            wrench = interpolate_wrench(wrench_stamps, wrench_values, t_ns, spec.tolerance_ns)
            if wrench is None:
                stats.dropped_no_wrench += 1
                continue
            try:
                image, encoding = decode_frame(msg, conn.msgtype)
            except ImageError as exc:
                stats.dropped_bad_image += 1
                log.debug("%s: dropping image at %d ns: %s", bag, t_ns, exc)
                continue
            if spec.transform is not None:
                image = spec.transform(image)
            index = int(np.searchsorted(mark_stamps, t_ns, side="right")) - 1
            mark = marks[index] if index >= 0 else None
            frames.append(_Frame(t_ns, image, wrench, encoding, mark))
            stats.paired += 1
    if spec.episode_topic and not marks and frames:
        log.info("%s: no valid episode marks; splitting sequences at time gaps", bag)
    frames.sort(key=lambda fr: fr.stamp_ns)
    return frames


def _read_wrenches_and_marks(
    reader: Reader,
    conns: list[Connection],
    bag: Path,
    stats: LoadStats,
) -> tuple[np.ndarray, np.ndarray, list[EpisodeMark]]:
    """Wrench header stamps (sorted int64 ns), (N, 6) force+torque, and sorted episode marks."""
    store = default_typestore()
    stamps: list[int] = []
    wrenches: list[tuple[float, ...]] = []
    marks: list[EpisodeMark] = []
    for conn, _, raw in reader.messages(connections=conns):
        msg = store.deserialize_cdr(raw, conn.msgtype)
        if conn.msgtype == WRENCH:
            f, t = msg.wrench.force, msg.wrench.torque
            stamps.append(stamp_to_ns(msg.header.stamp))
            frame = msg.header.frame_id
            stats.wrench_frames[frame] = stats.wrench_frames.get(frame, 0) + 1
            wrenches.append((f.x, f.y, f.z, t.x, t.y, t.z))
            continue
        try:
            marks.append(parse_episode(msg.data))
        except EpisodeError as exc:
            stats.episodes_malformed += 1
            log.debug("%s: skipping episode message: %s", bag, exc)
    stats.wrenches_read += len(stamps)
    stamp_array = np.asarray(stamps, dtype=np.int64)
    order = np.argsort(stamp_array, kind="stable")
    values = np.asarray(wrenches, dtype=np.float64).reshape(-1, 6)[order]
    marks.sort(key=lambda m: m.stamp_ns)
    return stamp_array[order], values, marks


def topic_connections(
    reader: Reader,
    bag: Path,
    topic: str,
    msgtypes: set[str],
    *,
    required: bool = True,
) -> list[Connection]:
    """Return the connections of ``topic`` (of one of ``msgtypes``); an error lists what the bag has."""
    conns = [c for c in reader.connections if c.topic == topic]
    if not conns and required:
        available = ", ".join(sorted({f"{c.topic} [{c.msgtype}]" for c in reader.connections}))
        msg = f'{bag}: no topic {topic!r}; it has: {available or "no topics"}'
        raise BagError(msg)
    if wrong := [c.msgtype for c in conns if c.msgtype not in msgtypes]:
        msg = f"{bag}: topic {topic!r} has type {wrong[0]}, expected one of {sorted(msgtypes)}"
        raise BagError(msg)
    return conns


def decode_frame(msg: Any, msgtype: str) -> tuple[np.ndarray, str]:
    """Decode to mono8 (H, W, 1) or RGB (H, W, 3) so every bag yields the same channel order."""
    if msgtype == IMAGE:
        image, order = decode_image(msg), image_order(msg.encoding)
    else:
        image = decode_compressed(msg)
        order = "gray" if image.shape[2] == 1 else "bgr"
    if order == "gray":
        return np.array(image), "mono8"
    return np.array(to_model_channels(image, order, "rgb")), "rgb8"


def _split_sequences(frames: list[_Frame], bag: str) -> list[Sequence]:
    if not frames:
        return []
    stamps = np.asarray([f.stamp_ns for f in frames], dtype=np.int64)
    use_episodes = any(f.mark is not None for f in frames)
    gaps = np.diff(stamps)
    median = float(np.median(gaps)) if len(gaps) else 0.0
    starts = [0]
    for i in range(1, len(frames)):
        prev, cur = frames[i - 1], frames[i]
        if use_episodes:
            boundary = _episode_of(prev) != _episode_of(cur)
        else:
            boundary = median > 0 and gaps[i - 1] > _GAP_FACTOR * median
        if boundary or cur.image.shape != prev.image.shape or cur.encoding != prev.encoding:
            starts.append(i)
    bounds = [*starts, len(frames)]
    return [_make_sequence(frames[a:b], bag, use_episodes) for a, b in zip(bounds, bounds[1:])]


def _episode_of(frame: _Frame) -> int | None:
    return None if frame.mark is None else frame.mark.episode


def _make_sequence(frames: list[_Frame], bag: str, use_episodes: bool) -> Sequence:
    wrench = np.stack([f.wrench for f in frames]).astype(np.float32)
    first_mark = frames[0].mark
    return Sequence(
        images=np.stack([f.image for f in frames]),
        forces=np.ascontiguousarray(wrench[:, :3]),
        torques=np.ascontiguousarray(wrench[:, 3:]),
        stamps_ns=np.asarray([f.stamp_ns for f in frames], dtype=np.int64),
        encoding=frames[0].encoding,
        bag=bag,
        episode=first_mark.info() if first_mark else None,
        phases=tuple(f.mark.phase if f.mark else "" for f in frames) if use_episodes else None,
    )


CONTACT_FORCE = 0.05          # N; and 5 % of the sequence's largest |F|: above either, a frame is in contact


def no_contact_reference(images, forces, max_frames: int = REFERENCE_FRAMES) -> tuple[np.ndarray, int]:
    """Return the sensor's no-contact image for a sequence, and how many frames made it.

    The mean of up to ``max_frames`` leading frames before the first contact (|F| above
    CONTACT_FORCE or 5 % of the sequence's peak), as the node averages its first frames after
    start. A sequence that starts in contact has no such frame: its first frame is returned
    with a count of 0, so a caller can say how many sequences lacked a true reference.
    """
    magnitude = np.linalg.norm(np.asarray(forces, np.float64).reshape(-1, 3), axis=1)
    if not len(magnitude):
        raise ValueError("empty sequence: no reference frame")
    threshold = max(CONTACT_FORCE, 0.05 * float(magnitude.max()))
    contact = np.flatnonzero(magnitude > threshold)
    count = min(max_frames, int(contact[0]) if len(contact) else len(magnitude))
    frames = np.stack([np.asarray(images[i]) for i in range(max(count, 1))])
    reference = frames.astype(np.float32).mean(0).round().astype(np.uint8)
    return (reference[..., None] if reference.ndim == 2 else reference), count
