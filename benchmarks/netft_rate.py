"""RDT receive rate, loss and inter-arrival jitter of NetFTClient against the loopback emulator.

    python benchmarks/netft_rate.py [--seconds 3] [--rates 1000 2000 5000]

Emulator and client share one process (and its GIL) on 127.0.0.1, so the jitter includes the
emulator's own pacing; a real box paces in hardware. Jitter is |inter-arrival - 1/rate|.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from tacforce_ros.hardware.netft import NetFTClient
from tacforce_ros.hardware.netft_calibration import Calibration
from tacforce_ros.sim.netft_box import RdtEmulator


def measure(rate_hz: float, seconds: float) -> dict[str, float]:
    with RdtEmulator(rate_hz=rate_hz, keep_log=False) as emu, \
            NetFTClient(*emu.address, calibration=Calibration(1_000_000, 1_000_000)) as client:
        client.start()
        stamps = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            sample = client.read()
            if sample is not None:
                stamps.append(sample.monotonic_ns)
        client.stop()
        stats = client.stats
    t = np.array(stamps) / 1e9
    gaps = np.diff(t)
    jitter = np.abs(gaps - 1.0 / rate_hz)
    return {
        "rate_hz": (len(t) - 1) / (t[-1] - t[0]),
        "loss_pct": 100.0 * stats.lost / max(stats.received_unique + stats.lost, 1),
        "gap_p50_ms": float(np.percentile(gaps, 50) * 1e3),
        "gap_p99_ms": float(np.percentile(gaps, 99) * 1e3),
        "jitter_p50_ms": float(np.percentile(jitter, 50) * 1e3),
        "jitter_p99_ms": float(np.percentile(jitter, 99) * 1e3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rates", type=float, nargs="+", default=[1000.0, 2000.0, 5000.0])
    args = parser.parse_args()
    print(f"{'target Hz':>10} {'received Hz':>12} {'loss %':>7} {'gap p50 ms':>11} "
          f"{'gap p99 ms':>11} {'jitter p50 ms':>14} {'jitter p99 ms':>14}")
    for rate in args.rates:
        r = measure(rate, args.seconds)
        print(f"{rate:10.0f} {r['rate_hz']:12.1f} {r['loss_pct']:7.3f} {r['gap_p50_ms']:11.3f} "
              f"{r['gap_p99_ms']:11.3f} {r['jitter_p50_ms']:14.3f} {r['jitter_p99_ms']:14.3f}")


if __name__ == "__main__":
    main()
