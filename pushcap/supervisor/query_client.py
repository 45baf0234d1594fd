"""`pushcap query`'s client of the running daemon (Stenographer's way), run before the cli
package's imports.

The daemon (`pushcap run`) keeps the parsed indexes of its targets' files in memory and answers
a query on its loopback status address (query_server.py); a command that asks it pays for an
interpreter, this module and a socket, not for numpy and pyarrow (~0.4 s) and the indexes'
Parquet. So `pushcap query` asks first, before the cli package imports anything heavy, and reads
the archive itself (query_command.py, the same answer) when no daemon answers, when the daemon does
not serve these files (not one of its targets', another Lua file), with `--local`, or for
`--remote`. `--daemon` insists: no daemon is then an error.

This module must stay light: argparse and the standard library only (no numpy, pyarrow, lupa,
nor pushcap's config or capture modules), as must query_options.py (the options it parses);
`perf stat -e task-clock` on `pushcap query` against a daemon measures it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
import time

from pushcap import defaults
from pushcap.supervisor import query_wire as wire
from pushcap.supervisor.query_options import (  # noqa: F401 - importable from here too
    parse_duration_s,
    parse_time_ns,
    query_arguments,
    window_ns,
)
from pushcap.supervisor.status_client import open_connection

CONNECT_TIMEOUT_S = 1.0
ANSWER_TIMEOUT_S = 600.0  # a query of a large archive streams for a while
READ_BYTES = 256 * 1024  # the pcap is moved to the output in pieces of at most this


class Declined(Exception):
    """The daemon cannot serve this query: the command reads the archive itself."""


class QueryFailed(Exception):
    """The query failed (the daemon said why): one line, exit 1."""


# --- the command line (query_options.py's options; shared with query_command.py) ----------------
class _QuietParser(argparse.ArgumentParser):
    """Whatever this parser cannot take, the cli package's parser says (the client then steps
    aside). A help width is given: without one argparse imports shutil to ask the terminal."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", lambda prog: argparse.HelpFormatter(prog, width=98))
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        raise Declined(message)


# --- where the daemon answers -------------------------------------------------------------------
def _config(path: str | None) -> tuple[tuple[str, int], list | None]:
    """(status host, port) and, when `path` is given, its [[interface]] tables as written.
    Without `--config`, the default file if there is one. tomllib (7 ms) only when needed."""
    name = path if path is not None else defaults.CONFIG_PATH
    try:
        with open(name, "rb") as f:
            raw = f.read()
    except OSError as exc:
        if path is not None:
            raise Declined(f"{path}: {exc.strerror}") from None
        return (defaults.STATUS_HOST, defaults.STATUS_PORT), None
    if path is None and b"status" not in raw:
        return (defaults.STATUS_HOST, defaults.STATUS_PORT), None
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise Declined(f"{name}: {exc}") from None
    table = _plain_toml(text)
    if table is None:  # not the plain subset: the real parser (~8 ms to import)
        import tomllib

        try:
            table = tomllib.loads(text)
        except (tomllib.TOMLDecodeError, RecursionError) as exc:
            raise Declined(f"{name}: {exc}") from None
    status = table.get("status", {})
    host = status.get("host", defaults.STATUS_HOST) if isinstance(status, dict) else None
    port = status.get("port", defaults.STATUS_PORT) if isinstance(status, dict) else None
    if not isinstance(host, str) or not isinstance(port, int) or not 0 < port < 65536:
        raise Declined(f"{name}: no daemon address in [status]")
    return (host, port), (table.get("interface") if path is not None else None)


_SECTION = re.compile(r"\s*(\[\[?)\s*([A-Za-z0-9_-]+)\s*(\]\]?)\s*(?:#.*)?")
_KEY_VALUE = re.compile(r"\s*([A-Za-z0-9_-]+)\s*=\s*(\"[^\"\\]*\"|-?\d+|true|false|"
                        r"\[(?:\s*\"[^\"\\]*\"\s*,?)*\s*\])\s*(?:#.*)?")
_WORD = re.compile(r"\"([^\"\\]*)\"")


def _plain_toml(text: str) -> dict | None:
    """The TOML of a plain pcapdaemon.toml (tables, `key = "text" | 123 | true | ["a", "b"]`,
    comments) as tomllib reads it; None for anything else (tomllib then reads it)."""
    root: dict = {}
    table = root
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if section := _SECTION.fullmatch(line):
            opened, name, closed = section.groups()
            if len(opened) != len(closed):
                return None
            if opened == "[[":
                if not isinstance(root.setdefault(name, []), list):
                    return None
                table = {}
                root[name].append(table)
            else:
                if name in root:
                    return None
                table = root[name] = {}
            continue
        pair = _KEY_VALUE.fullmatch(line)
        if pair is None or pair.group(1) in table:
            return None
        value = pair.group(2)
        if value.startswith('"'):
            table[pair.group(1)] = value[1:-1]
        elif value.startswith("["):
            table[pair.group(1)] = _WORD.findall(value)
        elif value in ("true", "false"):
            table[pair.group(1)] = value == "true"
        else:
            table[pair.group(1)] = int(value)
    return root


def _request(args) -> dict:
    start_ns, end_ns = window_ns(args, time.time_ns())
    request = {"start_ns": start_ns, "end_ns": end_ns,
               "filter": " ".join(args.filter) or None}
    if args.target is not None:
        request.update(target=args.target, lua=os.path.abspath(args.lua))
    else:
        request["dir"] = os.path.abspath(args.dir)
    return request


def _connect(address: tuple[str, int]) -> socket.socket:
    try:
        sock = open_connection(address, CONNECT_TIMEOUT_S)
    except (OSError, ValueError) as exc:  # ValueError: a host no resolver takes (NUL, idna)
        raise Declined(f"no daemon answers on http://{address[0]}:{address[1]} "
                       f"({getattr(exc, 'strerror', None) or exc})") from None
    sock.settimeout(ANSWER_TIMEOUT_S)
    return sock


def _ask(sock: socket.socket, request: dict, address: tuple[str, int]):
    body = json.dumps(request).encode()
    sock.sendall(f"POST {wire.PATH} HTTP/1.0\r\nHost: {address[0]}:{address[1]}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                 .encode() + body)
    answer = sock.makefile("rb", buffering=64 * 1024)
    status = answer.readline()
    while answer.readline() not in (b"\r\n", b"\n", b""):
        pass
    if status.split()[1:2] != [b"200"]:
        raise Declined(f"the daemon on http://{address[0]}:{address[1]} does not serve "
                       f"queries ({status.decode(errors='replace').strip()})")
    return answer


def _frames(answer):
    """(kind, length) until the stream's end, the payload left to read from `answer` (a DATA
    frame's may be megabytes: the caller moves it in pieces); a cut stream is an error."""
    while True:
        head = answer.read(wire.HEADER.size)
        if len(head) < wire.HEADER.size:
            raise QueryFailed("query: the daemon closed the connection mid-answer")
        kind, length = wire.HEADER.unpack(head)
        yield kind, length
        if kind in (wire.STATS, wire.ERROR, wire.DECLINED):
            return


def _payload(answer, length: int) -> bytes:
    payload = answer.read(length)
    if len(payload) < length:
        raise QueryFailed("query: the daemon closed the connection mid-answer")
    return payload


def _copy(answer, length: int, out, buffer: memoryview) -> None:
    """`length` bytes of the answer to `out`, through one reused buffer: a new buffer of the
    frame's size would cost a page fault per 4 KiB (fresh memory is dear on a VM)."""
    while length:
        got = answer.readinto(buffer[:min(length, len(buffer))])
        if not got:
            raise QueryFailed("query: the daemon closed the connection mid-answer")
        out.write(buffer[:got])
        length -= got


def refuse_terminal(args) -> None:
    """A pcap is never written to a terminal (the daemon's way and the local one alike)."""
    if args.write == "-" and sys.stdout.isatty():
        raise QueryFailed("query: stdout is a terminal; write the pcap to a file (-w FILE) "
                          "or a pipe (| tcpdump -r -)")


def open_output(args):
    """Where the pcap goes: `-w FILE`, or a duplicate of stdout (closed without closing it)."""
    refuse_terminal(args)
    if args.write == "-":
        return os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    try:
        return open(args.write, "wb")  # noqa: SIM115 - closed by _stream
    except OSError as exc:
        raise QueryFailed(f"query: -w {args.write}: {exc.strerror}") from None


def _stream(args, answer, address: tuple[str, int], started: float) -> None:
    out = None
    buffer = memoryview(bytearray(READ_BYTES))
    try:
        for kind, length in _frames(answer):
            if kind == wire.DATA:
                out = out or open_output(args)
                _copy(answer, length, out, buffer)
                continue
            text = _payload(answer, length)
            if kind == wire.DECLINED:
                raise Declined(text.decode(errors="replace"))
            if kind == wire.NOTE:
                print(f"pushcap query: note: {text.decode(errors='replace')}", file=sys.stderr)
            elif kind == wire.ERROR:
                raise QueryFailed(text.decode(errors="replace"))
            elif kind == wire.STATS and not args.quiet:
                summary(json.loads(text), time.perf_counter() - started,
                        f"; served by the daemon at http://{address[0]}:{address[1]}")
    finally:
        if out is not None:
            out.close()


def summary(stats: dict, seconds: float, where: str = "") -> None:
    """The line a query ends with on stderr (without --quiet), standalone or served."""
    share = 100.0 * stats["bytes_read"] / stats["archive_bytes"] if stats["archive_bytes"] \
        else 0.0
    print(f"pushcap query: {stats['packets']} packets from {stats['files']} files "
          f"({stats['files_indexed']} through their index, {stats['files_scanned']} scanned, "
          f"{stats['files_outside']} outside the window, {stats['files_missing']} gone); read "
          f"{stats['bytes_read'] / 1e6:.1f} MB of {stats['archive_bytes'] / 1e6:.1f} MB "
          f"({share:.2f}%) in {seconds:.3f} s{where}", file=sys.stderr)


asked = False  # serve_from_daemon ran in this process: the command does not ask again


def serve_from_daemon(argv: list[str]) -> int | None:
    """Run `pushcap query ARGV` through the running daemon: its exit code, or None when the
    command must read the archive itself (or when the cli package's parser must speak: --help, an
    argument this parser refuses)."""
    global asked
    asked = True
    if "-h" in argv or "--help" in argv:
        return None
    parser = _QuietParser(prog="pushcap query", add_help=False)
    query_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except (Declined, argparse.ArgumentTypeError):
        return None
    return serve_parsed(args)


def serve_parsed(args) -> int | None:
    """The query of parsed arguments through the daemon: its exit code, or None (see above)."""
    if args.local or args.remote is not None:
        return None
    try:
        request = _request(args)
    except ValueError:
        return None  # the command says what is wrong with the window
    started = time.perf_counter()
    try:
        address, interfaces = _config(args.config)
        if args.target is not None:
            request["interfaces"] = interfaces  # None: any interface's series, as locally
        refuse_terminal(args)
        with _connect(address) as sock:
            _stream(args, _ask(sock, request, address), address, started)
    except Declined as exc:
        if args.daemon:
            print(f"pushcap: error: query --daemon: {_one_line(str(exc))}", file=sys.stderr)
            return 1
        return None
    except QueryFailed as exc:
        print(f"pushcap: error: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"pushcap: error: query: the daemon's answer broke off ({exc})", file=sys.stderr)
        return 1
    return 0


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main_if_served() -> None:
    """For the cli package, before its imports: exit with the daemon's answer, or return (the
    command then runs in this process)."""
    code = serve_from_daemon(sys.argv[2:])
    if code is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
