"""One target on one interface, on a thread of its own with its own cursor into the ring.

Isolation: every target (every Desc) of an interface reads the ring through its own cursor on
its own thread, so a target whose disk or share is slow falls behind alone. When it falls
further behind than the ring holds, it loses the packets evicted before it read them (the ring
never waits for a reader): those are counted against that target (`missed_packets`, in its
`lost_packets` and as a failure with its Desc in the log; missed_packets.py), while the
interface's other targets, triggers and flows lose nothing. A target whose share is not mounted
does not read at all (mount_wait.py): its packets wait in the ring.

A target's `CPU` (FMADIO's field) pins its lanes' threads to those CPUs
(os.sched_setaffinity on the thread's own id), set when the lane starts and again when a reload
changes it; a CPU the system refuses is logged once and the lane runs unpinned.

A reload reaches a lane as the new binding of its Desc (empty when the target was removed); the
lane applies it between two of its own batches, with the handover of a changed target at its
file boundary as before (`TargetSlots`). Lanes apply a reload at different moments, so a target
new in a reload waits, before it may deliver, until every other lane of the interface has
applied that reload: a renamed target writing where a removed one did never delivers before the
removed one's retirement is registered (retirements.py orders the rest).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from pushcap import defaults
from pushcap.capture.ring import Cursor
from pushcap.config.desc_names import log_value
from pushcap.push.mount_guard import MountGuard
from pushcap.supervisor.handover import Bound, TargetSlots
from pushcap.supervisor.missed_packets import MissedPackets
from pushcap.supervisor.mount_wait import MountWait
from pushcap.supervisor.retirements import Retirements
from pushcap.supervisor.slots import guarded

log = logging.getLogger("pushcap.engine")

TICK_SLACK_S = 0.005  # a lane woken for a tick wakes this much after it is due


class Latch:
    """Opens once every party that joined has arrived (the poster joins first and arrives
    last, so lanes arriving while it still posts cannot open it early)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting = 1

    def join(self) -> None:
        with self._cond:
            self._waiting += 1

    def arrive(self) -> None:
        with self._cond:
            self._waiting -= 1
            if self._waiting <= 0:
                self._cond.notify_all()

    def wait(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._waiting <= 0)


def push_clock_ns(cursor: Cursor) -> int:
    """The time a push step's `tick` closes windows by: packet time, carried on by the wall
    clock. While the lane lags the ring it is the newest packet read (the wall clock would
    close a window whose packets still wait in the ring). Once it has read everything, it is that
    packet's time plus the wall time since the ring got it: a quiet link's window still ends with
    no packet after it, while packets that reached the ring late (a backlog in libpcap's buffer,
    a busy capture thread) or a NIC clock off the system's are not put in a later window's file.
    """
    if cursor.newest_ts_ns is None:
        return time.time_ns()
    if not cursor.caught_up:
        return cursor.newest_ts_ns
    return cursor.newest_ts_ns + max(0, time.time_ns() - cursor.newest_appended_ns)


class TargetLane:
    """The consumers of one Desc on one interface (two during a changed target's handover)."""

    def __init__(self, interface: str, desc: str, slots: TargetSlots, cursor: Cursor | None,
                 retirements: Retirements, count_missed: Callable[[str, int], None],
                 guard: Callable[[str], MountGuard] | None = None) -> None:
        """`guard` makes the mount guard of an output folder (None: nothing is guarded)."""
        self.interface = interface
        self.desc = desc
        self.slots = slots
        self.cursor = cursor
        self._retirements = retirements
        self._lock = threading.Lock()
        self._pending: list[tuple[Bound, Latch | None, Latch | None]] = []
        self._ended = False
        self._mount_wait = MountWait(interface, desc, slots, guard)
        self._missed = MissedPackets(interface, desc, slots, cursor, count_missed)
        self._pinned: tuple[int, ...] | None = None  # the CPUs this lane's thread is pinned to
        self._unpinned_cpus: set[int] | None = None  # its affinity before it was pinned

    @property
    def desc_log(self) -> str:
        return log_value(self.desc)

    def post(self, bound: Bound, wait_for: Latch | None, arrive_at: Latch | None) -> bool:
        """Queue a reload's binding of this Desc; False when the lane has already ended (its
        target was removed and closed), so the caller starts a new lane instead."""
        with self._lock:
            if self._ended:
                return False
            if arrive_at is not None:
                arrive_at.join()
            self._pending.append((bound, wait_for, arrive_at))
        if self.cursor is not None:
            self.cursor.ring.poke()  # the lane may be in a quiet link's long wait
        return True

    def _read_wait_s(self, now_ns: int) -> float:
        """How long a read may wait for a batch before the lane ticks its consumers: until the
        soonest `next_tick_ns` of its consumers (a time-split file's or a flow interval's end,
        plus TICK_SLACK_S so the tick finds it due), at most PUSH_QUIET_POLL_S. A quiet link's
        lanes woke five times a second for nothing (issue 19); a batch, a reload's post or the
        ring's end still wake them at once. A tick that was due and did not act (its file
        could not be closed) is tried again every PUSH_POLL_S."""
        wait_s = defaults.PUSH_QUIET_POLL_S
        for slot in self.slots.slots:
            due_ns = slot.consumer.next_tick_ns()
            if due_ns is None:
                continue
            if due_ns <= now_ns:
                return defaults.PUSH_POLL_S
            wait_s = min(wait_s, (due_ns - now_ns) / 1e9 + TICK_SLACK_S)
        return wait_s

    def end_if_empty(self) -> bool:
        """End the lane when a reload removed its target and nothing is pending."""
        with self._lock:
            self._ended = not self.slots.slots and not self._pending
            return self._ended

    def _apply_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for bound, wait_for, arrive_at in pending:
            try:
                self.slots.apply(bound, wait_for)
            finally:
                if arrive_at is not None:
                    arrive_at.arrive()

    def step(self, batches: list, now_ns: int) -> None:
        """One turn: a reload's binding, the batches, the clock, handovers at file ends."""
        self._apply_pending()
        slots = self.slots
        for batch in batches:  # slots.slots afresh each time: a handover replaces the list
            for slot in slots.slots:
                if not slot.held:
                    guarded(slot, slot.consumer.consume, batch)
            slots.handovers(batch)
        for slot in slots.slots:
            guarded(slot, slot.consumer.tick, now_ns)
        slots.handovers()

    def run(self) -> None:
        """The lane's thread: read, step, count what it missed, until the ring closes (then
        finish its files) or a reload removed its target (its retirement finishes them).
        While its share is not mounted it does not read: the packets wait in the ring."""
        cursor = self.cursor
        waiting_for_mount = self._mount_wait.waiting  # bound once: no lookup per read
        note_missed = self._missed.note
        self.pin_to_target()
        while True:
            if waiting_for_mount():
                self._apply_pending()  # a reload may move the target elsewhere
                if cursor.ring.closed:
                    break
                if self.end_if_empty():
                    return
                time.sleep(defaults.PUSH_POLL_S)
                continue
            batches = cursor.read(timeout_s=self._read_wait_s(push_clock_ns(cursor)))
            self.step(batches, push_clock_ns(cursor))
            self.pin_to_target()
            note_missed()
            if cursor.closed:
                break
            if self.end_if_empty():
                return
        self.close()

    def pin_to_target(self) -> None:
        """On the lane's own thread: run on the CPUs of the newest binding's `CPU` (None: where
        the thread ran before). Cheap when nothing changed: called after every step."""
        slots = self.slots.slots
        wanted = slots[-1].consumer.target.cpu if slots else None
        if wanted == self._pinned:
            return
        thread_id = threading.get_native_id()
        if self._unpinned_cpus is None:
            self._unpinned_cpus = os.sched_getaffinity(thread_id)
        self._pinned = wanted
        try:
            os.sched_setaffinity(thread_id, set(wanted) if wanted else self._unpinned_cpus)
        except OSError as exc:
            log.warning("event=cpu_pin_failed target=%s interface=%s cpu=%s error=%r",
                        self.desc_log, self.interface, ",".join(map(str, wanted or ())), str(exc))
            return
        log.info("event=cpu_pinned target=%s interface=%s cpu=%s", self.desc_log, self.interface,
                 ",".join(map(str, wanted)) if wanted else "any")

    def close(self) -> None:
        """Shutdown: the open file goes to its finisher at once, then this lane's delivery is
        waited for (every lane closes on its own thread, so one target's slow remote does not
        use up the others' shutdown time)."""
        self._apply_pending()
        self.slots.handovers(force=True)
        slots = list(self.slots.slots)
        for slot in slots:
            guarded(slot, slot.consumer.end_file)
        self._retirements.join()
        for slot in slots:
            guarded(slot, slot.consumer.finish)
        for slot in slots:
            guarded(slot, slot.consumer.close)
