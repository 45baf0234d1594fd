"""One evaluation of push_realtime.lua in a fresh Lua runtime: the code of lua_process.py's child.

It runs only in that child process, never in pushcap's own (lua_process.py says why), so it
imports nothing of pushcap (a spawned child starts with it and lupa alone), and everything it
returns is plain data that marshal carries back: tables as dicts (three levels deep, as lua.py
reads them), a Lua value with no Python form (a function, a table key, a table nested deeper)
as a (kind, serial) tuple.

The driver below is the privileged part of the sandbox: it runs before the config with full
Lua, builds the sandbox's globals, loads the config as text only (a precompiled chunk can break
out of any Lua sandbox) and installs the count hook that stops Lua code at the time budget,
naming the config's line. Of `os` the config gets only what reads the clock or the environment
(os.date, os.time, os.clock, os.getenv: FMADIO's configs build date-stamped Paths), copied
into a table of its own; anything else of `os` (execute, exit, remove, rename, tmpname,
setlocale) is refused by name, like the blocked globals.

A C function runs no hook (string.rep, table.move, a backtracking
pattern in string.find): those are stopped from outside, by the parent's wall-clock kill and this
process's RLIMIT_CPU. For a run that was killed the parent asks for a second, traced run, in
which a call hook reports each line that calls a C function, so the message can name the line
of the call that never returned; the first run pays nothing for it.

Lua 5.4's parser reports nesting deeper than about 200 levels (brackets, table constructors,
chained `..`) as "C stack overflow" without a line. The line is found here by parsing ever
shorter prefixes of the file, cut at line ends, with Lua's own parser at the same depth of C
calls: the first line whose prefix overflows holds the culprit.
"""

from __future__ import annotations

import itertools
import marshal
import os
import resource  # here, not in _limit_process: imported in a forked child it cost ~1 ms, not 0.25
import sys
import time

from lupa.lua54 import LuaError, LuaRuntime, lua_type

__all__ = ["BLOCKED_GLOBALS", "EXIT_MEMORY", "Request", "child_main", "serve"]

# Globals a config may not use; reading one raises "<name> is not available" at the caller's line.
BLOCKED_GLOBALS = (
    "io", "require", "dofile", "loadfile", "load", "loadstring", "debug", "package",
    "collectgarbage", "coroutine", "setmetatable", "getmetatable", "rawget", "rawset", "rawequal",
    "rawlen", "xpcall", "print", "warn", "module", "newproxy", "getfenv", "setfenv", "python",
)  # fmt: skip

TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
if TYPE_CHECKING:
    from typing import Any

# What to run, marshalled to a spawned child: text, chunkname (bytes), max_s (the config's run),
# cpu_s (RLIMIT_CPU), max_memory_bytes (Lua's allocator), extra_bytes (RLIMIT_AS beyond the
# process's size at start), hook_every (instructions), marking, trace (bools).
Request = dict[str, "Any"]  # a string: typing is not imported at run time

EXIT_MEMORY = 3  # Python ran out of memory (the address-space limit): the config used too much
EXIT_FAILED = 4  # anything else unexpected; its one-line reason is sent first (an E frame)

_STOP_MARKER = "pushcap: config stopped"  # the hook's error, recognised if it escapes the driver
_OVERFLOW = b"C stack overflow"  # Lua 5.4's parser: nested too deeply (luaE_checkcstack)
# Config -> Target -> one target -> field values: tables below this depth are only named in
# messages, never walked, so a self-referencing table cannot loop the conversion.
_TABLE_DEPTH = 3

_DRIVER = """
local load, pcall, error, next, type, tostring = load, pcall, error, next, type, tostring
local setmetatable, getmetatable, sethook, getinfo = setmetatable, getmetatable, debug.sethook,
  debug.getinfo
local pack, unpack = table.pack, table.unpack
local os_date, os_time, os_clock, os_getenv = os.date, os.time, os.clock, os.getenv
local MEMORY, STOP = "not enough memory", "STOP_MARKER"
local BLOCKED = BLOCKED_TABLE

local function copy(t)
  local c = {}
  for k, v in next, t do c[k] = v end
  return c
end

local function refuse(what)
  error(what .. " is not available in push_realtime.lua: it runs sandboxed with only table, "
    .. "string, math, os.date, os.time, os.clock, os.getenv, pairs, ipairs, next, select, "
    .. "tostring, tonumber, type, unpack, pcall, error and assert", 3)
end

return function(text, chunkname, now, max_s, marking, trace)
  local aborted, stop_line, traced = nil, nil, nil
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

  local clock_env = {date = os_date, time = os_time, clock = os_clock, getenv = os_getenv}
  setmetatable(clock_env, {__index = function(_, k) refuse("os." .. tostring(k)) end})
  local env = {
    os = clock_env,
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
  local function config_line(level)  -- the innermost config line, not mark's or pcall's
    local info = getinfo(level, "Sl")
    while info and info.source ~= chunkname do
      level = level + 1
      info = getinfo(level, "Sl")
    end
    return info and info.currentline
  end
  sethook(function(event)
    if event ~= "count" then  -- a call, traced runs only: the config's line that calls C
      local callee = getinfo(2, "S")
      if callee and callee.what == "C" then
        local line = config_line(3)
        if line and line ~= traced then
          traced = line
          trace(line)
        end
      end
      return
    end
    if not aborted and now() > deadline then
      aborted = "timeout"
      stop_line = config_line(3)
    end
    if aborted then error(STOP, 0) end
  end, trace and "c" or "", HOOK_EVERY)
  local ok, res = pcall(fn, unpack(args, 1, args.n))
  sethook()
  if aborted then return aborted, stop_line end
  if ok then return "ok", res, marks end
  if res == MEMORY then return "memory", nil end
  return "error", tostring(res)
end
"""

# Loads at the driver's depth of C calls (called from Python like it): does `text` overflow?
_PROBE = """
return function(text, chunkname)
  local fn, err = load(text, chunkname, "t", {})
  return fn == nil and string.sub(err, 1, #"C stack overflow") == "C stack overflow"
end
"""


def child_main() -> None:
    """Entry of a spawned child: the marshalled Request on stdin, frames on stdout."""
    request = marshal.loads(sys.stdin.buffer.read())
    serve(request, sys.stdout.fileno())


def serve(request: Request, fd: int) -> None:
    """Evaluate `request` under this process's limits and write the frames to `fd`; ends the
    process (never returns): os._exit, so nothing of a forked parent (buffers, atexit) runs."""
    code = EXIT_FAILED
    try:
        _limit_process(request["cpu_s"], request["extra_bytes"])
        trace = (lambda line: os.write(fd, b"L" + line.to_bytes(4, "little"))) \
            if request["trace"] else None
        outcome = _evaluate(request, trace, lambda: os.write(fd, b"D"))
        _write_all(fd, b"R" + marshal.dumps(outcome))
        code = 0
    except MemoryError:
        code = EXIT_MEMORY
    except BaseException as exc:  # noqa: BLE001 - the parent gets the reason, not a traceback
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
        try:
            _write_all(fd, b"E" + reason.encode("utf-8", "replace"))
        except BaseException:  # noqa: BLE001, S110 - the exit status still tells the parent
            pass
    finally:
        os._exit(code)


def _limit_process(cpu_s: int, extra_bytes: int) -> None:
    """Hard limits the config's C calls cannot escape: CPU time (SIGXCPU, then SIGKILL: a child
    whose parent died still ends) and address space (beyond what the process holds now), no
    core file; Ctrl-C and SIGTERM end it rather than run a forked parent's handlers."""
    # _signal: signal.py's functions are these with enum conversions, and building its enums
    # cost ~0.5 ms of every config load's child (issue 15)
    import _signal as signal

    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    size = _address_space_bytes()
    if size is not None:
        resource.setrlimit(resource.RLIMIT_AS, (size + extra_bytes, size + extra_bytes))
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def _address_space_bytes() -> int | None:
    try:
        with open("/proc/self/status", "rb") as f:
            for row in f:
                if row.startswith(b"VmSize:"):
                    return int(row.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _evaluate(request: Request, trace: Any, ran: Any) -> tuple[str, Any, Any]:
    """(status, detail, marks): the driver's status, ok's value as plain data, the marked copy's
    {Config.Target index: constructor number}; "failed" when the driver itself failed. `ran()`
    is called when the config has returned, before the conversion (the parent's clock)."""
    text, chunkname, marking = request["text"], request["chunkname"], request["marking"]
    lua = LuaRuntime(encoding=None, register_eval=False, register_builtins=False,
                     max_memory=request["max_memory_bytes"])
    blocked = "{" + ",".join(f'["{n}"]=true' for n in BLOCKED_GLOBALS) + "}"
    driver_src = _DRIVER.replace("HOOK_EVERY", str(request["hook_every"]))
    driver_src = driver_src.replace("BLOCKED_TABLE", blocked).replace("STOP_MARKER", _STOP_MARKER)
    try:
        probe = lua.execute(_PROBE.encode())
        driver = lua.execute(driver_src.encode())
        status, detail, *rest = driver(text, chunkname, time.monotonic, request["max_s"], marking,
                                       trace)
        status = status.decode()
        ran()
        if status == "ok":
            serial = itertools.count()
            marks = _target_marks(detail, rest[0]) if marking else None
            return status, _plain(detail, 0, serial), marks
        if isinstance(detail, bytes):
            detail = detail.split(b"\nstack traceback:")[0]  # lupa's handler reaches load's errors
            if status == "syntax" and detail.startswith(_OVERFLOW) and not marking:
                detail = _nesting_message(probe, text, chunkname)
        return status, detail, None
    except MemoryError:  # LuaMemoryError outside the chunk's pcall: same cause
        return "memory", None, None
    except LuaError as e:
        if _STOP_MARKER in str(e):
            return "timeout", None, None
        return "failed", str(e).split("\nstack traceback:")[0], None


def _plain(value: Any, depth: int, serial: itertools.count) -> Any:
    """A Lua value as marshal-able data: tables as dicts (keys kept raw), others (kind, serial)."""
    kind = lua_type(value)
    if kind is None:
        return value  # nil, boolean, number or (encoding=None) bytes
    if kind != "table" or depth >= _TABLE_DEPTH:
        return (kind, next(serial))
    return {
        ((lua_type(k), next(serial)) if lua_type(k) else k): _plain(v, depth + 1, serial)
        for k, v in value.items()
    }


def _target_marks(config: Any, marks: Any) -> dict[int, int]:
    """Config.Target's index -> the number of the constructor its table came from."""
    if marks is None or lua_type(config) != "table":
        return {}
    targets = config[b"Target"]  # a table of the sandbox: no metatable, so a plain read
    if lua_type(targets) != "table":
        return {}
    found: dict[int, int] = {}
    for index, value in targets.items():
        n = marks[value] if lua_type(value) == "table" else None
        if isinstance(index, int) and isinstance(n, int):
            found[index] = n
    return found


def _nesting_message(probe: Any, text: bytes, chunkname: bytes) -> bytes:
    """Lua's lineless "C stack overflow" as `<chunk>:<line>: nested too deeply ...`."""
    import re  # the error path only: not every child's start-up

    ends = [m.end() for m in re.finditer(rb"\r\n|\n\r|\n|\r", text)] + [len(text)]
    low, high = 1, len(ends)  # the prefix of lines 1..high overflows (it is the whole file)
    where = b""
    if probe(text, chunkname):
        while low < high:
            middle = (low + high) // 2
            if probe(text[:ends[middle - 1]], chunkname):
                high = middle
            else:
                low = middle + 1
        where = b"%d:" % low
    return (chunkname[1:] + b":" + where + b" nested too deeply: Lua allows about 200 levels of"
            b" brackets, table constructors and chained operators (such as ..) in one"
            b" expression; split it into several")
