"""The flows exporter's datagrams: one record each by default, JSON lines with pack, and what
happens to a record longer than a datagram (hosts as IPs, else dropped and counted)."""

from __future__ import annotations

import json
import logging
import socket

import pytest

from pushcap import defaults
from pushcap.flows.export import FlowExportError, UdpExporter


def record(i: int, host: str | None = None) -> dict:
    ip = f"10.0.{i // 256}.{i % 256}"
    return {"source_IP": ip, "source_PORT": 1000 + i, "target_IP": "192.0.2.1",
            "target_PORT": 53, "type": "UDP", "count": i + 1, "length": 10 * i,
            "source_HOST": host or ip, "target_HOST": host or "192.0.2.1",
            "time": "2016-09-08 23:27:40.090202"}


@pytest.fixture
def receiver():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


def received(sock: socket.socket, datagrams: int) -> list[bytes]:
    return [sock.recv(70_000) for _ in range(datagrams)]


def test_default_is_the_aggregators_bytes_one_record_per_datagram(receiver):
    exporter = UdpExporter("127.0.0.1", receiver.getsockname()[1])
    records = [record(i) for i in range(50)]
    exporter.send(records)
    assert received(receiver, 50) == [json.dumps(r).encode() for r in records]
    stats = exporter.stats
    assert (stats.datagrams, stats.records_sent, stats.send_failures) == (50, 50, 0)
    exporter.close()


def test_pack_puts_json_lines_together_under_the_limit(receiver):
    exporter = UdpExporter("127.0.0.1", receiver.getsockname()[1], 1000, pack=True)
    records = [record(i) for i in range(50)]
    exporter.send(records)
    got = received(receiver, exporter.stats.datagrams)
    assert 1 < len(got) < 50 and all(len(d) <= 1000 and d.endswith(b"\n") for d in got)
    assert b"".join(got) == b"".join(json.dumps(r).encode() + b"\n" for r in records)
    assert exporter.stats.records_sent == 50
    exporter.close()


@pytest.mark.parametrize("pack", [False, True])
def test_a_record_longer_than_a_datagram_has_ip_hosts_else_is_dropped(receiver, pack, caplog):
    long_name = "h" * 200 + ".example"  # a real PTR name can be 253 bytes
    named = record(1, host=long_name)
    limit = len(json.dumps(record(1)).encode()) + 1  # the record fits with IPs as hosts
    exporter = UdpExporter("127.0.0.1", receiver.getsockname()[1], limit, pack=pack)
    exporter.send([named, record(2)])
    got = received(receiver, exporter.stats.datagrams)
    end = b"\n" if pack else b""
    assert b"".join(got) == json.dumps(record(1)).encode() + end + json.dumps(record(2)).encode() \
        + end
    assert exporter.stats.records_oversize == 0

    tiny = UdpExporter("127.0.0.1", receiver.getsockname()[1], 100, pack=pack)
    with caplog.at_level(logging.WARNING, logger="pushcap.flows"):
        tiny.send([record(3), record(4)])
    assert (tiny.stats.records_oversize, tiny.stats.datagrams, tiny.stats.records_sent) == (2, 0, 0)
    assert any("event=flows_record_oversize" in r.getMessage() and "records_dropped=2" in
               r.getMessage() for r in caplog.records)
    exporter.close()
    tiny.close()


def test_the_limit_is_at_most_a_udp_payload(receiver):
    port = receiver.getsockname()[1]
    biggest = UdpExporter("127.0.0.1", port, defaults.FLOWS_MAX_UDP_PAYLOAD_BYTES)
    biggest.close()
    for bad in (0, defaults.FLOWS_MAX_UDP_PAYLOAD_BYTES + 1):
        with pytest.raises(FlowExportError, match="must be 1 to 65507"):
            UdpExporter("127.0.0.1", port, bad)


def test_an_unusable_collector_address_fails_once_per_interval_not_per_datagram(monkeypatch):
    calls = []

    def no_address(*args, **kwargs):
        calls.append(args)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_address)
    exporter = UdpExporter("collector.invalid", 10518)
    exporter.send([record(i) for i in range(1000)])
    assert len(calls) == 1
    assert (exporter.stats.send_failures, exporter.stats.records_failed) == (1000, 1000)


def test_a_collector_back_gets_the_next_interval_whole():
    """A collector down for one interval and back for the next: the refusal the kernel holds
    from the first (ICMP port unreachable) is counted there, not charged to the next
    interval's first datagram, which the collector, back, now gets."""
    down = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    down.bind(("127.0.0.1", 0))
    port = down.getsockname()[1]
    down.close()  # nothing listens: the first interval's datagram is refused
    exporter = UdpExporter("127.0.0.1", port)
    exporter.send([record(0)])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as back:
        back.bind(("127.0.0.1", port))
        back.settimeout(5)
        exporter.send([record(i) for i in range(1, 11)])
        got = [json.loads(d) for d in received(back, 10)]
    assert [r["count"] for r in got] == list(range(2, 12))  # every record of the interval
    assert exporter.stats.send_failures == 1 and exporter.stats.records_sent == 11


def test_port_0_is_refused_not_taken_for_the_default():
    from pushcap.flows.export import parse_destination

    with pytest.raises(FlowExportError, match="port 0 is not in 1-65535"):
        parse_destination("udp://127.0.0.1:0")
    assert parse_destination("udp://127.0.0.1") == ("127.0.0.1", defaults.FLOWS_PORT)
