"""Two captured interfaces in a network namespace the test creates (veth pair + lo).

A target without `Interface` reads both and writes one series per interface
(`<Path>_<interface>_<name>.pcap`, a pcap file has one link type); a target with
`Interface = "<alias>"` reads only that one and keeps `<Path>_<name>.pcap`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from daemon_log import wait_for_log
from oracle import read_pcap
from waiting import wait_until

pytestmark = pytest.mark.integration

NS = f"pcaptest{os.getpid()}"
PEER = f"pcpeer{os.getpid()}"  # the far end of the veth pair, so traffic really crosses it

SENDER = """
import socket, sys, time
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(count):
    s.sendto(b"ns%05d" % i, (host, port))
    time.sleep(0.002)  # paced: a steady trickle, not a burst
"""

# The daemon's status endpoint lives inside the namespace: a fixed port is free in a fresh one.
STATUS_PORT = 8799
STATUS = f"""
import json, urllib.request
with urllib.request.urlopen("http://127.0.0.1:{STATUS_PORT}/status", timeout=10) as answer:
    status = json.loads(answer.read())
print(json.dumps({{t["desc"] + "@" + t["interface"]: t.get("packets", 0)
                  for t in status["targets"]}}))
"""


def packets_in(ns: str) -> dict[str, int]:
    """Packets per target@interface, from the status of the daemon running in `ns`."""
    answer = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", STATUS],
                            capture_output=True, text=True, timeout=30)
    return json.loads(answer.stdout) if answer.returncode == 0 else {}


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def netns():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to create a network namespace")
    ip("netns", "add", NS)
    ip("netns", "add", PEER)
    try:
        ip("-n", NS, "link", "set", "lo", "up")
        ip("-n", NS, "link", "add", "pc0", "type", "veth", "peer", "name", "pc1", "netns", PEER)
        ip("-n", NS, "addr", "add", "10.99.0.1/24", "dev", "pc0")
        ip("-n", PEER, "addr", "add", "10.99.0.2/24", "dev", "pc1")
        ip("-n", NS, "link", "set", "pc0", "up")
        ip("-n", PEER, "link", "set", "pc1", "up")
        yield NS
    finally:
        for ns in (NS, PEER):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_one_series_per_interface_and_alias_selection(tmp_path, netns):
    (tmp_path / "push.lua").write_text("""
return { Target = {
  { Desc = "both", Mode = "File", Path = "out/both", FilterBPF = "udp port 7777",
    FileName = "--filename-epoch-sec-startend" },
  { Desc = "wire", Mode = "File", Path = "out/wire", FilterBPF = "udp port 7777",
    Interface = "wire" },
} }
""")
    (tmp_path / "d.toml").write_text('[[interface]]\nname = "pc0"\nalias = ["wire"]\n'
                                     f'[[interface]]\nname = "lo"\n[status]\n'
                                     f'port = {STATUS_PORT}\n')
    daemon = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-m", "pushcap.cli", "run", "--lua",
         "push.lua", "--config", "d.toml"], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_log(daemon, "event=started")  # both interfaces are capturing by then
        for ns, host, count in ((PEER, "10.99.0.1", 30), (netns, "127.0.0.1", 20)):
            subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", SENDER, host,
                            "7777", str(count)], check=True, timeout=30)
        want = {"both@pc0": 30, "both@lo": 20, "wire@pc0": 30}
        wait_until(lambda: all(packets_in(netns).get(k, 0) >= n for k, n in want.items()), 30,
                   f"the targets to take {want}")
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=40)
    assert daemon.returncode == 0, err
    out = tmp_path / "out"

    def payloads(pattern: str) -> list[bytes]:
        files = sorted(out.glob(pattern))
        assert files, f"no {pattern} in {sorted(p.name for p in out.iterdir())}"
        return [p[3][42:] for f in files for p in read_pcap(Path(f)).packets]

    assert payloads("both_pc0_*.pcap") == [b"ns%05d" % i for i in range(30)]
    assert payloads("both_lo_*.pcap") == [b"ns%05d" % i for i in range(20)]
    assert payloads("wire_[0-9]*.pcap") == [b"ns%05d" % i for i in range(30)]
    assert not list(out.glob("wire_lo_*")) and not list(out.glob("wire_pc0_*"))
