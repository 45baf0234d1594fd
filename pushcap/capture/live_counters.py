"""libpcap's counters of one live handle, read so that a failed capture loses nothing unsaid
(live.py).

libpcap's counters are kept by the kernel for the socket, so they survive the interface: what
the kernel put in libpcap's buffer, less what was handed over in batches, is what a failure left
unread. Only the interface's own drop count does not survive it (see `stats`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pcapy

from pushcap.capture.native_live import LiveReadError

_IFF_LOOPBACK = 0x8  # <linux/if.h>
_U32 = 1 << 32  # libpcap's counters are u_int: they wrap


class LiveCounters:
    """The counters of the handle on `interface` that `read_stats` reads (the reader's
    `stats`), counted from when this was made: the handle was just opened."""

    def __init__(self, interface: str, read_stats: Callable[[], tuple[int, int, int]]) -> None:
        self._interface = interface
        self._read_stats = read_stats
        self._loopback = _is_loopback(interface)
        self._if_drops = 0  # the last interface drop count read while the interface existed
        # Packets that reached the socket while libpcap set it up went to its plain receive
        # queue, which libpcap never reads: counted by the kernel, never delivered (see unread).
        self._counted_at_open = self._taken_in() or 0

    def stats(self) -> tuple[int, int, int]:
        """(received, dropped by the kernel, dropped by the interface) as libpcap reports them.

        libpcap reads the interface's drops from /proc/net/dev and adds the change since its
        last reading; once the interface is gone it reads 0 there and its count turns into
        garbage (an unsigned wrap), so then the last count read while it existed stands."""
        received, dropped, if_dropped = self._read_stats()
        if Path(f"/sys/class/net/{self._interface}").exists():
            self._if_drops = if_dropped
        return received, dropped, self._if_drops

    def unread(self, packets_read: int) -> int | None:
        """Packets the kernel put in libpcap's buffer that were never handed over in a batch
        (received minus kernel drops minus `packets_read`), counted from when the handle was
        opened (a packet that reached the ring while it opened hides one lost packet at most).
        None where the counters cannot tell: a loopback interface counts every packet twice
        (libpcap skips the outgoing copy), and a closed handle has none."""
        if self._loopback:
            return None
        taken_in = self._taken_in()
        if taken_in is None:
            return None
        unread = (taken_in - self._counted_at_open - packets_read) % _U32
        return unread if unread < _U32 // 2 else 0  # "below zero": nothing unread

    def _taken_in(self) -> int | None:
        """What the kernel put in libpcap's buffer so far (received minus dropped), or None."""
        try:
            received, dropped, _ = self.stats()
        except (pcapy.PcapError, ValueError, LiveReadError):
            return None
        return (received - dropped) % _U32


def _is_loopback(interface: str) -> bool:
    try:
        return bool(int(Path(f"/sys/class/net/{interface}/flags").read_text(), 16)
                    & _IFF_LOOPBACK)
    except (OSError, ValueError):
        return False
