"""Write rosbag2 bags that a killed writer leaves recoverable.

This is the only module that writes bags. It uses ``rosbags`` (pure Python),
so it works with no ROS install; the bags it writes are ordinary rosbag2
directories (``metadata.yaml`` + one ``.mcap`` or ``.db3`` file) that
``ros2 bag info/play`` read.

Durability: rosbags' MCAP writer keeps messages in an in-memory chunk (up to
1 MiB) and writes the summary, footer and ``metadata.yaml`` only on close, so
a killed writer would lose the pending chunk and leave a file its reader
rejects. ``BagWriter`` therefore closes the chunk and flushes the file every
``flush_every`` messages or ``flush_interval_s`` seconds (sqlite3: commits),
and ``tacforce bag recover`` (``recovery.recover_bag``) turns what a killed
writer left into a readable bag. Flushing uses rosbags'
``McapWriter.close_chunk``/``bio``/``chunk`` and ``Sqlite3Writer.conn``
(rosbags 0.11); the SIGKILL tests guard that contract.
"""

from __future__ import annotations

import fcntl
import os
import time
from functools import lru_cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.errors import WriterError
from rosbags.rosbag2.storage_mcap import McapWriter
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Writer
from rosbags.typesys import Stores, get_typestore

if TYPE_CHECKING:
    from types import TracebackType

    from rosbags.interfaces import Connection
    from rosbags.typesys.store import Typestore

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
WRENCH = "geometry_msgs/msg/WrenchStamped"
STRING = "std_msgs/msg/String"

METADATA_VERSION = 9
_LOCK_NAME = ".tacforce-writer.lock"


class BagError(RuntimeError):
    """A bag that cannot be written, recovered or read as asked."""


@lru_cache(maxsize=1)
def default_typestore() -> Typestore:
    """Return the ROS 2 Jazzy typestore (message classes, CDR (de)serialization)."""
    return get_typestore(Stores.ROS2_JAZZY)


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
        storage: Literal["mcap", "sqlite3"] = "mcap",
        flush_every: int = 500,
        flush_interval_s: float = 0.5,
        fsync: bool = False,
        typestore: Typestore | None = None,
    ) -> None:
        plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
        if storage not in plugins:
            msg = f"unknown storage {storage!r}; use mcap or sqlite3"
            raise BagError(msg)
        if flush_every < 1 or flush_interval_s <= 0:
            msg = "flush_every must be >= 1 and flush_interval_s > 0"
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
            msg = f"cannot create bag {self.path}: {exc}"
            raise BagError(msg) from exc
        self._lock = acquire_lock(self.path)
        self._connections: dict[str, Connection] = {}
        self._unflushed = 0
        self._last_flush = time.monotonic()
        self.flushed_count = 0
        self.message_count = 0
        self.flush()  # the MCAP header reaches the file before any message

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Register a topic; msgtype must be in the typestore (e.g. sensor_msgs/msg/Image)."""
        if topic in self._connections:
            msg = f"topic {topic!r} was already added"
            raise BagError(msg)
        if msgtype not in self.typestore.fielddefs:
            msg = f"message type {msgtype!r} is not in the typestore"
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
        release_lock(self.path, self._lock)

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
            msg = f"topic {topic!r} was not added; call add_topic first"
            raise BagError(msg) from None


def acquire_lock(bagdir: Path) -> IO[str]:
    """Lock (flock) a file in the bag so recovery never rewrites a bag a live writer holds.

    The kernel drops the lock when its process dies, so a killed writer's bag
    is recoverable at once.
    """
    handle = (bagdir / _LOCK_NAME).open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        msg = f"{bagdir} is being written by a live process; not recovering it"
        raise BagError(msg) from None
    return handle


def release_lock(bagdir: Path, handle: IO[str]) -> None:
    """Remove the lock file and drop the lock: the bag is no longer being written."""
    (bagdir / _LOCK_NAME).unlink(missing_ok=True)
    handle.close()


def writer_is_live(bagdir: Path) -> bool:
    """Return True while a live BagWriter holds the bag; this creates and changes nothing."""
    try:
        handle = (bagdir / _LOCK_NAME).open("rb")
    except FileNotFoundError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
    return False
