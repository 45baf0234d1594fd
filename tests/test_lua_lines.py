"""Errors about a target point at the line the operator wrote: the field's own, else its table's.

Every expected line is found in the test's own Lua text (the one line holding a marker), so the
tests say which line is meant, not a number to keep in step with the text. Covered: FMADIO's
table.insert style (the seed), a literal list, `T[#T + 1] =`, targets made in a loop or a helper
function, a field set outside the table, `["Split"] =` keys, CRLF files, and source text that
only looks like fields (strings, comments, long brackets).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from lua_config_helpers import NAME, SEED, load_error

from pushcap import defaults
from pushcap.config import lua, lua_lines
from pushcap.config.lua import load_targets, load_targets_text
from pushcap.config.lua_lines import instrument, scan_constructors

REPO = Path(__file__).resolve().parent.parent


def line_of(text: str, marker: str, nth: int = 1) -> int:
    """The 1-based line of the `nth` line of `text` holding `marker`."""
    lines = [i for i, line in enumerate(text.splitlines(), start=1) if marker in line]
    assert len(lines) >= nth, f"{marker!r} is on {len(lines)} lines"
    return lines[nth - 1]


def error_at(text: str) -> str:
    return load_error(text, line=True)


# --- FMADIO's table.insert style (the seed) ---------------------------------------------------

TCP = 'Desc      = "pcap-tcp"'  # in SEED, the second target's Desc line


def seed_with(old: str, new: str) -> str:
    """SEED with the first `old` in target 2 (pcap-tcp) replaced by `new`."""
    start = SEED.index("-- push all tcp data")
    assert old in SEED[start:], old
    return SEED[:start] + SEED[start:].replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "field", "words"),
    [
        ('"--split-time 60e9"', '"--split-time 60"', "Split", "did you mean 60e9"),
        ('"--split-time 60e9"', "60e9", "Split", "must be a string"),
        ('FilterBPF = "tcp"', 'FilterBPF = "tcpp"', "FilterBPF", "syntax error"),
        ('"--filename-epoch-sec-startend"', '"--filename-epoch-secs"', "FileName", "did you mean"),
        ('Mode      = "File"', 'Mode      = "ftp"', "Mode", "'File' or 'rclone'"),
        ('"/tmp/pushcap-test/push/tcp"', '"out/push/.tcp"', "Path", "starts with '.'"),
    ],
)
def test_seed_field_errors_point_at_the_field(old, new, field, words):
    text = seed_with(old, new)
    message = error_at(text)
    line = line_of(text, f"{field} ", 2)  # the field's line in target 2, not target 1's
    assert message.startswith(f'{NAME}:{line}: target 2 "pcap-tcp": {field} '), message
    assert words in message


@pytest.mark.parametrize(
    ("added", "words"),
    [
        ('    Fitler    = "tcp",', "unknown field Fitler (known: Desc, Mode"),
        ('    Chunked   = "yes",', 'Chunked "yes": must be true or false'),
        ("    Interval  = 20,", "Interval 20: is only for Mode flows"),
        ('    PipeCmd   = "bzip2 -c",', 'PipeCmd "bzip2 -c": not a known compressor'),
    ],
)
def test_seed_added_field_errors_point_at_the_added_line(added, words):
    text = seed_with(f"    {TCP}, \n", f"    {TCP}, \n{added}\n")
    message = error_at(text)
    assert message.startswith(f'{NAME}:{line_of(text, added)}: target 2 "pcap-tcp": {words}')


def test_seed_bad_desc_points_at_desc_and_is_not_named_yet():
    text = seed_with(TCP, 'Desc      = "pcap\\ttcp"')
    message = error_at(text)
    line = line_of(text, "pcap\\ttcp")  # written with a backslash-t escape
    assert message.startswith(f'{NAME}:{line}: target 2: Desc "pcap\\ttcp": ')


def test_seed_missing_field_points_at_the_table():
    text = seed_with('    Mode      = "File", \n', "")
    message = error_at(text)
    table_line = line_of(text, TCP) - 1  # the seed opens each table on the line before Desc
    assert text.splitlines()[table_line - 1] == "{"
    assert message == f'{NAME}:{table_line}: target 2 "pcap-tcp": Mode is missing: add it, e.g.' + (
        ' Mode = "File"'
    )


def test_seed_duplicates_point_at_both_targets():
    text = seed_with(TCP, 'Desc      = "pcap-all"')
    first, second = (line_of(text, '"pcap-all"', n) for n in (1, 2))
    assert error_at(text).startswith(
        f'{NAME}:{second}: target 2 "pcap-all": Desc "pcap-all": is also used by target 1'
        f' "pcap-all" (line {first}); each target needs its own Desc'
    )


def test_file_errors_name_the_path_given_and_the_line(tmp_path):
    # the shipped example with a typo, as `pushcap check` reads it
    text = (REPO / "etc/push_realtime.lua").read_text().replace('"tcp"', '"tcpp"')
    path = tmp_path / NAME
    path.write_text(text)
    with pytest.raises(lua.ConfigError) as info:
        load_targets(path)
    line = line_of(text, 'FilterBPF = "tcpp"')
    assert str(info.value) == f'{path}:{line}: target 2 "pcap-tcp": FilterBPF "tcpp": syntax error'


# --- other ways to build the list -------------------------------------------------------------

LITERAL_LIST = """\
local Config = {}
Config.Target = {
  { Desc = "a", Mode = "File", Path = "out/a" },
  { Desc = "b", Mode = "File", Path = "out/b" }, { Desc = "c", Mode = "File",
    Path = "out/c",
    Split = SPLIT_C,                           -- C-SPLIT
    FilterBPF = BPF_C },
}
return Config
"""


@pytest.mark.parametrize(
    ("split", "bpf", "marker", "field"),
    [
        ('"--split-time 60"', '"tcp"', "C-SPLIT", "Split"),
        ('"--split-time 60e9"', '"tcpp"', "FilterBPF = ", "FilterBPF"),
    ],
)
def test_literal_list_points_at_the_field(split, bpf, marker, field):
    text = LITERAL_LIST.replace("SPLIT_C", split).replace("BPF_C", bpf)
    message = error_at(text)
    assert message.startswith(f'{NAME}:{line_of(text, marker)}: target 3 "c": {field} '), message


def test_literal_list_missing_field_points_at_the_table_sharing_a_line():
    text = LITERAL_LIST.replace(', Mode = "File",\n', ",\n").replace("SPLIT_C", "nil")
    text = text.replace("BPF_C", "nil")
    line = line_of(text, '{ Desc = "c"')
    assert error_at(text).startswith(f'{NAME}:{line}: target 3 "c": Mode is missing')


def test_literal_list_positional_field_points_at_the_table():
    text = 'return {Target = {\n  {Desc = "a", Mode = "File", Path = "o/a"},\n  {"pcap-b"},\n}}\n'
    message = error_at(text)
    assert message.startswith(f"{NAME}:{line_of(text, 'pcap-b')}: target 2: has the key 1; ")


def test_index_assignment_points_at_the_field():
    text = (
        "local Config = {Target = {}}\n"
        "local T = Config.Target\n"
        'T[#T + 1] = {Desc = "a", Mode = "File", Path = "out/a"}\n'
        "T[#T + 1] = {\n"
        '  Desc = "b", Mode = "rclone",\n'
        '  Path = "/not/an/rclone/remote",\n'
        "}\n"
        "return Config\n"
    )
    message = error_at(text)
    assert message.startswith(f'{NAME}:{line_of(text, "/not/an")}: target 2 "b": Path "/not/an/')


LOOP = """\
local Config = {Target = {}}
local sites = {"lon", "nyc", "tok"}
for i, site in ipairs(sites) do
  local t = {                                        -- TABLE
    Desc = "pcap-" .. site,
    Mode = "File",
    Path = "out/" .. site .. "/all",
    Split = site == "nyc" and "--split-time 60" or "--split-time 60e9",   -- SPLIT
  }
  if site == "tok" then t.FilterBPF = "tcpp" end     -- SET LATER
  table.insert(Config.Target, t)
end
return Config
"""


def test_loop_points_at_the_constructor_in_the_loop():
    message = error_at(LOOP)
    assert message.startswith(f'{NAME}:{line_of(LOOP, "-- SPLIT")}: target 2 "pcap-nyc": Split ')
    # a field set after the table was made is not in it: the table's line
    text = LOOP.replace('"--split-time 60"', '"--split-time 60e9"')
    message = error_at(text)
    assert message.startswith(f'{NAME}:{line_of(text, "-- TABLE")}: target 3 "pcap-tok": FilterBPF')


def test_loop_duplicate_names_the_same_line_for_both():
    text = LOOP.replace('"pcap-" .. site', '"pcap"').replace('60"', '60e9"')
    line = line_of(text, 'Desc = "pcap"')
    assert error_at(text).startswith(
        f'{NAME}:{line}: target 2 "pcap": Desc "pcap": is also used by target 1 "pcap"'
        f" (line {line});"
    )


def test_helper_function_points_at_its_constructor():
    text = (
        "local Config = {Target = {}}\n"
        "local function target(desc, bpf)\n"
        '  return {Desc = desc, Mode = "File", Path = "out/" .. desc,\n'
        "          FilterBPF = bpf}\n"
        "end\n"
        'table.insert(Config.Target, target("a", "tcp"))\n'
        'table.insert(Config.Target, target("b", "udpp"))\n'
        "return Config\n"
    )
    message = error_at(text)
    assert message.startswith(f'{NAME}:{line_of(text, "FilterBPF = bpf")}: target 2 "b": FilterBPF')


# --- source that only looks like fields -------------------------------------------------------


def test_strings_and_comments_with_braces_change_neither_lines_nor_values():
    text = (
        "local Config = {Target = {}} -- { Split = 1 }\n"
        "--[==[ a long comment { Desc = 'x',\n"
        "  FilterBPF = 'y' } ]==]\n"
        'local note = [[ { ]] .. \'}\' .. "{\\"" -- }\n'
        "table.insert(Config.Target, {Desc = 'a', Mode = 'File', Path = 'out/{a}', FilterBPF =\n"
        "  'tcp'})\n"
        "table.insert(Config.Target,\n"
        "  {Desc = 'b', Mode = 'File', Path = 'out/b' .. note,\n"
        "   ['FilterBPF'] = 'udpp' })\n"
        "return Config\n"
    )
    line = line_of(text, "['FilterBPF']")
    assert error_at(text).startswith(f'{NAME}:{line}: target 2 "b": FilterBPF "udpp": ')
    good = text.replace("'udpp'", "'udp'")
    targets = load_targets_text(good, NAME)
    assert [t.path for t in targets] == ["out/{a}", 'out/b { }{"']
    assert targets[0].filter_bpf == "tcp"


def test_crlf_lines_are_counted_as_lua_counts_them():
    text = seed_with('"--split-time 60e9"', '"--split-time 60"')
    message = error_at(text.replace("\n", "\r\n"))
    line = line_of(text, '"--split-time 60"')
    assert message.startswith(f'{NAME}:{line}: target 2 "pcap-tcp"')


def test_secret_path_error_keeps_its_line_and_hides_the_secret():
    secret = "S3SECRETxyz"
    text = (
        'return {Target = {\n {Desc = "s3", Mode = "rclone",\n'
        f'  Path = ":s3,secret_access_key={secret}:bucket/x/.y"}}}}}}\n'
    )
    message = error_at(text)
    assert message.startswith(f'{NAME}:3: target 1 "s3": Path ":s3:bucket/x/.y": the file prefix')
    assert secret not in message and secret[:5] not in message


# --- how the lines are found ------------------------------------------------------------------


def test_scan_finds_each_constructor_and_its_own_fields():
    text = (
        b"local t = {\n"
        b'  Desc = "a", ["Split"] = "s", x = function() local y = {z = 1}; w = 2 end,\n'
        b"  Path = { Mode = 1 },\n"
        b"}\n"
    )
    outer, inner_fn, inner_path = scan_constructors(text)
    assert (outer.line, outer.keys) == (1, {"Desc": 2, "Split": 2, "x": 2, "Path": 3})
    assert inner_fn.keys == {"z": 2}  # `w = 2` is a statement of the function, not a field
    assert (inner_path.line, inner_path.keys) == (3, {"Mode": 3})


def test_instrumented_text_keeps_every_line():
    text = SEED.encode()
    marked = instrument(text, scan_constructors(text))
    assert marked.count(b"\n") == text.count(b"\n") + 1  # only the closing `end)()` is added
    assert marked.split(b"\n")[-3:] == [b"return Config", b"", b"end)()"]


def test_the_config_still_gets_no_arguments():
    # MARK reaches the marked copy as its `...`; the config's own `...` must stay empty
    text = 'return {Target = {{Desc = "n" .. select("#", ...), Mode = "File", Path = "o/a"}}}'
    assert load_targets_text(text, NAME)[0].desc == "n0"
    text += " -- a comment ends the file, without a newline"
    assert load_targets_text(text, NAME)[0].desc == "n0"


def test_without_marks_messages_still_name_target_and_field(monkeypatch):
    # if the marked copy could not load, the file runs as written and only the lines go
    monkeypatch.setattr(lua_lines, "instrument", lambda data, found: b"not Lua at all")
    text = seed_with('"--split-time 60e9"', '"--split-time 60"')
    assert error_at(text).startswith(f'{NAME}: target 2 "pcap-tcp": Split "--split-time 60": ')
    assert [t.desc for t in load_targets_text(SEED, NAME)] == ["pcap-all", "pcap-tcp"]


def test_timeout_names_the_config_line_not_the_marking_code(monkeypatch):
    monkeypatch.setattr(defaults, "LUA_MAX_SECONDS", 0.3)
    started = time.monotonic()
    message = load_error("local Config = {}\nwhile true do local t = {} end\n")
    assert time.monotonic() - started < 1.5
    assert message.endswith("(infinite loop?), stopped at line 2"), message
