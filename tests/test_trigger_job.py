"""A capture job reads what reached the ring between the request and the job's start, and its
window is decided by packet timestamps, not by when a batch reached the ring."""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import pytest
from engine_harness import batch_at

from pushcap.capture.ring import Ring
from pushcap.config.model import InterfaceConfig
from pushcap.config.pcapdaemon import TriggerSettings
from pushcap.trigger.job import CaptureJob
from pushcap.trigger.message import parse_request

SETTINGS = TriggerSettings(node_name="n1", max_packets=1000, max_bytes=10_000_000,
                           max_timeout_s=120, max_duration_s=600, default_timeout_s=30,
                           snap_length=512)


def test_queued_request_gets_packets_that_arrived_before_the_job_started():
    ring = Ring("eth0", 1, 262144, max_seconds=60, max_bytes=1 << 30)
    received_ns = time.time_ns()
    ring.append(batch_at([received_ns - 5 * 10**9]))  # before the request: not wanted
    ring.append(batch_at([received_ns + i * 1000 for i in range(1, 16)]))  # while queued
    message = json.dumps({"node": "n1", "interface": "eth0", "packets": 15, "timeout": 1})
    request = parse_request(message, SETTINGS, (InterfaceConfig("eth0"),), None, received_ns)
    outcome = CaptureJob(request, "eth0", None, ring).run()
    assert outcome.packets == 15 and outcome.reason != "timeout"


def request_for(received_ns: int, **fields):
    message = json.dumps({"node": "n1", "interface": "eth0", **fields})
    return parse_request(message, SETTINGS, (InterfaceConfig("eth0"),), None, received_ns)


def test_packets_stamped_in_the_window_but_late_to_the_ring_are_kept():
    """libpcap and the engine's coalescing hand packets to the ring after their timestamp: the
    last ones of a `duration` window reach it after the deadline and must still be taken."""
    ring = Ring("eth0", 1, 262144, max_seconds=60, max_bytes=1 << 30)
    received_ns = time.time_ns()
    request = request_for(received_ns, duration=0.3, timeout=5, packets=100)
    deadline_ns = received_ns + 300_000_000

    def late_delivery() -> None:
        time.sleep(max(0.0, (deadline_ns - time.time_ns()) / 1e9) + 0.05)
        ring.append(batch_at([deadline_ns - 10_000_000, deadline_ns - 1, deadline_ns,
                              deadline_ns + 10_000_000]))

    thread = threading.Thread(target=late_delivery)
    thread.start()
    outcome = CaptureJob(request, "eth0", None, ring, late_s=0.2).run()
    thread.join()
    assert (outcome.packets, outcome.reason) == (2, "duration")  # [received, deadline) only
    assert outcome.last_ts_ns == deadline_ns - 1
    assert (outcome.window_start_ns, outcome.window_end_ns) == (received_ns, deadline_ns)
    assert time.time_ns() - deadline_ns < 0.6e9  # read on for late_s, not longer


def test_a_match_stamped_inside_the_timeout_but_late_to_the_ring_is_kept():
    """`timeout` ends the window at the live start + timeout, as pcapdaemon's does: a match
    stamped just before that reaches the ring after it and is kept; one stamped after it is not,
    although it came within `timeout` of the match before (matches do not extend a timeout)."""
    ring = Ring("eth0", 1, 262144, max_seconds=60, max_bytes=1 << 30)
    received_ns = time.time_ns()
    request = request_for(received_ns, timeout=0.3, packets=100)
    timeout_end_ns = received_ns + 300_000_000
    after_ns = timeout_end_ns + 50_000_000

    def late_delivery() -> None:
        time.sleep(max(0.0, (timeout_end_ns - time.time_ns()) / 1e9) + 0.05)
        ring.append(batch_at([timeout_end_ns - 1]))
        time.sleep(max(0.0, (after_ns - time.time_ns()) / 1e9) + 0.02)
        ring.append(batch_at([after_ns]))

    thread = threading.Thread(target=late_delivery)
    thread.start()
    outcome = CaptureJob(request, "eth0", None, ring, late_s=0.2).run()
    ended_ns = time.time_ns()
    thread.join()
    assert (outcome.packets, outcome.reason) == (1, "timeout")
    assert outcome.last_ts_ns == timeout_end_ns - 1
    assert (outcome.window_start_ns, outcome.window_end_ns) == (received_ns, timeout_end_ns)
    assert 0.15e9 <= ended_ns - timeout_end_ns < 0.5e9  # read on for late_s, no longer


def backlog(received_ns: int, seconds: float) -> Ring:
    """A ring holding a busy link's matches every 0.1 s from the request on (stamped 0.05 s,
    0.15 s, ... after it): no gap a timeout could ever see."""
    ring = Ring("eth0", 1, 262144, max_seconds=60, max_bytes=1 << 30)
    for i in range(int(seconds * 10)):
        ring.append(batch_at([received_ns + 50_000_000 + i * 100_000_000]))
    return ring


def test_timeout_cuts_a_busy_backlog_at_the_live_start_plus_timeout():
    """A queued job reads at once what came while it waited: matches every 0.1 s never leave a
    gap, yet `timeout` 1 ends the window 1 s after the request, by the packets' stamps."""
    received_ns = time.time_ns() - 4 * 10**9
    ring = backlog(received_ns, 3.5)
    started = time.monotonic()
    outcome = CaptureJob(request_for(received_ns, timeout=1, packets=100), "eth0", None, ring,
                         late_s=0.2).run()
    assert (outcome.packets, outcome.reason) == (10, "timeout")
    assert (outcome.window_start_ns, outcome.window_end_ns) == (received_ns,
                                                                received_ns + 10**9)
    assert outcome.last_ts_ns == received_ns + 950_000_000
    assert time.monotonic() - started < 0.1


def test_duration_without_timeout_is_not_cut_by_the_default_timeout():
    """A request that says how long (`duration` 3) has no timeout: the node's defaulttimeout
    (0.5 s here) would end it at the first quiet half second, the request asked for 3 s."""
    settings = dataclasses.replace(SETTINGS, default_timeout_s=0.5)
    ring = Ring("eth0", 1, 262144, max_seconds=60, max_bytes=1 << 30)
    received_ns = time.time_ns()
    message = json.dumps({"node": "n1", "interface": "eth0", "duration": 3})
    request = parse_request(message, settings, (InterfaceConfig("eth0"),), None, received_ns)

    def traffic() -> None:
        for at_s in (0.2, 2.5):  # 2.3 s of silence between them
            time.sleep(max(0.0, (received_ns + at_s * 1e9 - time.time_ns()) / 1e9))
            ring.append(batch_at([time.time_ns()]))

    thread = threading.Thread(target=traffic)
    thread.start()
    outcome = CaptureJob(request, "eth0", None, ring, late_s=0.2).run()
    ended_ns = time.time_ns()
    thread.join()
    assert (outcome.packets, outcome.reason) == (2, "duration")
    assert outcome.window_end_ns == received_ns + 3 * 10**9
    assert 3e9 <= ended_ns - received_ns < 3.6e9


@pytest.mark.parametrize("fields, reason", [
    ({"end_after_s": 3}, "window"),
    ({"duration": 3, "timeout": 0}, "duration"),  # 0 is pcapdaemon's "not given"
])
def test_end_or_duration_without_timeout_ignore_a_shorter_default(fields, reason):
    """As the test above, served from the ring: 1.3 s without a match, more than the 0.5 s
    default timeout, does not end a window the request bounded by `end` or `duration`."""
    settings = dataclasses.replace(SETTINGS, default_timeout_s=0.5)
    received_ns = time.time_ns() - 5 * 10**9
    ring = Ring("eth0", 1, 262144, max_seconds=60, max_bytes=1 << 30)
    for at_s in (0.2, 1.5, 2.9, 3.1):
        ring.append(batch_at([received_ns + int(at_s * 1e9)]))
    fields = dict(fields)
    if "end_after_s" in fields:
        fields["end"] = (received_ns + fields.pop("end_after_s") * 10**9) / 1e9
    message = json.dumps({"node": "n1", "interface": "eth0", **fields})
    request = parse_request(message, settings, (InterfaceConfig("eth0"),), None, received_ns)
    outcome = CaptureJob(request, "eth0", None, ring, late_s=0.2).run()
    assert (outcome.packets, outcome.reason) == (3, reason)


@pytest.mark.parametrize("fields, end_s, reason", [
    ({"timeout": 1, "duration": 2}, 1, "timeout"),
    ({"timeout": 2, "duration": 1}, 1, "duration"),
    ({"timeout": 1, "duration": 1}, 1, "duration"),  # a tie is named by the request's duration
    ({"timeout": 1, "end_after_s": 2}, 1, "timeout"),
    ({"timeout": 3, "end_after_s": 1.5}, 1.5, "window"),
    ({"timeout": 1, "start_after_s": 1}, 2, "timeout"),  # from a start that lies ahead
])
def test_the_earlier_of_timeout_and_duration_or_end_ends_the_window(fields, end_s, reason):
    """Both bound the live part (pcapdaemon's "N packets or T seconds, whichever first"): the
    earlier end wins and the reason says which, on a busy link whose matches never pause."""
    received_ns = time.time_ns() - 5 * 10**9
    ring = backlog(received_ns, 4.5)
    fields = dict(fields)
    for key in ("end", "start"):
        if f"{key}_after_s" in fields:
            fields[key] = (received_ns + fields.pop(f"{key}_after_s") * 10**9) / 1e9
    outcome = CaptureJob(request_for(received_ns, packets=1000, **fields), "eth0", None, ring,
                         late_s=0.2).run()
    end_ns = outcome.window_end_ns
    assert outcome.reason == reason
    assert abs(end_ns - (received_ns + end_s * 1e9)) < 1000  # `start`/`end` are float seconds
    assert outcome.last_ts_ns < end_ns <= outcome.last_ts_ns + 100_000_000
    assert outcome.packets == round((end_ns - outcome.window_start_ns) / 1e8)


def test_duration_after_a_past_start_counts_from_the_request():
    """The documented reading (message.py, job.py): a past `start` reaches back like `before`;
    `duration` bounds the live part, from the request (pcapdaemon has no `start`)."""
    ring = Ring("eth0", 1, 262144, max_seconds=60, max_bytes=1 << 30)
    received_ns = time.time_ns() - 5 * 10**9
    start_s = (received_ns - 3 * 10**9) / 1e9
    ring.append(batch_at([received_ns - 2 * 10**9, received_ns + 10**9, received_ns + 3 * 10**9]))
    outcome = CaptureJob(request_for(received_ns, start=start_s, duration=2, timeout=30), "eth0",
                         None, ring, late_s=0.2).run()
    assert (outcome.window_start_ns, outcome.window_end_ns) == (int(start_s * 1e9),
                                                                received_ns + 2 * 10**9)
    assert (outcome.packets, outcome.reason) == (2, "duration")


def test_duration_bounds_a_queued_capture_by_timestamp():
    """A job that starts after its window ended serves it from the ring: only packets stamped
    before request + duration belong to it, and it ends at once."""
    ring = Ring("eth0", 1, 262144, max_seconds=60, max_bytes=1 << 30)
    received_ns = time.time_ns() - 3 * 10**9
    ring.append(batch_at([received_ns + 500_000_000, received_ns + 999_999_999]))
    ring.append(batch_at([received_ns + 10**9, received_ns + 1_500_000_000]))
    request = request_for(received_ns, duration=1, timeout=5, packets=100)
    started = time.monotonic()
    outcome = CaptureJob(request, "eth0", None, ring, late_s=0.2).run()
    assert (outcome.packets, outcome.reason) == (2, "duration")
    assert outcome.last_ts_ns == received_ns + 999_999_999
    assert time.monotonic() - started < 0.1


def test_before_beyond_what_the_ring_keeps_is_capped_with_a_note():
    ring = Ring("eth0", 1, 262144, max_seconds=10, max_bytes=1 << 30)
    received_ns = time.time_ns()
    ring.append(batch_at([received_ns - 9 * 10**9, received_ns + 1000]))
    outcome = CaptureJob(request_for(received_ns, before=30, timeout=0.2), "eth0", None,
                         ring).run()
    assert outcome.packets == 2 and outcome.before_s == 10
    assert outcome.window_start_ns == received_ns - 10 * 10**9
    assert outcome.notes == ["before 30 s capped to 10 s: the ring keeps no more "
                             "([ring] max_seconds)"]
    outcome = CaptureJob(request_for(received_ns, before=5, timeout=0.2), "eth0", None,
                         ring).run()
    assert (outcome.packets, outcome.before_s, outcome.notes) == (1, 5, [])
    start_s = (received_ns - 20 * 10**9) / 1e9
    outcome = CaptureJob(request_for(received_ns, start=start_s, timeout=0.2), "eth0", None,
                         ring).run()
    assert outcome.window_start_ns == received_ns - 10 * 10**9
    assert len(outcome.notes) == 1 and "the ring keeps 10 s" in outcome.notes[0]


def ring_full_of(received_ns: int, max_bytes: int) -> Ring:
    """A ring whose `max_bytes` gives out before its 60 s: 20 one-second batches of 10 packets
    from 20 s before the request, of which it can hold only the last ones."""
    ring = Ring("eth0", 1, 262144, max_seconds=60, max_bytes=max_bytes)
    for second in range(20, 0, -1):
        ring.append(batch_at([received_ns - second * 10**9 + i * 1000 for i in range(10)]))
    return ring


def test_lookback_past_what_a_full_ring_holds_is_noted():
    per_batch = batch_at([0] * 10).memory_bytes
    received_ns = time.time_ns()
    ring = ring_full_of(received_ns, 10 * per_batch)
    assert ring.evicted_packets == 100
    outcome = CaptureJob(request_for(received_ns, before=15, timeout=0.2), "eth0", None,
                         ring).run()
    assert (outcome.packets, outcome.before_s) == (100, 15)
    assert outcome.notes == [
        "lookback short: the window starts 15 s before the request but the ring held packets "
        f"only from 10 s before the request; it was full ([ring] max_bytes {10 * per_batch} before "
        "max_seconds 60 s) and had dropped older ones"]
    start_s = (received_ns - 12 * 10**9) / 1e9
    outcome = CaptureJob(request_for(received_ns, start=start_s, timeout=0.2), "eth0", None,
                         ring).run()
    assert len(outcome.notes) == 1 and "starts 12 s before the request" in outcome.notes[0]
    # Within what the ring holds: nothing to say.
    outcome = CaptureJob(request_for(received_ns, before=10, timeout=0.2), "eth0", None,
                         ring).run()
    assert (outcome.packets, outcome.notes) == (100, [])


def test_a_quiet_link_before_the_oldest_packet_is_not_a_short_lookback():
    """Age eviction on a quiet link also leaves the oldest packet newer than the window start,
    but nothing the window asks for was dropped: no note."""
    ring = Ring("eth0", 1, 262144, max_seconds=10, max_bytes=1 << 30)
    received_ns = time.time_ns()
    ring.append(batch_at([received_ns - 30 * 10**9]))
    ring.append(batch_at([received_ns - 5 * 10**9]))
    assert ring.evicted_packets == 1
    outcome = CaptureJob(request_for(received_ns, before=8, timeout=0.2), "eth0", None,
                         ring).run()
    assert (outcome.packets, outcome.notes) == (1, [])


def test_deeply_nested_json_is_a_clear_rejection():
    from pushcap.trigger.message import TriggerError

    try:
        parse_request("[" * 60000, SETTINGS, (InterfaceConfig("eth0"),), None)
    except TriggerError as exc:
        assert exc.field == "message"
    else:
        raise AssertionError("accepted a pathological message")


def test_failed_local_write_falls_back_instead_of_losing_the_capture(tmp_path):
    from pushcap.trigger.delivery import Deliverer

    blocked = tmp_path / "destdir"  # a file where the folder should be (root ignores modes)
    blocked.write_text("not a folder")
    settings = dataclasses.replace(SETTINGS, write_local=True, local_dir=blocked,
                                   fallback_dir=tmp_path / "fallback")
    ring = Ring("eth0", 1, 262144, max_seconds=60, max_bytes=1 << 30)
    received_ns = time.time_ns()
    ring.append(batch_at([received_ns + 1000]))
    message = json.dumps({"node": "n1", "interface": "eth0", "packets": 1})
    request = parse_request(message, settings, (InterfaceConfig("eth0"),), None, received_ns)
    outcome = CaptureJob(request, "eth0", None, ring).run()
    delivery = Deliverer(settings, None).deliver(request, outcome)
    assert delivery.fallback and delivery.local_error
    saved = list((tmp_path / "fallback").iterdir())
    assert len(saved) == 1 and saved[0].read_bytes() == outcome.pcap
