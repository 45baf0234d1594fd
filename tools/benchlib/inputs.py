"""What the scenarios feed pushcap: seeded traces, push_realtime.lua files and its command line.

Both tools must read the same input for a comparison to mean anything, so traces come from
tools/gen_trace.py with a fixed seed and are cached by size; the Lua targets are written the
same way for every scenario (all time-split every 60 s, so no split happens during a run).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gen_trace  # tools/ is on sys.path (see tools/bench.py); tools/ is not a package

from . import config
from .config import SPLIT


# --- configuration files -----------------------------------------------------------------------
def lua_text(targets: list[tuple[str, str, str | None]]) -> str:
    """push_realtime.lua for (Desc, Path, FilterBPF) targets, all time split every 60 s, with
    `Decap = false`: the filter sees the packet as captured, as `tcpdump -r ... FILTER` does
    (the oracle every scenario is checked against; FMADIO's default, Decap on, would also take
    the TCP inside the trace's VLAN and tunnel packets)."""
    lines = ["local Config = { Target = {} }"]
    for desc, path, bpf in targets:
        bpf_lua = "nil" if bpf is None else json.dumps(bpf)
        lines.append(f'table.insert(Config.Target, {{ Desc = "{desc}", Mode = "File", '
                     f'Path = "{path}", Split = "{SPLIT}", FilterBPF = {bpf_lua}, '
                     f'Decap = false }})')
    lines.append("return Config")
    return "\n".join(lines) + "\n"


def pushcap_argv(*args: str) -> list[str]:
    """The checkout's pushcap, or the installed console script P1 set (config.PUSHCAP_COMMAND)."""
    return [*(config.PUSHCAP_COMMAND or [sys.executable, "-m", "pushcap.cli"]), *args]


# --- traces -----------------------------------------------------------------------------------
def ensure_trace(trace_dir: Path, packets: int, seed: int = 1) -> Path:
    trace_dir.mkdir(parents=True, exist_ok=True)
    path = trace_dir / f"trace_{packets}_s{seed}.pcap"
    if not path.exists():
        part = path.with_suffix(".part")
        gen_trace.generate(part, packets, seed=seed)
        part.rename(path)
    return path
