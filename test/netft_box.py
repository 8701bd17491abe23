"""Child process for node tests: a loopback Net F/T box (RDT emulator + calibration page).

Prints 'PORTS <rdt> <http>' when ready. Reads commands on stdin: 'silent' stops answering
(a pulled cable), 'malformed N' sends N wrong-size datagrams, 'forge' goes silent but sends a
record numbered far from the stream every millisecond (never two that follow each other),
'quit' (or end of input) exits. A constant wrench is streamed at 1 kHz. An optional argument
sets the page's counts per force (e.g. 1e-300, a hostile page).
"""
import sys
import threading

from tacforce_ros.hardware.rdt import RdtRecord, encode_record
from tacforce_ros.sim.netft_box import CalibrationServer, RdtEmulator

WRENCH = (0.5, -0.25, -2.0, 0.01, 0.0, -0.002)


def forge(box: RdtEmulator, done: threading.Event) -> None:
    k = 0
    while not done.wait(0.001):
        k += 1
        box.send_raw(encode_record(RdtRecord((2**31 + k * 100_000) & 0xFFFFFFFF, 0, 0, (0,) * 6)))


def main() -> None:
    page_counts = float(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    done = threading.Event()
    forger = None
    with RdtEmulator(1_000_000, 1_000_000, rate_hz=1000, wrench_fn=lambda t: WRENCH, keep_log=False) as box, \
            CalibrationServer(page_counts, 1_000_000) as page:
        print(f"PORTS {box.address[1]} {page.address[1]}", flush=True)
        for line in sys.stdin:
            command = line.split()
            if command == ["silent"]:
                box.silent = True
            elif command[:1] == ["malformed"]:
                for _ in range(int(command[1])):
                    box.send_raw(bytes(7))
            elif command == ["forge"]:
                box.silent = True
                forger = threading.Thread(target=forge, args=(box, done), daemon=True)
                forger.start()
            elif command == ["quit"]:
                break
        done.set()
        if forger is not None:
            forger.join()


if __name__ == "__main__":
    main()
