"""Triggered captures end to end: Redis request in, live `lo` traffic from the ring, CloudShark out.

Known UDP datagrams go to a test port on loopback; the request's BPF selects that port, so the
capture must hold exactly those datagrams (the oracle is what the test sent), cut where the
request's caps say.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from oracle import capinfos_ok, read_pcap
from trigger_harness import (
    NODE,
    TOKEN,
    UDP_HEADERS,
    Harness,
    RedisServer,
    base,
    payloads_of,
    ring_datagrams,
    ring_payloads,
    send,
)
from waiting import wait_until

from pushcap.config.model import InterfaceConfig

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

def test_seed_example_message_uploads_exactly_the_packets_sent(harness, cloudshark, udp_port):
    h = harness(cloudshark=cloudshark)
    seed = {"node": NODE, "interface": ["lo"], "tags": "blah,tagme,stuff",
            "bpf": f"udp and dst port {udp_port}", "customer": "importantcustomer",
            "snap": 1500, "packets": 50, "alertid": 655443, "timeout": 15}
    h.publish(seed)  # returns once the service has it: what is sent next is after the request
    send(udp_port + 1 if udp_port < 65535 else udp_port - 1, "other", 20)  # not selected
    sent = send(udp_port, "seed", 80)
    [result] = h.wait_results()
    assert result["status"] == "ok", result
    assert (result["packets"], result["reason"], result["interface"]) == (50, "packets", "lo")
    assert result["alertid"] == 655443 and result["node"] == NODE
    [upload] = cloudshark.uploads
    assert result["cloudshark_id"] == upload["id"]
    assert result["cloudshark_url"] == f"http://127.0.0.1:{cloudshark.port}/captures/{upload['id']}"
    assert payloads_of(upload["path"]) == sent[:50]
    # pcapdaemon's tags: customer, alertid, the message's own tags, then node, interface, snap.
    assert upload["additional_tags"] == ("customer:importantcustomer,alertid:655443,"
                                         "blah,tagme,stuff,node:trigger-test-node,"
                                         "interface:lo,snaplength:1500")
    assert upload["filename"].startswith(f"{NODE}-lo-") and upload["filename"].endswith(".pcap")
    assert upload["form_filename"] == upload["filename"]
    header = read_pcap(upload["path"])
    assert header.linktype == 1 and header.snaplen == 1500 and header.nano
    assert capinfos_ok(upload["path"]) == 50


def test_timeout_ends_a_busy_capture_timeout_after_the_request(harness, engine, cloudshark,
                                                               udp_port):
    """pcapdaemon's `timeout` ("seconds to let capture last should the number of packets not get
    hit"): matches every 50 ms never leave a quiet second, yet `timeout` 1 ends the capture 1 s
    after the request, holding exactly the matches stamped in that second."""
    h = harness(cloudshark=cloudshark)
    stop = threading.Event()

    def stream() -> None:
        deadline = time.monotonic() + 5  # bounded, should the capture never end
        sent = 0
        while not stop.is_set() and time.monotonic() < deadline:
            send(udp_port, f"busy{sent:05d}", 1)
            sent += 1
            time.sleep(0.05)  # paced: a match every 50 ms, never a quiet second

    ring = engine.rings["lo"]
    sender = threading.Thread(target=stream)
    sender.start()
    try:
        # the link is busy before the request and stays busy after it
        wait_until(lambda: len(ring_datagrams(ring, udp_port)) >= 3, 10,
                   "the stream's first datagrams in the ring")
        sent_at_ns = time.time_ns()
        h.publish(base(udp_port, timeout=1, packets=1000))
        [result] = h.wait_results()
        result_at_ns = time.time_ns()
        start_ns, end_ns = result["window_start_ns"], result["window_end_ns"]
        wait_until(lambda: ring_payloads(ring, udp_port, start_ns, end_ns)[1] > 0, 10,
                   "a datagram stamped after the window in the ring")
    finally:
        stop.set()
        sender.join()
    assert (result["status"], result["reason"]) == ("ok", "timeout"), result
    assert end_ns - start_ns == 10**9
    # The window starts at the request and the result waits for its end (no earlier).
    assert sent_at_ns <= start_ns and end_ns <= result_at_ns, (sent_at_ns, result)
    expected, after = ring_payloads(ring, udp_port, start_ns, end_ns)
    assert after > 0 and 10 <= len(expected) <= 21
    assert payloads_of(cloudshark.uploads[0]["path"]) == expected


def test_lookback_includes_traffic_from_before_the_request(harness, cloudshark, udp_port):
    h = harness(cloudshark=cloudshark)
    early = send(udp_port, "early", 10)
    time.sleep(5)  # deliberate: the datagrams are 5 s old at the request, only `before` reaches
    h.publish(base(udp_port, before=8, packets=10))
    [result] = h.wait_results()
    assert (result["status"], result["packets"], result["reason"]) == ("ok", 10, "packets")
    assert payloads_of(cloudshark.uploads[0]["path"]) == early
    # Without `before` the same packets are not part of the capture.
    h.publish(base(udp_port, timeout=0.5))
    [result] = h.wait_results()
    assert (result["status"], result["packets"]) == ("empty", 0)


def test_window_in_the_past_returns_at_once(harness, udp_port, tmp_path):
    h = harness(write_local=True)
    start = time.time()
    sent = send(udp_port, "window", 5)
    time.sleep(1.2)  # deliberate: the whole window [start - 0.05, start + 1) is in the past
    h.publish(base(udp_port, start=start - 0.05, end=start + 1.0, timeout=30))
    # Well before its 30 s timeout: the capture does not wait for traffic that cannot come.
    [result] = h.wait_results(timeout_s=15)
    assert (result["status"], result["reason"], result["packets"]) == ("ok", "window", 5)
    assert payloads_of(result["path"]) == sent
    assert Path(result["path"]).parent == tmp_path


def test_node_any_and_nodere_select_this_node(harness):
    h = harness()
    lo_quiet = {"interface": "lo", "bpf": "udp and port 9", "timeout": 0.3}
    h.publish({"node": "some-other-node", **lo_quiet})
    h.publish({"nodere": "^nomatch", **lo_quiet})
    assert h.wait_results(timeout_s=1.0) == []
    for selector in ({"node": NODE}, {"node": "any"}, {"nodere": "test-n.de$"},
                     {"nodere": "^trigger-[a-z]+"}):
        h.publish({**selector, **lo_quiet, "requestid": "sel-1"})
        [result] = h.wait_results()
        assert (result["status"], result["requestid"], result["node"]) == ("empty", "sel-1",
                                                                           NODE), selector


def test_alias_covering_two_interfaces_captures_both(harness, engine, cloudshark, udp_port):
    ring = engine.rings["lo"]
    interfaces = (InterfaceConfig("lo", ("both",)), InterfaceConfig("lo2", ("both", "second")))
    h = harness(cloudshark=cloudshark, rings={"lo": ring, "lo2": ring}, interfaces=interfaces)
    h.publish({"node": NODE, "alias": "both", "bpf": f"udp and dst port {udp_port}",
               "packets": 7, "timeout": 3, "alertid": 7})
    sent = send(udp_port, "alias", 7)
    results = sorted(h.wait_results(2), key=lambda r: r["interface"])
    assert [(r["interface"], r["alias"], r["packets"]) for r in results] == [
        ("lo", "both", 7), ("lo2", "both", 7)]
    assert sorted(upload["additional_tags"] for upload in cloudshark.uploads) == [
        f"alertid:7,alias:both,node:trigger-test-node,interface:{name},snaplength:512"
        for name in ("lo", "lo2")]  # snap: the default snaplength, 512
    for upload in cloudshark.uploads:
        assert payloads_of(upload["path"]) == sent


def test_caps_maxpackets_bytes_and_duration(harness, engine, udp_port):
    h = harness(max_packets=5, write_local=True)
    h.publish(base(udp_port, packets=6))
    [refused] = h.wait_results()
    assert (refused["status"], refused["field"]) == ("rejected", "packets")
    assert "maxpackets" in refused["error"]
    h.publish(base(udp_port, timeout=3))  # no `packets`: maxpackets applies
    sent = send(udp_port, "cap", 9)
    [result] = h.wait_results()
    assert (result["packets"], result["reason"]) == (5, "packets")
    assert payloads_of(result["path"]) == sent[:5]

    size = 100  # every datagram's payload is "bytes-NNNNN-" + 100 bytes
    record = 16 + UDP_HEADERS + len("bytes-00000-") + size
    h.publish(base(udp_port, bytes=24 + 3 * record + record // 2, timeout=3))
    sent = send(udp_port, "bytes", 5, size=size)
    [result] = h.wait_results()
    assert (result["packets"], result["reason"], result["bytes"]) == (3, "bytes", 24 + 3 * record)
    assert Path(result["path"]).stat().st_size == 24 + 3 * record

    h = harness(write_local=True)  # maxpackets at its default again
    h.publish(base(udp_port, duration=1, timeout=5))
    send(udp_port, "dur", 25, gap_s=0.08)  # paced: the datagrams span 2 s, twice the duration
    [result] = h.wait_results()
    assert result["reason"] == "duration" and 5 <= result["packets"] < 25
    start_ns, end_ns = result["window_start_ns"], result["window_end_ns"]
    assert end_ns - start_ns == 10**9, "1 s from the request, not the 5 s timeout"
    expected, after = ring_payloads(engine.rings["lo"], udp_port, start_ns, end_ns)
    assert after > 0 and payloads_of(result["path"]) == expected


def test_snap_truncates_but_keeps_the_wire_length(harness, udp_port):
    h = harness(write_local=True)
    h.publish(base(udp_port, snap=60, packets=4))
    sent = send(udp_port, "snap", 4, size=200)
    [result] = h.wait_results()
    capture = read_pcap(result["path"])
    assert capture.snaplen == 60
    for (_, caplen, wirelen, data), payload in zip(capture.packets, sent, strict=True):
        assert (caplen, wirelen) == (60, UDP_HEADERS + len(payload))
        assert len(data) == 60
        assert data[UDP_HEADERS:] == payload[:60 - UDP_HEADERS]


BAD_MESSAGES = [
    ("{not json", "message"),
    ('["a list"]', "message"),
    ({"node": NODE, "nodere": "x", "interface": "lo"}, "node"),
    ({"interface": "lo"}, "node"),
    ({"node": 5, "interface": "lo"}, "node"),
    ({"node": NODE, "interface": "lo", "alias": "local"}, "interface"),
    ({"node": NODE}, "interface"),
    ({"node": NODE, "interface": ["eth9"]}, "interface"),
    ({"node": NODE, "alias": ["nosuch"]}, "alias"),
    ({"node": NODE, "interface": "lo", "bpf": "udp and port"}, "bpf"),
    ({"nodere": "([a-z", "interface": "lo"}, "nodere"),
    ({"nodere": "^(a+)+$", "interface": "lo"}, "nodere"),
    ({"node": NODE, "interface": "lo", "packets": 0}, "packets"),
    ({"node": NODE, "interface": "lo", "snap": "big"}, "snap"),
    ({"node": NODE, "interface": "lo", "timeout": 99999}, "timeout"),
    ({"node": NODE, "interface": "lo", "duration": -1}, "duration"),
    ({"node": NODE, "interface": "lo", "bytes": 10**12}, "bytes"),
    ({"node": NODE, "interface": "lo", "tags": {"a": 1}}, "tags"),
    ({"node": NODE, "interface": "lo", "before": "5"}, "before"),
]


def test_every_bad_message_is_rejected_and_the_next_one_served(harness):
    h = harness()
    for message, field in BAD_MESSAGES:
        h.publish(message)
        [result] = h.wait_results(timeout_s=5)
        assert (result["status"], result["field"]) == ("rejected", field), (message, result)
        assert result["node"] == NODE and field in result["error"]
    h.publish({"node": NODE, "interface": "lo", "bpf": "udp and port 9", "timeout": 0.2,
               "requestid": "after-bad"})
    [result] = h.wait_results()
    assert (result["status"], result["requestid"]) == ("empty", "after-bad")


def test_listener_reconnects_after_redis_restart(engine, tmp_path, udp_port):
    server = RedisServer(tmp_path, password="s3cret-pass").start()
    h = Harness(server, engine, tmp_path, write_local=True).start()
    try:
        server.stop()
        wait_until(lambda: not h.service.listener.connected.is_set(), 10,
                   "the listener to notice the outage")
        server.start()
        assert h.service.listener.connected.wait(15), "listener did not come back"
        h.client = server.client()
        h.results = h.client.pubsub(ignore_subscribe_messages=True)
        h.results.subscribe(h.settings.redis.results_channel)
        h.publish(base(udp_port, packets=3))
        sent = send(udp_port, "again", 3)
        [result] = h.wait_results()
        assert (result["status"], result["packets"]) == ("ok", 3)
        assert payloads_of(result["path"]) == sent
        stream = server.client().xrange(h.settings.redis.results_stream)
        assert stream and b'"packets":3' in stream[-1][1][b"result"]
    finally:
        h.stop()
        server.stop()


def test_cloudshark_500_then_200_uploads_once(harness, cloudshark, udp_port):
    cloudshark.fail_times = 2
    h = harness(cloudshark=cloudshark)
    h.publish(base(udp_port, packets=2))
    send(udp_port, "retry", 2)
    [result] = h.wait_results()
    assert (result["status"], result["attempts"]) == ("ok", 3)
    assert cloudshark.requests == 3 and len(cloudshark.uploads) == 1
    assert "fallback" not in result


def test_cloudshark_failing_forever_leaves_the_pcap_in_the_fallback_folder(
        harness, cloudshark, udp_port, tmp_path, caplog):
    cloudshark.fail_times = -1
    h = harness(cloudshark=cloudshark)
    h.publish(base(udp_port, packets=2))
    sent = send(udp_port, "fallback", 2)
    [result] = h.wait_results()
    assert (result["status"], result["fallback"]) == ("error", True)
    assert "HTTP 500" in result["error"] and result["exceptions"]
    assert Path(result["path"]).parent == tmp_path / "fallback"
    assert payloads_of(result["path"]) == sent
    assert cloudshark.uploads == [] and cloudshark.requests == 4  # 1 + 3 retries
    assert TOKEN not in caplog.text


def test_wrong_token_is_not_retried(harness, cloudshark, udp_port):
    cloudshark.token = "another-token"
    h = harness(cloudshark=cloudshark)
    h.publish(base(udp_port, packets=1))
    send(udp_port, "token", 1)
    [result] = h.wait_results()
    assert (result["status"], result["fallback"]) == ("error", True)
    assert "401" in result["error"] and result["exceptions"] == ["API Token is invalid"]
