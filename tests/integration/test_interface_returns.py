"""An interface that goes away and comes back is captured again (a veth pair the test makes),
status says why it is not captured meanwhile, and no packet from before or after is lost."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from oracle import read_pcap
from waiting import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                       reason="needs root and iproute2 to make a veth pair"),
]

ETHERTYPE = 0x88B5  # IEEE "local experimental": nothing else on the link sends it


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def make_pair(capture: str, peer: str) -> None:
    ip("link", "add", capture, "type", "veth", "peer", "name", peer)
    ip("link", "set", capture, "up")
    ip("link", "set", peer, "up")


def send_frames(peer: str, tag: bytes, count: int) -> list[bytes]:
    """`count` numbered Ethernet frames out of `peer`; their payloads."""
    payloads = [tag + b"-%04d" % i + bytes(40) for i in range(count)]
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((peer, 0))
        for payload in payloads:
            s.send(b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + ETHERTYPE.to_bytes(2, "big")
                   + payload)
            time.sleep(0.001)  # paced: frames as a link carries them, not one burst
    return payloads


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LogReader:
    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(proc.stderr), daemon=True).start()

    def wait_for(self, needle: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(needle in line for line in list(self.lines)):
                return
            time.sleep(0.05)
        raise AssertionError(f"no {needle!r} in the log:\n" + "".join(self.lines))


def status(toml: Path, exit_code: int) -> dict:
    """`pushcap status --json`, whose exit code is the health: 0 all capture, 1 one does not."""
    out = subprocess.run([sys.executable, "-m", "pushcap.cli", "status", "--json", "--config",
                          str(toml)], capture_output=True, text=True, timeout=60)
    assert out.returncode == exit_code, out.stdout + out.stderr
    return json.loads(out.stdout)


def target_packets(port: int) -> int:
    """Packets the daemon's one target has taken, from its status endpoint."""
    url = f"http://127.0.0.1:{port}/status"
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - loopback
        return sum(t.get("packets", 0) for t in json.loads(answer.read())["targets"])


def test_an_interface_that_goes_away_and_comes_back_is_captured_again(tmp_path):
    tag = os.getpid() % 100000
    capture, peer = f"pcrt{tag}", f"pcrp{tag}"
    make_pair(capture, peer)
    out = tmp_path / "out"
    (tmp_path / "push.lua").write_text(
        f'return {{ Target = {{ {{ Desc = "all", Mode = "File", Path = "{out}/all", '
        f'Split = "--split-time 60e9", FilterBPF = "ether proto {ETHERTYPE}" }} }} }}\n')
    toml = tmp_path / "daemon.toml"
    status_port = free_port()
    toml.write_text(f'[[interface]]\nname = "{capture}"\n[ring]\npoll_timeout_ms = 50\n'
                    f"[status]\nport = {status_port}\n")
    proc = subprocess.Popen([sys.executable, "-m", "pushcap.cli", "run", "--lua",
                             str(tmp_path / "push.lua"), "--config", str(toml)],
                            cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    log = LogReader(proc)
    try:
        log.wait_for("event=started")
        before = send_frames(peer, b"before", 50)
        wait_until(lambda: target_packets(status_port) >= 50, 20, "the 50 frames sent before")
        ip("link", "del", capture)  # the peer goes with it
        log.wait_for(f"event=capture_error interface={capture}")
        answer = status(toml, 1)
        down = answer["interfaces"][capture]
        assert down["capturing"] == 0 and down["capture_error"], down
        assert [p for p in answer["problems"] if f"interface {capture} " in p], answer
        make_pair(capture, peer)
        log.wait_for(f"event=capture_reopened interface={capture}", timeout_s=40)
        after = send_frames(peer, b"after", 50)
        wait_until(lambda: target_packets(status_port) >= 100, 20, "the 50 frames sent after")
        answer = status(toml, 0)
        assert answer["problems"] == []
        up = answer["interfaces"][capture]
        assert up["capturing"] == 1 and up["reopens"] == 1 and "capture_error" not in up, up
        assert proc.poll() is None, "".join(log.lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=40)
        subprocess.run(["ip", "link", "del", capture], capture_output=True, timeout=30)
    got = [p[3][14:] for f in sorted(out.glob("all_*.pcap")) for p in read_pcap(f).packets]
    assert got == before + after, "".join(log.lines)
