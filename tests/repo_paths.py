"""Which paths a test may read: the repository's own files, temporary folders, the system.

A test that reads a file beside the repository (a sibling `shared/` folder) passes on this
team's machines and fails in a user's plain clone. The audit hook below sees every `open()` of
the test process (Python's and the C library's through `io`), so the rule is enforced where the
read happens, not by searching test sources for spellings of `..`.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


class OutsideReads:
    """An audit hook that records opened paths which lie beside the repository: in one of the
    folders that stood next to it when the session began (a sibling `shared/` folder, another
    checkout).

    Folders made during the session (pytest's and tempfile's) are not "beside" it, even when the
    clone itself lies in the temporary folder; nor is pytest's base folder, which outlives
    sessions.
    """

    def __init__(self, repo: Path) -> None:
        self.repo = repo.resolve()
        beside = self.repo.parent
        try:
            names = os.listdir(beside)
        except OSError:
            names = []
        in_temporary = beside == Path(tempfile.gettempdir()).resolve()
        self.siblings = [beside / name for name in names
                         if beside / name != self.repo and not name.startswith("pytest-of-")
                         and not (in_temporary and name.startswith("tmp"))]
        self.found: set[str] = set()

    def outside(self, path: str | os.PathLike) -> bool:
        """True for a path in a folder beside the repository (the rule, apart from the hook)."""
        resolved = Path(os.path.abspath(os.fspath(path)))
        return any(resolved == s or resolved.is_relative_to(s) for s in self.siblings)

    def audit(self, event: str, args: tuple) -> None:
        if event != "open" or not args or not isinstance(args[0], str | bytes | os.PathLike):
            return
        path = args[0]
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        try:
            if self.outside(path):
                self.found.add(str(path))
        except (OSError, ValueError):  # an odd name is no read beside the repository
            pass


WATCHING: OutsideReads | None = None  # the session's hook, once conftest.py installed it


def watch(repo: Path) -> OutsideReads:
    """Install the audit hook for this process (once: audit hooks cannot be removed)."""
    global WATCHING
    if WATCHING is None:
        WATCHING = OutsideReads(repo)
        sys.addaudithook(WATCHING.audit)
    return WATCHING
