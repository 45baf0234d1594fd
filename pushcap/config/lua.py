"""Load push_realtime.lua (FMADIO's push target format) in a sandbox and validate every target.

The file is Lua because FMADIO's is, so existing configs work unchanged; but it is code, so it runs
in a throwaway Lua 5.4 runtime with only pure functions (table, string without dump, math,
pairs...), as source text only (a precompiled chunk is refused: bytecode can break out of any
Lua sandbox), under a wall-clock budget (defaults.LUA_MAX_SECONDS, enforced by a count hook the
config cannot remove) and a memory cap (defaults.LUA_MAX_MEMORY_BYTES). Known limit: a C function
does not run hooks, so a pathological pattern in string.find/match/gsub can outlive the budget.

The returned Config table is converted to plain Python while the runtime is alive (strings as
bytes, tables as dicts down to the target fields), then its shape is checked here: Config.Target a
list of tables with named fields, no two targets with the same Desc, or the same Mode and Path
(their files would overwrite each other). What each field may hold is pushcap.config.targets'
business, which never sees Lua. load_targets / load_targets_text are the API other modules import.

A message about a target starts `<file>:<line>: target <i> "<Desc>"`, the line being the field's
own when it is written in the target's table, else the table's. The file as written alone decides
what loads and what fails; only when a target is refused does a copy whose table constructors
report themselves to the driver run (lua_lines.py says how and why; its lines count only if it
built the same value), so the line is found however the targets were built.

A Path may hold credentials (an rclone connection string, a URL with a password), and a Lua
syntax error quotes the token it stopped at, maybe a key whose `..` was forgotten. So values are
shown through field_check.conceal / shown_value, a syntax error names a token that could be a
secret by its kind only (lua_tokens.py), and as a last guard every message leaving this module
is concealed against the secrets written in the file's string literals.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from lupa.lua54 import LuaError, LuaRuntime, lua_type

from pushcap import defaults
from pushcap.config.field_check import TargetPlace, conceal
from pushcap.config.lua_lines import Constructor, instrument, scan_constructors, string_literals
from pushcap.config.lua_tokens import conceal_tokens
from pushcap.config.model import ConfigError, TargetConfig
from pushcap.config.target_unique import SeenTargets, check_unique
from pushcap.config.targets import LuaOpaque, lua_repr, validate_target

__all__ = ["load_targets", "load_targets_text"]

# Globals a config may not use; reading one raises "<name> is not available" at the caller's line.
BLOCKED_GLOBALS = (
    "os", "io", "require", "dofile", "loadfile", "load", "loadstring", "debug", "package",
    "collectgarbage", "coroutine", "setmetatable", "getmetatable", "rawget", "rawset", "rawequal",
    "rawlen", "xpcall", "print", "warn", "module", "newproxy", "getfenv", "setfenv", "python",
)  # fmt: skip

_CHUNK_ID = "@@pushcap-config@@"  # replaced by the file name in Lua's messages (no 60-char cut)
_STOP_MARKER = "pushcap: config stopped"  # the hook's error, recognised if it escapes the driver
# Config -> Target -> one target -> field values: tables below this depth are only named in
# messages, never walked, so a self-referencing table cannot loop the conversion.
_TABLE_DEPTH = 3

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

return function(text, chunkname, now, max_s, marking)
  local aborted, stop_line = nil, nil
  -- constructor number of each table the marked copy built (lua_lines.py); weak: no table is kept
  local marks = setmetatable({}, {__mode = "k"})
  local function mark(n, t)
    if type(t) == "table" then marks[t] = n end
    return t
  end
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
  local args = marking and pack(mark) or pack()  -- the marked copy's ... (not the config's)
  local deadline = now() + max_s
  sethook(function()
    if not aborted and now() > deadline then
      aborted = "timeout"
      local level, info = 2, getinfo(2, "Sl")
      while info and info.source ~= chunkname do  -- the config's line, not mark's or pcall's
        level = level + 1
        info = getinfo(level, "Sl")
      end
      stop_line = info and info.currentline
    end
    if aborted then error(STOP, 0) end
  end, "", HOOK_EVERY)
  local ok, res = pcall(fn, unpack(args, 1, args.n))
  sethook()
  if aborted then return aborted, stop_line end
  if ok then return "ok", res, marks end
  if res == MEMORY then return "memory", nil end
  return "error", tostring(res)
end
"""


def load_targets(path: str | Path, captured: Collection[str] | None = None
                 ) -> tuple[TargetConfig, ...]:
    """Read, run and validate push_realtime.lua; messages name the file as given in `path`.
    `captured`: the interface names and aliases of pcapdaemon.toml, which an `Interface` field
    must name (checked here, so its message has the field's line)."""
    source_name = str(path)
    try:
        with open(path, "rb") as f:
            data = f.read(defaults.LUA_MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{source_name}: cannot read: {e.strerror or e}") from None
    return _load(data, source_name, captured)


def load_targets_text(text: str, source_name: str) -> tuple[TargetConfig, ...]:
    """Run and validate config text (tests, `pushcap check -`); messages name `source_name`."""
    return _load(text.encode("utf-8", "surrogateescape"), source_name)


def _load(data: bytes, source_name: str, captured: Collection[str] | None = None
          ) -> tuple[TargetConfig, ...]:
    if len(data) > defaults.LUA_MAX_FILE_BYTES:
        raise ConfigError(
            f"{source_name}: larger than {defaults.LUA_MAX_FILE_BYTES // 1024} KiB; a push config"
            " is a few KB, is this the right file?"
        )
    if data.startswith(b"\x1b"):
        raise ConfigError(
            f"{source_name}: is precompiled Lua bytecode; pushcap only runs Lua source text"
            " (bytecode can escape the sandbox), give it the .lua source"
        )
    try:
        config = _run_sandboxed(data, source_name)
        try:
            return _validate_config(config, {}, source_name, captured)
        except ConfigError:
            tables = _marked_tables(data, config)  # a target is refused: find where it is written
            if tables:
                _validate_config(config, tables, source_name, captured)  # same error, its line
            raise
    except ConfigError as e:
        raise ConfigError(_conceal_source(str(e), data)) from None


def _conceal_source(message: str, data: bytes) -> str:
    """`message` without any secret written in a string literal of the config source."""
    # one text: one pass of the secret patterns, however many literals a file of 1 MiB holds
    literals = b"\n".join(string_literals(data)).decode("utf-8", "replace")
    return conceal(message, literals)


def _evaluate(text: bytes, max_s: float, *, marking: bool) -> tuple[str, Any, Any]:
    """Run `text` in a fresh runtime: the driver's (status, detail, marks), still Lua values (they
    keep the runtime alive); `marking`: `text` is instrument's copy. LuaError: the driver failed."""
    lua = LuaRuntime(
        encoding=None, register_eval=False, register_builtins=False,
        max_memory=defaults.LUA_MAX_MEMORY_BYTES,
    )  # fmt: skip
    blocked = "{" + ",".join(f'["{n}"]=true' for n in BLOCKED_GLOBALS) + "}"
    driver_src = _DRIVER.replace("HOOK_EVERY", str(defaults.LUA_HOOK_EVERY_INSTRUCTIONS))
    driver_src = driver_src.replace("BLOCKED_TABLE", blocked).replace("STOP_MARKER", _STOP_MARKER)
    try:
        driver = lua.execute(driver_src.encode())
        chunkname = f"={_CHUNK_ID}".encode()
        raw_status, detail, *rest = driver(text, chunkname, time.monotonic, max_s, marking)
        return raw_status.decode(), detail, rest[0] if rest else None
    except MemoryError:  # LuaMemoryError outside the chunk's pcall: same cause
        return "memory", None, None
    except LuaError as e:
        if _STOP_MARKER in str(e):
            return "timeout", None, None
        raise


def _run_sandboxed(data: bytes, source_name: str) -> Any:
    """Evaluate the file as written in a fresh runtime: the value it returned, as Python data."""
    limit_s = f"{defaults.LUA_MAX_SECONDS:g} s"
    limit_mib = f"{defaults.LUA_MAX_MEMORY_BYTES / 2**20:g} MiB"
    try:
        status, detail, _ = _evaluate(data, defaults.LUA_MAX_SECONDS, marking=False)
    except LuaError as e:
        message = conceal(str(e))
        raise ConfigError(f"{source_name}: could not be evaluated: {message}") from None
    if status == "ok":
        return _to_python(detail, 0)
    if status == "timeout":
        where = f", stopped at line {detail}" if isinstance(detail, int) and detail > 0 else ""
        raise ConfigError(f"{source_name}: ran longer than {limit_s} (infinite loop?){where}")
    if status == "memory":
        raise ConfigError(
            f"{source_name}: used more than {limit_mib} of memory; a push config is a small table"
            " (runaway loop or huge string?)"
        )
    message = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
    message = conceal_tokens(message, syntax=status == "syntax")
    message = message.replace(_CHUNK_ID, source_name)
    if not message.startswith(source_name):
        message = f"{source_name}: {message}"
    if status == "syntax" and "binary chunk" in message:
        message += " (pushcap only runs Lua source text)"
    raise ConfigError(message)


def _marked_tables(data: bytes, config: Any) -> dict[int, Constructor]:
    """Config.Target's index -> its table's constructor, from a run of the marked copy; {} if the
    source does not scan, or that run fails or returns other than `config`, the value as written
    (math.random, pairs order). Scan and run share one LUA_MAX_SECONDS, past it no line."""
    deadline = time.monotonic() + defaults.LUA_MAX_SECONDS
    found = scan_constructors(data, deadline)
    if not found:
        return {}
    try:
        marked = instrument(data, found)
        status, value, marks = _evaluate(marked, deadline - time.monotonic(), marking=True)
        if status != "ok" or _fingerprint(_to_python(value, 0)) != _fingerprint(config):
            return {}
        return _target_tables(value, marks, found)
    except (LuaError, MemoryError):
        return {}


def _fingerprint(value: Any) -> str:
    """A _to_python value as text two runs can compare: LuaOpaque by kind, not identity."""
    if isinstance(value, dict):
        pairs = sorted(repr((_fingerprint(k), _fingerprint(v))) for k, v in value.items())
        return "{" + ", ".join(pairs) + "}"
    return repr(value)  # bytes, numbers and booleans by value and type, LuaOpaque as <a kind>


def _target_tables(config: Any, marks: Any, found: list[Constructor]) -> dict[int, Constructor]:
    """Config.Target's index -> the constructor its table came from, for the targets marked."""
    if marks is None or lua_type(config) != "table":
        return {}
    targets = config[b"Target"]  # a table of the sandbox: no metatable, so a plain read
    if lua_type(targets) != "table":
        return {}
    tables: dict[int, Constructor] = {}
    for index, value in targets.items():
        n = marks[value] if lua_type(value) == "table" else None
        if isinstance(index, int) and isinstance(n, int) and 0 <= n < len(found):
            tables[index] = found[n]
    return tables


def _to_python(value: Any, depth: int) -> Any:
    """A Lua value as plain data: tables become dicts (keys kept raw), functions LuaOpaque."""
    kind = lua_type(value)
    if kind is None:
        return value  # nil, boolean, number or (encoding=None) bytes
    if kind != "table" or depth >= _TABLE_DEPTH:
        return LuaOpaque(kind)
    return {
        (LuaOpaque(lua_type(k)) if lua_type(k) else k): _to_python(v, depth + 1)
        for k, v in value.items()
    }


# --- structure --------------------------------------------------------------------------------


def _key_name(key: Any) -> str | None:
    if isinstance(key, bytes):
        try:
            return key.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


def _as_list(table: Any, what: str, source_name: str) -> list[Any]:
    """The values of a Lua sequence (keys 1..n), refusing holes and named keys."""
    if not isinstance(table, dict):
        raise ConfigError(
            f"{source_name}: {what} is {lua_repr(table)}, not a table; write {what} = {{}} and add"
            " targets with table.insert"
        )
    items: dict[Any, Any] = table
    if set(items) != set(range(1, len(items) + 1)):
        odd = next(k for k in items if not isinstance(k, int) or not 1 <= k <= len(items))
        raise ConfigError(
            f"{source_name}: {what} must be a list of targets (table.insert(...) or {{ {{...}},"
            f" {{...}} }}), but it has the key {lua_repr(odd)}"
        )
    return [items[i] for i in range(1, len(items) + 1)]


def _validate_config(
    config: Any, tables: dict[int, Constructor], source_name: str,
    captured: Collection[str] | None = None,
) -> tuple[TargetConfig, ...]:
    """The targets of the value the file returned; the first problem raises ConfigError."""
    if not isinstance(config, dict):
        got = "nothing" if config is None else lua_repr(config)
        raise ConfigError(
            f"{source_name}: returned {got} instead of the Config table; end the file with"
            " `return Config`"
        )
    top = {_key_name(k) or lua_repr(k): v for k, v in config.items()}
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
    targets: list[tuple[TargetConfig, TargetPlace]] = []
    seen = SeenTargets()
    for index, raw in enumerate(raw_targets, start=1):
        table = tables.get(index)
        place = TargetPlace(source_name, index)
        if table is not None:
            place = TargetPlace(source_name, index, line=table.line, field_lines=table.keys)
        target = validate_target(_named_fields(raw, place), place)
        place = place.named(target.desc)
        if captured is not None and target.interface is not None \
                and target.interface not in captured:
            raise ConfigError(f'{place.prefix("Interface")}: Interface "{target.interface}" is '
                              f"not captured (pcapdaemon.toml has: {', '.join(sorted(captured))})")
        check_unique(target, place, seen)
        targets.append((target, place))
    return tuple(target for target, _ in targets)


def _named_fields(raw: Any, place: TargetPlace) -> dict[str, Any]:
    """One target's table as {field name: value}; per-field rules are targets.validate_target's."""
    prefix = place.prefix()
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{prefix}: is {lua_repr(raw)}, not a table; write"
            ' { Desc = "...", Mode = "File", Path = "...", ... }'
        )
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        name = _key_name(key)
        if name is None:
            raise ConfigError(
                f"{prefix}: has the key {lua_repr(key)}; fields are named, e.g."
                ' { Desc = "pcap-all", Mode = "File", ... }'
            )
        fields[name] = value
    return fields
