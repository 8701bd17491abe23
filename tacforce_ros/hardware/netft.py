"""ATI Net F/T (Nano17) client over RDT: streaming, sequence accounting, bias and tare.

The wire format is ``rdt``'s, calibration ``netft_calibration``'s, sequence accounting
``rdt_sequence``'s. Each ``start()`` sends from a fresh UDP socket (new local port): records of
the earlier stream still in flight go to the old port and cannot be mistaken for the new
stream's numbers, so the client resets its accounting on ``start()``.

Bias vs tare: ``NetFTClient.bias()`` sends the box's set-software-bias command; the box then
subtracts its current reading from every later record, for every client, until it is biased
again or power-cycled, and the records themselves carry the biased counts. ``tare()`` is
client-side only: it averages the last received samples and subtracts that from this client's
``Sample.wrench``; the box, other clients and ``Sample.counts`` are unaffected.

A loopback box for tests and benchmarks is ``tacforce_ros.sim.netft_box``.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .netft_calibration import Calibration
from .rdt import (CMD_SET_BIAS, CMD_START_REALTIME, CMD_STOP, RCVBUF_BYTES, RDT_PORT, RECORD_SIZE,
                  NetFTError, decode_record, encode_request)
from .rdt_sequence import Arrival, SequenceTracker


class NetFTTimeout(NetFTError, TimeoutError):
    """The box did not answer in time."""


class NetFTConnectionError(NetFTError, ConnectionError):
    """The box's address or port cannot be reached."""


@dataclass(frozen=True)
class Sample:
    """One record as received. ``wrench`` is Fx Fy Fz (N) Tx Ty Tz (N·m), tare applied."""

    rdt_sequence: int
    ft_sequence: int
    status: int
    counts: tuple[int, int, int, int, int, int]
    wrench: np.ndarray
    stamp_ns: int  # time.time_ns() at receipt: for message header stamps
    monotonic_ns: int  # time.monotonic_ns() at receipt: for intervals
    late: bool  # arrived after a higher rdt_sequence (reordered on the way)


@dataclass(frozen=True)
class ClientStats:
    """Counters since the last ``start()``; ``rate_hz`` is samples delivered per second."""

    received: int
    received_unique: int
    lost: int
    duplicated: int
    out_of_order: int
    out_of_range: int  # numbered far from the stream (forged, corrupt or a jump): dropped
    resyncs: int  # jumps that enough consecutive records confirmed
    malformed: int
    last_status: int | None
    rate_hz: float


class _RateWindow:
    """Samples per second over consecutive ~1 s windows (cheap enough to tick at 5 kHz)."""

    WINDOW_NS = 1_000_000_000

    def __init__(self) -> None:
        self.rate_hz = 0.0
        self._t0: int | None = None
        self._n = 0

    def tick(self, now_ns: int) -> None:
        if self._t0 is None:
            self._t0 = now_ns
            return
        self._n += 1
        if now_ns - self._t0 >= self.WINDOW_NS:
            self.rate_hz = self._n * 1e9 / (now_ns - self._t0)
            self._t0, self._n = now_ns, 0


class NetFTClient:
    """RDT client for one Net F/T box.

    The UDP socket is connected to the box, so only its datagrams are delivered and a closed
    port surfaces as ``NetFTConnectionError`` (ICMP port unreachable) instead of silence.
    Every blocking call has a timeout. Duplicated records are dropped; late (reordered)
    records are delivered with ``Sample.late`` set; records numbered far from the stream are
    dropped unless a few in a row confirm a new numbering (``SequenceTracker``), so one forged
    record cannot stop the stream. ``read`` is meant for one thread at a
    time (``NetFTStream``); ``stop``, ``bias``, ``tare``, ``stats`` may be called from others.
    """

    def __init__(self, host: str, port: int = RDT_PORT, *, calibration: Calibration,
                 timeout_s: float = 0.1, start_timeout_s: float = 1.0,
                 bias_on_start: bool = False, window: int = 65536):
        if not 0 < port < 65536:
            raise ValueError(f"port must be 1..65535, got {port}")
        if not (timeout_s > 0 and start_timeout_s > 0):
            raise ValueError("timeout_s and start_timeout_s must be > 0")
        self.host, self.port = host, port
        self.calibration = calibration
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self.bias_on_start = bias_on_start
        try:
            self._address = socket.getaddrinfo(host, port, socket.AF_INET,
                                               socket.SOCK_DGRAM)[0][4]
        except socket.gaierror as e:
            raise NetFTConnectionError(f"cannot resolve Net F/T host {host!r}: {e}") from e
        self._sock = self._open_socket()
        self._retired: list[socket.socket] = []  # closed by the reader once it has left them
        self._buf = bytearray(RECORD_SIZE + 64)  # larger datagrams arrive truncated: malformed
        self._lock = threading.Lock()
        self._tracker = SequenceTracker(window)
        self._rate = _RateWindow()
        self._recent: deque[np.ndarray] = deque(maxlen=256)
        self._tare: np.ndarray | None = None
        self._pending: Sample | None = None
        self._malformed = 0
        self._last_status: int | None = None
        self._started_ns: int | None = None
        self._last_packet_ns: int | None = None
        self._streaming = False
        self._reader_active = False  # set by NetFTStream
        self._closed = False

    def __enter__(self) -> NetFTClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def streaming(self) -> bool:
        return self._streaming

    def _open_socket(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
            sock.connect(self._address)
        except OSError as e:
            sock.close()
            raise NetFTConnectionError(f"cannot open UDP to {self.host}:{self.port}: {e}") from e
        return sock

    def _send(self, command: int, sample_count: int = 0) -> None:
        try:
            self._sock.send(encode_request(command, sample_count))
        except OSError as e:
            raise NetFTConnectionError(
                f"cannot send RDT request 0x{command:04x} to {self.host}:{self.port}: {e}") from e

    def start(self, *, wait: bool = True, sample_count: int = 0) -> None:
        """Request streaming (after a box-side bias if ``bias_on_start``).

        With ``wait`` the first record must arrive within ``start_timeout_s`` (it is kept for
        the next ``read``), so a wrong address or port fails here with a clear error. Use
        ``wait=False`` to restart while a ``NetFTStream`` is reading.
        """
        if wait and self._reader_active:
            raise NetFTError("start(wait=True) while a NetFTStream reads this client; "
                             "use start(wait=False)")
        with self._lock:
            if self._streaming or self._started_ns is not None:
                fresh = self._open_socket()
                old, self._sock = self._sock, fresh
                if self._reader_active:
                    self._retired.append(old)  # the reader may be waiting in recv on it
                else:
                    old.close()
            self._tracker.reset()
            self._rate = _RateWindow()
            self._recent.clear()
            self._pending = None
            self._malformed = 0
            self._last_status = None
            self._last_packet_ns = None
            self._started_ns = time.monotonic_ns()
        if self.bias_on_start:
            self.bias()
        self._send(CMD_START_REALTIME, sample_count)
        self._streaming = True
        if wait:
            sample = self.read(self.start_timeout_s)
            if sample is None:
                raise NetFTTimeout(
                    f"no RDT record from {self.host}:{self.port} within {self.start_timeout_s} s "
                    "of the start request: check the box's address, that it streams RDT on "
                    "this UDP port and that no firewall drops UDP")
            self._pending = sample

    def stop(self) -> None:
        """Ask the box to stop streaming (records already sent may still arrive)."""
        self._send(CMD_STOP)
        self._streaming = False

    def bias(self) -> None:
        """Set the box-side software bias, RDT command 0x0042, which zeroes the box's output for every client."""
        self._send(CMD_SET_BIAS)

    def tare(self, samples: int = 1) -> np.ndarray:
        """Client-side zero: subtract the mean of the last ``samples`` (<= 256) raw wrenches."""
        if not 1 <= samples <= (self._recent.maxlen or 0):
            raise ValueError(f"samples must be 1..{self._recent.maxlen}, got {samples}")
        with self._lock:
            if not self._recent:
                raise NetFTError("tare() needs at least one received sample")
            recent = list(self._recent)[-samples:]
            self._tare = np.mean(recent, axis=0)
            return self._tare.copy()

    def clear_tare(self) -> None:
        with self._lock:
            self._tare = None

    def read(self, timeout: float | None = None) -> Sample | None:
        """Return the next new or late sample, or None when none came within ``timeout`` (default
        ``timeout_s``). Malformed datagrams and duplicates are counted and skipped.
        """
        if self._pending is not None:
            sample, self._pending = self._pending, None
            return sample
        deadline = time.monotonic() + (self.timeout_s if timeout is None else timeout)
        while (remaining := deadline - time.monotonic()) > 0:
            if self._retired:
                self._close_retired()
            sock = self._sock
            sock.settimeout(remaining)
            try:
                n = sock.recv_into(self._buf)
            except TimeoutError:
                return None
            except ConnectionRefusedError as e:
                raise NetFTConnectionError(
                    f"nothing listens on UDP {self.host}:{self.port} (ICMP port unreachable): "
                    "wrong host or port for the Net F/T box?") from e
            except OSError as e:
                raise NetFTConnectionError(f"UDP socket to {self.host}:{self.port}: {e}") from e
            sample = self._process(sock, n)
            if sample is not None:
                return sample
        return None

    def _close_retired(self) -> None:
        with self._lock:
            retired, self._retired = self._retired, []
        for sock in retired:
            sock.close()

    def _process(self, sock: socket.socket, n: int) -> Sample | None:
        monotonic_ns, stamp_ns = time.monotonic_ns(), time.time_ns()
        with self._lock:
            if sock is not self._sock:  # an earlier stream's record, read before start() swapped
                return None
            if n != RECORD_SIZE:
                self._malformed += 1
                return None
            record = decode_record(memoryview(self._buf)[:n])
            arrival = self._tracker.feed(record.rdt_sequence)
            if arrival is Arrival.DUPLICATE or arrival is Arrival.OUT_OF_RANGE:
                return None
            self._last_packet_ns = monotonic_ns  # accepted only: junk must not hide a stale box
            self._last_status = record.status
            raw = self.calibration.to_si(record.counts)
            self._recent.append(raw)
            self._rate.tick(monotonic_ns)
            wrench = raw if self._tare is None else raw - self._tare
        return Sample(record.rdt_sequence, record.ft_sequence, record.status, record.counts,
                      wrench, stamp_ns, monotonic_ns, arrival is Arrival.LATE)

    def seconds_since_last_packet(self) -> float:
        """Seconds since the last accepted record (or since ``start()`` if none yet; inf before).

        A stream is stale when this exceeds a few sample periods.
        """
        last = self._last_packet_ns if self._last_packet_ns is not None else self._started_ns
        return math.inf if last is None else (time.monotonic_ns() - last) / 1e9

    @property
    def stats(self) -> ClientStats:
        with self._lock:
            t = self._tracker
            rate = self._rate.rate_hz if self.seconds_since_last_packet() < 1.0 else 0.0
            return ClientStats(t.received, t.received_unique, t.lost, t.duplicated,
                               t.out_of_order, t.out_of_range, t.resyncs, self._malformed,
                               self._last_status, rate)

    def close(self) -> None:
        """Stop streaming (best effort: the box may be gone) and close the socket."""
        if self._closed:
            return
        if self._streaming:
            try:
                self.stop()
            except NetFTConnectionError:
                pass
        self._closed = True
        self._sock.close()
        self._close_retired()


class NetFTStream:
    """Calls ``callback(sample)`` from a background thread for every sample the client reads,
    so a ROS node can publish at the streamed rate without a timer.

    Call ``client.start()`` first. If reading or the callback raises, the thread ends and the
    exception is kept in ``error`` (check it, or ``alive``, from a diagnostics timer).
    """

    def __init__(self, client: NetFTClient, callback: Callable[[Sample], None]):
        self._client = client
        self._callback = callback
        self._stop = threading.Event()
        self._quiet_s: float | None = None  # set by drain()
        self._thread = threading.Thread(target=self._run, name="netft-stream", daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> NetFTStream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> NetFTStream:
        self._client._reader_active = True
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                quiet_s = self._quiet_s
                sample = self._client.read(quiet_s)
                if sample is not None:
                    self._callback(sample)
                elif quiet_s is not None:  # draining, and nothing more in flight
                    return
        except Exception as e:  # noqa: BLE001 - kept for the owner to see, never swallowed
            self.error = e
        finally:
            self._client._reader_active = False

    def stop(self, timeout: float = 2.0) -> None:
        """End the thread (within one ``client.timeout_s`` plus a callback)."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise NetFTError(f"NetFTStream did not stop within {timeout} s (callback stuck?)")

    def drain(self, quiet_s: float = 0.5, timeout: float = 5.0) -> None:
        """After ``client.stop()``: deliver the records still in flight, then end the thread once
        none came for ``quiet_s``, so a stream stopped on purpose loses none of what the box
        sent. A box still streaming after ``timeout`` is cut off as by ``stop``.
        """
        self._quiet_s = quiet_s
        if self._thread.ident is not None:
            self._thread.join(timeout)
        self.stop()
