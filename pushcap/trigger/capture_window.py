"""Where a capture's window [start, end) lies, and the notes that say how much of it was served.

The rules are job.py's (its docstring): the start is `start` or the request minus `before`,
capped to what the ring keeps unless an archive serves the older part; the end is the earliest
of `end`, `duration` and `timeout` from the live start, and the whole window is at most
`maxduration`. Every cap and every shortfall becomes a note a person reads, so a publisher never
mistakes a partial capture for the one it asked for; moments in notes are told relative to the
request, which is the one time the publisher knows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pushcap.capture.batch import Batch
from pushcap.capture.ring import Ring
from pushcap.trigger.archive_seam import ArchivePart
from pushcap.trigger.message import CaptureRequest


@dataclass
class CaptureWindow:
    """A job's window, the reason its end will give, and what was capped to get it."""

    start_ns: int
    end_ns: int
    end_reason: str  # duration | window | timeout
    before_s: float | None = None  # the lookback applied, when the request asked for one
    notes: list[str] = field(default_factory=list)


def plan_window(request: CaptureRequest, ring: Ring, archived: bool) -> CaptureWindow:
    """The window of `request` on `ring`; `archived`: an archive serves what the ring does
    not hold, so the lookback is not capped to the ring."""
    window = CaptureWindow(0, 0, "")
    window.start_ns = _window_start(request, ring, archived, window)
    window.end_ns, window.end_reason = window_end(request)
    longest_ns = window.start_ns + int(request.max_window_s * 1e9)
    if longest_ns < window.end_ns:
        window.end_ns, window.end_reason = longest_ns, "duration"
        window.notes.append(
            f"the window, lookback included, is at most maxduration "
            f"{request.max_window_s:g} s: it ends "
            f"{relative_to_request(longest_ns, request.received_ns)}")
    return window


def _window_start(req: CaptureRequest, ring: Ring, archived: bool,
                  window: CaptureWindow) -> int:
    """`start`, or the request minus `before`; a lookback longer than the ring keeps is
    capped to `[ring] max_seconds` and noted, so the publisher knows what it got."""
    keep_s = ring.max_ns / 1e9
    if archived:  # the archive serves what the ring does not hold
        if req.start_ns is None and req.before_s:
            window.before_s = req.before_s
        return req.start_ns if req.start_ns is not None else \
            req.received_ns - int(req.before_s * 1e9)
    if req.start_ns is not None:
        if req.received_ns - req.start_ns > ring.max_ns:
            window.notes.append(
                f"start is {(req.received_ns - req.start_ns) / 1e9:g} s before the request "
                f"but the ring keeps {keep_s:g} s ([ring] max_seconds): the window starts at "
                "most that far back")
        return max(req.start_ns, req.received_ns - ring.max_ns)
    before_s = req.before_s
    if before_s > keep_s:
        window.notes.append(f"before {before_s:g} s capped to {keep_s:g} s: the ring "
                            "keeps no more ([ring] max_seconds)")
        before_s = keep_s
    if req.before_s:
        window.before_s = before_s
    return req.received_ns - int(before_s * 1e9)


def window_end(req: CaptureRequest) -> tuple[int, str]:
    """Where the window ends and the reason it will give: the earliest of `end`, the live
    start + `duration` and the live start + `timeout`. The live part starts at the request, or
    at `start` when that lies in the future. A tie is named by the most deliberate bound:
    `end` (an absolute time), then `duration`, then `timeout` (often pcapdaemon's default)."""
    live_start_ns = max(req.received_ns, req.start_ns or 0)
    ends = [(live_start_ns + int(req.duration_s * 1e9), 1, "duration")]
    if req.end_ns is not None:
        ends.append((req.end_ns, 0, "window"))
    if req.timeout_s is not None:
        ends.append((live_start_ns + int(req.timeout_s * 1e9), 2, "timeout"))
    end_ns, _, reason = min(ends)
    return end_ns, reason


def short_ring_note(batches: list[Batch], ring: Ring, window_start_ns: int,
                    received_ns: int) -> str | None:
    """A note for a window that starts before the oldest packet of a ring that filled its
    `max_bytes` before its `max_seconds`: what it dropped for space is missing here.

    The ring does not record what it dropped, so "full" is read from what it holds: having
    evicted, it still holds over half its `max_bytes`. Age eviction on a quiet link leaves
    it nearly empty, and a window reaching past its oldest packet then lost nothing.
    """
    held = [batch for batch in batches if len(batch)]
    if not held or not ring.evicted_packets:
        return None
    oldest_ns = int(held[0].ts_ns[0])
    if oldest_ns <= window_start_ns:
        return None
    if sum(batch.memory_bytes for batch in batches) * 2 <= ring.max_bytes:
        return None
    starts, held_from = (relative_to_request(window_start_ns, received_ns),
                         relative_to_request(oldest_ns, received_ns))
    return (f"lookback short: the window starts {starts} "
            f"but the ring held packets only from {held_from}; "
            f"it was full ([ring] max_bytes {ring.max_bytes} before max_seconds "
            f"{ring.max_ns / 1e9:g} s) and had dropped older ones")


def archive_note(part: ArchivePart, packets: int, window_start_ns: int,
                 received_ns: int) -> str:
    """How many packets the archive gave, what was read, and where the archive and the
    ring begin (a window older than both is short by that much)."""
    query = part.query
    read = (f"{query.stats.files_indexed} files read through their index, "
            f"{query.stats.files_scanned} scanned") if query else "no file read"
    oldest = part.seam.ring_oldest_ns
    ring = (f"the ring's packets begin {relative_to_request(oldest, received_ns)}"
            if oldest is not None else "the ring held none")
    begins = query.oldest_ns if query else None
    short = "" if begins is not None and begins <= window_start_ns else (
        f"; the archive holds none before {relative_to_request(begins, received_ns)}"
        if begins is not None else "; the archive holds no packet")
    return (f"{packets} packets from the archive of target {part.source.desc!r} ({read}); "
            f"{ring}{short}")


def relative_to_request(ts_ns: int, received_ns: int) -> str:
    """A moment as seconds before or after the request, for notes a person reads."""
    delta_s = round((received_ns - ts_ns) / 1e9, 3)
    if delta_s == 0:
        return "at the request"
    return (f"{delta_s:g} s before the request" if delta_s > 0
            else f"{-delta_s:g} s after the request")
