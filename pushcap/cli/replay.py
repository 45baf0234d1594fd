"""`pushcap replay`: its parser, its argparse-free reading of a plain command line, the run and its
summary. A replay's start-up is benchmarked against tcpdump's, whole runs included (issue 15):
this module imports at the top only what the package already has, and the rest where it is used."""

from __future__ import annotations

import sys

from pushcap import defaults
from pushcap.cli import _config_args, _imported

TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
if TYPE_CHECKING:
    from types import SimpleNamespace


def cmd_replay(args) -> int:
    """Without --config no TOML is read (nor tomllib imported): a replay's start-up is
    benchmarked against tcpdump's. With it, `[rclone]` drives rclone targets and `[ring]
    batch_packets` the read size (--batch-packets wins)."""
    from pushcap.config.lua import load_targets
    from pushcap.supervisor.replay import replay

    _imported()
    rclone = None
    batch_packets = args.batch_packets
    if args.config is not None:
        from pushcap.config.toml import load_daemon_config

        config = load_daemon_config(args.config, trigger=False)
        rclone = config.rclone
        batch_packets = batch_packets or config.ring.batch_packets
    targets = load_targets(args.lua)
    meter = _replay_progress(args)
    try:
        summary = replay(args.file, targets, batch_packets or defaults.BATCH_PACKETS,
                         meter.update if meter else None, rclone_settings=rclone)
    finally:
        if meter:  # erased when the summary follows on the terminal, else left in its last state
            meter.finish(keep=not sys.stdout.isatty())
    rate = summary.packets / summary.seconds if summary.seconds else 0.0
    print(f"read {summary.packets} packets ({summary.bytes / 1e6:.1f} MB) from {args.file} in "
          f"{summary.batches} batches in {summary.seconds:.3f} s ({rate:,.0f} packets/s)")
    failed = 0
    for consumer in summary.series:
        print(f"  {consumer.target.desc}: {_replay_figures(consumer)}")
        failed += _replay_failure(consumer)
    return 1 if failed else 0


def _replay_progress(args):
    """A progress line on stderr while a replay runs, when stderr is a terminal and without
    --quiet; else None (pipes, logs and CI get only the summary)."""
    if args.quiet or not sys.stderr.isatty():
        return None
    import logging

    from pushcap.capture.batch import PCAP_FILE_HEADER_BYTES
    from pushcap.supervisor.progress import Progress

    try:
        size = args.file.stat().st_size
    except OSError:  # replay says what is wrong with the file
        size = 0
    meter = Progress(sys.stderr, size, start_bytes=PCAP_FILE_HEADER_BYTES)
    meter.clear_before_logs(logging.getLogger("pushcap"))
    return meter


def _replay_failure(consumer) -> bool:
    """Say so when a target did not deliver everything (a failed write, files left in the upload
    spool because the remote refused them): a replay that lost output must not exit 0."""
    from pushcap.supervisor.target_counters import consumer_status

    figures = consumer_status(consumer)
    pending = figures.get("files_pending") or 0
    if not (figures["errors"] or pending):
        return False
    what = f"{pending} file(s) not delivered" if pending else f"{figures['errors']} error(s)"
    print(f"pushcap: error: target {consumer.target.desc}: {what}: "
          f"{figures.get('last_error') or consumer.last_error or '?'}",
          file=sys.stderr)
    return True


def _replay_figures(consumer) -> str:
    """A target's line of the replay summary: pcap files, or a flows target's records."""
    from pushcap.config.model import PushMode

    stats = consumer.stats
    if consumer.target.mode is PushMode.FLOWS:
        return (f"packets={stats.packets} intervals={stats.intervals} "
                f"records_sent={stats.records_sent} send_failures={stats.send_failures} "
                f"datagrams={stats.datagrams}")
    return f"packets={stats.packets} files={stats.files} bytes={stats.bytes}"


def _batch_packets(text: str) -> int:
    """--batch-packets' argparse type. Its name is in argparse's message for a value that is no
    number ("invalid _batch_packets value"): renaming it changes that message."""
    import argparse

    value = int(text)
    if not 1 <= value <= defaults.MAX_BATCH_PACKETS:
        raise argparse.ArgumentTypeError(f"must be 1 to {defaults.MAX_BATCH_PACKETS}, not {value}")
    return value


def add_replay_parser(sub) -> None:
    """The argparse reading of what `plain_replay_args` leaves (`--help`, `--lua=L`, errors)."""
    from pathlib import Path

    p = sub.add_parser("replay", help="run the push targets over a capture file")
    p.add_argument("file", type=Path)
    _config_args(p, daemon=False)
    p.add_argument("--config", help="daemon config (TOML) for [rclone] and [ring]; "
                   "default: none read")
    p.add_argument("--batch-packets", type=_batch_packets,
                   help=f"packets per read (default [ring] batch_packets, else "
                   f"{defaults.BATCH_PACKETS})")
    p.add_argument("--quiet", action="store_true",
                   help="no progress line on a terminal (the summary is still printed)")
    p.set_defaults(func=cmd_replay)


_REPLAY_VALUES = {"--lua": "lua", "--config": "config", "--batch-packets": "batch_packets"}


def plain_replay_args(words: list[str]) -> SimpleNamespace | None:
    """`replay`'s arguments as its argparse parser gives them, for a command line in the plain
    forms (`replay FILE [--lua L] [--config C] [--batch-packets N] [--quiet]`, each value a
    separate word not starting with `-`); None for anything else (`--help`, `--lua=L`, an
    abbreviation, an error), which argparse then reads, and words the errors of. argparse
    (with gettext, and locale through it) cost ~4 ms of a replay's start-up (issue 15)."""
    from pathlib import Path
    from types import SimpleNamespace

    values: dict[str, object] = {"lua": defaults.PUSH_LUA_PATH, "config": None,
                                 "batch_packets": None, "quiet": False}
    file = None
    rest = iter(words[1:])
    for word in rest:
        if word in _REPLAY_VALUES:
            value = next(rest, None)
            if value is None or value.startswith("-"):
                return None
            if word == "--batch-packets":
                try:
                    value = int(value)
                except ValueError:
                    return None
                if not 1 <= value <= defaults.MAX_BATCH_PACKETS:
                    return None
            values[_REPLAY_VALUES[word]] = value
        elif word == "--quiet":
            values["quiet"] = True
        elif word.startswith("-") or file is not None:
            return None
        else:
            file = word
    if file is None:
        return None
    return SimpleNamespace(command="replay", file=Path(file), func=cmd_replay, **values)
