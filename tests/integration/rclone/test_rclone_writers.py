"""Writers sharing a remote folder: two hosts pushing one Path (epoch-aligned windows give the same
names) or two targets whose Paths name one folder. Neither may overwrite the other's file nor
delete it; and a move cut in half on S3 (copy done, delete not) leaves no temporary object.

Each test runs against the local backend and against `rclone serve` on loopback, and reads what
arrived from the backing folder itself.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from test_rclone_delivery import OURS, THEIRS, drain, queue
from test_rclone_push import make_target, settings, wait_until

from pushcap.push.file_delivery import tmp_name
from pushcap.push.ship import make_shipper

pytestmark = pytest.mark.integration

FINAL = "all_100.pcap"
OTHER = b"a writer that does not check, 41 bytes..."  # another size: caught without hashes too


def remote_folder(request, tmp_path: Path, kind: str) -> tuple[str, Path, Path]:
    """(Path of the targets, their series prefix, the backing folder of `push/`)."""
    if kind == "local":
        root = tmp_path / "localroot"
        (root / "push").mkdir(parents=True)
        return f":local:{root}/push/all", Path(f"{root}/push/all"), root / "push"
    remote = request.getfixturevalue(f"{kind}_remote")
    name, folder = ("pcs3", "bucket/push") if kind == "s3" else ("pcdav", "push")
    (remote.root / folder).mkdir(parents=True, exist_ok=True)
    return f"{name}:{folder}/all", Path(f"{folder}/all"), remote.root / folder


def arrived(folder: Path) -> dict[str, bytes]:
    """Every object in the folder, hidden temporary ones included."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def name_taken(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "event=upload_name_taken " in r.getMessage()]


@pytest.mark.parametrize("kind", ["local", "s3", "webdav"])
def test_two_writers_racing_for_one_name_both_arrive(tmp_path, request, kind, caplog):
    """Both writers choose (and record) the same free name; A moves its file there first. B's
    move must not replace A's file: B finds its temporary object still there and goes to `_2`.
    Before, B's moveto overwrote A's file after A had deleted its spool copy: A's data was gone
    while both counted an upload."""
    path, prefix, folder = remote_folder(request, tmp_path, kind)
    a = make_shipper(make_target("a", path), prefix, settings(tmp_path))
    b = make_shipper(make_target("b", path), prefix, settings(tmp_path))
    both_chose = threading.Barrier(2, timeout=20)

    def racing(shipper, after=None) -> None:
        runner = shipper.uploader.runner
        real_copyto, first = runner.copyto, [True]

        def copyto(local: Path, remote: str) -> None:
            if first[0]:  # both have chosen and recorded their final name by now
                first[0] = False
                both_chose.wait()
                if after is not None:
                    wait_until(lambda: after.stats()["uploads_ok"] == 1, 20, "A's upload")
            real_copyto(local, remote)

        runner.copyto = copyto

    racing(a)
    racing(b, after=a)
    queue(a, tmp_path, OURS)
    queue(b, tmp_path, THEIRS)
    with caplog.at_level(logging.INFO, logger="pushcap.push"):
        b.start()
        drain(a)
        drain(b)
    assert arrived(folder) == {FINAL: OURS, "all_100_2.pcap": THEIRS}
    assert a.stats()["uploads_ok"] == b.stats()["uploads_ok"] == 1
    assert b.stats()["name_conflicts"] == 1 and a.stats()["name_conflicts"] == 0
    assert not a.spool.pending() and not b.spool.pending()
    [warning] = name_taken(caplog)
    assert "target=b " in warning and f"push/{FINAL} " in warning
    assert str(b.spool.directory) in warning  # names the other side too: our spooled file


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_a_failed_check_leaves_the_object_there_alone(tmp_path, request, kind, caplog):
    """Another writer that does not check replaces our file right after our move (rclone's
    existence check and move are two steps). The check fails: the object under the final name
    is not known to be ours, so it stays, and our file goes to the next free name. Before, the
    uploader deleted it (the other writer's only copy) and put ours back under that name."""
    path, prefix, folder = remote_folder(request, tmp_path, kind)
    shipper = make_shipper(make_target("a", path), prefix, settings(tmp_path))
    runner = shipper.uploader.runner
    real_run, first = runner.run, [True]

    def run(args: list[str], *rest, **kw):
        result = real_run(args, *rest, **kw)
        if args[0] == "moveto" and first[0]:
            first[0] = False
            (folder / FINAL).write_bytes(OTHER)
        return result

    runner.run = run
    queue(shipper, tmp_path, OURS)
    with caplog.at_level(logging.INFO, logger="pushcap.push"):
        drain(shipper)
    assert arrived(folder) == {FINAL: OTHER, "all_100_2.pcap": OURS}
    stats = shipper.stats()
    assert stats["uploads_ok"] == 1 and stats["name_conflicts"] == 1
    [warning] = name_taken(caplog)
    assert f"push/{FINAL} " in warning and "is not this file" in warning


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_restart_after_a_move_cut_in_half_removes_the_temporary_object(tmp_path, request, kind):
    """On S3 a move is a copy and a delete: a run killed between them leaves the final object
    (ours, under the recorded name) and the hidden temporary one. The next run counts the file
    as delivered and must also delete the temporary object, which nothing else would."""
    path, prefix, folder = remote_folder(request, tmp_path, kind)
    shipper = make_shipper(make_target("a", path), prefix, settings(tmp_path))
    queue(shipper, tmp_path, OURS)
    entry = shipper.spool.oldest()
    shipper.spool.record_final(entry, f"{entry.dest.rpartition('/')[0]}/{FINAL}")
    (folder / FINAL).write_bytes(OURS)
    (folder / tmp_name(FINAL, entry.enqueue_ns)).write_bytes(OURS)
    restarted = make_shipper(make_target("a", path), prefix, settings(tmp_path))
    drain(restarted)
    assert arrived(folder) == {FINAL: OURS}
    stats = restarted.stats()
    assert stats["already_present"] == 1 and stats["uploads_ok"] == 0
    assert not list(restarted.spool.directory.iterdir())
