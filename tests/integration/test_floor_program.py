"""The floor program of bench L2 (tools/floor/pcap_floor.c) counts exactly the packets sent, and
the design models (tools/floor/design_models.c) write exactly the frames sent.

L2 divides each tool's CPU by what it captured and compares it with the floor's; a floor that
missed or double-counted packets would make every ratio wrong. A veth pair between two network
namespaces the test creates, IPv6 off on both ends (no neighbour discovery), carries raw
Ethernet frames of an experimental EtherType that the receiving kernel drops without answering,
so the frames sent are all the link carries.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import dpkt
import pytest
from daemon_log import wait_for_log

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NS_RX = f"pcfloorrx{os.getpid()}"
NS_TX = f"pcfloortx{os.getpid()}"
FRAMES = 5000

SENDER = """
import socket, sys
iface, count = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
for i in range(count):
    size = 60 + (i * 37) % 1400
    s.send(b"\\xff" * 6 + b"\\x02\\x00\\x00\\x00\\x00\\x01" + b"\\x88\\xb5" + bytes(size - 14))
"""


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def veth_pair():
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("gcc") is None:
        pytest.skip("needs root, iproute2 and gcc")
    ip("netns", "add", NS_RX)
    ip("netns", "add", NS_TX)
    try:
        ip("-n", NS_RX, "link", "add", "fl0", "type", "veth", "peer", "name", "fl1", "netns",
           NS_TX)
        for ns, dev in ((NS_RX, "fl0"), (NS_TX, "fl1")):
            subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw",
                            f"net.ipv6.conf.{dev}.disable_ipv6=1"], check=True,
                           capture_output=True)
            ip("-n", ns, "link", "set", dev, "up")
        yield
    finally:
        for ns in (NS_RX, NS_TX):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_the_floor_counts_every_frame_sent_and_no_other(tmp_path, veth_pair):
    floor = tmp_path / "pcap_floor"
    subprocess.run(["gcc", "-O2", "-o", str(floor), str(REPO / "tools/floor/pcap_floor.c"),
                    "-lpcap"], check=True, capture_output=True, timeout=120)
    with (tmp_path / "floor.out").open("w") as out:
        proc = subprocess.Popen(["ip", "netns", "exec", NS_RX, str(floor), "fl0"], stdout=out,
                                stderr=subprocess.PIPE, text=True)
    try:
        wait_for_log(proc, "listening on fl0")
        subprocess.run(["ip", "netns", "exec", NS_TX, sys.executable, "-c", SENDER, "fl1",
                        str(FRAMES)], check=True, capture_output=True, timeout=60)
        rx = subprocess.run(["ip", "-n", NS_RX, "-s", "-j", "link", "show", "fl0"],
                            check=True, capture_output=True, text=True).stdout
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    assert proc.returncode == 0, proc.stderr.read()
    assert f'"packets":{FRAMES}' in rx.replace(" ", "")  # what the link really carried
    counted = dict(pair.split("=") for pair in (tmp_path / "floor.out").read_text().split())
    assert int(counted["packets"]) == FRAMES
    assert int(counted["bytes"]) == sum(60 + (i * 37) % 1400 for i in range(FRAMES))
    assert counted["ps_drop"] == "0"


def sent_frames() -> list[bytes]:
    """The frames SENDER sends, byte for byte."""
    return [b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + b"\x88\xb5"
            + bytes(60 + (i * 37) % 1400 - 14) for i in range(FRAMES)]


@pytest.mark.parametrize("design", ["copy", "zero"])
def test_a_design_model_writes_every_frame_sent_and_no_other(tmp_path, veth_pair, design):
    """L2's models stand for pushcap's data path only if they capture what it does: every
    frame, in order, byte for byte, in all.pcap, and none of them (no TCP) in tcp.pcap."""
    models = tmp_path / "design_models"
    subprocess.run(["gcc", "-O2", "-o", str(models), str(REPO / "tools/floor/design_models.c"),
                    "-lpcap", "-lpthread"], check=True, capture_output=True, timeout=120)
    with (tmp_path / "model.out").open("w") as out:
        proc = subprocess.Popen(["ip", "netns", "exec", NS_RX, str(models), design, "fl0"],
                                stdout=out, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        wait_for_log(proc, "listening on fl0")
        subprocess.run(["ip", "netns", "exec", NS_TX, sys.executable, "-c", SENDER, "fl1",
                        str(FRAMES)], check=True, capture_output=True, timeout=60)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    assert proc.returncode == 0, proc.stderr.read()
    counted = dict(pair.split("=") for pair in (tmp_path / "model.out").read_text().split()
                   if "=" in pair)
    assert counted["packets"] == str(FRAMES) and counted["drops"] == "0", counted
    for name, want in (("all", sent_frames()), ("tcp", [])):
        with (tmp_path / f"{name}.pcap").open("rb") as f:
            assert [bytes(frame) for _, frame in dpkt.pcap.Reader(f)] == want, name
