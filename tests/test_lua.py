"""push_realtime.lua loading: the seed example, every field's good and bad forms, the sandbox."""

from __future__ import annotations

import time
from pathlib import Path

import lupa.lua54
import pytest

from pushcap import defaults
from pushcap.config import lua
from pushcap.config.lua import load_targets, load_targets_text
from pushcap.config.model import ConfigError, PushMode, SplitKind, SplitRule

REPO = Path(__file__).resolve().parent.parent
NAME = "push_realtime.lua"

# FMADIO's documented example, verbatim apart from the paths
SEED = """\
local Config = {}

Config.Target = {}

-- push all pcap data to /mnt/remote0/push/all_*.pcap
table.insert(Config.Target, 
{
    Desc      = "pcap-all",
    Mode      = "File",
    Path      = "/tmp/pushcap-test/push/all",
    Split     = "--split-time 60e9",
    FileName  = "--filename-epoch-sec-startend",
    FilterBPF = nil 
})

-- push all tcp data to /mnt/remote0/push/tcp_*.pcap
table.insert(Config.Target, 
{
    Desc      = "pcap-tcp", 
    Mode      = "File", 
    Path      = "/tmp/pushcap-test/push/tcp",   
    Split     = "--split-time 60e9", 
    FileName  = "--filename-epoch-sec-startend", 
    FilterBPF = "tcp" 
})

return Config
"""  # noqa: W291 (trailing spaces are part of the verbatim example)


def one_target(**fields: str) -> str:
    """Config text with target 1 valid and target 2 built from `fields` (Lua expressions)."""
    body = {"Desc": '"t2"', "Mode": '"File"', "Path": '"out/push/t2"', **fields}
    items = ", ".join(f"{k} = {v}" for k, v in body.items() if v is not None)
    return (
        "local Config = {Target = {}}\n"
        'table.insert(Config.Target, {Desc = "t1", Mode = "File", Path = "out/push/t1"})\n'
        f"table.insert(Config.Target, {{{items}}})\n"
        "return Config\n"
    )


def load_error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_targets_text(text, NAME)
    return str(info.value)


def second(**fields: str):
    return load_targets_text(one_target(**fields), NAME)[1]


# --- good configs -----------------------------------------------------------------------------


def test_seed_example_loads(tmp_path):
    path = tmp_path / NAME
    path.write_text(SEED)
    targets = load_targets(path)
    assert [t.index for t in targets] == [1, 2]
    all_, tcp = targets
    assert (all_.desc, all_.mode, all_.path) == (
        "pcap-all",
        PushMode.FILE,
        "/tmp/pushcap-test/push/all",
    )
    assert all_.split == SplitRule(SplitKind.TIME, 60_000_000_000)
    assert all_.naming.mode == "--filename-epoch-sec-startend" and all_.naming.strftime is None
    assert all_.filter_bpf is None and all_.interface is None
    assert (tcp.desc, tcp.path, tcp.filter_bpf) == ("pcap-tcp", "/tmp/pushcap-test/push/tcp", "tcp")


def test_shipped_config_loads():
    targets = load_targets(REPO / "etc" / "push_realtime.lua")
    assert [(t.desc, t.path, t.filter_bpf) for t in targets] == [
        ("pcap-all", "out/push/all", None),
        ("pcap-tcp", "out/push/tcp", "tcp"),
    ]
    assert all(t.split == SplitRule(SplitKind.TIME, 60_000_000_000) for t in targets)


def test_defaults_apply_when_split_and_filename_are_absent():
    target = second()
    assert target.split == SplitRule(SplitKind.TIME, 60_000_000_000)
    assert target.naming.mode == defaults.DEFAULT_FILENAME


def test_targets_as_a_list_literal_and_lua_computation():
    text = """
    local dirs = {"a", "b", "c"}
    local Config = {Target = {}}
    for i, d in ipairs(dirs) do
      Config.Target[#Config.Target + 1] = {
        Desc = "t-" .. d, Mode = "File", Path = string.format("out/%s/pcap", d),
        Split = "--split-byte " .. tostring(2 ^ 20 // 1),
      }
    end
    return Config
    """
    targets = load_targets_text(text, NAME)
    assert [t.path for t in targets] == ["out/a/pcap", "out/b/pcap", "out/c/pcap"]
    assert targets[2].split == SplitRule(SplitKind.BYTE, 1_048_576)


@pytest.mark.parametrize(
    ("lua_value", "expected"),
    [
        ('"--split-time 60e9"', SplitRule(SplitKind.TIME, 60_000_000_000)),
        ('"--split-time 1e6"', SplitRule(SplitKind.TIME, 1_000_000)),
        ('"--split-time 1.5e9"', SplitRule(SplitKind.TIME, 1_500_000_000)),
        ('"--split-time   3600000000000"', SplitRule(SplitKind.TIME, 3_600_000_000_000)),
        ('"--split-byte 1e9"', SplitRule(SplitKind.BYTE, 1_000_000_000)),
        ('"--split-byte 1024"', SplitRule(SplitKind.BYTE, 1024)),
    ],
)
def test_split_good(lua_value, expected):
    assert second(Split=lua_value, FileName='"--filename-epoch-nsec"').split == expected


@pytest.mark.parametrize(
    ("lua_value", "words"),
    [
        ('"--split-time 60"', "did you mean 60e9"),
        ('"--split-time 1.5"', "whole number"),
        ('"--split-time 0"', "positive"),
        ('"--split-time -5"', "not a number"),
        ('"--split-time 1e99"', "below 2^63"),
        ('"--split-time sixty"', "not a number"),
        ('"--split-byte 1000"', "at least 1024"),
        ('"--split-size 1e9"', "--split-time"),
        ('"--split-time"', "--split-time"),
        ("60e9", "must be a string"),
    ],
)
def test_split_bad(lua_value, words):
    message = load_error(one_target(Split=lua_value))
    assert message.startswith(f'{NAME}: target 2 "t2": Split ')
    assert words in message


@pytest.mark.parametrize(
    ("lua_value", "mode", "fmt"),
    [
        ('"--filename-epoch-sec"', "--filename-epoch-sec", None),
        ('"--filename-tstr-HHMMSS_TZ"', "--filename-tstr-HHMMSS_TZ", None),
        ("'--filename-strftime \"%Y%m%d_%H%M%S\"'", "--filename-strftime", "%Y%m%d_%H%M%S"),
        ("\"--filename-strftime '%Y%m%d %H%M%S'\"", "--filename-strftime", "%Y%m%d %H%M%S"),
        ('"--filename-strftime %Y%m%d_%H%M%S.%N"', "--filename-strftime", "%Y%m%d_%H%M%S.%N"),
    ],
)
def test_filename_good(lua_value, mode, fmt):
    naming = second(FileName=lua_value).naming
    assert (naming.mode, naming.strftime) == (mode, fmt)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"FileName": '"--filename-epoch-secs"'}, "did you mean --filename-epoch-sec"),
        ({"FileName": '"--filename-strftime"'}, "needs a format"),
        ({"FileName": '"--filename-strftime %Y/%m"'}, "subdirectories"),
        ({"FileName": '"--filename-strftime %Y %m"'}, "must be quoted"),
        ({"FileName": "'--filename-strftime \"%Y'"}, "does not end"),
        ({"FileName": '"--filename-epoch-sec x"'}, "takes no argument"),
        (
            {"FileName": '"--filename-tstr-HHMM"', "Split": '"--split-time 1e9"'},
            "would overwrite each other",
        ),
    ],
)
def test_filename_bad(fields, words):
    message = load_error(one_target(**fields))
    assert message.startswith(f'{NAME}: target 2 "t2": FileName ')
    assert words in message


def test_mode_is_case_insensitive_and_normalized():
    assert second(Mode='"file"').mode is PushMode.FILE
    assert second(Mode='"RCLONE"', Path='"s3:bucket/push/all"').mode is PushMode.RCLONE


@pytest.mark.parametrize(
    "path",
    [
        "s3:bucket/push/all",
        "my remote:push/all",
        "remote,provider=AWS:bucket/all",
        ":s3,endpoint='http://127.0.0.1:9000':bucket/all",
        ":local:/tmp/push/all",
    ],
)
def test_rclone_path_good(path):
    target = second(Mode='"rclone"', Path=f'"{path}"')
    assert target.path == path


@pytest.mark.parametrize(
    ("mode", "path", "words"),
    [
        ("rclone", "/mnt/push/all", "rclone destination"),
        ("rclone", "s3:", "rclone destination"),
        ("rclone", "s3:bucket/", "ends with '/'"),
        ("File", "out/push/", "ends with '/'"),
        ("File", "out/.push", "starts with '.'"),
        ("File", "", "is empty"),
        ("File", " out/push/all", "spaces"),
        ("File", "out/push\\nall", "control character"),
        ("File", "out/push\\0all", "control character"),
    ],
)
def test_path_bad(mode, path, words):
    message = load_error(one_target(Mode=f'"{mode}"', Path=f'"{path}"'))
    assert message.startswith(f'{NAME}: target 2 "t2": Path ')
    assert words in message


@pytest.mark.parametrize(
    ("fields", "prefix", "words"),
    [
        ({"Desc": None}, "target 2: Desc is missing", "Desc = "),
        ({"Desc": '"pcap all"'}, 'target 2: Desc "pcap all"', "letters, digits"),
        ({"Desc": '"-x"'}, 'target 2: Desc "-x"', "starting with a letter"),
        ({"Desc": '"a/b"'}, 'target 2: Desc "a/b"', "letters, digits"),
        ({"Desc": "42"}, "target 2: Desc 42", "must be a string"),
        ({"Desc": '"' + "x" * 65 + '"'}, "target 2: Desc", "1-64"),
        ({"Mode": None}, 'target 2 "t2": Mode is missing', 'Mode = "File"'),
        ({"Mode": '"ftp"'}, 'target 2 "t2": Mode "ftp"', "'File' or 'rclone'"),
        ({"Path": None}, 'target 2 "t2": Path is missing', "Path = "),
        ({"Path": "{}"}, 'target 2 "t2": Path <a table>', "must be a string"),
        ({"Interface": '"eth 0"'}, 'target 2 "t2": Interface "eth 0"', "interface name"),
        ({"Interface": '""'}, 'target 2 "t2": Interface ""', "empty"),
        ({"FilterBPF": '""'}, 'target 2 "t2": FilterBPF ""', "FilterBPF = nil"),
        ({"FilterBPF": "true"}, 'target 2 "t2": FilterBPF true', "must be a string"),
        ({"Chunked": "true"}, 'target 2 "t2": Chunked', "not supported yet by pushcap"),
        ({"RingName": '"r0"'}, 'target 2 "t2": RingName', "not supported yet by pushcap"),
        ({"Compress": "true"}, 'target 2 "t2": Compress', "not supported yet by pushcap"),
        ({"Fitler": '"tcp"'}, 'target 2 "t2": unknown field Fitler', "known: Desc, Mode"),
    ],
)
def test_field_errors_name_target_and_field(fields, prefix, words):
    message = load_error(one_target(**fields))
    assert message.startswith(f"{NAME}: {prefix}")
    assert words in message


def test_filter_bpf_compiled_at_load_with_libpcap_message():
    message = load_error(one_target(FilterBPF='"tcpp"'))
    assert message == f'{NAME}: target 2 "t2": FilterBPF "tcpp": syntax error'
    message = load_error(one_target(FilterBPF='"port 99999"'))
    assert message.startswith(f'{NAME}: target 2 "t2": FilterBPF "port 99999": ')
    assert "99999" in message.split(": ", 3)[3]


def test_filter_bpf_and_interface_good():
    target = second(FilterBPF='"not host 192.168.1.100"', Interface='"eth0"')
    assert (target.filter_bpf, target.interface) == ("not host 192.168.1.100", "eth0")


def test_duplicate_desc():
    message = load_error(one_target(Desc='"t1"'))
    assert message.startswith(f'{NAME}: target 2 "t1": Desc "t1": is also used by target 1')


def test_duplicate_path():
    message = load_error(one_target(Path='"out/push/t1"'))
    assert message.startswith(f'{NAME}: target 2 "t2": Path "out/push/t1": is also used by')


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("return {}", "Config.Target is missing"),
        ("return {Target = {}}", "Config.Target is empty"),
        ('return {Target = "x"}', "not a table"),
        ("return {Target = {[1] = {}, [3] = {}}}", "must be a list"),
        ("return {Target = {{}}, Other = 1}", "unknown top-level field Other"),
        ('return {Target = {"pcap-all"}}', 'target 1: is "pcap-all", not a table'),
        ('return {Target = {{"pcap-all", "File"}}}', "target 1: has the key 1"),
        ("local Config = {}", "returned nothing"),
        ("return 5", "returned 5"),
    ],
)
def test_structure_errors(text, words):
    message = load_error(text)
    assert message.startswith(f"{NAME}: ")
    assert words in message


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
        ('os.execute("touch /tmp/pushcap-pwned")', "os"),
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
