"""`pushcap query`: one pcap of the packets an archive holds for a time window and a filter.

The files are a File target's (`--lua F --target DESC`, every interface's series) or a
folder's (`--dir D`), or the same layout on an rclone remote (`--remote`, remote.py). The
packets are those `tcpdump -r FILE FILTER` selects from each file, cut to the window, in time
order (archive/query.py); the index narrows what is read, never what is found. The pcap goes to
stdout (never a terminal) or `-w FILE`; what was read, and any file skipped, is said on stderr.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from pushcap import defaults
from pushcap.config.model import ConfigError, PushMode, TargetConfig

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
    try:
        return int(Decimal(text) * 1_000_000_000)  # exact: a float loses the nanoseconds
    except (InvalidOperation, ValueError):
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time; write epoch seconds or ISO 8601, e.g. "
            "2024-05-01T10:00:00Z") from None
    return int(moment.timestamp() * 1_000_000) * 1000


def add_query_parser(sub) -> None:
    p = sub.add_parser("query", help="write the archived packets of a time window that a "
                       "filter selects, as one pcap (indexes narrow what is read)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--target", metavar="DESC", help="a File target of --lua: its files")
    where.add_argument("--dir", type=Path, help="the capture files of a folder")
    where.add_argument("--remote", metavar="REMOTE:PATH",
                       help="the capture files of an rclone remote folder (indexes read "
                       "first, then only the byte ranges needed)")
    p.add_argument("--lua", default=defaults.PUSH_LUA_PATH, help="push targets (with --target)")
    p.add_argument("--config", help="daemon config (TOML): with --target, which interfaces it "
                   "reads ([[interface]]); with --remote, [rclone]")
    p.add_argument("--since", type=parse_duration_s, metavar="DURATION",
                   help="the window is the last DURATION (2h, 30m, 1h30m, 45s)")
    p.add_argument("--start", type=parse_time_ns, metavar="TIME",
                   help="window start (epoch seconds or ISO 8601)")
    p.add_argument("--end", type=parse_time_ns, metavar="TIME",
                   help="window end, excluded (default: now)")
    p.add_argument("-w", "--write", metavar="FILE", default="-",
                   help="output pcap (default: stdout, which must not be a terminal)")
    p.add_argument("--quiet", action="store_true", help="no summary on stderr (notes stay)")
    p.add_argument("filter", nargs="*", help="a libpcap filter, as tcpdump takes it")
    p.set_defaults(func=cmd_query)


def _window(args) -> tuple[int, int]:
    now_ns = time.time_ns()
    if args.since is not None:
        if args.start is not None or args.end is not None:
            raise ConfigError("query: give --since, or --start (and --end), not both")
        return now_ns - int(args.since * 1e9), now_ns
    if args.start is None:
        raise ConfigError("query: give the window: --since 2h, or --start T [--end T]")
    end_ns = now_ns if args.end is None else args.end
    if end_ns <= args.start:
        raise ConfigError("query: --end must be after --start")
    return args.start, end_ns


def _target(args) -> TargetConfig:
    from pushcap.config.lua import load_targets

    for target in load_targets(args.lua):
        if target.desc == args.target:
            if target.mode is not PushMode.FILE:
                raise ConfigError(f'query: target "{args.target}" is Mode {target.mode.value}; '
                                  "query reads File targets (--remote reads a remote folder)")
            if target.folder:
                raise ConfigError(f'query: target "{args.target}" writes into the folder '
                                  f"{target.path} without a prefix: read it with --dir")
            return target
    raise ConfigError(f'query: no target "{args.target}" in {args.lua}')


def _target_files(args) -> list[Path]:
    from pushcap.archive.layout import SeriesFiles
    from pushcap.supervisor.consumers import interfaces_of, series_prefix

    target = _target(args)
    if args.config is None:
        series = [SeriesFiles(Path(target.path), target.naming, target.file_suffix,
                              any_interface=True)]
    else:
        from pushcap.config.toml import load_daemon_config

        config = load_daemon_config(args.config, trigger=False)
        names = interfaces_of(target, config)
        series = [SeriesFiles(series_prefix(target, name, len(names) > 1), target.naming,
                              target.file_suffix) for name in names]
    return sorted({p for s in series for p in s.paths()})


def _output(args):
    if args.write == "-":
        if sys.stdout.isatty():
            raise ConfigError("query: stdout is a terminal; write the pcap to a file (-w FILE) "
                              "or a pipe (| tcpdump -r -)")
        return os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    return open(args.write, "wb")  # noqa: SIM115 - closed by cmd_query


def cmd_query(args) -> int:
    from pushcap.archive.query import ArchiveQuery, QueryError
    from pushcap.capture.batch import pcap_file_header

    start_ns, end_ns = _window(args)
    expression = " ".join(args.filter) or None

    def note(text: str) -> None:
        print(f"pushcap query: note: {text}", file=sys.stderr)

    started = time.perf_counter()
    with _remote_or_local(args, start_ns, end_ns, expression) as files:
        try:
            query = ArchiveQuery(files, start_ns, end_ns, expression, note)
        except QueryError as exc:
            raise ConfigError(f"query: {exc}") from exc
        with _output(args) as out:
            out.write(pcap_file_header(query.linktype, query.snaplen, query.nano))
            try:
                for batch in query.batches():
                    out.write(memoryview(batch.records).cast("B"))
            except QueryError as exc:
                raise ConfigError(f"query: {exc}") from exc
    if not args.quiet:
        _summary(query.stats, time.perf_counter() - started)
    return 0


def _remote_or_local(args, start_ns: int, end_ns: int, expression: str | None):
    if args.remote:
        from pushcap.archive.remote import remote_files

        return remote_files(args.remote, args.config, start_ns, end_ns, expression)
    import contextlib

    files = _target_files(args) if args.target else _dir_files(args.dir)
    return contextlib.nullcontext(files)


def _dir_files(folder: Path) -> list[Path]:
    from pushcap.archive.layout import folder_files

    if not folder.is_dir():
        raise ConfigError(f"query: --dir {folder}: not a folder")
    return sorted(folder_files(folder))


def _summary(stats, seconds: float) -> None:
    share = 100.0 * stats.bytes_read / stats.archive_bytes if stats.archive_bytes else 0.0
    print(f"pushcap query: {stats.packets} packets from {stats.files} files "
          f"({stats.files_indexed} through their index, {stats.files_scanned} scanned, "
          f"{stats.files_outside} outside the window, {stats.files_missing} gone); read "
          f"{stats.bytes_read / 1e6:.1f} MB of {stats.archive_bytes / 1e6:.1f} MB "
          f"({share:.2f}%) in {seconds:.3f} s", file=sys.stderr)
