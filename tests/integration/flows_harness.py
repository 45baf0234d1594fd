"""The loopback collector and target config the flows test files drive, kept in one place.

The collector reads as the aggregator's consumers do: `records()` is Logstash's `udp` input with
a `json` filter (elk-tcpdump's logstash.conf, the pipeline tcpdump-aggregator was built for):
each datagram is one event whose whole text gets one JSON parse, and every datagram must parse
into an object with the aggregator's fields, or the test fails (where Logstash would tag the
event `_jsonparsefailure` and lose its records). `packed_records()` reads `Pack` output, JSON
lines, as a `json_lines` codec would.
"""

from __future__ import annotations

import json
import socket
import threading
import time

from pushcap.config.model import NamingRule, PushMode, SplitKind, SplitRule, TargetConfig

NS = 1_000_000_000
AGGREGATOR_FIELDS = ("source_IP", "source_PORT", "target_IP", "target_PORT", "type", "count",
                     "length", "source_HOST", "target_HOST", "time")  # the seed's, in its order


def logstash_event(datagram: bytes) -> dict:
    """What Logstash's `udp {}` input + `json { source => "message" }` make of one datagram.

    The input decodes the datagram (codec plain, UTF-8) into one event's `message`; the filter
    runs one JSON parse over all of it and merges the object into the event. A parse error,
    or a value that is not an object, is `_jsonparsefailure`: here an AssertionError.
    """
    message = datagram.decode("utf-8")
    try:
        event = json.loads(message)
    except ValueError as exc:
        raise AssertionError(f"_jsonparsefailure ({exc}) on {message[:300]!r}") from None
    assert isinstance(event, dict), f"_jsonparsefailure: not an object: {message[:300]!r}"
    missing = [name for name in AGGREGATOR_FIELDS if name not in event]
    assert not missing, f"no {missing} in {event}"
    return event


def json_lines(datagram: bytes) -> list[dict]:
    """A packed datagram: every line one record, each line ended by a newline."""
    assert datagram.endswith(b"\n"), datagram[-100:]
    return [json.loads(line) for line in datagram.decode().splitlines()]


class Collector:
    """A UDP listener on loopback that reads in its own thread into a list of datagrams."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:  # root may exceed rmem_max: a replay sends thousands of records at once
            self.sock.setsockopt(socket.SOL_SOCKET, 33, 32 * 1024 * 1024)  # SO_RCVBUFFORCE
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.url = f"udp://127.0.0.1:{self.port}"
        self.datagrams: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.datagrams.append(self.sock.recv(65536))
            except TimeoutError:
                continue

    def records(self) -> list[dict]:
        """Every datagram received so far, through logstash_event: one record each."""
        return [logstash_event(d) for d in list(self.datagrams)]

    def packed_records(self) -> list[dict]:
        """Every datagram received so far as JSON lines (a target with Pack)."""
        return [r for d in list(self.datagrams) for r in json_lines(d)]

    def wait_for(self, predicate, timeout_s: float, packed: bool = False) -> list[dict]:
        deadline = time.monotonic() + timeout_s
        while True:
            records = self.packed_records() if packed else self.records()
            if predicate(records) or time.monotonic() > deadline:
                return records
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def flows_config(url: str, interval_s: float, bpf: str | None = None,
                 pack: bool = False) -> TargetConfig:
    return TargetConfig(index=1, desc="flows-test", mode=PushMode.FLOWS, path=url,
                        split=SplitRule(SplitKind.TIME, int(interval_s * NS)),
                        naming=NamingRule("--filename-epoch-sec"), filter_bpf=bpf,
                        interval_s=interval_s, pack=pack)
