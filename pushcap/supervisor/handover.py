"""One target's consumers on one interface across reloads: kept, replaced, removed or added, and
the handover of a changed target at its file boundary.

Reload swaps a target's consumers inside its lane's thread (target_lane.py), between two
batches, so every packet goes to exactly one generation of the target: an unchanged target keeps
running untouched
(also when only their position in the file moved), removed ones finish their file, changed ones
(same Desc, other settings) finish their current file under the old settings and hand over at
its natural end, where the successor takes the rest of that batch. The state of a switch is the
supervisor's (`Slot`); consumers only answer the contract's calls (capture/consumer.py).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable

from pushcap.capture.consumer import Consumer
from pushcap.config.model import TargetConfig
from pushcap.supervisor.retirements import Retirements
from pushcap.supervisor.slots import Slot, guarded

log = logging.getLogger("pushcap.engine")

Bound = list[tuple[TargetConfig, bool]]  # (target, reads several interfaces)


def identity(target: TargetConfig, several: bool) -> tuple[TargetConfig, bool]:
    """A target without its position in the file, to recognise it across a reload."""
    return dataclasses.replace(target, index=0), several


class TargetSlots:
    """The slots of one target (one Desc) on one interface: one, or two while a changed target
    waits for its file boundary. Changed only on its lane's thread; `consumers()` is the
    snapshot other threads (status) read. (The code handles any number of Descs: a lane's
    binding holds at most one.)"""

    def __init__(self, interface: str, make: Callable[[TargetConfig, bool], Consumer],
                 retirements: Retirements) -> None:
        self.interface = interface
        self._make = make
        self._retirements = retirements
        self._lock = threading.Lock()
        self.slots: list[Slot] = []

    def consumers(self) -> list[Consumer]:
        with self._lock:
            return [slot.consumer for slot in self.slots]

    def _set(self, slots: list[Slot]) -> None:
        with self._lock:
            self.slots = slots

    def _build(self, target: TargetConfig, several: bool) -> Slot | None:
        try:
            return Slot(self._make(target, several), several)
        except Exception as exc:  # noqa: BLE001 - one target must not stop the others
            log.error("event=target_error target=%s interface=%s action=start error=%r",
                      target.desc_log, self.interface, str(exc))
            return None

    def launch(self, bound: Bound) -> None:
        """The targets at start: each built and started at once (a crash's leftovers repaired
        first); a target that cannot start stops the launch, with its error."""
        slots = []
        for target, several in bound:
            consumer = self._make(target, several)
            consumer.start(at_launch=True)
            slots.append(Slot(consumer, several))
            log.info("event=target_start target=%s interface=%s mode=%s", target.desc_log,
                     self.interface, target.mode.value)
        self._set(slots)

    def apply(self, bound: Bound, wait_for=None) -> None:
        """A reload's binding of this target (see the module doc); a new target registers its
        start (its delivery) only once `wait_for` (a Latch) opens."""
        wanted = {identity(t, several): (t, several) for t, several in bound}
        for pending in [s for s in self.slots if s.switching]:
            self._revise_switch(pending, wanted)
        retiring = [s for s in self.slots if s.switching]
        old = {identity(s.consumer.target, s.several): s for s in self.slots
               if s not in retiring}
        changed = {s.consumer.target.desc: s for key, s in old.items() if key not in wanted}
        current = list(retiring)
        switches: list[tuple[Slot | None, Slot | None]] = []
        for key, (target, several) in wanted.items():
            if key in old:
                current.append(old[key])
                continue
            predecessor = changed.pop(target.desc, None)
            waits = predecessor is not None and \
                bool(guarded(predecessor, predecessor.consumer.retire))
            successor = self._build(target, several)
            if successor is not None:
                if predecessor is not None:  # a flow exporter carries its interval on
                    guarded(successor, successor.consumer.take_over, predecessor.consumer)
                successor.consumer.hold_delivery()  # until the predecessor delivered all
                successor.held = waits
                current.append(successor)
                log.info("event=target_start target=%s interface=%s", target.desc_log,
                         self.interface)
            if waits:
                # Changed: the old settings finish their current file, then the new ones go on.
                predecessor.switching, predecessor.successor = True, successor
                current.insert(0, predecessor)
                log.info("event=target_change target=%s interface=%s switch=next_file",
                         target.desc_log, self.interface)
            else:
                switches.append((predecessor, successor))
        # Removed ones first, then replacements, then new ones: whatever takes over an output
        # waits for every retirement registered on it before.
        for slot in changed.values():
            self._retirements.retire(self.interface, slot, None)
        for predecessor, successor in sorted(switches, key=lambda pair: pair[0] is None):
            self._retirements.retire(self.interface, predecessor, successor,
                                     wait_for if predecessor is None else None)
        self._set(current)

    def _revise_switch(self, pending: Slot, wanted: dict) -> None:
        """A switch still waiting for its file boundary, seen by a later reload: cancelled if
        the old settings are wanted again, kept if its successor is still wanted (or can now
        be built), done at once if the target was replaced or removed."""
        successor = pending.successor
        if identity(pending.consumer.target, pending.several) in wanted:
            pending.consumer.unretire()
            pending.switching, pending.successor = False, None
            if successor is not None:
                self._set([s for s in self.slots if s is not successor])
                self._retirements.retire(self.interface, successor, None)
            return
        if successor is None:
            again = [ts for ts in wanted.values() if ts[0].desc == pending.consumer.target.desc]
            if not again:
                self._handover(pending, None)
                return
            successor = self._build(*again[0])
            if successor is None:
                return  # the old settings go on until the boundary
            successor.consumer.hold_delivery()
            successor.held = True
            pending.successor = successor
            self._set([*self.slots, successor])
            return
        if identity(successor.consumer.target, successor.several) not in wanted:
            self._handover(pending, None)

    def handovers(self, batch=None, force: bool = False) -> None:
        """Let changed targets that reached their file boundary hand over to their successor:
        the successor takes the rest of this batch from the boundary on, nothing twice."""
        for old in [s for s in self.slots if s.switching]:
            if old.consumer.retired_at is not None or force:
                self._handover(old, batch)

    def _handover(self, old: Slot, batch) -> None:
        successor = old.successor
        old.switching, old.successor = False, None
        self._set([s for s in self.slots if s is not old])
        boundary = old.consumer.retired_at
        if boundary is None:  # forced (shutdown, or its successor was replaced)
            guarded(old, old.consumer.end_file)
        if successor is not None:
            successor.held = False
            if boundary is not None:
                guarded(successor, successor.consumer.continue_after, old.consumer)
                if batch is not None:
                    guarded(successor, successor.consumer.consume, batch.tail(boundary))
        self._retirements.retire(self.interface, old, successor)
