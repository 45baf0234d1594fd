"""`pushcap query`: one pcap of the packets an archive holds for a time window and a filter.

The files are a File target's (`--lua F --target DESC`, every interface's series) or a
folder's (`--dir D`), or the same layout on an rclone remote (`--remote`, remote.py). The
packets are those `tcpdump -r FILE FILTER` selects from each file, cut to the window, in time
order (archive/query.py); the index narrows what is read, never what is found. The pcap goes to
stdout (never a terminal) or `-w FILE`; what was read, and any file skipped, is said on stderr.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from pushcap.config.model import ConfigError, PushMode, TargetConfig
from pushcap.supervisor import query_client
from pushcap.supervisor.query_client import (  # noqa: F401 - importable from here too
    parse_duration_s,
    parse_time_ns,
    query_arguments,
    window_ns,
)


def add_query_parser(sub) -> None:
    p = sub.add_parser("query", help="write the archived packets of a time window that a "
                       "filter selects, as one pcap (indexes narrow what is read; a running "
                       "daemon answers from the indexes it keeps in memory)")
    query_arguments(p)
    p.set_defaults(func=cmd_query)


def _window(args) -> tuple[int, int]:
    try:
        return window_ns(args, time.time_ns())
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


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
    """query_client's output, its refusals as this command's config errors."""
    try:
        return query_client.open_output(args)
    except query_client.QueryFailed as exc:
        raise ConfigError(str(exc)) from None


def cmd_query(args) -> int:
    from pushcap.archive.query import ArchiveQuery, QueryError
    from pushcap.capture.batch import pcap_file_header

    if not args.local and args.remote is None and not query_client.asked:
        served = query_client.serve_parsed(args)  # main() called in-process (tests)
        if served is not None:
            return served
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

    files = _target_files(args) if args.target else _dir_files(Path(args.dir))
    return contextlib.nullcontext(files)


def _dir_files(folder: Path) -> list[Path]:
    from pushcap.archive.layout import folder_files

    if not folder.is_dir():
        raise ConfigError(f"query: --dir {folder}: not a folder")
    return sorted(folder_files(folder))


def _summary(stats, seconds: float) -> None:
    query_client.summary(vars(stats), seconds)
