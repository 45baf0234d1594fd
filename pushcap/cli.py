"""`pushcap` command line: run, check, replay, query, status, reload, trigger, flows."""

from __future__ import annotations

import sys

if sys.argv[1:2] == ["query"]:  # a running daemon answers it before the imports below
    from pushcap.supervisor.query_client import main_if_served

    main_if_served()  # exits when the daemon served the query; else it runs here

import gc  # noqa: E402
import os  # noqa: E402

from pushcap import defaults  # noqa: E402

TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
if TYPE_CHECKING:
    import argparse
    from types import SimpleNamespace

    from pushcap.config.model import DaemonConfig, PushConfig, TargetConfig

# Start-up time matters (`replay` is benchmarked against tcpdump, whole runs included, issue
# 15): this module imports nothing at the top but what every command needs. Each command imports
# what it uses when it runs (`replay`: the Lua loader, the replay and the push targets; never
# argparse for a plain replay command line, `_plain_replay_args`), and a command line builds only
# its subcommand's parser (supervisor/flows_command.py and trigger/command.py are imported only
# for their own commands).
#
# Importing numpy and the rest allocates ~100k objects, and the cyclic garbage collector, run
# again and again over them while they are created, took ~15% of start-up (perf). Nothing made
# during imports is garbage: main() collects nothing until a command's imports are done
# (`_imported`), which then freezes what they made so later collections (in a daemon running
# for months, too) never walk it again.


def _load(args) -> tuple[DaemonConfig, PushConfig]:
    from pushcap.config.lua import load_push_config
    from pushcap.config.toml import load_daemon_config

    config = load_daemon_config(args.config, args)  # pcapdaemon's flags override the file
    return config, load_push_config(args.lua, config.interface_names())  # checks Interfaces


def _destination(target: TargetConfig, config: DaemonConfig, names: tuple[str, ...],
                 probe: bool) -> str:
    from pushcap.config.model import ConfigError, PushMode
    from pushcap.push.ship import make_shipper
    from pushcap.supervisor.consumers import series_prefix

    if target.mode is PushMode.FLOWS:
        packed = ", packed" if target.pack else ""
        ranges = target.datadog_ranges
        datadog = "" if ranges is None else \
            f", Datadog ranges {ranges.path} ({ranges.prefixes()} prefixes)"
        return f"{target.path} every {target.interval_s:g} s{packed}{datadog}"
    if target.mode is PushMode.RCLONE:
        from pushcap.push.rclone_remote import check_remote

        try:
            check_remote(target.path, config.rclone, probe)
        except ConfigError as exc:
            raise ConfigError(f'target {target.index} "{target.desc}": Path: {exc}') from exc
    prefix = series_prefix(target, names[0] if len(names) == 1 else "<iface>", len(names) > 1)
    return make_shipper(target, prefix, config.rclone).describe()


def cmd_check(args) -> int:
    from pushcap.config.model import PushMode
    from pushcap.config.pcapdaemon import check_local_dir
    from pushcap.supervisor.consumers import interfaces_of

    _imported()
    config, push = _load(args)
    targets = push.targets
    check_local_dir(config.trigger, config.source_file)  # reads the disk, creates nothing
    _check_devices(config)
    rows = [("#", "Desc", "Mode", "Interfaces", "Destination", "Split", "FileName", "FilterBPF")]
    for t in targets:
        names = interfaces_of(t, config)
        flows = t.mode is PushMode.FLOWS
        rows.append((str(t.index), t.desc, t.mode.value, ",".join(names),
                     _destination(t, config, names, args.probe),
                     "-" if flows else t.split.describe(), "-" if flows else t.naming.describe(),
                     _filter_text(t)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    ifaces = ", ".join(f"{i.name}" + (f" ({'/'.join(i.aliases)})" if i.aliases else "")
                       for i in config.interfaces)
    print(f"\nnode {config.node_name}; interfaces {ifaces}; ring {config.ring.max_seconds:g} s / "
          f"{config.ring.max_bytes} B per interface")
    for notice in (*push.notices, *config.trigger.notices):  # accepted, without a meaning
        print(f"notice: {notice}")
    print(f"OK: {args.lua} ({len(targets)} targets) and {args.config}")
    return 0


def _filter_text(target: TargetConfig) -> str:
    """The FilterBPF column: the filter, and whether it sees decapsulated packets (Decap)."""
    if target.filter_bpf is None:
        return "(all packets)"
    return f"{target.filter_bpf} (decapsulated)" if target.decap else target.filter_bpf


def _check_devices(config) -> None:
    """`run` cannot start without each interface: say so now, with what there is instead."""
    from pushcap.capture.live import capture_devices
    from pushcap.config.model import ConfigError

    devices = capture_devices()
    if devices is None:
        return
    missing = [i.name for i in config.interfaces if i.name not in devices]
    if missing:
        raise ConfigError(f"{config.source_file}: [[interface]] {', '.join(missing)}: no such "
                          f"capture device on this host (libpcap has: {', '.join(devices)})")


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


def cmd_run(args) -> int:
    # Imported here: `replay` and `check` need none of the daemon's services (start-up time).
    import logging

    from pushcap.config.model import ConfigError
    from pushcap.config.record import replace
    from pushcap.supervisor import obs
    from pushcap.supervisor.daemon import Daemon
    from pushcap.supervisor.trigger_archives import archive_sources
    from pushcap.trigger.local_dir import prepare_local_dir
    from pushcap.trigger.localredis import LocalRedisService
    from pushcap.trigger.service import TriggerService

    _imported()
    log = logging.getLogger("pushcap.cli")
    config, push = _load(args)
    targets = push.targets
    trigger = config.trigger
    if trigger.refusal:  # `[kafka] listen = true`: loads (check), never runs half-configured
        raise ConfigError(trigger.refusal)
    if args.log_dir:
        config = replace(config, log_dir=args.log_dir)
    obs.setup_logging(args.log_level or config.log_level, config, targets)
    for notice in trigger.notices:
        log.warning("event=config_notice notice=%r", notice)
    daemon = Daemon(config, targets, args.lua, notices=push.notices)  # logs them once
    prepare_local_dir(trigger, config.source_file)  # the default writelocal folder
    daemon.add_service("local_redis", LocalRedisService(trigger.redis))
    # engine.rings is filled by engine.start(), which the daemon runs before services start.
    daemon.add_service("trigger", TriggerService(trigger, daemon.engine.rings, config.interfaces,
                                                 poll_timeout_ms=config.ring.poll_timeout_ms,
                                                 archives=archive_sources(daemon.engine)))
    return daemon.run()


def _batch_packets(text: str) -> int:
    import argparse

    value = int(text)
    if not 1 <= value <= defaults.MAX_BATCH_PACKETS:
        raise argparse.ArgumentTypeError(f"must be 1 to {defaults.MAX_BATCH_PACKETS}, not {value}")
    return value


def version_text() -> str:
    """pushcap's version, the packet path this install runs, and libpcap's version: the three
    facts a bug report about speed or capture needs first."""
    import ctypes

    import pcapy

    from pushcap import __version__
    from pushcap.capture import native

    def libpcap_version(library: ctypes.CDLL) -> str:
        function = library.pcap_lib_version  # found through the library's dependencies
        function.restype = ctypes.c_char_p
        return function().decode()

    capture_pcap = libpcap_version(ctypes.CDLL(pcapy.__file__))
    path = native.packet_path()
    lines = [f"pushcap {__version__}",
             f"packet path: {path}" + (f" ({native.library_path()})" if path == "C" else
                                       " (the C library is not built or is turned off)"),
             f"capture: {capture_pcap} (pcapy-ng {_dist_version('pcapy-ng')})"]
    library = native.native_library()
    if library is not None and (linked := libpcap_version(library)) != capture_pcap:
        lines.append(f"C library linked with: {linked}")
    return "\n".join(lines)


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def _config_args(p: argparse.ArgumentParser, daemon: bool = True) -> None:
    p.add_argument("--lua", default=defaults.PUSH_LUA_PATH, help="push targets (push_realtime.lua)")
    if daemon:
        p.add_argument("--config", default=defaults.CONFIG_PATH, help="daemon config (TOML)")


def _add_run(sub) -> None:
    p = sub.add_parser("run", help="capture the configured interfaces and push rolling files")
    _config_args(p)
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-dir", help="also write push_<Desc>.log per target here "
                   "(overrides [general] logdir)")
    from pushcap.config.pcapdaemon_flags import add_pcapdaemon_flags

    add_pcapdaemon_flags(p)
    p.set_defaults(func=cmd_run)


def _add_trigger(sub) -> None:
    from pushcap.trigger.command import add_trigger_parser

    add_trigger_parser(sub)


def _add_flows(sub) -> None:
    from pushcap.supervisor.flows_command import add_flows_parser

    add_flows_parser(sub)


def _add_status(sub) -> None:
    from pushcap.supervisor.status_command import cmd_status

    p = sub.add_parser("status", help="show what the running daemon is doing; exit 0 when "
                       "healthy, 1 when an interface or target is failing, 2 without a daemon")
    p.add_argument("--config", default=defaults.CONFIG_PATH, help="daemon config (TOML)")
    p.add_argument("--json", action="store_true", help="the same figures as JSON")
    p.set_defaults(func=cmd_status)


def _add_reload(sub) -> None:
    from pushcap.supervisor.status_command import cmd_reload

    p = sub.add_parser("reload", help="make the running daemon re-read its Lua targets")
    p.add_argument("--config", default=defaults.CONFIG_PATH, help="daemon config (TOML)")
    p.set_defaults(func=cmd_reload)


def _add_check(sub) -> None:
    p = sub.add_parser("check", help="validate the configuration and show the targets")
    _config_args(p)
    p.add_argument("--probe", action="store_true",
                   help="also write and delete a probe object on each rclone remote")
    from pushcap.config.pcapdaemon_flags import add_pcapdaemon_flags

    add_pcapdaemon_flags(p)
    p.set_defaults(func=cmd_check)


def _add_replay(sub) -> None:
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


def _add_query(sub) -> None:
    from pushcap.supervisor.query_command import add_query_parser

    add_query_parser(sub)


SUBCOMMANDS = {"run": _add_run, "trigger": _add_trigger, "flows": _add_flows,
               "status": _add_status, "reload": _add_reload, "check": _add_check,
               "replay": _add_replay, "query": _add_query}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The `pushcap` parser; with `only`, just that subcommand's (what a command line naming it
    needs: building the others' options and importing their modules is start-up time)."""
    import argparse

    def help_formatter(prog: str) -> argparse.HelpFormatter:
        """argparse's formatter with a width given: without one it imports shutil (and bz2,
        lzma) to ask the terminal, for every argument added, when only `--help` prints."""
        return argparse.HelpFormatter(prog, width=int(os.environ.get("COLUMNS", "100")) - 2)

    class Parser(argparse.ArgumentParser):
        """An ArgumentParser with that formatter, for the subcommands too."""

        def __init__(self, *args, **kwargs) -> None:
            kwargs.setdefault("formatter_class", help_formatter)
            super().__init__(*args, **kwargs)

    class VersionAction(argparse.Action):
        """`--version`, computed only when asked (it loads libpcap and the C library)."""

        def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                     help="show the version, the packet path (C or numpy) and libpcap's version"):
            super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

        def __call__(self, parser, namespace, values, option_string=None):
            print(version_text())
            parser.exit()

    parser = Parser(prog="pushcap", description=__doc__)
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, add in SUBCOMMANDS.items():
        if only is None or name == only:
            add(sub)
    return parser


_REPLAY_VALUES = {"--lua": "lua", "--config": "config", "--batch-packets": "batch_packets"}


def _plain_replay_args(words: list[str]) -> SimpleNamespace | None:
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


def _parsed_args(words: list[str]) -> argparse.Namespace:
    """The command line as argparse reads it (exits with its message on an error)."""
    only = words[0] if words and words[0] in SUBCOMMANDS else None
    parser = build_parser(only)
    args = parser.parse_args(words)
    for name, value in vars(args).items():
        # Python 3.11's argparse turns `--opt=--` into [] (any type, append: [[]]), not a value
        if isinstance(value, list) and (value == [] or [] in value):
            parser.error(f"--{name.removeprefix('pd_')}: `=--` is no value; write the value")
    return args


_frozen = []  # gc.freeze() done: once per process (tests call main() again and again)


def _imported() -> None:
    """A command's imports are done (cmd_* call it): freeze what they made, collect again."""
    if not _frozen:
        gc.freeze()
        _frozen.append(True)
    gc.enable()


def _expected(exc: BaseException) -> bool:
    """A ConfigError or SourceError: an error a command expects, whose message says what to
    fix. Their modules are not imported for this: an exception of theirs means they were."""
    model = sys.modules.get("pushcap.config.model")
    source = sys.modules.get("pushcap.capture.source")
    return (model is not None and isinstance(exc, model.ConfigError)) or \
        (source is not None and isinstance(exc, source.SourceError))


def main(argv: list[str] | None = None) -> int:
    """Every command ends in one line and an exit code, never a traceback: the errors a command
    expects say what to fix; anything else is named as a bug (PUSHCAP_DEBUG=1 shows its
    traceback)."""
    words = sys.argv[1:] if argv is None else argv
    args = _plain_replay_args(words) if words[:1] == ["replay"] else None
    if args is None:
        args = _parsed_args(words)
    gc.disable()  # until the command's imports are done: `_imported`
    try:
        from pushcap.supervisor import obs

        obs.setup_logging("info")
        if args.func not in _OWN_COMMANDS:  # a command of another module: no _imported() call
            _imported()
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that turns the rest into a line
        from pushcap.config.text import one_line

        if _expected(exc):
            print(f"pushcap: error: {one_line(str(exc))}", file=sys.stderr)
            return 1
        if os.environ.get("PUSHCAP_DEBUG"):
            raise
        print(f"pushcap: error: {args.command}: {type(exc).__name__}: {one_line(str(exc))} "
              "(unexpected; PUSHCAP_DEBUG=1 shows where)", file=sys.stderr)
        return 1
    finally:
        gc.enable()  # also when a command failed before its imports were done


_OWN_COMMANDS = frozenset((cmd_run, cmd_check, cmd_replay))


def entry() -> None:
    """The `pushcap` command. `replay` leaves with os._exit once its output is flushed: by then
    every file is closed and published and only daemon threads remain, so tearing down numpy and
    the other modules (~15 ms of CPU, a tenth of a short replay's start-up) cleans nothing."""
    code = main()
    if sys.argv[1:2] == ["replay"]:
        logging = sys.modules.get("logging")
        if logging is not None:
            logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
