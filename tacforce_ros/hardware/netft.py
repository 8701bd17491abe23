"""ATI Net F/T (Nano17) over RDT: client, calibration and a loopback emulator.

Protocol (ATI Net F/T manual, "Raw Data Transfer"), all fields big-endian:

* request, 8 bytes, to UDP 49152: ``uint16 header=0x1234, uint16 command, uint32 sample_count``
  (0 = stream until stopped). Commands used: 0x0000 stop, 0x0002 start high-speed real-time
  streaming, 0x0042 set software bias.
* record, 36 bytes, sent by the box to the address and port the start request came from:
  ``uint32 rdt_sequence, uint32 ft_sequence, uint32 status, int32 Fx Fy Fz Tx Ty Tz`` (counts).
  ``rdt_sequence`` counts records of one stream (assumed to start again with each start
  request, so the client resets its accounting on ``start()``); it wraps at 2**32. Each
  ``start()`` sends from a fresh UDP socket (new local port): records of the earlier stream
  still in flight go to the old port and cannot be mistaken for the new stream's numbers.
  Accounting, and resynchronising after a jump, is ``rdt_sequence.SequenceTracker``'s.
* calibration: ``http://<box>/netftapi2.xml`` holds ``cfgcpf``/``cfgcpt`` (counts per force /
  torque unit) and the units, as codes ``cfgfu``/``cfgtu`` and as text ``scfgfu``/``scfgtu``.
  Force codes 1..6 = lbf, N, klbf, kN, kgf, gf; torque codes 1..6 = lbf-in, lbf-ft, N-m, N-mm,
  kgf-cm, kN-m. The text is preferred when present; when both are present they must agree.

Bias vs tare: ``NetFTClient.bias()`` sends the box's set-software-bias command; the box then
subtracts its current reading from every later record, for every client, until it is biased
again or power-cycled, and the records themselves carry the biased counts. ``tare()`` is
client-side only: it averages the last received samples and subtracts that from this client's
``Sample.wrench``; the box, other clients and ``Sample.counts`` are unaffected.

``RdtEmulator`` and ``CalibrationServer`` answer like a box, on 127.0.0.1 only, so tests and
benchmarks need no hardware and touch no network.
"""

from __future__ import annotations

import http.client
import math
import random
import select
import socket
import struct
import threading
import time
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, NamedTuple, Sequence

import defusedxml.ElementTree as SafeET
import numpy as np
from defusedxml import DefusedXmlException

from .rdt_sequence import UINT32, Arrival, SequenceTracker

RDT_PORT = 49152
RDT_HEADER = 0x1234
CMD_STOP = 0x0000
CMD_START_REALTIME = 0x0002
CMD_SET_BIAS = 0x0042

REQUEST = struct.Struct(">HHI")
RECORD = struct.Struct(">III6i")
REQUEST_SIZE = REQUEST.size  # 8
RECORD_SIZE = RECORD.size  # 36

CALIBRATION_PATH = "/netftapi2.xml"
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

LBF_N = 4.4482216152605  # exact: 0.45359237 kg * 9.80665 m/s^2
KGF_N = 9.80665
INCH_M = 0.0254
FOOT_M = 0.3048

# Keys are unit names with case, spaces and - . * · _ removed ("N-m" -> "nm").
FORCE_UNITS_N = {
    "n": 1.0, "mn": 1e-3, "kn": 1e3,
    "lbf": LBF_N, "lb": LBF_N, "klbf": 1e3 * LBF_N,
    "kgf": KGF_N, "gf": 1e-3 * KGF_N,
}
TORQUE_UNITS_NM = {
    "nm": 1.0, "nmm": 1e-3, "mnm": 1e-3, "ncm": 1e-2, "knm": 1e3,
    **dict.fromkeys(("lbfin", "inlbf", "lbin", "inlb"), LBF_N * INCH_M),
    **dict.fromkeys(("lbfft", "ftlbf", "lbft", "ftlb"), LBF_N * FOOT_M),
    "kgfcm": KGF_N * 1e-2, "kgfm": KGF_N,
}
FORCE_UNIT_CODES = {1: "lbf", 2: "N", 3: "klbf", 4: "kN", 5: "kgf", 6: "gf"}
TORQUE_UNIT_CODES = {1: "lbf-in", 2: "lbf-ft", 3: "Nm", 4: "Nmm", 5: "kgf-cm", 6: "kNm"}

CALIBRATION_HINT = (
    "set the counts_per_force and counts_per_torque parameters (and force_unit/torque_unit "
    "if the box is not configured in N and Nm) from the sensor's calibration instead"
)
MAX_XML_BYTES = 1 << 20
# Plausible counts per force/torque unit. ATI boxes report ~1e3..1e7; 1..1e9 leaves room for any
# unit choice (e.g. counts per mN or per klbf) yet refuses pages that would make to_si overflow to
# inf (1e-300 counts per N) or flush every reading to ~0 (1e300); from 1 up, to_si stays finite.
COUNTS_PER_UNIT_RANGE = (1.0, 1e9)
RCVBUF_BYTES = 4 << 20  # absorbs ~100 ms of 5 kHz records while Python is busy elsewhere


class NetFTError(Exception):
    """Base class of this module's errors."""


class RdtError(NetFTError, ValueError):
    """A datagram that is not a valid RDT request or record."""


class CalibrationError(NetFTError):
    """Calibration could not be read or makes no sense."""


class NetFTTimeout(NetFTError, TimeoutError):
    """The box did not answer in time."""


class NetFTConnectionError(NetFTError, ConnectionError):
    """The box's address or port cannot be reached."""


# --- wire format -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RdtRecord:
    """One decoded RDT record; ``counts`` are raw Fx Fy Fz Tx Ty Tz."""

    rdt_sequence: int
    ft_sequence: int
    status: int
    counts: tuple[int, int, int, int, int, int]


def encode_request(command: int, sample_count: int = 0) -> bytes:
    """The 8-byte RDT request for ``command``; ``sample_count`` 0 streams until stopped."""
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
    """The 36-byte datagram of ``record`` (the emulator's side)."""
    return RECORD.pack(record.rdt_sequence, record.ft_sequence, record.status, *record.counts)


def decode_record(data: bytes | bytearray | memoryview) -> RdtRecord:
    """Decode a 36-byte RDT record; any other size is an ``RdtError`` (records have no header)."""
    if len(data) != RECORD_SIZE:
        raise RdtError(f"RDT record must be {RECORD_SIZE} bytes, got {len(data)}")
    rdt_sequence, ft_sequence, status, *counts = RECORD.unpack(data)
    return RdtRecord(rdt_sequence, ft_sequence, status, tuple(counts))


# --- calibration -------------------------------------------------------------------------------


def _unit_key(unit: str) -> str:
    return "".join(c for c in unit.strip().lower() if c not in " -.*·_")


@dataclass(frozen=True)
class Calibration:
    """Counts per force/torque unit and those units; ``to_si`` gives N and N·m."""

    counts_per_force: float
    counts_per_torque: float
    force_unit: str = "N"
    torque_unit: str = "Nm"
    _divisor: np.ndarray = field(init=False, repr=False, compare=False)
    _factor: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        low, high = COUNTS_PER_UNIT_RANGE
        for name in ("counts_per_force", "counts_per_torque"):
            value = getattr(self, name)
            try:
                ok = low <= float(value) <= high  # False for nan
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise CalibrationError(f"{name} must be between {low:g} and {high:g} counts per "
                                       f"unit (ATI boxes report ~1e3..1e7), got {value!r}")
        force = FORCE_UNITS_N.get(_unit_key(self.force_unit))
        torque = TORQUE_UNITS_NM.get(_unit_key(self.torque_unit))
        if force is None:
            raise CalibrationError(
                f"unknown force unit {self.force_unit!r}; known: N, mN, kN, lbf, klbf, kgf, gf")
        if torque is None:
            raise CalibrationError(
                f"unknown torque unit {self.torque_unit!r}; known: Nm, Nmm, Ncm, kNm, lbf-in, "
                "lbf-ft, kgf-cm, kgf-m")
        object.__setattr__(self, "_divisor", np.array([self.counts_per_force] * 3
                                                      + [self.counts_per_torque] * 3, np.float64))
        object.__setattr__(self, "_factor", np.array([force] * 3 + [torque] * 3, np.float64))

    def to_si(self, counts: Sequence[int] | np.ndarray) -> np.ndarray:
        """Counts (..., 6) to Fx Fy Fz in N and Tx Ty Tz in N·m (float64).

        Divides by counts-per-unit first, then scales the unit to SI, so for N/Nm the result is
        exactly ``counts / counts_per_unit``.
        """
        return np.asarray(counts, dtype=np.float64) / self._divisor * self._factor


def _text(root: ET.Element, tag: str) -> str | None:
    element = root.find(f".//{tag}")
    if element is None or element.text is None or not element.text.strip():
        return None
    return element.text.strip()


def _xml_unit(root: ET.Element, code_tag: str, text_tag: str, codes: dict[int, str],
              table: dict[str, float], what: str) -> str:
    """The unit from the text tag and/or the code tag; both present must agree."""
    text, code = _text(root, text_tag), _text(root, code_tag)
    from_code = None
    if code is not None:
        if code.isdigit():
            if int(code) not in codes:
                raise CalibrationError(f"unknown {what} unit code <{code_tag}>{code}; "
                                       f"{CALIBRATION_HINT}")
            from_code = codes[int(code)]
        else:
            from_code = code
    if text is None and from_code is None:
        raise CalibrationError(f"no {what} unit (<{text_tag}> or <{code_tag}>); {CALIBRATION_HINT}")
    if text is not None and from_code is not None:
        a, b = table.get(_unit_key(text)), table.get(_unit_key(from_code))
        if a is not None and b is not None and a != b:
            raise CalibrationError(f"{what} unit <{text_tag}>{text} disagrees with "
                                   f"<{code_tag}>{code} ({from_code}); {CALIBRATION_HINT}")
    return text if text is not None else from_code


def parse_calibration_xml(data: str | bytes) -> Calibration:
    """The ``Calibration`` in a netftapi2.xml page (parsed as data, never eval).

    The box's page has no DTD, so any is refused (defusedxml) as soon as the parser meets it:
    entity-expansion bombs and external entities are never expanded, whatever expat's version.
    """
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except ET.ParseError as e:
        raise CalibrationError(
            f"calibration page is not valid XML ({e}); {CALIBRATION_HINT}") from e
    except DefusedXmlException as e:
        raise CalibrationError(f"calibration page has a DTD or entities, refused ({e!r}); "
                               f"{CALIBRATION_HINT}") from e
    values = {}
    for tag in ("cfgcpf", "cfgcpt"):
        text = _text(root, tag)
        if text is None:
            raise CalibrationError(f"calibration page has no <{tag}>; {CALIBRATION_HINT}")
        try:
            values[tag] = float(text)
        except ValueError:
            raise CalibrationError(
                f"<{tag}> is not a number: {text!r}; {CALIBRATION_HINT}") from None
    force_unit = _xml_unit(root, "cfgfu", "scfgfu", FORCE_UNIT_CODES, FORCE_UNITS_N, "force")
    torque_unit = _xml_unit(root, "cfgtu", "scfgtu", TORQUE_UNIT_CODES, TORQUE_UNITS_NM, "torque")
    try:
        return Calibration(values["cfgcpf"], values["cfgcpt"], force_unit, torque_unit)
    except CalibrationError as e:
        raise CalibrationError(f"{e}; {CALIBRATION_HINT}") from None


def fetch_calibration(host: str, port: int = 80, timeout: float = 1.0) -> Calibration:
    """GET http://host:port/netftapi2.xml and parse it; whole exchange bounded by ~``timeout``."""
    url = f"http://{host}:{port}{CALIBRATION_PATH}"
    deadline = time.monotonic() + timeout
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", CALIBRATION_PATH)
        response = conn.getresponse()
        if response.status != 200:
            raise CalibrationError(f"{url} answered HTTP {response.status} {response.reason}; "
                                   f"{CALIBRATION_HINT}")
        body = bytearray()
        while chunk := response.read1(65536):
            body += chunk
            if len(body) > MAX_XML_BYTES:
                raise CalibrationError(f"{url} is larger than {MAX_XML_BYTES} bytes; "
                                       f"{CALIBRATION_HINT}")
            if time.monotonic() > deadline:
                raise CalibrationError(f"{url} took longer than {timeout} s; {CALIBRATION_HINT}")
    except (OSError, http.client.HTTPException) as e:
        raise CalibrationError(f"cannot read {url}: {e or type(e).__name__}; "
                               f"{CALIBRATION_HINT}") from e
    finally:
        conn.close()
    return parse_calibration_xml(bytes(body))


# --- client ------------------------------------------------------------------------------------


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
        """Box-side software bias (RDT 0x0042): zeroes the box's output for every client."""
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
        """The next new or late sample, or None when none came within ``timeout`` (default
        ``timeout_s``). Malformed datagrams and duplicates are counted and skipped."""
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
                sample = self._client.read()
                if sample is not None:
                    self._callback(sample)
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


# --- loopback emulator -------------------------------------------------------------------------


def default_wrench(t: float) -> tuple[float, ...]:
    """A smooth, known Nano17-sized wrench (N, N·m) at time ``t`` (s)."""
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
    def streaming(self) -> bool:
        return self._streaming

    @property
    def generated(self) -> int:
        """Records generated in the current/last stream."""
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
            payload = RECORD.pack(seq, self._ft_seq, self._status, *counts)
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
    """A netftapi2.xml page like the box serves (codes where the unit has one, and text)."""
    root = ET.Element("netft")
    force_codes = {_unit_key(u): c for c, u in FORCE_UNIT_CODES.items()}
    torque_codes = {_unit_key(u): c for c, u in TORQUE_UNIT_CODES.items()}
    fields_ = {
        "cfgcpf": str(counts_per_force),
        "cfgcpt": str(counts_per_torque),
        "cfgfu": str(force_codes.get(_unit_key(force_unit), force_unit)),
        "cfgtu": str(torque_codes.get(_unit_key(torque_unit), torque_unit)),
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
