"""A request's `bpf`, compiled off the listener, once, under the trigger's budgets.

Why a stage of its own: libpcap's optimizer takes time growing about with the cube of a filter's
terms, and a 4 KB filter took it 16 s (config/bpf_compile.py has the figures). Compiled inside
validation, on the listener thread and then again by the capture job, one such request held every
request behind it for half a minute. So the listener only checks the text (its length,
defaults.MAX_BPF_CHARS, is the size budget) and hands the request here; it is accepted, or
refused with `field: bpf`, from this stage's threads. The program is compiled once per link type
and snaplen of the request's rings, through the process-wide cache (a repeated request compiles
nothing), and each capture job gets its filter ready made.

Two pools, so a flood of long filters never delays an ordinary one: expressions that compile
in-process (up to defaults.BPF_INPROCESS_MAX_CHARS, a few ms at worst) on one thread; longer ones
on TRIGGER_BPF_COMPILE_THREADS, each in a child process that is killed at
TRIGGER_BPF_COMPILE_BUDGET_S (waiting for it holds no GIL, so capture threads never stall). At
most `max_pending` requests wait here; beyond, a request is refused as busy.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable, Mapping

from pushcap import defaults
from pushcap.capture.bpf import BpfError, BpfFilter
from pushcap.capture.ring import Ring
from pushcap.config.bpf_compile import shown_filter
from pushcap.trigger.errors import TriggerError
from pushcap.trigger.message import CaptureRequest

log = logging.getLogger("pushcap.trigger")

Filters = dict[str, BpfFilter]  # interface name -> the request's filter for its ring
_ETHERNET = 1  # for an interface without a ring: the capture itself reports the missing ring


def compile_request_filter(bpf: str, ring: Ring | None) -> BpfFilter:
    """`bpf` for `ring`'s link type and snaplen, under the trigger's budgets; BpfError if not."""
    linktype, snaplen = ((ring.linktype, ring.snaplen) if ring is not None
                         else (_ETHERNET, defaults.MAX_SNAPLEN_BYTES))
    return BpfFilter(bpf, linktype, snaplen, budget_s=defaults.TRIGGER_BPF_COMPILE_BUDGET_S,
                     max_chars=defaults.MAX_BPF_CHARS)


class RequestFilters:
    """Compiles requests' filters on its own threads and calls back with the outcome."""

    def __init__(self, rings: Mapping[str, Ring], max_pending: int) -> None:
        self.rings = rings
        self._pending = threading.BoundedSemaphore(max_pending)
        self._short = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="trigger-bpf")
        self._long = concurrent.futures.ThreadPoolExecutor(
            defaults.TRIGGER_BPF_COMPILE_THREADS, thread_name_prefix="trigger-bpf-long")

    def submit(self, request: CaptureRequest, ready: Callable[[Filters], None],
               refused: Callable[[TriggerError], None]) -> bool:
        """Compile `request.bpf` for each capture, then call `ready(filters)` or
        `refused(error)` on a compile thread; False, calling neither, when `max_pending`
        requests already wait (the caller refuses it as busy)."""
        if not self._pending.acquire(blocking=False):
            return False
        assert request.bpf is not None
        short = len(request.bpf) <= defaults.BPF_INPROCESS_MAX_CHARS
        try:
            (self._short if short else self._long).submit(self._compile, request, ready,
                                                          refused)
        except RuntimeError:  # shut down: the service is stopping
            self._pending.release()
            return False
        return True

    def stop(self) -> None:
        """Forget queued compiles; one running ends by itself within its budget."""
        for pool in (self._short, self._long):
            pool.shutdown(wait=False, cancel_futures=True)

    def _compile(self, request: CaptureRequest, ready: Callable[[Filters], None],
                 refused: Callable[[TriggerError], None]) -> None:
        try:
            try:
                filters = self.compile(request)
            except TriggerError as exc:
                refused(exc)
                return
            ready(filters)
        except Exception:  # noqa: BLE001 - a thread of the pool: log, never die silently
            log.exception("event=trigger_filter_failed requestid=%s", request.request_id)
        finally:
            self._pending.release()

    def compile(self, request: CaptureRequest) -> Filters:
        """The filter of each capture (one compile per link type and snaplen, from the cache
        after that); TriggerError naming `bpf` if it does not compile within the budgets."""
        assert request.bpf is not None
        filters: Filters = {}
        for capture in request.captures:
            try:
                filters[capture.interface] = compile_request_filter(
                    request.bpf, self.rings.get(capture.interface))
            except BpfError as exc:
                raise TriggerError("bpf", f"{shown_filter(request.bpf)} does not compile: {exc}"
                                   ) from None
            except Exception as exc:  # noqa: BLE001 - the publisher is owed an answer
                log.exception("event=trigger_filter_failed requestid=%s", request.request_id)
                raise TriggerError("bpf", f"could not be compiled ({type(exc).__name__}: "
                                   f"{exc})"[:300]) from None
        return filters
