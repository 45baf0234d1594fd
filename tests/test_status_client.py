"""`pushcap status` and `pushcap reload` as a monitoring check runs them: cheap to start (what
they import is pinned here, in a fresh interpreter) and never fooled by a cut or foreign answer."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from import_probe import loaded_of, run_and_list_modules

from pushcap.supervisor.status_client import fetch, parse_answer

REPO = Path(__file__).resolve().parents[1]

# module -> why asking the daemon must not import it
NOT_IMPORTED = {
    "numpy": "the daemon's engine only (~45 ms)",
    "urllib.request": "a request is a few lines on a socket (with http.client, email: ~50 ms)",
    "http.client": "as urllib.request",
    "email": "as urllib.request",
    "pushcap.supervisor.engine": "the daemon's side (status.py), not the command's",
    "pushcap.supervisor.status": "the server: the engine, numpy",
    "pushcap.capture": "the packet path",
    "redis": "`pushcap trigger` only",
}


@pytest.mark.parametrize("command", ["status", "reload"])
def test_asking_the_daemon_imports_only_a_socket_and_the_config(tmp_path, command):
    toml = tmp_path / "daemon.toml"
    toml.write_text('[[interface]]\nname = "lo"\n[status]\nport = 9\n')  # nothing listens
    code, modules, out = run_and_list_modules([command, "--config", str(toml)])
    assert code == 2 and "no daemon answers" in out.stderr, out.stderr
    loaded = loaded_of(NOT_IMPORTED, modules)
    assert not loaded, f"`pushcap {command}` imported what it does not use: {loaded}"


def test_an_answer_is_its_status_and_its_body_to_its_length():
    answer = (b"HTTP/1.0 409 Conflict\r\nServer: x\r\ncontent-length: 5\r\n\r\n"
              b"helloEXTRA")
    assert parse_answer(answer) == (409, b"hello")
    assert parse_answer(b"HTTP/1.1 200 OK\r\n\r\n{}") == (200, b"{}")  # to the close


@pytest.mark.parametrize("answer, says", [
    (b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nshort", "cut after 5 of 10"),
    (b"SSH-2.0-OpenSSH_9.2\r\n", "not HTTP"),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 5", "not HTTP"),  # the headers never ended
    (b"HTTP/1.0 2000 OK\r\n\r\n", "not HTTP"),
    (b"HTTP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
    (b"", "not HTTP"),
])
def test_a_cut_or_foreign_answer_is_refused(answer, says):
    with pytest.raises(ValueError, match=says):
        parse_answer(answer)


def test_a_whole_answer_is_taken_though_the_server_keeps_the_connection_open():
    """A server that does not close after its answer (HTTP/1.1 keep-alive) is not waited for
    until the deadline: the answer is whole once its Content-Length is in."""
    done = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
                conn.sendall(b"{}")
                done.wait(30)

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        started = time.monotonic()
        try:
            answer = fetch("127.0.0.1", listener.getsockname()[1], timeout_s=20)
        finally:
            done.set()
            server.join(30)
    assert answer == (200, b"{}")
    assert time.monotonic() - started < 10, "waited for the close, not for the answer"


@pytest.mark.parametrize("host", ["bad\x00host", "x" * 70 + ".example"])
def test_a_host_no_resolver_takes_is_no_daemon_not_a_traceback(host):
    """`[status] host` as TOML can spell it (a NUL escape, a 70-character label): `pushcap
    query` then reads the archive itself, as with no daemon; `status` exits 2 (it catches
    ValueError as the status_command module says)."""
    from pushcap.supervisor.query_client import Declined, _connect

    with pytest.raises(Declined, match="no daemon answers"):
        _connect((host, 9))
    with pytest.raises(ValueError):
        fetch(host, 9, timeout_s=2)
