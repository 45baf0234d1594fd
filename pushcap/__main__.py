"""`python -m pushcap`: the same command as `pushcap`."""

from pushcap.cli import entry

entry()
