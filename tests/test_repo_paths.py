"""The suite reads nothing outside the repository, and tests/data is what its README says."""

from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path

from repo_paths import OutsideReads

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"


def test_a_read_beside_the_repository_is_caught(tmp_path):
    """The hook's rule on a layout like CI's: the clone with `shared/` beside it."""
    (tmp_path / "main").mkdir()
    (tmp_path / "shared" / "pcaps").mkdir(parents=True)
    (tmp_path / "shared" / "pcaps" / "x.pcap").write_bytes(b"")
    reads = OutsideReads(tmp_path / "main")
    assert reads.outside(tmp_path / "shared" / "pcaps" / "x.pcap")
    assert reads.outside(tmp_path / "main" / ".." / "shared" / "pcaps" / "x.pcap")
    assert not reads.outside(tmp_path / "main" / "tests" / "data" / "x.pcap")
    assert not reads.outside("/usr/lib/os-release")
    (tmp_path / "made-later").mkdir()  # e.g. a temporary folder made during the session
    assert not reads.outside(tmp_path / "made-later" / "f")
    reads.audit("open", (str(tmp_path / "shared" / "pcaps" / "x.pcap"), "r", 0))
    reads.audit("open", (str(tmp_path / "main" / "README.md"), "r", 0))
    assert reads.found == {str(tmp_path / "shared" / "pcaps" / "x.pcap")}


def test_a_clone_in_the_temporary_folder_still_reads_temporaries():
    reads = OutsideReads(Path(tempfile.gettempdir()) / "some-clone")
    with tempfile.TemporaryDirectory() as made:
        assert not reads.outside(Path(made) / "f")


def test_the_hook_is_installed_and_watches_this_session():
    import repo_paths

    assert repo_paths.WATCHING is not None and repo_paths.WATCHING.repo == REPO


def test_every_capture_matches_the_readme_checksum():
    """tests/data/README.md names each file's source, commit and licence and its SHA-256: the
    files must be the ones it describes, byte for byte."""
    readme = (DATA / "README.md").read_text()
    sums = dict((name, digest) for digest, name in
                re.findall(r"^([0-9a-f]{64})  (\S+)$", readme, re.MULTILINE))
    captures = sorted(p.name for p in DATA.iterdir() if p.is_file() and p.name != "README.md")
    # (folders such as fmadio/ are corpora with a README of their own)
    assert sorted(sums) == captures
    for name in captures:
        assert hashlib.sha256((DATA / name).read_bytes()).hexdigest() == sums[name], name
        assert f"`{name}`" in readme  # and it has a row with its source and licence
