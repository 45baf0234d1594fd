"""Target fields beyond FMADIO's basics: PipeCmd, FileSuffix and pushcap's Mode flows."""

from __future__ import annotations

import pytest
from lua_config_helpers import NAME, TARGET2_LINE, one_target

from pushcap import defaults
from pushcap.config.codec import Codec
from pushcap.config.lua import load_targets_text
from pushcap.config.model import ConfigError, PushMode, SplitKind, SplitRule, TargetConfig

FLOWS = {"Mode": '"flows"', "Path": '"udp://127.0.0.1:9000"'}
PIPE_KNOWN = "cat, gzip -c [-1..-9], lz4 -c [-1..-12], zstd -c [-1..-19] [-T0..-T256]"
AT2 = f"{NAME}:{TARGET2_LINE}: target 2"  # where target 2 of one_target() is written
config = one_target  # target 1 valid, target 2 built from keyword fields (Lua expressions)


def second(**fields: str | None) -> TargetConfig:
    return load_targets_text(config(**fields), NAME)[1]


def error(**fields: str | None) -> str:
    with pytest.raises(ConfigError) as info:
        load_targets_text(config(**fields), NAME)
    return str(info.value)


def lua_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- PipeCmd ----------------------------------------------------------------------------------
# The grammar (and why) is config/codec.py's docstring: each tool's own level range, zstd
# -T0..-T256, options in any order, each once, -c required, nothing else.


@pytest.mark.parametrize(
    ("command", "codec", "suffix"),
    [
        ("cat", None, ".pcap"),
        ("gzip -c", Codec("gzip"), ".pcap.gz"),
        ("gzip -c -1", Codec("gzip", 1), ".pcap.gz"),
        ("gzip -c -6", Codec("gzip", 6), ".pcap.gz"),
        ("gzip -c -9", Codec("gzip", 9), ".pcap.gz"),
        ("gzip  -c   -6", Codec("gzip", 6), ".pcap.gz"),
        ("gzip -9 -c", Codec("gzip", 9), ".pcap.gz"),
        ("lz4 -c", Codec("lz4"), ".pcap.lz4"),
        ("lz4 -c -1", Codec("lz4", 1), ".pcap.lz4"),
        ("lz4 -c -3", Codec("lz4", 3), ".pcap.lz4"),
        ("lz4 -c -9", Codec("lz4", 9), ".pcap.lz4"),
        ("lz4 -c -12", Codec("lz4", 12), ".pcap.lz4"),
        ("zstd -c", Codec("zstd"), ".pcap.zstd"),
        ("zstd -c -1", Codec("zstd", 1), ".pcap.zstd"),
        ("zstd -c -19", Codec("zstd", 19), ".pcap.zstd"),
        ("zstd -c -T0", Codec("zstd", None, 0), ".pcap.zstd"),
        ("zstd -c -19 -T0", Codec("zstd", 19, 0), ".pcap.zstd"),
        ("zstd -c -T0 -3", Codec("zstd", 3, 0), ".pcap.zstd"),
        ("zstd -c -T2", Codec("zstd", None, 2), ".pcap.zstd"),
        ("zstd -T256 -c -1", Codec("zstd", 1, 256), ".pcap.zstd"),
    ],
)
def test_pipe_cmd_good(command, codec, suffix):
    target = second(PipeCmd=lua_str(command))
    assert (target.pipe_cmd, target.file_suffix) == (codec, suffix)


@pytest.mark.parametrize(
    ("command", "canonical", "described"),
    [
        ("gzip -c", "gzip -c", "gzip level 6"),
        ("gzip -9 -c", "gzip -c -9", "gzip level 9"),
        ("lz4 -c", "lz4 -c", "lz4 level 1"),
        ("zstd -c", "zstd -c", "zstd level 3"),
        ("zstd -T0 -c", "zstd -c -T0", "zstd level 3 threads=per-core"),
        ("zstd -c -T4 -19", "zstd -c -19 -T4", "zstd level 19 threads=4"),
    ],
)
def test_pipe_cmd_defaults_are_the_tools(command, canonical, described):
    codec = second(PipeCmd=lua_str(command)).pipe_cmd
    assert (codec.command(), codec.describe()) == (canonical, described)


def test_no_pipe_cmd_is_plain_pcap():
    target = second()
    assert (target.pipe_cmd, target.file_suffix) == (None, ".pcap")


def test_unknown_compressor_message():
    assert error(PipeCmd='"bzip2 -c"') == (
        f'{AT2} "t2": PipeCmd "bzip2 -c": not a known compressor '
        f"(known: {PIPE_KNOWN});"
        " pushcap compresses in-process and never runs a command from the config"
    )


@pytest.mark.parametrize(
    ("lua_value", "words"),
    [
        # each level bound, one past it
        ('"gzip -c -0"', '"-0" is not a gzip level: write -1..-9'),
        ('"gzip -c -10"', '"-10" is not a gzip level: write -1..-9'),
        ('"lz4 -c -0"', '"-0" is not a lz4 level: write -1..-12'),
        ('"lz4 -c -13"', '"-13" is not a lz4 level: write -1..-12'),
        ('"zstd -c -0"', '"-0" is not a zstd level: write -1..-19'),
        ('"zstd -c -20"', '"-20" is not a zstd level: write -1..-19'),
        ('"zstd -c -09"', '"-09" is not a zstd level'),
        ('"zstd -c -T257"', '"-T257" is not a thread count: write -T1..-T256, or -T0'),
        ('"zstd -c -T04"', '"-T04" is not a thread count'),
        # -c, the only options each tool takes, each once
        ('"gzip"', "needs -c (compress to standard output, as a pipe does): write gzip -c"),
        ('"gzip -1"', "needs -c"),
        ('"lz4 -9"', "needs -c"),
        ('"zstd -T0"', "needs -c"),
        ('"gzip -c -c"', 'gives -c twice ("-c", "-c")'),
        ('"gzip -c -1 -9"', 'gives a level twice ("-1", "-9"); write gzip -c [-1..-9]'),
        ('"zstd -c -T0 -T2"', 'gives a thread count twice ("-T0", "-T2")'),
        ('"gzip -c -T0"', 'gzip option "-T0" is not accepted: write gzip -c [-1..-9]'),
        ('"lz4 -c -T0"', 'lz4 option "-T0" is not accepted: write lz4 -c [-1..-12]'),
        ('"gzip -c9"', 'gzip option "-c9" is not accepted'),
        ('"gzip -c --best"', 'gzip option "--best" is not accepted'),
        ('"zstd -c --ultra -22"', 'zstd option "--ultra" is not accepted'),
        ('"zstd -c --rm"', 'zstd option "--rm" is not accepted'),
        ('"zstd -c -d"', 'zstd option "-d" is not accepted'),
        # other programs, other spellings, shell syntax
        ('"xz -c"', "not a known compressor"),
        ('"GZIP -c"', "not a known compressor"),
        ('"sh -c gzip"', "not a known compressor"),
        ('"cat -v"', "cat takes no arguments"),
        ('"/bin/gzip -c"', "has '/', which is shell syntax or a path"),
        ('"cat /etc/passwd"', "never runs a command"),
        ('"gzip -c; rm -rf /"', "has ';', which is shell syntax"),
        ('"gzip -c | nc 10.0.0.1 9"', "never runs a command"),
        ('"gzip -c > /tmp/x"', "never runs a command"),
        ('"gzip -c $(id)"', "never runs a command"),
        ('"gzip -c && reboot"', "never runs a command"),
        ("\"sh -c 'gzip -c'\"", "never runs a command"),
        ('"zstd\\t-c"', "control character"),
        ("9", "must be a string"),
        ("true", "must be a string"),
    ],
)
def test_pipe_cmd_bad(lua_value, words):
    message = error(PipeCmd=lua_value)
    assert message.startswith(f'{AT2} "t2": PipeCmd ')
    assert words in message


@pytest.mark.parametrize("lua_value", ['"gzip -c; rm -rf /"', '"xz -c"', '"gzip -c -T0"'])
def test_pipe_cmd_refusals_say_nothing_is_run(lua_value):
    assert "never runs a command from the config" in error(PipeCmd=lua_value)


@pytest.mark.parametrize(
    ("name", "level", "threads"),
    [("xz", None, None), ("gzip", 10, None), ("lz4", 0, None), ("lz4", 13, None),
     ("zstd", 20, None), ("gzip", 6, 0), ("lz4", None, 2), ("zstd", 3, 257), ("zstd", 3, -1)],
)
def test_a_codec_cannot_be_built_outside_the_grammar(name, level, threads):
    """push/ executes any Codec it is given, so a Codec made in code is held to the grammar too."""
    with pytest.raises(ValueError):
        Codec(name, level, threads)


# --- FileSuffix -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "suffix"),
    [
        (None, ".pcap"),
        (None, ".cap"),
        (None, ".pcapng-not.really_1"),
        ("cat", ".pcap"),
        ("gzip -c -1", ".pcap.gz"),
        ("gzip -c", ".gz"),
        ("lz4 -c", ".pcap.lz4"),
        ("zstd -c", ".pcap.zst"),
        ("zstd -c -T0", ".pcap.zstd"),
    ],
)
def test_file_suffix_good(command, suffix):
    pipe = lua_str(command) if command else None
    assert second(PipeCmd=pipe, FileSuffix=lua_str(suffix)).file_suffix == suffix


@pytest.mark.parametrize(
    ("command", "suffix", "words"),
    [
        (None, ".", "must be '.' then 1-20"),
        (None, "." + "x" * 21, "must be '.' then 1-20"),
        (None, ".pc ap", "must be '.' then 1-20"),
        (None, ".pcap/x", "must be '.' then 1-20"),
        (None, "/x.pcap", "must be '.' then 1-20"),
        ("cat", ".pcap.zstd", "no PipeCmd"),
        ("cat", ".pcap.gz", "ends in .gz but there is no PipeCmd"),
        ("gzip -c", ".pcap", 'does not match PipeCmd "gzip -c", which writes gzip data: end it'),
        ("gzip -c", ".pcap.zst", "end it with .gz"),
        ("lz4 -c -1", ".pcap.gz", "end it with .lz4"),
        ("zstd -c", ".pcap.gz", "end it with .zst or .zstd"),
        ("zstd -c", ".pcap", 'e.g. FileSuffix = ".pcap.zstd"'),
    ],
)
def test_file_suffix_bad(command, suffix, words):
    pipe = lua_str(command) if command else None
    message = error(PipeCmd=pipe, FileSuffix=lua_str(suffix))
    assert message.startswith(f'{AT2} "t2": FileSuffix {lua_str(suffix)}: ')
    assert words in message


def test_file_suffix_not_a_string():
    message = error(FileSuffix="{}")
    assert message.startswith(f'{AT2} "t2": FileSuffix <a table>: must be a string')


def test_rclone_target_takes_pipe_cmd_and_suffix():
    target = second(Mode='"rclone"', Path='"s3:bucket/all"', PipeCmd='"zstd -c -3 -T0"')
    assert (target.mode, target.pipe_cmd, target.file_suffix) == (
        PushMode.RCLONE,
        Codec("zstd", 3, 0),
        ".pcap.zstd",
    )


# --- Mode flows -------------------------------------------------------------------------------


def test_flows_target_defaults():
    target = second(**FLOWS)
    assert (target.mode, target.path, target.interval_s) == (
        PushMode.FLOWS,
        "udp://127.0.0.1:9000",
        20.0,
    )
    assert target.split == SplitRule(SplitKind.TIME, 60_000_000_000)
    assert target.naming.mode == defaults.DEFAULT_FILENAME
    assert (target.pipe_cmd, target.file_suffix, target.filter_bpf, target.interface) == (
        None,
        ".pcap",
        None,
        None,
    )


def test_flows_mode_is_case_insensitive_with_filter_and_interface():
    target = second(**{**FLOWS, "Mode": '"FLOWS"'}, FilterBPF='"udp"', Interface='"eth0"')
    assert (target.mode, target.filter_bpf, target.interface) == (PushMode.FLOWS, "udp", "eth0")


def test_flows_filter_is_still_compiled():
    message = error(**FLOWS, FilterBPF='"tcpp"')
    assert message == f'{AT2} "t2": FilterBPF "tcpp": syntax error'


@pytest.mark.parametrize(
    "path",
    [
        "udp://127.0.0.1:9000",
        "udp://0.0.0.0:1",
        "udp://[::1]:9000",
        "udp://[fe80::1:2]:65535",
        "udp://localhost:514",
        "udp://collector-1.example.com:2055",
    ],
)
def test_flows_path_good(path):
    assert second(**{**FLOWS, "Path": lua_str(path)}).path == path


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("out/push/flows", 'must be "udp://HOST:PORT"'),
        ("tcp://127.0.0.1:9000", 'must be "udp://HOST:PORT"'),
        ("UDP://127.0.0.1:9000", 'must be "udp://HOST:PORT"'),
        ("udp://127.0.0.1", 'must be "udp://HOST:PORT"'),
        ("udp://127.0.0.1:", 'must be "udp://HOST:PORT"'),
        ("udp://:9000", "is not an IPv4 address"),
        ("udp://127.0.0.1:9000/", 'must be "udp://HOST:PORT"'),
        ("udp://127.0.0.1:http", 'must be "udp://HOST:PORT"'),
        ("udp://::1:9000", "IPv6 address goes in brackets"),
        ("udp://[::1]", 'must be "udp://HOST:PORT"'),
        ("udp://127.0.0.1:0", "port 0 is not in 1-65535"),
        ("udp://127.0.0.1:65536", "port 65536 is not in 1-65535"),
        ("udp://127.0.0.1:123456", 'must be "udp://HOST:PORT"'),
        ("udp://999.1.1.1:9000", "'999.1.1.1' is not an IPv4 address"),
        ("udp://[::g]:9000", "is not an IPv4 address, a bracketed IPv6"),
        ("udp://[127.0.0.1]:9000", "is not an IPv4 address, a bracketed IPv6"),
        ("udp://host_name:9000", "is not an IPv4 address"),
        ("udp://-bad.example:9000", "is not an IPv4 address"),
        ("udp://bad..example:9000", "is not an IPv4 address"),
        ("udp://user@host:9000", "is not an IPv4 address"),
    ],
)
def test_flows_path_bad(path, words):
    message = error(**{**FLOWS, "Path": lua_str(path)})
    assert message.startswith(f'{AT2} "t2": Path {lua_str(path)}: ')
    assert words in message


def test_flows_path_missing():
    message = error(Mode='"flows"', Path=None)
    assert message.startswith(f'{AT2} "t2": Path is missing: ')
    assert "udp://" in message


@pytest.mark.parametrize(("lua_value", "seconds"), [("0.1", 0.1), ("5", 5.0), ("86400", 86400.0)])
def test_flows_interval_good(lua_value, seconds):
    assert second(**FLOWS, Interval=lua_value).interval_s == seconds


@pytest.mark.parametrize(
    ("lua_value", "words"),
    [
        ("0", "between 0.1 and 86400 seconds"),
        ("0.05", "between 0.1 and 86400 seconds"),
        ("-5", "between 0.1 and 86400 seconds"),
        ("86401", "between 0.1 and 86400 seconds"),
        ("math.huge", "between 0.1 and 86400 seconds"),
        ("0/0", "between 0.1 and 86400 seconds"),
        ('"20"', "must be a number of seconds"),
        ("true", "must be a number of seconds"),
        ("{}", "must be a number of seconds"),
    ],
)
def test_flows_interval_bad(lua_value, words):
    message = error(**FLOWS, Interval=lua_value)
    assert message.startswith(f'{AT2} "t2": Interval ')
    assert words in message


@pytest.mark.parametrize(
    ("field", "lua_value"),
    [
        ("Split", '"--split-time 60e9"'),
        ("FileName", '"--filename-epoch-sec"'),
        ("PipeCmd", '"gzip -c"'),
        ("PipeCmd", '"cat"'),
        ("FileSuffix", '".json"'),
    ],
)
def test_file_fields_refused_for_flows(field, lua_value):
    message = error(**FLOWS, **{field: lua_value})
    assert message.startswith(f'{AT2} "t2": {field} {lua_value}: has no meaning for')
    assert "Mode flows" in message


@pytest.mark.parametrize(
    "fields",
    [{}, {"Mode": '"rclone"', "Path": '"s3:bucket/all"'}],
)
def test_interval_refused_for_file_targets(fields):
    message = error(**fields, Interval="20")
    assert message.startswith(f'{AT2} "t2": Interval 20: is only for Mode flows')


def test_two_flows_targets_with_one_address_are_refused():
    text = (
        "return {Target = {\n"
        ' {Desc = "f1", Mode = "flows", Path = "udp://[::1]:9000"},\n'
        ' {Desc = "f2", Mode = "flows", Path = "udp://[::1]:9000", Interval = 5},\n'
        "}}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_targets_text(text, NAME)
    assert str(info.value).startswith(
        f'{AT2} "f2": Path "udp://[::1]:9000": is also used by target 1 "f1" (line 2); two flows'
    )


def test_flows_and_file_targets_side_by_side():
    text = (
        "return {Target = {\n"
        ' {Desc = "f1", Mode = "flows", Path = "udp://127.0.0.1:9000"},\n'
        ' {Desc = "f2", Mode = "flows", Path = "udp://127.0.0.1:9001", Interval = 1.5},\n'
        ' {Desc = "p1", Mode = "File", Path = "out/p1", PipeCmd = "lz4 -c"},\n'
        "}}\n"
    )
    targets = load_targets_text(text, NAME)
    assert [(t.mode, t.interval_s, t.file_suffix) for t in targets] == [
        (PushMode.FLOWS, 20.0, ".pcap"),
        (PushMode.FLOWS, 1.5, ".pcap"),
        (PushMode.FILE, 20.0, ".pcap.lz4"),
    ]
