"""The C capture (csrc/livecap.c) writes every packet sent, whole and in order, into records.

A veth pair (IPv6 off, so only the test's frames cross it; MTU 65000, so frames up to 64 KiB do)
carries numbered raw Ethernet frames of sizes from 60 bytes to 64,000. The handle is read with a
buffer far smaller than what is waiting, so most reads end with a packet that does not fit
(the spill), which must come first in the next read: no packet lost, none twice, none cut.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

import numbered_frames
import pytest
from numbered_frames import frame
from waiting import wait_until

from pushcap.capture.native_live import native_live

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                       reason="needs root and iproute2 to make a veth pair"),
]

FRAMES = 400
READ_BYTES = 70_000  # room for one 64,000-byte frame and little else


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def veth():
    if native_live() is None:
        pytest.skip("the C library is not built (PUSHCAP_NO_NATIVE or no compiler)")
    tag = os.getpid() % 100000
    capture, peer = f"pcnl{tag}", f"pcnp{tag}"
    ip("link", "add", capture, "type", "veth", "peer", "name", peer)
    try:
        for name in (capture, peer):
            subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{name}.disable_ipv6=1"],
                           check=True, capture_output=True, timeout=30)
            ip("link", "set", name, "mtu", "65000", "up")
        yield capture, peer
    finally:
        subprocess.run(["ip", "link", "del", capture], capture_output=True, timeout=30)


def opened_with_frames_sent(veth):
    """A C capture handle on the veth's capture end, after FRAMES numbered frames were sent
    from its peer: (handle, the frames sent)."""
    capture, peer = veth
    handle, code, why = native_live().open(capture, 262144, True, 50, 8 << 20)
    assert handle is not None, (code, why)
    sent = [frame(i) for i in range(FRAMES)]
    send(peer, sent)
    return handle, sent


def test_every_frame_whole_and_in_order_through_small_reads(veth):
    handle, sent = opened_with_frames_sent(veth)
    got: list[bytes] = []
    reads_that_filled = 0

    def read_some() -> bool:
        nonlocal reads_that_filled
        select.select([handle.fd], [], [], 0.1)
        records, columns, error = handle.read(64, READ_BYTES)
        assert error is None
        got.extend(check_records(records, columns))
        if len(records) + 16 + 64000 > READ_BYTES and len(columns[2]):
            reads_that_filled += 1
        return len(got) >= FRAMES

    try:
        wait_until(read_some, 20, f"{FRAMES} frames read back", poll_s=0)
    finally:
        handle.close()
    assert got == sent
    assert reads_that_filled > 10  # the spill path was taken, not only whole reads


def test_an_interface_that_does_not_exist_is_a_clear_error():
    if native_live() is None:
        pytest.skip("the C library is not built")
    handle, code, why = native_live().open("pcnone0", 262144, True, 50, 1 << 20)
    assert handle is None and code < 0 and why


def check_records(records, columns) -> list[bytes]:
    """The packets of one read or batch, after checking each record against its columns."""
    offsets, ts_ns, caplen, wirelen = columns
    assert len(records) == sum(16 + int(c) for c in caplen)  # exactly what it holds
    packets = []
    for offset, ts, cap, wire in zip(offsets, ts_ns, caplen, wirelen, strict=True):
        sec, frac, cap_h, wire_h = struct.unpack_from("<IIII", records, offset)
        assert (sec * 10**9 + frac, cap_h, wire_h) == (ts, cap, wire) and cap == wire
        packets.append(bytes(records[offset + 16:offset + 16 + cap]))
    return packets


def send(peer: str, frames: list[bytes]) -> None:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((peer, 0))
        for data in frames:
            s.send(data)


def test_gathered_batches_hold_every_frame_whole_and_in_order(veth):
    """`gather` (one C call a batch): a buffer far smaller than what waits ends most batches
    full (the spill goes first into the next), and no frame is lost, doubled or cut; each
    batch's columns lie in the arena right after its records."""
    handle, sent = opened_with_frames_sent(veth)
    got: list[bytes] = []
    full_batches = 0

    def gather_some() -> bool:
        nonlocal full_batches
        records, columns, error, full = handle.gather(64, READ_BYTES, 0, 100, 20_000, 64)
        assert error is None
        assert columns.dtype == "int64" and columns.base is records.base  # both in the arena
        got.extend(check_records(records, columns))
        full_batches += full
        return len(got) >= FRAMES

    try:
        wait_until(gather_some, 20, f"{FRAMES} frames gathered", poll_s=0)
    finally:
        handle.close()
    assert got == sent
    assert full_batches > 10  # the spill path was taken


def test_a_batch_gathers_packets_that_arrive_after_its_first(veth):
    """Packets sent in two bursts, the second after the first was read, come in one batch while
    it has fewer than `enough` packets and its gathering time (2 s here) lasts."""
    capture, peer = veth
    handle, code, why = native_live().open(capture, 262144, True, 20, 8 << 20)
    assert handle is not None, (code, why)
    first = [frame(i) for i in range(0, 4)]  # small frames: sizes 60 to 1514
    second = [frame(i) for i in range(8, 12)]
    later = threading.Timer(0.2, send, (peer, second))
    try:
        send(peer, first)
        later.start()
        records, columns, error, full = handle.gather(1024, 1 << 20, 0, 5000, 2_000_000,
                                                      len(first) + len(second))
    finally:
        later.join()
        handle.close()
    assert error is None and not full
    assert check_records(records, columns) == first + second


def test_a_wake_ends_a_gathering_batch_at_once_and_not_sooner_than_the_gap(veth):
    """A reader waiting for the batch (wake.py) writes to the wake fd: the batch, which would
    gather for a minute, ends as soon as it holds packets, and the wake-up is taken. With a
    gap longer than the gathering time, a hurried batch still gathers its whole time: a reader
    that waits again and again cannot make batches shorter than the gap."""
    capture, peer = veth
    handle, code, why = native_live().open(capture, 262144, True, 20, 8 << 20)
    assert handle is not None, (code, why)
    wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    first = [frame(i) for i in range(0, 4)]
    second = [frame(i) for i in range(8, 12)]
    try:
        handle.set_wake(wake, 0)
        send(peer, first)
        os.eventfd_write(wake, 1)  # written before the batch began: it hurries that batch
        started = time.monotonic()
        records, columns, error, full = handle.gather(1024, 1 << 20, 0, 5000, 60_000_000, 1000)
        took_s = time.monotonic() - started
        assert error is None and not full
        assert check_records(records, columns) == first
        assert took_s < 5, took_s  # not the 60 s of gathering
        with pytest.raises(BlockingIOError):
            os.eventfd_read(wake)  # taken by the batch it ended

        handle.set_wake(wake, 60_000_000)
        send(peer, second)
        os.eventfd_write(wake, 1)
        started = time.monotonic()
        records, columns, error, full = handle.gather(1024, 1 << 20, 0, 5000, 300_000, 1000)
        assert time.monotonic() - started >= 0.3  # gathered its whole 0.3 s
        assert error is None and check_records(records, columns) == second
    finally:
        handle.close()
        os.close(wake)


def voluntary_switches() -> int:
    """This thread's sleeps so far (each a wake-up when it ends)."""
    status = open("/proc/thread-self/status").read()  # noqa: SIM115 - read whole at once
    return int(status.split("voluntary_ctxt_switches:")[1].split()[0])


# long enough that the blocks outnumber the naps twice over even from a slow sender
GATHER_US, NAP_US = 900_000, 60_000
def test_a_busy_link_batch_naps_instead_of_waking_for_every_block(veth):
    """While a batch gathers on a busy link, it naps between reads (live_set_idle) instead of
    waking for each of libpcap's 256 KiB blocks, and still gets every frame, whole and in
    order. The same traffic gathered without the nap shows the wake-ups it saves."""
    capture, peer = veth
    handle, code, why = native_live().open(capture, 262144, True, 100, 64 << 20)
    assert handle is not None, (code, why)
    # another process sends: the test's thread must not wait for the GIL after each gather
    sender = subprocess.Popen([sys.executable, numbered_frames.__file__, peer],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    got: list[bytes] = []
    wakes: dict[int, list[int]] = {}
    try:
        for nap_us in (0, NAP_US, 0, NAP_US):  # each twice, in turn
            handle.set_idle(-1, nap_us)
            before = voluntary_switches()
            records, columns, error, full = handle.gather(50_000, 32 << 20, 32 << 20, 1000,
                                                          GATHER_US, 50_000)
            wakes.setdefault(nap_us, []).append(voluntary_switches() - before)
            assert error is None and not full
            got.extend(check_records(records, columns))
    finally:
        sent = int(sender.communicate("", timeout=30)[0])
    try:
        wait_until(lambda: got.extend(check_records(*handle.gather(50_000, 32 << 20, 32 << 20,
                                                                   200, 0, 50_000)[:2]))
                   or len(got) >= sent, 20, "every frame sent", poll_s=0)
    finally:
        handle.close()
    assert got == [frame(8 * n + 5) for n in range(sent)]
    most = GATHER_US // NAP_US + 3  # a nap each, a wait or two for the next block
    assert min(wakes[0]) >= 2 * most, wakes  # precondition: blocks came much faster than naps
    assert max(wakes[NAP_US]) <= most, wakes


def test_stop_ends_the_wait_of_a_quiet_link_at_once(veth, monkeypatch):
    """A quiet link's capture waits long for packets (IDLE_WAIT_MS: no wake-up every poll
    timeout); `stop` still ends it at once, through the stop eventfd."""
    from pushcap import defaults
    from pushcap.capture.live import LiveSource

    monkeypatch.setattr(defaults, "IDLE_WAIT_MS", 120_000)
    capture, _ = veth
    source = LiveSource(capture, poll_timeout_ms=50)
    batches: list = []
    reader = threading.Thread(target=lambda: batches.extend(source.batches()), daemon=True)
    reader.start()
    try:
        wait_until(lambda: voluntary_switches_of(reader) > 0, 10, "the capture to wait")
        source.stop()
        reader.join(10)
        assert not reader.is_alive(), "stop did not end the wait"
    finally:
        source.close()
    assert batches == []


def voluntary_switches_of(thread: threading.Thread) -> int:
    status = open(f"/proc/self/task/{thread.native_id}/status").read()  # noqa: SIM115
    return int(status.split("voluntary_ctxt_switches:")[1].split()[0])
