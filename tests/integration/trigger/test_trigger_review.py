"""Requests at the edges, served live from `lo`: pcapdaemon's zeros, lists naming interfaces
this node lacks, hostile numbers and nesting, the exact edges of a timed window (by `duration`
or by `timeout`), and lookbacks the ring cannot serve.

The oracle for a window is the ring itself, read after the capture: every packet of the test's
port stamped inside the window the result reports, and none outside it, must be in the file.
"""

from __future__ import annotations

import threading
import time

import pytest
from engine_harness import batch_at
from oracle import read_pcap
from trigger_harness import (
    NODE,
    UDP_HEADERS,
    base,
    payloads_of,
    ring_payloads,
    send,
)
from waiting import wait_until

from pushcap.capture.ring import Ring

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_zero_limits_mean_the_defaults(harness, udp_port):
    h = harness(write_local=True)
    h.publish(base(udp_port, timeout=0, duration=0, bytes=0, snap=0, packets=3))
    sent = send(udp_port, "zero", 3, size=600)
    [result] = h.wait_results()
    assert (result["status"], result["packets"], result["reason"]) == ("ok", 3, "packets"), result
    assert result["snap"] == h.settings.snap_length  # 0 = [general] snaplength, not 0 bytes
    assert payloads_of(result["path"]) == [p[:h.settings.snap_length - UDP_HEADERS]
                                           for p in sent]


def test_names_this_node_lacks_are_skipped_with_a_note(harness, udp_port):
    h = harness(write_local=True)
    h.publish(base(udp_port, interface=["eth9", "lo"], packets=2, requestid="skip-1"))
    sent = send(udp_port, "skip", 2)
    [result] = h.wait_results()
    assert (result["status"], result["interface"], result["packets"]) == ("ok", "lo", 2), result
    assert result["notes"] == ["interface 'eth9' skipped: not captured on this node "
                               "(known: lo)"]
    assert payloads_of(result["path"]) == sent
    message = base(udp_port, alias=["nosuch", "local"], timeout=0.3)
    del message["interface"]
    h.publish(message)
    [result] = h.wait_results()
    assert (result["status"], result["alias"]) == ("empty", "local")
    assert result["notes"] == ["alias 'nosuch' skipped: not an alias on this node "
                               "(known: both, local)"]
    h.publish(base(udp_port, interface=["eth8", "eth9"]))
    [result] = h.wait_results()
    assert (result["status"], result["field"]) == ("rejected", "interface")


HOSTILE = [
    (f'{{"node": "{NODE}", "interface": "lo", "timeout": 1{"0" * 400}}}', "timeout"),
    (f'{{"node": "{NODE}", "interface": "lo", "duration": 1e400}}', "duration"),
    (f'{{"node": "{NODE}", "interface": "lo", "before": -1{"0" * 400}}}', "before"),
    (f'{{"node": "{NODE}", "interface": "lo", "start": 1{"0" * 400}}}', "start"),
    (f'{{"node": "{NODE}", "interface": "lo", "end": Infinity}}', "end"),
    (f'{{"node": "{NODE}", "interface": "lo", "bytes": 1{"0" * 400}}}', "bytes"),
    (f'{{"node": "{NODE}", "interface": "lo", "alertid": 1e400}}', "alertid"),
    ("[" * 60000, "message"),
    (f'{{"requestid": "deep-1", "node": "{NODE}", "tags": {"[" * 20000}', "message"),
]


def test_hostile_numbers_and_nesting_are_rejected_and_the_service_goes_on(harness):
    h = harness()
    for data, field in HOSTILE:
        h.publish(data)
        [result] = h.wait_results(timeout_s=5)
        assert (result["status"], result["field"]) == ("rejected", field), (data[:80], result)
        assert result["error"].startswith(f"{field}: ") and len(result["error"]) < 300
    assert h.service.listener.connected.is_set()
    h.publish({"node": NODE, "interface": "lo", "bpf": "udp and port 9", "timeout": 0.2,
               "requestid": "after-hostile"})
    [result] = h.wait_results()
    assert (result["status"], result["requestid"]) == ("empty", "after-hostile")
    assert h.service.stats()["rejected"] == len(HOSTILE)


@pytest.mark.parametrize("fields, reason", [({"duration": 1, "timeout": 5}, "duration"),
                                            ({"timeout": 1}, "timeout")])
def test_timed_window_holds_exactly_the_packets_stamped_inside_it(harness, engine, udp_port,
                                                                  fields, reason):
    """The last packets of the window reach the ring after its end (libpcap's poll timeout, the
    engine's coalescing): they belong to it; those stamped after it do not. `timeout`, like
    `duration`, ends the window 1 s after the request on a link that never pauses."""
    h = harness(write_local=True)
    stop = threading.Event()

    def stream() -> None:
        sent = 0
        while not stop.is_set():
            send(udp_port, f"edge{sent:05d}", 1)
            sent += 1
            time.sleep(0.002)  # paced: a steady stream that never pauses

    h.publish(base(udp_port, **fields))
    sender = threading.Thread(target=stream)
    sender.start()
    try:
        [result] = h.wait_results()
        start_ns, end_ns = result["window_start_ns"], result["window_end_ns"]
        # The stream goes on past the window: once datagrams stamped after its end are in the
        # ring, so is every one stamped inside it (lo delivers them in order).
        wait_until(lambda: ring_payloads(engine.rings["lo"], udp_port, start_ns, end_ns)[1]
                   >= 20, 10, "20 datagrams stamped after the window in the ring")
    finally:
        stop.set()
        sender.join()
    assert (result["status"], result["reason"]) == ("ok", reason), result
    assert end_ns - start_ns == 10**9
    capture = read_pcap(result["path"])
    assert all(start_ns <= ts < end_ns for ts, *_ in capture.packets)
    expected, after = ring_payloads(engine.rings["lo"], udp_port, start_ns, end_ns)
    assert after > 0 and len(expected) > 100
    got = payloads_of(result["path"])
    assert got == expected, f"{len(expected) - len(got)} packets of the window missing"


def test_before_beyond_the_ring_is_capped_and_said(harness, engine, udp_port, caplog):
    h = harness()
    keep_s = engine.config.ring.max_seconds
    h.publish(base(udp_port, before=keep_s * 2, timeout=0.3, requestid="cap-1"))
    [result] = h.wait_results()
    assert (result["status"], result["before_s"]) == ("empty", keep_s), result
    assert result["notes"] == [f"before {keep_s * 2:g} s capped to {keep_s:g} s: the ring "
                               "keeps no more ([ring] max_seconds)"]
    assert result["window_end_ns"] - result["window_start_ns"] >= keep_s * 1e9
    assert "event=trigger_note requestid=cap-1" in caplog.text
    h.publish(base(udp_port, before=1, timeout=0.3))
    [result] = h.wait_results()
    assert result["before_s"] == 1 and "notes" not in result


def test_lookback_past_a_full_ring_is_said_in_the_result_and_the_log(harness, caplog):
    """A ring whose `max_bytes` gave out before its `max_seconds` holds less than `before`
    asks for: the result's notes and the log say from when it had packets."""
    now_ns = time.time_ns()
    max_bytes = 10 * batch_at([0] * 10).memory_bytes
    ring = Ring("lo", 1, 262144, max_seconds=30, max_bytes=max_bytes)
    for second in range(20, 0, -1):
        ring.append(batch_at([now_ns - second * 10**9 + i * 1000 for i in range(10)]))
    h = harness(rings={"lo": ring}, write_local=True)
    h.publish({"node": NODE, "interface": "lo", "before": 15, "timeout": 0.2,
               "requestid": "full-1"})
    [result] = h.wait_results()
    assert (result["status"], result["packets"], result["before_s"]) == ("ok", 100, 15), result
    [note] = result["notes"]
    assert note.startswith("lookback short: the window starts 15 s before the request but the "
                           "ring held packets only from 10.")
    assert note.endswith(f"it was full ([ring] max_bytes {max_bytes} before max_seconds 30 s) "
                         "and had dropped older ones")
    assert "event=trigger_note requestid=full-1 interface=lo note='lookback short" in caplog.text
    h.publish({"node": NODE, "interface": "lo", "before": 5, "timeout": 0.2})
    [result] = h.wait_results()
    assert "notes" not in result
