"""Live capture on `lo` with the real daemon: known traffic in, exactly that traffic in files."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from daemon_log import wait_for_log
from oracle import OracleError, capinfos_ok, read_pcap
from waiting import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def free_udp_port() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def udp_payload(packet_data: bytes) -> bytes:
    return packet_data[14 + 20 + 8:]  # Ethernet (lo is DLT_EN10MB) + IPv4 + UDP


def start_daemon(tmp_path: Path, lua_text: str, ring_seconds: int = 30,
                 ring_extra: str = "") -> subprocess.Popen:
    (tmp_path / "push.lua").write_text(lua_text)
    with socket.socket() as s:  # the status endpoint, which tests poll for progress
        s.bind(("127.0.0.1", 0))
        status_port = s.getsockname()[1]
    (tmp_path / "daemon.toml").write_text(
        '[[interface]]\nname = "lo"\nalias = ["local"]\n'
        f"[status]\nport = {status_port}\n"
        f"[ring]\nmax_seconds = {ring_seconds}\npoll_timeout_ms = 50\n{ring_extra}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pushcap.cli", "run", "--lua", str(tmp_path / "push.lua"),
         "--config", str(tmp_path / "daemon.toml")],
        cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    proc.startup_log = wait_for_log(proc, "event=started")
    proc.status_port = status_port
    return proc


def wait_packets(proc: subprocess.Popen, desc: str, count: int) -> None:
    """Until target `desc` of the daemon has taken `count` packets (its status says so)."""
    def taken() -> int:
        url = f"http://127.0.0.1:{proc.status_port}/status"
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - loopback
            targets = json.loads(answer.read())["targets"]
        return sum(t.get("packets", 0) for t in targets if t["desc"] == desc)

    wait_until(lambda: taken() >= count, 20, f"{count} packets at target {desc}")


def stop_daemon(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, err
    return err


def lua(out: Path, port: int, split: str = "--split-time 60e9") -> str:
    return f"""
local Config = {{ Target = {{}} }}
table.insert(Config.Target, {{ Desc = "udp-test", Mode = "File", Path = "{out}/udp",
    Split = "{split}", FileName = "--filename-epoch-sec-startend",
    FilterBPF = "udp and dst port {port}" }})
table.insert(Config.Target, {{ Desc = "local-all", Mode = "File", Path = "{out}/all",
    Interface = "local", Split = "--split-byte 1e6", FileName = "--filename-epoch-nsec" }})
return Config
"""


def send_numbered(port: int, count: int, tag: bytes) -> list[bytes]:
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payloads = [tag + b"-%06d-" % i + b"x" * (i % 700) for i in range(count)]
    for payload in payloads:
        sender.sendto(payload, ("127.0.0.1", port))
        time.sleep(0.0005)  # paced: steady traffic rather than one burst
    return payloads


def test_live_capture_holds_exactly_the_sent_traffic(tmp_path):
    listener = free_udp_port()
    port = listener.getsockname()[1]
    out = tmp_path / "out"
    proc = start_daemon(tmp_path, lua(out, port))
    try:
        sent = send_numbered(port, 500, b"live")
        wait_packets(proc, "udp-test", len(sent))
    finally:
        err = stop_daemon(proc)
    files = sorted(out.glob("udp_*.pcap"))
    assert files, err
    assert not list(out.glob(".*.part")), "SIGTERM left a temporary file"
    got = [udp_payload(p[3]) for f in files for p in read_pcap(f).packets]
    assert got == sent
    for f in files:
        capinfos_ok(f)
    everything = [p for f in sorted(out.glob("all_*.pcap")) for p in read_pcap(f).packets]
    assert len(everything) >= len(sent)
    assert all(p[1] == p[2] for p in everything), "live caplen must equal wire length"


def test_packets_up_to_the_loopback_mtu_are_captured_whole(tmp_path):
    """lo's MTU is 64 KiB: a batch mixes tiny and near-64 KiB packets, each copied whole into its
    record (caplen = wire length), in order."""
    listener = free_udp_port()
    port = listener.getsockname()[1]
    out = tmp_path / "out"
    proc = start_daemon(tmp_path, lua(out, port))
    sizes = [1, 1472, 9000, 30000, 65000, 0, 65507, 200] * 3  # 65507: IPv4's largest UDP payload
    sent = [bytes([i % 251]) * n + b"%03d" % i for i, n in enumerate(sizes)]
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for payload in sent:
            sender.sendto(payload[:65507], ("127.0.0.1", port))
            time.sleep(0.002)  # paced: the socket buffers never overflow
        wait_packets(proc, "udp-test", len(sent))
    finally:
        err = stop_daemon(proc)
    packets = [p for f in sorted(out.glob("udp_*.pcap")) for p in read_pcap(f).packets]
    assert [udp_payload(p[3]) for p in packets] == [payload[:65507] for payload in sent], err
    assert all(p[1] == p[2] == len(p[3]) for p in packets), "caplen, wire length and bytes agree"


def packet_socket_mappings(pid: int) -> list[int]:
    """Sizes of the packet-socket rings mapped into a process (libpcap maps its kernel buffer:
    the kernel's own account of how large the capture buffer is)."""
    sizes = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        if line.rstrip().endswith("]") and "socket:[" in line:
            start, end = line.split()[0].split("-")
            sizes.append(int(end, 16) - int(start, 16))
    return sizes


def test_the_configured_kernel_buffer_is_what_the_kernel_maps(tmp_path):
    listener = free_udp_port()
    proc = start_daemon(tmp_path, lua(tmp_path / "out", listener.getsockname()[1]),
                        ring_extra="kernel_buffer_bytes = 12582912\n")
    try:
        assert packet_socket_mappings(proc.pid) == [12 << 20]
        assert "event=capture_start interface=lo " in proc.startup_log
        assert " kernel_buffer_bytes=12582912" in proc.startup_log  # said at start, as applied
    finally:
        stop_daemon(proc)


def test_time_split_closes_quiet_window_without_more_packets(tmp_path):
    listener = free_udp_port()
    port = listener.getsockname()[1]
    out = tmp_path / "out"
    proc = start_daemon(tmp_path, lua(out, port, split="--split-time 2e9"))
    try:
        sent = send_numbered(port, 20, b"quiet")
        # The window (<= 2 s) ends while no packet comes: its file is published all the same.
        wait_until(lambda: list(out.glob("udp_*.pcap")), 20,
                   "the window's file to be closed while the link is quiet")
        assert proc.poll() is None
    finally:
        stop_daemon(proc)
    got = [udp_payload(p[3]) for f in sorted(out.glob("udp_*.pcap"))
           for p in read_pcap(f).packets]
    assert got == sent


def test_bad_interface_is_a_clear_error(tmp_path):
    (tmp_path / "push.lua").write_text(
        'return { Target = { { Desc = "x", Mode = "File", Path = "o/x", Interface = "wan" } } }')
    (tmp_path / "daemon.toml").write_text('[[interface]]\nname = "lo"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "pushcap.cli", "check", "--lua", "push.lua", "--config",
         "daemon.toml"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ})
    assert proc.returncode == 1
    # the field's line, as for every other field error (README: errors name file and line)
    assert 'push.lua:1: target 1 "x": Interface "wan" is not captured (pcapdaemon.toml has: ' \
        'lo)' in proc.stderr, proc.stderr


def test_sigkill_leftover_is_repaired_and_published_on_next_start(tmp_path):
    listener = free_udp_port()
    port = listener.getsockname()[1]
    out = tmp_path / "out"
    proc = start_daemon(tmp_path, lua(out, port))
    try:
        sent = send_numbered(port, 300, b"crash")

        def flushed() -> bool:  # the open file is flushed every poll
            try:
                return [udp_payload(p[3]) for part in out.glob(".udp.*.part")
                        for p in read_pcap(part).packets] == sent
            except OracleError:  # caught mid-write
                return False

        wait_until(flushed, 20, "every datagram in the open file on disk")
    finally:
        proc.kill()
        proc.wait(timeout=10)
    parts = list(out.glob(".udp.*.part"))
    assert len(parts) == 1 and not list(out.glob("udp_*.pcap"))
    with parts[0].open("ab") as f:  # a record cut in the middle, as a crash mid-write leaves
        f.write(b"\x01\x02\x03\x04\x05\x06\x07\x08\x40\x00\x00\x00\x40\x00\x00\x00abc")
    proc = start_daemon(tmp_path, lua(out, port))
    err = proc.startup_log + stop_daemon(proc)
    assert "event=repair_done" in err and "event=repair_cut" in err
    assert not list(out.glob(".udp.*.part"))
    files = sorted(out.glob("udp_*.pcap"))
    assert len(files) == 1
    start = int(parts[0].name.split(".")[2]) // 10**9
    assert files[0].name == f"udp_{start}-{start + 60}.pcap"
    assert [udp_payload(p[3]) for p in read_pcap(files[0]).packets] == sent
    capinfos_ok(files[0])
