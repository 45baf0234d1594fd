"""pcapdaemon's own example config, verbatim, through the `pushcap` command (issue 18, item 4).

The example names `eth0` and `lo`; `check` verifies both exist, so it runs in a network namespace
of its own where a veth end is called `eth0`: the test does not depend on the host's names.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "tests" / "data" / "pcapdaemon.conf.example"
PUSHCAP = str(Path(sys.executable).parent / "pushcap")
NEEDS_NETNS = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                                 reason="needs root and unshare for a network namespace")


def in_namespace_with_eth0(*args: str) -> subprocess.CompletedProcess:
    script = ('ip link add eth0 type veth peer name eth0peer && ip link set lo up && '
              'exec "$@"')
    return subprocess.run(["unshare", "--net", "--", "sh", "-c", script, "sh", PUSHCAP, *args],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


@NEEDS_NETNS
def test_check_loads_the_upstream_example_and_pcapdaemons_zero_flags():
    proc = in_namespace_with_eth0("check", "--config", str(EXAMPLE), "-cstimeout", "0",
                                  "-maxpackets", "0", "-redisport", "0", "-panic")
    assert proc.returncode == 0, proc.stderr
    assert "interfaces eth0 (main/public), lo (local)" in proc.stdout
    notices = [line for line in proc.stdout.splitlines() if line.startswith("notice: ")]
    assert len(notices) == 2  # each said once
    assert notices[0].startswith("notice: -panic: ")
    assert "[kafka] listen (line 29) = true: Kafka is not supported" in notices[1]
    assert "xxxxxxxxxxxxxxxxxxxxxxx" not in proc.stdout + proc.stderr  # the example's keys


def test_run_refuses_kafka_listen_with_one_clear_line(tmp_path):
    proc = subprocess.run([PUSHCAP, "run", "--config", str(EXAMPLE), "--lua",
                           str(REPO / "etc" / "push_realtime.lua")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith("pushcap: error: pcapdaemon.conf.example: [kafka] listen "
                               "(line 29) = true: Kafka is not supported by pushcap")
    assert not (tmp_path / "out").exists()  # refused before anything started


def test_kafka_without_listen_is_no_refusal(tmp_path):
    config = tmp_path / "k.toml"
    config.write_text('[kafka]\nlisten = false\nserver = ["127.0.0.1:9092"]\ntopic = "capture"\n'
                      '[[interface]]\nname = "lo"\n')
    proc = subprocess.run([PUSHCAP, "check", "--config", str(config)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "notice:" not in proc.stdout
