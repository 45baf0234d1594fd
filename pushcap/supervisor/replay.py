"""Push targets run over a capture file instead of a live interface (`pushcap replay`).

The same consumers as live capture, driven inline from the file as fast as it reads, with
nothing dropped: what a target writes from a replay is what it would have written live.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from pushcap import defaults
from pushcap.capture.source import open_file_source
from pushcap.config.model import TargetConfig
from pushcap.supervisor.consumers import ConsumerFactory, check_filters, make_consumer


@dataclass
class ReplaySummary:
    packets: int = 0
    batches: int = 0
    seconds: float = 0.0
    series: list = field(default_factory=list)


def replay(path: str | Path, targets: tuple[TargetConfig, ...],
           batch_packets: int = defaults.BATCH_PACKETS, progress=None,
           rclone_settings=None, make: ConsumerFactory = make_consumer) -> ReplaySummary:
    """Run the targets over a capture file (every target reads it, whatever its Interface).

    Every consumer is done with a batch when consume() returns (files are written, flows
    counted), so the source reads every window into one reused buffer."""
    source = open_file_source(path, batch_packets)
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
            summary.batches += 1
            if progress:
                progress(summary.packets)
    finally:
        for consumer in consumers:
            consumer.close()
    summary.seconds = time.monotonic() - started
    return summary
