"""Every subcommand ends in one clear line and an exit code a service manager can use.

`pushcap status` is the health check: 0 when every interface captures and no target is failing,
1 when something is wrong (the problem named), 2 when no daemon answers. `check` names the key
and line of a bad value in every section of pcapdaemon.toml; `replay` runs flows targets.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import dpkt
import pytest
from oracle import PCAPS_DIR
from service_harness import Daemon, free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def pushcap(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pushcap", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("pushcap:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def test_status_and_reload_without_a_daemon_exit_2(tmp_path):
    toml = tmp_path / "daemon.toml"
    toml.write_text(f'[[interface]]\nname = "lo"\n[status]\nport = {free_port()}\n')
    for command in ("status", "reload"):
        proc = pushcap(command, "--config", str(toml))
        assert proc.returncode == 2, (command, proc.stderr)
        assert "no daemon answers" in one_error_line(proc)


@pytest.mark.parametrize("command", ["status", "reload"])
def test_status_from_another_folder_asks_the_default_address(tmp_path, command):
    """The default config is a relative path: a monitoring agent running `pushcap status` from
    its own folder has none there, and asks the default address (as query and trigger do),
    where it said "cannot read" and exit 2 whatever the daemon's health. A --config that
    cannot be read is still an error naming it."""
    proc = pushcap(command, cwd=tmp_path)
    if proc.returncode == 2:  # nothing on 127.0.0.1:9107 here: the usual case
        message = one_error_line(proc)
        assert "127.0.0.1:9107" in message and "cannot read" not in message, message
    else:  # a daemon that answers on the default port: its status, or reload answer
        assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr
    named = pushcap(command, "--config", "etc/pcapdaemon.toml", cwd=tmp_path)
    assert named.returncode == 2 and "cannot read" in one_error_line(named)


@contextlib.contextmanager
def status_of_a_listener(tmp_path: Path):
    """(`pushcap status` running against a plain listener on loopback, the connection it made):
    a port taken by another program."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        toml = tmp_path / "daemon.toml"
        toml.write_text(f'[[interface]]\nname = "lo"\n[status]\nport = '
                        f'{listener.getsockname()[1]}\n')
        proc = subprocess.Popen([sys.executable, "-m", "pushcap", "status", "--config",
                                 str(toml)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        conn, _ = listener.accept()
        with conn:
            yield proc, conn


def test_status_of_something_else_on_the_port_exits_2(tmp_path):
    """A port taken by another program (here: a listener that closes at once) is no daemon."""
    with status_of_a_listener(tmp_path) as (proc, conn):
        conn.close()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, out + err
    assert "Traceback" not in err


def test_status_of_a_program_that_trickles_bytes_exits_2_within_its_timeout(tmp_path):
    """A program on the port that accepts and then sends a byte now and then never completes an
    answer: the health check still ends, at its 5 s deadline for the whole answer (a timeout
    per read alone would wait as long as the bytes keep coming)."""
    started = time.monotonic()
    with status_of_a_listener(tmp_path) as (proc, conn):
        conn.settimeout(0.3)
        while proc.poll() is None and time.monotonic() - started < 60:
            try:
                conn.sendall(b"H")
                conn.recv(4096)
            except OSError:
                pass  # the request read, or the client gone: keep trickling till it ends
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, out + err
    assert time.monotonic() - started < 30, "the check waited for as long as bytes came"
    assert "no daemon answers" in err and "Traceback" not in err, err


def udp_until(port: int, done, timeout_s: float = 20.0) -> None:
    """Datagrams to `port` on lo until `done()` holds (the daemon has seen them)."""
    deadline = time.monotonic() + timeout_s
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        while not done():
            assert time.monotonic() < deadline, "the daemon never got there"
            sock.sendto(b"health", ("127.0.0.1", port))
            time.sleep(0.05)


def test_status_exits_0_while_healthy_and_1_with_a_failing_target(tmp_path):
    port = free_port(socket.SOCK_DGRAM)
    (tmp_path / "blocker").write_text("a file where the target wants a folder")
    lua = f"""return {{ Target = {{
      {{ Desc = "fine", Mode = "File", Path = "{tmp_path}/out/fine",
         FilterBPF = "udp port {port}" }},
      {{ Desc = "broken", Mode = "File", Path = "{tmp_path}/blocker/x",
         FilterBPF = "udp port {port}" }} }} }}"""
    healthy_lua = lua.split('{ Desc = "broken"')[0].rstrip().rstrip(",") + " } }"
    daemon = Daemon(tmp_path, healthy_lua)
    try:
        udp_until(port, lambda: '"packets": 0' not in daemon.cli("status", "--json").stdout)
        healthy = daemon.cli("status")
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        assert "health OK" in healthy.stdout
    finally:
        assert daemon.stop() == 0

    daemon = Daemon(tmp_path, lua)
    try:
        udp_until(port, lambda: daemon.cli("status").returncode != 0)
        failing = daemon.cli("status")
        assert failing.returncode == 1, failing.stdout + failing.stderr
        assert re.search(r"! target broken \(lo\) is failing: .*blocker", failing.stdout)
        assert "target fine" not in failing.stdout  # the healthy one is not blamed
        as_json = daemon.cli("status", "--json")
        assert as_json.returncode == 1 and '"failing": true' in as_json.stdout
    finally:
        daemon.stop()


@pytest.mark.parametrize(("section", "body", "key"), [
    ("syslog", 'priority = 85\ntagg = "x"', "tagg"),
    ("syslog", "priority = 400", "priority"),
    ("rclone", 'spool_dir = "out/spool"\nflagz = ["--fast"]', "flagz"),
    ("rclone", "retry_min_s = -1", "retry_min_s"),
    ("redis", 'host = "127.0.0.1"\nprot = 6379', "prot"),
    ("redis", 'port = "six"', "port"),
    ("cloudshark", 'token = "abc"\nupload = "yes"', "upload"),
    ("cloudshark", "hots = 1", "hots"),
    ("status", "port = 70000", "port"),
    ("status", 'hots = "127.0.0.1"', "hots"),
    ("ring", "max_secnds = 5", "max_secnds"),
    ("ring", "max_seconds = 60\nmax_bytes = 5", "max_bytes"),
])
def test_check_names_the_key_and_line_in_every_section(tmp_path, section, body, key):
    text = f'[general]\nnode = "n1"\n\n[[interface]]\nname = "lo"\n\n[{section}]\n{body}\n'
    line = next(n for n, t in enumerate(text.splitlines(), 1) if t.startswith(f"{key} ="))
    (tmp_path / "daemon.toml").write_text(text)
    proc = pushcap("check", "--config", str(tmp_path / "daemon.toml"))
    assert proc.returncode == 1, proc.stdout
    message = one_error_line(proc)
    assert f"[{section}] {key}" in message and f"line {line}" in message, message
    assert "daemon.toml" in message
    run = pushcap("run", "--config", str(tmp_path / "daemon.toml"), "--lua",
                  str(REPO / "etc/push_realtime.lua"), cwd=tmp_path)
    assert run.returncode == 1 and one_error_line(run) == message  # run refuses it alike


@pytest.mark.parametrize(("body", "key"), [
    ("maxpackts = 5", "maxpackts"),  # a typo of maxpackets: named, not ignored
    ('node = ""', "node"),
    ('loglevel = "loud"', "loglevel"),
    ("logdir = 5", "logdir"),
])
def test_check_names_a_general_key_and_its_line(tmp_path, body, key):
    """[general] is checked as every other section is: pcapdaemon's keys and node, loglevel,
    logdir; anything else, or a bad value, is named with its line."""
    (tmp_path / "daemon.toml").write_text(f'[[interface]]\nname = "lo"\n\n[general]\n'
                                          f'maxpackets = 100\n{body}\n')
    proc = pushcap("check", "--config", str(tmp_path / "daemon.toml"))
    assert proc.returncode == 1, proc.stdout
    message = one_error_line(proc)
    assert f"[general] {key} (line 6)" in message, message


def ip_packets(path: Path) -> int:
    with path.open("rb") as f:
        return sum(isinstance(dpkt.ethernet.Ethernet(buf).data, dpkt.ip.IP | dpkt.ip6.IP6)
                   for _, buf in dpkt.pcap.Reader(f))


def test_replay_runs_a_flows_target(tmp_path, collector):
    capture = PCAPS_DIR / "http-bro.org.pcap"
    (tmp_path / "push.lua").write_text(
        f'return {{ Target = {{ {{ Desc = "fl", Mode = "flows", Path = "{collector.url}", '
        'Interval = 5 } } }')
    proc = pushcap("replay", str(capture), "--lua", "push.lua", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    sent = int(re.search(r"fl: packets=\d+ intervals=\d+ records_sent=(\d+)", proc.stdout)[1])
    records = collector.wait_for(lambda r: len(r) >= sent, 10)
    assert len(records) == sent > 0
    assert sum(r["count"] for r in records) == ip_packets(capture)


def test_python_m_pushcap_is_the_pushcap_command():
    module = pushcap("--version")
    script = subprocess.run([str(Path(sys.executable).parent / "pushcap"), "--version"],
                            capture_output=True, text=True, timeout=60)
    assert module.returncode == 0 and module.stdout == script.stdout
    assert module.stdout.startswith("pushcap ") and "packet path: C" in module.stdout


@pytest.mark.parametrize(("args", "says"), [
    (("--interval", "nan"), "--interval nan: must be 0.1 to 86400 seconds"),
    (("--interval", "inf"), "--interval inf: must be 0.1 to 86400 seconds"),
    (("--interval", "1e400"), "--interval inf: must be 0.1 to 86400 seconds"),
    (("--max-flows", "0"), "--max-flows 0: must be at least 1"),
    (("udp://[::1:9",), 'flows destination "udp://[::1:9": Invalid IPv6 URL'),
])
def test_flows_refuses_bad_options_in_one_line(args, says):
    """Issue 17, item 15: these ended in tracebacks."""
    proc = pushcap("flows", "--read", str(PCAPS_DIR / "tls-sll2.pcap"), *args)
    assert proc.returncode == 1
    assert says in one_error_line(proc)


@pytest.mark.parametrize(("text", "says"), [
    ('[general]\nloglevel = {a = 1}\n', "[general] loglevel (line 2) = {'a': 1}: use one of"),
    ("x = " + "[" * 1000 + "]" * 1000 + "\n", "values nested too deeply"),
])
def test_a_hostile_toml_is_one_line(tmp_path, text, says):
    """Issue 17, item 13: a TypeError and a RecursionError before."""
    (tmp_path / "daemon.toml").write_text(text + '[[interface]]\nname = "lo"\n')
    proc = pushcap("check", "--config", str(tmp_path / "daemon.toml"))
    assert proc.returncode == 1
    assert says in one_error_line(proc)


def test_status_and_replay_read_only_what_they_need_of_the_file(tmp_path):
    """A file that `run` accepts only with its flags (the CloudShark token given as -cstoken)
    is still a file `status` finds the daemon with and `replay` takes [rclone] from."""
    toml = tmp_path / "daemon.toml"
    toml.write_text(f'[cloudshark]\nupload = true\n[[interface]]\nname = "lo"\n'
                    f"[status]\nport = {free_port()}\n")
    assert "token is missing" in one_error_line(pushcap("check", "--config", str(toml)))
    status = pushcap("status", "--config", str(toml))
    assert status.returncode == 2 and "no daemon answers" in one_error_line(status)
    (tmp_path / "push.lua").write_text(
        'return { Target = { { Desc = "all", Mode = "File", Path = "o/all" } } }')
    replay = pushcap("replay", str(PCAPS_DIR / "tls-sll2.pcap"), "--lua", "push.lua",
                     "--config", str(toml), cwd=tmp_path)
    assert replay.returncode == 0, replay.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text('[status]\nport = "x"\n[[interface]]\nname = "lo"\n')
    status = pushcap("status", "--config", str(broken))
    assert status.returncode == 2 and "[status] port (line 2)" in one_error_line(status)


def test_an_empty_syslog_table_turns_nothing_on(tmp_path):
    """A template with its [syslog] keys commented out must not send to /dev/log."""
    from pushcap.config.toml import load_daemon_config

    (tmp_path / "d.toml").write_text('[syslog]\n# priority = 85\n[[interface]]\nname = "lo"\n')
    assert load_daemon_config(tmp_path / "d.toml").syslog is None


def test_a_split_of_thousands_of_digits_is_a_field_error(tmp_path):
    (tmp_path / "push.lua").write_text(
        'return { Target = { { Desc = "a", Mode = "File", Path = "o/a", Split = '
        f'"--split-time {"1" * 5000}" }} }} }}')
    proc = pushcap("check", "--lua", str(tmp_path / "push.lua"))
    assert proc.returncode == 1
    assert 'target 1 "a": Split' in one_error_line(proc)
