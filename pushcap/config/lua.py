"""Load push_realtime.lua (FMADIO's push target format) in a sandbox and validate every target.

The file is Lua because FMADIO's is, so existing configs work unchanged; but it is code, so it runs
in a throwaway Lua 5.4 runtime with only pure functions (table, string without dump, math,
pairs...), as source text only (a precompiled chunk is refused: bytecode can break out of any
Lua sandbox), under a wall-clock budget (defaults.LUA_MAX_SECONDS, enforced by a count hook the
config cannot remove) and a memory cap (defaults.LUA_MAX_MEMORY_BYTES). Known limit: a C function
does not run hooks, so a pathological pattern in string.find/match/gsub can outlive the budget.

Decisions on FMADIO's fields:
- Mode is matched case-insensitively (`file`, `RCLONE` are accepted) and normalized to PushMode.
- Split and FileName default to defaults.DEFAULT_SPLIT / DEFAULT_FILENAME when absent.
- A time split shorter than the FileName's resolution is refused: files would overwrite each other.
- Two targets with the same Path are refused for the same reason.
- PipeCmd, FileSuffix, Chunked, RingName and Compress are FMADIO fields pushcap does not support
  yet; any other key is refused as unknown, so a typo never silently drops a setting.
- `Interface` is pushcap's own field: one captured interface name or alias (None = all).
Every error is one ConfigError: `<file>: target <i> "<Desc>": <Field> <value>: <problem and fix>`.
"""

from __future__ import annotations

import json
import re
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pcapy
from lupa.lua54 import LuaError, LuaRuntime, lua_type

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

FIELDS = ("Desc", "Mode", "Path", "Split", "FileName", "FilterBPF", "Interface")
UNSUPPORTED_FIELDS = ("PipeCmd", "FileSuffix", "Chunked", "RingName", "Compress")

# Globals a config may not use; reading one raises "<name> is not available" at the caller's line.
BLOCKED_GLOBALS = (
    "os", "io", "require", "dofile", "loadfile", "load", "loadstring", "debug", "package",
    "collectgarbage", "coroutine", "setmetatable", "getmetatable", "rawget", "rawset", "rawequal",
    "rawlen", "xpcall", "print", "warn", "module", "newproxy", "getfenv", "setfenv", "python",
)  # fmt: skip

_MAX_FILE_BYTES = 1024 * 1024  # a push config is a few KB; more means the wrong file
_CHUNK_ID = "@@pushcap-config@@"  # replaced by the file name in Lua's messages (no 60-char cut)
_STOP_MARKER = "pushcap: config stopped"  # the hook's error, recognised if it escapes the driver
_HOOK_EVERY_INSTRUCTIONS = 1000
_SNAPLEN_BYTES = 262144
_MIN_SPLIT_NS = 1_000_000
_MIN_SPLIT_BYTES = 1024
_MAX_SPLIT = 2**63 - 1
_DESC_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_INTERFACE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,63}")
_NUMBER_RE = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
# rclone: `remote:path`, `remote,opt=v:path` or `:backend,opt="v":path` (quoted values may hold ':')
_RCLONE_RE = re.compile(
    r"(?P<remote>:?[\w.+@-](?:[\w. +@-]*[\w.+@-])?)"
    r"(?P<opts>,(?:\"[^\"]*\"|'[^']*'|[^:\"'])*)?:(?P<path>.*)",
    re.S,
)

# The privileged driver: runs before the config with full Lua, builds the sandbox, loads the config
# as text, installs the time hook and reports what happened as (status, detail).
_DRIVER = """
local load, pcall, error, next, type, tostring = load, pcall, error, next, type, tostring
local setmetatable, getmetatable, sethook, getinfo = setmetatable, getmetatable, debug.sethook,
  debug.getinfo
local pack, unpack = table.pack, table.unpack
local MEMORY, STOP = "not enough memory", "STOP_MARKER"
local BLOCKED = BLOCKED_TABLE

local function copy(t)
  local c = {}
  for k, v in next, t do c[k] = v end
  return c
end

local function refuse(what)
  error(what .. " is not available in push_realtime.lua: it runs sandboxed with only table, "
    .. "string, math, pairs, ipairs, next, select, tostring, tonumber, type, unpack, pcall, "
    .. "error and assert", 3)
end

return function(text, chunkname, now, max_s)
  local aborted, stop_line = nil, nil
  local str = copy(string)
  str.dump = nil
  string.dump = nil
  setmetatable(str, {__index = function(_, k) if k == "dump" then refuse("string.dump") end end})
  getmetatable("").__index = str  -- ("x"):dump() must not reach the real string table either

  local function guarded_pcall(f, ...)
    local r = pack(pcall(f, ...))
    if aborted then error(STOP, 0) end
    if not r[1] and r[2] == MEMORY then aborted = "memory"; error(MEMORY, 0) end
    return unpack(r, 1, r.n)
  end

  local env = {
    table = copy(table), string = str, math = copy(math), pairs = pairs, ipairs = ipairs,
    next = next, select = select, tostring = tostring, tonumber = tonumber, type = type,
    unpack = table.unpack, error = error, assert = assert, pcall = guarded_pcall,
  }
  env._G = env
  setmetatable(env, {__index = function(_, k) if BLOCKED[k] then refuse(k) end end})

  local fn, err = load(text, chunkname, "t", env)
  if not fn then return "syntax", err end
  local deadline = now() + max_s
  sethook(function()
    if not aborted and now() > deadline then
      aborted = "timeout"
      local info = getinfo(2, "l")
      stop_line = info and info.currentline
    end
    if aborted then error(STOP, 0) end
  end, "", HOOK_EVERY)
  local ok, res = pcall(fn)
  sethook()
  if aborted then return aborted, stop_line end
  if ok then return "ok", res end
  if res == MEMORY then return "memory", nil end
  return "error", tostring(res)
end
"""


class _FieldError(Exception):
    """A field's value is wrong; the message says what and how to fix it (no prefix)."""


def load_targets(path: str | Path) -> tuple[TargetConfig, ...]:
    """Read, run and validate push_realtime.lua; messages name the file as given in `path`."""
    source_name = str(path)
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{source_name}: cannot read: {e.strerror or e}") from None
    return _load(data, source_name)


def load_targets_text(text: str, source_name: str) -> tuple[TargetConfig, ...]:
    """Run and validate config text (tests, `pushcap check -`); messages name `source_name`."""
    return _load(text.encode("utf-8", "surrogateescape"), source_name)


def _load(data: bytes, source_name: str) -> tuple[TargetConfig, ...]:
    if len(data) > _MAX_FILE_BYTES:
        raise ConfigError(
            f"{source_name}: larger than {_MAX_FILE_BYTES // 1024} KiB; a push config is a few KB,"
            " is this the right file?"
        )
    if data.startswith(b"\x1b"):
        raise ConfigError(
            f"{source_name}: is precompiled Lua bytecode; pushcap only runs Lua source text"
            " (bytecode can escape the sandbox), give it the .lua source"
        )
    config = _run_sandboxed(data, source_name)
    return _validate_config(config, source_name)


def _run_sandboxed(data: bytes, source_name: str) -> Any:
    """Evaluate the chunk in a fresh runtime; return the value it returned (a lupa object)."""
    lua = LuaRuntime(
        encoding=None,
        register_eval=False,
        register_builtins=False,
        max_memory=defaults.LUA_MAX_MEMORY_BYTES,
    )
    blocked = "{" + ",".join(f'["{n}"]=true' for n in BLOCKED_GLOBALS) + "}"
    driver_src = _DRIVER.replace("HOOK_EVERY", str(_HOOK_EVERY_INSTRUCTIONS))
    driver_src = driver_src.replace("BLOCKED_TABLE", blocked).replace("STOP_MARKER", _STOP_MARKER)
    limit_s = f"{defaults.LUA_MAX_SECONDS:g} s"
    limit_mib = f"{defaults.LUA_MAX_MEMORY_BYTES / 2**20:g} MiB"
    try:
        driver = lua.execute(driver_src.encode())
        raw_status, detail = driver(
            data, f"={_CHUNK_ID}".encode(), time.monotonic, defaults.LUA_MAX_SECONDS
        )
        status = raw_status.decode()
    except MemoryError:  # LuaMemoryError outside the chunk's pcall: same cause
        status, detail = "memory", None
    except LuaError as e:
        if _STOP_MARKER in str(e):
            status, detail = "timeout", None
        else:
            raise ConfigError(f"{source_name}: could not be evaluated: {e}") from None
    if status == "ok":
        return detail
    if status == "timeout":
        where = f", stopped at line {detail}" if isinstance(detail, int) and detail > 0 else ""
        raise ConfigError(f"{source_name}: ran longer than {limit_s} (infinite loop?){where}")
    if status == "memory":
        raise ConfigError(
            f"{source_name}: used more than {limit_mib} of memory; a push config is a small table"
            " (runaway loop or huge string?)"
        )
    message = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
    message = message.replace(_CHUNK_ID, source_name)
    if not message.startswith(source_name):
        message = f"{source_name}: {message}"
    if status == "syntax" and "binary chunk" in message:
        message += " (pushcap only runs Lua source text)"
    raise ConfigError(message)


# --- structure --------------------------------------------------------------------------------


def _lua_repr(value: Any, limit: int = 80) -> str:
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
    return f"<a {lua_type(value) or type(value).__name__}>"


def _key_name(key: Any) -> str | None:
    if isinstance(key, bytes):
        try:
            return key.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


def _as_list(table: Any, what: str, source_name: str) -> list[Any]:
    """The values of a Lua sequence (keys 1..n), refusing holes and named keys."""
    if lua_type(table) != "table":
        raise ConfigError(
            f"{source_name}: {what} is {_lua_repr(table)}, not a table; write {what} = {{}} and add"
            " targets with table.insert"
        )
    items = dict(table.items())
    if set(items) != set(range(1, len(items) + 1)):
        odd = next(k for k in items if not isinstance(k, int) or not 1 <= k <= len(items))
        raise ConfigError(
            f"{source_name}: {what} must be a list of targets (table.insert(...) or {{ {{...}},"
            f" {{...}} }}), but it has the key {_lua_repr(odd)}"
        )
    return [items[i] for i in range(1, len(items) + 1)]


def _validate_config(config: Any, source_name: str) -> tuple[TargetConfig, ...]:
    if lua_type(config) != "table":
        got = "nothing" if config is None else _lua_repr(config)
        raise ConfigError(
            f"{source_name}: returned {got} instead of the Config table; end the file with"
            " `return Config`"
        )
    top = {_key_name(k) or _lua_repr(k): v for k, v in config.items()}
    unknown = sorted(k for k in top if k != "Target")
    if unknown:
        raise ConfigError(f"{source_name}: unknown top-level field {unknown[0]} (known: Target)")
    if "Target" not in top:
        raise ConfigError(
            f"{source_name}: Config.Target is missing; add `Config.Target = {{}}` and one"
            " table.insert(Config.Target, {...}) per target (see etc/push_realtime.lua)"
        )
    raw_targets = _as_list(top["Target"], "Config.Target", source_name)
    if not raw_targets:
        raise ConfigError(f"{source_name}: Config.Target is empty; add at least one target")
    targets: list[TargetConfig] = []
    for index, raw in enumerate(raw_targets, start=1):
        target = _validate_target(raw, index, source_name)
        _check_unique(target, targets, source_name)
        targets.append(target)
    return tuple(targets)


def _check_unique(target: TargetConfig, earlier: list[TargetConfig], source_name: str) -> None:
    for other in earlier:
        clash = "Desc" if other.desc == target.desc else None
        if clash is None and (other.mode, other.path) == (target.mode, target.path):
            clash = "Path"
        if clash is None:
            continue
        value = target.desc if clash == "Desc" else target.path
        fix = (
            "each target needs its own Desc (it names the target's logs and metrics)"
            if clash == "Desc"
            else "two targets writing one prefix would overwrite each other's files"
        )
        raise ConfigError(
            f'{source_name}: target {target.index} "{target.desc}": {clash} {_lua_repr(value)}:'
            f' is also used by target {other.index} "{other.desc}"; {fix}'
        )


# --- one target -------------------------------------------------------------------------------


def _validate_target(raw: Any, index: int, source_name: str) -> TargetConfig:
    prefix = f"{source_name}: target {index}"
    if lua_type(raw) != "table":
        raise ConfigError(
            f"{prefix}: is {_lua_repr(raw)}, not a table; write"
            ' { Desc = "...", Mode = "File", Path = "...", ... }'
        )
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        name = _key_name(key)
        if name is None:
            raise ConfigError(
                f"{prefix}: has the key {_lua_repr(key)}; fields are named, e.g."
                ' { Desc = "pcap-all", Mode = "File", ... }'
            )
        fields[name] = value

    desc_value = fields.get("Desc")
    desc = _check_field(prefix, "Desc", desc_value, _parse_desc)
    prefix = f'{prefix} "{desc}"'
    for name in sorted(fields):
        if name in UNSUPPORTED_FIELDS:
            raise ConfigError(f"{prefix}: {name} is not supported yet by pushcap; remove it")
        if name not in FIELDS:
            raise ConfigError(f"{prefix}: unknown field {name} (known: {', '.join(FIELDS)})")

    mode = _check_field(prefix, "Mode", fields.get("Mode"), _parse_mode)
    path = _check_field(prefix, "Path", fields.get("Path"), lambda v: _parse_path(v, mode))
    split_value = fields.get("Split", defaults.DEFAULT_SPLIT.encode())
    split = _check_field(prefix, "Split", split_value, _parse_split)
    name_value = fields.get("FileName", defaults.DEFAULT_FILENAME.encode())
    naming = _check_field(prefix, "FileName", name_value, lambda v: _parse_filename(v, split))
    bpf = _check_field(prefix, "FilterBPF", fields.get("FilterBPF"), _parse_bpf)
    interface = _check_field(prefix, "Interface", fields.get("Interface"), _parse_interface)
    return TargetConfig(
        index=index,
        desc=desc,
        mode=mode,
        path=path,
        split=split,
        naming=naming,
        filter_bpf=bpf,
        interface=interface,
    )


def _check_field(prefix: str, field: str, value: Any, parse: Any) -> Any:
    try:
        return parse(value)
    except _FieldError as e:
        if value is None:
            raise ConfigError(f"{prefix}: {field} is missing: {e}") from None
        raise ConfigError(f"{prefix}: {field} {_lua_repr(value)}: {e}") from None


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


def _parse_filename(value: Any, split: SplitRule) -> NamingRule:
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
    if split.kind is SplitKind.TIME and split.value < step:
        raise _FieldError(
            f"names files to {step / 1e9:g} s, but Split starts a file every"
            f" {split.value / 1e9:g} s, so files would overwrite each other; use a finer FileName"
            " (e.g. --filename-tstr-HHMMSS_NS) or a longer --split-time"
        )
    return rule


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
