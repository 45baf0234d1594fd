"""Every FileName mode against FMADIO's pcap_split, under several time zones (issue 18, item 2).

The expected names are written out by hand from pcap_split's main.c (github.com/fmadio/pcap_split),
never computed by pushcap's code. What main.c does, mode by mode (c = `localtime` of the start
second, so the process's `TZ`):

- epoch-sec `%lli` of TS/1e9; -startend `%lli-%lli` (start, end); -msec/-usec TS/1e6, TS/1e3;
  -nsec TS. No time zone.
- tstr-HHMM `%04i%02i%02i_%02i%02i`, tstr-HHMMSS `%04i%02i%02i_%02i%02i%02i` of c.
- tstr-HHMMSS_NS `..._%02i%02i%02i.%03lli.%03lli.%03lli` (ms, µs, ns of the second).
- tstr-HHMMSS_SUB `%04i%02i%02i_%02i-%02i-%02i.%03lli%03lli%03lli`: dashes in the time.
- tstr-HHMMSS_TZ `%04i-%02i-%02i_%02i:%02i:%02i%c%02i:%02i` with the sign, hours and "minutes"
  of tm_gmtoff; those "minutes" are the offset's leftover seconds, so India's +05:30 comes out
  `+05:1800`: pushcap writes `+05:30` (a bug not copied; see push/naming.py).
- strftime: the C library's strftime of c (pushcap adds %N).
The `--filename-timestr-*` spellings (FMADIO's manual) are pushcap's aliases of `--filename-tstr-*`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from pushcap.config.naming_rules import validate_naming
from pushcap.push import pcapfile
from pushcap.push.naming import file_name

S = 1_000_000_000
A = 1638402659_123456789  # 2021-12-01 23:50:59.123456789 UTC (FMADIO's manual's example time)
B = 1650585598_005000007  # 2022-04-21 23:59:58.005000007 UTC: New York on daylight saving time
WINDOW = 1638402600 * S  # A's minute, 23:50:00 UTC, as a one-minute time split names it

ZONES = ["UTC", "America/New_York", "Asia/Kolkata", "America/St_Johns"]


@pytest.fixture
def zone(monkeypatch):
    """Run a test in a time zone (TZ + tzset, as a daemon started with TZ would be); restored."""

    def apply(tz: str) -> None:
        monkeypatch.setenv("TZ", tz)
        time.tzset()

    yield apply
    monkeypatch.undo()
    time.tzset()


def name(mode: str, start_ns: int, end_ns: int | None = None, fmt: str | None = None) -> str:
    return file_name(validate_naming(mode, fmt), start_ns, end_ns)


# Epoch modes: the same text in every zone.
EPOCH = [
    ("--filename-epoch-sec-startend", WINDOW, WINDOW + 60 * S, "1638402600-1638402660"),
    ("--filename-epoch-sec", A, None, "1638402659"),
    ("--filename-epoch-msec", A, None, "1638402659123"),
    ("--filename-epoch-usec", A, None, "1638402659123456"),
    ("--filename-epoch-nsec", A, None, "1638402659123456789"),
    ("--filename-epoch-sec", B, None, "1650585598"),
    ("--filename-epoch-msec", B, None, "1650585598005"),
    ("--filename-epoch-usec", B, None, "1650585598005000"),
    ("--filename-epoch-nsec", B, None, "1650585598005000007"),
]


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize(("mode", "start", "end", "expected"), EPOCH)
def test_epoch_modes_in_every_zone(zone, tz, mode, start, end, expected):
    zone(tz)
    assert name(mode, start, end) == expected


# Time-string modes: zone -> instant -> (HHMM, HHMMSS, HHMMSS_NS, HHMMSS_SUB, HHMMSS_TZ).
TIME_STRINGS: dict[str, dict[int, tuple[str, str, str, str, str]]] = {
    "UTC": {
        A: ("20211201_2350", "20211201_235059", "20211201_235059.123.456.789",
            "20211201_23-50-59.123456789", "2021-12-01_23:50:59+00:00"),
        B: ("20220421_2359", "20220421_235958", "20220421_235958.005.000.007",
            "20220421_23-59-58.005000007", "2022-04-21_23:59:58+00:00"),
    },
    "America/New_York": {  # A in EST (-05:00), B in EDT (-04:00)
        A: ("20211201_1850", "20211201_185059", "20211201_185059.123.456.789",
            "20211201_18-50-59.123456789", "2021-12-01_18:50:59-05:00"),
        B: ("20220421_1959", "20220421_195958", "20220421_195958.005.000.007",
            "20220421_19-59-58.005000007", "2022-04-21_19:59:58-04:00"),
    },
    "Asia/Kolkata": {  # +05:30, both instants on the next local day; pcap_split: `+05:1800`
        A: ("20211202_0520", "20211202_052059", "20211202_052059.123.456.789",
            "20211202_05-20-59.123456789", "2021-12-02_05:20:59+05:30"),
        B: ("20220422_0529", "20220422_052958", "20220422_052958.005.000.007",
            "20220422_05-29-58.005000007", "2022-04-22_05:29:58+05:30"),
    },
    "America/St_Johns": {  # a negative half-hour offset: -03:30, -02:30 in summer
        A: ("20211201_2020", "20211201_202059", "20211201_202059.123.456.789",
            "20211201_20-20-59.123456789", "2021-12-01_20:20:59-03:30"),
        B: ("20220421_2129", "20220421_212958", "20220421_212958.005.000.007",
            "20220421_21-29-58.005000007", "2022-04-21_21:29:58-02:30"),
    },
}
TIME_STRING_MODES = [  # each mode and its column in TIME_STRINGS
    ("--filename-tstr-HHMM", 0), ("--filename-timestr-HHMM", 0),
    ("--filename-tstr-HHMMSS", 1), ("--filename-timestr-HHMMSS", 1),
    ("--filename-tstr-HHMMSS_NS", 2), ("--filename-timestr-HHMMSS_NS", 2),
    ("--filename-tstr-HHMMSS_SUB", 3),
    ("--filename-tstr-HHMMSS_TZ", 4),
]


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize("instant", [A, B], ids=["A", "B"])
@pytest.mark.parametrize(("mode", "column"), TIME_STRING_MODES)
def test_time_string_modes(zone, tz, instant, mode, column):
    zone(tz)
    assert name(mode, instant) == TIME_STRINGS[tz][instant][column]


# strftime: zone -> format -> name of A. The C library's strftime of local time, as pcap_split.
STRFTIME_FORMATS = ["%Y%m%d_%H%M%S", "%Y-%m-%dT%H:%M:%S%z", "%F_%T_%Z", "%a%d%b%Y_%I%M%S%p",
                    "%G-W%V-%u_%j", "%s", "%Y%m%d_%H%M%S.%N"]
STRFTIME: dict[str, list[str]] = {
    "UTC": ["20211201_235059", "2021-12-01T23:50:59+0000", "2021-12-01_23:50:59_UTC",
            "Wed01Dec2021_115059PM", "2021-W48-3_335", "1638402659",
            "20211201_235059.123456789"],
    "America/New_York": ["20211201_185059", "2021-12-01T18:50:59-0500", "2021-12-01_18:50:59_EST",
                         "Wed01Dec2021_065059PM", "2021-W48-3_335", "1638402659",
                         "20211201_185059.123456789"],
    "Asia/Kolkata": ["20211202_052059", "2021-12-02T05:20:59+0530", "2021-12-02_05:20:59_IST",
                     "Thu02Dec2021_052059AM", "2021-W48-4_336", "1638402659",
                     "20211202_052059.123456789"],
    "America/St_Johns": ["20211201_202059", "2021-12-01T20:20:59-0330", "2021-12-01_20:20:59_NST",
                         "Wed01Dec2021_082059PM", "2021-W48-3_335", "1638402659",
                         "20211201_202059.123456789"],
}


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize("column", range(len(STRFTIME_FORMATS)),
                         ids=STRFTIME_FORMATS)
def test_strftime_is_local_time(zone, tz, column):
    zone(tz)
    assert name("--filename-strftime", A, fmt=STRFTIME_FORMATS[column]) == STRFTIME[tz][column]


def test_summer_strftime_in_new_york_has_the_summer_offset(zone):
    zone("America/New_York")
    assert name("--filename-strftime", B, fmt="%F_%T%z_%Z") == "2022-04-21_19:59:58-0400_EDT"


# Daylight saving changes in New York (2022): local time skips 02:00-03:00 on 13 March and
# repeats 01:00-02:00 on 6 November. (instant, HHMMSS, HHMMSS_SUB, HHMMSS_TZ)
NEW_YORK_CHANGES = [
    (1647154799 * S, "20220313_015959", "20220313_01-59-59.000000000",
     "2022-03-13_01:59:59-05:00"),  # 06:59:59 UTC, the last second of EST
    (1647154800 * S, "20220313_030000", "20220313_03-00-00.000000000",
     "2022-03-13_03:00:00-04:00"),  # 07:00:00 UTC, the first of EDT
    (1667712600 * S, "20221106_013000", "20221106_01-30-00.000000000",
     "2022-11-06_01:30:00-04:00"),  # 05:30 UTC, 01:30 EDT
    (1667716200 * S, "20221106_013000", "20221106_01-30-00.000000000",
     "2022-11-06_01:30:00-05:00"),  # 06:30 UTC, 01:30 EST: the same wall clock an hour later
]


@pytest.mark.parametrize(("instant", "hhmmss", "sub", "tz_name"), NEW_YORK_CHANGES)
def test_daylight_saving_changes(zone, instant, hhmmss, sub, tz_name):
    zone("America/New_York")
    assert name("--filename-tstr-HHMMSS", instant) == hhmmss
    assert name("--filename-tstr-HHMMSS_SUB", instant) == sub
    assert name("--filename-tstr-HHMMSS_TZ", instant) == tz_name


def test_a_repeated_local_name_is_published_beside_not_over(zone, tmp_path):
    """When daylight saving ends, two windows an hour apart get one HHMMSS name; pcap_split's
    rename would replace the first file, pushcap publishes the second as `_2`."""
    zone("America/New_York")
    names = {name("--filename-tstr-HHMMSS", t) for t, *_ in NEW_YORK_CHANGES[2:]}
    assert names == {"20221106_013000"}
    published = []
    for i in range(2):
        part = tmp_path / f".all.{i}.part"
        part.write_bytes(b"x" * (i + 1))
        published.append(pcapfile.publish(part, tmp_path / "all", "20221106_013000"))
    assert [p.name for p in published] == ["all_20221106_013000.pcap",
                                           "all_20221106_013000_2.pcap"]
    assert [p.read_bytes() for p in published] == [b"x", b"xx"]


def test_names_are_exact_where_pcap_split_rounds_through_a_double(zone):
    """pcap_split's `(u64)(TS / 1e9)` names a start 50 ns before a second after the next one
    (`20211201_235100.999.999.950`); pushcap keeps the second the packet is in."""
    zone("UTC")
    start = 1638402659_999999950
    assert name("--filename-tstr-HHMMSS_NS", start) == "20211201_235059.999.999.950"
    assert name("--filename-epoch-sec", start) == "1638402659"
    assert name("--filename-epoch-usec", start) == "1638402659999999"


def test_the_zone_is_the_one_the_process_started_with(tmp_path):
    """A daemon started with TZ set calls no tzset: the names must still be in that zone."""
    code = (
        "from pushcap.config.naming_rules import validate_naming as v\n"
        "from pushcap.push.naming import file_name as f\n"
        "for m in ('--filename-tstr-HHMMSS_TZ', '--filename-tstr-HHMMSS_SUB',"
        " '--filename-tstr-HHMM', '--filename-epoch-sec'):\n"
        f"    print(f(v(m), {A}))\n"
        f"print(f(v('--filename-strftime', '%Y%m%d_%H%M%S%z'), {A}))\n"
    )
    env = {**os.environ, "TZ": "Asia/Kolkata"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()
    assert out == ["2021-12-02_05:20:59+05:30", "20211202_05-20-59.123456789", "20211202_0520",
                   "1638402659", "20211202_052059+0530"]


def test_a_posix_tz_string_works_as_in_the_c_library(zone):
    """TZ need not name a zone file: `IST-5:30` is India's offset in POSIX form (zoneinfo could
    not read it; the C library, and so pcap_split, can)."""
    zone("IST-5:30")
    assert name("--filename-tstr-HHMMSS_TZ", A) == "2021-12-02_05:20:59+05:30"
    assert name("--filename-strftime", A, fmt="%H%M_%Z") == "0520_IST"
