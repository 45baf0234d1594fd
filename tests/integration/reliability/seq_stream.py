"""The reliability suite's traffic: a veth pair whose far end lies in a network namespace the
test creates, a sender there emitting sequence-numbered UDP datagrams at a fixed rate, and the
daemon capturing the near end.

The datagrams go to an address on the far end's subnet whose MAC (a static neighbour entry) is
no one's: the near end receives them as "other host" frames, libpcap sees them, and the kernel
drops them without routing or answering them. IPv6 is off on both ends, so nothing else crosses
the link: the near end's rx counter is what the sender put on the wire.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
from oracle import OracleError, read_pcap
from service_harness import Daemon

HERE = Path(__file__).resolve().parent
SENDER = HERE / "seq_sender.py"
HEADER = struct.Struct("<QQ")  # the sender's times file: sent, done

SOAK = os.environ.get("PUSHCAP_SOAK") == "1"
RATE_PPS = 3000.0
PORT = 40017


def scaled(short: float, soak: float) -> float:
    """A scenario's length (seconds, packets, kills...): `soak` under PUSHCAP_SOAK=1."""
    return soak if SOAK else short


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=30)


class SeqLink:
    """A namespace `ns` holding the far end `peer` of a veth pair whose near end `capture`
    stays in the test's namespace. `delete()` and `create()` take the pair away and back."""

    def __init__(self, tag: str) -> None:
        self.ns = f"pcrel{tag}"
        self.capture = f"pcrc{tag}"
        self.peer = "pcrpeer"
        octet = int(tag) % 200 + 20
        self.peer_ip = f"10.213.{octet}.2"
        self.dst_ip = f"10.213.{octet}.1"  # the near end's side; no host has it
        self.rx_base = 0  # rx_packets of earlier incarnations of `capture`

    def setup(self) -> SeqLink:
        ip("netns", "add", self.ns)
        for key in ("all", "default"):
            subprocess.run(["ip", "netns", "exec", self.ns, "sysctl", "-q", "-w",
                            f"net.ipv6.conf.{key}.disable_ipv6=1"], check=True, timeout=30)
        self.create()
        return self

    def create(self) -> None:
        ip("link", "add", self.capture, "type", "veth", "peer", "name", self.peer, "netns",
           self.ns)
        Path(f"/proc/sys/net/ipv6/conf/{self.capture}/disable_ipv6").write_text("1")
        ip("-n", self.ns, "addr", "add", f"{self.peer_ip}/24", "dev", self.peer)
        ip("-n", self.ns, "neigh", "add", self.dst_ip, "lladdr", "02:00:5e:10:00:01", "dev",
           self.peer, "nud", "permanent")
        ip("-n", self.ns, "link", "set", self.peer, "up")
        ip("link", "set", self.capture, "up")

    def delete(self) -> None:
        """Take the pair away (the far end goes with it), keeping the near end's rx count."""
        self.rx_base = self.rx_packets()
        ip("link", "del", self.capture)

    def rx_packets(self) -> int:
        """Frames the near end received since the link was first made (over its incarnations)."""
        try:
            now = int(Path(f"/sys/class/net/{self.capture}/statistics/rx_packets").read_text())
        except OSError:
            now = 0
        return self.rx_base + now

    def teardown(self) -> None:
        ip("link", "del", self.capture, check=False)
        ip("netns", "del", self.ns, check=False)

    @property
    def bpf(self) -> str:
        return f"udp and dst port {PORT}"


class SeqSender:
    """The sender process in the link's namespace, and what it reports as sent."""

    def __init__(self, link: SeqLink, folder: Path, rate_pps: float = RATE_PPS,
                 max_packets: int = 2_000_000, size: int = 100) -> None:
        self.run_id = uuid.uuid4().bytes[:8]
        self.link = link
        self.rx_before = link.rx_packets()
        self.max_packets = max_packets
        self.times_path = folder / f"sent-{self.run_id.hex()}.bin"
        with self.times_path.open("wb") as f:
            f.truncate(HEADER.size + 8 * max_packets)  # sparse: pages appear as they are used
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", link.ns, sys.executable, str(SENDER), "--dst", link.dst_ip,
             "--port", str(PORT), "--rate", str(rate_pps), "--run-id", self.run_id.hex(),
             "--times", str(self.times_path), "--max", str(max_packets), "--size", str(size)],
            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def _header(self) -> tuple[int, int]:
        with self.times_path.open("rb") as f:
            return HEADER.unpack(f.read(HEADER.size))

    @property
    def sent(self) -> int:
        return self._header()[0]

    def stop(self) -> int:
        """End the run; the number of datagrams it sent."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=30)
        sent, done = self._header()
        assert done == 1 and self.proc.returncode == 0, f"the sender failed: {err}"
        return sent

    def on_wire(self) -> int:
        """Frames the capturing end received since this sender started: what it really put on
        the wire (nothing else crosses the link)."""
        return self.link.rx_packets() - self.rx_before

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def times(self) -> np.ndarray:
        """Wall-clock send time of every sequence number sent so far."""
        sent = self.sent
        with self.times_path.open("rb") as f:
            f.seek(HEADER.size)
            return np.frombuffer(f.read(8 * sent), dtype="<f8").copy()


class SeqDaemon(Daemon):
    """`pushcap run` capturing the link's near end (tests/integration/service_harness.py),
    with the wall-clock time each log line arrived at, and kill -9."""

    def __init__(self, tmp: Path, lua_text: str, interface: str, **kwargs) -> None:
        self.stamped: list[tuple[float, str]] = []
        super().__init__(tmp, lua_text, interface=interface, **kwargs)

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.stamped.append((time.time(), line))
            self.log.append(line)
            if "event=started" in line:
                self.started.set()

    def seen_at(self, needle: str, after: float = 0.0) -> float | None:
        """When the first line holding `needle` (read after `after`) arrived."""
        return next((t for t, line in list(self.stamped) if t >= after and needle in line), None)

    def kill9(self) -> float:
        """SIGKILL; the time it was sent."""
        at = time.time()
        self.proc.kill()
        self.proc.wait(timeout=20)
        return at

    def target(self, desc: str) -> dict:
        """The status entry of target `desc` (empty while it is not listed)."""
        return next((t for t in self.status()["targets"] if t["desc"] == desc), {})

    def ensure_stopped(self) -> None:
        """For cleanup after a failure: SIGTERM, then SIGKILL if it does not end."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=20)


def file_target(desc: str, path: Path | str, bpf: str, split: str = "--split-time 2e9",
                mode: str = "File", extra: str = "") -> str:
    """One Lua target table (a File target by default)."""
    return (f'{{ Desc = "{desc}", Mode = "{mode}", Path = "{path}", Split = "{split}", '
            f'FileName = "--filename-epoch-nsec", FilterBPF = "{bpf}"{extra} }}')


def lua_file(*tables: str) -> str:
    return "return { Target = {\n  " + ",\n  ".join(tables) + "\n} }\n"


def newest_seq(folder: Path, run_id: bytes) -> int:
    """The sequence number of the last datagram of run `run_id` in the most recently written
    pcap file of `folder` (open `.part` files included: they are flushed every poll); -1 when
    there is none. Reading it tells that a target has written what was sent up to there."""
    files = [p for p in folder.glob("*") if p.is_file() and (p.name.endswith(".pcap")
                                                              or p.name.endswith(".part"))]
    newest = -1
    for path in sorted(files, key=_mtime_ns, reverse=True)[:2]:
        try:
            packets = read_pcap(path).packets
        except (OSError, OracleError):  # renamed or half-written header: look again later
            continue
        for packet in reversed(packets):
            payload = packet[3][42:]
            if payload[:4] == b"PCSQ" and payload[4:12] == run_id:
                newest = max(newest, int.from_bytes(payload[12:20], "big"))
                break
    return newest


def _mtime_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:  # renamed meanwhile
        return 0
