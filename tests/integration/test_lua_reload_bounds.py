"""Issue 17, items 10 and 16 in a running daemon: a reload whose Lua hangs in a C call, or nests
too deeply for Lua's parser, is refused with one line naming the file and line, and the daemon
goes on with its old targets (tests/test_lua_bounds.py covers `check` and `run`)."""

from __future__ import annotations

import socket

import pytest
from service_harness import Daemon, target_lua

pytestmark = pytest.mark.integration

HANGS = 'local x = 1\nlocal t = table.move({}, 1, math.maxinteger - 1, 1)\nreturn {Target = {}}\n'
NESTS = "local x = 1\nlocal y = " + "{" * 1000 + "}" * 1000 + "\nreturn {Target = {}}\n"


def test_reload_refuses_lua_it_cannot_bound_and_keeps_the_old_targets(tmp_path, udp_port):
    daemon = Daemon(tmp_path, target_lua(tmp_path / "out", udp_port, "seq"))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = 0

    def send(count: int) -> None:
        nonlocal sent
        for _ in range(count):
            sock.sendto(b"seq%08d" % sent, ("127.0.0.1", udp_port))
            sent += 1

    try:
        send(50)
        daemon.wait_packets("seq", sent, "before any reload")
        daemon.lua.write_text(HANGS)
        answer = daemon.cli("reload")  # its own timeout turns a hung reload into a failure
        assert answer.returncode == 1, (answer.stdout, answer.stderr)
        assert answer.stdout.startswith(f"refused: {daemon.lua}: ran longer than 2 s ("), answer
        assert answer.stdout.rstrip().endswith("stopped at line 2"), answer.stdout
        send(50)
        daemon.wait_packets("seq", sent, "after the refused reload: the old target goes on")

        daemon.lua.write_text(NESTS)
        answer = daemon.cli("reload")
        assert answer.returncode == 1, (answer.stdout, answer.stderr)
        assert answer.stdout.startswith(f"refused: {daemon.lua}:2: nested too deeply"), answer
        assert len(answer.stdout.splitlines()) == 1, answer.stdout
        send(50)
        daemon.wait_packets("seq", sent, "after the second refused reload")
    finally:
        sock.close()
        assert daemon.stop() == 0
    text = daemon.text()
    assert text.count("event=reload_refused") == 2 and "Traceback" not in text, text
