"""P1: the package as `pip install` gives it, replaying a 300k-packet trace with one `tcp` target.

Issue 15's goal: a pip-installed pushcap costs at most tcpdump's CPU on this job, start-up
included (a replay's interpreter start, imports and Lua config are half its CPU at this size).
The wheel is built from the checkout (`python -m build --wheel`) and installed, with its
dependencies, into a virtual environment of its own under the bench folder; both tools then run
the R2 job alternately, as the replay scenarios do.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from . import config
from .replay import ReplayScenario

P1 = ReplayScenario("P1", "pip-installed, 300k packets, 'tcp', start-up included", ("tcp",))
P1_PACKETS = 300_000
BUILD_FILES = ("pushcap", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md",
               "CHANGELOG.md", "LICENSE")


def install_wheel(repo: Path, where: Path) -> Path:
    """Build the checkout's wheel and install it into a fresh venv; the installed `pushcap`."""
    shutil.rmtree(where, ignore_errors=True)
    tree = where / "src"
    tree.mkdir(parents=True)
    for name in BUILD_FILES:
        source = repo / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=shutil.ignore_patterns(
                "__pycache__", "*.so"))
        else:
            shutil.copy2(source, tree / name)
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(where / "dist"),
                    str(tree)], check=True, capture_output=True)
    venv = where / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    wheel = next((where / "dist").glob("*.whl"))
    subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", str(wheel)],
                   check=True)
    version = subprocess.run([str(venv / "bin/pushcap"), "--version"], check=True,
                             capture_output=True, text=True).stdout
    if "packet path: C" not in version:
        raise RuntimeError(f"the installed wheel does not run the C path:\n{version}")
    return venv / "bin/pushcap"


def use_installed(pushcap: Path | None) -> None:
    """Run the scenarios' pushcap from `pushcap` (a console script), or None: the checkout."""
    config.PUSHCAP_COMMAND = [str(pushcap)] if pushcap else None
