"""Validate one push target's fields, as pushcap.config.lua hands them over from the Lua table.

lua.py runs the file and checks the table's shape; each target arrives here as plain data (Lua
strings as bytes, numbers, booleans, tables as dicts, other values as LuaOpaque), so the rules for
FMADIO's fields can be read and tested without the sandbox.

Decisions on FMADIO's fields:
- Mode is matched case-insensitively (`file`, `RCLONE` are accepted) and normalized to PushMode.
- Split and FileName default to defaults.DEFAULT_SPLIT / DEFAULT_FILENAME when absent.
- A time split shorter than the FileName's resolution is refused: files would overwrite each other.
- PipeCmd names a compressor that pushcap runs in-process on each finished file; only the known
  command lines are accepted and none is ever executed, so the config cannot run a program.
- FileSuffix defaults to the compressor's (`.pcap`, `.pcap.gz`...) and must agree with it, so a
  file's name never lies about its content.
- Chunked, RingName and Compress are FMADIO fields pushcap does not support yet; any other key is
  refused as unknown, so a typo never silently drops a setting.
- `Interface` is pushcap's own field: one captured interface name or alias (None = all).
- Mode "flows" is pushcap's own: flow statistics as JSON lines to Path = "udp://HOST:PORT" every
  `Interval` seconds; the file fields (Split, FileName, PipeCmd, FileSuffix) are refused there and
  Interval is refused elsewhere, since a field that is silently ignored is a misconfiguration.
Every error is one ConfigError: `<file>: target <i> "<Desc>": <Field> <value>: <problem and fix>`.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import pcapy

from pushcap import defaults
from pushcap.config.model import (
    ConfigError,
    NamingRule,
    PushMode,
    SplitKind,
    SplitRule,
    TargetConfig,
)
from pushcap.push.naming import STRFTIME_MODE, resolution_ns, validate_naming

FIELDS = (
    "Desc", "Mode", "Path", "Split", "FileName", "FilterBPF", "Interface", "PipeCmd", "FileSuffix",
    "Interval",
)  # fmt: skip
UNSUPPORTED_FIELDS = ("Chunked", "RingName", "Compress")
FILE_ONLY_FIELDS = ("Split", "FileName", "PipeCmd", "FileSuffix")  # refused for Mode flows

_SNAPLEN_BYTES = 262144
_MIN_SPLIT_NS = 1_000_000
_MIN_SPLIT_BYTES = 1024
_MAX_SPLIT = 2**63 - 1
_DEFAULT_INTERVAL_S = 20.0  # same as TargetConfig.interval_s
_MIN_INTERVAL_S = 0.1
_MAX_INTERVAL_S = 86400.0
_DESC_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_INTERFACE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,63}")
_NUMBER_RE = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
# rclone: `remote:path`, `remote,opt=v:path` or `:backend,opt="v":path` (quoted values may hold ':')
_RCLONE_RE = re.compile(
    r"(?P<remote>:?[\w.+@-](?:[\w. +@-]*[\w.+@-])?)"
    r"(?P<opts>,(?:\"[^\"]*\"|'[^']*'|[^:\"'])*)?:(?P<path>.*)",
    re.S,
)
_UDP_RE = re.compile(r"udp://(?P<host>\[[^\[\]/]*\]|[^\[\]/:]*):(?P<port>[0-9]{1,5})")
_HOSTNAME_RE = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")
# The compressor command lines pushcap knows (whitespace-normalized); none is ever executed.
_PIPE_CMD_RE = re.compile(
    r"cat|(?:gzip|lz4) -c(?: -[1-9])?|zstd -c(?: -(?:1[0-9]|[1-9]))?(?: -T0)?"
)
_PIPE_CMD_KNOWN = "cat, gzip -c [-1..-9], lz4 -c [-1..-9], zstd -c [-1..-19] [-T0]"
_SUFFIX_RE = re.compile(r"\.[A-Za-z0-9._-]{1,20}")
# compressor -> (default FileSuffix, endings a FileSuffix may have); None = no compression
_SUFFIXES: dict[str | None, tuple[str, tuple[str, ...]]] = {
    None: (".pcap", ()),
    "gzip": (".pcap.gz", (".gz",)),
    "lz4": (".pcap.lz4", (".lz4",)),
    "zstd": (".pcap.zstd", (".zst", ".zstd")),
}
_COMPRESSED_ENDINGS = tuple(e for _, ends in _SUFFIXES.values() for e in ends)


class LuaOpaque:
    """A Lua value with no Python form (function, thread, a table nested too deep, a table key).

    Compared by identity, so two table keys of one table stay two keys.
    """

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return f"<a {self.kind}>"


class _FieldError(Exception):
    """A field's value is wrong; the message says what and how to fix it (no prefix)."""


# --- structure --------------------------------------------------------------------------------


def lua_repr(value: Any, limit: int = 80) -> str:
    """A value as the reader wrote it in Lua: strings in double quotes, nil, true, numbers."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= limit else text[: limit - 4] + '..."'
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "<a table>"
    if isinstance(value, LuaOpaque):
        return repr(value)
    return f"<a {type(value).__name__}>"


# --- one target -------------------------------------------------------------------------------


def validate_target(fields: dict[str, Any], index: int, source_name: str) -> TargetConfig:
    """Target `index` from its named fields; the first wrong field raises ConfigError."""
    prefix = f"{source_name}: target {index}"
    desc = _check_field(prefix, "Desc", fields.get("Desc"), _parse_desc)
    prefix = f'{prefix} "{desc}"'
    for name in sorted(fields):
        if name in UNSUPPORTED_FIELDS:
            raise ConfigError(f"{prefix}: {name} is not supported yet by pushcap; remove it")
        if name not in FIELDS:
            raise ConfigError(f"{prefix}: unknown field {name} (known: {', '.join(FIELDS)})")

    mode = _check_field(prefix, "Mode", fields.get("Mode"), _parse_mode)
    if mode is PushMode.FLOWS:
        return _validate_flows(fields, prefix, index, desc)
    if "Interval" in fields:
        _check_field(prefix, "Interval", fields["Interval"], _refuse_interval)
    path = _check_field(prefix, "Path", fields.get("Path"), lambda v: _parse_path(v, mode))
    split_value = fields.get("Split", defaults.DEFAULT_SPLIT.encode())
    split = _check_field(prefix, "Split", split_value, _parse_split)
    name_value = fields.get("FileName", defaults.DEFAULT_FILENAME.encode())
    naming = _check_field(prefix, "FileName", name_value, lambda v: _parse_filename(v, split))
    pipe_cmd = _check_field(prefix, "PipeCmd", fields.get("PipeCmd"), _parse_pipe_cmd)
    suffix_value = fields.get("FileSuffix")
    suffix = _check_field(prefix, "FileSuffix", suffix_value, lambda v: _parse_suffix(v, pipe_cmd))
    return TargetConfig(
        index=index,
        desc=desc,
        mode=mode,
        path=path,
        split=split,
        naming=naming,
        filter_bpf=_check_field(prefix, "FilterBPF", fields.get("FilterBPF"), _parse_bpf),
        interface=_check_field(prefix, "Interface", fields.get("Interface"), _parse_interface),
        pipe_cmd=pipe_cmd,
        file_suffix=suffix,
    )


def _validate_flows(fields: dict[str, Any], prefix: str, index: int, desc: str) -> TargetConfig:
    """A Mode flows target: a UDP destination and an interval; the file fields are refused."""
    for name in FILE_ONLY_FIELDS:
        if name in fields:
            _check_field(prefix, name, fields[name], _refuse_for_flows)
    path = _check_field(prefix, "Path", fields.get("Path"), _parse_udp_path)
    interval = _check_field(prefix, "Interval", fields.get("Interval"), _parse_interval)
    return TargetConfig(
        index=index,
        desc=desc,
        mode=PushMode.FLOWS,
        path=path,
        split=_parse_split(defaults.DEFAULT_SPLIT.encode()),
        naming=_parse_filename(defaults.DEFAULT_FILENAME.encode(), None),
        filter_bpf=_check_field(prefix, "FilterBPF", fields.get("FilterBPF"), _parse_bpf),
        interface=_check_field(prefix, "Interface", fields.get("Interface"), _parse_interface),
        interval_s=interval,
    )


def _check_field(prefix: str, field: str, value: Any, parse: Callable[[Any], Any]) -> Any:
    try:
        return parse(value)
    except _FieldError as e:
        if value is None:
            raise ConfigError(f"{prefix}: {field} is missing: {e}") from None
        raise ConfigError(f"{prefix}: {field} {lua_repr(value)}: {e}") from None


def _text(value: Any, example: str, *, required: bool = True) -> str | None:
    """A field's string value; refuses other types, bad UTF-8 and control characters."""
    if value is None:
        if required:
            raise _FieldError(f"add it, e.g. {example}")
        return None
    if not isinstance(value, bytes):
        raise _FieldError(f"must be a string, e.g. {example}")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise _FieldError("is not valid UTF-8 text") from None
    if any(ord(c) < 0x20 or c == "\x7f" for c in text):
        raise _FieldError("contains a control character (NUL, newline, tab...); remove it")
    if not text.strip():
        raise _FieldError(f"is empty, e.g. {example}")
    if text != text.strip():
        raise _FieldError("has spaces at the start or end; remove them")
    return text


# --- fields -----------------------------------------------------------------------------------


def _parse_desc(value: Any) -> str:
    desc = _text(value, 'Desc = "pcap-all"')
    assert desc is not None
    if not _DESC_RE.fullmatch(desc):
        raise _FieldError(
            "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
            " (it is used in file names and logs)"
        )
    return desc


def _parse_mode(value: Any) -> PushMode:
    text = _text(value, 'Mode = "File"')
    for mode in PushMode:
        if text is not None and text.lower() == mode.value.lower():
            return mode
    raise _FieldError(f"must be {' or '.join(repr(m.value) for m in PushMode)}")


def _parse_path(value: Any, mode: PushMode) -> str:
    example = '"/mnt/remote0/push/all"' if mode is PushMode.FILE else '"remote:push/all"'
    path = _text(value, f"Path = {example} (files are <Path>_<name>.pcap)")
    assert path is not None
    if mode is PushMode.RCLONE:
        match = _RCLONE_RE.fullmatch(path)
        if not match or not match["path"]:
            raise _FieldError(
                'must be an rclone destination "remote:dir/prefix" or ":backend,opts:dir/prefix"'
                " (files are <Path>_<name>.pcap)"
            )
        path_part = match["path"]
    else:
        path_part = path
    if path_part.endswith("/"):
        raise _FieldError(
            "ends with '/': Path is a prefix, not a directory, so files would be named"
            f" '_<name>.pcap'; write e.g. {example}"
        )
    base = path_part.rsplit("/", 1)[-1]
    if base.startswith("."):
        raise _FieldError(
            f"the file prefix {base!r} starts with '.', which would make hidden files like those"
            " pushcap writes before a file is complete; choose a prefix without a leading dot"
        )
    if len(base.encode()) > 180:
        raise _FieldError("the file prefix is longer than 180 bytes; file names are limited to 255")
    return path


def _parse_split(value: Any) -> SplitRule:
    example = '"--split-time 60e9" (one minute) or "--split-byte 1e9" (1 GB)'
    text = _text(value, example)
    assert text is not None
    words = text.split()
    kinds = {"--split-time": SplitKind.TIME, "--split-byte": SplitKind.BYTE}
    if len(words) != 2 or words[0] not in kinds:
        raise _FieldError(f"must be {example}")
    kind = kinds[words[0]]
    unit = "ns" if kind is SplitKind.TIME else "bytes"
    if not _NUMBER_RE.fullmatch(words[1]):
        raise _FieldError(f"{words[1]!r} is not a number of {unit}; write e.g. 60e9 or 1000000")
    try:
        number = Decimal(words[1])
    except InvalidOperation:
        raise _FieldError(f"{words[1]!r} is not a number of {unit}") from None
    if number <= 0 or number > _MAX_SPLIT or number != number.to_integral_value():
        raise _FieldError(f"must be a positive whole number of {unit} below 2^63")
    amount = int(number)
    if kind is SplitKind.TIME and amount < _MIN_SPLIT_NS:
        hint = f"; did you mean {amount}e9 ({amount} s)?" if amount <= 86400 else ""
        raise _FieldError(
            f"is {amount} ns: --split-time is in nanoseconds and must be at least 1e6 (1 ms),"
            f" or files would hold almost nothing{hint}"
        )
    if kind is SplitKind.BYTE and amount < _MIN_SPLIT_BYTES:
        raise _FieldError(
            f"is {amount} bytes: must be at least {_MIN_SPLIT_BYTES}, since each file carries a"
            " 24-byte header and whole packets, so smaller splits make a file per packet;"
            " write e.g. --split-byte 1e9"
        )
    return SplitRule(kind, amount)


def _parse_filename(value: Any, split: SplitRule | None) -> NamingRule:
    text = _text(value, f'FileName = "{defaults.DEFAULT_FILENAME}"')
    assert text is not None
    mode, _, rest = text.partition(" ")
    fmt: str | None = rest.strip() or None
    if fmt and fmt[0] in "\"'":
        if len(fmt) < 2 or fmt[-1] != fmt[0]:
            raise _FieldError(f"the format opens with {fmt[0]} but does not end with it")
        fmt = fmt[1:-1]
    elif mode == STRFTIME_MODE and fmt is not None and " " in fmt:
        raise _FieldError("a strftime format with spaces must be quoted")
    try:
        rule = validate_naming(mode, "" if mode == STRFTIME_MODE and fmt is None else fmt)
    except ValueError as e:
        raise _FieldError(str(e)) from None
    step = resolution_ns(rule)
    if split is not None and split.kind is SplitKind.TIME and split.value < step:
        raise _FieldError(
            f"names files to {step / 1e9:g} s, but Split starts a file every"
            f" {split.value / 1e9:g} s, so files would overwrite each other; use a finer FileName"
            " (e.g. --filename-tstr-HHMMSS_NS) or a longer --split-time"
        )
    return rule


def _parse_pipe_cmd(value: Any) -> str | None:
    """The normalized compressor command, or None for no compression (absent or `cat`)."""
    text = _text(value, 'PipeCmd = "gzip -c -1" (or nil for plain .pcap)', required=False)
    if text is None:
        return None
    command = " ".join(text.split())
    if not _PIPE_CMD_RE.fullmatch(command):
        raise _FieldError(
            f"not a known compressor (known: {_PIPE_CMD_KNOWN}); pushcap compresses in-process"
            " and never runs a command from the config"
        )
    return None if command == "cat" else command


def _parse_suffix(value: Any, pipe_cmd: str | None) -> str:
    """FileSuffix, defaulting to the compressor's; it must name the compression it holds."""
    compressor = pipe_cmd.split()[0] if pipe_cmd else None
    default, endings = _SUFFIXES[compressor]
    suffix = _text(value, f'FileSuffix = "{default}"', required=False)
    if suffix is None:
        return default
    if not _SUFFIX_RE.fullmatch(suffix):
        raise _FieldError(
            "must be '.' then 1-20 letters, digits, '.', '_' or '-', e.g. \".pcap\" or \".pcap.gz\""
        )
    if compressor is None:
        wrong = next((e for e in _COMPRESSED_ENDINGS if suffix.endswith(e)), None)
        if wrong:
            raise _FieldError(
                f"ends in {wrong} but there is no PipeCmd, so files are plain pcap; add e.g."
                f' PipeCmd = "gzip -c" or use FileSuffix = "{default}"'
            )
    elif not suffix.endswith(endings):
        raise _FieldError(
            f'does not match PipeCmd "{pipe_cmd}", which writes {compressor} data: end it with'
            f' {" or ".join(endings)}, e.g. FileSuffix = "{default}"'
        )
    return suffix


def _parse_bpf(value: Any) -> str | None:
    example = 'FilterBPF = "tcp" (or nil to push every packet)'
    if isinstance(value, bytes) and not value.strip():
        raise _FieldError("is empty; write FilterBPF = nil to push every packet")
    expr = _text(value, example, required=False)
    if expr is None:
        return None
    try:
        pcapy.compile(pcapy.DLT_EN10MB, _SNAPLEN_BYTES, expr, 1, 0)
    except pcapy.PcapError as e:
        message = str(e).removeprefix("can't parse filter expression: ")
        raise _FieldError(message) from None
    return expr


def _parse_interface(value: Any) -> str | None:
    name = _text(value, 'Interface = "eth0"', required=False)
    if name is not None and not _INTERFACE_RE.fullmatch(name):
        raise _FieldError("must be an interface name or alias: 1-64 letters, digits or . _ : @ + -")
    return name


# --- Mode flows -------------------------------------------------------------------------------


def _refuse_for_flows(value: Any) -> None:
    raise _FieldError(
        "has no meaning for Mode flows (flow statistics go to Path as JSON over UDP, not into"
        " files); remove it"
    )


def _refuse_interval(value: Any) -> None:
    raise _FieldError(
        "is only for Mode flows (seconds between flow statistics); a File or rclone target is"
        " cut into files by Split, remove it"
    )


def _parse_udp_path(value: Any) -> str:
    example = '"udp://127.0.0.1:9000"'
    path = _text(value, f"Path = {example} (flow statistics are sent there as JSON)")
    assert path is not None
    match = _UDP_RE.fullmatch(path)
    if not match:
        raise _FieldError(
            f'must be "udp://HOST:PORT" for Mode flows, e.g. {example} or "udp://[::1]:9000"'
            " (an IPv6 address goes in brackets)"
        )
    host, port = match["host"], int(match["port"])
    if not _valid_host(host):
        raise _FieldError(
            f"{host!r} is not an IPv4 address, a bracketed IPv6 address or a host name;"
            f" write e.g. {example}"
        )
    if not 1 <= port <= 65535:
        raise _FieldError(f"port {match['port']} is not in 1-65535")
    return path


def _valid_host(host: str) -> bool:
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    return len(host) <= 253 and _HOSTNAME_RE.fullmatch(host) is not None


def _parse_interval(value: Any) -> float:
    if value is None:
        return _DEFAULT_INTERVAL_S
    example = "Interval = 20"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _FieldError(f"must be a number of seconds, e.g. {example}")
    if not _MIN_INTERVAL_S <= value <= _MAX_INTERVAL_S:
        raise _FieldError(
            f"must be between {_MIN_INTERVAL_S:g} and {_MAX_INTERVAL_S:g} seconds, e.g. {example}"
        )
    return float(value)
