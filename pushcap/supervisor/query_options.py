"""The command line of `pushcap query`: its options, and what a duration, a time and a window are.

One definition for both ways a query runs: the daemon's client (query_client.py) parses it
before the cli package imports anything, and the cli package's subparser (query_command.py)
when the command reads the archive itself; the two must agree on every option and every refusal.

Imported on the client's start-up path, so as light as it is: argparse, re and pushcap's
defaults only at module level (decimal and datetime only for a time that needs them).
"""

from __future__ import annotations

import argparse
import re

from pushcap import defaults

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)([dhms]))")
_UNIT_S = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration_s(text: str) -> float:
    """`2h`, `90m`, `1h30m`, `45s`, `2d` or a plain number of seconds."""
    try:
        value = float(text)
    except ValueError:
        parts = _DURATION.findall(text)
        if not parts or "".join(a + u for a, u in parts) != text:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a duration; write e.g. 2h, 90m, 1h30m, 45s or 3600") from None
        value = sum(float(a) * _UNIT_S[u] for a, u in parts)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration must be above 0")
    return value


def parse_time_ns(text: str) -> int:
    """Epoch seconds (`1700000000.5`) or ISO 8601 (`2024-05-01T10:00:00Z`, `+02:00`; without
    a zone: local time, as `date` shows it)."""
    if text.isdigit():
        return int(text) * 1_000_000_000
    from decimal import Decimal, InvalidOperation

    try:
        return int(Decimal(text) * 1_000_000_000)  # exact: a float loses the nanoseconds
    except (InvalidOperation, ValueError):
        pass
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time; write epoch seconds or ISO 8601, e.g. "
            "2024-05-01T10:00:00Z") from None
    return int(moment.timestamp() * 1_000_000) * 1000


def query_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `pushcap query` (the cli package's subparser, and the client's own parser)."""
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--target", metavar="DESC", help="a File target of --lua: its files")
    where.add_argument("--dir", help="the capture files of a folder")
    where.add_argument("--remote", metavar="REMOTE:PATH",
                       help="the capture files of an rclone remote folder (indexes read "
                       "first, then only the byte ranges needed)")
    p.add_argument("--lua", default=defaults.PUSH_LUA_PATH, help="push targets (with --target)")
    p.add_argument("--config", help="daemon config (TOML): where the running daemon answers "
                   "([status]); with --target, which interfaces it reads ([[interface]]); with "
                   "--remote, [rclone]")
    p.add_argument("--since", type=parse_duration_s, metavar="DURATION",
                   help="the window is the last DURATION (2h, 30m, 1h30m, 45s)")
    p.add_argument("--start", type=parse_time_ns, metavar="TIME",
                   help="window start (epoch seconds or ISO 8601)")
    p.add_argument("--end", type=parse_time_ns, metavar="TIME",
                   help="window end, excluded (default: now)")
    p.add_argument("-w", "--write", metavar="FILE", default="-",
                   help="output pcap (default: stdout, which must not be a terminal)")
    p.add_argument("--quiet", action="store_true", help="no summary on stderr (notes stay)")
    served = p.add_mutually_exclusive_group()
    served.add_argument("--local", action="store_true",
                        help="read the archive in this process, even when a daemon serves it")
    served.add_argument("--daemon", action="store_true",
                        help="only the running daemon answers (an error without one)")
    p.add_argument("filter", nargs="*", default=(), help="a libpcap filter, as tcpdump takes it")


def window_ns(args, now_ns: int) -> tuple[int, int]:
    """[start, end) of the command line; ValueError with the fix when it is not one."""
    if args.since is not None:
        if args.start is not None or args.end is not None:
            raise ValueError("query: give --since, or --start (and --end), not both")
        return now_ns - int(args.since * 1e9), now_ns
    if args.start is None:
        raise ValueError("query: give the window: --since 2h, or --start T [--end T]")
    end_ns = now_ns if args.end is None else args.end
    if end_ns <= args.start:
        raise ValueError("query: --end must be after --start")
    return args.start, end_ns
