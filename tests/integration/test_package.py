"""pushcap as a package: what `make dist` builds and what `pip install` of it gives a user.

The wheel is built from an sdist (as PyPI users and distributions build it), installed into a
fresh virtual environment, and run: it must report the C packet path and write exactly what the
checkout writes. A build without a C compiler must still install and run, on the numpy path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from oracle import PCAPS_DIR, read_pcap, tcpdump_select

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHECKOUT_PUSHCAP = Path(sys.executable).parent / "pushcap"
# What a build needs; the rest (tests, their third-party captures, the venv) stays behind.
SOURCES = ("pushcap", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "CHANGELOG.md",
           "LICENSE")
# The installed package must run on its own: nothing of the checkout on the module path.
INSTALLED_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
LUA = ('return { Target = { { Desc = "tcp", Mode = "File", Path = "o/tcp", '
       'Split = "--split-byte 1e6", FileName = "--filename-epoch-nsec", FilterBPF = "tcp" } } }')


def _copy_sources(to: Path) -> Path:
    to.mkdir()
    for name in SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, to / name, ignore=shutil.ignore_patterns(
                "__pycache__", "*.so", "*.egg-info"))
        else:
            shutil.copy2(source, to / name)
    return to


def _build(tmp: Path, env: dict | None = None) -> tuple[Path, Path]:
    """(sdist, wheel) built the way `make dist` builds them."""
    tree = _copy_sources(tmp / "src")
    out = tmp / "dist"
    proc = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(tree)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return next(out.glob("*.tar.gz")), next(out.glob("*.whl"))


def _fresh_venv(tmp: Path, wheel: Path) -> Path:
    venv = tmp / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=120)
    proc = subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", str(wheel)],
                          capture_output=True, text=True, timeout=600, env=INSTALLED_ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return venv


def _replay(pushcap: Path, capture: Path, cwd: Path) -> subprocess.CompletedProcess:
    cwd.mkdir()
    (cwd / "push.lua").write_text(LUA)
    env = None if pushcap == CHECKOUT_PUSHCAP else INSTALLED_ENV
    return subprocess.run([str(pushcap), "replay", str(capture), "--lua", "push.lua"],
                          cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


def _version(*argv: str) -> subprocess.CompletedProcess:
    """`--version` of an installed pushcap, run outside the checkout (`python -m` puts the
    working folder first on the module path)."""
    return subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=60,
                          env=INSTALLED_ENV, cwd="/")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("package")
    sdist, wheel = _build(tmp)
    return tmp, sdist, wheel


def test_the_archives_hold_the_library_and_none_of_the_test_captures(built):
    _, sdist, wheel = built
    with zipfile.ZipFile(wheel) as archive:
        wheel_names = archive.namelist()
    with tarfile.open(sdist) as archive:
        sdist_names = archive.getnames()
    assert any(n.startswith("pushcap/capture/_native") and n.endswith(".so") for n in wheel_names)
    assert "pushcap/__main__.py" in wheel_names
    # the status page is package data: without it the endpoint's root would fail
    assert "pushcap/supervisor/status_page.html" in wheel_names
    assert any(n.endswith("pushcap/supervisor/status_page.html") for n in sdist_names)
    for names in (wheel_names, sdist_names):
        assert not [n for n in names if n.endswith((".pcap", ".pcapng")) or "/tests/" in n
                    or n.startswith("tests/")]
    assert not [n for n in wheel_names if n.endswith(".c")]  # sources stay in the sdist
    assert any(n.endswith("pushcap/capture/csrc/bpfrun.c") for n in sdist_names)
    assert any(n.endswith("/LICENSE") for n in sdist_names)


def test_the_installed_package_runs_the_c_path_and_writes_what_the_checkout_writes(built):
    tmp, _, wheel = built
    venv = _fresh_venv(tmp, wheel)
    installed = venv / "bin/pushcap"
    version = _version(str(installed))
    assert version.returncode == 0, version.stderr
    assert "packet path: C" in version.stdout
    assert str(venv) in version.stdout  # its own library, not the checkout's
    assert "libpcap version" in version.stdout
    module = _version(str(venv / "bin/python"), "-m", "pushcap")
    assert module.stdout == version.stdout

    capture = PCAPS_DIR / "tls-windows-browsing.pcap"
    theirs = _replay(installed, capture, tmp / "installed")
    ours = _replay(CHECKOUT_PUSHCAP, capture, tmp / "checkout")
    assert theirs.returncode == 0 and ours.returncode == 0, theirs.stderr + ours.stderr
    assert "event=native_unavailable" not in theirs.stderr
    theirs_files = sorted((tmp / "installed/o").iterdir())
    ours_files = sorted((tmp / "checkout/o").iterdir())
    assert [f.name for f in theirs_files] == [f.name for f in ours_files]
    assert [f.read_bytes() for f in theirs_files] == [f.read_bytes() for f in ours_files]
    expected = tcpdump_select(capture, "tcp", tmp / "tcpdump.pcap").packets
    assert [p for f in theirs_files for p in read_pcap(f).packets] == expected


def test_without_a_compiler_the_install_succeeds_on_the_numpy_path(tmp_path):
    env = {**os.environ, "CC": "/bin/false"}  # every compile fails, as with no compiler at all
    _, wheel = _build(tmp_path, env)
    with zipfile.ZipFile(wheel) as archive:
        assert not [n for n in archive.namelist() if n.endswith(".so")]
    venv = _fresh_venv(tmp_path, wheel)
    installed = venv / "bin/pushcap"
    version = _version(str(installed))
    assert "packet path: numpy" in version.stdout, version.stdout + version.stderr
    capture = PCAPS_DIR / "http-bro.org.pcap"
    proc = _replay(installed, capture, tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("event=native_unavailable") == 1  # said once
    written = [p for f in sorted((tmp_path / "run/o").iterdir()) for p in read_pcap(f).packets]
    assert written == tcpdump_select(capture, "tcp", tmp_path / "tcpdump.pcap").packets
