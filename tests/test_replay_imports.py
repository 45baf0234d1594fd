"""What a replay imports: a replay's start-up is benchmarked against tcpdump, start included (bench
P1, issue 15), so the command must not load what it does not use. Each module below cost a
replay measurable CPU at start until it was imported only where needed; this test fails when
one comes back (sys.modules of a real replay, in a fresh interpreter)."""

from __future__ import annotations

import json
from pathlib import Path

from import_probe import loaded_of, run_and_list_modules
from oracle import PCAPS_DIR

REPO = Path(__file__).resolve().parents[1]

# module -> why a replay of File targets without Keep or Index must not import it
NOT_IMPORTED = {
    "numpy": "the filter, split points and writes are in C (45 ms)",
    "pyarrow": "archive indexes only (Index = true)",
    "dataclasses": "config records are record.py's (exec per class, inspect: ~15 ms)",
    "inspect": "imported by dataclasses",
    "argparse": "a plain replay command line is read without it (with gettext, locale: ~4 ms)",
    "json": "Datadog ranges and long BPF filters only",
    "shutil": "archive keeper only",
    "tempfile": "archive keeper only",
    "subprocess": "the Lua child is forked; spawned only beside other threads (a daemon)",
    "tomllib": "no TOML without --config",
    "typing": "annotations only, under `TYPE_CHECKING = False` (~2 ms)",
    "pushcap.archive.keeper": "Keep or Index targets only",
    "pushcap.config.lua_lines": "messages about a refused config only",
    "pushcap.config.lua_tokens": "messages about a refused config only",
    "pushcap.config.toml": "no TOML without --config",
    "pushcap.trigger": "`pushcap run` and `pushcap trigger` only",
    "pushcap.flows": "flows targets only",
    "pushcap.config.flows_fields": "flows targets and fields only (its patterns: ~0.5 ms)",
    "pushcap.push.rclone_remote": "rclone targets only",
    "rclone_python": "rclone targets only",
}

LUA = """local Config = { Target = {} }
table.insert(Config.Target, { Desc = "tcp", Mode = "File", Path = PATH,
  Split = "--split-time 60e9", FilterBPF = "tcp", Decap = false })
return Config
"""


def test_a_replay_imports_only_what_it_uses(tmp_path):
    lua = tmp_path / "push.lua"
    lua.write_text(LUA.replace("PATH", json.dumps(str(tmp_path / "out"))))
    words = ["replay", str(PCAPS_DIR / "tcpreplay-test.pcap"), "--lua", str(lua), "--quiet"]
    code, modules, out = run_and_list_modules(words)
    lines = out.stdout.strip().splitlines()
    assert code == 0, out.stdout + out.stderr
    assert any(line.startswith("  tcp: packets=") and "packets=0 " not in line
               for line in lines), out.stdout
    loaded = loaded_of(NOT_IMPORTED, modules)
    assert not loaded, f"a replay imported what it does not use: {loaded}"
