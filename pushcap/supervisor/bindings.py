"""Which targets read which interface, and whether a new set fits the running rings.

A reload is checked whole before the engine applies any of it (engine.py): the bindings are
built and every filter compiled for its ring's link type here, so a refused reload raises
ConfigError (unknown interface, filter not valid for a link type) while nothing has changed yet.
"""

from __future__ import annotations

from pushcap.capture.ring import Ring
from pushcap.config.model import DaemonConfig, TargetConfig
from pushcap.supervisor.consumers import check_filters, interfaces_of
from pushcap.supervisor.handover import Bound

Bindings = dict[str, Bound]  # interface -> (target, reads several)


def bind(config: DaemonConfig, targets: tuple[TargetConfig, ...]) -> Bindings:
    """Every configured interface with the targets that read it, in the targets' order."""
    bindings: Bindings = {i.name: [] for i in config.interfaces}
    for target in targets:
        names = interfaces_of(target, config)
        for name in names:
            bindings[name].append((target, len(names) > 1))
    return bindings


def check_bound(bound: Bound, linktype: int, snaplen: int) -> None:
    """Compile an interface's targets' filters for its link type (ConfigError names the target)."""
    check_filters(tuple(t for t, _ in bound), linktype, snaplen)


def check_bindings(bindings: Bindings, rings: dict[str, Ring]) -> None:
    """Every interface's filters against the ring it has now (a reload, before it applies)."""
    for name, bound in bindings.items():
        ring = rings[name]
        check_bound(bound, ring.linktype, ring.snaplen)


def group_by_desc(bound: Bound) -> dict[str, Bound]:
    """One interface's binding grouped by Desc (a lane's share of a reload), in its order."""
    grouped: dict[str, Bound] = {}
    for target, several in bound:
        grouped.setdefault(target.desc, []).append((target, several))
    return grouped
