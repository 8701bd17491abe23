"""A Net F/T box on 127.0.0.1 for tests, benchmarks and the simulated rig: an RDT emulator and
the HTTP calibration page, both answering like a box, on loopback only (no hardware, no network).
"""

from __future__ import annotations

import math
import random
import select
import socket
import threading
import time
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, NamedTuple, Sequence

from ..hardware.netft_calibration import CALIBRATION_PATH, FORCE_UNIT_CODES, TORQUE_UNIT_CODES, unit_key
from ..hardware.rdt import (CMD_SET_BIAS, CMD_START_REALTIME, CMD_STOP, RCVBUF_BYTES, NetFTError, RdtError,
                            RdtRecord, decode_request, encode_record)
from ..hardware.rdt_sequence import UINT32

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def default_wrench(t: float) -> tuple[float, ...]:
    """Return a smooth, known Nano17-sized wrench (N, N·m) at time ``t`` (s)."""
    w = 2 * math.pi
    return (0.5 * math.sin(w * 1.0 * t), 0.3 * math.cos(w * 0.5 * t),
            -1.0 + 0.8 * math.sin(w * 0.25 * t), 0.01 * math.sin(w * 0.7 * t),
            -0.01 * math.cos(w * 0.3 * t), 0.002 * math.sin(w * 2.0 * t))


class SentRecord(NamedTuple):
    rdt_sequence: int
    counts: tuple[int, int, int, int, int, int]


class RdtEmulator:
    """A Net F/T box on 127.0.0.1 for tests: answers RDT requests like the box does.

    Start streaming sends records to the requester at ``rate_hz``, record k due at
    ``start + (k-1)/rate_hz`` (absolute deadlines; late ones go out in a batch, so the long-run
    rate is exact). Each generated record is dropped with probability ``loss``, sent twice with
    ``duplicate``, or held back and sent after the next one with ``reorder`` (seeded).
    ``sent`` logs every emitted datagram, ``dropped`` every generated but not emitted number.
    Each stream numbers its records from ``first_sequence`` (1 like the box; set it near 2**32
    to exercise wrap-around).
    Counts are ``round(wrench_fn(t) * counts_per_unit)`` (box configured in N and N·m) minus
    the bias, saturated to int32. ``silent = True`` makes it ignore requests and emit nothing
    (records generated meanwhile count as dropped), like a box whose cable is pulled.
    """

    POLL_S = 0.05

    def __init__(self, counts_per_force: float = 1_000_000, counts_per_torque: float = 1_000_000,
                 rate_hz: float = 1000.0, loss: float = 0.0, duplicate: float = 0.0,
                 reorder: float = 0.0, seed: int = 0,
                 wrench_fn: Callable[[float], Sequence[float]] | None = None,
                 *, port: int = 0, first_sequence: int = 1, keep_log: bool = True):
        if rate_hz <= 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
        if not 0 <= first_sequence <= UINT32:
            raise ValueError(f"first_sequence must fit uint32, got {first_sequence}")
        for name, p in (("loss", loss), ("duplicate", duplicate), ("reorder", reorder)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability, got {p}")
        self.counts_per_unit = (counts_per_force,) * 3 + (counts_per_torque,) * 3
        self.rate_hz = float(rate_hz)
        self.loss, self.duplicate, self.reorder = loss, duplicate, reorder
        self.wrench_fn = wrench_fn or default_wrench
        if len(self.wrench_fn(0.0)) != 6:
            raise ValueError("wrench_fn(t) must return 6 values: Fx Fy Fz (N) Tx Ty Tz (N·m)")
        self.first_sequence = first_sequence
        self.keep_log = keep_log
        self._rng = random.Random(seed)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, RCVBUF_BYTES)
        self._sock.bind(("127.0.0.1", port))
        self._sock.setblocking(False)
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._target: tuple[str, int] | None = None
        self._streaming = False
        self._limit = 0  # records to send in this stream, 0 = until stopped
        self._seq = 0
        self._ft_seq = 0
        self._stream_start = 0.0
        self._held: tuple[int, bytes, tuple[int, ...], int] | None = None
        self._bias = (0,) * 6
        self._status = 0
        self._silent = False
        self._sent: list[SentRecord] = []
        self._dropped: list[int] = []
        self.requests = 0
        self.bad_requests = 0
        self.send_errors = 0
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rdt-emulator", daemon=True)
        self._thread.start()

    def __enter__(self) -> RdtEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def address(self) -> tuple[str, int]:
        return self._sock.getsockname()

    @property
    def requester(self) -> tuple[str, int] | None:
        """Return the address the last start request came from: where records go."""
        return self._target

    @property
    def streaming(self) -> bool:
        return self._streaming

    @property
    def generated(self) -> int:
        """Return the records generated in the current/last stream."""
        return self._seq

    @property
    def sent(self) -> list[SentRecord]:
        with self._lock:
            return list(self._sent)

    @property
    def dropped(self) -> list[int]:
        with self._lock:
            return list(self._dropped)

    @property
    def status(self) -> int:
        return self._status

    @status.setter
    def status(self, value: int) -> None:
        if not 0 <= value <= UINT32:
            raise ValueError(f"status must fit uint32, got {value}")
        self._status = value

    @property
    def silent(self) -> bool:
        return self._silent

    @silent.setter
    def silent(self, value: bool) -> None:
        self._silent = bool(value)

    def clear_log(self) -> None:
        with self._lock:
            self._sent.clear()
            self._dropped.clear()

    def send_raw(self, data: bytes) -> None:
        """Send arbitrary bytes (e.g. a malformed record) to the last requester."""
        if self._target is None:
            raise NetFTError("no client has sent a request yet")
        self._sock.sendto(data, self._target)

    def close(self) -> None:
        self._closing.set()
        self._thread.join(2.0)
        self._sock.close()

    def _run(self) -> None:
        while not self._closing.is_set():
            timeout = self.POLL_S
            if self._streaming:
                next_due = self._stream_start + self._seq / self.rate_hz
                timeout = min(max(next_due - time.monotonic(), 0.0), self.POLL_S)
            readable, _, _ = select.select([self._sock], [], [], timeout)
            with self._lock:
                if readable:
                    self._handle_requests()
                if self._streaming:
                    self._emit_due()

    def _handle_requests(self) -> None:
        for _ in range(64):
            try:
                data, addr = self._sock.recvfrom(64)
            except BlockingIOError:
                return
            except OSError:  # e.g. an ICMP error from a client that went away
                continue
            if self._silent:
                continue
            self.requests += 1
            try:
                command, sample_count = decode_request(data)
            except RdtError:
                self.bad_requests += 1
                continue
            if command == CMD_START_REALTIME:
                self._flush_held()
                self._target = addr
                self._streaming = True
                self._limit = sample_count
                self._seq = 0
                self._stream_start = time.monotonic()
            elif command == CMD_STOP:
                self._flush_held()
                self._streaming = False
            elif command == CMD_SET_BIAS:
                self._bias = self._raw_counts(time.monotonic() - self._t0)
            else:
                self.bad_requests += 1

    def _raw_counts(self, t: float) -> tuple[int, ...]:
        values = self.wrench_fn(t)
        return tuple(round(v * c) for v, c in zip(values, self.counts_per_unit, strict=True))

    def _emit_due(self) -> None:
        due = int((time.monotonic() - self._stream_start) * self.rate_hz) + 1
        while self._seq < due:
            if self._limit and self._seq >= self._limit:
                self._flush_held()
                self._streaming = False
                return
            self._seq += 1
            self._ft_seq = (self._ft_seq + 1) & UINT32
            t = self._stream_start - self._t0 + (self._seq - 1) / self.rate_hz
            counts = tuple(min(max(r - b, INT32_MIN), INT32_MAX)
                           for r, b in zip(self._raw_counts(t), self._bias))
            seq = (self.first_sequence + self._seq - 1) & UINT32
            payload = encode_record(RdtRecord(seq, self._ft_seq, self._status, counts))
            self._dispatch(seq, payload, counts)

    def _dispatch(self, seq: int, payload: bytes, counts: tuple[int, ...]) -> None:
        rng = self._rng
        if self.loss and rng.random() < self.loss:
            self._dropped.append(seq)
            return
        copies = 2 if self.duplicate and rng.random() < self.duplicate else 1
        if self.reorder and self._held is None and rng.random() < self.reorder:
            self._held = (seq, payload, counts, copies)
            return
        self._emit(seq, payload, counts, copies)
        self._flush_held()

    def _flush_held(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._emit(*held)

    def _emit(self, seq: int, payload: bytes, counts: tuple[int, ...], copies: int) -> None:
        if self._silent or self._target is None:
            self._dropped.append(seq)
            return
        for _ in range(copies):
            try:
                self._sock.sendto(payload, self._target)
            except OSError:
                self.send_errors += 1
                continue
            if self.keep_log:
                self._sent.append(SentRecord(seq, counts))


def calibration_xml(counts_per_force: float, counts_per_torque: float, force_unit: str = "N",
                    torque_unit: str = "Nm") -> bytes:
    """Return a netftapi2.xml page like the box serves (codes where the unit has one, and text)."""
    root = ET.Element("netft")
    force_codes = {unit_key(u): c for c, u in FORCE_UNIT_CODES.items()}
    torque_codes = {unit_key(u): c for c, u in TORQUE_UNIT_CODES.items()}
    fields_ = {
        "cfgcpf": str(counts_per_force),
        "cfgcpt": str(counts_per_torque),
        "cfgfu": str(force_codes.get(unit_key(force_unit), force_unit)),
        "cfgtu": str(torque_codes.get(unit_key(torque_unit), torque_unit)),
        "scfgfu": force_unit,
        "scfgtu": torque_unit,
    }
    for tag, text in fields_.items():
        ET.SubElement(root, tag).text = text
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root)


class CalibrationServer:
    """Serves ``/netftapi2.xml`` (or ``body`` verbatim) on 127.0.0.1 from a thread."""

    def __init__(self, counts_per_force: float = 1_000_000, counts_per_torque: float = 1_000_000,
                 force_unit: str = "N", torque_unit: str = "Nm", *, body: bytes | None = None):
        page = body if body is not None else calibration_xml(
            counts_per_force, counts_per_torque, force_unit, torque_unit)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                found = self.path == CALIBRATION_PATH
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(page) if found else 0))
                self.end_headers()
                if found:
                    self.wfile.write(page)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                """Silent: tests read results, not access logs."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="netft-calibration", daemon=True)
        self._thread.start()

    def __enter__(self) -> CalibrationServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def address(self) -> tuple[str, int]:
        return self._server.server_address[:2]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2.0)
