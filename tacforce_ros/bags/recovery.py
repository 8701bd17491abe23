"""Explicit recovery of a killed writer's bag: ``tacforce bag recover`` (like ``ros2 bag reindex``).

Reading never recovers: a bag without metadata.yaml or with an MCAP file
without footer may still be being recorded, and rewriting it under a live
recorder would corrupt it. Recovery is asked for by name instead, and
refuses a bag a live BagWriter holds.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from mcap.exceptions import McapError, UnsupportedCompressionError
from mcap.opcode import Opcode
from mcap.records import Channel, DataEnd, Footer, McapRecord, Message, Schema
from mcap.stream_reader import StreamReader
from mcap.writer import MCAP0_MAGIC, CompressionType, Writer
from rosbags.interfaces import (
    Connection,
    ConnectionExtRosbag2,
    MessageDefinition,
    MessageDefinitionFormat,
)
from rosbags.rosbag2.metadata import parse_qos

from .metadata import FileSummary, bag_metadata, summarize_file, write_yaml, yaml_text
from .writer import BagError, acquire_lock, release_lock

if TYPE_CHECKING:
    from collections.abc import Iterator

log = logging.getLogger(__name__)

_FOOTER_SIZE = 1 + 8 + 20 + len(MCAP0_MAGIC)  # opcode, length, footer fields, magic


@dataclass(frozen=True)
class Recovery:
    """What `recover_bag` did."""

    path: Path
    storage: str
    message_count: int
    rewritten: tuple[str, ...]
    dropped_bytes: int

    def summary(self) -> str:
        """One line for the CLI."""
        if self.rewritten:
            names = ", ".join(self.rewritten)
            files = f"rewrote {names}, dropping {self.dropped_bytes} cut-off bytes"
        else:
            files = "no storage file needed rewriting"
        return (
            f"{self.path}: {self.message_count} messages readable ({self.storage}); "
            f"{files}; metadata.yaml rebuilt"
        )


def needs_recovery(path: Path | str) -> bool:
    """Return True for a bag directory without metadata.yaml or with an unfinished MCAP file."""
    bagdir = Path(path)
    if not bagdir.is_dir():
        return False
    if not (bagdir / "metadata.yaml").exists():
        return True
    return any(not _mcap_is_complete(f) for f in _storage_files(bagdir) if f.suffix == ".mcap")


def recover_bag(path: Path | str) -> Recovery:
    """Make a bag a killed writer left readable again.

    An MCAP file without footer is rewritten (atomically) with every complete
    record it holds; a cut-off tail is dropped. A sqlite3 file gets its
    journal/WAL settled. Then metadata.yaml is rebuilt from the storage files.
    Refuses a bag a live BagWriter still holds.
    """
    bagdir = Path(path)
    if not bagdir.is_dir():
        msg = f"{bagdir} is not a bag directory"
        raise BagError(msg)
    files = _storage_files(bagdir)
    kinds = {f.suffix for f in files}
    if not files:
        msg = f"{bagdir} holds no .mcap or .db3 file to recover"
        raise BagError(msg)
    if len(kinds) > 1:
        msg = f"{bagdir} mixes .mcap and .db3 files; cannot tell which storage it is"
        raise BagError(msg)

    lock = acquire_lock(bagdir)
    try:
        rewritten: list[str] = []
        dropped = 0
        for storage_file in files:
            if storage_file.suffix == ".db3":
                _settle_sqlite(storage_file)
            elif not _mcap_is_complete(storage_file):
                dropped += _rewrite_mcap(storage_file)
                rewritten.append(storage_file.name)
        storage_id = "mcap" if ".mcap" in kinds else "sqlite3"
        summaries = [summarize_file(f) for f in files]
        write_yaml(bagdir / "metadata.yaml", bag_metadata(storage_id, summaries))
    finally:
        release_lock(bagdir, lock)
    return Recovery(
        bagdir, storage_id, sum(s.count for s in summaries), tuple(rewritten), dropped
    )


def _storage_files(bagdir: Path) -> list[Path]:
    """Storage files in split order (name_0, name_1, ..., name_10)."""

    def natural(p: Path) -> list[object]:
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]

    return sorted(
        (
            p
            for p in bagdir.iterdir()
            if p.suffix in {".mcap", ".db3"} and not p.name.startswith(".") and p.is_file()
        ),
        key=natural,
    )


def _mcap_is_complete(path: Path) -> bool:
    """Tell whether an MCAP file is complete: it ends with a footer record and the magic."""
    if path.stat().st_size < len(MCAP0_MAGIC) + _FOOTER_SIZE:
        return False
    with path.open("rb") as f:
        f.seek(-_FOOTER_SIZE, os.SEEK_END)
        tail = f.read(_FOOTER_SIZE)
    return tail[0] == Opcode.FOOTER and tail.endswith(MCAP0_MAGIC)


def _settle_sqlite(path: Path) -> None:
    """Roll back a hot journal / checkpoint a WAL: rosbags reads the file immutable."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("SELECT count(*) FROM messages").fetchone()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.DatabaseError as exc:
        msg = f"cannot recover sqlite3 bag file {path}: {exc}"
        raise BagError(msg) from exc
    finally:
        conn.close()


def _rewrite_mcap(path: Path) -> int:
    """Rewrite an unfinished MCAP with its complete records; return bytes dropped.

    The new file is built beside the old one and replaces it atomically, so
    an interrupted recovery leaves the original untouched.
    """
    tmp = path.with_name(f".{path.name}.recovering")
    try:
        with path.open("rb") as src, tmp.open("wb") as dst:
            cut = _CutMcap(src, path)
            summary = _copy_mcap(cut, dst, path.name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    log.warning(
        "recovered %s: kept %d messages, dropped %d cut-off bytes",
        path,
        summary.count,
        cut.dropped_bytes,
    )
    return cut.dropped_bytes


class _CutMcap:
    """The records of an MCAP file up to where a killed writer cut it off.

    mcap's ``StreamReader`` reads records in file order (chunks opened into
    their schemas, channels and messages) without needing the summary or
    footer. A record cut short makes it raise (``EndOfFile`` while skipping
    the missing rest, ``struct.error`` on a short field,
    ``RecordLengthLimitExceeded`` on a length past the file end), so every
    record it yields is complete and a chunk yields all its records or none.
    """

    def __init__(self, src: BinaryIO, path: Path) -> None:
        self._src = src
        self._path = path
        self._size = os.fstat(src.fileno()).st_size
        self.dropped_bytes = self._size

    def records(self) -> Iterator[McapRecord]:
        """Complete records before the footer; sets ``dropped_bytes`` as it goes."""
        magic = self._src.read(len(MCAP0_MAGIC))
        if magic != MCAP0_MAGIC:
            if MCAP0_MAGIC.startswith(magic):
                return  # killed before the magic reached the file
            msg = f"{self._path} is not an MCAP file (bad magic)"
            raise BagError(msg)
        self.dropped_bytes = self._size - self._src.tell()
        reader = StreamReader(self._src, skip_magic=True, record_size_limit=self._size)
        records = reader.records
        while True:
            try:
                record = next(records)
            except StopIteration:
                return
            except UnsupportedCompressionError as exc:
                msg = f"cannot recover {self._path}: {exc}"
                raise BagError(msg) from exc
            except (McapError, struct.error, ValueError):
                return  # the record the kill cut short
            if isinstance(record, (DataEnd, Footer)):
                return
            self.dropped_bytes = self._size - self._src.tell()
            yield record


def _copy_mcap(cut: _CutMcap, dst: BinaryIO, name: str) -> FileSummary:
    """Copy schemas, channels and messages to a new MCAP file with summary and footer.

    Channels without a schema are left out (rosbag2 cannot type them). The
    file also embeds its metadata, as rosbags' and rosbag2's writers do.
    """
    out = Writer(dst, compression=CompressionType.NONE)
    out.start(profile="ros2", library="tacforce bag recover")
    schemas: dict[int, tuple[int, Schema]] = {}
    channels: dict[int, tuple[int, Connection]] = {}
    counts: Counter[int] = Counter()
    first, last = 2**63 - 1, 0
    for record in cut.records():
        if isinstance(record, Schema) and record.id not in schemas:
            new_id = out.register_schema(record.name, record.encoding, record.data)
            schemas[record.id] = (new_id, record)
        elif isinstance(record, Channel) and record.id not in channels:
            if record.schema_id not in schemas:
                continue
            schema_id, schema = schemas[record.schema_id]
            new_id = out.register_channel(
                record.topic, record.message_encoding, schema_id, record.metadata
            )
            channels[record.id] = (new_id, _connection(record, schema))
        elif isinstance(record, Message) and record.channel_id in channels:
            out.add_message(
                channels[record.channel_id][0],
                record.log_time,
                record.data,
                record.publish_time,
                record.sequence,
            )
            counts[record.channel_id] += 1
            first, last = min(first, record.log_time), max(last, record.log_time)
    total = sum(counts.values())
    summary = FileSummary(
        name,
        [(conn, counts[cid]) for cid, (_, conn) in channels.items()],
        first if total else 0,
        last,
        total,
    )
    info = bag_metadata("mcap", [summary])["rosbag2_bagfile_information"]
    out.add_metadata("rosbag2", {"serialized_metadata": yaml_text(info)})
    out.finish()
    return summary


def _connection(channel: Channel, schema: Schema) -> Connection:
    """Return the rosbags view of a channel that metadata.yaml needs (type, serialization, QoS)."""
    qos = channel.metadata.get("offered_qos_profiles", "")
    return Connection(
        channel.id,
        channel.topic,
        schema.name,
        MessageDefinition(MessageDefinitionFormat.NONE, ""),
        "",
        0,
        ConnectionExtRosbag2(channel.message_encoding, parse_qos(qos)),
        None,
    )
