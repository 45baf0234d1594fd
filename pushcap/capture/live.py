"""A live interface read with libpcap, batch by batch.

Two read paths, one contract: the C capture (live_c_reader.py), where the library is built, and
pcapy-ng (live_pcapy_reader.py) where it is not; live_open.py opens either handle. Here is what
is the same for both: the batches loop, stopping and hurrying, libpcap's counters, and what a
failed handle still holds (`_leftovers`, `unread`): packets are read or counted, never silently
gone.
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Iterator

import pcapy

from pushcap import defaults
from pushcap.capture.batch import Batch
from pushcap.capture.live_c_reader import CLiveReader
from pushcap.capture.live_counters import LiveCounters
from pushcap.capture.live_open import DLT_TO_LINKTYPE, open_native, open_pcapy
from pushcap.capture.live_pcapy_reader import PcapyLiveReader
from pushcap.capture.native_live import native_live
from pushcap.capture.wake import Wake


def capture_devices() -> tuple[str, ...] | None:
    """The devices libpcap can capture on this host (interfaces and pseudo-devices such as
    `any`), or None where it cannot list them."""
    try:
        return tuple(pcapy.findalldevs())
    except pcapy.PcapError:
        return None


class LiveSource:
    """A live interface read with libpcap in batches.

    The snaplen keeps whole packets (`defaults.LIVE_SNAPLEN_BYTES`), so caplen is the wire length;
    cutting packets short is an output decision (a trigger's `snap`), never capture's. libpcap's
    timestamps on a live handle are microseconds.

    When the handle fails (the interface went down or away), what libpcap still holds is read
    before the error is raised (`_leftovers`), and what even that could not read is `unread()`:
    packets are read or counted, never silently gone.
    """

    def __init__(self, interface: str, batch_packets: int = defaults.BATCH_PACKETS,
                 poll_timeout_ms: int = defaults.POLL_TIMEOUT_MS, promisc: bool = True,
                 buffer_bytes: int = defaults.KERNEL_BUFFER_BYTES,
                 leftover_wait_s: float | None = None) -> None:
        """`leftover_wait_s`: how long a failed handle is read on (see `_leftovers`); by
        default two poll timeouts and a margin."""
        self.name = interface
        self.batch_packets = batch_packets
        self.snaplen = defaults.LIVE_SNAPLEN_BYTES
        native = native_live()
        if native is not None:  # libpcap's callback writes the batch's records (native_live)
            handle = open_native(native, interface, self.snaplen, promisc, poll_timeout_ms,
                                 buffer_bytes)
            dlt = handle.datalink
        else:
            handle, fd = open_pcapy(interface, self.snaplen, promisc, poll_timeout_ms,
                                    buffer_bytes)
            dlt = handle.datalink()
        self.linktype = DLT_TO_LINKTYPE.get(dlt, dlt)
        self._stop = threading.Event()
        self._wake = Wake()  # a waiting trigger ends the batch being gathered (see hurry)
        self._stopped = Wake()  # `stop` ends the C capture's long wait on a quiet link
        self._reader: CLiveReader | PcapyLiveReader
        if native is not None:
            self._reader = CLiveReader(interface, handle, batch_packets, poll_timeout_ms,
                                       buffer_bytes, self.linktype, self.snaplen, self._wake,
                                       self._stopped)
        else:
            self._reader = PcapyLiveReader(interface, handle, fd, batch_packets,
                                           poll_timeout_ms, self.linktype, self.snaplen,
                                           self._stop, self._wake)
        self.packets_read = 0  # handed over in batches (see unread)
        self.leftovers_read = 0  # of which read after the handle failed (see _leftovers)
        self._leftover_wait_s = leftover_wait_s if leftover_wait_s is not None else (
            defaults.LEFTOVER_POLL_TIMEOUTS * poll_timeout_ms / 1000 + defaults.LEFTOVER_EXTRA_S)
        self._counters = LiveCounters(interface, self._reader.stats)

    def stop(self) -> None:
        """End the capture: the wait for a batch's first packets at once (`_stopped`), and a
        batch being gathered too (the hurry), not when its COALESCE_MS runs out."""
        self._stop.set()
        self._stopped.hurry()
        self._wake.hurry()

    def hurry(self) -> None:
        """Someone waits for the packets this source holds: end the batch being gathered now
        (or, when none is, the next one as soon as it has packets), not when `COALESCE_MS`
        runs out (wake.py). Any thread; a no-op once the source is closed."""
        self._wake.hurry()

    def close(self) -> None:
        """Release libpcap's handle (its kernel buffer) once this source has failed for good."""
        self._reader.close()
        self._wake.close()
        self._stopped.close()

    def stats(self) -> tuple[int, int, int]:
        """(received, dropped by the kernel, dropped by the interface) as libpcap reports them
        (the interface's drops as last read while it existed: `LiveCounters.stats`)."""
        return self._counters.stats()

    def unread(self) -> int | None:
        """Packets the kernel put in libpcap's buffer that were never handed over in a batch,
        since the handle was opened; None where the counters cannot tell
        (`LiveCounters.unread`)."""
        return self._counters.unread(self.packets_read)

    def batches(self) -> Iterator[Batch]:
        """Batches as packets arrive. A batch is what the kernel holds when woken, plus what
        arrives within `defaults.COALESCE_MS` more until it holds `batch_packets` (without the
        C capture: plus, when that is only a trickle, what arrives within PCAPY_COALESCE_MS
        once):
        every batch costs the capture thread and each target a fixed amount of Python and
        wake-ups, so batches of a few hundred packets would waste more CPU than the packets
        do. A trigger that waits for the packets being gathered ends the wait (`hurry`)."""
        reader = self._reader
        full = False
        while not self._stop.is_set() and reader.error is None:
            chunks, packets, full = reader.turn(full)  # more may be waiting when full
            if packets:
                batch = reader.batch(chunks)
                self.packets_read += len(batch)
                yield batch
        if reader.error is not None:
            # raised after the packets read before it and what libpcap still holds, also when
            # it came with a stop (still said)
            yield from self._leftovers()
            raise reader.error

    def _leftovers(self) -> Iterator[Batch]:
        """What libpcap still holds once the handle failed. libpcap reports the failure as soon
        as the socket has it, but the packets of the last poll timeout before it are still in
        the TPACKET_V3 block the kernel was filling, which reaches libpcap only when the block's
        timer (the poll timeout) retires it: closing at once lost them (65 packets sent 30 ms
        before `ip link del`, issue 17). So the handle is read on until its counters say
        nothing is left, for at most two timer runs; `unread()` is what even that missed."""
        reader = self._reader
        deadline = time.monotonic() + self._leftover_wait_s
        while time.monotonic() < deadline and self.unread() != 0:
            select.select([reader.fd], [], [], max(0.0, deadline - time.monotonic()))
            chunks = reader.drain(self.batch_packets)
            if chunks:
                batch = reader.batch(chunks)
                self.packets_read += len(batch)
                self.leftovers_read += len(batch)
                yield batch
            else:  # the failed socket may report readable with nothing to read: no busy loop
                time.sleep(defaults.LEFTOVER_NAP_MS / 1000)
