"""`pushcap run` as a real process on `lo`, with its status endpoint on a free port."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

from waiting import wait_until


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def target_lua(out: Path, port: int, path_name: str, extra: str = "",
               split: str = "--split-time 60e9") -> str:
    return f"""
return {{ Target = {{
  {{ Desc = "seq", Mode = "File", Path = "{out}/{path_name}", Split = "{split}",
     FileName = "--filename-epoch-nsec", FilterBPF = "udp and dst port {port}" }},
  {extra}
}} }}
"""


class Daemon:
    def __init__(self, tmp: Path, lua_text: str, toml_extra: str = "",
                 extra_args: tuple[str, ...] = (), interface: str = "lo",
                 ring_extra: str = "", poll_timeout_ms: int = 50) -> None:
        """`interface`: what it captures; `ring_extra`: more `[ring]` lines (`max_seconds =
        2\n`); `toml_extra`: whole sections after `[status]`."""
        self.tmp = tmp
        self.status_port = free_port()
        self.lua = tmp / "push.lua"
        self.lua.write_text(lua_text)
        self.toml = tmp / "daemon.toml"
        self.toml.write_text(f'[[interface]]\nname = "{interface}"\n[ring]\n'
                             f'poll_timeout_ms = {poll_timeout_ms}\n{ring_extra}'
                             f'[status]\nport = {self.status_port}\n{toml_extra}')
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pushcap.cli", "run", "--lua", str(self.lua), "--config",
             str(self.toml), *extra_args], cwd=tmp, stderr=subprocess.PIPE, text=True)
        self.log: list[str] = []
        self.started = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.started.wait(20), "".join(self.log)

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.log.append(line)
            if "event=started" in line:
                self.started.set()

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pushcap.cli", *args, "--config",
                               str(self.toml)], cwd=self.tmp, capture_output=True, text=True,
                              timeout=60)

    def status(self) -> dict:
        """The daemon's status snapshot, straight from its endpoint (cheaper to poll than a
        `pushcap status` process)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.status_port}/status",
                                    timeout=10) as answer:
            return json.loads(answer.read())

    def packets(self, desc: str) -> int:
        """How many packets target `desc` has taken so far (0 while it is not listed)."""
        return sum(t.get("packets", 0) for t in self.status()["targets"] if t["desc"] == desc)

    def wait_packets(self, desc: str, count: int, what: str, timeout_s: float = 20) -> None:
        wait_until(lambda: self.packets(desc) >= count, timeout_s,
                   f"{count} packets at target {desc}: {what}")

    def wait_log(self, needle: str, timeout_s: float = 20) -> None:
        wait_until(lambda: needle in self.text(), timeout_s, f"{needle!r} in the daemon's log")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=40)

    def text(self) -> str:
        return "".join(self.log)


