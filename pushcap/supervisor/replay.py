"""Push targets run over a capture file instead of a live interface (`pushcap replay`).

The same consumers as live capture, driven inline from the file as fast as it reads, with
nothing dropped: what a target writes from a replay is what it would have written live.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from pushcap import defaults
from pushcap.capture.batch import PCAP_FILE_HEADER_BYTES
from pushcap.capture.source import PcapFileSource, open_file_source
from pushcap.config.model import TargetConfig
from pushcap.config.record import field, record
from pushcap.supervisor.consumers import ConsumerFactory, check_filters, make_consumer


@record
class ReplaySummary:
    packets: int = 0
    bytes: int = 0  # of the packets' records (16-byte headers included)
    batches: int = 0
    seconds: float = 0.0
    series: list = field(default_factory=list)


def replay(path: str | Path, targets: tuple[TargetConfig, ...],
           batch_packets: int = defaults.BATCH_PACKETS,
           progress: Callable[[int, int], None] | None = None,
           rclone_settings=None, make: ConsumerFactory = make_consumer) -> ReplaySummary:
    """Run the targets over a capture file (every target reads it, whatever its Interface).

    Every consumer is done with a batch when consume() returns (files are written, flows
    counted), so the source reads every window into one reused buffer. `progress(packets,
    position)` is called after every batch (never per packet) with the input offset reached."""
    source = open_file_source(path, batch_packets)
    position = _input_position(source)
    check_filters(targets, source.linktype, source.snaplen)
    # at_launch=False: a daemon may be writing into the same folders, and its open `.part` files
    # look just like a crash's leftovers; those are the daemon's to repair at its next start.
    consumers = [make(t, source.name, False, source.linktype, source.snaplen, rclone_settings)
                 for t in targets]
    for consumer in consumers:
        consumer.start(at_launch=False)
    summary = ReplaySummary(series=consumers)
    started = time.monotonic()
    try:
        for batch in source.batches(reuse_buffer=True):
            for consumer in consumers:
                consumer.consume(batch)
            summary.packets += len(batch)
            summary.bytes += batch.nbytes
            summary.batches += 1
            if progress:
                progress(summary.packets, position(summary.bytes))
    finally:
        for consumer in consumers:
            consumer.close()
    summary.seconds = time.monotonic() - started
    return summary


def _input_position(source) -> Callable[[int], int]:
    """Where a replay stands in its input, from the bytes of records read so far: a classic pcap
    file knows its offset exactly; for pcapng (whose blocks carry more than a record's 16-byte
    header) the records' bytes plus a file header are a slight under-estimate."""
    if isinstance(source, PcapFileSource):
        return lambda _nbytes: source.end_offset
    return lambda nbytes: PCAP_FILE_HEADER_BYTES + nbytes
