"""T1: trigger latency, from a request published on redis to its result message.

A trigger asks a running `pushcap run` for the traffic its ring holds; how soon the answer
comes is what an operator waits for, with a goal of p99 < 500 ms. A private redis-server and
the daemon capture a steady UDP stream on `lo`; requests are met from the ring (lookback) or
wait for some live traffic as well, and the file each writes is checked against its result.
tcpdump has no equivalent, so T1 is checked against its goal only.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import config
from .config import (
    STARTED_TIMEOUT_S,
    T1_BEFORE_S,
    T1_GAP_JITTER_S,
    T1_GAP_S,
    T1_GOAL_P99_S,
    T1_LIVE_S,
    T1_LOOKBACK_SHARE,
    T1_PAYLOAD_BYTES,
    T1_RATE_PPS,
    T1_RESULT_WAIT_S,
)
from .inputs import lua_text, pushcap_argv
from .live import _stop
from .measure import count_pcap

# --- T1: trigger latency ------------------------------------------------------------------------
# A steady UDP stream to a port of its own on 127.0.0.1, paced in 5 ms slices against the clock
# (so a late slice catches up), into a sink socket that never reads (no ICMP port unreachable on
# lo). Prints the port first, and "sent N in S s" when it gets SIGTERM.
T1_SENDER = r"""
import signal, socket, sys, time
rate, size = int(sys.argv[1]), int(sys.argv[2])
sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sink.bind(("127.0.0.1", 0))
sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
port = sink.getsockname()[1]
print(port, flush=True)
out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload, dest, sent, slice_s = bytes(size), ("127.0.0.1", port), 0, 0.005
def stop(*_):
    raise SystemExit
signal.signal(signal.SIGTERM, stop)
started = time.monotonic()
try:
    while True:
        due = int((time.monotonic() - started) * rate) + 1
        while sent < due:
            out.sendto(payload, dest)
            sent += 1
        time.sleep(slice_s)
except SystemExit:
    pass
print(f"sent {sent} in {time.monotonic() - started:.3f} s", flush=True)
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def t1_unavailable() -> str | None:
    """Why T1 cannot run here, or None."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    try:
        import redis  # noqa: F401
    except ImportError:
        return "the redis Python package is not installed"
    if os.geteuid() != 0 and not _has_net_raw():
        return "needs root or CAP_NET_RAW (packet capture on lo)"
    return None


def _has_net_raw() -> bool:
    try:
        caps = re.search(r"^CapEff:\s+([0-9a-f]+)", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return False
    return bool(caps and int(caps.group(1), 16) & (1 << 13))


def _percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in 0..100."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _t1_series(client, pubsub, channel: str, name: str, port: int,
               packets_for: Callable[[], int], count: int, localdir: Path) -> dict:
    """`count` sequential requests; publish -> matching result message, in ms.

    `packets_for()` gives each request's `packets` cap at the moment it is sent.
    """
    latencies: list[float] = []
    gaps = random.Random(name)  # the same gaps every run (see T1_GAP_JITTER_S)
    caps: list[int] = []
    daemon_latencies: list[float] = []
    results: list[dict] = []
    for i in range(count):
        request_id = f"t1-{name}-{i}-{os.getpid()}"
        packets = packets_for()
        caps.append(packets)
        message = json.dumps({"node": "any", "interface": ["lo"], "bpf": f"udp port {port}",
                              "before": T1_BEFORE_S, "packets": packets, "timeout": 1,
                              "requestid": request_id})
        started = time.perf_counter()
        receivers = client.publish(channel, message)
        if receivers < 1:
            raise RuntimeError("pushcap is not subscribed to the request channel")
        record = None
        deadline = started + T1_RESULT_WAIT_S
        while record is None and time.perf_counter() < deadline:
            msg = pubsub.get_message(timeout=max(0.001, deadline - time.perf_counter()))
            if not msg or msg.get("type") != "message":
                continue
            got = time.perf_counter()
            data = json.loads(msg["data"])
            if isinstance(data, dict) and data.get("requestid") == request_id:
                record = data
        if record is None:
            raise RuntimeError(f"no result for {request_id} within {T1_RESULT_WAIT_S:g} s")
        latencies.append((got - started) * 1000)
        if isinstance(record.get("latency_s"), int | float):
            daemon_latencies.append(record["latency_s"] * 1000)
        # The file written must hold what the result says (then it goes: tmpfs space).
        in_file = None
        if record.get("path"):
            path = Path(record["path"])
            if not path.is_absolute():
                path = localdir / path
            if path.exists():
                in_file = count_pcap(path)
                path.unlink()
        results.append({"requestid": request_id, "status": record.get("status"),
                        "packets": record.get("packets"), "bytes": record.get("bytes"),
                        "reason": record.get("reason"), "packets_in_file": in_file,
                        "latency_ms": round(latencies[-1], 2),
                        "daemon_latency_ms": record.get("latency_s", 0) * 1000})
        time.sleep(T1_GAP_S + gaps.uniform(0, T1_GAP_JITTER_S))
    reasons: dict[str, int] = {}
    for r in results:
        reasons[str(r["reason"])] = reasons.get(str(r["reason"]), 0) + 1
    pkts = [r["packets"] or 0 for r in results]
    return {"requests": count, "packets_cap": int(statistics.median(caps)),
            "p50_ms": round(_percentile(latencies, 50), 1),
            "p99_ms": round(_percentile(latencies, 99), 1),
            "max_ms": round(max(latencies), 1), "min_ms": round(min(latencies), 1),
            "daemon_p50_ms": round(_percentile(daemon_latencies, 50), 1)
            if daemon_latencies else None,
            "packets_per_capture": int(statistics.median(pkts)),
            "statuses_ok": all(r["status"] == "ok" for r in results),
            "files_match": all(r["packets_in_file"] == r["packets"] for r in results),
            "reasons": reasons, "runs": results}


def start_listening_daemon(work: Path, lua: Path, toml: Path, client, channel: str,
                           procs: list[subprocess.Popen]) -> subprocess.Popen:
    """`pushcap run` (logging to work/pushcap.log, added to `procs`), once it has subscribed to
    `channel`; raises with its log if it exits first."""
    log_path = work / "pushcap.log"
    with log_path.open("w") as log:
        daemon = subprocess.Popen(pushcap_argv("run", "--lua", str(lua), "--config", str(toml)),
                                  stdout=log, stderr=subprocess.STDOUT, cwd=work,
                                  env=config.CHILD_ENV)
    procs.append(daemon)

    def subscribed() -> bool:
        if daemon.poll() is not None:
            raise RuntimeError("pushcap run exited: "
                               + log_path.read_text(errors="replace")[-1000:])
        return dict(client.pubsub_numsub(channel)).get(channel.encode(), 0) >= 1

    _wait_until(subscribed, STARTED_TIMEOUT_S, "pushcap did not subscribe")
    return daemon


def close_all(pubsub, client, procs: list[subprocess.Popen]) -> None:
    """End a trigger scenario: its Redis subscription and client, then its processes, newest
    first (each asked to stop, killed after 10 s)."""
    if pubsub is not None:
        pubsub.close()
    if client is not None:
        client.close()
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def bench_t1(fill_s: float, requests: int, scratch: Path) -> dict:
    """Trigger latency of a real `pushcap run` on lo, fed by a private redis-server."""
    reason = t1_unavailable()
    if reason:
        return {"skipped": reason}
    import redis

    try:
        return _bench_t1(fill_s, requests, scratch)
    except (redis.RedisError, subprocess.SubprocessError, OSError, RuntimeError,
            ValueError) as exc:
        return {"skipped": f"T1 could not run: {exc}"}  # the other scenarios still report


def _bench_t1(fill_s: float, requests: int, scratch: Path) -> dict:
    import redis

    work = scratch / "t1"
    localdir = work / "captures"
    localdir.mkdir(parents=True)
    redis_port = free_port()
    channel = "pushcap-bench-t1"
    (work / "t1.lua").write_text(lua_text([("none", str(work / "none"), "udp port 9")]))
    (work / "t1.toml").write_text(
        f'[general]\nnode = "bench-t1"\nwritelocal = true\nlocaldir = "{localdir}"\n'
        f'[redis]\nhost = "127.0.0.1"\nport = {redis_port}\nchannel = "{channel}"\n'
        f'[status]\nport = 0\n[ring]\nmax_seconds = {max(60.0, fill_s + 5)}\n'
        f'[[interface]]\nname = "lo"\n')
    procs: list[subprocess.Popen] = []
    client = pubsub = None
    sender_out = ""
    try:
        procs.append(subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(redis_port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(work),
             "--loglevel", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        client = redis.Redis(port=redis_port, socket_timeout=10)
        _wait_until(lambda: _pings(client), 10, "redis-server did not answer")
        daemon = start_listening_daemon(work, work / "t1.lua", work / "t1.toml", client,
                                        channel, procs)
        sender = subprocess.Popen([sys.executable, "-c", T1_SENDER, str(T1_RATE_PPS),
                                   str(T1_PAYLOAD_BYTES)], stdout=subprocess.PIPE, text=True)
        procs.append(sender)
        port = int(sender.stdout.readline())
        sending_since = time.monotonic()

        def in_lookback_s() -> float:
            """Seconds of the stream a request sent now finds within `before`."""
            return min(T1_BEFORE_S, time.monotonic() - sending_since)

        def lookback_cap() -> int:  # met from the ring: the capture never waits for traffic
            return max(1, int(T1_RATE_PPS * in_lookback_s() * T1_LOOKBACK_SHARE))

        def live_cap() -> int:  # all of the lookback, then T1_LIVE_S of new traffic
            return int(T1_RATE_PPS * (in_lookback_s() + T1_LIVE_S))

        print(f"  T1 filling the ring: {fill_s:g} s of {T1_RATE_PPS:,} pkt/s UDP to port {port}",
              file=sys.stderr)
        time.sleep(fill_s)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        results_channel = f"{channel}:results"
        pubsub.subscribe(results_channel)
        _wait_until(lambda: dict(client.pubsub_numsub(results_channel)).get(
            results_channel.encode(), 0) >= 1, 10, "could not subscribe to the results")
        series = {
            "lookback": _t1_series(client, pubsub, channel, "lookback", port, lookback_cap,
                                   requests, localdir),
            "live": _t1_series(client, pubsub, channel, "live", port, live_cap, requests,
                               localdir),
        }
        sender.send_signal(signal.SIGTERM)
        sender_out = sender.communicate(timeout=10)[0]
        cpu_s = _stop(daemon)
    finally:
        close_all(pubsub, client, procs)
    sent = re.search(r"sent (\d+) in ([\d.]+) s", sender_out)
    actual_pps = round(int(sent.group(1)) / float(sent.group(2))) if sent else None
    main = series["lookback"]
    return {"fill_s": fill_s, "rate_pps": T1_RATE_PPS, "actual_pps": actual_pps,
            "before_s": T1_BEFORE_S, "frame_bytes": T1_PAYLOAD_BYTES + 42,
            "live_extra_s": T1_LIVE_S, "goal_p99_ms": T1_GOAL_P99_S * 1000,
            "p50_ms": main["p50_ms"], "p99_ms": main["p99_ms"],
            "meets_goal": main["p99_ms"] < T1_GOAL_P99_S * 1000 and main["statuses_ok"],
            "pushcap_cpu_s": round(cpu_s, 3), "series": series}


def _pings(client) -> bool:
    import redis

    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def _wait_until(check: Callable[[], bool], timeout_s: float, error: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(error)
