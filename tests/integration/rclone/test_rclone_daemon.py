"""The daemon end to end: live capture on `lo` -> rclone target -> served S3 remote."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from daemon_log import wait_for_log
from oracle import read_pcap
from waiting import wait_until

pytestmark = pytest.mark.integration


def test_live_traffic_reaches_the_remote_and_status_shows_uploads(tmp_path, s3_remote):
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    port = sink.getsockname()[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        status_port = s.getsockname()[1]
    (tmp_path / "push.lua").write_text(f"""
return {{ Target = {{ {{ Desc = "s3live", Mode = "rclone", Path = "pcs3:bucket/live/udp",
  Split = "--split-time 2e9", FileName = "--filename-epoch-nsec",
  FilterBPF = "udp and dst port {port}" }} }} }}""")
    (tmp_path / "d.toml").write_text(
        f'[[interface]]\nname = "lo"\n[status]\nport = {status_port}\n'
        f'[rclone]\nspool_dir = "{tmp_path / "spool"}"\n')
    proc = subprocess.Popen([sys.executable, "-m", "pushcap.cli", "run", "--lua", "push.lua",
                             "--config", "d.toml"], cwd=tmp_path, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_for_log(proc, "event=started")
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sent = [b"rc%06d" % i for i in range(200)]
        for payload in sent:
            sender.sendto(payload, ("127.0.0.1", port))
        wait_until(lambda: s3_remote.files("bucket/live"), 30, "a file at the remote")

        def uploaded() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{status_port}/status",
                                        timeout=10) as r:
                [entry] = json.loads(r.read())["targets"]
            return entry["uploads_ok"] >= 1 and entry["files_pending"] == 0

        wait_until(uploaded, 30, "the status to count the upload done, none pending")
        status = json.loads(subprocess.run(
            [sys.executable, "-m", "pushcap.cli", "status", "--json", "--config", "d.toml"],
            cwd=tmp_path, capture_output=True, text=True, timeout=30).stdout)
        table = subprocess.run(
            [sys.executable, "-m", "pushcap.cli", "status", "--config", "d.toml"],
            cwd=tmp_path, capture_output=True, text=True, timeout=30).stdout
        with urllib.request.urlopen(f"http://127.0.0.1:{status_port}/metrics", timeout=10) as r:
            metrics = r.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    arrived = s3_remote.files("bucket/live")
    assert arrived and all(name.startswith("udp_") and name.endswith(".pcap")
                           for name in arrived), arrived
    got = []
    for name in sorted(arrived):
        (tmp_path / name).write_bytes(arrived[name])
        got += [p[3][42:] for p in read_pcap(tmp_path / name).packets]
    assert got == sent
    entry = status["targets"][0]
    assert entry["uploads_ok"] >= 1 and entry["files_pending"] == 0
    row = next(cells for cells in map(str.split, table.splitlines()) if cells[:1] == ["s3live"])
    assert row[6] == "0"  # the "pending" column: files waiting for upload
    gauge = [line for line in metrics.splitlines()
             if line.startswith("pushcap_target_pending_files{") and 'target="s3live"' in line]
    assert len(gauge) == 1 and float(gauge[0].split()[-1]) == 0.0
    assert any(line.startswith("pushcap_target_spool_errors_total{") for line in
               metrics.splitlines())
    assert s3_remote.secret_key not in err


def test_check_probe_names_the_target_when_the_remote_is_down(tmp_path, s3_remote):
    (tmp_path / "push.lua").write_text('return { Target = { { Desc = "arch", Mode = "rclone", '
                                       'Path = "pcs3:bucket/probe/all" } } }')
    (tmp_path / "d.toml").write_text('[[interface]]\nname = "lo"\n'
                                     '[rclone]\nflags = ["--low-level-retries", "1"]\n')

    def check() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pushcap.cli", "check", "--probe", "--lua",
                               "push.lua", "--config", "d.toml"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)

    good = check()
    assert good.returncode == 0, good.stderr
    assert "pcs3:bucket/probe/all" in good.stdout and s3_remote.files("bucket") == {}
    s3_remote.stop()
    bad = check()
    assert bad.returncode == 1 and 'target 1 "arch": Path' in bad.stderr
    assert s3_remote.secret_key not in bad.stderr + bad.stdout


def test_check_probe_of_a_remote_that_never_answers_ends_within_its_budget(tmp_path):
    """A WebDAV server that accepts connections and never answers (a hung NAS, a firewall
    that lets SYNs through): rclone would wait its 60 s idle timeout, an upload an hour; the
    probe names the target within its 15 s for a command (defaults.PROBE_COMMAND_TIMEOUT_S)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever reads or answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        (tmp_path / "push.lua").write_text(
            'return { Target = { { Desc = "nas", Mode = "rclone", '
            f'Path = ":webdav,url=\'{url}\':captures/all" }} }} }}')
        (tmp_path / "d.toml").write_text('[[interface]]\nname = "lo"\n')
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "pushcap.cli", "check", "--probe", "--lua",
                               "push.lua", "--config", "d.toml"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        took = time.monotonic() - started
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'target 1 "nas": Path' in proc.stderr and "timed out after 15 s" in proc.stderr, \
        proc.stderr
    assert "Traceback" not in proc.stderr
    assert took < 40, f"the probe took {took:.0f} s"
