"""Exactly-once delivery, credential scrubbing and long Paths against real remotes on loopback.

`rclone serve webdav` reports no hash for its objects, so there the uploader can compare only
sizes: the tests use it for the rules that matter on hashless backends. What arrived is read from
the served (or local) folder itself.
"""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import pytest
from test_rclone_push import FAST_RETRY, SAMPLE, feed, make_target, settings, wait_until

from pushcap.capture.source import open_file_source
from pushcap.config.model import NamingRule, PushMode, SplitKind, SplitRule, TargetConfig
from pushcap.push.rclone_remote import rclone_binary
from pushcap.push.ship import make_shipper
from pushcap.push.target import Series
from pushcap.supervisor.consumers import series_prefix

pytestmark = pytest.mark.integration

OURS = b"our capture, 32 bytes long......"
THEIRS = b"another file, the same 32 bytes."


def queue(shipper, tmp_path: Path, body: bytes, name: str = "100") -> None:
    part = tmp_path / "x.part"
    part.write_bytes(body)
    shipper.deliver(part, name)


def drain(shipper) -> None:
    shipper.start()
    try:
        wait_until(lambda: shipper.stats()["files_pending"] == 0, 20, "the spool to empty")
    finally:
        shipper.close(timeout_s=10)


def test_hashless_same_size_object_is_not_taken_for_ours(tmp_path, webdav_remote):
    """A different file of the same size already has the name: ours goes to `_2`, the other
    stays, and our spool copy is deleted only once ours is up."""
    assert len(OURS) == len(THEIRS) and OURS != THEIRS
    (webdav_remote.root / "push").mkdir()
    (webdav_remote.root / "push/all_100.pcap").write_bytes(THEIRS)
    shipper = make_shipper(make_target("dav", "pcdav:push/all"), Path("push/all"),
                           settings(tmp_path))
    assert not shipper.uploader.runner.stat("pcdav:push/all_100.pcap").get("Hashes")  # hashless
    queue(shipper, tmp_path, OURS)
    drain(shipper)
    assert webdav_remote.files("push") == {"all_100.pcap": THEIRS, "all_100_2.pcap": OURS}
    stats = shipper.stats()
    assert stats["already_present"] == 0 and stats["uploads_ok"] == 1


@pytest.mark.parametrize("kind", ["s3", "webdav"])
def test_run_dying_after_the_move_does_not_upload_twice(tmp_path, request, kind):
    """A run moves our file to its final name and dies before deleting the spool copy; the next
    run finds it under the name recorded for it (not under the same-size name before it) and
    counts it as delivered. A different file queued under the same name still gets its own."""
    remote = request.getfixturevalue(f"{kind}_remote")
    name, folder = ("pcs3", "bucket/d") if kind == "s3" else ("pcdav", "d")
    (remote.root / folder).mkdir(parents=True)
    (remote.root / folder / "all_100.pcap").write_bytes(THEIRS)
    path, rclone = f"{name}:{folder}/all", settings(tmp_path)
    first = make_shipper(make_target("dup", path), Path(f"{folder}/all"), rclone)
    queue(first, tmp_path, OURS)
    first.uploader._deliver(first.spool.oldest())  # up, verified; then the daemon is killed
    assert remote.files(folder) == {"all_100.pcap": THEIRS, "all_100_2.pcap": OURS}
    queue(first, tmp_path, b"a later file of the same name")
    restarted = make_shipper(make_target("dup", path), Path(f"{folder}/all"), rclone)
    drain(restarted)
    assert remote.files(folder) == {"all_100.pcap": THEIRS, "all_100_2.pcap": OURS,
                                    "all_100_3.pcap": b"a later file of the same name"}
    stats = restarted.stats()
    assert stats["already_present"] == 1 and stats["uploads_ok"] == 1
    assert not list(restarted.spool.directory.iterdir())  # no entry, no note left


def test_bearer_token_in_headers_stays_out_of_errors(tmp_path, webdav_remote, caplog):
    """A Path whose connection string carries an Authorization header: rclone quotes the whole
    Path when it cannot reach the remote, and neither the log nor `last_error` may show it."""
    token = "tok-Zq81mVbX4"
    obscured = subprocess.run([str(rclone_binary()), "obscure", webdav_remote.secret_key],
                              check=True, capture_output=True, text=True).stdout.strip()
    path = (f":webdav,url='{webdav_remote.url}',vendor=rclone,user={webdav_remote.access_key},"
            f"pass={obscured},headers='Authorization,Bearer {token}':push/all")
    webdav_remote.stop()
    shipper = make_shipper(make_target("hdr", path), Path("push/all"), settings(tmp_path))
    queue(shipper, tmp_path, OURS)
    with caplog.at_level(logging.DEBUG, logger="pushcap"):
        shipper.start()
        try:
            wait_until(lambda: shipper.stats()["uploads_failed"] >= 2, 20, "two failures")
        finally:
            shipper.close(timeout_s=5)
    stats = shipper.stats()
    assert "connection refused" in stats["last_error"]  # the reason is still there
    shown = " ".join([r.getMessage() for r in caplog.records] + [json.dumps(stats),
                                                                 shipper.describe()])
    assert "event=upload_failed" in shown
    for secret in (token, obscured):
        assert secret not in shown, secret


def test_long_deep_path_end_to_end(tmp_path):
    """A Path of 300+ characters, a 180-byte prefix (the most the config allows) and a long
    FileSuffix: spool entries and the remote's temporary names must still fit a file name."""
    dest_root = tmp_path / "local-remote"
    deep = "/".join(f"level{i}-" + "d" * 70 for i in range(5))
    prefix = "p" * 180
    path = f":local:{dest_root}/{deep}/{prefix}"
    assert len(path) > 300
    suffix = ".pcap.long-suffix-xyz"  # "." and 20 characters, as FileSuffix allows
    naming = NamingRule("--filename-epoch-sec-startend")
    split = SplitRule(SplitKind.BYTE, 400_000)
    ref = TargetConfig(index=1, desc="ref", mode=PushMode.FILE, path=str(tmp_path / "ref/all"),
                       split=split, naming=naming, file_suffix=suffix)
    deep_target = TargetConfig(index=2, desc="deep", mode=PushMode.RCLONE, path=path,
                               split=split, naming=naming, file_suffix=suffix)
    source = open_file_source(SAMPLE)
    series = [Series(t, source.name, series_prefix(t, source.name, False), source.linktype,
                     source.snaplen, {"spool_dir": str(tmp_path / "spool"), **FAST_RETRY})
              for t in (ref, deep_target)]
    shipper = series[1].shipper
    shipper.start()
    try:
        feed(series)
        for s in series:
            s.close()
    finally:
        shipper.close(timeout_s=30)
    reference = {p.name.removeprefix("all"): p.read_bytes()
                 for p in (tmp_path / "ref").iterdir()}
    arrived = {p.name.removeprefix(prefix): p.read_bytes()
               for p in (dest_root / deep).iterdir()}
    assert len(reference) >= 4 and arrived == reference
    stats = shipper.stats()
    assert stats["uploads_ok"] == len(reference) and stats["uploads_failed"] == 0
    assert stats["files_pending"] == 0
