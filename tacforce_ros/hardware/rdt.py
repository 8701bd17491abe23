"""ATI Net F/T Raw Data Transfer (RDT) wire format: the 8-byte request and the 36-byte record.

Protocol (ATI Net F/T manual, "Raw Data Transfer"), all fields big-endian:

* request, 8 bytes, to UDP 49152: ``uint16 header=0x1234, uint16 command, uint32 sample_count``
  (0 = stream until stopped). Commands used: 0x0000 stop, 0x0002 start high-speed real-time
  streaming, 0x0042 set software bias.
* record, 36 bytes, sent by the box to the address and port the start request came from:
  ``uint32 rdt_sequence, uint32 ft_sequence, uint32 status, int32 Fx Fy Fz Tx Ty Tz`` (counts).
  ``rdt_sequence`` counts records of one stream (assumed to start again with each start
  request); it wraps at 2**32. Accounting, and resynchronising after a jump, is
  ``rdt_sequence.SequenceTracker``'s.

Both sides live here (the client encodes requests and decodes records, the loopback box in
``tacforce_ros.sim.netft_box`` the reverse), so the two cannot drift apart.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .rdt_sequence import UINT32

RDT_PORT = 49152
RDT_HEADER = 0x1234
CMD_STOP = 0x0000
CMD_START_REALTIME = 0x0002
CMD_SET_BIAS = 0x0042

REQUEST = struct.Struct(">HHI")
RECORD = struct.Struct(">III6i")
REQUEST_SIZE = REQUEST.size  # 8
RECORD_SIZE = RECORD.size  # 36
RCVBUF_BYTES = 4 << 20  # absorbs ~100 ms of 5 kHz records while Python is busy elsewhere


class NetFTError(Exception):
    """Base class of the Net F/T errors (wire format, calibration, connection)."""


class RdtError(NetFTError, ValueError):
    """A datagram that is not a valid RDT request or record."""


@dataclass(frozen=True)
class RdtRecord:
    """One decoded RDT record; ``counts`` are raw Fx Fy Fz Tx Ty Tz."""

    rdt_sequence: int
    ft_sequence: int
    status: int
    counts: tuple[int, int, int, int, int, int]


def encode_request(command: int, sample_count: int = 0) -> bytes:
    """Encode the 8-byte RDT request for ``command``; ``sample_count`` 0 streams until stopped."""
    if not 0 <= command <= 0xFFFF:
        raise ValueError(f"RDT command must fit uint16, got {command}")
    if not 0 <= sample_count <= UINT32:
        raise ValueError(f"RDT sample_count must fit uint32, got {sample_count}")
    return REQUEST.pack(RDT_HEADER, command, sample_count)


def decode_request(data: bytes) -> tuple[int, int]:
    """``(command, sample_count)`` of an RDT request (the emulator's side)."""
    if len(data) != REQUEST_SIZE:
        raise RdtError(f"RDT request must be {REQUEST_SIZE} bytes, got {len(data)}")
    header, command, sample_count = REQUEST.unpack(data)
    if header != RDT_HEADER:
        raise RdtError(f"RDT request header must be 0x{RDT_HEADER:04x}, got 0x{header:04x}")
    return command, sample_count


def encode_record(record: RdtRecord) -> bytes:
    """Encode the 36-byte datagram of ``record`` (the emulator's side)."""
    return RECORD.pack(record.rdt_sequence, record.ft_sequence, record.status, *record.counts)


def decode_record(data: bytes | bytearray | memoryview) -> RdtRecord:
    """Decode a 36-byte RDT record; any other size is an ``RdtError`` (records have no header)."""
    if len(data) != RECORD_SIZE:
        raise RdtError(f"RDT record must be {RECORD_SIZE} bytes, got {len(data)}")
    rdt_sequence, ft_sequence, status, *counts = RECORD.unpack(data)
    return RdtRecord(rdt_sequence, ft_sequence, status, tuple(counts))
