"""The query endpoint's peer check (supervisor/peer_uid.py): the kernel's answer to "which
user owns the other end of this loopback connection", for root, for another user, over IPv4,
IPv6 and a dual-stack listener's IPv4-mapped peers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import pytest

from pushcap.supervisor.peer_uid import loopback_peer_uid, may_query

NOBODY = 65534


def _listener(family: int, host: str, dual_stack: bool = False) -> socket.socket:
    server = socket.socket(family)
    if dual_stack:
        server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    server.bind((host, 0))
    server.listen()
    return server


def _connect_as(uid: int | None, host: str, port: int) -> subprocess.Popen:
    """A client process (as `uid`, or as us) that connects and waits for a line on stdin."""
    code = ("import socket, sys; s = socket.create_connection((sys.argv[1], int(sys.argv[2])));"
            "print('connected', flush=True); sys.stdin.readline()")
    prefix = [] if uid is None else [shutil.which("setpriv"), f"--reuid={uid}", f"--regid={uid}",
                                     "--clear-groups"]
    client = subprocess.Popen([*prefix, sys.executable, "-c", code, host, str(port)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert client.stdout.readline().strip() == "connected"
    return client


@pytest.mark.parametrize("family,host,connect_to,dual", [
    (socket.AF_INET, "127.0.0.1", "127.0.0.1", False),
    (socket.AF_INET6, "::1", "::1", False),
    (socket.AF_INET6, "::", "127.0.0.1", True),
])
def test_the_owner_of_a_loopback_client_is_found(family, host, connect_to, dual):
    server = _listener(family, host, dual)
    client = _connect_as(None, connect_to, server.getsockname()[1])
    try:
        conn, peer = server.accept()
        assert loopback_peer_uid(peer, conn.getsockname()) == os.geteuid()
        assert may_query(peer, conn.getsockname()) == (True, "")
    finally:
        client.communicate("\n")
        server.close()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to connect as another user")
def test_another_user_is_declined_with_its_uid_named():
    server = _listener(socket.AF_INET, "127.0.0.1")
    client = _connect_as(NOBODY, "127.0.0.1", server.getsockname()[1])
    try:
        conn, peer = server.accept()
        assert loopback_peer_uid(peer, conn.getsockname()) == NOBODY
        allowed, why = may_query(peer, conn.getsockname())
        assert not allowed
        assert f"not uid {NOBODY}" in why
    finally:
        client.communicate("\n")
        server.close()


def test_a_peer_not_on_this_host_is_declined():
    """An address no local socket has (TEST-NET-3): no line in /proc/net/tcp, so no user."""
    server = _listener(socket.AF_INET, "127.0.0.1")
    try:
        local = server.getsockname()
        assert loopback_peer_uid(("203.0.113.9", 40000), local) is None
        assert may_query(("203.0.113.9", 40000), local) == (
            False, "the daemon serves queries to local users only")
    finally:
        server.close()
