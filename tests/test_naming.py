"""File names per FileName mode, checked against values worked out by hand for fixed instants.

These run in UTC (the `utc` fixture); tests/test_fmadio_names.py checks every mode in other
zones against pcap_split's formats."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from pushcap.config.model import NamingRule
from pushcap.config.naming_rules import KNOWN_FILENAME_MODES, resolution_ns, validate_naming
from pushcap.push.naming import file_name

# 2021-12-01 23:50:59.123456789 UTC, the instant of FMADIO's examples
T_S = 1638402659
T_NS = T_S * 1_000_000_000 + 123_456_789
MINUTE_NS = 60 * 1_000_000_000


def name(mode: str, start_ns: int = T_NS, end_ns: int | None = None, fmt: str | None = None):
    return file_name(validate_naming(mode, fmt), start_ns, end_ns)


@pytest.fixture
def set_tz(monkeypatch):
    """Switch the process timezone for one test and restore it afterwards."""

    def apply(zone: str) -> None:
        monkeypatch.setenv("TZ", zone)
        time.tzset()

    yield apply
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def utc(set_tz):
    """The time-string modes are in local time (as FMADIO's): these expectations are UTC's."""
    set_tz("UTC")


def test_fixed_instant_is_what_the_expectations_assume():
    assert datetime(2021, 12, 1, 23, 50, 59, tzinfo=UTC).timestamp() == T_S


def test_epoch_sec_startend_for_a_minute_window():
    start = (T_NS // MINUTE_NS) * MINUTE_NS  # aligned window 23:50:00 - 23:51:00
    assert name("--filename-epoch-sec-startend", start, start + MINUTE_NS) == (
        "1638402600-1638402660"
    )


def test_epoch_sec_startend_without_end_uses_start():
    assert name("--filename-epoch-sec-startend", T_NS, None) == "1638402659-1638402659"


def test_epoch_sec_startend_byte_split_uses_last_packet_time():
    assert name("--filename-epoch-sec-startend", T_NS, T_NS + 7_900_000_000) == (
        "1638402659-1638402667"  # 59.123 s + 7.9 s = 67.023 s
    )


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("--filename-epoch-sec", "1638402659"),
        ("--filename-epoch-msec", "1638402659123"),
        ("--filename-epoch-usec", "1638402659123456"),
        ("--filename-epoch-nsec", "1638402659123456789"),
        ("--filename-timestr-HHMM", "20211201_2350"),
        ("--filename-tstr-HHMM", "20211201_2350"),
        ("--filename-timestr-HHMMSS", "20211201_235059"),
        ("--filename-tstr-HHMMSS", "20211201_235059"),
        ("--filename-timestr-HHMMSS_NS", "20211201_235059.123.456.789"),
        ("--filename-tstr-HHMMSS_NS", "20211201_235059.123.456.789"),
        ("--filename-tstr-HHMMSS_SUB", "20211201_23-50-59.123456789"),
    ],
)
def test_fixed_modes(mode, expected, utc):
    assert name(mode) == expected


def test_sub_second_digits_are_zero_padded(utc):
    start = T_S * 1_000_000_000 + 5_000_007
    assert name("--filename-tstr-HHMMSS_NS", start) == "20211201_235059.005.000.007"
    assert name("--filename-tstr-HHMMSS_SUB", start) == "20211201_23-50-59.005000007"
    assert name("--filename-epoch-msec", start) == "1638402659005"


def test_time_strings_are_local_time_as_fmadio_writes_them(set_tz):
    set_tz("America/New_York")
    assert name("--filename-tstr-HHMMSS") == "20211201_185059"
    assert name("--filename-strftime", fmt="%H%M") == "1850"
    assert name("--filename-epoch-sec") == "1638402659"  # epoch modes never depend on the zone


def test_tz_mode_in_utc(utc):
    assert name("--filename-tstr-HHMMSS_TZ") == "2021-12-01_23:50:59+00:00"


def test_tz_mode_in_new_york_winter_and_summer(set_tz):
    set_tz("America/New_York")
    assert name("--filename-tstr-HHMMSS_TZ") == "2021-12-01_18:50:59-05:00"
    summer = int(datetime(2022, 4, 21, 23, 59, 58, tzinfo=UTC).timestamp()) * 1_000_000_000
    assert name("--filename-tstr-HHMMSS_TZ", summer) == "2022-04-21_19:59:58-04:00"


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("%Y%m%d_%H%M%S", "20211201_235059"),
        ("%Y%m%d_%H%M%S.%N", "20211201_235059.123456789"),
        ("%s", "1638402659"),
        ("%F_%T", "2021-12-01_23:50:59"),
        ("day%j-100%%", "day335-100%"),
        ("%Y-%m-%dT%H:%M:%S%z", "2021-12-01T23:50:59+0000"),
    ],
)
def test_strftime(fmt, expected, utc):
    assert name("--filename-strftime", fmt=fmt) == expected


@pytest.mark.parametrize(
    ("mode", "fmt", "words"),
    [
        ("--filename-epoch-secs", None, "did you mean --filename-epoch-sec"),
        ("--filename-epoch-sec", "%Y", "takes no argument"),
        ("--filename-strftime", None, "needs a format"),
        ("--filename-strftime", "", "needs a format"),
        ("--filename-strftime", "%Y/%m/%d", "'/'"),
        ("--filename-strftime", "%Y%q", "unsupported directive %q"),
        ("--filename-strftime", "%D", "unsupported directive %D"),
        ("--filename-strftime", "pcap", "no time directive"),
        ("--filename-strftime", "%%%Z", "no time directive"),
        ("--filename-strftime", "%Y%", "lone '%'"),
        ("--filename-strftime", ".%Y", "hidden"),
        ("--filename-strftime", "%Y\n%m", "control character"),
    ],
)
def test_validate_refuses(mode, fmt, words):
    with pytest.raises(ValueError) as info:
        validate_naming(mode, fmt)
    assert words in str(info.value)


def test_known_modes_cover_fmadio_and_pushcap_modes():
    assert {
        "--filename-epoch-sec-startend",
        "--filename-epoch-sec",
        "--filename-timestr-HHMM",
        "--filename-timestr-HHMMSS",
        "--filename-timestr-HHMMSS_NS",
        "--filename-tstr-HHMMSS_TZ",
        "--filename-tstr-HHMMSS_SUB",
        "--filename-strftime",
    } <= set(KNOWN_FILENAME_MODES)
    for mode in KNOWN_FILENAME_MODES:
        fmt = "%Y%m%d_%H%M%S" if mode == "--filename-strftime" else None
        produced = name(mode, fmt=fmt)
        assert produced and "/" not in produced and not produced.startswith(".")


def test_file_name_refuses_an_unvalidated_unsafe_rule():
    with pytest.raises(ValueError):
        file_name(NamingRule("--filename-strftime", "x/%S"), T_NS, None)
    with pytest.raises(ValueError):
        file_name(NamingRule("--filename-nope"), T_NS, None)


@pytest.mark.parametrize(
    ("mode", "fmt", "step_ns"),
    [
        ("--filename-epoch-sec-startend", None, 1_000_000_000),
        ("--filename-tstr-HHMM", None, MINUTE_NS),
        ("--filename-epoch-msec", None, 1_000_000),
        ("--filename-tstr-HHMMSS_NS", None, 1),
        ("--filename-strftime", "%Y%m%d_%H%M", MINUTE_NS),
        ("--filename-strftime", "%Y%m%d_%H%M%S.%N", 1),
        ("--filename-strftime", "%Y%m%d", 86400 * 1_000_000_000),
    ],
)
def test_resolution(mode, fmt, step_ns):
    assert resolution_ns(validate_naming(mode, fmt)) == step_ns


def test_every_mode_the_grammar_accepts_can_be_rendered():
    """config/naming_rules.py validates the modes, push/naming.py renders them: a mode in only
    one of them would pass the config check and fail at the first file (or never be usable)."""
    for mode in KNOWN_FILENAME_MODES:
        fmt = "%Y%m%d_%H%M%S" if mode == "--filename-strftime" else None
        assert name(mode, fmt=fmt)
