"""Host names must never hold records back: a slow, failing or full resolver only costs names."""

from __future__ import annotations

import socket
import struct
import threading

import numpy as np
import pytest
from flows_harness import NS, flows_config
from waiting import wait_until

from pushcap.capture.batch import Batch, build_records
from pushcap.flows.resolve import NO_DNS, Resolver
from pushcap.flows.target import FlowTarget

pytestmark = pytest.mark.integration


# --- host names ------------------------------------------------------------------------------
def udp_batch(ts_ns: int, pairs: list[tuple[str, str]], payload: int = 100) -> Batch:
    """Ethernet/IPv4/UDP frames from src to dst (port 1000 -> 2000), all at ts_ns."""
    frames = []
    for src, dst in pairs:
        udp = struct.pack("!HHHH", 1000, 2000, 8 + payload, 0) + b"p" * payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
        frames.append(b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + udp)
    caplen = [len(f) for f in frames]
    offsets = np.cumsum([0, *caplen[:-1]]).astype(np.int64)
    cap = np.array(caplen, dtype=np.int64)
    ts = np.full(len(frames), ts_ns, dtype=np.int64)
    records, rec_offsets = build_records(ts, cap, cap, b"".join(frames), offsets)
    return Batch(records, rec_offsets, ts, cap, cap.copy(), 1, 65535)


def test_slow_resolver_never_delays_records_and_names_follow(collector):
    # The resolver answers only when the test lets it: records that reach the collector while
    # every lookup is still held were sent without waiting for a name.
    release = threading.Event()
    asked: list[str] = []

    def slow_lookup(ip: str) -> str:
        asked.append(ip)
        assert release.wait(30), "the test never released the resolver"
        return f"host-{ip.replace('.', '-')}.example"

    resolver = Resolver(lookup=slow_lookup, workers=4, timeout_s=60.0)
    target = FlowTarget(flows_config(collector.url, 1.0), "test", 1, 65535, resolver)
    pairs = [("10.0.0.1", "10.0.0.2"), ("10.0.0.3", "10.0.0.4")]
    t0 = 1_700_000_000 * NS
    target.consume(udp_batch(t0, pairs))
    target.consume(udp_batch(t0 + NS, pairs))  # ends the first interval: its records go out
    wait_until(lambda: len(collector.records()) >= 2, 10,
               "the first interval's 2 records at the collector")
    first = collector.records()
    assert not release.is_set() and resolver.cached() == 0, "sending waited for the resolver"
    assert resolver.stats.resolved == resolver.stats.failed == 0
    assert [(r["source_HOST"], r["target_HOST"]) for r in first] == pairs
    release.set()
    wait_until(lambda: resolver.cached() == 4, 10, "4 names resolved and cached")
    assert sorted(asked) == sorted(ip for pair in pairs for ip in pair)
    target.close()
    records = collector.wait_for(lambda r: len(r) >= 4, 3)
    assert [r["source_HOST"] for r in records[2:]] == ["host-10-0-0-1.example",
                                                       "host-10-0-0-3.example"]
    assert records[2]["target_HOST"] == "host-10-0-0-2.example"
    resolver.close()


def test_failing_and_timed_out_lookups_leave_the_ip(collector):
    def failing(ip: str) -> str:
        raise OSError("resolver down")

    resolver = Resolver(lookup=failing)
    target = FlowTarget(flows_config(collector.url, 1.0), "test", 1, 65535, resolver)
    target.consume(udp_batch(1_700_000_000 * NS, [("10.1.0.1", "10.1.0.2")]))
    target.close()  # names are looked up when an interval's records are made
    records = collector.wait_for(bool, 3)
    assert records[0]["source_HOST"] == "10.1.0.1"
    wait_until(lambda: resolver.stats.failed >= 2, 10, "both lookups to fail")
    assert resolver.stats.failed == 2 and resolver.name("10.1.0.1") == "10.1.0.1"
    resolver.close()

    stuck = threading.Event()
    hung: list[str] = []

    def hang(ip: str) -> str | None:
        hung.append(ip)
        return stuck.wait(30) and "late.example"

    hanging = Resolver(lookup=hang, timeout_s=0.2, workers=1, max_pending=2)
    assert hanging.name("10.2.0.1") == "10.2.0.1"
    assert [hanging.name(f"10.2.0.{i}") for i in range(2, 6)] == [f"10.2.0.{i}"
                                                                  for i in range(2, 6)]
    assert hanging.stats.skipped == 3, "the pending queue is bounded"
    wait_until(lambda: hung, 10, "the worker to ask the first address")
    assert hanging.stats.timed_out == 0
    # Once its 0.2 s are up, asking again gives up on the stuck lookup (and counts it).
    wait_until(lambda: hanging.name("10.2.0.1") == "10.2.0.1" and hanging.stats.timed_out == 1,
               10, "the stuck lookup to time out")
    assert hung == ["10.2.0.1"]
    stuck.set()
    # The one worker has dealt with the late answer once it asks the next address.
    wait_until(lambda: len(hung) >= 2, 10, "the worker to move past the late answer")
    assert hanging.name("10.2.0.1") == "10.2.0.1", "a late answer is ignored"
    hanging.close()


def test_a_full_queue_makes_room_by_giving_up_on_expired_lookups():
    """Lookups past their deadline leave the full queue (oldest first, which is deadline
    order: the scan stops at the first one still in time)."""
    stuck = threading.Event()
    resolver = Resolver(lookup=lambda ip: stuck.wait(30) and None, timeout_s=0.0, workers=1,
                        max_pending=2)
    for i in (1, 2, 3):  # a deadline of "now" is past by the next call
        assert resolver.name(f"10.4.0.{i}") == f"10.4.0.{i}"
    assert (resolver.stats.timed_out, resolver.stats.skipped) == (2, 0)
    patient = Resolver(lookup=lambda ip: stuck.wait(30) and None, timeout_s=60.0, workers=1,
                       max_pending=2)
    for i in (1, 2, 3):
        patient.name(f"10.5.0.{i}")
    assert (patient.stats.timed_out, patient.stats.skipped) == (0, 1)
    stuck.set()
    resolver.close()
    patient.close()


def test_resolver_cache_is_bounded_and_switchable():
    resolver = Resolver(lookup=lambda ip: f"n{ip}", max_entries=3)

    def settle(resolved: int) -> None:
        wait_until(lambda: resolver.stats.resolved >= resolved, 10, f"{resolved} lookups")

    for i in range(10):
        assert resolver.name(f"10.3.0.{i}") == f"10.3.0.{i}"
    settle(10)
    assert resolver.stats.resolved == 10 and resolver.cached() == 3
    resolver.name("10.3.1.1")
    settle(11)
    assert resolver.name("10.3.1.1") == "n10.3.1.1" and resolver.cached() == 3
    resolver.close()
    assert NO_DNS.name("10.3.0.9") == "10.3.0.9"
