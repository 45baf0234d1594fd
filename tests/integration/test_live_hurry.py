"""A trigger that waits for packets hurries the capture's batch being gathered (issue 19).

The capture gathers a slow link's packets for up to COALESCE_MS (250 ms) before they reach the
ring. Here that is 60 s, so a batch that was not hurried can never reach the ring while a test
runs: numbered UDP datagrams sent on `lo` must be in the capture's result all the same, the
result coming once the window is settled (its end plus the read-on, ~0.4 s) or its packet cap
is met, not when the gathering would have ended.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
import time

import pytest
from waiting import wait_until

from pushcap.capture.capture_thread import CaptureStats, capture_until_stopped
from pushcap.capture.live import LiveSource
from pushcap.capture.native_live import native_live
from pushcap.capture.ring import Ring
from pushcap.config.model import InterfaceConfig
from pushcap.config.pcapdaemon import TriggerSettings
from pushcap.trigger.job import CaptureJob, ring_latency_s
from pushcap.trigger.message import parse_request

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="capture on lo needs root"),
]

POLL_MS = 20
GATHER_MS = 60_000  # far beyond any wait here: only a hurry gets a gathering batch out
UDP_HEADERS = 14 + 20 + 8
SETTINGS = TriggerSettings(node_name="n1", max_packets=1_000_000, max_bytes=100_000_000,
                           max_timeout_s=120, max_duration_s=600, default_timeout_s=30,
                           snap_length=512)


def start_capture(monkeypatch) -> tuple[Ring, LiveSource, threading.Event, threading.Thread]:
    """lo captured into a ring by a capture thread, batches gathered for GATHER_MS."""
    if native_live() is None:
        pytest.skip("the C library is not built: the pcapy-ng path gathers in Python")
    monkeypatch.setattr("pushcap.defaults.COALESCE_MS", GATHER_MS)
    source = LiveSource("lo", poll_timeout_ms=POLL_MS)
    ring = Ring("lo", source.linktype, source.snaplen, max_seconds=60, max_bytes=1 << 28)
    stop = threading.Event()
    thread = threading.Thread(target=capture_until_stopped,
                              args=("lo", source, ring, CaptureStats(), None, stop))
    thread.start()
    return ring, source, stop, thread


@pytest.fixture
def capture(monkeypatch):
    """`start_capture`'s ring and source, stopped (and hurried) at the end."""
    ring, source, stop, thread = start_capture(monkeypatch)
    try:
        yield ring, source
    finally:
        stop.set()
        source.stop()
        source.hurry()  # the batch it may be gathering ends now, not in GATHER_MS
        thread.join(10)
        source.close()
    assert not thread.is_alive()


@pytest.fixture
def sink():
    """A UDP port on 127.0.0.1 that never reads (no ICMP unreachable for what is sent to it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def send(port: int, tag: str, count: int) -> list[bytes]:
    payloads = [f"{tag}-{i:05d}-".encode() + b"x" * (i % 300) for i in range(count)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        for payload in payloads:
            out.sendto(payload, ("127.0.0.1", port))
    return payloads


def payloads(pcap: bytes) -> list[bytes]:
    found, at = [], 24
    while at < len(pcap):
        caplen = struct.unpack_from("<I", pcap, at + 8)[0]
        found.append(pcap[at + 16 + UDP_HEADERS:at + 16 + caplen])
        at += 16 + caplen
    return found


def ready(ring: Ring, source: LiveSource, port: int) -> None:
    """Until the capture is running: a probe sent to `port` reached the ring (read hurrying,
    as a trigger does, or it would sit GATHER_MS in a batch). Then no hurry is left over for
    the test's own batch."""
    cursor = ring.cursor()

    def probe_seen() -> bool:
        send(port, "probe", 1)
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            for batch in cursor.read(timeout_s=0.2, hurry=True):
                if b"probe-00000-" in bytes(batch.records):
                    return True
        return False

    wait_until(probe_seen, 20, "a probe datagram on lo to reach the ring")
    source._wake.clear()


def job(ring: Ring, port: int, **fields) -> CaptureJob:
    message = json.dumps({"node": "n1", "interface": "lo", "bpf": f"udp and dst port {port}",
                          **fields})
    request = parse_request(message, SETTINGS, (InterfaceConfig("lo"),), None, time.time_ns())
    return CaptureJob(request, "lo", None, ring, late_s=ring_latency_s(POLL_MS))


def test_a_window_just_ended_gets_its_packets_without_waiting_out_the_gathering(capture, sink):
    """Ended by its window (`duration`), with far more `packets` allowed than a batch holds:
    the job hurries only once the window's end has passed, and its packets, all of them and in
    order, still make it, though their batch would have gathered for a minute."""
    ring, source = capture
    ready(ring, source, sink)
    capture_job = job(ring, sink, duration=0.3, timeout=5, packets=1_000_000)
    sent = send(sink, "window", 50)
    started = time.monotonic()
    outcome = capture_job.run()
    took_s = time.monotonic() - started
    assert (outcome.reason, outcome.packets) == ("duration", 50)
    assert payloads(outcome.pcap) == sent
    assert took_s < 5, took_s  # settled at the end + the read-on, not after the gathering


def test_a_packet_cap_within_a_batch_is_met_as_soon_as_the_packets_are_read(capture, sink):
    """Ended by `packets` (T1's live requests): fewer packets to take than a batch holds, so
    every wait hurries, and the result comes long before the window (30 s) or the gathering
    (60 s) would end it."""
    ring, source = capture
    ready(ring, source, sink)
    capture_job = job(ring, sink, timeout=30, packets=40)
    sent = send(sink, "cap", 40)
    started = time.monotonic()
    outcome = capture_job.run()
    took_s = time.monotonic() - started
    assert (outcome.reason, outcome.packets) == ("packets", 40)
    assert payloads(outcome.pcap) == sent
    assert took_s < 5, took_s


def test_a_stop_ends_the_batch_being_gathered_and_keeps_its_packets(monkeypatch, sink):
    """A daemon's stop (or a reload that drops the interface) must not wait out a quiet link's
    gathering (GATHER_MS here, a minute), and the packets already gathered reach the ring."""
    ring, source, stop, thread = start_capture(monkeypatch)
    try:
        ready(ring, source, sink)
        cursor = ring.cursor()
        sent = send(sink, "stop", 30)
        # the batch holds them once libpcap's block timer (POLL_MS) has handed them over;
        # nothing can be seen of a batch being gathered, so this is given ten block timers
        time.sleep(10 * POLL_MS / 1000)
        started = time.monotonic()
        stop.set()
        source.stop()  # no hurry: the stop alone must end the gathering
        thread.join(10)
        took_s = time.monotonic() - started
    finally:
        stop.set()
        source.hurry()
        thread.join(10)
        source.close()
    assert not thread.is_alive() and took_s < 5, took_s
    got = [b for batch in cursor.read(timeout_s=0) for b in payloads_of(batch)]
    assert [p for p in got if p.startswith(b"stop-")] == sent


def payloads_of(batch) -> list[bytes]:
    """The UDP payloads of a ring batch's packets."""
    records = bytes(batch.records)
    return [records[int(o) + 16 + UDP_HEADERS:int(o) + 16 + int(c)]
            for o, c in zip(batch.offsets, batch.caplen, strict=True)]
