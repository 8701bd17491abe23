"""RDT sequence accounting: received, lost, duplicated and reordered uint32 record numbers.

A single record numbered far from the stream (forged, corrupted, or a late one from long ago)
must not move the stream's numbering: if it did, every genuine record after it would look old
and be dropped. Such numbers are set aside; only a few in a row that follow each other (a box
that really restarted or jumped) make the tracker resynchronise onto them.
"""

from __future__ import annotations

import enum

UINT32 = 0xFFFFFFFF


class Arrival(enum.Enum):
    """What a sequence number was, relative to those already fed."""

    NEW = "new"  # higher than all before (any numbers skipped are counted lost)
    LATE = "late"  # lower, previously counted lost: now out_of_order instead
    DUPLICATE = "duplicate"
    OUT_OF_RANGE = "out_of_range"  # too far behind or ahead to be the stream's: set aside


class SequenceTracker:
    """Counts received, lost, duplicated and out-of-order uint32 sequence numbers.

    Numbers are unwrapped (each one is taken as the nearest to the highest so far, modulo
    2**32), so wrap-around is seamless. Whether a number was seen is kept for the last
    ``window`` numbers only (bounded memory). A number at most ``max_gap`` ahead of the highest
    is ``NEW``; one further ahead, or further back than the window, is ``OUT_OF_RANGE``: counted
    and otherwise ignored, so the records that continue the stream keep being accepted. When
    ``confirm`` out-of-range numbers in a row each follow the one before (by 1..``max_gap``),
    the last of them is ``NEW`` and starts a new run (``resyncs``); numbers a resync skips are
    not counted lost (a restart and a long outage look alike).
    Always: ``received == received_unique + duplicated + out_of_range`` and
    ``received_unique + lost == expected`` (the spans of all runs). The default ``max_gap``
    is ~0.6 s of records at the box's fastest rate (7 kHz): a longer silence is stale anyway.
    """

    def __init__(self, window: int = 65536, max_gap: int = 4096, confirm: int = 3):
        if window < 2:
            raise ValueError(f"window must be >= 2, got {window}")
        if not 1 <= max_gap < 2**31:
            raise ValueError(f"max_gap must be 1..2**31-1, got {max_gap}")
        if confirm < 2:
            raise ValueError(f"confirm must be >= 2 (one record is no authority), got {confirm}")
        self.window, self.max_gap, self.confirm = window, max_gap, confirm
        self.reset()

    def reset(self) -> None:
        self._seen = bytearray(self.window)
        self._first: int | None = None
        self._high: int | None = None
        self._span = 0  # numbers expected in the runs before the last resync
        self._candidate = 0  # the last out-of-range number (wrapped)
        self._candidates = 0  # out-of-range numbers in a row, each following the one before
        self.received = 0  # every number fed, duplicates included
        self.received_unique = 0
        self.lost = 0
        self.duplicated = 0
        self.out_of_order = 0
        self.out_of_range = 0
        self.resyncs = 0

    @property
    def expected(self) -> int:
        return 0 if self._high is None else self._span + self._high - self._first + 1

    @property
    def first(self) -> int | None:
        """Return the lowest number of the current run (as received, i.e. wrapped)."""
        return None if self._first is None else self._first & UINT32

    @property
    def last(self) -> int | None:
        """Return the highest number of the current run (as received, i.e. wrapped)."""
        return None if self._high is None else self._high & UINT32

    def feed(self, sequence: int) -> Arrival:
        if not 0 <= sequence <= UINT32:
            raise ValueError(f"sequence number must fit uint32, got {sequence}")
        self.received += 1
        if self._high is None:
            self._start_run(sequence)
            return Arrival.NEW
        delta = ((sequence - self._high + 2**31) & UINT32) - 2**31
        if delta > self.max_gap or delta <= -self.window:
            return self._out_of_range(sequence, delta)
        self._candidates = 0  # the stream goes on: whatever was set aside was not a new run
        n = self._high + delta
        if delta > 0:
            self._advance(n)
            self.lost += delta - 1
            self.received_unique += 1
            return Arrival.NEW
        slot = n % self.window
        if n < self._first:  # reordered ahead of the first one: extend the span back to it
            self.lost += self._first - n - 1
            self._first = n
        elif self._seen[slot]:
            self.duplicated += 1
            return Arrival.DUPLICATE
        else:
            self.lost -= 1
        self._seen[slot] = 1
        self.received_unique += 1
        self.out_of_order += 1
        return Arrival.LATE

    def _out_of_range(self, sequence: int, delta: int) -> Arrival:
        """Set ``sequence`` aside, or resynchronise onto it if it confirms a new run."""
        follows = 0 < ((sequence - self._candidate) & UINT32) <= self.max_gap
        self._candidates = self._candidates + 1 if self._candidates and follows else 1
        self._candidate = sequence
        if self._candidates < self.confirm:
            self.out_of_range += 1
            return Arrival.OUT_OF_RANGE
        self._span = self.expected
        self.resyncs += 1
        self._start_run(self._high + delta)
        return Arrival.NEW

    def _start_run(self, n: int) -> None:
        self._seen = bytearray(self.window)
        self._seen[n % self.window] = 1
        self._first = self._high = n
        self._candidates = 0
        self.received_unique += 1

    def _advance(self, n: int) -> None:
        """Mark high+1..n-1 unseen (they may still come late) and n seen."""
        count = n - self._high
        if count >= self.window:
            self._seen = bytearray(self.window)
        else:
            start = (self._high + 1) % self.window
            head = min(count, self.window - start)
            self._seen[start:start + head] = bytes(head)
            self._seen[:count - head] = bytes(count - head)
        self._seen[n % self.window] = 1
        self._high = n
