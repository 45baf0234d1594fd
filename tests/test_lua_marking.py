"""The marked copy that finds a target's line (lua_lines.py) adds a line to a message, no more.

The file as written decides what loads and what fails, time and memory limits included; the scan
of the source is linear in its size whatever it holds (it ran outside the Lua time limit, and an
unclosed `[[` made it quadratic); Lua's syntax errors name a string token without quoting it, as
it may be a credential; and the config cannot see the marker. Time bounds here are bounds on an
algorithm (a linear scan of 1 MiB against a quadratic one taking minutes), not benchmarks.
"""

from __future__ import annotations

import time

import pytest
from lua_config_helpers import NAME, SEED, TARGET2_LINE, load_error, one_target

from pushcap.config import lua_lines
from pushcap.config.lua import load_targets_text
from pushcap.config.lua_lines import scan_constructors, string_literals
from pushcap.config.model import ConfigError

MIB = 1 << 20
KEY = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"


def mib_of(unit: bytes) -> bytes:
    return (unit * (MIB // len(unit) + 1))[:MIB]


def seconds(f, *args):
    started = time.monotonic()
    f(*args)
    return time.monotonic() - started


# --- the scan takes linear time ---------------------------------------------------------------

PATHOLOGICAL = {
    "unclosed long strings": mib_of(b"[["),
    "unclosed long comments": mib_of(b"--[[\n"),
    "unclosed level-2 long strings": mib_of(b"[==["),
    "escaped quotes, never closed": b'"' + mib_of(b'\\"')[1:],
    "escaped quotes, never closed (')": b"'" + mib_of(b"\\'")[1:],
    # `\z` read two ways (skip-spaces or plain escape): the old pattern tried 2^40 splits
    "unclosed string of \\z": b'"' + b"\\z" * 40 + b"\n",
}


@pytest.mark.parametrize("data", PATHOLOGICAL.values(), ids=PATHOLOGICAL.keys())
def test_the_scan_is_linear_whatever_the_file_holds(data):
    assert seconds(scan_constructors, data) < 1.0  # quadratic: minutes for 1 MiB
    assert scan_constructors(data) == []  # not valid Lua: nothing to mark
    assert seconds(string_literals, data) < 1.0  # the last guard against secrets in messages


@pytest.mark.parametrize("unit", [b"[[", b"--[[\n"])
def test_a_large_unclosed_file_is_refused_quickly(unit):
    started = time.monotonic()
    message = load_error(mib_of(unit).decode())
    assert time.monotonic() - started < 1.0
    assert message.startswith(f"{NAME}:") and "unfinished long" in message


def test_a_passed_deadline_stops_a_long_scan_without_lines():
    def tables(n: int) -> bytes:
        return b"local t = {" + b"{}," * n + b"}"  # valid Lua

    started = time.monotonic()
    assert scan_constructors(tables(MIB // 3 - 10), time.monotonic()) == []
    assert time.monotonic() - started < 0.5  # stopped at its first look at the clock
    # the clock is read every 64 KiB: a file of a usual size gets its lines on any machine
    assert len(scan_constructors(tables(300), time.monotonic())) == 301


def test_the_source_is_scanned_only_when_a_target_is_refused(monkeypatch):
    def no_scan(data, deadline=0.0):
        raise AssertionError("scanned")

    monkeypatch.setattr(lua_lines, "scan_constructors", no_scan)
    assert len(load_targets_text(SEED, NAME)) == 2
    assert load_error("return {\n Target = = {}}\n").startswith(f"{NAME}:2: ")  # syntax
    assert load_error("local x = nil\nx.y = 1\n").startswith(f"{NAME}:2: attempt to index")


# --- the file as written decides ----------------------------------------------------------------


def test_a_config_that_fits_the_memory_cap_as_written_loads():
    # 300k tables fit in 32 MiB, but not with a mark for each: the marked copy would refuse it
    text = "local x = {" + "{}," * 300_000 + "}\nreturn {Target = {{Desc = 'a', Mode = 'File',"
    targets = load_targets_text(text + " Path = 'o/a'}}}\n", NAME)
    assert [t.desc for t in targets] == ["a"]
    message = load_error(text + " Path = 'o/.a'}}}\n", line=True)  # with or without its line
    assert 'target 1 "a": Path "o/.a": the file prefix' in message


def test_lines_come_only_from_a_marked_run_that_built_the_same_value(monkeypatch):
    real = lua_lines.instrument

    def another_desc(data, found):
        return real(data, found).replace(b'"t2"', b'"t3"')  # as if math.random differed

    text = one_target(Split='"bad"')
    assert load_error(text, line=True).startswith(f'{NAME}:{TARGET2_LINE}: target 2 "t2": Split')
    monkeypatch.setattr(lua_lines, "instrument", another_desc)
    assert load_error(text, line=True).startswith(f'{NAME}: target 2 "t2": Split "bad": ')


def test_the_marker_is_not_a_name_the_config_can_read():
    text = (
        "local seen = tostring(__pushcap_mark)\n"
        "local Config = {Target = {}}\n"
        "table.insert(Config.Target, {Desc = seen, Mode = 'File', Path = 'o/.a'})\n"
        "return Config\n"
    )
    # the line shows the marked copy ran with the config's own __pushcap_mark: nil, as written
    assert load_error(text, line=True).startswith(f'{NAME}:3: target 1 "nil": Path "o/.a": ')
    assert load_targets_text(text.replace("'o/.a'", "'o/a'"), NAME)[0].desc == "nil"


# --- syntax errors do not quote a string ------------------------------------------------------


@pytest.mark.parametrize(
    ("literal", "error"),
    [
        (f'"{KEY}"', "'}' expected near <string>"),  # the `..` before it forgotten
        (f"[==[{KEY}]==]", "'}' expected near <string>"),
        (f"'{KEY}", "unfinished string near <string>"),
        (f'"{KEY}\\q"', "invalid escape sequence near <string>"),
    ],
)
def test_a_syntax_error_names_a_string_token_without_quoting_it(literal, error):
    path = f'":s3,access_key_id=AKID,secret_access_key=" {literal}'
    target = f'{{Desc = "s3", Mode = "rclone", Path = {path}}}'
    message = load_error(f"return {{Target = {{\n {target}}}}}\n")
    assert message == f"{NAME}:2: {error}"
    assert KEY not in message and KEY[:8] not in message


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("3f9a0c71be44d2", "malformed number near <number>"),  # a hex key pasted unquoted
        (".5e9z8k", "malformed number near <number>"),
        ("AKIDsecretName x", "'}' expected near 'x'"),  # the key parses: a name, then x
        ("x AKIDsecretName", "'}' expected near <name>"),
    ],
)
def test_a_syntax_error_does_not_quote_a_secret_pasted_without_quotes(value, error):
    secret = max(value.split(), key=len)
    message = load_error(f'return {{Target = {{\n {{Desc = "s3", Password = {value}}}}}}}\n')
    assert message == f"{NAME}:2: {error}"
    assert secret not in message and secret[:6] not in message


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ('"/x/" .. AKIDsecretName', "attempt to concatenate a nil value (global <name>)"),
        ("wJalrXUtnFEMI/K7MDENG", "attempt to perform arithmetic on a nil value (global <name>)"),
        ("314159265358979", 'target 1 "s3": Path <number>: must be a string, e.g.'),
    ],
)
def test_a_runtime_or_field_error_does_not_name_a_secret_pasted_without_quotes(path, error):
    target = f'{{Desc = "s3", Mode = "File", Path = {path}}}'
    message = load_error(f"return {{Target = {{\n {target}}}}}\n")
    assert message.startswith(NAME) and error in message
    assert "secret" not in message and "JalrX" not in message and "14159" not in message


def test_a_short_or_library_name_in_a_runtime_error_is_still_named():
    assert load_error("local c = cfg.Target\n") == \
        f"{NAME}:1: attempt to index a nil value (global 'cfg')"
    assert load_error("local s = string.nope('x')\n") == \
        f"{NAME}:1: attempt to call a nil value (field 'nope')"


def test_keywords_fields_and_short_names_are_still_quoted():
    """What a typo stops at is usually a keyword, a field or a short name: shown as it helps."""
    message = load_error('return {Target = {{Desc = "x" Mode = "File"}}}\n')
    assert message == f"{NAME}:1: '}}' expected near 'Mode'"
    assert load_error("local t = {1 then}\n") == f"{NAME}:1: '}}' expected near 'then'"


def test_other_tokens_are_still_quoted():
    assert load_error("local t = {a b}\n") == f"{NAME}:1: '}}' expected near 'b'"
    with pytest.raises(ConfigError, match=r"near '='$"):
        load_targets_text("x = = 1", NAME)
