"""Which indexed File targets read an interface: the trigger service's way into the archive.

The trigger layer may not import the supervisor or push, so the daemon hands it a lookup of
plain data (archive_seam.ArchiveSource: a target's Desc, its series' files, its FilterBPF). It
reads the engine's targets when a capture runs, so after a reload the new targets are used.
"""

from __future__ import annotations

from pushcap.archive.layout import target_series
from pushcap.config.model import ConfigError, PushMode
from pushcap.supervisor.consumers import interfaces_of
from pushcap.supervisor.engine import LiveEngine
from pushcap.trigger.archive_seam import ArchiveSource, ArchiveSources


def archive_sources(engine: LiveEngine) -> ArchiveSources:
    """interface -> its File targets with `Index = true`, in the Lua file's order."""

    def sources(interface: str) -> tuple[ArchiveSource, ...]:
        found = []
        for target in engine.targets:  # replaced whole by a reload: read once here
            if target.mode is not PushMode.FILE or not target.indexed:
                continue
            try:
                names = interfaces_of(target, engine.config)
            except ConfigError:  # refused at load; never bound to a ring
                continue
            if interface in names:
                found.append(ArchiveSource(target.desc,
                                           target_series(target, interface, len(names) > 1),
                                           target.filter_bpf))
        return tuple(found)

    return sources
