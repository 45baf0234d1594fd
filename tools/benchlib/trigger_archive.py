"""T2: a trigger reaching an hour back, beyond the ring, into an indexed File target's files
(issue 20: `before = 3600` on a node whose ring holds 60 s, a host filter matching ~0.1%:
result delivered in under 2 s).

The archive is not captured live for an hour: a trace of T2_PACKETS packets stamped over the
last hour (tools/gen_trace.py, seeded) is replayed (`pushcap replay`) into the same File target
the daemon then runs (one-minute files, `Index = true`), so the files and indexes are those the
archive's own writer and index builder make. Then `pushcap run` captures lo with that target
and a 60 s ring, which a steady UDP stream fills (T1's sender) before the first request; the
live part of the series is written beside the replayed files, as it would be after an hour.
Each request asks for `before = 3600` and the host whose packets are closest to T2_SHARE of
the archive; its latency is publish -> result message. The result's pcap is checked, packet for
packet, against `pushcap query --dir` over the archive for the result's window: the same packets
(the live stream does not match the host, so the ring's part is empty).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import gen_trace  # tools/ is on sys.path (see tools/bench.py)

from . import config
from .archive import _pick_host
from .config import (
    T1_PAYLOAD_BYTES,
    T1_RATE_PPS,
    T2_GOAL_S,
    T2_RESULT_WAIT_S,
    T2_RING_S,
    T2_SPAN_S,
)
from .inputs import pushcap_argv
from .live import _stop
from .measure import PCAP_HEADER_BYTES, RECORD_HEADER_BYTES
from .trigger import (
    T1_SENDER,
    _pings,
    _wait_until,
    close_all,
    free_port,
    start_listening_daemon,
    t1_unavailable,
)


def _lua(path: Path, prefix: Path) -> Path:
    path.write_text('return { Target = { { Desc = "arc", Mode = "File", Path = "'
                    f'{prefix}", Split = "--split-time 60e9", Index = true }} }} }}\n')
    return path


def build_archive(work: Path, packets: int) -> tuple[Path, Path, float]:
    """An hour of generated traffic ending now, replayed into the target's files; the Lua
    file, the archive's folder and the seconds building took."""
    began = time.monotonic()
    archive = work / "archive"
    archive.mkdir(parents=True)
    lua = _lua(work / "t2.lua", archive / "arc")
    trace = work / "hour.pcap"
    gen_trace.generate(trace, packets, seed=2, start_ns=time.time_ns() - T2_SPAN_S * 10**9,
                       rate_pps=packets / T2_SPAN_S)
    subprocess.run(pushcap_argv("replay", str(trace), "--lua", str(lua), "--quiet"), check=True,
                   capture_output=True, env=config.CHILD_ENV, timeout=1800)
    trace.unlink()
    return lua, archive, time.monotonic() - began


def pcap_packets(path: Path) -> list[tuple[int, int, int, bytes]]:
    """(ts_ns, caplen, wirelen, data) of a little-endian classic pcap (independent of pushcap)."""
    raw = path.read_bytes()
    nano = struct.unpack_from("<I", raw)[0] == 0xA1B23C4D
    out, at = [], PCAP_HEADER_BYTES
    while at + RECORD_HEADER_BYTES <= len(raw):
        sec, frac, caplen, wirelen = struct.unpack_from("<IIII", raw, at)
        at += RECORD_HEADER_BYTES
        out.append((sec * 10**9 + frac * (1 if nano else 1000), caplen, wirelen,
                    raw[at:at + caplen]))
        at += caplen
    return out


def bench_t2(packets: int, requests: int, fill_s: float, scratch: Path) -> dict:
    reason = t1_unavailable()
    if reason:
        return {"skipped": reason}
    import redis

    try:
        return _bench_t2(packets, requests, fill_s, scratch)
    except (redis.RedisError, subprocess.SubprocessError, OSError, RuntimeError,
            ValueError) as exc:
        return {"skipped": f"T2 could not run: {exc}"}


def _bench_t2(packets: int, requests: int, fill_s: float, scratch: Path) -> dict:
    import redis

    work = scratch / "t2"
    localdir = work / "captures"
    localdir.mkdir(parents=True)
    print(f"  T2 building an hour of archive: {packets:,} packets", file=sys.stderr)
    lua, archive, build_s = build_archive(work, packets)
    files = sorted(archive.glob("arc_*.pcap"))
    archive_bytes = sum(f.stat().st_size for f in files)
    host, host_packets = _pick_host(archive)
    redis_port, channel = free_port(), "pushcap-bench-t2"
    (work / "t2.toml").write_text(
        f'[general]\nnode = "bench-t2"\nwritelocal = true\nlocaldir = "{localdir}"\n'
        f'[redis]\nhost = "127.0.0.1"\nport = {redis_port}\nchannel = "{channel}"\n'
        f'[status]\nport = 0\n[ring]\nmax_seconds = {T2_RING_S}\n[[interface]]\nname = "lo"\n')
    procs: list[subprocess.Popen] = []
    client = pubsub = None
    try:
        procs.append(subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(redis_port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(work),
             "--loglevel", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        client = redis.Redis(port=redis_port, socket_timeout=30)
        _wait_until(lambda: _pings(client), 10, "redis-server did not answer")
        daemon = start_listening_daemon(work, lua, work / "t2.toml", client, channel, procs)
        sender = subprocess.Popen([sys.executable, "-c", T1_SENDER, str(T1_RATE_PPS),
                                   str(T1_PAYLOAD_BYTES)], stdout=subprocess.PIPE, text=True)
        procs.append(sender)
        sender.stdout.readline()
        print(f"  T2 filling the ring: {fill_s:g} s of {T1_RATE_PPS:,} pkt/s on lo",
              file=sys.stderr)
        time.sleep(fill_s)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(f"{channel}:results")
        runs = [_request(client, pubsub, channel, host, i) for i in range(requests)]
        cpu_s = _stop(daemon)
    finally:
        close_all(pubsub, client, procs)
    checked = _check(runs[-1][1], archive, host, localdir, work)
    latencies = [ms for ms, _ in runs]
    records = [record for _, record in runs]
    result = {
        "packets": packets, "span_s": T2_SPAN_S, "files": len(files),
        "archive_bytes": archive_bytes, "build_s": round(build_s, 1), "host": host,
        "host_packets": host_packets, "ring_s": T2_RING_S, "fill_s": fill_s,
        "ring_rate_pps": T1_RATE_PPS, "requests": requests,
        "latency_ms": [round(ms, 1) for ms in latencies],
        "p50_ms": round(statistics.median(latencies), 1), "max_ms": round(max(latencies), 1),
        "daemon_latency_ms": [round(r["latency_s"] * 1000, 1) for r in records],
        "result_packets": [r.get("packets") for r in records],
        "statuses": [r.get("status") for r in records],
        "reasons": [r.get("reason") for r in records],
        "notes": records[-1].get("notes"), "goal_s": T2_GOAL_S,
        "pushcap_cpu_s": round(cpu_s, 3), **checked}
    result["meets_goal"] = (result["max_ms"] < T2_GOAL_S * 1000 and checked["identical"]
                            and all(s == "ok" for s in result["statuses"]))
    return result


def _request(client, pubsub, channel: str, host: str, i: int) -> tuple[float, dict]:
    """One `before = 3600` request for `host`: publish -> its result message, in ms."""
    request_id = f"t2-{i}-{os.getpid()}"
    message = json.dumps({"node": "any", "interface": ["lo"], "bpf": f"host {host}",
                          "before": T2_SPAN_S, "snap": 262144, "requestid": request_id})
    started = time.perf_counter()
    if client.publish(channel, message) < 1:
        raise RuntimeError("pushcap is not subscribed to the request channel")
    deadline = started + T2_RESULT_WAIT_S
    while time.perf_counter() < deadline:
        msg = pubsub.get_message(timeout=max(0.001, deadline - time.perf_counter()))
        if msg and msg.get("type") == "message":
            got = time.perf_counter()
            record = json.loads(msg["data"])
            if isinstance(record, dict) and record.get("requestid") == request_id:
                return (got - started) * 1000, record
    raise RuntimeError(f"no result for {request_id} within {T2_RESULT_WAIT_S:g} s")


def _check(record: dict, archive: Path, host: str, localdir: Path, work: Path) -> dict:
    """The result's packets against `pushcap query --dir` over the archive for its window."""
    path = localdir / record["path"] if record.get("path") else None
    if path is None or not path.exists():
        return {"identical": False, "check": f"no pcap for the result: {record}"}
    reference = work / "query.pcap"
    subprocess.run(pushcap_argv("query", "--dir", str(archive), "--start",
                                f"{record['window_start_ns'] / 1e9:.9f}", "--end",
                                f"{record['window_end_ns'] / 1e9:.9f}", "-w", str(reference),
                                "--quiet", f"host {host}"),
                   check=True, capture_output=True, env=config.CHILD_ENV, timeout=600)
    ours, theirs = pcap_packets(path), pcap_packets(reference)
    return {"identical": ours == theirs, "query_packets": len(theirs),
            "check": f"{len(ours)} packets, pushcap query over the archive {len(theirs)}"}


def print_t2(r: dict, emit) -> None:
    verdict = "met" if r["meets_goal"] else "NOT MET"
    ours = f"p50 {r['p50_ms']:.0f}ms max {r['max_ms']:.0f}ms"
    emit(f"T2   {'trigger before=3600, archive':32} {ours:>24} {'n/a':>24} "
         f"{'goal < ' + format(r['goal_s'] * 1000, '.0f') + 'ms':>22}  {verdict}; "
         f"{r['requests']} requests for host {r['host']} ({r['host_packets']:,} of "
         f"{r['packets']:,} packets, {r['files']} one-minute files, "
         f"{r['archive_bytes'] / 1e9:.2f} GB) with {r['fill_s']:g} s of "
         f"{r['ring_rate_pps']:,} pkt/s in a {r['ring_s']:g} s ring; {r['check']}"
         f" ({'identical' if r['identical'] else 'DIFFER'}); daemon latency "
         f"{r['daemon_latency_ms']} ms")
