"""The sender of the reliability suite: sequence-numbered UDP datagrams at a fixed rate.

Run inside the test's network namespace (`ip netns exec NS python seq_sender.py ...`); it imports
nothing from pushcap. Each payload is `PCSQ` + the run id (8 bytes) + the sequence number (8
bytes, big-endian), padded to `--size`. Sequence numbers are given only to datagrams the kernel
accepted: a send that fails (the interface is gone) uses no number, and the schedule moves on
instead of bursting the backlog later.

What was sent is kept in `--times`, a file the harness made and reads while this runs (shared
memory through the page cache): a 16-byte header (count sent, done flag; little-endian u64)
and then, for every sequence number, the wall-clock time (float64, `time.time()`) it was sent at.
SIGTERM ends the run; so does reaching `--max`.
"""

from __future__ import annotations

import argparse
import mmap
import signal
import socket
import struct
import time

MAGIC = b"PCSQ"
HEADER = struct.Struct("<QQ")  # sent, done
TICK_S = 0.002  # pacing: sends are spread over ticks, a few datagrams each


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dst", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="datagrams per second")
    parser.add_argument("--run-id", required=True, help="16 hex digits")
    parser.add_argument("--times", required=True)
    parser.add_argument("--max", type=int, required=True)
    parser.add_argument("--size", type=int, default=100, help="UDP payload bytes")
    args = parser.parse_args()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    run_id = bytes.fromhex(args.run_id)
    pad = b"\0" * max(0, args.size - len(MAGIC) - len(run_id) - 8)
    with open(args.times, "r+b") as f:
        shared = mmap.mmap(f.fileno(), HEADER.size + 8 * args.max)
    times = memoryview(shared)[HEADER.size:].cast("d")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dst = (args.dst, args.port)
    sent = skipped = 0
    t0 = time.monotonic()
    while not stop and sent + skipped < args.max:
        due = min(int((time.monotonic() - t0) * args.rate), args.max) - sent - skipped
        now = time.time()
        for i in range(due):
            try:
                sock.sendto(MAGIC + run_id + sent.to_bytes(8, "big") + pad, dst)
            except OSError:
                skipped += due - i  # no link: these datagrams are never sent, nor numbered
                break
            times[sent] = now
            sent += 1
        HEADER.pack_into(shared, 0, sent, 0)
        time.sleep(TICK_S)  # pacing the sender, not waiting for anything
    HEADER.pack_into(shared, 0, sent, 1)
    shared.flush()


if __name__ == "__main__":
    main()
