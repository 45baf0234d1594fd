"""A live interface read with libpcap, batch by batch.

pcapy-ng's `next_batch()` hands over many packets per call (their bytes and a table of
timestamps, offsets and lengths); the records of a batch are assembled from that in one C pass
(`native_records`; without the library, by the kernel: `batch.records_from_slices`), and
trickles are coalesced into batches of thousands.
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pcapy

from pushcap import defaults
from pushcap.capture import iov
from pushcap.capture.batch import Batch, build_records, records_from_slices
from pushcap.capture.native_live import LiveReadError, NativeLiveHandle, native_live
from pushcap.capture.native_records import native_records
from pushcap.capture.source import SourceError
from pushcap.capture.wake import Wake

# libpcap's DLT_ values that differ from the LINKTYPE_ values files must carry (raw IP and kin).
DLT_TO_LINKTYPE = {12: 101, 14: 101, 15: 102, 16: 103}
# pcap_activate()'s errors: pcapy-ng returns the code instead of raising, and a handle that did
# not activate fails later with a misleading "F_GETFL: Bad file descriptor".
ACTIVATE_ERRORS = {
    -1: "libpcap could not open it", -5: "no such device",
    -8: "permission denied (capture needs root or CAP_NET_RAW)", -9: "the interface is not up",
    -6: "monitor mode is not supported", -11: "promiscuous mode is not permitted",
}
_IFF_LOOPBACK = 0x8  # <linux/if.h>
_U32 = 1 << 32  # libpcap's counters are u_int: they wrap


def _is_loopback(interface: str) -> bool:
    try:
        return bool(int(Path(f"/sys/class/net/{interface}/flags").read_text(), 16)
                    & _IFF_LOOPBACK)
    except (OSError, ValueError):
        return False


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
        self._native: NativeLiveHandle | None = None
        native = native_live()
        if native is not None:  # libpcap's callback writes the batch's records (native_live)
            self._native, code, why = native.open(interface, self.snaplen, promisc,
                                                  poll_timeout_ms, buffer_bytes)
            if self._native is None:
                raise SourceError(f"interface {interface}: {ACTIVATE_ERRORS.get(code, why)}")
            self._open(self._native.fd, self._native.datalink, poll_timeout_ms,
                       leftover_wait_s, buffer_bytes)
            return
        try:
            handle = pcapy.create(interface)
            handle.set_snaplen(self.snaplen)
            handle.set_promisc(1 if promisc else 0)
            handle.set_timeout(poll_timeout_ms)
            handle.set_buffer_size(buffer_bytes)
            code = handle.activate()
            if code < 0:
                raise SourceError(f"interface {interface}: "
                                  f"{ACTIVATE_ERRORS.get(code, f'libpcap error {code}')}")
            handle.setnonblock(1)  # wait in select() instead, so stop() is seen within a poll
            fd = handle.getfd()
        except (pcapy.PcapError, ValueError) as exc:
            raise SourceError(f"interface {interface}: {exc}") from exc
        self._handle = handle
        self._open(fd, handle.datalink(), poll_timeout_ms, leftover_wait_s, buffer_bytes)

    def _open(self, fd: int, dlt: int, poll_timeout_ms: int,
              leftover_wait_s: float | None, buffer_bytes: int) -> None:
        """The state of an opened handle, whichever reads it."""
        self._fd = fd
        self._poll_timeout_ms = int(poll_timeout_ms)
        self._poll_timeout_s = poll_timeout_ms / 1000
        # the C capture's wait for a batch's first packets: libpcap's block timer hands them
        # over within the poll timeout, and `stop` ends it (set_idle), so it may be long
        self._idle_wait_ms = max(self._poll_timeout_ms, defaults.IDLE_WAIT_MS)
        self.linktype = DLT_TO_LINKTYPE.get(dlt, dlt)
        self._stop = threading.Event()
        self._wake = Wake()  # a waiting trigger ends the batch being gathered (see hurry)
        self._stopped = Wake()  # `stop` ends the C capture's long wait on a quiet link
        if self._native is not None:
            self._native.set_wake(self._wake.fd, defaults.HURRY_GAP_MS * 1000)
            self._native.set_idle(self._stopped.fd, _nap_us(buffer_bytes))
        self._error: SourceError | None = None  # see _drain
        self.packets_read = 0  # handed over in batches (see unread)
        self.leftovers_read = 0  # of which read after the handle failed (see _leftovers)
        self._loopback = _is_loopback(self.name)
        self._leftover_wait_s = leftover_wait_s if leftover_wait_s is not None else (
            defaults.LEFTOVER_POLL_TIMEOUTS * poll_timeout_ms / 1000 + defaults.LEFTOVER_EXTRA_S)
        self._if_drops = 0  # the last interface drop count read while the interface existed
        # Packets that reached the socket while libpcap set it up went to its plain receive
        # queue, which libpcap never reads: counted by the kernel, never delivered (see unread).
        self._counted_at_open = self._taken_in() or 0

    def stop(self) -> None:
        self._stop.set()
        self._stopped.hurry()

    def hurry(self) -> None:
        """Someone waits for the packets this source holds: end the batch being gathered now
        (or, when none is, the next one as soon as it has packets), not when `COALESCE_MS`
        runs out (wake.py). Any thread; a no-op once the source is closed."""
        self._wake.hurry()

    def close(self) -> None:
        """Release libpcap's handle (its kernel buffer) once this source has failed for good."""
        if self._native is not None:
            self._native.close()
        else:
            try:
                self._handle.close()
            except pcapy.PcapError:  # already closed
                pass
        self._wake.close()
        self._stopped.close()

    def stats(self) -> tuple[int, int, int]:
        """(received, dropped by the kernel, dropped by the interface) as libpcap reports them.

        libpcap reads the interface's drops from /proc/net/dev and adds the change since its
        last reading; once the interface is gone it reads 0 there and its count turns into
        garbage (an unsigned wrap), so then the last count read while it existed stands."""
        handle = self._native if self._native is not None else self._handle
        received, dropped, if_dropped = handle.stats()
        if Path(f"/sys/class/net/{self.name}").exists():
            self._if_drops = if_dropped
        return received, dropped, self._if_drops

    def unread(self) -> int | None:
        """Packets the kernel put in libpcap's buffer that were never handed over in a batch
        (received minus kernel drops minus read: libpcap's counters are kept by the kernel for
        the socket, so they survive the interface), counted from when the handle was opened (a
        packet that reached the ring while it opened hides one lost packet at most). None where
        the counters cannot tell: a loopback interface counts every packet twice (libpcap skips
        the outgoing copy), and a closed handle has none."""
        if self._loopback:
            return None
        taken_in = self._taken_in()
        if taken_in is None:
            return None
        unread = (taken_in - self._counted_at_open - self.packets_read) % _U32
        return unread if unread < _U32 // 2 else 0  # "below zero": nothing unread

    def _taken_in(self) -> int | None:
        """What the kernel put in libpcap's buffer so far (received minus dropped), or None."""
        try:
            received, dropped, _ = self.stats()
        except (pcapy.PcapError, ValueError, LiveReadError):
            return None
        return (received - dropped) % _U32

    def batches(self) -> Iterator[Batch]:
        """Batches as packets arrive. A batch is what the kernel holds when woken, plus what
        arrives within `defaults.COALESCE_MS` more until it holds `batch_packets` (without the
        C capture: plus, when that is only a trickle, what arrives within COALESCE_MS once):
        every batch costs the capture thread and each target a fixed amount of Python and
        wake-ups, so batches of a few hundred packets would waste more CPU than the packets
        do. A trigger that waits for the packets being gathered ends the wait (`hurry`)."""
        full = False
        while not self._stop.is_set() and self._error is None:
            if self._native is not None:  # the same turn, in one C call (see _gather)
                chunks, full = self._gather(wait=not full)
                packets = self._count(chunks)
            else:
                if not full:
                    select.select([self._fd], [], [], self._poll_timeout_s)
                chunks = self._drain(self.batch_packets)
                packets = self._count(chunks)
                if 0 < packets < self.batch_packets // 4 and not self._stop.is_set() \
                        and self._error is None:
                    self._coalesce_wait()
                    self._drain(self.batch_packets - packets, chunks)
                    packets = self._count(chunks)
                full = packets >= self.batch_packets  # more may be waiting: read on at once
            if packets:
                yield self._handed_over(chunks)
        if self._error is not None:
            # raised after the packets read before it and what libpcap still holds, also when
            # it came with a stop (still said)
            yield from self._leftovers()
            raise self._error

    def _coalesce_wait(self) -> None:
        """The pcapy-ng path's wait for more of a trickle: `COALESCE_MS`, or until a waiting
        trigger hurries it (`hurry`)."""
        select.select([self._wake.fd], [], [], defaults.COALESCE_MS / 1000)
        self._wake.clear()

    def _leftovers(self) -> Iterator[Batch]:
        """What libpcap still holds once the handle failed. libpcap reports the failure as soon
        as the socket has it, but the packets of the last poll timeout before it are still in
        the TPACKET_V3 block the kernel was filling, which reaches libpcap only when the block's
        timer (the poll timeout) retires it: closing at once lost them (65 packets sent 30 ms
        before `ip link del`, issue 17). So the handle is read on until its counters say
        nothing is left, for at most two timer runs; `unread()` is what even that missed."""
        deadline = time.monotonic() + self._leftover_wait_s
        while time.monotonic() < deadline and self.unread() != 0:
            select.select([self._fd], [], [], max(0.0, deadline - time.monotonic()))
            chunks = self._drain(self.batch_packets)
            if chunks:
                batch = self._handed_over(chunks)
                self.leftovers_read += len(batch)
                yield batch
            else:  # the failed socket may report readable with nothing to read: no busy loop
                time.sleep(defaults.COALESCE_MS / 1000)

    def _handed_over(self, chunks: list[tuple[bytes, bytes]]) -> Batch:
        batch = self._batch(chunks)
        self.packets_read += len(batch)
        return batch

    def _drain(self, limit: int, chunks: list[tuple[bytes, bytes]] | None = None
               ) -> list[tuple[bytes, bytes]]:
        """(packet bytes, meta) chunks from libpcap, added to `chunks` (the batch gathered so
        far), until it has nothing ready or `limit` more packets are taken. An error is kept
        (the first one) for `batches` to raise after the packets taken are delivered and what
        libpcap still holds is read: packets taken from libpcap exist nowhere else."""
        chunks = [] if chunks is None else chunks
        if self._native is not None:
            return self._drain_native(limit, chunks)
        while limit > 0:
            try:
                data, meta = self._handle.next_batch(limit)
            except pcapy.PcapError as exc:
                if self._error is None:
                    self._error = SourceError(f"interface {self.name}: {exc}")
                    self._error.__cause__ = exc
                break
            if not meta:
                break
            chunks.append((data, meta))
            limit -= len(meta) // 16
        return chunks

    def _gather(self, wait: bool) -> tuple[list, bool]:
        """`batches`' turn through the C capture: the wait for packets, the reads and the
        coalescing wait all happen in one call that holds no GIL (`NativeLiveHandle.gather`),
        so a batch costs the capture thread one call, not a select, a sleep and several reads.
        (pieces as `_drain_native` makes them, whether it stopped full: read on at once)."""
        records, columns, error, full = self._native.gather(
            self.batch_packets, self._read_bytes(self.batch_packets),
            defaults.LIVE_BATCH_HEADROOM_BYTES, self._idle_wait_ms if wait else -1,
            defaults.COALESCE_MS * 1000, self.batch_packets)
        if error is not None and self._error is None:
            self._error = SourceError(f"interface {self.name}: {error}")
        return ([(records, columns)] if columns.shape[1] else []), full

    def _drain_native(self, limit: int, pieces: list) -> list:
        """`_drain` through the C capture: pieces of (records, columns), read until libpcap
        has nothing ready or `limit` more packets are taken (a read also ends when its buffer
        is full: the packet that did not fit comes first in the next)."""
        while limit > 0:
            headroom = 0 if pieces else defaults.LIVE_BATCH_HEADROOM_BYTES
            records, columns, error = self._native.read(limit, self._read_bytes(limit),
                                                        headroom)
            count = columns.shape[1]
            if count:
                pieces.append((records, columns))
                limit -= count
            if error is not None:
                if self._error is None:
                    self._error = SourceError(f"interface {self.name}: {error}")
                break
            if not count:
                break
        return pieces

    @staticmethod
    def _read_bytes(limit: int) -> int:
        """A read's buffer: room for `limit` packets of about a full Ethernet frame, bounded
        (the unused rest is given back at once: NativeLiveHandle.read)."""
        return min(limit * defaults.LIVE_READ_BYTES_PER_PACKET, defaults.LIVE_READ_MAX_BYTES)

    def _count(self, chunks: list) -> int:
        """Packets in what `_drain` gathered."""
        if self._native is not None:
            return sum(columns.shape[1] for _, columns in chunks)
        return sum(len(meta) for _, meta in chunks) // 16

    def _batch(self, chunks: list) -> Batch:
        """One Batch from libpcap's chunks: the packets of every chunk go into the records
        straight from the chunk's buffer (no join of the chunks first)."""
        if self._native is not None:
            return self._native_batch(chunks)
        builder = native_records()
        if builder is not None:
            try:
                records, offsets, ts_ns, caplen = builder.from_chunks(chunks)
            except ValueError as exc:
                raise SourceError(f"interface {self.name}: {exc}") from exc
            return Batch(records, offsets, ts_ns, caplen, caplen.copy(), self.linktype,
                         self.snaplen)
        metas = [np.frombuffer(meta, dtype=np.uint32).reshape(-1, 4) for _, meta in chunks]
        fields = np.concatenate(metas).astype(np.int64)
        ts_ns = fields[:, 0] * 1_000_000_000 + fields[:, 1] * 1000
        caplen = fields[:, 3]
        packets = np.concatenate([iov.slices(data, meta[:, 2], meta[:, 3])
                                  for (data, _), meta in zip(chunks, metas, strict=True)])
        records, offsets = records_from_slices(ts_ns, caplen, caplen, packets)
        if records is None:  # no memfd: join the chunks, point the offsets into the join
            bases = np.cumsum([0] + [len(data) for data, _ in chunks[:-1]])
            data_offsets = fields[:, 2] + np.repeat(bases, [len(m) for m in metas])
            records, offsets = build_records(ts_ns, caplen, caplen,
                                             b"".join(data for data, _ in chunks), data_offsets)
        return Batch(records, offsets, ts_ns, caplen, caplen.copy(), self.linktype,
                     self.snaplen)

    def _native_batch(self, pieces: list) -> Batch:
        """The C capture's pieces as one Batch: a single piece as it is, several (a trickle
        gathered over the coalescing wait) joined (without a copy where they lie side by side
        in the arena, as reads that follow each other do), offsets moved to the join."""
        if len(pieces) == 1:
            records, columns = pieces[0]
        else:
            records = self._native.arena.joined_or_copied([r for r, _ in pieces])
            bases = np.cumsum([0] + [len(r) for r, _ in pieces[:-1]])
            columns = np.concatenate([c for _, c in pieces], axis=1)
            columns[0] += np.repeat(bases, [c.shape[1] for _, c in pieces])
        return Batch(records, columns[0], columns[1], columns[2], columns[3], self.linktype,
                     self.snaplen)


def _nap_us(buffer_bytes: int) -> int:
    """How long a busy link's gathering batch naps between reads (defaults.GATHER_NAP_MS):
    never longer than a NAP_LINK_BYTES_PER_S link takes to fill half the kernel buffer."""
    fill_half_us = buffer_bytes // 2 * 1_000_000 // defaults.NAP_LINK_BYTES_PER_S
    return min(defaults.GATHER_NAP_MS * 1000, fill_half_us)
