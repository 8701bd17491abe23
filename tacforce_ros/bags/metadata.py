"""metadata.yaml of a rosbag2 bag, rebuilt from its storage files after a killed writer."""

from __future__ import annotations

import os
from dataclasses import dataclass
from io import StringIO
from typing import TYPE_CHECKING, Any

from rosbags.rosbag2 import Reader
from rosbags.rosbag2.metadata import dump_qos_v9
from ruamel.yaml import YAML

from .writer import METADATA_VERSION, default_typestore

if TYPE_CHECKING:
    from pathlib import Path

    from rosbags.interfaces import Connection


@dataclass(frozen=True)
class FileSummary:
    """What one storage file holds, as metadata.yaml lists it."""

    name: str
    topics: list[tuple[Connection, int]]
    start_ns: int
    end_ns: int
    count: int


def summarize_file(path: Path) -> FileSummary:
    """Topics, counts and times of a readable storage file (rosbags reads its index)."""
    with Reader(path) as reader:
        count = reader.message_count
        return FileSummary(
            path.name,
            [(c, c.msgcount) for c in reader.connections],
            reader.start_time if count else 0,
            reader.end_time - 1 if count else 0,
            count,
        )


def bag_metadata(storage_id: str, files: list[FileSummary]) -> dict[str, Any]:
    """metadata.yaml content in the layout rosbags' Writer (and rosbag2 Jazzy) writes."""
    topics: list[tuple[Connection, int]] = []
    for summary in files:
        for conn, count in summary.topics:
            key = (conn.topic, conn.msgtype, conn.ext)
            same = next(
                (i for i, (c, _) in enumerate(topics) if (c.topic, c.msgtype, c.ext) == key),
                None,
            )
            if same is None:
                topics.append((conn, count))
            else:
                topics[same] = (topics[same][0], topics[same][1] + count)
    nonempty = [f for f in files if f.count]
    start = min((f.start_ns for f in nonempty), default=0)
    duration = max((f.end_ns for f in nonempty), default=0) - start if nonempty else 0
    store = default_typestore()

    def type_hash(conn: Connection) -> str:
        if conn.digest:
            return conn.digest
        return store.hash_rihs01(conn.msgtype) if conn.msgtype in store.fielddefs else ""

    return {
        "rosbag2_bagfile_information": {
            "version": METADATA_VERSION,
            "storage_identifier": storage_id,
            "relative_file_paths": [f.name for f in files],
            "duration": {"nanoseconds": duration},
            "starting_time": {"nanoseconds_since_epoch": start},
            "message_count": sum(f.count for f in files),
            "topics_with_message_count": [
                {
                    "topic_metadata": {
                        "name": conn.topic,
                        "type": conn.msgtype,
                        "serialization_format": conn.ext.serialization_format,
                        "offered_qos_profiles": dump_qos_v9(conn.ext.offered_qos_profiles),
                        "type_description_hash": type_hash(conn),
                    },
                    "message_count": count,
                }
                for conn, count in topics
            ],
            "compression_format": "",
            "compression_mode": "",
            "files": [
                {
                    "path": f.name,
                    "starting_time": {"nanoseconds_since_epoch": f.start_ns},
                    "duration": {"nanoseconds": f.end_ns - f.start_ns},
                    "message_count": f.count,
                }
                for f in files
            ],
            "custom_data": None,
            "ros_distro": "rosbags",
        },
    }


def yaml_text(data: object) -> str:
    """YAML as rosbag2 writes it (block style)."""
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    stream = StringIO()
    yaml.dump(data, stream)
    return stream.getvalue()


def write_yaml(path: Path, data: object) -> None:
    """Write atomically, so a crash never leaves a half-written metadata.yaml."""
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml_text(data), "utf8")
    os.replace(tmp, path)
