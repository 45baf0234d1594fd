"""Reopening a lost interface: the backoff ends early when the link comes back (issue 17)."""

from __future__ import annotations

import threading

from pushcap.capture.capture_thread import interface_up, wait_for_interface


class Link:
    """A fake interface state: down for the first `down_polls` looks, then up."""

    def __init__(self, down_polls: int, up_at_start: bool = False) -> None:
        self.down_polls = down_polls
        self.up_at_start = up_at_start
        self.looks = 0

    def __call__(self, name: str) -> bool:
        self.looks += 1
        if self.looks == 1:
            return self.up_at_start
        return self.looks > self.down_polls


def test_a_link_that_comes_back_ends_a_long_backoff_at_the_next_look():
    link = Link(down_polls=3)
    stopped = wait_for_interface("veth9", 30.0, threading.Event(), state=link)
    assert stopped is False
    assert link.looks == 4  # back at the 4th look (~0.3 s), not after 30 s (300 looks)


def test_an_interface_up_but_failing_to_open_waits_the_whole_backoff():
    """No change, no early retry: an interface that is up yet cannot be opened (permissions)
    must not be retried in a loop."""
    link = Link(down_polls=0, up_at_start=True)
    assert wait_for_interface("eth0", 0.35, threading.Event(), state=link) is False
    assert link.looks >= 3  # it looked on every poll and did not return at the first


def test_a_stop_ends_the_wait():
    stop = threading.Event()
    stop.set()
    link = Link(down_polls=10**9)
    assert wait_for_interface("veth9", 30.0, stop, state=link) is True
    assert link.looks == 1


def test_interface_up_reads_the_kernel_flags():
    assert interface_up("lo") is True
    assert interface_up("nosuchif0") is False
    assert interface_up("../../etc") is False  # not an interface: no flags file, no crash
