"""Fixtures of the reliability suite: the sequence-numbered link, its sender, the daemon on it.

Every fixture stops what it started, also when the test failed half way (a daemon still running,
a sender, a mount).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from seq_stream import SeqDaemon, SeqLink, SeqSender

_TAGS = itertools.count()


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker
def pytest_collection_modifyitems(items):
    here = Path(__file__).resolve().parent
    for item in items:
        if Path(str(item.fspath)).resolve().parent == here:
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.reliability)  # `make soak` selects it (and PUSHCAP_SOAK)
            if os.geteuid() != 0 or shutil.which("ip") is None:
                item.add_marker(pytest.mark.skip(
                    reason="needs root and iproute2 (network namespace, veth pair, mounts)"))


@pytest.fixture
def seq_link():
    tag = f"{os.getpid() % 10000}{next(_TAGS)}"
    link = SeqLink(tag)
    try:
        yield link.setup()
    finally:
        link.teardown()


@pytest.fixture
def start_sender(seq_link, tmp_path):
    started: list[SeqSender] = []

    def start(**kwargs) -> SeqSender:
        sender = SeqSender(seq_link, tmp_path, **kwargs)
        started.append(sender)
        return sender

    yield start
    for sender in started:
        sender.kill()


@pytest.fixture
def start_daemon(seq_link, tmp_path):
    """`start_daemon(lua_text, **Daemon kwargs)`: a daemon on the link's near end; a second
    call (a restart) uses the same folder, so it finds what the first one left."""
    started: list[SeqDaemon] = []

    def start(lua_text: str, **kwargs) -> SeqDaemon:
        daemon = SeqDaemon(tmp_path, lua_text, seq_link.capture, **kwargs)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.ensure_stopped()


@pytest.fixture
def tmpfs(tmp_path):
    """A 2 MiB tmpfs mounted for the test: a disk that fills up."""
    where = tmp_path / "small"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], check=True,
                   capture_output=True, timeout=30)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)


@pytest.fixture
def slow_disk(tmp_path):
    """`slow_disk(bytes_per_s)`: a folder on a FUSE file system whose writes run at that rate
    (slow_fs.py), mounted for the test."""
    from waiting import wait_until

    mounted: list[tuple[Path, subprocess.Popen]] = []

    def mount(bytes_per_s: float) -> Path:
        if not os.path.exists("/dev/fuse"):
            pytest.skip("no /dev/fuse: the slow disk is a FUSE file system")
        root, where = tmp_path / "slow-root", tmp_path / "slow"
        root.mkdir()
        where.mkdir()
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("slow_fs.py")), str(root), str(where),
             "--bytes-per-s", str(bytes_per_s)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        mounted.append((where, proc))
        wait_until(lambda: os.path.ismount(where) or proc.poll() is not None, 20,
                   "the slow file system to be mounted")
        assert proc.poll() is None, f"slow_fs.py failed: {proc.stderr.read()}"
        return where

    yield mount
    for where, proc in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
