"""Labelled frames from bags: an image topic plus a label topic (grasp success).

A label message applies to every image from its time until the next label message:

* label topic ``std_msgs/Bool``: ``True`` = held (success), ``False`` = not held (failure);
* label topic ``std_msgs/String``: a class name (``success``/``held``/``1`` or
  ``failure``/``not_held``/``0``, case-insensitive, see ``LABEL_WORDS``), or ``""`` /
  ``unknown`` to stop labelling (frames until the next label are skipped, e.g. while the
  gripper is still closing).

Times: an image's time is its header stamp (as for every other pairing in tacforce); Bool and
String carry no header, so a label's time is when the bag recorded it (log time). Each image is
paired with the latest label at or before its stamp; images before the first label are
skipped. Frames come back in the same form as ``data.tactile_pairs.load_tactile_pairs`` gives: mono8
(H, W, 1) or RGB (H, W, 3) uint8, after an optional per-frame ``transform`` (e.g. resize).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .bags import COMPRESSED_IMAGE, IMAGE, STRING, default_typestore, open_bag, stamp_to_ns
from .data.tactile_pairs import decode_frame, topic_connections
from .perception.image import ImageError

log = logging.getLogger(__name__)

BOOL = "std_msgs/msg/Bool"
LABEL_WORDS = {
    "success": 1, "successful": 1, "held": 1, "true": 1, "1": 1, "positive": 1, "grasped": 1,
    "failure": 0, "fail": 0, "failed": 0, "unsuccessful": 0, "not_held": 0, "false": 0, "0": 0,
    "negative": 0, "not_successful": 0, "dropped": 0,
}
UNLABELLED = ("", "unknown", "none")


def label_of_name(name: str) -> int | None:
    """1 / 0 for a class name (folder or label message), None for 'no label', ValueError else."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key in UNLABELLED:
        return None
    if key not in LABEL_WORDS:
        raise ValueError(f"unknown class name {name!r}; use one of "
                         f"{', '.join(k for k, v in LABEL_WORDS.items() if v == 1)} (held) or "
                         f"{', '.join(k for k, v in LABEL_WORDS.items() if v == 0)} (not held)")
    return LABEL_WORDS[key]


@dataclass
class LabelledFrames:
    images: list = field(default_factory=list)       # uint8 (H, W, C) each
    labels: list = field(default_factory=list)       # 0 / 1
    stamps_ns: list = field(default_factory=list)
    encoding: str | None = None
    images_read: int = 0
    skipped_unlabelled: int = 0
    skipped_bad_image: int = 0
    labels_read: int = 0

    def summary(self) -> str:
        held = int(sum(self.labels))
        return (f"{len(self.labels)} labelled frames ({held} held, {len(self.labels) - held} not held) "
                f"from {self.images_read} images and {self.labels_read} labels; skipped "
                f"{self.skipped_unlabelled} unlabelled, {self.skipped_bad_image} undecodable")


def load_labelled_frames(bags: Iterable[Path | str] | Path | str, image_topic: str, label_topic: str,
                         transform: Callable[[np.ndarray], np.ndarray] | None = None,
                         max_frames: int | None = None) -> LabelledFrames:
    """Every image of ``image_topic`` paired with the latest label of ``label_topic``."""
    out = LabelledFrames()
    store = default_typestore()
    for bag in [bags] if isinstance(bags, (str, Path)) else bags:
        bag = Path(bag)
        with open_bag(bag) as reader:
            image_conns = topic_connections(reader, bag, image_topic, {IMAGE, COMPRESSED_IMAGE})
            label_conns = topic_connections(reader, bag, label_topic, {BOOL, STRING})
            times, values = [], []
            for conn, log_time, raw in reader.messages(connections=label_conns):
                msg = store.deserialize_cdr(raw, conn.msgtype)
                times.append(int(log_time))
                if conn.msgtype == BOOL:
                    values.append(int(bool(msg.data)))
                else:
                    label = label_of_name(msg.data)
                    values.append(-1 if label is None else label)
            out.labels_read += len(times)
            order = np.argsort(np.asarray(times, np.int64), kind="stable")
            label_times = np.asarray(times, np.int64)[order]
            label_values = np.asarray(values, np.int64)[order]
            frames = []
            for conn, _, raw in reader.messages(connections=image_conns):
                if max_frames is not None and len(out.labels) + len(frames) >= max_frames:
                    break
                msg = store.deserialize_cdr(raw, conn.msgtype)
                out.images_read += 1
                t_ns = stamp_to_ns(msg.header.stamp)
                index = int(np.searchsorted(label_times, t_ns, side="right")) - 1
                if index < 0 or label_values[index] < 0:
                    out.skipped_unlabelled += 1
                    continue
                try:
                    image, encoding = decode_frame(msg, conn.msgtype)
                except ImageError as exc:
                    out.skipped_bad_image += 1
                    log.debug("%s: dropping image at %d ns: %s", bag, t_ns, exc)
                    continue
                if out.encoding is None:
                    out.encoding = encoding
                elif encoding != out.encoding:
                    raise ValueError(f"{bag}: {image_topic} mixes {out.encoding} and {encoding} frames")
                frames.append((t_ns, transform(image) if transform else image, int(label_values[index])))
            frames.sort(key=lambda f: f[0])
            for t_ns, image, label in frames:
                out.stamps_ns.append(t_ns)
                out.images.append(image)
                out.labels.append(label)
    return out


def write_labelled_bag(path: Path | str, images, labels, image_topic: str, label_topic: str,
                       rate_hz: float = 10.0, t0_ns: int = 1_700_000_000 * 10**9,
                       label_type: str = "bool", encoding: str = "rgb8") -> None:
    """Record frames as sensor_msgs/Image on ``image_topic`` with a label message (Bool, or
    String 'success'/'failure') whenever the label changes, just before the frame it applies to.
    For tests, demos and synthetic data sets.
    """
    from .bags import BagWriter
    from .perception.image import encode_image_fields

    if label_type not in ("bool", "string"):
        raise ValueError("label_type must be 'bool' or 'string'")
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    with BagWriter(path) as writer:
        types = writer.typestore.types
        writer.add_topic(image_topic, IMAGE)
        writer.add_topic(label_topic, BOOL if label_type == "bool" else STRING)
        last = None
        for k, (image, label) in enumerate(zip(images, labels)):
            t_ns = t0_ns + round(k * 1e9 / rate_hz)
            if label != last:
                msg = (types[BOOL](data=bool(label)) if label_type == "bool"
                       else types[STRING](data="success" if label else "failure"))
                writer.write_msg(label_topic, t_ns - 1000, msg)
                last = label
            fields_ = encode_image_fields(np.asarray(image), encoding)
            fields_["data"] = np.frombuffer(fields_["data"], np.uint8)
            stamp = types["builtin_interfaces/msg/Time"](sec=t_ns // 10**9, nanosec=t_ns % 10**9)
            writer.write_msg(image_topic, t_ns, types[IMAGE](
                header=types["std_msgs/msg/Header"](stamp=stamp, frame_id="grasp_camera"), **fields_))
