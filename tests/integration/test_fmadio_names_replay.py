"""`pushcap replay` under TZ=Asia/Kolkata names every file as FMADIO's pcap_split would.

tests/data/tcpreplay-test-nano.pcap holds 179 packets from 2010-07-07 03:16:19.466743000 to
03:16:22.723492386 UTC, i.e. 08:46:19 to 08:46:22 in India (+05:30). The expected names are
written out from pcap_split's formats (tests/test_fmadio_names.py says which), not computed.
The replay runs as an operator runs it: the console script in a process started with TZ set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from oracle import PCAPS_DIR, read_pcap

pytestmark = pytest.mark.integration

PUSHCAP = str(Path(sys.executable).parent / "pushcap")
SECOND = "--split-time 1e9"  # windows 08:46:19, :20, :21, :22
MINUTE = "--split-time 60e9"  # one window, 08:46:00-08:47:00
WHOLE = "--split-byte 1e12"  # one file, named by the first packet (08:46:19.466743000)

# (Desc, Split, FileName) -> the names of its files
EXPECTED: dict[tuple[str, str, str], set[str]] = {
    ("startend", MINUTE, "--filename-epoch-sec-startend"): {"1278472560-1278472620"},
    ("sec", SECOND, "--filename-epoch-sec"): {
        "1278472579", "1278472580", "1278472581", "1278472582"},
    ("msec", MINUTE, "--filename-epoch-msec"): {"1278472560000"},
    ("usec", MINUTE, "--filename-epoch-usec"): {"1278472560000000"},
    ("nsec", WHOLE, "--filename-epoch-nsec"): {"1278472579466743000"},
    ("hhmm", MINUTE, "--filename-tstr-HHMM"): {"20100707_0846"},
    ("timestr-hhmm", MINUTE, "--filename-timestr-HHMM"): {"20100707_0846"},
    ("hhmmss", SECOND, "--filename-tstr-HHMMSS"): {
        "20100707_084619", "20100707_084620", "20100707_084621", "20100707_084622"},
    ("timestr-hhmmss", MINUTE, "--filename-timestr-HHMMSS"): {"20100707_084600"},
    ("ns", SECOND, "--filename-tstr-HHMMSS_NS"): {
        "20100707_084619.000.000.000", "20100707_084620.000.000.000",
        "20100707_084621.000.000.000", "20100707_084622.000.000.000"},
    ("ns-whole", WHOLE, "--filename-timestr-HHMMSS_NS"): {"20100707_084619.466.743.000"},
    ("sub", SECOND, "--filename-tstr-HHMMSS_SUB"): {
        "20100707_08-46-19.000000000", "20100707_08-46-20.000000000",
        "20100707_08-46-21.000000000", "20100707_08-46-22.000000000"},
    ("sub-whole", WHOLE, "--filename-tstr-HHMMSS_SUB"): {"20100707_08-46-19.466743000"},
    ("tz", SECOND, "--filename-tstr-HHMMSS_TZ"): {
        "2010-07-07_08:46:19+05:30", "2010-07-07_08:46:20+05:30",
        "2010-07-07_08:46:21+05:30", "2010-07-07_08:46:22+05:30"},
    ("strftime", MINUTE, '--filename-strftime "%Y%m%d_%H%M%S%z_%Z"'): {
        "20100707_084600+0530_IST"},
    ("strftime-ns", WHOLE, '--filename-strftime "%F_%T.%N"'): {
        "2010-07-07_08:46:19.466743000"},
}


def test_replay_in_kolkata_writes_fmadios_names(tmp_path, write_lua):
    out = tmp_path / "o"
    lua = write_lua([
        {"Desc": desc, "Mode": "File", "Path": str(out / desc), "Split": split, "FileName": mode}
        for desc, split, mode in EXPECTED])
    src = PCAPS_DIR / "tcpreplay-test-nano.pcap"
    proc = subprocess.run([PUSHCAP, "replay", str(src), "--lua", str(lua)], cwd=tmp_path,
                          env={**os.environ, "TZ": "Asia/Kolkata"}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    total = len(read_pcap(src).packets)
    for desc, split, mode in EXPECTED:
        files = sorted(out.glob(f"{desc}_*.pcap"))
        got = {f.name[len(desc) + 1:-len(".pcap")] for f in files}
        assert got == EXPECTED[desc, split, mode], mode
        assert sum(len(read_pcap(f).packets) for f in files) == total, mode
