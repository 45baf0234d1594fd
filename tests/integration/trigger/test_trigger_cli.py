"""`pushcap run` with pcapdaemon's flags serving `pushcap trigger`, both as real processes."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from daemon_log import wait_for_log
from oracle import read_pcap
from trigger_harness import TOKEN, RedisServer, free_port
from waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[3]


def start_run(tmp_path: Path, argv: list[str]) -> subprocess.Popen:
    (tmp_path / "push.lua").write_text(
        'local Config = { Target = {} }\n'
        f'table.insert(Config.Target, {{ Desc = "all", Mode = "File", Path = "{tmp_path}/all",'
        ' Split = "--split-time 60e9", FileName = "--filename-epoch-sec" })\nreturn Config\n')
    (tmp_path / "daemon.toml").write_text(
        '[general]\nnode = "cli-node"\n[[interface]]\nname = "lo"\nalias = ["local"]\n'
        '[ring]\nmax_seconds = 30\npoll_timeout_ms = 20\n[status]\nport = 0\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "pushcap.cli", "run", "--lua", str(tmp_path / "push.lua"),
         "-config", str(tmp_path / "daemon.toml"), *argv],
        cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    proc.startup_log = wait_for_log(proc, "event=trigger_subscribed")
    return proc


def test_run_flags_and_trigger_command(tmp_path, redis_server, cloudshark):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    channel = "cli-capture"
    proc = start_run(tmp_path, [
        "-redisnode", "127.0.0.1", "-redisport", str(redis_server.port), "-redischannel", channel,
        "-upload", "-cshost", "127.0.0.1", "-csscheme", "http", "-csport", str(cloudshark.port),
        "-cstoken", TOKEN])
    try:
        trigger = subprocess.Popen(
            [sys.executable, "-m", "pushcap.cli", "trigger", "--node", "cli-node",
             "--interface", "lo", "--bpf", f"udp and dst port {port}", "--packets", "3",
             "--timeout", "5", "--alertid", "42", "--tags", "cli,test", "--json",
             "-redisport", str(redis_server.port), "-redischannel", channel, "--expect", "1",
             "--config", str(tmp_path / "missing.toml")],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # The capture starts at the request: send once the daemon has it.
        proc.startup_log += wait_for_log(proc, "event=trigger_accepted")
        for i in range(3):
            sock.sendto(b"cli-%d" % i, ("127.0.0.1", port))
        out, err = trigger.communicate(timeout=30)
        assert trigger.returncode == 0, err
        [result] = [json.loads(line) for line in out.splitlines()]
        assert (result["node"], result["status"], result["packets"]) == ("cli-node", "ok", 3)
        assert result["alertid"] == 42 and result["cloudshark_url"].endswith(
            cloudshark.uploads[0]["id"])
        packets = read_pcap(cloudshark.uploads[0]["path"]).packets
        assert [data[42:] for *_, data in packets] == [b"cli-0", b"cli-1", b"cli-2"]
        assert "alertid:42,cli,test," in cloudshark.uploads[0]["additional_tags"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, log = proc.communicate(timeout=30)
        sock.close()
    assert proc.returncode == 0, log
    assert TOKEN not in proc.startup_log + log


def test_trigger_waits_as_long_as_the_request_lets_the_capture_run(tmp_path, redis_server):
    """A window that opens 17 s from now: the result comes after `timeout` + 15 s (the old
    fixed wait); the command must still be there to print it."""
    channel = "cli-wait"
    proc = start_run(tmp_path, ["-redisnode", "127.0.0.1", "-redisport",
                                str(redis_server.port), "-redischannel", channel])
    try:
        began = time.time()
        trigger = subprocess.run(
            [sys.executable, "-m", "pushcap.cli", "trigger", "--node", "cli-node",
             "--interface", "lo", "--bpf", "udp and port 9", "--start", str(began + 17),
             "--duration", "0.5", "--timeout", "1", "--json", "-redisport",
             str(redis_server.port), "-redischannel", channel, "--expect", "1",
             "--config", str(tmp_path / "missing.toml")],
            cwd=tmp_path, capture_output=True, text=True, timeout=90)
        assert trigger.returncode == 0, trigger.stderr
        [result] = [json.loads(line) for line in trigger.stdout.splitlines()]
        assert (result["status"], result["reason"]) == ("empty", "duration")
        assert time.time() - began >= 17
        assert "waiting up to" in trigger.stderr and "upload" in trigger.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def trigger_args(*argv: str):
    import argparse

    from pushcap.trigger.command import add_trigger_parser

    parser = argparse.ArgumentParser()
    add_trigger_parser(parser.add_subparsers())
    return parser.parse_args(["trigger", "--node", "n", "--interface", "lo", *argv])


def test_default_wait_is_capture_time_plus_the_nodes_upload_budget():
    from pushcap.trigger.command import WAIT_MARGIN_S, wait_s

    now = 1_700_000_000.0
    # pcapdaemon's CloudShark defaults: 4 attempts of 15 s, 1 + 2 + 4 s between them.
    upload_s = 4 * 15 + 7
    up = {"cloudshark": {"upload": True}}
    assert wait_s(trigger_args("--duration", "120", "--before", "60"), up, now)[0] == \
        120 + upload_s + WAIT_MARGIN_S
    assert wait_s(trigger_args("--timeout", "5", "--start", str(now + 30)), up, now)[0] == \
        35 + upload_s + WAIT_MARGIN_S
    assert wait_s(trigger_args("--end", str(now + 50), "--duration", "999"), up, now)[0] == \
        50 + upload_s + WAIT_MARGIN_S
    # `timeout` caps the capture as `duration` and `end` do: the earliest of them ends it.
    assert wait_s(trigger_args("--duration", "120", "--timeout", "5"), up, now)[0] == \
        5 + upload_s + WAIT_MARGIN_S
    assert wait_s(trigger_args("--end", str(now + 50), "--timeout", "10"), up, now)[0] == \
        10 + upload_s + WAIT_MARGIN_S
    assert wait_s(trigger_args("--start", str(now + 30), "--duration", "20", "--timeout", "40"),
                  up, now)[0] == 50 + upload_s + WAIT_MARGIN_S
    # Uploads are off unless the file turns them on (the daemon's default): no upload budget,
    # without [cloudshark] as with `upload = false`.
    for off in ({}, {"cloudshark": {"timeout": "30s"}}, {"cloudshark": {"upload": False}}):
        assert wait_s(trigger_args("--duration", "2"), off, now)[0] == 2 + WAIT_MARGIN_S, off
    config = {"general": {"defaulttimeout": "1m30s"},
              "cloudshark": {"upload": True, "timeout": "30s", "retries": 1,
                             "retrybackoff": 2}}
    assert wait_s(trigger_args("--duration", "0"), config, now)[0] == \
        90 + 2 * 30 + 2 + WAIT_MARGIN_S
    # defaulttimeout = 0 is "not given" in the daemon's file: its default, 60 s, not 0
    config["general"]["defaulttimeout"] = 0
    assert wait_s(trigger_args(), config, now)[0] == 60 + 2 * 30 + 2 + WAIT_MARGIN_S
    # A duration without a timeout is not cut by the node's defaulttimeout.
    assert wait_s(trigger_args("--duration", "200"), config, now)[0] == \
        200 + 2 * 30 + 2 + WAIT_MARGIN_S
    assert wait_s(trigger_args(), {"cloudshark": {"upload": False}}, now)[0] == \
        60 + WAIT_MARGIN_S  # pcapdaemon's default timeout; a local file needs no allowance
    assert wait_s(trigger_args("--wait", "7", "--duration", "300"), {}, now) == (7, "--wait")


def test_local_redis_is_started_only_when_redis_is_unconfigured():
    from trigger_harness import free_port

    from pushcap.config.pcapdaemon import RedisSettings
    from pushcap.trigger.localredis import answers, maybe_start_local_redis

    port = free_port()
    assert maybe_start_local_redis(RedisSettings(port=port, configured=True)) is None
    assert not answers("127.0.0.1", port)
    server = maybe_start_local_redis(RedisSettings(port=port))
    try:
        assert server is not None and answers("127.0.0.1", port)
        assert maybe_start_local_redis(RedisSettings(port=port)) is None  # already answering
    finally:
        server.stop()
    assert server.proc.poll() is not None and not answers("127.0.0.1", port)


def test_local_redis_ends_with_a_killed_daemon():
    """SIGKILL gives the daemon no chance to stop its redis-server: the server must still go,
    not stay behind holding the default port."""
    from trigger_harness import free_port

    from pushcap.trigger.localredis import answers

    port = free_port()
    starter = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom pushcap.trigger.localredis import LocalRedis\n"
         f"server = LocalRedis({port})\nassert server.start()\n"
         "print(server.proc.pid, flush=True)\ntime.sleep(120)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        pid = int(starter.stdout.readline())
        assert answers("127.0.0.1", port)
    finally:
        starter.kill()
        starter.wait(10)
    wait_until(lambda: not answers("127.0.0.1", port), 10,
               f"redis-server {pid} to go with the killed daemon")


def test_listener_authenticates_as_an_acl_user(tmp_path):
    from trigger_harness import RedisServer

    from pushcap.config.pcapdaemon import RedisSettings
    from pushcap.trigger.listener import Listener

    server = RedisServer(tmp_path).start()
    try:
        server.client().execute_command("ACL", "SETUSER", "capture", "on", ">acl-pass",
                                        "&*", "+subscribe", "+ping", "+hello", "+auth")
        got: list[bytes] = []
        wrong = Listener(RedisSettings(port=server.port, username="capture",
                                       password="nope"), lambda d, _t: got.append(d))
        right = Listener(RedisSettings(port=server.port, username="capture",
                                       password="acl-pass"), lambda d, _t: got.append(d))
        wrong.start()
        right.start()
        assert right.connected.wait(10)
        assert not wrong.connected.wait(1)
        server.client().publish("capture", b"hello")
        wait_until(lambda: got, 5, "the message at the listener")
        assert got == [b"hello"]
        assert wrong.stop() and right.stop()
    finally:
        server.stop()


def test_trigger_without_redis_is_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pushcap", "trigger", "--node", "any", "--alias", "local",
         "--bpf", "udp", "-redisport", str(free_port()), "--config", str(tmp_path / "none.toml")],
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("pushcap: error: redis ")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_trigger_whose_redis_goes_away_while_it_waits_is_one_line(tmp_path):
    """The daemon that ran the private redis-server stops while `pushcap trigger` waits for
    results: one line naming Redis and a non-zero exit, never a traceback."""
    server = RedisServer(tmp_path).start()
    try:
        trigger = subprocess.Popen(
            [sys.executable, "-m", "pushcap", "trigger", "--node", "any", "--alias", "local",
             "--bpf", "udp", "--wait", "60", "-redisport", str(server.port),
             "--config", str(tmp_path / "none.toml")],
            cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        waiting = wait_for_log(trigger, "waiting up to")
    finally:
        server.stop()
    _, err = trigger.communicate(timeout=30)  # well before its 60 s wait ends
    assert trigger.returncode == 1, waiting + err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("pushcap: error:")]
    assert len(errors) == 1 and f":{server.port}" in errors[0], err
