"""Net F/T RDT client against the loopback emulator (127.0.0.1 only; no hardware, no network).

The acceptance test (1 kHz for 30 s with loss, duplication and reordering) is
``test_ACCEPTANCE_1khz_30s_loss_duplication_reordering``; run it alone with
``python -m pytest -q -s test/test_netft.py -k ACCEPTANCE`` to see the measured rates.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Callable

import numpy as np
import pytest

from tacforce_ros.hardware.netft import (
    NetFTClient,
    NetFTConnectionError,
    NetFTError,
    NetFTStream,
    NetFTTimeout,
)
from tacforce_ros.hardware.netft_calibration import Calibration
from tacforce_ros.hardware.rdt import (
    CMD_START_REALTIME,
    RECORD_SIZE,
    RdtRecord,
    decode_record,
    encode_record,
    encode_request,
)
from tacforce_ros.sim.netft_box import RdtEmulator

CAL = Calibration(1_000_000, 1_000_000)
CONSTANT = (1.5, -2.0, 3.25, 0.1, -0.2, 0.05)


def closed_port(kind: int) -> int:
    """Find a loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], bool], timeout: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.002)
    return predicate()


def read_for(client: NetFTClient, seconds: float) -> list:
    samples, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        sample = client.read(0.02)
        if sample is not None:
            samples.append(sample)
    return samples


# --- client against the emulator ---------------------------------------------------------------


def sent_counts_by_sequence(emu: RdtEmulator) -> dict[int, tuple[int, ...]]:
    by_seq: dict[int, tuple[int, ...]] = {}
    for record in emu.sent:
        assert by_seq.setdefault(record.rdt_sequence, record.counts) == record.counts
    return by_seq


def late_in_emission_order(emu: RdtEmulator) -> int:
    """How many records the emulator emitted after a higher one (first copies only)."""
    seen, high, late = set(), 0, 0
    for record in emu.sent:
        if record.rdt_sequence not in seen:
            late += record.rdt_sequence < high
            seen.add(record.rdt_sequence)
            high = max(high, record.rdt_sequence)
    return late


# ACCEPTANCE TEST ------------------------------------------------------------------------------
ACCEPTANCE_SECONDS = 30.0


def test_ACCEPTANCE_1khz_30s_loss_duplication_reordering():  # noqa: N802 - easy to find
    """1 kHz for 30 s with 1 % loss, 0.5 % duplication and 0.5 % reordering: the client's
    accounting matches what the emulator did and every value is the sent counts / cpu.
    """
    emu = RdtEmulator(rate_hz=1000, loss=0.01, duplicate=0.005, reorder=0.005, seed=7)
    samples = []
    with emu, NetFTClient(*emu.address, calibration=CAL) as client:
        t0 = time.monotonic()
        client.start()
        with NetFTStream(client, samples.append) as stream:
            time.sleep(ACCEPTANCE_SECONDS)
            client.stop()
            assert wait_until(lambda: not emu.streaming, 1.0)
            time.sleep(0.2)  # the last datagrams in flight
        wall = time.monotonic() - t0
        assert stream.error is None
        stats = client.stats

    sent = sent_counts_by_sequence(emu)
    dropped = set(emu.dropped)
    received = [s.rdt_sequence for s in samples]
    assert len(received) == len(set(received)), "duplicates must not be delivered"
    assert set(received) == set(sent), "every emitted record must arrive on loopback"
    first, last = min(received), max(received)
    dropped_in_span = {n for n in dropped if first <= n <= last}
    assert len(sent) + len(dropped_in_span) == last - first + 1
    assert stats.received_unique == len(sent)
    assert stats.lost == len(dropped_in_span)
    assert stats.received_unique + stats.lost == last - first + 1  # == sent_unique + injected
    assert stats.duplicated == len(emu.sent) - len(sent)
    assert stats.out_of_order == late_in_emission_order(emu) == sum(s.late for s in samples)
    assert stats.malformed == 0 and stats.out_of_range == 0
    assert stats.duplicated > 0 and stats.out_of_order > 0 and stats.lost > 0

    divisor = np.array(emu.counts_per_unit, dtype=np.float64)
    for s in samples:
        assert s.counts == sent[s.rdt_sequence]
        assert np.array_equal(s.wrench, np.array(sent[s.rdt_sequence], dtype=np.float64) / divisor)

    times = np.array([s.monotonic_ns for s in samples]) / 1e9
    span = times[-1] - times[0]
    sequence_rate = (last - first) / span
    delivered_rate = (len(samples) - 1) / span
    seqs = np.array(received)
    edges = np.arange(times[0], times[-1], 1.0)
    per_second = np.diff([seqs[times <= e].max() for e in edges])
    gaps = np.diff(times)
    print(f"\nACCEPTANCE: {span:.2f} s streamed ({wall:.2f} s wall), generated {emu.generated}, "
          f"emitted {len(emu.sent)} ({len(sent)} unique), received {stats.received} "
          f"({stats.received_unique} unique), lost {stats.lost}, duplicated {stats.duplicated}, "
          f"out of order {stats.out_of_order}\n"
          f"ACCEPTANCE: sequence rate {sequence_rate:.2f} Hz, delivered {delivered_rate:.2f} "
          f"samples/s, per-second sequence advance min {per_second.min()} max "
          f"{per_second.max()}, inter-arrival p50 {np.percentile(gaps, 50) * 1e3:.3f} ms "
          f"p99 {np.percentile(gaps, 99) * 1e3:.3f} ms max {gaps.max() * 1e3:.1f} ms")
    assert span > ACCEPTANCE_SECONDS - 1
    assert sequence_rate >= 999.0


def test_wrap_around_end_to_end():
    with RdtEmulator(rate_hz=2000, loss=0.02, duplicate=0.02, reorder=0.02, seed=3,
                     first_sequence=2**32 - 700) as emu, \
            NetFTClient(*emu.address, calibration=CAL) as client:
        client.start()
        samples = read_for(client, 0.8)
        client.stop()
        assert wait_until(lambda: not emu.streaming)
        samples += read_for(client, 0.1)
        stats = client.stats
    received = {s.rdt_sequence for s in samples}
    assert received == set(sent_counts_by_sequence(emu))
    assert min(received) < 100 and max(received) > 2**32 - 700  # crossed the wrap
    assert stats.received_unique == len(received)
    assert stats.received_unique + stats.lost == len(received) + len(emu.dropped)
    assert stats.out_of_range == 0


def test_malformed_datagrams_are_ignored_and_counted():
    with RdtEmulator(rate_hz=500) as emu, NetFTClient(*emu.address, calibration=CAL) as client:
        client.start()
        for size in (0, 8, 35, 37, 100):
            emu.send_raw(bytes(size))
        samples = read_for(client, 0.2)
        stats = client.stats
    assert stats.malformed == 5
    assert stats.lost == 0 and stats.received_unique == len(samples)  # start's first included
    assert all(s.rdt_sequence > 0 for s in samples)


def forged(sequence: int) -> bytes:
    """Encode a well-formed record numbered ``sequence`` (mod 2**32), as a forger would send it."""
    return encode_record(RdtRecord(sequence & 0xFFFFFFFF, 0, 0, (2**31 - 1,) * 6))


@pytest.mark.parametrize("jump", [100_000, 2**31 - 1])
def test_one_forged_far_record_is_dropped_and_the_stream_goes_on(jump):
    with RdtEmulator(rate_hz=1000) as emu, NetFTClient(*emu.address, calibration=CAL) as client:
        client.start()
        last = read_for(client, 0.05)[-1].rdt_sequence
        emu.send_raw(forged(last + jump))
        after = read_for(client, 0.2)
        stats = client.stats
    numbers = [s.rdt_sequence for s in after]
    assert numbers == list(range(last + 1, last + 1 + len(numbers))) and len(numbers) > 100
    assert (stats.out_of_range, stats.resyncs, stats.lost) == (1, 0, 0)


def test_a_box_that_renumbers_is_followed_from_its_third_record():
    with RdtEmulator(rate_hz=1000, first_sequence=2**31) as emu, \
            NetFTClient(*emu.address, calibration=CAL) as client:
        client.start()
        read_for(client, 0.05)
        emu.first_sequence = 1  # from now on the box numbers its records from ~50
        after = read_for(client, 0.2)
        stats = client.stats
    renumbered = [r.rdt_sequence for r in emu.sent if r.rdt_sequence < 2**31]
    got = [s.rdt_sequence for s in after if s.rdt_sequence < 2**31]
    assert got == renumbered[2:2 + len(got)] and len(got) > 100
    assert (stats.resyncs, stats.out_of_range) == (1, 2)


def test_only_accepted_records_keep_the_stream_fresh():
    """Forged, duplicated and malformed datagrams from a box that stopped streaming are
    dropped and do not refresh the last-record time, so the stream is seen to be stale.
    """
    with RdtEmulator(rate_hz=1000) as emu, NetFTClient(*emu.address, calibration=CAL) as client:
        client.start()
        last = read_for(client, 0.05)[-1].rdt_sequence
        emu.silent = True
        read_for(client, 0.05)  # whatever was already in flight
        junk, deadline = 0, time.monotonic() + 0.3
        while time.monotonic() < deadline:
            junk += 1
            for data in (forged(last + junk * 100_000), forged(last), bytes(7)):
                emu.send_raw(data)
            assert client.read(0.01) is None
        assert client.seconds_since_last_packet() > 0.3
        stats = client.stats
    assert (stats.out_of_range, stats.duplicated, stats.malformed) == (junk, junk, junk)


def test_emulator_ignores_bad_requests_and_honours_sample_count():
    with RdtEmulator(rate_hz=1000) as emu, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        s.connect(emu.address)
        for bad in (bytes.fromhex("4321 0002 00000000"), bytes(7), bytes(9),
                    encode_request(0x0099)):
            s.send(bad)
        with pytest.raises(TimeoutError):
            s.recv(64)
        assert (emu.bad_requests, emu.streaming) == (4, False)
        s.send(encode_request(CMD_START_REALTIME, 5))
        records = [decode_record(s.recv(64)) for _ in range(5)]
        assert [r.rdt_sequence for r in records] == [1, 2, 3, 4, 5]
        with pytest.raises(TimeoutError):
            s.recv(64)
        assert not emu.streaming


def test_wrong_port_fails_fast_with_clear_error():
    port = closed_port(socket.SOCK_DGRAM)
    with NetFTClient("127.0.0.1", port, calibration=CAL, start_timeout_s=2.0) as client:
        t0 = time.monotonic()
        with pytest.raises(NetFTConnectionError, match=f"127.0.0.1:{port}"):
            client.start()
        assert time.monotonic() - t0 < 0.5  # ICMP port unreachable, not the start timeout


def test_silent_host_times_out_with_clear_error():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as blackhole:
        blackhole.bind(("127.0.0.1", 0))  # receives requests, never answers
        with NetFTClient(*blackhole.getsockname(), calibration=CAL,
                         start_timeout_s=0.3) as client:
            t0 = time.monotonic()
            with pytest.raises(NetFTTimeout, match="no RDT record") as info:
                client.start()
            assert 0.25 < time.monotonic() - t0 < 1.0
            assert isinstance(info.value, TimeoutError)
            assert client.read(0.05) is None


def test_bad_port_number_and_host():
    with pytest.raises(ValueError):
        NetFTClient("127.0.0.1", 0, calibration=CAL)
    with pytest.raises(NetFTConnectionError, match="cannot resolve"):
        NetFTClient("not a host name", calibration=CAL)


def test_stale_stream_is_detected_and_recovers():
    with RdtEmulator(rate_hz=1000) as emu, NetFTClient(*emu.address, calibration=CAL) as client:
        client.start()
        assert read_for(client, 0.1)
        assert client.seconds_since_last_packet() < 0.05
        emu.silent = True
        time.sleep(0.02)
        read_for(client, 0.05)  # whatever was already in flight
        assert client.read(0.3) is None
        assert client.seconds_since_last_packet() > 0.3
        emu.silent = False
        after = read_for(client, 0.1)
        assert after and client.seconds_since_last_packet() < 0.05
        stats = client.stats
        generated_in_span = max(s.rdt_sequence for s in after)
    assert stats.lost == len([n for n in emu.dropped if n <= generated_in_span]) > 250
    assert stats.received_unique + stats.lost == generated_in_span


def test_bias_command_zeroes_the_box_output():
    with RdtEmulator(wrench_fn=lambda t: CONSTANT) as emu, \
            NetFTClient(*emu.address, calibration=CAL) as client:
        client.start()
        first = client.read()
        np.testing.assert_allclose(first.wrench, CONSTANT)
        client.bias()
        assert wait_until(lambda: not np.any(client.read().wrench), 0.5)
        assert all(not np.any(s.counts) for s in read_for(client, 0.05))


def test_bias_on_start():
    with RdtEmulator(wrench_fn=lambda t: CONSTANT) as emu, \
            NetFTClient(*emu.address, calibration=CAL, bias_on_start=True) as client:
        client.start()
        assert all(not np.any(s.wrench) for s in [client.read(), *read_for(client, 0.05)])


def test_tare_is_client_side():
    with RdtEmulator(wrench_fn=lambda t: CONSTANT) as emu, \
            NetFTClient(*emu.address, calibration=CAL) as client:
        with pytest.raises(NetFTError, match="at least one"):
            client.tare()
        client.start()
        read_for(client, 0.05)
        np.testing.assert_allclose(client.tare(samples=16), CONSTANT)
        tared = read_for(client, 0.05)
        assert tared
        np.testing.assert_allclose([s.wrench for s in tared], 0.0, atol=1e-12)
        assert all(s.counts == tuple(round(v * 1e6) for v in CONSTANT) for s in tared)
        client.clear_tare()
        np.testing.assert_allclose(client.read().wrench, CONSTANT)


def test_client_stop_stops_the_emulator_stream():
    with RdtEmulator(rate_hz=1000) as emu, NetFTClient(*emu.address, calibration=CAL) as client:
        client.start()
        read_for(client, 0.05)
        client.stop()
        assert wait_until(lambda: not emu.streaming, 0.5)
        generated = emu.generated
        time.sleep(0.1)
        assert emu.generated == generated
        read_for(client, 0.05)
        assert client.read(0.1) is None
        client.start()  # restart: numbering and accounting start again
        samples = [client.read(), *read_for(client, 0.05)]
        assert samples[0].rdt_sequence == 1
        assert client.stats.lost == 0 and client.stats.out_of_range == 0


def test_context_manager_stops_streaming_on_exit():
    with RdtEmulator(rate_hz=1000) as emu:
        with NetFTClient(*emu.address, calibration=CAL) as client:
            client.start()
            assert emu.streaming
        assert wait_until(lambda: not emu.streaming, 0.5)


def test_status_word_is_passed_through():
    with RdtEmulator(rate_hz=1000) as emu, NetFTClient(*emu.address, calibration=CAL) as client:
        emu.status = 0x80010000
        client.start()
        sample = client.read()
        assert sample.status == 0x80010000 and client.stats.last_status == 0x80010000


def test_rate_estimate():
    with RdtEmulator(rate_hz=2000) as emu, NetFTClient(*emu.address, calibration=CAL) as client:
        client.start()
        read_for(client, 1.3)
        assert client.stats.rate_hz == pytest.approx(2000, rel=0.1)  # one 1 s window: scheduling noise
        client.stop()
        time.sleep(1.1)
        assert client.stats.rate_hz == 0.0  # stale: no rate


def test_stream_keeps_callback_errors():
    def explode(sample):
        raise RuntimeError("callback failed")

    with RdtEmulator(rate_hz=1000) as emu, NetFTClient(*emu.address, calibration=CAL) as client:
        client.start()
        with NetFTStream(client, explode) as stream:
            assert wait_until(lambda: not stream.alive, 0.5)
        assert isinstance(stream.error, RuntimeError)
        with pytest.raises(NetFTError, match="wait=False"):
            with NetFTStream(client, lambda s: None):
                client.start()
        client.start()  # allowed again once no stream reads


def test_restart_while_streaming_thread_reads():
    samples = []
    with RdtEmulator(rate_hz=1000) as emu, NetFTClient(*emu.address, calibration=CAL) as client:
        client.start()
        with NetFTStream(client, samples.append) as stream:
            assert wait_until(lambda: len(samples) > 50)
            client.start(wait=False)
            assert wait_until(lambda: samples[-1].rdt_sequence > 50 and client.stats.received > 50)
            assert stream.alive and stream.error is None
        restarted = [s.rdt_sequence for s in samples[next(i for i in range(1, len(samples))
                                                          if samples[i].rdt_sequence == 1):]]
    assert restarted == list(range(1, len(restarted) + 1))


def test_emulator_arguments_are_checked():
    for kwargs in ({"rate_hz": 0}, {"loss": 1.5}, {"wrench_fn": lambda t: (0.0,) * 3},
                   {"first_sequence": 2**32}):
        with pytest.raises(ValueError):
            RdtEmulator(**kwargs)
    assert struct.calcsize(">III6i") == RECORD_SIZE
