"""`python -m pushcap.cli`: the same command as `pushcap` (tests and tools/benchlib run it so)."""

from pushcap.cli import entry

entry()
