"""Issue 17, items 10 and 16: Lua work that no hook sees is still bounded, and nesting too deep
for Lua's parser is a one-line error naming the file and line.

A C library call (string.rep, table.move, a backtracking pattern) ran no hook and could hang
`pushcap check`, `run` and a reload for hours; so every case here runs in a subprocess whose
timeout turns a hang into a failure instead of a stuck test run. The time budget is shrunk in
that subprocess, so a case costs about a second; the end-to-end tests run the console script
with its real budget. No test measures time: the generous timeouts only catch a hang.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from lua_config_helpers import NAME, load_error
from waiting import wait_until

from pushcap.config import lua_process
from pushcap.config.lua import load_targets_text

REPO = Path(__file__).resolve().parents[1]
PUSHCAP = str(Path(sys.executable).parent / "pushcap")
HANG_TIMEOUT_S = 30  # a run that is not over by then hangs

# Loads argv[1] with the budget argv[2] s (the kill 0.5 s later); "spawn": with another thread
# running, as in a daemon. Prints the error (exit 1), then how many children it still has.
_HARNESS = """
import os, sys, threading
from pushcap import defaults
defaults.LUA_MAX_SECONDS = float(sys.argv[2])
defaults.LUA_KILL_GRACE_SECONDS = 0.5
if sys.argv[3] == "spawn":
    threading.Thread(target=threading.Event().wait, daemon=True).start()
from pushcap.config.lua import load_targets
from pushcap.config.model import ConfigError

def children():
    mine = str(os.getpid())
    found = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                found += f.read().rsplit(")", 1)[1].split()[1] == mine
        except OSError:
            pass
    return found

try:
    load_targets(sys.argv[1])
    print("loaded")
except ConfigError as exc:
    print(exc)
print(f"children={children()}")
"""

# (code, the line it hangs on)
C_LEVEL_HANGS = {
    "string.rep": ('local s = string.rep("", math.maxinteger)', 3),
    "table.move": ("local t = table.move({}, 1, math.maxinteger - 1, 1)", 3),
    "string.find": ("local r = string.find(S, P)", 3),
    "string.match": ("local r = S:match(P)", 3),
    "string.gmatch": ("for w in string.gmatch(S, P) do end", 3),
    "string.gsub": ('local r = string.gsub(S, P, "x")', 3),
    "in pcall": ('local ok = pcall(string.rep, "", math.maxinteger)', 3),
    "in a helper": ("local function f(n)\n  return table.move({}, 1, n, 1)\nend\n"
                    "f(math.maxinteger)", 4),
}


def hanging_config(code: str) -> str:
    """A config whose line 3 starts `code`; S and P make string.find backtrack 2^40 ways."""
    return (
        'local S = string.rep("a", 40)\n'
        'local P = string.rep("a?", 40) .. string.rep("a", 40)\n'
        f"{code}\n"
        'return {Target = {{Desc = "t", Mode = "File", Path = "out/t"}}}\n'
    )


def load_in_child(path: Path, mode: str, budget_s: float) -> list[str]:
    """The output lines of _HARNESS loading `path`; fails if it is not over in HANG_TIMEOUT_S."""
    proc = subprocess.run(
        [sys.executable, "-c", _HARNESS, str(path), str(budget_s), mode], cwd=REPO,
        capture_output=True, text=True, timeout=HANG_TIMEOUT_S,
    )  # fmt: skip
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout.splitlines()


@pytest.mark.parametrize("case", list(C_LEVEL_HANGS))
def test_a_c_call_past_the_budget_is_stopped_and_named_by_its_line(tmp_path, case):
    code, line = C_LEVEL_HANGS[case]
    path = tmp_path / NAME
    path.write_text(hanging_config(code))
    out = load_in_child(path, "fork", 0.3)
    assert len(out) == 2, out  # one line of error, then the children count
    assert out[0].startswith(f"{path}: ran longer than 0.3 s ("), out
    assert out[0].endswith(f"stopped at line {line}"), out
    assert out[1] == "children=0", "the evaluating process must be gone"


@pytest.mark.parametrize("case", ["string.rep", "string.find"])
def test_a_daemon_with_threads_spawns_the_child_and_stops_it_too(tmp_path, case):
    code, line = C_LEVEL_HANGS[case]
    path = tmp_path / NAME
    path.write_text(hanging_config(code))
    out = load_in_child(path, "spawn", 0.5)
    assert out[0].startswith(f"{path}: ran longer than 0.5 s ("), out
    assert out[0].endswith(f"stopped at line {line}"), out
    assert out[1:] == ["children=0"], out


def test_a_child_whose_parent_died_ends_on_its_own(tmp_path):
    """RLIMIT_CPU: pushcap killed mid-check must not leave a process spinning for hours."""
    path = tmp_path / NAME
    path.write_text(hanging_config(C_LEVEL_HANGS["string.rep"][0]))
    parent = subprocess.Popen([sys.executable, "-c", _HARNESS, str(path), "1.5", "fork"],
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def limited_child() -> tuple[int, str] | None:
        for pid in _children_of(parent.pid):
            try:
                limits = Path(f"/proc/{pid}/limits").read_text()
            except OSError:
                continue
            if _limit(limits, "Max cpu time") != "unlimited":
                return pid, limits
        return None

    try:
        child, limits = wait_until(limited_child, HANG_TIMEOUT_S, "a child with a CPU limit")
    finally:
        parent.send_signal(signal.SIGKILL)  # before it kills the child itself, 2 s after start
        parent.wait()
    assert _limit(limits, "Max address space") != "unlimited", limits
    assert not _gone(child), "the child should have outlived its parent (an orphan)"
    wait_until(lambda: _gone(child), HANG_TIMEOUT_S, f"orphaned child {child} to end")


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == str(pid):
                found.append(int(entry.name))
    return found


def _limit(limits: str, name: str) -> str:
    row = next(r for r in limits.splitlines() if r.startswith(name))
    return row[len(name):].split()[0]


def _gone(pid: int) -> bool:
    try:  # a zombie nobody reaps (PID 1 of a container may not) has ended too
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_lua_loops_still_stop_inside_the_child_with_their_line(tmp_path):
    path = tmp_path / NAME
    path.write_text("local x = 0\n\nwhile true do x = x + 1 end\n")
    out = load_in_child(path, "fork", 0.3)
    assert out == [f"{path}: ran longer than 0.3 s (infinite loop?), stopped at line 3",
                   "children=0"]


def test_a_config_in_budget_loads_in_either_kind_of_child(tmp_path):
    path = tmp_path / NAME
    path.write_text(hanging_config('local r = string.find(S, "a+")'))
    assert load_in_child(path, "fork", 2.0) == ["loaded", "children=0"]
    assert load_in_child(path, "spawn", 2.0) == ["loaded", "children=0"]


# --- nesting too deep for Lua's parser (item 16) ------------------------------------------------

NESTING = {
    "300 (": "local x = " + "(" * 300 + "1" + ")" * 300,
    "1,000 {": "local x = " + "{" * 1000 + "}" * 1000,
    "5,000 ..": 'local x = "a"' + ' .. "a"' * 5000,
}
_DEEP = "nested too deeply: Lua allows about 200 levels of brackets, table constructors and"


def nested_config(code: str) -> str:
    return f"local Config = {{Target = {{}}}}\nlocal ok = 1\n{code}\nreturn Config\n"


@pytest.mark.parametrize("spawn", [False, True], ids=["fork", "spawn"])
@pytest.mark.parametrize("case", list(NESTING))
def test_nesting_too_deep_names_file_and_line(case, spawn, monkeypatch):
    if spawn:
        monkeypatch.setattr(lua_process, "_can_fork", lambda: False)
    message = load_error(nested_config(NESTING[case]))
    assert message.startswith(f"{NAME}:3: {_DEEP}"), message
    assert "\n" not in message and "traceback" not in message


def test_the_line_is_where_the_nesting_passes_the_limit():
    text = nested_config("local x = " + "(" * 150 + "\n" + "(" * 150 + "1" + ")" * 300)
    assert load_error(text).startswith(f"{NAME}:4: {_DEEP}")


def test_nesting_within_the_limit_still_loads():
    text = "local x = " + "(" * 150 + "1" + ")" * 150 + "\n"
    text += 'return {Target = {{Desc = "t" .. x, Mode = "File", Path = "out/t"}}}\n'
    assert load_targets_text(text, NAME)[0].desc == "t1"


# --- end to end: the console script -------------------------------------------------------------


def run_pushcap(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PUSHCAP, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=HANG_TIMEOUT_S)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 1, proc.stderr
    return proc.stderr.strip()


@pytest.mark.integration
@pytest.mark.parametrize(("command", "case"), [("check", "string.rep"), ("run", "table.move")])
def test_pushcap_refuses_a_hanging_config(tmp_path, command, case):
    path = tmp_path / "hang.lua"
    path.write_text(hanging_config(C_LEVEL_HANGS[case][0]))
    message = one_line_error(run_pushcap(command, "--lua", str(path), "--config",
                                         "etc/pcapdaemon.toml"))
    assert message.startswith(f"pushcap: error: {path}: ran longer than 2 s ("), message
    assert message.endswith("stopped at line 3"), message


@pytest.mark.integration
@pytest.mark.parametrize("case", list(NESTING))
def test_pushcap_check_names_the_line_of_deep_nesting(tmp_path, case):
    path = tmp_path / "deep.lua"
    path.write_text(nested_config(NESTING[case]))
    message = one_line_error(run_pushcap("check", "--lua", str(path), "--config",
                                         "etc/pcapdaemon.toml"))
    assert message.startswith(f"pushcap: error: {path}:3: {_DEEP}"), message
