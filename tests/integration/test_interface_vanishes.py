"""Packets that reached libpcap just before its interface went away are read, or counted: never
silently gone (issue 17, item 4).

libpcap (TPACKET_V3) hands a block of packets over only when the block's timer, the poll
timeout, retires it; when `ip link del` comes first, libpcap reports the interface gone while
the packets of the last poll timeout still wait in the kernel's block. A long poll timeout
(1 s) makes sure the frames sent just before the deletion are all in that block.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import threading

import pytest
from oracle import read_pcap
from service_harness import Daemon
from waiting import wait_until

from pushcap.capture.capture_thread import CaptureStats, capture_until_stopped
from pushcap.capture.live import LiveSource
from pushcap.capture.ring import Ring
from pushcap.capture.source import SourceError

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                       reason="needs root and iproute2 to make a veth pair"),
]

ETHERTYPE = 0x88B6  # IEEE "local experimental": nothing else on the link sends it
FRAMES = 65


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def veth():
    tag = os.getpid() % 100000
    capture, peer = f"pcvc{tag}", f"pcvp{tag}"
    ip("link", "add", capture, "type", "veth", "peer", "name", peer)
    for name in (capture, peer):  # no IPv6 neighbour discovery: only the test's frames
        subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{name}.disable_ipv6=1"], check=True,
                       capture_output=True, timeout=30)
    ip("link", "set", capture, "up")
    ip("link", "set", peer, "up")
    yield capture, peer
    subprocess.run(["ip", "link", "del", capture], capture_output=True, timeout=30)


def burst_then_delete(capture: str, peer: str) -> list[bytes]:
    """FRAMES numbered frames out of `peer` at once, then the pair deleted; their payloads."""
    payloads = [b"last-%04d" % i + bytes(40) for i in range(FRAMES)]
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((peer, 0))
        for payload in payloads:
            s.send(b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x02" + ETHERTYPE.to_bytes(2, "big")
                   + payload)
    ip("link", "del", capture)  # the peer goes with it
    return payloads


def test_packets_sent_just_before_the_interface_goes_away_are_written(tmp_path, veth):
    capture, peer = veth
    out = tmp_path / "out"
    lua = (f'return {{ Target = {{ {{ Desc = "last", Mode = "File", Path = "{out}/last", '
           f'FilterBPF = "ether proto {ETHERTYPE}" }} }} }}\n')
    daemon = Daemon(tmp_path, lua, interface=capture, poll_timeout_ms=1000)
    try:
        sent = burst_then_delete(capture, peer)
        daemon.wait_log(f"event=capture_error interface={capture}")
        daemon.wait_packets("last", FRAMES, "the frames sent just before the deletion", 10)
        figures = daemon.status()["interfaces"][capture]
        assert figures["lost_at_failure"] == 0 and figures["kernel_drops"] == 0, figures
    finally:
        assert daemon.stop() == 0, daemon.text()
    got = [p[3][14:] for f in sorted(out.glob("last_*.pcap")) for p in read_pcap(f).packets]
    assert got == sent, daemon.text()


def test_what_cannot_be_read_after_a_failure_is_counted_and_logged(veth, caplog):
    """Where the packets cannot be read any more (here: the handle is not read on at all), they
    are counted in `lost_at_failure` and logged, not silently gone."""
    capture, peer = veth
    source = LiveSource(capture, poll_timeout_ms=1000, leftover_wait_s=0.0)
    ring = Ring(capture, source.linktype, source.snaplen, max_seconds=60, max_bytes=1 << 24)
    stats = CaptureStats()
    stop = threading.Event()

    def reopen() -> LiveSource:
        raise SourceError(f"interface {capture}: no such device")

    thread = threading.Thread(target=capture_until_stopped,
                              args=(capture, source, ring, stats, reopen, stop), daemon=True)
    with caplog.at_level(logging.ERROR, logger="pushcap.engine"):
        thread.start()
        burst_then_delete(capture, peer)
        wait_until(lambda: stats.lost_at_failure, 10, "the unread packets to be counted")
        stop.set()
        thread.join(10)
    assert stats.lost_at_failure == FRAMES and ring.packets_total == 0
    assert f"event=capture_lost interface={capture} packets={FRAMES}" in caplog.text
