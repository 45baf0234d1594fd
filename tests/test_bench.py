"""Smoke test of tools/bench.py: a tiny trace, scenario R2, one repetition.

Benchmarks are not tests (DESIGN.md), so no timing is asserted: only that the harness runs
pushcap and tcpdump side by side, prints its table and writes JSON holding the scenario's ratio.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is the reference")
def test_bench_quick_r2_prints_table_and_writes_json(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "bench.py"), "--quick", "--scenarios", "R2",
         "--out", str(out), "--trace-dir", str(tmp_path / "traces"),
         "--scratch", str(tmp_path / "scratch")],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "ratio wall/cpu/rss" in proc.stdout
    table_rows = [line for line in proc.stdout.splitlines() if line.startswith("R2 ")]
    assert len(table_rows) == 1 and "counts match" in table_rows[0], proc.stdout

    report = json.loads(out.read_text())
    r2 = report["scenarios"]["R2"]
    assert r2["kind"] == "replay" and r2["reps"] == 1
    for key in ("wall", "cpu", "rss"):
        assert isinstance(r2["ratio"][key], float) and r2["ratio"][key] > 0
    assert r2["counts_pushcap"] == r2["counts_reference"] and r2["counts_pushcap"][0] > 0
    assert not (tmp_path / "scratch").exists(), "scratch output was not cleaned up"
