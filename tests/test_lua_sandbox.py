"""A config is untrusted code: Lua errors must point at the line and the sandbox must hold."""

from __future__ import annotations

import time

import lupa.lua54
import pytest
from lua_config_helpers import NAME, SEED, load_error, one_target

from pushcap import defaults
from pushcap.config import lua
from pushcap.config.lua import load_targets, load_targets_text
from pushcap.config.model import ConfigError

# --- Lua errors -------------------------------------------------------------------------------


def test_syntax_error_reports_line():
    text = SEED.replace('Desc      = "pcap-tcp",', 'Desc      = "pcap-tcp",,')
    message = load_error(text)
    assert message.startswith(f"{NAME}:19: "), message


def test_runtime_error_reports_line():
    message = load_error("local Config = {}\n\nlocal x = nil\nx.y = 1\nreturn Config\n")
    assert message.startswith(f"{NAME}:4: attempt to index a nil value"), message


def test_error_call_reports_line_and_message():
    assert load_error('local a = 1\nerror("no targets today")\n') == f"{NAME}:2: no targets today"


def test_file_name_as_given_is_used_in_messages(tmp_path):
    path = tmp_path / NAME
    path.write_text("return {\n Target = = {}}\n")
    with pytest.raises(ConfigError) as info:
        load_targets(path)
    assert str(info.value).startswith(f"{path}:2: ")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_targets(tmp_path / "nope.lua")


# --- sandbox ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "culprit"),
    [
        ('os.execute("touch /tmp/pushcap-pwned")', "os.execute"),
        ("os.exit(1)", "os.exit"),
        ('os.remove("/tmp/x")', "os.remove"),
        ('os.rename("/tmp/x", "/tmp/y")', "os.rename"),
        ("local n = os.tmpname()", "os.tmpname"),
        ('os.setlocale("C")', "os.setlocale"),
        ('io.open("/etc/passwd")', "io"),
        ('require("os")', "require"),
        ('dofile("/etc/passwd")', "dofile"),
        ('loadfile("/etc/passwd")', "loadfile"),
        ('loadstring("return 1")', "loadstring"),
        ("load(string.dump(function() end))", "load"),
        ("local f = string.dump(function() end)", "string.dump"),
        ('local f = ("x"):dump()', "string.dump"),
        ("debug.getinfo(1)", "debug"),
        ("local p = package.loaded", "package"),
        ('collectgarbage("count")', "collectgarbage"),
        ("setmetatable({}, {})", "setmetatable"),
        ("coroutine.wrap(function() end)", "coroutine"),
        ("local b = python.builtins", "python"),
    ],
)
def test_sandbox_refuses(code, culprit):
    message = load_error(f"local Config = {{}}\n{code}\nreturn Config\n")
    assert message.startswith(f"{NAME}:2: {culprit} is not available"), message


def test_pcall_catches_a_refusal_without_gaining_access():
    text = 'local ok = pcall(function() return os.execute("true") end)\nassert(ok, "refused")\n'
    assert load_error(text) == f"{NAME}:2: refused"


def test_safe_globals_work():
    text = """
    local t = {3, 1, 2}
    table.sort(t)
    local ok = pcall(error, "x")
    assert(not ok and select("#", 1, 2) == 2 and type(t) == "table" and tonumber("5") == 5)
    assert(math.floor(2.5) == 2 and string.upper("a") == "A" and unpack(t) == 1 and next(t))
    return {Target = {{Desc = "t" .. table.concat(t), Mode = "File", Path = "out/x"}}}
    """
    assert load_targets_text(text, NAME)[0].desc == "t123"


def test_infinite_loop_stops_with_clear_error():
    started = time.monotonic()
    message = load_error("local x = 0\nwhile true do x = x + 1 end\n")
    assert time.monotonic() - started < defaults.LUA_MAX_SECONDS + 1.5
    assert message.startswith(f"{NAME}: ran longer than 2 s (infinite loop?)"), message
    assert "line 2" in message


@pytest.mark.parametrize(
    "code",
    [
        "while true do pcall(function() while true do end end) end",
        "local function f() return f() end return f()",
        "local t = {3, 2, 1} while true do table.sort(t, function(a, b) return a < b end) end",
    ],
)
def test_loops_hidden_from_the_hook_still_stop(code, monkeypatch):
    monkeypatch.setattr(defaults, "LUA_MAX_SECONDS", 0.3)
    started = time.monotonic()
    message = load_error(code)
    assert time.monotonic() - started < 1.5
    assert message.startswith(f"{NAME}: ran longer than 0.3 s (infinite loop?)"), message


@pytest.mark.parametrize(
    "code",
    [
        'local t = {} for i = 1, 1e9 do t[i] = string.rep("x", 1000) end',
        'local s = string.rep("x", 1e8)',
        "while true do pcall(function() local t = {} for i = 1, 1e9 do t[i] = i end end) end",
    ],
)
def test_memory_bomb_stops_with_clear_error(code):
    message = load_error(code)
    limit_mib = defaults.LUA_MAX_MEMORY_BYTES / 2**20
    assert message.startswith(f"{NAME}: used more than {limit_mib:g} MiB of memory"), message


def test_huge_string_request_is_a_config_error():
    message = load_error('local s = string.rep("x", 1e10)')
    assert message.startswith(f"{NAME}:1: ")


def test_loads_stay_independent_after_a_refused_one():
    load_error('string.format = nil; ("x"):rep(1); os.exit()')
    assert load_targets_text(one_target(), NAME)[1].desc == "t2"


def _bytecode() -> bytes:
    """A real precompiled chunk for the same Lua version, made outside any sandbox."""
    runtime = lupa.lua54.LuaRuntime(encoding=None)
    code = runtime.eval(b"string.dump(function() return {Target = {}} end)")
    assert code.startswith(b"\x1bLua")
    return code


def test_bytecode_file_is_refused(tmp_path):
    path = tmp_path / NAME
    path.write_bytes(_bytecode())
    with pytest.raises(ConfigError) as info:
        load_targets(path)
    assert "bytecode" in str(info.value) and str(info.value).startswith(str(path))


def test_bytecode_is_refused_by_lua_itself_too():
    """Even past the file check, the chunk is loaded in text mode only."""
    with pytest.raises(ConfigError) as info:
        lua._run_sandboxed(_bytecode(), NAME)
    assert "binary chunk" in str(info.value)


# --- conversion to Python ---------------------------------------------------------------------


def test_self_referencing_and_function_values_are_named_not_walked():
    text = (
        'local t = {} t.t = t t[1] = t\nreturn {Target = {{Desc = "x", Mode = "File", Path = t}}}\n'
    )
    assert load_error(text).startswith(f'{NAME}: target 1 "x": Path <a table>: must be a string')
    text = 'return {Target = {{Desc = "x", Mode = "File", Path = function() end}}}'
    assert load_error(text).startswith(f'{NAME}: target 1 "x": Path <a function>: must be')


def test_table_key_in_a_target_is_refused():
    message = load_error('return {Target = {{[{}] = 1, Desc = "x"}}}')
    assert message.startswith(f"{NAME}: target 1: has the key <a table>; fields are named")
