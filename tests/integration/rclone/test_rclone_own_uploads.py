"""A target that would capture its own rclone uploads is named once at start (issue 17, item 7:
an unfiltered target on the interface carrying its uploads grew each file 6x, and nothing
warned). The remote is a WebDAV server on loopback, so the uploads cross `lo`, the captured
interface."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

from conftest import DAV_PASSWORD
from daemon_log import wait_for_log

LINE = "event=captures_own_uploads"


def test_targets_that_capture_their_own_uploads_are_named_once_at_start(tmp_path,
                                                                        webdav_remote):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        status_port = s.getsockname()[1]
    port = webdav_remote.port
    (tmp_path / "push.lua").write_text(f"""
return {{ Target = {{
  {{ Desc = "up", Mode = "rclone", Path = "pcdav:up/all" }},
  {{ Desc = "all", Mode = "File", Path = "{tmp_path}/out/all" }},
  {{ Desc = "tcp", Mode = "File", Path = "{tmp_path}/out/tcp", FilterBPF = "tcp" }},
  {{ Desc = "dns", Mode = "File", Path = "{tmp_path}/out/dns", FilterBPF = "udp port 53" }},
  {{ Desc = "clean", Mode = "File", Path = "{tmp_path}/out/clean",
     FilterBPF = "tcp and not (host 127.0.0.1 and tcp port {port})" }},
}} }}""")
    (tmp_path / "d.toml").write_text(
        f'[[interface]]\nname = "lo"\n[status]\nport = {status_port}\n'
        f'[rclone]\nspool_dir = "{tmp_path / "spool"}"\n')
    proc = subprocess.Popen([sys.executable, "-m", "pushcap.cli", "run", "--lua", "push.lua",
                             "--config", "d.toml"], cwd=tmp_path, stderr=subprocess.PIPE,
                            text=True)
    try:
        text = wait_for_log(proc, f"{LINE} target=tcp ")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=60)
    text += rest
    assert proc.returncode == 0, text
    lines = [line for line in text.splitlines() if LINE in line]
    named = sorted(line.split(" target=")[1].split()[0] for line in lines)
    assert named == ["all", "tcp", "up"], text  # not "dns", nor "clean", which leaves them out
    for line in lines:
        assert f" interface=lo remote=127.0.0.1 port={port} " in line, line
        assert "uploads_of=up" in line, line
    assert DAV_PASSWORD not in text, text
