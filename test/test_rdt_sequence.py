"""RDT sequence accounting: loss, duplicates, reordering, wrap-around, and resynchronising after a
jump without letting one forged record move the stream's numbering.
"""

from __future__ import annotations

import random

import pytest

from tacforce_ros.hardware.rdt_sequence import UINT32, Arrival, SequenceTracker


def check_invariant(t: SequenceTracker) -> None:
    assert t.received_unique + t.lost == t.expected
    assert t.received == t.received_unique + t.duplicated + t.out_of_range


def test_tracker_in_order_and_gap():
    t = SequenceTracker()
    assert [t.feed(n) for n in (1, 2, 5)] == [Arrival.NEW] * 3
    assert (t.received_unique, t.lost, t.expected, t.first, t.last) == (3, 2, 5, 1, 5)
    check_invariant(t)


def test_tracker_late_packet_is_uncounted_from_lost():
    t = SequenceTracker()
    for n in (1, 2, 5):
        t.feed(n)
    assert t.feed(3) is Arrival.LATE
    assert (t.lost, t.out_of_order, t.received_unique) == (1, 1, 4)
    check_invariant(t)
    assert t.feed(3) is Arrival.DUPLICATE
    assert t.feed(5) is Arrival.DUPLICATE
    assert t.feed(4) is Arrival.LATE
    assert (t.lost, t.out_of_order, t.duplicated, t.received, t.received_unique) == (0, 2, 2, 7, 5)
    check_invariant(t)


def test_tracker_reordered_ahead_of_first_extends_span():
    t = SequenceTracker()
    t.feed(10)
    assert t.feed(8) is Arrival.LATE
    assert (t.first, t.expected, t.lost, t.out_of_order) == (8, 3, 1, 1)
    assert t.feed(9) is Arrival.LATE
    assert t.lost == 0
    check_invariant(t)


def test_tracker_wrap_around():
    t = SequenceTracker()
    for n in (2**32 - 2, 2**32 - 1, 0, 2):
        assert t.feed(n) is Arrival.NEW
    assert (t.lost, t.expected, t.last) == (1, 5, 2)
    assert t.feed(1) is Arrival.LATE
    assert t.feed(2**32 - 1) is Arrival.DUPLICATE
    assert (t.lost, t.out_of_order, t.duplicated) == (0, 1, 1)
    check_invariant(t)
    t.reset()
    t.feed(1)
    assert t.feed(2**32 - 1) is Arrival.LATE  # 1 then -1: reordered across the wrap
    assert (t.expected, t.lost, t.first) == (3, 1, 2**32 - 1)


def test_tracker_window_bounds_memory():
    t = SequenceTracker(window=16)
    t.feed(1)
    assert t.feed(100) is Arrival.NEW
    assert t.lost == 98
    assert t.feed(90) is Arrival.LATE  # inside the window: still known to be missing
    assert t.feed(80) is Arrival.OUT_OF_RANGE  # outside: neither lost nor received changes
    assert (t.lost, t.received_unique, t.out_of_range) == (97, 3, 1)
    check_invariant(t)
    with pytest.raises(ValueError):
        t.feed(-1)


@pytest.mark.parametrize("seed", range(5))
def test_tracker_matches_reference_under_loss_duplication_reordering(seed):
    rng = random.Random(seed)
    base = 2**32 - 2000  # crosses the wrap
    stream = []
    for n in range(base, base + 5000):
        if rng.random() < 0.05:
            continue
        stream.append(n)
        if rng.random() < 0.05:
            stream.append(n)
    for i in range(len(stream) - 3):  # local reordering, up to 3 places
        if rng.random() < 0.05:
            j = i + rng.randint(1, 3)
            stream[i], stream[j] = stream[j], stream[i]
    t = SequenceTracker()
    seen, high, low, late = set(), None, None, 0
    for n in stream:
        expected = (Arrival.DUPLICATE if n in seen else
                    Arrival.NEW if high is None or n > high else Arrival.LATE)
        assert t.feed(n & 0xFFFFFFFF) is expected
        late += expected is Arrival.LATE
        seen.add(n)
        high = n if high is None else max(high, n)
        low = n if low is None else min(low, n)
        assert (t.received_unique, t.lost, t.out_of_order) == (
            len(seen), high - low + 1 - len(seen), late)
        check_invariant(t)
    assert t.duplicated == len(stream) - len(seen)
    assert t.last == high & 0xFFFFFFFF


# --- numbers far from the stream ---------------------------------------------------------------


@pytest.mark.parametrize("jump", [4097, 100_000, 2**31 - 1, 2**31, -70_000])
def test_one_far_number_is_set_aside_and_the_stream_goes_on(jump):
    t = SequenceTracker()
    base = 2**32 - 5  # the genuine stream crosses the wrap meanwhile
    for n in range(base, base + 3):
        t.feed(n & UINT32)
    assert t.feed((base + 2 + jump) & UINT32) is Arrival.OUT_OF_RANGE
    assert [t.feed(n & UINT32) for n in range(base + 3, base + 20)] == [Arrival.NEW] * 17
    assert (t.out_of_range, t.resyncs, t.lost, t.last) == (1, 0, 0, (base + 19) & UINT32)
    check_invariant(t)


@pytest.mark.parametrize("seed", range(3))
def test_far_numbers_sprinkled_into_a_lossy_stream_change_nothing_else(seed):
    rng = random.Random(seed)
    clean, mixed = SequenceTracker(), SequenceTracker()
    for n in range(2**32 - 2000, 2**32 + 3000):
        if rng.random() < 0.05:
            continue  # lost
        assert mixed.feed(n & UINT32) is clean.feed(n & UINT32)
        if rng.random() < 0.05:
            far = n + rng.randint(5000, 2**32 - 70_000)  # beyond max_gap ahead or the window behind
            assert mixed.feed(far & UINT32) is Arrival.OUT_OF_RANGE
    assert (mixed.received_unique, mixed.lost, mixed.last, mixed.resyncs) == (
        clean.received_unique, clean.lost, clean.last, 0)
    check_invariant(mixed)


def test_far_numbers_that_do_not_follow_each_other_never_resync():
    t = SequenceTracker()
    t.feed(1)
    far = [10**6 * k for k in range(1, 50)] + [777_777] * 5  # far apart, or the same one again
    assert {t.feed(n) for n in far} == {Arrival.OUT_OF_RANGE}
    assert t.feed(2) is Arrival.NEW
    assert (t.out_of_range, t.resyncs, t.lost, t.last) == (54, 0, 0, 2)
    check_invariant(t)


def test_records_of_the_stream_between_far_ones_keep_the_stream():
    t = SequenceTracker()
    t.feed(1)
    for n in range(2, 100):
        assert t.feed(n) is Arrival.NEW
        assert t.feed(10**6 + n) is Arrival.OUT_OF_RANGE  # consistent, but never two in a row
    assert (t.out_of_range, t.resyncs, t.lost, t.last) == (98, 0, 0, 99)
    check_invariant(t)


@pytest.mark.parametrize(("start", "restart"), [
    (500_000, 1),  # the box numbers from 1 again
    (1, 2**31),  # a jump ahead
    (2**32 - 3, 100_000),  # from a stream that crossed the wrap
    (100_000, 2**32 - 1),  # onto numbers that cross the wrap
])
def test_a_consistent_jump_resynchronises_on_its_third_record(start, restart):
    t = SequenceTracker()
    for n in range(start, start + 5):
        t.feed(n & UINT32)
    arrivals = [t.feed((restart + k) & UINT32) for k in range(10)]
    assert arrivals == [Arrival.OUT_OF_RANGE] * 2 + [Arrival.NEW] * 8
    assert (t.resyncs, t.out_of_range, t.lost) == (1, 2, 0)
    assert (t.first, t.last) == ((restart + 2) & UINT32, (restart + 9) & UINT32)
    assert (t.received_unique, t.expected) == (13, 13)  # the old run's 5 + the new run's 8
    assert t.feed((start + 5) & UINT32) is Arrival.OUT_OF_RANGE  # the old numbering is over
    check_invariant(t)


def test_a_reordered_jump_resynchronises_a_record_later():
    t = SequenceTracker()
    for n in range(1, 6):
        t.feed(n)
    arrivals = [t.feed(n) for n in (10**6 + 1, 10**6, 10**6 + 2, 10**6 + 3, 10**6 + 4)]
    assert arrivals == [Arrival.OUT_OF_RANGE] * 3 + [Arrival.NEW] * 2
    check_invariant(t)


@pytest.mark.parametrize("kwargs", [{"window": 1}, {"max_gap": 0}, {"max_gap": 2**31},
                                    {"confirm": 1}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        SequenceTracker(**kwargs)
