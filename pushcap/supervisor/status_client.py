"""A command's side of the daemon's loopback endpoint (status.py): the connection and the
request of `pushcap status` and `pushcap reload`, and the connection of `pushcap query`.

A monitoring check or a systemd timer runs `pushcap status` every few seconds, so asking the
daemon imports no more than a socket: the request is a few lines of HTTP/1.0 written on it
(the daemon's server answers with a Content-Length and closes the connection). urllib.request,
with http.client and the email package it reads headers with, cost ~50 ms of CPU a run, and
status.py, where the client used to live beside the server, another ~100 ms (the engine and
numpy): `pushcap status` cost ~0.18-0.23 s of CPU, ~0.06 s now (issue 15).
"""

from __future__ import annotations

import socket
import time

# A status of thousands of targets is a few MB: a longer answer is not a pushcap daemon's.
MAX_ANSWER_BYTES = 64 << 20
READ_BYTES = 1 << 16


def open_connection(address: tuple[str, int], timeout_s: float) -> socket.socket:
    """A connected socket. A numeric address (the default, 127.0.0.1) is connected directly:
    socket.create_connection asks getaddrinfo, whose host name goes through the idna codec,
    an import of ~2 ms (of a command's ~30)."""
    host, port = address
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout_s)
            sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
        return sock
    return socket.create_connection(address, timeout=timeout_s)


def fetch(host: str, port: int, path: str = "/status", method: str = "GET",
          timeout_s: float = 5.0) -> tuple[int, bytes]:
    """(HTTP status, body) of one request to the daemon. OSError (TimeoutError among them)
    when no whole answer comes within `timeout_s`, connecting included, so a port held by a
    program that never answers cannot hang a health check; ValueError when what answers does
    not speak HTTP."""
    deadline = time.monotonic() + timeout_s
    name = f"[{host}]" if ":" in host else host
    with open_connection((host, port), timeout_s) as sock:
        sock.settimeout(_left(deadline, timeout_s))
        sock.sendall(f"{method} {path} HTTP/1.0\r\nHost: {name}:{port}\r\n"
                     "Content-Length: 0\r\n\r\n".encode())
        answer = bytearray()
        while not _whole(answer):
            sock.settimeout(_left(deadline, timeout_s))
            piece = sock.recv(READ_BYTES)
            if not piece:
                break
            answer += piece
            if len(answer) > MAX_ANSWER_BYTES:
                raise ValueError(f"an answer of more than {MAX_ANSWER_BYTES} bytes")
    return parse_answer(bytes(answer))


def _left(deadline: float, timeout_s: float) -> float:
    """The time left for the whole request; TimeoutError once it is spent."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError(f"no whole answer within {timeout_s:g} s")
    return left


def _whole(answer: bytearray) -> bool:
    """Whether `answer` holds its headers and as many body bytes as its Content-Length says
    (a server that keeps the connection open after its answer is not waited for); without a
    Content-Length the answer ends when the server closes."""
    end = answer.find(b"\r\n\r\n")
    if end < 0:
        return False
    try:
        length = _content_length(bytes(answer[:end]))
    except ValueError:
        return True  # parse_answer says what is wrong with it
    return length is not None and len(answer) - end - 4 >= length


def parse_answer(answer: bytes) -> tuple[int, bytes]:
    """(status, body) of a whole HTTP/1.x answer; the body cut to its Content-Length when the
    answer says one (a longer one) and refused when shorter (the connection was cut)."""
    head, blank, body = answer.partition(b"\r\n\r\n")
    words = head.split(b"\r\n", 1)[0].split(None, 2)
    if not blank or len(words) < 2 or not words[0].startswith(b"HTTP/") \
            or not words[1].isdigit() or len(words[1]) != 3:
        raise ValueError("the answer is not HTTP")
    length = _content_length(head)
    if length is not None:
        if len(body) < length:
            raise ValueError(f"the answer was cut after {len(body)} of {length} bytes")
        body = body[:length]
    return int(words[1]), body


def _content_length(head: bytes) -> int | None:
    """The Content-Length the headers give, None without one; ValueError for a bad one."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            if not value.strip().isdigit():
                raise ValueError(f"a Content-Length of {value.strip()[:20]!r}")
            return int(value.strip())
    return None
