"""LiveSource's coalescing keeps every packet it took from libpcap, even when libpcap fails in
the middle of gathering a batch. A failing interface cannot be provoked on demand, so libpcap's
handle is replaced by one that delivers packets and then fails (the only stand-in here)."""

from __future__ import annotations

import struct
import threading

import pcapy
import pytest

from pushcap.capture import live as source_module
from pushcap.capture.live import LiveSource
from pushcap.capture.live_pcapy_reader import PcapyLiveReader
from pushcap.capture.source import SourceError
from pushcap.capture.wake import Wake


def stand_in(handle, monkeypatch) -> LiveSource:
    """A LiveSource reading from `handle` instead of an interface; nothing waits (select and
    the coalescing sleep return at once)."""
    source = LiveSource.__new__(LiveSource)
    source.name, source.batch_packets, source.snaplen, source.linktype = "fake0", 8192, 262144, 1
    source._stop, source._wake, source._stopped = threading.Event(), Wake(), Wake()
    # the pcapy-ng path (the C capture reads a real handle only)
    source._reader = PcapyLiveReader("fake0", handle, 0, 8192, 0, 1, 262144, source._stop,
                                     source._wake)
    source.packets_read = source.leftovers_read = 0
    source._leftover_wait_s = 0.0  # no reading on after an error
    monkeypatch.setattr(source_module.select, "select", lambda *args: ([], [], []))
    monkeypatch.setattr(source_module.time, "sleep", lambda _s: None)
    return source


class FailingHandle:
    """Three 10-byte packets, then the error libpcap raises when an interface goes away."""

    def __init__(self) -> None:
        self.calls = 0

    def next_batch(self, limit: int):
        self.calls += 1
        if self.calls == 1:
            meta = b"".join(struct.pack("=IIII", 100, i, i * 10, 10) for i in range(3))
            return bytes(range(30)), meta
        raise pcapy.PcapError("The interface went down")


def test_packets_taken_before_a_libpcap_error_are_delivered_first(monkeypatch):
    source = stand_in(FailingHandle(), monkeypatch)
    delivered = []
    with pytest.raises(SourceError, match="fake0: The interface went down"):
        for batch in source.batches():
            delivered.append(bytes(batch.records))
    assert len(delivered) == 1
    records = delivered[0]
    assert len(records) == 3 * (16 + 10)
    for i in range(3):  # each record: header (100 s, i µs, 10, 10) then packet i's bytes
        header = struct.unpack_from("<IIII", records, i * 26)
        assert header == (100, i * 1000, 10, 10)
        assert records[i * 26 + 16:i * 26 + 26] == bytes(range(i * 10, i * 10 + 10))


class ChunkedHandle:
    """What libpcap hands over when several blocks are ready: one chunk per call, packets at
    offsets with gaps (each chunk its own buffer), then nothing."""

    def __init__(self, chunks: list[list[bytes]]) -> None:
        self.chunks = chunks

    def next_batch(self, limit: int):
        if not self.chunks:
            return b"", b""
        packets = self.chunks.pop(0)
        data, meta = b"", b""
        for i, packet in enumerate(packets):
            data += b"\xee" * 3  # padding between packets
            meta += struct.pack("=IIII", 200, i, len(data), len(packet))
            data += packet
        return data, meta


def test_a_batch_coalesced_from_several_chunks_holds_every_packet_in_order(monkeypatch):
    chunks = [[bytes([c, i]) * (i + 1) for i in range(n)] for c, n in ((1, 3), (2, 1), (3, 4))]
    want = [packet for chunk in chunks for packet in chunk]
    source = stand_in(ChunkedHandle(chunks), monkeypatch)
    batch = next(source.batches())
    source.stop()
    assert len(batch) == len(want)
    got = [bytes(batch.records[o + 16:o + 16 + c]) for o, c in zip(batch.offsets, batch.caplen,
                                                                     strict=True)]
    assert got == want
    assert batch.caplen.tolist() == [len(p) for p in want]


class TrickleThenFailingHandle:
    """One packet, then nothing ready (the batch waits for more), then an error."""

    def __init__(self) -> None:
        self.calls = 0

    def next_batch(self, limit: int):
        self.calls += 1
        if self.calls == 1:
            return bytes(range(10)), struct.pack("=IIII", 300, 5, 0, 10)
        if self.calls == 2:
            return b"", b""
        raise pcapy.PcapError("The interface went down")


def test_packets_gathered_before_an_error_while_waiting_for_more_are_delivered(monkeypatch):
    source = stand_in(TrickleThenFailingHandle(), monkeypatch)
    delivered = []
    with pytest.raises(SourceError, match="went down"):
        for batch in source.batches():
            delivered.append(bytes(batch.records))
    assert delivered == [struct.pack("<IIII", 300, 5000, 10, 10) + bytes(range(10))]


def test_an_error_that_comes_as_the_capture_stops_is_still_raised(monkeypatch):
    """The batch before the error is delivered; if the daemon stops meanwhile, the error must
    still reach the engine (and the log), not vanish with the loop."""
    source = stand_in(FailingHandle(), monkeypatch)
    delivered = []
    with pytest.raises(SourceError, match="went down"):
        for batch in source.batches():
            delivered.append(len(batch))
            source.stop()
    assert delivered == [3]
