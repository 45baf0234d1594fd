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

    from pushcap.config.model import DaemonConfig, PushConfig

# Start-up time matters (`replay` is benchmarked against tcpdump, whole runs included, issue
# 15): this package imports nothing at the top but what every command needs. Each command is a
# module of its own (run.py, check.py, replay.py), imported with what it uses only when its
# command line names it (`replay`: the Lua loader, the replay and the push targets; never
# argparse for a plain replay command line, replay.py's `plain_replay_args`), and a command line
# builds only its subcommand's parser (supervisor/flows_command.py and trigger/command.py are
# imported only for their own commands; version.py only for `--version`).
#
# Importing numpy and the rest allocates ~100k objects, and the cyclic garbage collector, run
# again and again over them while they are created, took ~15% of start-up (perf). Nothing made
# during imports is garbage: main() collects nothing until a command's imports are done
# (`_imported`), which then freezes what they made so later collections (in a daemon running
# for months, too) never walk it again.


def _load(args) -> tuple[DaemonConfig, PushConfig]:
    """`run` and `check` load the configuration the same way, so `check` vouches for `run`."""
    from pushcap.config.lua import load_push_config
    from pushcap.config.toml import load_daemon_config

    config = load_daemon_config(args.config, args)  # pcapdaemon's flags override the file
    return config, load_push_config(args.lua, config.interface_names())  # checks Interfaces


def _config_args(p: argparse.ArgumentParser, daemon: bool = True) -> None:
    p.add_argument("--lua", default=defaults.PUSH_LUA_PATH, help="push targets (push_realtime.lua)")
    if daemon:
        p.add_argument("--config", default=defaults.CONFIG_PATH, help="daemon config (TOML)")


def _add_run(sub) -> None:
    from pushcap.cli.run import add_run_parser

    add_run_parser(sub)


def _add_trigger(sub) -> None:
    from pushcap.trigger.command import add_trigger_parser

    add_trigger_parser(sub)


def _add_flows(sub) -> None:
    from pushcap.supervisor.flows_command import add_flows_parser

    add_flows_parser(sub)


DAEMON_ADDRESS_HELP = (f"daemon config (TOML) whose [status] says where the daemon answers; "
                       f"default {defaults.CONFIG_PATH} where it exists, else "
                       f"{defaults.STATUS_HOST}:{defaults.STATUS_PORT}")


def _add_status(sub) -> None:
    from pushcap.supervisor.status_command import cmd_status

    p = sub.add_parser("status", help="show what the running daemon is doing; exit 0 when "
                       "healthy, 1 when an interface or target is failing, 2 without a daemon")
    p.add_argument("--config", default=None, help=DAEMON_ADDRESS_HELP)
    p.add_argument("--json", action="store_true", help="the same figures as JSON")
    p.set_defaults(func=cmd_status)


def _add_reload(sub) -> None:
    from pushcap.supervisor.status_command import cmd_reload

    p = sub.add_parser("reload", help="make the running daemon re-read its Lua targets")
    p.add_argument("--config", default=None, help=DAEMON_ADDRESS_HELP)
    p.set_defaults(func=cmd_reload)


def _add_check(sub) -> None:
    from pushcap.cli.check import add_check_parser

    add_check_parser(sub)


def _add_replay(sub) -> None:
    from pushcap.cli.replay import add_replay_parser

    add_replay_parser(sub)


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
            from pushcap.cli.version import version_text

            print(version_text())
            parser.exit()

    parser = Parser(prog="pushcap", description=__doc__)
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, add in SUBCOMMANDS.items():
        if only is None or name == only:
            add(sub)
    return parser


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


def _args(words: list[str]) -> argparse.Namespace | SimpleNamespace:
    """A plain `replay` command line without argparse (issue 15); any other through it."""
    if words[:1] == ["replay"]:
        from pushcap.cli.replay import plain_replay_args

        args = plain_replay_args(words)
        if args is not None:
            return args
    return _parsed_args(words)


_frozen = []  # gc.freeze() done: once per process (tests call main() again and again)


def _imported() -> None:
    """A command's imports are done (cmd_* call it): freeze what they made, collect again."""
    if not _frozen:
        gc.freeze()
        _frozen.append(True)
    gc.enable()


# The modules whose commands (cmd_run, cmd_check, cmd_replay) call _imported() themselves, once
# their imports are done; main() calls it for any other command before the command runs.
_OWN_COMMAND_MODULES = frozenset(("pushcap.cli.run", "pushcap.cli.check", "pushcap.cli.replay"))


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
    args = _args(sys.argv[1:] if argv is None else argv)
    gc.disable()  # until the command's imports are done: `_imported`
    try:
        from pushcap.supervisor import obs

        obs.setup_logging("info")
        if args.func.__module__ not in _OWN_COMMAND_MODULES:  # no _imported() call of its own
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
