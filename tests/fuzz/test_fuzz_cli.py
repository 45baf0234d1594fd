"""`pushcap` command lines, fuzzed: every command ends with an exit code and, when it fails, a
line saying why; never a traceback, never the catch-all's "(unexpected; ...)" (cli.main turns
an exception nobody expected into that line: here it is a bug).

Argument lists for check, replay, flows, status and trigger are built from each command's
options with good, bad and odd values (files that exist, are missing, are folders or devices,
are not capture or config files; numbers out of range, nan, text), with words dropped, repeated
or added. They run in this process through `cli.main` (a process start per case would cost
more than the case); a few fixed ones run as the real console script.

Kept out: `run`, and `flows --interface` (they capture until a signal), host names that need
DNS, and any Redis or status address but a closed loopback port (so no case waits for a
daemon's answer).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import pytest
import redis
from fuzz_helpers import REPO, examples, outcome, within
from hypothesis import given
from hypothesis import strategies as st
from oracle import PCAPS_DIR
from redis.backoff import NoBackoff
from redis.retry import Retry

from pushcap import cli

pytestmark = pytest.mark.fuzz

PUSHCAP = str(Path(sys.executable).parent / "pushcap")


def closed_port() -> int:
    """A loopback TCP port nothing listens on (bound, then closed)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


FOLDER = Path(tempfile.mkdtemp(prefix="pushcap-fuzz-cli-"))  # the strategies name its files
atexit.register(shutil.rmtree, FOLDER, ignore_errors=True)
CLOSED = closed_port()
OUT = FOLDER / "out"


def write(name: str, text: str) -> str:
    path = FOLDER / name
    path.write_text(text)
    return str(path)


FILES = {
    "lua_file": write("file.lua", 'return { Target = { { Desc = "all", Mode = "File", '
                      f'Path = "{OUT}/all", Split = "--split-byte 1e6" }} }} }}\n'),
    "lua_flows": write("flows.lua", 'return { Target = { { Desc = "fl", Mode = "flows", '
                       'Path = "udp://127.0.0.1:9", Interval = 1 } } }\n'),
    "lua_two": write("two.lua", 'return { Target = { { Desc = "a", Mode = "File", '
                     f'Path = "{OUT}/a", FilterBPF = "tcp" }}, {{ Desc = "b", Mode = "File", '
                     f'Path = "{OUT}/b", PipeCmd = "gzip -c", FileSuffix = ".pcap.gz" }} }} }}\n'),
    "lua_bad": write("bad.lua", "return { Target = = }\n"),
    "lua_iface": write("iface.lua", 'return { Target = { { Desc = "x", Mode = "File", '
                       f'Path = "{OUT}/x", Interface = "eth7" }} }} }}\n'),
    "toml_ok": write("ok.toml", f'[[interface]]\nname = "lo"\nalias = ["local"]\n'
                     f'[status]\nport = {CLOSED}\n[redis]\nhost = "127.0.0.1"\nport = {CLOSED}\n'),
    "toml_bad": write("bad.toml", "[ring\nmax_seconds = 1\n"),
    "toml_odd": write("odd.toml", f'[[interface]]\nname = "lo"\n[status]\nhost = "::1"\n'
                      f'port = {CLOSED}\n[ring]\nbatch_packets = 1\n[redis]\nport = {CLOSED}\n'
                      '[general]\ndefaulttimeout = "1m"\nmaxtimeout = "2m"\n'),
    "json_ranges": write("ranges.json", json.dumps({"syncToken": "1", "webhooks": {
        "prefixes_ipv4": ["10.0.0.0/8"], "prefixes_ipv6": []}})),
    "json_bad": write("bad.json", "{not json"),
    "empty": write("empty.pcap", ""),
    "cut": str(FOLDER / "cut.pcap"),
    "folder": str(FOLDER),
    "missing": str(FOLDER / "missing"),
    "newline": str(FOLDER / "new\nline.toml"),  # missing too: its name must come out one line
    "device": "/dev/null",
    "pcap": str(PCAPS_DIR / "dns-ipv6-rawip.pcap"),
    "pcap_ns": str(PCAPS_DIR / "tcpreplay-test-nano.pcap"),
    "pcapng": str(PCAPS_DIR / "pcapng-multi-interface.pcapng"),
    "not_capture": str(PCAPS_DIR / "README.md"),
}
Path(FILES["cut"]).write_bytes((PCAPS_DIR / "dns-ipv6-rawip.pcap").read_bytes()[:300])

LUA = st.sampled_from([FILES[k] for k in ("lua_file", "lua_flows", "lua_two", "lua_bad",
                                          "lua_iface", "missing", "folder", "empty", "device",
                                          "toml_ok")])
TOML = st.sampled_from([FILES[k] for k in ("toml_ok", "toml_bad", "toml_odd", "missing",
                                           "newline", "folder", "empty", "lua_file", "device")])
CAPTURE = st.sampled_from([FILES[k] for k in ("pcap", "pcap_ns", "pcapng", "cut", "empty",
                                              "folder", "missing", "device", "not_capture",
                                              "lua_file")])
ODD = st.one_of(st.sampled_from(["", " ", "-", "--", "-1", "0", "nan", "inf", "-inf", "1e400",
                                 "9" * 30, "é", "💥", "a\nb", "\x01", "x" * 300, "=", "--=x"]),
                st.text(max_size=8))
INTS = st.one_of(st.integers(-5, 100_000).map(str), st.sampled_from(["0", "-1", "1e3", "x", "",
                                                                     "9" * 25, "0x10"]))
FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                   st.sampled_from(["0", "0.05", "0.1", "20", "86400", "86401", "nan", "1e400",
                                    "-1", "x"]))
DESTINATIONS = st.sampled_from(["udp://127.0.0.1:9", f"udp://127.0.0.1:{CLOSED}",
                                "udp://[::1]:9", "udp://localhost:9", "udp://127.0.0.1:0",
                                "udp://127.0.0.1:99999", "tcp://127.0.0.1:9", "udp://[::1",
                                "udp://127.0.0.1", "127.0.0.1:9", "", "udp://:9",
                                "udp://300.1.1.1:9"])
GO_BOOL = st.sampled_from(["true", "false", "1", "0", "t", "f", "yes", ""])
REDIS_NODES = st.sampled_from(["127.0.0.1", "localhost", "::1", "", f"redis://127.0.0.1:{CLOSED}",
                               "rediss://[::1", "redis://h:x", "ftp://127.0.0.1",
                               f"redis://u:secret@127.0.0.1:{CLOSED}/0"])
REDIS_PORTS = st.sampled_from([str(CLOSED), "0", "-1", "70000", "x", ""])

PCAPDAEMON_FLAGS = [
    ("-cshost", st.sampled_from(["cloudshark.org", "", "bad host", "[::1]", "x" * 300])),
    ("-csscheme", st.sampled_from(["http", "https", "ftp", ""])),
    ("-cstoken", st.sampled_from(["abc_DEF-1", "", "tok en", "x" * 300])),
    ("-csport", INTS), ("-cstimeout", FLOATS), ("-redischannel", ODD),
    ("-redisnode", REDIS_NODES), ("-redisport", REDIS_PORTS), ("-upload", GO_BOOL),
    ("-upload", None), ("-writelocal", GO_BOOL), ("-writelocal", None),
    ("-destdir", st.sampled_from([str(FOLDER), FILES["missing"], FILES["pcap"], ""])),
    ("-maxpackets", INTS), ("-config", TOML),
]
OPTIONS = {
    "check": [("--lua", LUA), ("--config", TOML), ("--probe", None), *PCAPDAEMON_FLAGS],
    "replay": [(None, CAPTURE), ("--lua", LUA), ("--config", TOML), ("--batch-packets", INTS),
               ("--quiet", None)],
    "flows": [("--read", CAPTURE), ("-r", CAPTURE), (None, DESTINATIONS), ("--interval", FLOATS),
              ("--bpf", st.sampled_from(["tcp", "udp port 53", "tcpp", "", "ip6", "("])),
              ("--no-dns", None),
              ("--datadog-ranges", st.sampled_from([FILES[k] for k in (
                  "json_ranges", "json_bad", "missing", "folder", "empty")])),
              ("--max-flows", INTS), ("--max-datagram-bytes", INTS),
              ("--include-own-traffic", None)],
    "status": [("--config", TOML), ("--json", None)],
    "trigger": [("--node", st.sampled_from(["any", "cap-1", ""])), ("--nodere", ODD),
                ("--interface", st.sampled_from(["lo", "eth0", ""])), ("--alias", ODD),
                ("--bpf", ODD), ("--snap", INTS), ("--packets", INTS), ("--bytes", INTS),
                ("--timeout", FLOATS), ("--duration", FLOATS), ("--before", FLOATS),
                ("--start", FLOATS), ("--end", FLOATS), ("--tags", ODD), ("--customer", ODD),
                ("--alertid", INTS), ("--logrequest", None), ("--config", TOML),
                ("--redisnode", REDIS_NODES), ("--redisport", REDIS_PORTS),
                ("--redischannel", ODD), ("--wait", FLOATS), ("--expect", INTS),
                ("--json", None)],
}
# What each command needs to do anything beyond refusing its arguments, given most of the time.
REQUIRED = {"check": [("--lua", LUA), ("--config", TOML)], "status": [("--config", TOML)],
            "replay": [(None, CAPTURE), ("--lua", LUA)],
            "flows": [("--read", CAPTURE), ("--no-dns", None)],
            "trigger": [("--node", st.just("any")), ("--interface", st.just("lo"))]}


@st.composite
def command_lines(draw) -> list[str]:
    command = draw(st.sampled_from(sorted(OPTIONS)))
    chosen = draw(st.lists(st.sampled_from(OPTIONS[command]), max_size=5))
    if command in REQUIRED and draw(st.integers(0, 4)):
        chosen = REQUIRED[command] + [c for c in chosen if c[0] is not None]
    words = [command]
    for option, values in chosen:
        if option is not None:
            words.append(option)
        if values is not None:
            value = draw(values)
            if option is not None and option.startswith("--") and draw(st.integers(0, 5)) == 0:
                words[-1] = f"{option}={value}"
            else:
                words.append(value)
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):  # a word dropped, repeated, added
        op = draw(st.sampled_from(["drop", "repeat", "add"]))
        at = draw(st.integers(1, len(words)))
        if op == "drop" and at < len(words):
            del words[at]
        elif op == "repeat" and at < len(words):
            words.insert(at, words[at])
        elif op == "add":
            words.insert(at, draw(st.one_of(ODD, st.sampled_from(["--help", "--version",
                                                                  "--bogus", "-x"]))))
    if command == "trigger":  # never the default Redis (a real one would answer)
        words += ["--redisnode", "127.0.0.1", "--redisport", str(CLOSED)]
    if command == "flows" and "--no-dns" not in words:
        words.append("--no-dns")  # reverse DNS of the file's addresses: not in a test
    return words


# --- the property -----------------------------------------------------------------------------

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} level=")
KNOWN_LINES = re.compile(
    r"^(usage: |  |pushcap(:| [a-z]+:) |published requestid=|waiting up to |no results within )")


def check_stderr(words: list[str], code: int | None, stderr: str) -> None:
    shown = f"pushcap {words!r} -> exit {code}:\n{stderr}"
    assert "Traceback" not in stderr, shown
    assert "(unexpected;" not in stderr, shown
    if code not in (0, None):
        assert stderr.strip(), f"failed without a word: {shown}"
    # argparse's usage errors quote the words they refuse as given, newlines and all
    echoed = [part for word in words for part in word.split("\n")[1:]] \
        if code == 2 and stderr.startswith("usage: ") else []
    for line in stderr.split("\n"):
        # every line is a log line, argparse's usage or a line of pushcap's own: a line that is
        # none of them is the rest of a message that held a newline
        assert LOG_LINE.match(line) or KNOWN_LINES.match(line) or not line.strip() \
            or any(line.startswith(part) for part in echoed), f"line {line!r} of: {shown}"


@contextlib.contextmanager
def isolated():
    """The process state a command changes: working folder, the pushcap logger, PUSHCAP_DEBUG."""
    logger = logging.getLogger("pushcap")
    saved = (logger.handlers[:], logger.level, logger.propagate, os.getcwd(),
             os.environ.pop("PUSHCAP_DEBUG", None))
    os.chdir(FOLDER)
    try:
        yield
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved[:3]
        os.chdir(saved[3])
        shutil.rmtree(OUT, ignore_errors=True)  # what a replay wrote
        if saved[4] is not None:
            os.environ["PUSHCAP_DEBUG"] = saved[4]


class RefusedAtOnce(redis.Redis):
    """redis.Redis without its retries and backoff: `trigger` reaches only a closed port here,
    where redis-py's default retries take 4 s to give the same ConnectionError."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, retry=Retry(NoBackoff(), 0), **kwargs)


def run_in_process(words: list[str]) -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    with isolated(), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), \
            mock.patch.object(redis, "Redis", RefusedAtOnce):
        with within(what=f"pushcap {words!r}"):
            try:
                code = cli.main(words)
            except SystemExit as exc:  # argparse: --help, --version, a usage error
                code = exc.code
    assert code in (0, 1, 2, None), f"exit {code!r} for {words!r}"
    outcome(f"{words[0]} exit {code}")
    check_stderr(words, code, stderr.getvalue())


@examples(200)
@given(command_lines())
def test_command_lines(words):
    run_in_process(words)


@pytest.mark.parametrize("words", [
    ["replay", FILES["cut"], "--lua", FILES["lua_two"]],
    ["replay", FILES["device"], "--lua", FILES["lua_file"]],
    ["check", "--lua", FILES["lua_iface"], "--config", FILES["toml_ok"]],
    ["flows", "--read", FILES["not_capture"], "--no-dns"],
    ["status", "--config", FILES["toml_odd"]],
    ["trigger", "--node", "any", "--interface", "lo", "--redisport", str(CLOSED)],
    ["replay", "--batch-packets", "0", FILES["pcap"]],
    ["check", "-cstimeout", "x"],
])
def test_the_console_script(words):
    """The real `pushcap` (entry(), os._exit after replay): same rules, as a process."""
    env = {k: v for k, v in os.environ.items() if k != "PUSHCAP_DEBUG"}
    proc = subprocess.run([PUSHCAP, *words], cwd=FOLDER, capture_output=True, text=True,
                          timeout=60, env=env, check=False)
    assert proc.returncode in (0, 1, 2), proc
    check_stderr(words, proc.returncode, proc.stderr)


def test_the_repository_is_not_the_working_folder():
    """Commands run in a folder of their own: nothing they write lands in the checkout."""
    assert not FOLDER.resolve().is_relative_to(REPO)
