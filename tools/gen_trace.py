"""Seeded synthetic Ethernet trace generator for tests and benchmarks.

Tests need traces larger and more varied than the real captures in ``tests/data`` (a million
packets for the packet path, thousands of flows for the aggregator), and they need the same bytes
every run so a failure can be replayed. So the trace is a pure function of its arguments and seed.

Speed matters more than fidelity: a million packets must take seconds, so nothing is built per
packet in Python. Each flow direction gets one header template (built once with ``struct``), and
packets are assembled in chunks with numpy: random payload fill, template rows scattered into
place, then the per-packet fields (lengths, IPv4 id and checksum, TCP seq and flags) patched as
whole columns. TCP/UDP checksums are left zero; IPv4 header checksums are correct.
That assembly lives in trace_packets.py; this module writes the file and is the command.

Usage: ``python tools/gen_trace.py OUT.pcap --packets N [--seed S] [--nano] ...``
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
from trace_packets import ChunkState, assemble_chunk, build_templates  # tools/ is on sys.path

DEFAULT_START_NS = 1_700_000_000 * 10**9
DEFAULT_RATE_PPS = 20_000.0
DEFAULT_SNAPLEN = 262_144
LINKTYPE_ETHERNET = 1
PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
CHUNK_PACKETS = 65_536  # bounds memory (~40 MB per chunk); fixed so output is chunk-independent


def generate(
    path: Path,
    packets: int,
    seed: int = 1,
    start_ns: int = DEFAULT_START_NS,
    rate_pps: float = DEFAULT_RATE_PPS,
    nano: bool = False,
    snaplen: int = DEFAULT_SNAPLEN,
) -> None:
    """Write a classic little-endian Ethernet pcap of ``packets`` synthetic packets.

    The output is a pure function of the arguments: the same seed gives the same bytes. Gaps
    between timestamps are exponential with mean ``1 / rate_pps``; a µs file floors them to µs, so
    timestamps never decrease. ``snaplen`` below a frame's length cuts its captured bytes while
    keeping the wire length, as a real capture would.
    """
    if packets < 0 or rate_pps <= 0 or snaplen <= 0:
        raise ValueError("packets must be >= 0, rate_pps and snaplen > 0")
    rng = np.random.default_rng(seed)
    templates, pools = build_templates(rng, packets)
    state = ChunkState(len(templates.length), start_ns)
    magic = PCAP_MAGIC_NS if nano else PCAP_MAGIC_US
    with Path(path).open("wb") as out:
        out.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET))
        done = 0
        while done < packets:
            n = min(CHUNK_PACKETS, packets - done)
            buf = assemble_chunk(rng, n, templates, pools, state, 1e9 / rate_pps, nano, snaplen)
            out.write(buf.data)
            done += n


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; prints what it wrote and how long it took."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="output pcap path")
    parser.add_argument("--packets", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--start-epoch",
        type=Decimal,
        default=Decimal(DEFAULT_START_NS) / 10**9,
        help="timestamp of the first packet, seconds since the epoch",
    )
    parser.add_argument("--rate-pps", type=float, default=DEFAULT_RATE_PPS)
    parser.add_argument("--nano", action="store_true", help="nanosecond pcap (magic a1b23c4d)")
    parser.add_argument("--snaplen", type=int, default=DEFAULT_SNAPLEN)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    generate(
        args.out,
        args.packets,
        seed=args.seed,
        start_ns=int(args.start_epoch * 10**9),
        rate_pps=args.rate_pps,
        nano=args.nano,
        snaplen=args.snaplen,
    )
    elapsed = time.perf_counter() - started
    size = args.out.stat().st_size
    print(
        f"wrote {args.out} packets={args.packets} bytes={size} seconds={elapsed:.2f}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
