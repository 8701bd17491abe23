"""Read rosbag2 bags (MCAP or sqlite3) with rosbags; never write to them.

An unfinished bag (no metadata.yaml, or an MCAP file without footer) is
refused rather than recovered: it may still be being recorded, and only
``tacforce bag recover`` rewrites a bag.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rosbags.rosbag2 import Reader
from rosbags.rosbag2.errors import ReaderError

from .recovery import needs_recovery
from .writer import BagError, default_typestore, writer_is_live

if TYPE_CHECKING:
    from collections.abc import Collection, Iterator

    from rosbags.typesys.store import Typestore


@dataclass(frozen=True)
class BagMessage:
    """One deserialized message: log time is when it was recorded, not its header stamp."""

    topic: str
    msgtype: str
    log_time_ns: int
    msg: Any


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (rclpy or rosbags) to integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


@contextmanager
def open_bag(path: Path | str) -> Iterator[Reader]:
    """Open a rosbags Reader on a bag directory (MCAP or sqlite3) or a single storage file.

    Raises BagError for an unfinished bag, saying whether a live BagWriter
    still holds it or how to recover it.
    """
    bagpath = Path(path)
    if not bagpath.exists():
        msg = f"bag {bagpath} does not exist"
        raise BagError(msg)
    if needs_recovery(bagpath):
        raise BagError(_unfinished_message(bagpath))
    try:
        reader = Reader(bagpath)
        reader.open()
    except ReaderError as exc:
        msg = f"cannot read bag {bagpath}: {exc}"
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
                msg = f"{path}: type {conn.msgtype!r} of {conn.topic!r} is not in the typestore"
                raise BagError(msg)
        if not conns:
            return
        for conn, log_time, raw in reader.messages(connections=conns):
            msg = store.deserialize_cdr(raw, conn.msgtype)
            yield BagMessage(conn.topic, conn.msgtype, log_time, msg)


def _unfinished_message(bagdir: Path) -> str:
    if writer_is_live(bagdir):
        return f"bag {bagdir} is still being recorded (a live writer holds it); read it once closed"
    return (
        f"bag {bagdir} is unfinished (no metadata.yaml, or an MCAP file without footer): "
        f"if its recorder was killed, run `tacforce bag recover {bagdir}`; "
        f"if it is still recording, wait until it stops"
    )
