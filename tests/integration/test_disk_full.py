"""A write that fails (file size limit standing in for a full disk) leaves a valid file, counts
what was lost, and writing continues once there is room again."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from oracle import PCAPS_DIR, read_pcap

pytestmark = pytest.mark.integration

# A series writing the capture in argv[2] into argv[1], with EFBIG instead of SIGXFSZ when the
# file size limit (standing in for a full disk) is reached.
PRELUDE = textwrap.dedent("""
    import resource, signal, sys
    from pathlib import Path
    from pushcap.capture.source import open_file_source
    from pushcap.config.model import *
    from pushcap.push.target import Series

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
    out, src = Path(sys.argv[1]), sys.argv[2]
    target = TargetConfig(1, "t", PushMode.FILE, str(out / "t"),
                          SplitRule(SplitKind.BYTE, 10**9), NamingRule("--filename-epoch-nsec"))
    series = Series(target, "f", out / "t", 1, 65535)
""")

SCRIPT = PRELUDE + textwrap.dedent("""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    failures = 0
    for i, batch in enumerate(open_file_source(src, batch_packets=500).batches()):
        if i == 3:
            # "disk full" inside a batch: a torn write
            room = series.writer.file.bytes_written + 30_001
            resource.setrlimit(resource.RLIMIT_FSIZE, (room, hard))
        if i == 6:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # room again
        try:
            series.consume(batch)
        except OSError:
            failures += 1
    series.close()
    print(failures, series.stats.lost_packets, series.stats.packets)
""")


def test_failed_writes_keep_the_file_valid_and_are_counted(tmp_path):
    src = PCAPS_DIR / "viber_mobile.pcap"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), str(src)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    failures, lost, written = (int(x) for x in proc.stdout.split())
    assert failures >= 1 and lost > 0
    files = list(tmp_path.glob("t_*.pcap"))
    assert len(files) == 1
    got = read_pcap(files[0])
    assert not got.truncated and len(got.packets) == written
    every = read_pcap(src).packets
    assert len(every) == written + lost
    index = {p: i for i, p in enumerate(every)}
    positions = [index[p] for p in got.packets]
    assert positions == sorted(positions) and positions[-1] == len(every) - 1


NOTHING_FITS = PRELUDE + textwrap.dedent("""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (40, hard))  # the header fits, no packet does
    failures = 0
    for batch in open_file_source(src, batch_packets=500).batches():
        try:
            series.consume(batch)
        except OSError:
            failures += 1
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # room again for the close
    series.close()
    print(failures, series.stats.lost_packets, series.stats.packets)
""")


def test_a_file_whose_every_write_failed_is_not_published(tmp_path):
    """Issue 17, item 5: a window with nothing written was published as a 24-byte header-only
    file; its `.part` must not outlive the close either."""
    src = PCAPS_DIR / "http-bro.org.pcap"
    proc = subprocess.run([sys.executable, "-c", NOTHING_FITS, str(tmp_path), str(src)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    failures, lost, written = (int(x) for x in proc.stdout.split())
    assert failures >= 1 and written == 0 and lost == len(read_pcap(src).packets)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert "event=file_discarded" in proc.stderr
