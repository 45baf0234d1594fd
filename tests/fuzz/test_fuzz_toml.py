"""pcapdaemon.toml, fuzzed: every reader of the file gives its settings or a ConfigError in one
line, never another exception.

The readers: `load_daemon_config` (run, check, replay --config), `load_status_address` (status,
reload) and `pushcap trigger`'s own reading of `[redis]` and the wait (trigger/command.py).
Files are generated in pcapdaemon.toml's shape (its sections and keys, holding values of every
TOML type: huge integers, inf and nan, dates, odd strings, arrays, inline tables) and mutated
from the shipped and tested files.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import tempfile
from pathlib import Path

import pytest
from fuzz_helpers import REPO, examples, mutate, one_line, outcome, within
from hypothesis import given
from hypothesis import strategies as st

from pushcap.config.model import ConfigError, DaemonConfig
from pushcap.config.toml import RING_KEYS, load_daemon_config, load_status_address
from pushcap.trigger import command as trigger_command

pytestmark = pytest.mark.fuzz

NAME = "pcapdaemon.toml"
SECTION_KEYS = {
    "general": ["node", "maxpackets", "writelocal", "localdir", "snaplength", "loglevel",
                "logdir", "maxtimeout", "defaulttimeout", "maxduration", "maxbytes",
                "fallbackdir", "logrequests", "maxconcurrent", "maxqueued"],
    "redis": ["host", "port", "channel", "auth", "user", "listen", "tls", "tlsverify", "cafile",
              "streammaxlen"],
    "cloudshark": ["host", "port", "scheme", "timeout", "token", "upload", "verify", "cafile",
                   "retries", "retrybackoff"],
    "syslog": ["priority", "tag", "address"],
    "ring": list(RING_KEYS),
    "rclone": ["config", "flags", "spool_dir", "spool_max_bytes", "retry_min_s", "retry_max_s",
               "command_timeout_s"],
    "status": ["host", "port"],
}
SEEDS = [
    (REPO / "etc" / "pcapdaemon.toml").read_text(),
    # test_toml.py's SEED_EXAMPLE, the tag quoted
    '[general]\nmaxpackets  = 50000\nwritelocal  = false\nlocaldir    = "/tmp"\n'
    'snaplength  = 500\n\n[cloudshark]\nhost        = "cloudshark.org"\nscheme      = "https"\n'
    'port        = 443\ntoken       = "fffffffffffffffffff"\nupload      = true\n\n[redis]\n'
    'host        = "node.running.redis.net"\nport        = 6379\nchannel     = "capture"\n\n'
    '[syslog]\npriority    = 85\ntag         = "pcapdaemon"\n\n[[interface]]\nname = "eth0"\n'
    'alias       = ["main", "public"]\n\n[[interface]]\nname        = "lo"\n'
    'alias       = ["local"]\n',
    '[general]\nnode = "cap-1"\nmaxtimeout = "1m30s"\ndefaulttimeout = "45s"\n'
    '[redis]\nhost = "rediss://user:secret@127.0.0.1:6380"\n[status]\nport = 0\n'
    '[rclone]\nflags = ["--bwlimit", "10M"]\nspool_max_bytes = 1e9\n'
    '[syslog]\naddress = "udp://[::1]:514"\n[[interface]]\nname = "lo"\n'
    '[ring]\nmax_seconds = 1.5\nbatch_packets = 1\n',
]

# --- TOML text from values --------------------------------------------------------------------


def toml_key(key: str) -> str:
    bare = key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key)
    return key if bare else toml_string(key)


def toml_string(text: str) -> str:
    out = []
    for ch in text:
        code = ord(ch)
        if ch in "\\\"":
            out.append("\\" + ch)
        elif code < 32 or code == 127:
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\ufffd")  # TOML text is UTF-8: no lone surrogates
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, RawToml):
        return value.text
    raise TypeError(value)


class RawToml:
    """A value written as TOML text as it stands (dates, hex, underscores)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"RawToml({self.text!r})"


ODD_TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", " ", "lo", "eth0", "local", "any", "info", "debug", "http", "https",
                     "127.0.0.1", "::1", "[::1]", "udp://127.0.0.1:514", "udp://:0", "/dev/log",
                     "90s", "1m30s", "1h", "0s", "-1s", "1.5.5s", "9" * 400 + "h", "1e3s",
                     "redis://u:p@127.0.0.1:1/0", "rediss://[::1", "redis://h:x", "ftp://h",
                     "--no-check-dest", "--bwlimit", "a\nb", "tab\there", "é", "💥",
                     "x" * 300, "capture", "bad channel", "/tmp", "/nonexistent/dir"]),
)
NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 65535, 65536, 262144, 262145, 2**31, 2**63 - 1, 2**63, 10**30,
                     10**400, -(10**400), 1e8, 1e300, 1e-300, 0.5]),
)
RAW = st.sampled_from([RawToml(t) for t in [
    "1979-05-27T07:32:00Z", "1979-05-27", "07:32:00", "1979-05-27T00:32:00.999999-07:00",
    "0xDEADBEEF", "0o755", "0b1101", "1_000_000", "+inf", "-nan", "1e400", "-0.0",
    "'''multi\nline'''", '"""a\\\nb"""', "'literal \\ no escape'",
]])
VALUES = st.recursive(
    st.one_of(st.booleans(), NUMBERS, ODD_TEXT, RAW),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(ODD_TEXT, inner, max_size=3)),
    max_leaves=5,
)


@st.composite
def documents(draw) -> str:
    """A file in pcapdaemon.toml's shape: an interface (mostly), sections with their keys
    (mostly) holding any TOML value, now and then an unknown section or key."""
    lines: list[str] = []
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 0]))):
        lines.append("[[interface]]")
        if draw(st.integers(0, 5)):
            lines.append(f"name = {toml_string(draw(st.sampled_from(['lo', 'eth0', 'x' * 16])))}")
        else:
            lines.append(f"name = {toml_value(draw(VALUES))}")
        if draw(st.booleans()):
            lines.append(f"alias = {toml_value(draw(st.one_of(VALUES, st.just(['local']))))}")
        if not draw(st.integers(0, 9)):
            lines.append(f"{toml_key(draw(ODD_TEXT))} = {toml_value(draw(VALUES))}")
    names = st.one_of(*[st.sampled_from(sorted(SECTION_KEYS))] * 6, ODD_TEXT)
    for section in draw(st.lists(names, max_size=4, unique=True)):
        if section == "interface":
            continue
        lines.append(f"[{toml_key(section)}]")
        known = SECTION_KEYS.get(section, [])
        keys = st.one_of(*[st.sampled_from(known)] * 6, ODD_TEXT) if known else ODD_TEXT
        for key in draw(st.lists(keys, max_size=5, unique=True)):
            lines.append(f"{toml_key(key)} = {toml_value(draw(VALUES))}")
    if not draw(st.integers(0, 9)):  # a top-level key that is not a table
        section = draw(st.sampled_from(sorted(SECTION_KEYS)))
        lines.insert(0, f"{section} = {toml_value(draw(VALUES))}")
    return "\n".join(lines) + "\n"


@st.composite
def mutants(draw) -> bytes:
    """A valid file with a few mutations: bits flipped, bytes removed or repeated, a TOML token
    inserted, the file cut short."""
    buf = bytearray(draw(st.sampled_from(SEEDS)).encode())
    tokens = [b"[", b"]", b"[[", b"]]", b"=", b'"', b"'''", b'"""', b"\\", b"\\u", b",", b"{",
              b"}", b".", b"#", b"\n", b"\r", b"\x00", b"\xff", b"\xed\xa0\x80", b"inf", b"nan",
              b"9" * 30, b"1979-05-27", b"interface", b"ring", b"redis"]
    return mutate(draw, buf, tokens, 30)


# --- the property -----------------------------------------------------------------------------


def refused(exc: ConfigError) -> None:
    message = str(exc)
    assert message and one_line(message), message
    message.encode("utf-8")


def assert_finite(value, where: str = "config") -> None:
    """Every number of a loaded config is finite (nan or inf as a limit or timeout would turn
    every check against it off, or never end a wait)."""
    if dataclasses.is_dataclass(value):
        for field in dataclasses.fields(value):
            assert_finite(getattr(value, field.name), f"{where}.{field.name}")
    elif isinstance(value, tuple | list):
        for i, item in enumerate(value):
            assert_finite(item, f"{where}[{i}]")
    elif isinstance(value, float):
        assert math.isfinite(value), f"{where} = {value}"


def trigger_args(config: Path) -> argparse.Namespace:
    """What `pushcap trigger --node any --interface lo --config F` parses to."""
    names = ("node", "nodere", "alias", "bpf", "snap", "packets", "bytes", "timeout",
             "duration", "before", "start", "end", "tags", "customer", "alertid", "wait",
             "expect", "pd_redisnode", "pd_redisport", "pd_redischannel")
    args = argparse.Namespace(**dict.fromkeys(names), interface=["lo"], logrequest=False,
                              json=False, config=str(config))
    args.node = "any"
    return args


def check_file(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / NAME
        path.write_bytes(data)
        with within(what="reading pcapdaemon.toml"):
            try:
                config = load_daemon_config(path)
            except ConfigError as exc:
                refused(exc)
                outcome("refused")
            else:
                assert isinstance(config, DaemonConfig)
                assert config.interfaces
                assert_finite(config)
                outcome("loaded")
            try:
                host, port = load_status_address(path)
            except ConfigError as exc:
                refused(exc)
            else:
                assert isinstance(host, str) and 0 <= port <= 65535
            check_trigger_reading(path)


def check_trigger_reading(path: Path) -> None:
    """`pushcap trigger --config F`: the Redis settings and the wait, or a ConfigError."""
    args = trigger_args(path)
    try:
        config = trigger_command._load_config(path)
        trigger_command._settings(args, config)
        wait, how = trigger_command.wait_s(args, config, now_s=1_700_000_000.0)
    except ConfigError as exc:
        refused(exc)
    else:
        assert wait >= 0 and one_line(how)


@pytest.mark.parametrize("seed", range(len(SEEDS)))
def test_the_seeds_load(seed):
    """The mutations start from valid files (else they would test only refusals)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / NAME
        path.write_text(SEEDS[seed])
        assert load_daemon_config(path).interfaces
    check_file(SEEDS[seed].encode())


@examples(200)
@given(documents())
def test_generated_files(text):
    check_file(text.encode())


@examples(200)
@given(mutants())
def test_mutated_files(data):
    check_file(data)


@pytest.mark.parametrize("text", [
    "[ring]\nmax_seconds = " + "9" * 400 + "\n[[interface]]\nname = 'lo'\n",
    "[general]\nmaxtimeout = " + "9" * 400 + "\n[[interface]]\nname = 'lo'\n",
    "[general]\nmaxtimeout = \"" + "9" * 400 + "h\"\n[[interface]]\nname = 'lo'\n",
    "a = " + "[" * 3000 + "]" * 3000 + "\n",
    "a = " + "{b = " * 3000 + "1" + "}" * 3000 + "\n",
    "[redis]\n\"a\\nb\" = 1\n[[interface]]\nname = 'lo'\n",
    "redis = 5\ncloudshark = 1\ngeneral = []\n[[interface]]\nname = 'lo'\n",
    "[general]\ndefaulttimeout = 1979-05-27\n[[interface]]\nname = 'lo'\n",
])
def test_hostile_shapes(text):
    check_file(text.encode())

