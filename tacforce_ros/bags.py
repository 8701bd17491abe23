"""Write and read rosbag2 bags, and pair tactile images with wrenches.

This is the only module that writes bags. It uses ``rosbags`` (pure Python),
so it works with no ROS install; the bags it writes are ordinary rosbag2
directories (``metadata.yaml`` + one ``.mcap`` or ``.db3`` file) that
``ros2 bag info/play`` read.

Durability: rosbags' MCAP writer keeps messages in an in-memory chunk (up to
1 MiB) and writes the summary, footer and ``metadata.yaml`` only on close, so
a killed writer would lose the pending chunk and leave a file its reader
rejects. ``BagWriter`` therefore closes the chunk and flushes the file every
``flush_every`` messages or ``flush_interval_s`` seconds (sqlite3: commits),
and ``recover_bag`` (like ``ros2 bag reindex``) turns what a killed writer
left into a readable bag: every complete record up to the kill is kept.
``open_bag``/``read_messages``/``load_tactile_pairs`` recover automatically.
Flushing uses rosbags' ``McapWriter.close_chunk``/``bio``/``chunk`` and
``Sqlite3Writer.conn`` (rosbags 0.11); the SIGKILL tests guard that contract.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import re
import shutil
import sqlite3
import struct
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

import numpy as np
from rosbags.interfaces import (
    Connection,
    ConnectionExtRosbag2,
    MessageDefinition,
    MessageDefinitionFormat,
)
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.rosbag2.enums import CompressionMode
from rosbags.rosbag2.errors import ReaderError, WriterError
from rosbags.rosbag2.metadata import dump_qos_v9, parse_qos
from rosbags.rosbag2.storage_mcap import McapWriter, decompress
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Writer
from rosbags.typesys import Stores, get_typestore
from ruamel.yaml import YAML

from tacforce_ros.perception.image import (
    ImageError,
    decode_compressed,
    decode_image,
    image_order,
    to_model_channels,
)

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Iterator
    from types import TracebackType

    from rosbags.typesys.store import Typestore

log = logging.getLogger(__name__)

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
WRENCH = 'geometry_msgs/msg/WrenchStamped'
STRING = 'std_msgs/msg/String'

METADATA_VERSION = 9
_LOCK_NAME = '.tacforce-writer.lock'
_MCAP_MAGIC = b'\x89MCAP0\r\n'
_OP_FOOTER, _OP_SCHEMA, _OP_CHANNEL, _OP_MESSAGE, _OP_CHUNK = 0x02, 0x03, 0x04, 0x05, 0x06
_GAP_FACTOR = 5.0


class BagError(RuntimeError):
    """A bag that cannot be written, recovered or read as asked."""


@lru_cache(maxsize=1)
def default_typestore() -> Typestore:
    """The ROS 2 Jazzy typestore (message classes, CDR (de)serialization)."""
    return get_typestore(Stores.ROS2_JAZZY)


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (rclpy or rosbags) to integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


# --------------------------------------------------------------------------- writing


class BagWriter:
    """rosbag2 writer that a SIGKILL cannot make unreadable.

    ``write`` takes CDR bytes, as ``rclpy.serialization.serialize_message`` or a
    ``raw=True`` subscription gives them; ``write_msg`` serializes a rosbags
    message object. Every ``flush_every`` messages or ``flush_interval_s``
    seconds (checked on write) pending data reaches the OS, so it survives the
    process being killed; ``fsync=True`` also makes it survive power loss.
    ``flushed_count`` is how many messages have reached the OS so far. A node
    whose input can stop should also call ``flush()`` from a timer.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        storage: Literal['mcap', 'sqlite3'] = 'mcap',
        flush_every: int = 500,
        flush_interval_s: float = 0.5,
        fsync: bool = False,
        typestore: Typestore | None = None,
    ) -> None:
        plugins = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
        if storage not in plugins:
            msg = f'unknown storage {storage!r}; use mcap or sqlite3'
            raise BagError(msg)
        if flush_every < 1 or flush_interval_s <= 0:
            msg = 'flush_every must be >= 1 and flush_interval_s > 0'
            raise BagError(msg)
        self.path = Path(path)
        self.flush_every = flush_every
        self.flush_interval_s = flush_interval_s
        self.fsync = fsync
        self.typestore = typestore or default_typestore()
        try:
            self._writer = Writer(
                self.path, version=METADATA_VERSION, storage_plugin=plugins[storage]
            )
            self._writer.open()
        except WriterError as exc:
            msg = f'cannot create bag {self.path}: {exc}'
            raise BagError(msg) from exc
        self._lock = _acquire_lock(self.path)
        self._connections: dict[str, Connection] = {}
        self._unflushed = 0
        self._last_flush = time.monotonic()
        self.flushed_count = 0
        self.message_count = 0
        self.flush()  # the MCAP header reaches the file before any message

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Register a topic; msgtype must be in the typestore (e.g. sensor_msgs/msg/Image)."""
        if topic in self._connections:
            msg = f'topic {topic!r} was already added'
            raise BagError(msg)
        if msgtype not in self.typestore.fielddefs:
            msg = f'message type {msgtype!r} is not in the typestore'
            raise BagError(msg)
        self._connections[topic] = self._writer.add_connection(
            topic, msgtype, typestore=self.typestore
        )

    def write(self, topic: str, stamp_ns: int, rawdata: bytes | bytearray | memoryview) -> None:
        """Write one CDR-serialized message with log time ``stamp_ns``."""
        self._writer.write(self._connection(topic), int(stamp_ns), rawdata)
        self.message_count += 1
        self._unflushed += 1
        if (
            self._unflushed >= self.flush_every
            or time.monotonic() - self._last_flush >= self.flush_interval_s
        ):
            self.flush()

    def write_msg(self, topic: str, stamp_ns: int, msg: object) -> None:
        """Serialize a rosbags message object with the typestore and write it."""
        msgtype = self._connection(topic).msgtype
        self.write(topic, stamp_ns, self.typestore.serialize_cdr(msg, msgtype))

    def flush(self) -> None:
        """Hand everything written so far to the OS (and the disk, with fsync)."""
        storage = self._writer.storage
        if storage is None:
            return
        if isinstance(storage, McapWriter):
            if storage.chunk.msgs:
                storage.close_chunk()
            storage.bio.flush()
            if self.fsync:
                os.fsync(storage.bio.fileno())
        elif isinstance(storage, Sqlite3Writer):
            storage.conn.commit()
        self.flushed_count = self.message_count
        self._unflushed = 0
        self._last_flush = time.monotonic()

    def close(self) -> None:
        """Write the MCAP summary and metadata.yaml; safe to call twice."""
        if self._writer.storage is None:
            return
        self._writer.close()
        self.flushed_count = self.message_count
        (self.path / _LOCK_NAME).unlink(missing_ok=True)
        self._lock.close()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Close normally even after an error: what was recorded stays readable.
        self.close()

    def _connection(self, topic: str) -> Connection:
        try:
            return self._connections[topic]
        except KeyError:
            msg = f'topic {topic!r} was not added; call add_topic first'
            raise BagError(msg) from None


def _acquire_lock(bagdir: Path) -> Any:
    """flock a file in the bag so recovery never rewrites a bag a live writer holds.

    The kernel drops the lock when its process dies, so a killed writer's bag
    is recoverable at once.
    """
    handle = (bagdir / _LOCK_NAME).open('a')
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        msg = f'{bagdir} is being written by a live process; not recovering it'
        raise BagError(msg) from None
    return handle


# --------------------------------------------------------------------------- recovery


@dataclass(frozen=True)
class Recovery:
    """What `recover_bag` did."""

    path: Path
    storage: str
    message_count: int
    rewritten: tuple[str, ...]
    dropped_bytes: int


def needs_recovery(path: Path | str) -> bool:
    """True for a bag directory without metadata.yaml or with an unfinished MCAP file."""
    bagdir = Path(path)
    if not bagdir.is_dir():
        return False
    if not (bagdir / 'metadata.yaml').exists():
        return True
    return any(not _mcap_is_complete(f) for f in _storage_files(bagdir) if f.suffix == '.mcap')


def recover_bag(path: Path | str) -> Recovery:
    """Make a bag a killed writer left readable again (like ``ros2 bag reindex``).

    An MCAP file without footer is rewritten (atomically) with every complete
    record it holds; a truncated tail is dropped. A sqlite3 file gets its
    journal/WAL settled. Then metadata.yaml is rebuilt from the storage files.
    Refuses a bag a live BagWriter still holds.
    """
    bagdir = Path(path)
    files = _storage_files(bagdir)
    kinds = {f.suffix for f in files}
    if not files:
        msg = f'{bagdir} holds no .mcap or .db3 file to recover'
        raise BagError(msg)
    if len(kinds) > 1:
        msg = f'{bagdir} mixes .mcap and .db3 files; cannot tell which storage it is'
        raise BagError(msg)

    lock = _acquire_lock(bagdir)
    try:
        rewritten: list[str] = []
        dropped = 0
        for storage_file in files:
            if storage_file.suffix == '.db3':
                _settle_sqlite(storage_file)
            elif not _mcap_is_complete(storage_file):
                dropped += _rewrite_mcap(storage_file)
                rewritten.append(storage_file.name)
        storage_id = 'mcap' if '.mcap' in kinds else 'sqlite3'
        summaries = [_summarize_file(f) for f in files]
        _write_yaml(bagdir / 'metadata.yaml', _metadata(storage_id, summaries))
        (bagdir / _LOCK_NAME).unlink(missing_ok=True)
    finally:
        lock.close()
    return Recovery(
        bagdir, storage_id, sum(s.count for s in summaries), tuple(rewritten), dropped
    )


def _storage_files(bagdir: Path) -> list[Path]:
    """Storage files in split order (name_0, name_1, ..., name_10)."""

    def natural(p: Path) -> list[object]:
        return [int(t) if t.isdigit() else t for t in re.split(r'(\d+)', p.name)]

    return sorted(
        (
            p
            for p in bagdir.iterdir()
            if p.suffix in {'.mcap', '.db3'} and not p.name.startswith('.') and p.is_file()
        ),
        key=natural,
    )


def _mcap_is_complete(path: Path) -> bool:
    """An MCAP file is complete when it ends with a footer record and the magic."""
    size = path.stat().st_size
    if size < 8 + 37:
        return False
    with path.open('rb') as f:
        f.seek(-37, os.SEEK_END)
        tail = f.read(37)
    return tail[0] == _OP_FOOTER and tail[-8:] == _MCAP_MAGIC


def _settle_sqlite(path: Path) -> None:
    """Roll back a hot journal / checkpoint a WAL: rosbags reads the file immutable."""
    conn = sqlite3.connect(path)
    try:
        conn.execute('SELECT count(*) FROM messages').fetchone()
        conn.execute('PRAGMA wal_checkpoint(TRUNCATE)')
    except sqlite3.DatabaseError as exc:
        msg = f'cannot recover sqlite3 bag file {path}: {exc}'
        raise BagError(msg) from exc
    finally:
        conn.close()


def _rewrite_mcap(path: Path) -> int:
    """Rewrite an unfinished MCAP with its complete records; return bytes dropped.

    The new file is built beside the old one and replaces it atomically, so
    an interrupted recovery leaves the original untouched.
    """
    tmpdir = path.parent / f'.{path.stem}.recovering'
    shutil.rmtree(tmpdir, ignore_errors=True)
    tmpdir.mkdir()
    out = McapWriter(tmpdir, CompressionMode.NONE)
    scan = _McapScan(path)
    try:
        summary = _copy_records(scan, out, path.name)
        info = _metadata('mcap', [summary])['rosbag2_bagfile_information']
        out.close(METADATA_VERSION, _yaml_text(info))
    except BaseException as exc:
        out.abort()
        shutil.rmtree(tmpdir, ignore_errors=True)
        if isinstance(exc, (ValueError, struct.error)):
            msg = f'cannot recover {path}: corrupt record ({exc})'
            raise BagError(msg) from exc
        raise
    os.replace(out.path, path)
    shutil.rmtree(tmpdir)
    log.warning(
        'recovered %s: kept %d messages, dropped %d trailing bytes',
        path,
        summary.count,
        scan.dropped_bytes,
    )
    return scan.dropped_bytes


def _copy_records(scan: _McapScan, out: McapWriter, name: str) -> _FileSummary:
    """Copy schemas, channels and messages from ``scan`` to ``out``."""
    schemas: dict[int, tuple[str, str, str]] = {}
    connections: dict[int, Connection] = {}
    counts: dict[int, int] = {}
    first, last = 2**63 - 1, 0
    added: set[str] = set()
    for op, body in scan.records():
        if op == _OP_SCHEMA:
            (sid,) = struct.unpack_from('<H', body)
            schema_name, pos = _read_str(body, 2)
            encoding, pos = _read_str(body, pos)
            data, _ = _read_str(body, pos)
            schemas[sid] = (schema_name, encoding, data)
        elif op == _OP_CHANNEL:
            conn, qos = _parse_channel(body, schemas)
            if conn.id in connections or conn.msgtype == '__schemaless__':
                continue
            if conn.msgtype not in added:
                out.add_msgtype(conn)
                added.add(conn.msgtype)
            out.add_connection(conn, qos)
            connections[conn.id] = conn
            counts[conn.id] = 0
        elif op == _OP_MESSAGE:
            cid, _, log_time, _ = struct.unpack_from('<HIQQ', body)
            if cid in connections:
                out.write(connections[cid], log_time, memoryview(body)[22:])
                counts[cid] += 1
                first, last = min(first, log_time), max(last, log_time)
    total = sum(counts.values())
    return _FileSummary(
        name,
        [(c, counts[c.id]) for c in connections.values()],
        first if total else 0,
        last,
        total,
    )


class _McapScan:
    """Reads MCAP records in file order and stops at the first incomplete one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.dropped_bytes = 0

    def records(self) -> Iterator[tuple[int, bytes]]:
        """Schema, channel and message records, from the top level and inside chunks."""
        size = self.path.stat().st_size
        with self.path.open('rb') as f:
            magic = f.read(8)
            if magic != _MCAP_MAGIC:
                if not _MCAP_MAGIC.startswith(magic):
                    msg = f'{self.path} is not an MCAP file (bad magic)'
                    raise BagError(msg)
                self.dropped_bytes = size  # killed before the magic reached the file
                return
            good_end = 8
            while (head := f.read(9)) and len(head) == 9:
                op, length = head[0], int.from_bytes(head[1:], 'little')
                if op in {0x00, _OP_FOOTER} or length > size - f.tell():
                    break
                body = f.read(length)
                if op == _OP_CHUNK:
                    try:
                        inner = list(_chunk_records(body))
                    except (ReaderError, ValueError, struct.error):
                        break
                    yield from inner
                elif op in {_OP_SCHEMA, _OP_CHANNEL, _OP_MESSAGE}:
                    yield op, body
                good_end = f.tell()
        self.dropped_bytes = size - good_end


def _chunk_records(body: bytes) -> Iterator[tuple[int, bytes]]:
    _, _, uncompressed_size, crc = struct.unpack_from('<QQQI', body)
    compression, pos = _read_str(body, 28)
    (compressed_size,) = struct.unpack_from('<Q', body, pos)
    pos += 8
    if pos + compressed_size > len(body):
        msg = 'chunk data exceeds its record'
        raise ValueError(msg)
    data = decompress(body[pos : pos + compressed_size], compression, uncompressed_size, crc)
    pos = 0
    while pos < len(data):
        op, length = data[pos], int.from_bytes(data[pos + 1 : pos + 9], 'little')
        if pos + 9 + length > len(data):
            msg = 'record exceeds its chunk'
            raise ValueError(msg)
        if op in {_OP_SCHEMA, _OP_CHANNEL, _OP_MESSAGE}:
            yield op, data[pos + 9 : pos + 9 + length]
        pos += 9 + length


def _read_str(buf: bytes, pos: int) -> tuple[str, int]:
    (length,) = struct.unpack_from('<I', buf, pos)
    end = pos + 4 + length
    if end > len(buf):
        msg = 'string exceeds its record'
        raise ValueError(msg)
    return buf[pos + 4 : end].decode(), end


def _parse_channel(
    body: bytes,
    schemas: dict[int, tuple[str, str, str]],
) -> tuple[Connection, str]:
    """A channel record as a rosbags Connection, plus its raw QoS string."""
    cid, sid = struct.unpack_from('<HH', body)
    topic, pos = _read_str(body, 4)
    encoding, pos = _read_str(body, pos)
    (meta_len,) = struct.unpack_from('<I', body, pos)
    meta, pos, end = {}, pos + 4, pos + 4 + meta_len
    while pos < end:
        key, pos = _read_str(body, pos)
        meta[key], pos = _read_str(body, pos)
    name, schema_encoding, data = schemas.get(sid, ('__schemaless__', '', ''))
    fmt = {
        'ros2msg': MessageDefinitionFormat.MSG,
        'ros2idl': MessageDefinitionFormat.IDL,
        'omgidl': MessageDefinitionFormat.IDL,
    }.get(schema_encoding, MessageDefinitionFormat.NONE)
    qos = meta.get('offered_qos_profiles', '')
    conn = Connection(
        cid,
        topic,
        name,
        MessageDefinition(fmt, data),
        '',
        0,
        ConnectionExtRosbag2(encoding, parse_qos(qos)),
        None,
    )
    return conn, qos


@dataclass(frozen=True)
class _FileSummary:
    name: str
    topics: list[tuple[Connection, int]]
    start_ns: int
    end_ns: int
    count: int


def _summarize_file(path: Path) -> _FileSummary:
    with Reader(path) as reader:
        count = reader.message_count
        return _FileSummary(
            path.name,
            [(c, c.msgcount) for c in reader.connections],
            reader.start_time if count else 0,
            reader.end_time - 1 if count else 0,
            count,
        )


def _metadata(storage_id: str, files: list[_FileSummary]) -> dict[str, Any]:
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
        return store.hash_rihs01(conn.msgtype) if conn.msgtype in store.fielddefs else ''

    return {
        'rosbag2_bagfile_information': {
            'version': METADATA_VERSION,
            'storage_identifier': storage_id,
            'relative_file_paths': [f.name for f in files],
            'duration': {'nanoseconds': duration},
            'starting_time': {'nanoseconds_since_epoch': start},
            'message_count': sum(f.count for f in files),
            'topics_with_message_count': [
                {
                    'topic_metadata': {
                        'name': conn.topic,
                        'type': conn.msgtype,
                        'serialization_format': conn.ext.serialization_format,
                        'offered_qos_profiles': dump_qos_v9(conn.ext.offered_qos_profiles),
                        'type_description_hash': type_hash(conn),
                    },
                    'message_count': count,
                }
                for conn, count in topics
            ],
            'compression_format': '',
            'compression_mode': '',
            'files': [
                {
                    'path': f.name,
                    'starting_time': {'nanoseconds_since_epoch': f.start_ns},
                    'duration': {'nanoseconds': f.end_ns - f.start_ns},
                    'message_count': f.count,
                }
                for f in files
            ],
            'custom_data': None,
            'ros_distro': 'rosbags',
        },
    }


def _yaml_text(data: object) -> str:
    yaml = YAML(typ='safe')
    yaml.default_flow_style = False
    stream = StringIO()
    yaml.dump(data, stream)
    return stream.getvalue()


def _write_yaml(path: Path, data: object) -> None:
    tmp = path.with_suffix('.yaml.tmp')
    tmp.write_text(_yaml_text(data), 'utf8')
    os.replace(tmp, path)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class BagMessage:
    """One deserialized message: log time is when it was recorded, not its header stamp."""

    topic: str
    msgtype: str
    log_time_ns: int
    msg: Any


@contextmanager
def open_bag(path: Path | str) -> Iterator[Reader]:
    """An open rosbags Reader on a bag directory (MCAP or sqlite3) or a single storage file.

    A bag directory a killed writer left behind is recovered first, with a warning.
    """
    bagpath = Path(path)
    if not bagpath.exists():
        msg = f'bag {bagpath} does not exist'
        raise BagError(msg)
    if needs_recovery(bagpath):
        log.warning('bag %s was not closed cleanly; recovering it', bagpath)
        recover_bag(bagpath)
    try:
        reader = Reader(bagpath)
        reader.open()
    except ReaderError as exc:
        msg = f'cannot read bag {bagpath}: {exc}'
        raise BagError(msg) from exc
    try:
        yield reader
    finally:
        reader.close()


def read_messages(
    path: Path | str,
    topics: Collection[str] | None = None,
    typestore: Typestore | None = None,
) -> Iterator[BagMessage]:
    """Deserialized messages of ``topics`` (all when None), in log-time order."""
    store = typestore or default_typestore()
    wanted = {topics} if isinstance(topics, str) else topics
    with open_bag(path) as reader:
        conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
        for conn in conns:
            if conn.msgtype not in store.fielddefs:
                msg = f'{path}: type {conn.msgtype!r} of {conn.topic!r} is not in the typestore'
                raise BagError(msg)
        if not conns:
            return
        for conn, log_time, raw in reader.messages(connections=conns):
            msg = store.deserialize_cdr(raw, conn.msgtype)
            yield BagMessage(conn.topic, conn.msgtype, log_time, msg)


# --------------------------------------------------------------------------- episodes


class EpisodeError(ValueError):
    """An episode message whose JSON is malformed."""


@dataclass(frozen=True)
class EpisodeMark:
    """From ``stamp_ns`` on, frames belong to this episode and phase."""

    stamp_ns: int
    episode: int
    indenter: str
    position_id: int
    depth_m: float
    phase: str

    def info(self) -> dict[str, Any]:
        """Per-episode fields (the phase changes within an episode)."""
        return {
            'episode': self.episode,
            'indenter': self.indenter,
            'position_id': self.position_id,
            'depth_m': self.depth_m,
        }


_EPISODE_TYPES: dict[str, tuple[type, ...]] = {
    'stamp_ns': (int,),
    'episode': (int,),
    'indenter': (str,),
    'position_id': (int,),
    'depth_m': (int, float),
    'phase': (str,),
}


def episode_message_json(
    *,
    stamp_ns: int,
    episode: int,
    indenter: str,
    position_id: int,
    depth_m: float,
    phase: str,
) -> str:
    """JSON for the std_msgs/String episode topic."""
    mark = EpisodeMark(
        int(stamp_ns), int(episode), str(indenter), int(position_id), float(depth_m), str(phase)
    )
    return json.dumps(asdict(mark), allow_nan=False)


def parse_episode(data: str) -> EpisodeMark:
    """Parse episode JSON (json.loads only); raise EpisodeError naming what is wrong."""
    try:
        obj = json.loads(data)
    except (json.JSONDecodeError, TypeError, RecursionError) as exc:
        msg = f'episode message is not JSON: {exc}'
        raise EpisodeError(msg) from None
    if not isinstance(obj, dict):
        msg = f'episode message must be a JSON object, got {type(obj).__name__}'
        raise EpisodeError(msg)
    for key, types in _EPISODE_TYPES.items():
        if key not in obj:
            msg = f'episode message lacks field {key!r}'
            raise EpisodeError(msg)
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, types):
            names = '/'.join(t.__name__ for t in types)
            msg = f'episode field {key!r} must be {names}, got {value!r}'
            raise EpisodeError(msg)
    if not math.isfinite(obj['depth_m']):
        msg = f'episode field depth_m must be finite, got {obj["depth_m"]!r}'
        raise EpisodeError(msg)
    return EpisodeMark(
        stamp_ns=obj['stamp_ns'],
        episode=obj['episode'],
        indenter=obj['indenter'],
        position_id=obj['position_id'],
        depth_m=float(obj['depth_m']),
        phase=obj['phase'],
    )


# --------------------------------------------------------------------------- pairing


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
            f'{s.bags} bag(s): {s.images_read} images read, {s.paired} paired in '
            f'{s.sequences} sequence(s); dropped {s.dropped_no_wrench} with no wrench within '
            f'{self.tolerance_s * 1e3:g} ms, {s.dropped_bad_image} undecodable; '
            f'{s.wrenches_read} wrenches; {s.episodes_malformed} malformed episode message(s)'
        )


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
    before = int(np.searchsorted(stamps_ns, t_ns, side='right')) - 1
    after = int(np.searchsorted(stamps_ns, t_ns, side='left'))
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
        image_conns = _topic_connections(reader, bag, spec.image_topic, {IMAGE, COMPRESSED_IMAGE})
        wrench_conns = _topic_connections(reader, bag, spec.wrench_topic, {WRENCH})
        episode_conns = (
            _topic_connections(reader, bag, spec.episode_topic, {STRING}, required=False)
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
                image, encoding = _decode_frame(msg, conn.msgtype)
            except ImageError as exc:
                stats.dropped_bad_image += 1
                log.debug('%s: dropping image at %d ns: %s', bag, t_ns, exc)
                continue
            if spec.transform is not None:
                image = spec.transform(image)
            index = int(np.searchsorted(mark_stamps, t_ns, side='right')) - 1
            mark = marks[index] if index >= 0 else None
            frames.append(_Frame(t_ns, image, wrench, encoding, mark))
            stats.paired += 1
    if spec.episode_topic and not marks and frames:
        log.info('%s: no valid episode marks; splitting sequences at time gaps', bag)
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
            wrenches.append((f.x, f.y, f.z, t.x, t.y, t.z))
            continue
        try:
            marks.append(parse_episode(msg.data))
        except EpisodeError as exc:
            stats.episodes_malformed += 1
            log.debug('%s: skipping episode message: %s', bag, exc)
    stats.wrenches_read += len(stamps)
    stamp_array = np.asarray(stamps, dtype=np.int64)
    order = np.argsort(stamp_array, kind='stable')
    values = np.asarray(wrenches, dtype=np.float64).reshape(-1, 6)[order]
    marks.sort(key=lambda m: m.stamp_ns)
    return stamp_array[order], values, marks


def _topic_connections(
    reader: Reader,
    bag: Path,
    topic: str,
    msgtypes: set[str],
    *,
    required: bool = True,
) -> list[Connection]:
    conns = [c for c in reader.connections if c.topic == topic]
    if not conns and required:
        available = ', '.join(sorted({f'{c.topic} [{c.msgtype}]' for c in reader.connections}))
        msg = f'{bag}: no topic {topic!r}; it has: {available or "no topics"}'
        raise BagError(msg)
    if wrong := [c.msgtype for c in conns if c.msgtype not in msgtypes]:
        msg = f'{bag}: topic {topic!r} has type {wrong[0]}, expected one of {sorted(msgtypes)}'
        raise BagError(msg)
    return conns


def _decode_frame(msg: Any, msgtype: str) -> tuple[np.ndarray, str]:
    """Decode to mono8 (H, W, 1) or RGB (H, W, 3) so every bag yields the same channel order."""
    if msgtype == IMAGE:
        image, order = decode_image(msg), image_order(msg.encoding)
    else:
        image = decode_compressed(msg)
        order = 'gray' if image.shape[2] == 1 else 'bgr'
    if order == 'gray':
        return np.array(image), 'mono8'
    return np.array(to_model_channels(image, order, 'rgb')), 'rgb8'


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
        phases=tuple(f.mark.phase if f.mark else '' for f in frames) if use_episodes else None,
    )
