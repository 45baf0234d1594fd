"""FMADIO's fields with the real daemon on `lo`: notices logged once at start (and a reload
logs only new ones), a Desc with a space kept whole in logs, metrics and its log file, a Path
ending in `/` written as a folder, CPU pinning the target's lane, ScriptNew run at new files
without a shell."""

from __future__ import annotations

import signal
import time
import urllib.request

import pytest
from daemon_log import wait_for_log
from oracle import read_pcap
from test_live import free_udp_port, send_numbered, start_daemon, stop_daemon, udp_payload
from waiting import wait_until

pytestmark = pytest.mark.integration

DESC = "port80 zstd"


def config(out, port: int, script, timeout_ring: str) -> str:
    return f"""
local Config = {{ Target = {{}} }}
Config.FollowStart = true
Config.TimeoutRing = {timeout_ring}
table.insert(Config.Target, {{
    Desc = "{DESC}", Mode = "File", Path = "{out}/", Split = "--split-time 1e9",
    FileName = "--filename-epoch-nsec", FilterBPF = "udp and dst port {port}", CPU = 0,
    StreamCat = "--ring-timeout-exit ", ScriptNew = "{script} 10 'two words'" }})
return Config
"""


def notices(log: str) -> list[str]:
    return [line.split("event=config_notice ", 1)[1] for line in log.splitlines()
            if "event=config_notice" in line]


def test_fmadio_fields_with_the_daemon(tmp_path):
    listener = free_udp_port()
    port = listener.getsockname()[1]
    out, logs, marker = tmp_path / "out", tmp_path / "logs", tmp_path / "marker"
    script = tmp_path / "on-new-file"
    script.write_text(f'#!/bin/sh\necho "$# $1 $2" >> {marker}\n')
    script.chmod(0o755)
    proc = start_daemon(tmp_path, config(out, port, script, "30e9"),
                        ring_extra=f'[general]\nlogdir = "{logs}"\n')
    try:
        said = notices(proc.startup_log)
        assert len(said) == 3 and len(set(said)) == 3, proc.startup_log  # FollowStart,
        assert any("TimeoutRing" in n for n in said)                      # TimeoutRing,
        assert any("StreamCat" in n for n in said)                        # StreamCat
        sent = send_numbered(port, 200, b"fmadio")
        wait_until(lambda: marker.exists(), 20, "ScriptNew ran")
        with urllib.request.urlopen(  # noqa: S310 - loopback
                f"http://127.0.0.1:{proc.status_port}/metrics", timeout=10) as answer:
            metrics = answer.read().decode()
        assert f'pushcap_target_packets_total{{interface="lo",mode="File",target="{DESC}"}}' \
            in metrics
        proc.send_signal(signal.SIGHUP)  # the same file: nothing new to say
        reloaded = wait_for_log(proc, "event=reload_applied")
        assert notices(reloaded) == []
        (tmp_path / "push.lua").write_text(config(out, port, script, "31e9"))
        proc.send_signal(signal.SIGHUP)
        reloaded = wait_for_log(proc, "event=reload_applied")
        new = notices(reloaded)  # only the one the new file holds
        assert len(new) == 1 and "TimeoutRing 31000000000" in new[0], new
        time.sleep(1.2)  # the 1 s window of the last packets ends: the file is finished
    finally:
        err = stop_daemon(proc)
    log = proc.startup_log + err
    assert f'event=cpu_pinned target="{DESC}" interface=lo cpu=0' in log
    assert f'target="{DESC}"' in log and f"target={DESC} " not in log
    files = sorted(out.glob("*.pcap"))
    assert files and all(f.name[0].isdigit() for f in files), files  # <name>.pcap in the folder
    got = [udp_payload(p[3]) for f in files for p in read_pcap(f).packets]
    assert got == sent
    assert marker.read_text().splitlines()[0] == "2 10 two words"  # no shell: words as split
    own_log = (logs / "push_port80_zstd.log").read_text()
    assert f'target="{DESC}"' in own_log
