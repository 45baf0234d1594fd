"""An rclone remote that goes away under traffic and comes back (`rclone serve webdav` stopped
and started again on its port): capture and rolling go on into the spool meanwhile, and once the
remote is back every packet arrives there exactly once."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from packet_accounting import assert_accounted, read_target
from seq_stream import RATE_PPS, file_target, lua_file, scaled
from waiting import wait_until

from pushcap.push.rclone_remote import rclone_binary

pytestmark = pytest.mark.timeout(scaled(180, 900))

OUTAGE_S = scaled(4, 30)
# The rclone tests' served remotes (tests/integration/rclone/conftest.py), reused as they are.
_spec = importlib.util.spec_from_file_location(
    "rclone_served", Path(__file__).resolve().parents[1] / "rclone" / "conftest.py")
served = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(served)
rclone_env = served.rclone_env  # the fixture: no rclone config but the test's environment

RCLONE = ('[rclone]\nspool_dir = "{spool}"\nretry_min_s = 0.2\nretry_max_s = 1.0\n'
          'command_timeout_s = 30\nflags = ["--low-level-retries", "1"]\n')


@pytest.fixture
def webdav(tmp_path, rclone_env):
    remote = served.ServedRemote("webdav", tmp_path / "davroot",
                                 ["--user", served.DAV_USER, "--pass", served.DAV_PASSWORD],
                                 "pcdav", log_path=tmp_path / "serve-webdav.log")
    remote.start()
    obscured = subprocess.run([str(rclone_binary()), "obscure", served.DAV_PASSWORD],
                              check=True, capture_output=True, text=True).stdout.strip()
    for key, value in {"TYPE": "webdav", "URL": remote.url, "VENDOR": "rclone",
                       "USER": served.DAV_USER, "PASS": obscured}.items():
        rclone_env.setenv(f"RCLONE_CONFIG_PCDAV_{key}", value)
    yield remote
    remote.stop()


def test_remote_outage_delivers_every_packet_once(seq_link, start_sender, start_daemon, webdav,
                                                  tmp_path):
    spool = tmp_path / "spool"
    daemon = start_daemon(
        lua_file(file_target("remote", "pcdav:seq/remote", seq_link.bpf, mode="rclone")),
        toml_extra=RCLONE.format(spool=spool))
    sender = start_sender()

    def remote(key: str) -> int:
        return daemon.target("remote").get(key) or 0

    wait_until(lambda: remote("uploads_ok") >= 1, 30, "a first upload")
    webdav.stop()
    failed = remote("uploads_failed")
    wait_until(lambda: remote("uploads_failed") > failed and remote("files_pending") >= 2,
               OUTAGE_S + 30, "uploads to fail and files to queue up in the spool")
    outage_end = sender.sent + OUTAGE_S * RATE_PPS
    wait_until(lambda: sender.sent >= outage_end, OUTAGE_S + 30,
               f"{OUTAGE_S:g} s of traffic with the remote down")
    assert remote("lost_packets") == 0 and daemon.proc.poll() is None
    webdav.start()
    ok = remote("uploads_ok")
    wait_until(lambda: remote("uploads_ok") > ok, 30, "uploads once the remote is back")
    sent = sender.stop()
    wait_until(lambda: remote("packets") >= sent, 30, "the target to take every datagram")
    # Everything delivered before the stop: a stop gives uploads 10 s, then keeps the rest
    # spooled for the next start (the soak's outage queues more than that).
    wait_until(lambda: not daemon.target("remote").get("current_file")
               and remote("files_pending") == 0, 30 + OUTAGE_S * 2,
               "the last file to close and the spool to empty")
    status = daemon.target("remote")
    assert daemon.stop() == 0, daemon.text()
    queued = [p for p in spool.rglob("*") if p.is_file()]
    assert not queued, f"left in the spool: {queued}"
    arrived = sorted((webdav.root / "seq").iterdir())
    assert all(p.name.startswith("remote_") and p.suffix == ".pcap" for p in arrived), arrived
    assert sender.on_wire() == sent, "the wire carried what the sender counted"
    seqs = read_target("remote", arrived, sender.run_id, sent)
    assert_accounted(seqs, sender.times())
    assert status["lost_packets"] == 0 and status["dropped_files"] == 0, status
    assert status["uploads_failed"] > 0, "the outage was not noticed"
