"""Triggers reaching into the archive (issue 20, item 4), on a real `pushcap run` capturing lo.

The ring keeps 2 s (`[ring] max_seconds = 2`); a File target with `Index = true` and 1 s files
writes everything lo carries. Sequence-numbered UDP datagrams flow the whole time; a request
with `before = 5` spans the target's files (published ones and the part still being written)
and the ring. Once the daemon has stopped, every file it published is the record of what was
captured, with timestamps: the window's datagrams, by number, must be in the result exactly
once, in time order, and the notes must say how many came from the archive. Without an indexed
target the lookback stays capped to the ring, with today's note.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest
from oracle import read_pcap
from service_harness import Daemon
from trigger_harness import NODE, UDP_HEADERS
from waiting import wait_until

pytestmark = pytest.mark.integration

RATE_PPS = 400
TAG = b"arcseq-"
BEFORE_S = 5.0
CHANNEL = "arccapture"


class SeqSender:
    """Numbered datagrams to a sink on lo at RATE_PPS, until stopped."""

    def __init__(self) -> None:
        self.sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sink.bind(("127.0.0.1", 0))
        self.sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.port = self.sink.getsockname()[1]
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        started = time.monotonic()
        while not self._stop.is_set():
            due = int((time.monotonic() - started) * RATE_PPS) + 1
            while self.sent < due:
                out.sendto(TAG + b"%08d" % self.sent, ("127.0.0.1", self.port))
                self.sent += 1
            self._stop.wait(0.005)
        out.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.sink.close()


def numbered(data: bytes, port: int) -> int | None:
    """The datagram's number, if `data` (an Ethernet frame on lo) is one of ours to `port`."""
    if len(data) < UDP_HEADERS or int.from_bytes(data[36:38], "big") != port:
        return None
    payload = data[UDP_HEADERS:]
    return int(payload[len(TAG):]) if payload.startswith(TAG) else None


def captured(folder: Path, port: int) -> list[tuple[int, int]]:
    """(timestamp, number) of every datagram the target's published files hold."""
    found = []
    for path in sorted(folder.glob("all_*.pcap")):
        for ts, _, _, data in read_pcap(path).packets:
            number = numbered(data, port)
            if number is not None:
                found.append((ts, number))
    return found


def result_numbers(record: dict, port: int, captures: Path) -> list[tuple[int, int]]:
    """(timestamp, number) of the datagrams in a result's pcap (written to `captures`)."""
    return [(ts, n) for ts, _, _, data in read_pcap(captures / record["path"]).packets
            if (n := numbered(data, port)) is not None]


def start_daemon(tmp: Path, redis_port: int, index: bool, maxduration_s: float = 3600) -> Daemon:
    (tmp / "captures").mkdir()
    flag = ", Index = true" if index else ""
    lua = ('return { Target = { { Desc = "arc", Mode = "File", Path = "'
           f'{tmp / "arc" / "all"}", Split = "--split-time 1e9"{flag} }} }} }}\n')
    toml = (f'[general]\nnode = "{NODE}"\nwritelocal = true\nlocaldir = "{tmp / "captures"}"\n'
            f'maxduration = {maxduration_s}\n'
            f'[redis]\nhost = "127.0.0.1"\nport = {redis_port}\nchannel = "{CHANNEL}"\n')
    return Daemon(tmp, lua, toml_extra=toml, ring_extra="max_seconds = 2\n")


def publish(redis_server, port: int, **fields) -> str:
    request_id = uuid.uuid4().hex[:12]
    message = {"node": NODE, "interface": ["lo"], "bpf": f"udp and dst port {port}",
               "requestid": request_id, **fields}
    client = redis_server.client()
    try:
        wait_until(lambda: client.pubsub_numsub(CHANNEL)[0][1] >= 1, 30, "the daemon listening")
        assert client.publish(CHANNEL, json.dumps(message)) >= 1
    finally:
        client.close()
    return request_id


def results(redis_server, request_ids: list[str]) -> dict[str, dict]:
    client = redis_server.client()

    def all_in() -> dict[str, dict] | None:
        found = {}
        for _, entry in client.xrange(f"{CHANNEL}:results:stream"):
            record = json.loads(entry[b"result"])
            if record.get("requestid") in request_ids:
                found[record["requestid"]] = record
        return found if len(found) == len(request_ids) else None

    try:
        return wait_until(all_in, 60, f"the results of {request_ids}")
    finally:
        client.close()


def indexed_seconds(folder: Path) -> int:
    """Seconds of traffic in published files with an index (1 s files)."""
    return sum(1 for p in folder.glob("all_*.pcap")
               if (folder / ".pushcap-index" / f"{p.name}.parquet").exists())


def archive_packets(record: dict) -> int:
    notes = [n for n in record.get("notes") or () if "packets from the archive" in n]
    assert len(notes) == 1, record.get("notes")
    return int(re.match(r"(\d+) packets from the archive", notes[0]).group(1))


def expected(stream: list[tuple[int, int]], record: dict) -> list[tuple[int, int]]:
    return sorted((ts, n) for ts, n in stream
                  if record["window_start_ns"] <= ts < record["window_end_ns"])


def test_a_window_spanning_archive_and_ring_has_every_packet_once(redis_server, tmp_path):
    sender = SeqSender()
    daemon = start_daemon(tmp_path, redis_server.port, index=True, maxduration_s=6)
    try:
        wait_until(lambda: indexed_seconds(tmp_path / "arc") >= BEFORE_S + 1, 40,
                   "6 s of indexed files")
        whole = publish(redis_server, sender.port, before=BEFORE_S, timeout=1)
        capped = publish(redis_server, sender.port, before=BEFORE_S, timeout=1,
                         packets=int(RATE_PPS * 3.5))
        longer = publish(redis_server, sender.port, before=BEFORE_S, duration=3)
        found = results(redis_server, [whole, capped, longer])
        sent_after = sender.sent + RATE_PPS  # the live parts have ended: one more second
        wait_until(lambda: sender.sent >= sent_after, 10, "a second more of traffic")
    finally:
        sender.stop()
        assert daemon.stop() == 0, daemon.text()[-2000:]
    stream = captured(tmp_path / "arc", sender.port)
    captures = tmp_path / "captures"
    assert len({n for _, n in stream}) == len(stream), "the target's own files hold doubles"

    record = found[whole]
    assert record["status"] == "ok", record
    assert (record["before_s"], record["window_end_ns"] - record["window_start_ns"]) == (
        BEFORE_S, 6 * 10**9), record  # not capped to the ring's 2 s
    received_ns = record["window_start_ns"] + int(BEFORE_S * 1e9)
    want = expected(stream, record)
    got = result_numbers(record, sender.port, captures)
    assert [n for _, n in got] == [n for _, n in want], "not every packet of the window once"
    assert got == want and record["packets"] == len(want)
    from_archive = archive_packets(record)
    older = sum(1 for ts, _ in want if ts < received_ns - int(2.5e9))
    assert older <= from_archive < len(want), (from_archive, older, len(want), record["notes"])

    record = found[capped]  # `packets` counts the archive's part and the ring's together
    cap = int(RATE_PPS * 3.5)
    assert (record["reason"], record["packets"]) == ("packets", cap), record
    assert result_numbers(record, sender.port, captures) == expected(stream, record)[:cap]
    assert archive_packets(record) < cap

    record = found[longer]  # maxduration 6: before 5 leaves the live part 1 s of its 3
    assert record["window_end_ns"] - record["window_start_ns"] == 6 * 10**9, record
    assert record["reason"] == "duration"
    assert any("maxduration 6 s" in note for note in record["notes"]), record["notes"]
    assert result_numbers(record, sender.port, captures) == expected(stream, record)


def test_without_an_indexed_target_the_lookback_stays_capped(redis_server, tmp_path):
    sender = SeqSender()
    daemon = start_daemon(tmp_path, redis_server.port, index=False)
    try:
        wait_until(lambda: len(list((tmp_path / "arc").glob("all_*.pcap"))) >= BEFORE_S + 1, 40,
                   "6 s of files")
        request_id = publish(redis_server, sender.port, before=BEFORE_S, timeout=1)
        record = results(redis_server, [request_id])[request_id]
    finally:
        sender.stop()
        assert daemon.stop() == 0, daemon.text()[-2000:]
    assert record["status"] == "ok", record
    captures = tmp_path / "captures"
    assert "before 5 s capped to 2 s: the ring keeps no more ([ring] max_seconds)" in \
        record["notes"]
    assert not any("archive" in note for note in record["notes"])
    assert record["window_end_ns"] - record["window_start_ns"] == 3 * 10**9
    got = result_numbers(record, sender.port, captures)
    assert len({n for _, n in got}) == len(got) == record["packets"] > 0
