"""Child process for node tests: a loopback Net F/T box (RDT emulator + calibration page).

Prints 'PORTS <rdt> <http>' when ready. Reads commands on stdin: 'silent' stops answering
(a pulled cable), 'quit' (or end of input) exits. A constant wrench is streamed at 1 kHz."""
import sys

from tacforce_ros.hardware.netft import CalibrationServer, RdtEmulator

WRENCH = (0.5, -0.25, -2.0, 0.01, 0.0, -0.002)


def main() -> None:
    with RdtEmulator(1_000_000, 1_000_000, rate_hz=1000, wrench_fn=lambda t: WRENCH, keep_log=False) as box, \
            CalibrationServer(1_000_000, 1_000_000) as page:
        print(f"PORTS {box.address[1]} {page.address[1]}", flush=True)
        for line in sys.stdin:
            if line.strip() == "silent":
                box.silent = True
            elif line.strip() == "quit":
                break


if __name__ == "__main__":
    main()
