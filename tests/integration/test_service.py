"""Running pushcap as a service: status, metrics, reload under traffic, syslog, SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from oracle import read_pcap
from service_harness import Daemon, target_lua
from waiting import wait_until

pytestmark = pytest.mark.integration


class Sender:
    """Sequence-numbered UDP datagrams at a steady pace until stopped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        while not self._stop.is_set():
            sock.sendto(b"seq%08d" % self.sent, ("127.0.0.1", self.port))
            self.sent += 1
            time.sleep(0.001)  # paced: steady traffic, not a burst the kernel may drop

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.sent


def current_file(daemon: Daemon) -> str | None:
    entry = next((t for t in daemon.status()["targets"] if t["desc"] == "seq"), {})
    return entry.get("current_file")


def sequence_numbers(files: list[Path]) -> list[int]:
    return [int(p[3][42:53][3:]) for f in files for p in read_pcap(f).packets]


def test_status_and_metrics_match_the_traffic(tmp_path, udp_port):
    out = tmp_path / "out"
    daemon = Daemon(tmp_path, target_lua(out, udp_port, "seq"))
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(200):
            sock.sendto(b"seq%08d" % i, ("127.0.0.1", udp_port))
        daemon.wait_packets("seq", 200, "all that was sent")
        proc = daemon.cli("status", "--json")
        assert proc.returncode == 0, proc.stderr
        status = json.loads(proc.stdout)
        seq = next(t for t in status["targets"] if t["desc"] == "seq")
        assert seq["packets"] == 200 and seq["mode"] == "File" and seq["current_file"]
        assert status["interfaces"]["lo"]["packets_captured"] >= 200
        table = daemon.cli("status").stdout
        assert "seq" in table and "lo" in table
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{daemon.status_port}/metrics") as r:
            metrics = r.read().decode()
        line = next(x for x in metrics.splitlines()
                    if x.startswith("pushcap_target_packets_total{") and 'target="seq"' in x)
        assert float(line.rsplit(" ", 1)[1]) == 200
        assert "pushcap_interface_kernel_drops_total" in metrics
    finally:
        assert daemon.stop() == 0


def test_reload_under_traffic_switches_at_the_file_boundary_exactly_once(tmp_path, udp_port):
    out = tmp_path / "out"
    split = "--split-time 2e9"
    daemon = Daemon(tmp_path, target_lua(out, udp_port, "before", split=split))
    sender = Sender(udp_port)
    try:
        daemon.wait_packets("seq", 100, "traffic in the first file")
        # A changed target (new Path): it finishes its current 2 s file, then switches.
        daemon.lua.write_text(target_lua(out, udp_port, "after", split=split))
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_log("switch=next_file")
        wait_until(lambda: "after" in (current_file(daemon) or ""), 20,
                   "the target to write an `after` file (the switch at the file boundary)")
        daemon.lua.write_text("return { Target = { { Desc = 'x', Mode = 'File', Path = 'y', "
                              "FilterBPF = 'tcpp' } } }")
        answer = daemon.cli("reload")
        assert answer.returncode == 1 and "tcpp" in answer.stdout
        # Traffic after the refused reload must still reach the switched target.
        daemon.wait_packets("seq", daemon.packets("seq") + 100, "after the refused reload")
        sent = sender.stop()
        daemon.wait_packets("seq", sent, "everything sent")
        status = json.loads(daemon.cli("status", "--json").stdout)
    finally:
        sent = sender.stop()
        assert daemon.stop() == 0
    # The changed target's counters go on across the switch (a reset looks like lost traffic)
    entries = [t for t in status["targets"] if t["desc"] == "seq"]
    assert len(entries) == 1 and entries[0]["packets"] == sent, entries
    before = sorted(out.glob("before_*.pcap"))
    after = sorted(out.glob("after_*.pcap"))
    assert before and after, daemon.text()
    got = sequence_numbers(before + after)
    assert got == list(range(sent)), f"{len(got)} of {sent} packets, in order, exactly once"
    text = daemon.text()
    assert "event=reload_applied" in text and "event=reload_refused" in text
    assert "switch=next_file" in text
    # The switch is a file boundary: the old series' last window ends where the new one starts.
    last_before = int(before[-1].stem.split("_")[1])
    first_after = int(after[0].stem.split("_")[1])
    assert first_after == last_before + 2 * 10**9, (before[-1].name, after[0].name)
    assert sequence_numbers(after)[-1] == sent - 1, "the refused reload stopped the old targets"


def test_sigterm_under_traffic_finalizes_everything(tmp_path, udp_port):
    out = tmp_path / "out"
    daemon = Daemon(tmp_path, target_lua(out, udp_port, "seq"))
    sender = Sender(udp_port)
    daemon.wait_packets("seq", 100, "traffic under way")
    code = daemon.stop()
    sent = sender.stop()
    assert code == 0
    assert not list(out.glob(".*.part"))
    got = sequence_numbers(sorted(out.glob("seq_*.pcap")))
    assert got == list(range(len(got))) and 0 < len(got) <= sent


def test_syslog_lines_carry_priority_and_tag(tmp_path, udp_port):
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(10)
    port = receiver.getsockname()[1]
    daemon = Daemon(tmp_path, target_lua(tmp_path / "out", udp_port, "seq"),
                    f"[syslog]\npriority = 85\ntag = \"pcaptest\"\n"
                    f"address = \"udp://127.0.0.1:{port}\"\n",
                    extra_args=("--log-dir", str(tmp_path / "logs")))
    try:
        lines = []
        while not any("event=started" in x for x in lines):
            lines.append(receiver.recv(4096).decode())
    finally:
        assert daemon.stop() == 0
    started = next(x for x in lines if "event=started" in x)
    assert started.startswith("<85>pcaptest[")  # authpriv (10) * 8 + notice (5)
    per_target = (tmp_path / "logs" / "push_seq.log").read_text()
    assert "target=seq" in per_target and "event=started" not in per_target


def test_flows_target_in_the_daemon_exports_records(tmp_path, udp_port):
    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.bind(("127.0.0.1", 0))
    collector.settimeout(10)
    cport = collector.getsockname()[1]
    extra = (f'{{ Desc = "flows", Mode = "flows", Path = "udp://127.0.0.1:{cport}", '
             f'Interval = 1, FilterBPF = "udp and dst port {udp_port}" }},')
    daemon = Daemon(tmp_path, target_lua(tmp_path / "out", udp_port, "seq", extra))
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(30):
            sock.sendto(b"x" * 100, ("127.0.0.1", udp_port))
        records = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sum(r["count"] for r in records) < 30:
            records += [json.loads(x) for x in collector.recv(65535).decode().splitlines()]
        status = json.loads(daemon.cli("status", "--json").stdout)
    finally:
        assert daemon.stop() == 0
    flow = [r for r in records if r["target_PORT"] == udp_port]
    assert sum(r["count"] for r in flow) == 30 and sum(r["length"] for r in flow) == 3000
    assert {r["type"] for r in flow} == {"UDP"} and flow[0]["target_IP"] == "127.0.0.1"
    entry = next(t for t in status["targets"] if t["desc"] == "flows")
    assert entry["mode"] == "flows" and entry["records_sent"] >= 1


def test_reload_inserting_a_target_leaves_the_others_untouched(tmp_path, udp_port):
    out = tmp_path / "out"
    daemon = Daemon(tmp_path, target_lua(out, udp_port, "seq"))
    sender = Sender(udp_port)
    try:
        daemon.wait_packets("seq", 100, "traffic under way")
        first = ('{ Desc = "new", Mode = "File", Path = "' + str(out) + '/new", '
                 f'FilterBPF = "udp and dst port {udp_port}" }}, ')
        daemon.lua.write_text(target_lua(out, udp_port, "seq").replace("Target = {", "Target = {"
                                                                   + first, 1))
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_log("event=reload_applied")
        daemon.wait_packets("new", 100, "the inserted target under traffic")
    finally:
        sent = sender.stop()
        # Both targets read the same ring on one push thread: once `seq` has taken the last
        # datagram, `new` has been handed it too.
        try:
            daemon.wait_packets("seq", sent, "everything sent")
        finally:
            assert daemon.stop() == 0
    text = daemon.text()
    assert "event=reload_applied" in text and "target=seq" not in "".join(
        line for line in daemon.log if "event=target_stop" in line), text
    assert "event=target_error" not in text and "Traceback" not in text, text
    assert sequence_numbers(sorted(out.glob("seq_*.pcap"))) == list(range(sent))
    new = sequence_numbers(sorted(out.glob("new_*.pcap")))
    assert new and new == list(range(new[0], sent))
