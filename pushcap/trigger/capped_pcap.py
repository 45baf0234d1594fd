"""A capture's pcap records, appended batch by batch within the request's `packets` and `bytes`.

The caps hold for the whole capture, archive, ring and live parts alike (job.py), so one
appender counts them all. Each append is per batch: numpy picks how many of the selected packets
fit, and one `build_records` call writes their records, never a Python loop per packet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pushcap.capture.batch import (
    PCAP_FILE_HEADER_BYTES,
    RECORD_HEADER_BYTES,
    Batch,
    build_records,
)

if TYPE_CHECKING:  # job.py defines the outcome and builds this appender for it
    from pushcap.trigger.job import CaptureOutcome


class CappedPcap:
    """Appends selected packets to an outcome's parts until a cap is reached."""

    def __init__(self, outcome: CaptureOutcome, max_packets: int, max_bytes: int) -> None:
        self.outcome = outcome
        self.max_packets = max_packets
        self.max_bytes = max_bytes
        self._bytes = PCAP_FILE_HEADER_BYTES  # the file so far, its header included

    def append(self, batch: Batch, idx: np.ndarray) -> str:
        """Append packets `idx` of `batch` (selected, in time order, at least one) within the
        caps; the cap this reached ("packets" or "bytes"), or "" while there is room."""
        ts = batch.ts_ns
        out = self.outcome
        reached = ""
        room = self.max_packets - out.packets
        if len(idx) >= room:
            idx, reached = idx[:room], "packets"
        caplen = np.minimum(batch.caplen[idx], out.snap)
        sizes = np.cumsum(caplen + RECORD_HEADER_BYTES)
        fits = int(np.searchsorted(sizes, self.max_bytes - self._bytes, side="right"))
        if fits < len(idx):
            # The file never exceeds `bytes`, unless its first packet alone does.
            fits = max(fits, 1 if out.packets == 0 else 0)
            idx, caplen, reached = idx[:fits], caplen[:fits], "bytes"
        if len(idx):
            records, _ = build_records(ts[idx], caplen, batch.wirelen[idx], batch.records,
                                       batch.offsets[idx] + RECORD_HEADER_BYTES)
            out.parts.append(records)
            out.packets += len(idx)
            self._bytes += len(records)
            out.first_ts_ns = out.first_ts_ns if out.first_ts_ns is not None else int(ts[idx[0]])
            out.last_ts_ns = int(ts[idx[-1]])
        return reached
