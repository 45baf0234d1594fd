"""push_realtime.lua, fuzzed: loading gives targets or a ConfigError whose message is one line
naming the file, never another exception, within a few seconds.

Configs are generated (targets with FMADIO's fields holding right and wrong values of every Lua
type, odd shapes of Config.Target, runtime errors) and mutated from the valid ones the project
ships and tests (bytes flipped, cut, repeated; Lua tokens inserted).

Kept out for now (another engineer is fixing C-level hangs in lua.py): calls to the `string` and
`table` library functions (and string methods such as `("x"):rep(n)`), and nesting deeper than
MAX_NESTING. The shipped configs' `table.insert(Config.Target, {...})` is rewritten as
`Config.Target[#Config.Target + 1] = ({...})` for the same reason; every generated or mutated
text that still names one of them is discarded (`assume`).

Not generated until lua.py shows them in one line (reported): a newline in the message of an
`error(...)` call, in a top-level key of Config, or in a key Lua's own runtime error names
(`t["a\nb"].x`): each comes out raw, a message of two lines.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from fuzz_helpers import REPO, examples, mutate, one_line, outcome, within
from hypothesis import assume, given
from hypothesis import strategies as st
from lua_config_helpers import SEED

from pushcap.config.lua import load_targets
from pushcap.config.model import ConfigError, TargetConfig

pytestmark = pytest.mark.fuzz

NAME = "push_realtime.lua"
CAPTURED = ("lo", "local", "eth0")  # what pcapdaemon.toml would capture
MAX_NESTING = 100
# The excluded library calls (module docstring): the libraries by name, their functions by name
# wherever called (also as methods of a string), and the global `unpack` (table.unpack).
EXCLUDED = re.compile(
    r"\b(string|table|_G|_ENV|getmetatable)\b"
    r"|\b(rep|gsub|gmatch|match|find|format|concat|sort|insert|remove|move|unpack|pack|char|byte"
    r"|upper|lower|reverse|sub|len)\s*[(\"'{\[]"
    r"|:\s*[A-Za-z_]\w*\s*[(\"'{\[]")


def nesting(text: str) -> int:
    """The deepest bracket nesting in `text` (brackets inside strings counted too: an upper
    bound is what is needed)."""
    depth = deepest = 0
    for ch in text:
        if ch in "({[":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")}]":
            depth = max(0, depth - 1)
    return deepest


def without_library_calls(text: str) -> str:
    """A shipped config with its comment lines dropped and table.insert rewritten."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    text = "\n".join(lines) + "\n"
    return text.replace("table.insert(Config.Target,", "Config.Target[#Config.Target + 1] = (")


SEEDS = [
    without_library_calls((REPO / "etc" / "push_realtime.lua").read_text()),
    without_library_calls(SEED),
    'return { Target = { { Desc = "all", Mode = "File", Path = "o/all", '
    'Split = "--split-byte 1e5", FileName = "--filename-epoch-nsec" } } }\n',
    'local Config = {Target = {}}\nlocal dirs = {"a", "b"}\nfor i, d in ipairs(dirs) do\n'
    '  Config.Target[i] = {Desc = "t" .. d, Mode = "File", Path = "out/" .. d,\n'
    '    FilterBPF = i == 1 and "tcp" or nil, PipeCmd = "zstd -c -3 -T0",\n'
    '    FileSuffix = ".pcap.zst"}\nend\n'
    'Config.Target[3] = {Desc = "flows", Mode = "flows", Path = "udp://[::1]:9000",\n'
    '  Interval = 0.5, Interface = "lo"}\n'
    'Config.Target[4] = {Desc = "s3", Mode = "rclone", Path = "remote:bucket/all",\n'
    '  FileName = "--filename-strftime \\"%Y-%m-%d_%H%M%S.%N\\"", Split = "--split-time 1e9"}\n'
    "return Config\n",
]

# --- generated configs ------------------------------------------------------------------------


def lua_string(text: str, form: int) -> str:
    """`text` as a Lua literal: quoted with escapes, or a long bracket when it allows."""
    if form == 1 and "]]" not in text and not text.startswith("\n"):
        return f"[[{text}]]"
    if form == 2 and "]==]" not in text and not text.startswith("\n"):
        return f"[==[{text}]==]"
    out = []
    for ch in text:
        if ch in "\\\"":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\{ord(ch)}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            out.append(f"\\u{{{ord(ch):X}}}")  # Lua encodes it (UTF-8 style): not valid UTF-8
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


RAW_STRINGS = st.one_of(
    st.text(max_size=12),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=8),
    st.sampled_from(["", " ", "\n", "a\nb", "\x00", "é", "💥", "\ud800", "x" * 65, "%", "%N",
                     "udp://127.0.0.1:9000", "rclone", "File", "flows", "lo", "tcp"]),
)
STRINGS = st.builds(lua_string, RAW_STRINGS, st.integers(0, 2))
NUMBERS = st.one_of(
    st.integers(-(2**64), 2**64).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["60e9", "1e6", "0x10", "0xFFFFFFFFFFFFFFFF", "1e400", "-1e400", "0/0",
                     "1/0", "-1/0", "math.huge", "-math.huge", "2^63", "2^1024",
                     "9223372036854775807", "9223372036854775808", "-9223372036854775808",
                     "1e-9", "3.5", "7 // 2", "7 % 0.0", "math.pi", "0x7p-3", "1e308 * 10"]),
)
SCALARS = st.one_of(STRINGS, NUMBERS, st.sampled_from(["nil", "true", "false",
                                                       "function() end", "{}", "..."]))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: "{" + ", ".join(xs) + "}"),
        st.lists(st.tuples(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True), inner),
                 max_size=3).map(lambda kv: "{" + ", ".join(f"{k} = {v}" for k, v in kv) + "}"),
        st.tuples(inner, st.sampled_from(["..", "+", "-", "*", "/", "//", "%", "^", "==", "<",
                                          "and", "or"]), inner).map(" ".join),
        inner.map(lambda x: f"({x})"),
        inner.map(lambda x: f"-{x}"),
        inner.map(lambda x: f"not {x}"),
        inner.map(lambda x: f"#{x}"),
        inner.map(lambda x: f"tostring({x})"),
        inner.map(lambda x: f"tonumber({x})"),
        inner.map(lambda x: f"pcall(error, {x})"),
    ),
    max_leaves=6,
)

GOOD_VALUES = {
    "Desc": ["pcap-all", "x", "", "a" * 65, "bad name", "é", "-x", "all.tcp_1", "pcap-tcp"],
    "Mode": ["File", "rclone", "flows", "file", "", "FILE"],
    "Path": ["out/fuzz/all", "/tmp/pushcap-fuzz/x", "", "/", "a/", "remote:bucket/all",
             ":s3,provider=AWS:bucket/all", "udp://127.0.0.1:9000", "udp://[::1]:9000",
             "udp://127.0.0.1:0", "udp://127.0.0.1:99999", "udp://[::1", "s3://u:secret@h/x",
             "../x", "out/\x00", "remote:", "out/" + "p" * 300],
    "Split": ["--split-time 60e9", "--split-byte 1e9", "--split-time 1", "--split-byte 1023",
              "--split-time", "--split-time -5", "--split-time 1e400", "--split-time nan",
              "--split-time 0x10", "60e9", "--split-byte 1e30", "--split-time 60e9 extra"],
    "FileName": ["--filename-epoch-sec-startend", "--filename-epoch-nsec",
                 "--filename-tstr-HHMMSS_TZ", "--filename-timestr-HHMM", "--filename-bogus",
                 '--filename-strftime "%Y%m%d"', '--filename-strftime "%"',
                 '--filename-strftime "%N%N/%H"', "--filename-strftime", ""],
    "FilterBPF": ["tcp", "udp port 53", "tcpp", "", "port 99999", "(", "ip and not",
                  "vlan and tcp", "len > 100000000", "ether[0] = 1", "ip6 and icmp6"],
    "Interface": ["lo", "local", "eth0", "eth9", ""],
    "PipeCmd": ["cat", "gzip -c", "gzip -c -9", "gzip -c -10", "lz4 -c -12",
                "zstd -c -19 -T0", "zstd -c -T257", "rm -rf /", "gzip", "", "zstd -c -3 -3"],
    "FileSuffix": [".pcap", ".pcap.gz", ".pcap.lz4", ".pcap.zst", ".pcap.zstd", "pcap", ".",
                   ".a" * 30],
    "Interval": None,  # numbers only
}
FIELDS = list(GOOD_VALUES)


# A value each field takes in a File target that loads (Mode and Path agree with each other).
VALID = {"Desc": '"pcap-x"', "Mode": '"File"', "Path": '"out/fuzz/x"',
         "Split": '"--split-byte 1e6"', "FileName": '"--filename-epoch-msec"',
         "FilterBPF": '"udp"', "Interface": '"local"', "PipeCmd": '"gzip -c -1"',
         "FileSuffix": '".pcap.gz"', "Interval": "nil"}


def field_value(name: str) -> st.SearchStrategy[str]:
    good = GOOD_VALUES.get(name)
    right = (st.sampled_from(good).map(lambda s: lua_string(s, 0)) if good else
             st.sampled_from(["20", "0.1", "0.05", "86400", "86401", '"20"', "-1", "0/0"]))
    valid = st.just(VALID[name])
    return st.one_of(valid, valid, valid, right, right, VALUES)


KEYS = st.one_of(
    *[st.sampled_from(FIELDS)] * 6,
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True),
    st.sampled_from(["[1]", "[true]", "[0.5]", '["Desc"]', '["with space"]', "[{}]",
                     "[-1]", '["\\xff"]']),
    st.builds(lambda s: f"[{lua_string(s, 0)}]", RAW_STRINGS),
)


@st.composite
def targets(draw) -> str:
    """One target table: mostly the fields a File target needs, some odd or unknown."""
    fields = {"Desc": None, "Mode": None, "Path": None} if draw(st.integers(0, 3)) else {}
    for key in draw(st.lists(KEYS, max_size=5)):
        fields[key] = None
    parts = []
    for key in fields:
        value = draw(field_value(key) if key in GOOD_VALUES else VALUES)
        if key == "Desc" and draw(st.booleans()):
            value = lua_string(f"t{draw(st.integers(0, 99))}", 0)  # unique names, mostly
        parts.append(f"{key} = {value}")
    return "{ " + (",\n  " if draw(st.booleans()) else ", ").join(parts) + " }"


@st.composite
def configs(draw) -> str:
    """A whole file in one of the shapes operators write (or get wrong)."""
    tables = draw(st.lists(targets(), max_size=4))
    shape = draw(st.integers(0, 7))
    if shape == 0:
        return "return { Target = { " + ", ".join(tables) + " } }\n"
    if shape == 1:
        body = "".join(f"Config.Target[#Config.Target + 1] = {t}\n" for t in tables)
        return f"local Config = {{}}\nConfig.Target = {{}}\n{body}return Config\n"
    if shape == 2:
        index = st.sampled_from(["1", "2", "5", "0", "-1", "1.5", '"x"'])
        body = "".join(f"Config.Target[{draw(index)}] = {t}\n" for t in tables)
        return f"local Config = {{Target = {{}}}}\n{body}return Config\n"
    if shape == 3:
        extra = f"{draw(st.sampled_from(['Other', 'target', 'Targets']))} = {draw(VALUES)}"
        return "return { Target = { " + ", ".join(tables) + f" }}, {extra} }}\n"
    if shape == 4:
        return f"return {{ Target = {draw(VALUES)} }}\n"
    if shape == 5:
        count = draw(st.integers(0, 50))
        return ("local Config = {Target = {}}\n"
                f"for i = 1, {count} do\n"
                '  Config.Target[i] = {Desc = "t" .. i, Mode = "File", Path = "out/p" .. i}\n'
                "end\nreturn Config\n")
    if shape == 6:
        statement = draw(st.sampled_from([
            "error({})", "error(nil)", "error(1)", "assert(false)", "local x = nil; x.y = 1",
            "local t = {} ; t[nil] = 1", "return", "goto nowhere", "x = 1 + {}",
            "error(setmetatable({}, {}))", "error('\\0')", "error('stop here')",
            "os.exit()", "local a <const> = 1; a = 2", "break",
        ]))
        return f"{statement}\nreturn {{ Target = {{ {', '.join(tables)} }} }}\n"
    return draw(VALUES) if draw(st.booleans()) else f"return {draw(VALUES)}\n"


# --- mutated configs --------------------------------------------------------------------------

TOKENS = [b"{", b"}", b"(", b")", b",", b"=", b"==", b"..", b"...", b"nil", b"end", b"do",
          b"local", b"return", b"function", b"--", b"--[[", b"]]", b"[[", b'"', b"'", b"\\",
          b"\\xff", b"\xff", b"\x00", b"\r", b"\n", b"#", b"0/0", b"1e400", b"-", b"and",
          b"goto", b"::x::", b"\xef\xbb\xbf", b"\x1b", b"Target", b"Desc", b"Config"]


@st.composite
def mutants(draw) -> bytes:
    """A valid config with a few mutations: bits flipped, bytes removed, a stretch repeated or
    moved, a Lua token inserted, the file cut short."""
    buf = bytearray(draw(st.sampled_from(SEEDS)).encode())
    return mutate(draw, buf, TOKENS, 40,
                  ("flip", "delete", "repeat", "token", "cut", "swap"))


# --- the property -----------------------------------------------------------------------------


def check_config(data: bytes) -> None:
    text = data.decode("latin-1")
    assume(not EXCLUDED.search(text) and nesting(text) <= MAX_NESTING)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / NAME
        path.write_bytes(data)
        with within(what="load_targets"):
            try:
                loaded = load_targets(path, CAPTURED)
            except ConfigError as exc:
                message = str(exc)
                outcome("refused")
                assert message.startswith(f"{path}"), message
                assert one_line(message), message
                message.encode("utf-8")  # printed and logged as text
                return
    outcome("loaded")
    assert loaded and all(isinstance(t, TargetConfig) for t in loaded)
    assert [t.index for t in loaded] == list(range(1, len(loaded) + 1))
    assert len({t.desc for t in loaded}) == len(loaded)


@pytest.mark.parametrize("seed", range(len(SEEDS)))
def test_the_seeds_load(seed):
    """The mutations start from valid configs (else they would test only refusals)."""
    text = SEEDS[seed]
    assert not EXCLUDED.search(text) and nesting(text) <= MAX_NESTING
    assert load_targets_bytes(text.encode())


def load_targets_bytes(data: bytes) -> tuple[TargetConfig, ...]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / NAME
        path.write_bytes(data)
        return load_targets(path, CAPTURED)


@examples(200)
@given(configs())
def test_generated_configs(text):
    check_config(text.encode("utf-8", "surrogatepass"))


@examples(200)
@given(mutants())
def test_mutated_configs(data):
    check_config(data)
