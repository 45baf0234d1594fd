"""pcapdaemon's command-line flags (see pcapdaemon.py; the defaults are in defaults.py).

Kept apart from pcapdaemon.py so that building the `pushcap` parser, which every command does
(`replay` too, whose start-up time is measured), needs neither its dataclasses nor its parsing.
"""

from __future__ import annotations

import argparse

from pushcap import defaults


def _go_bool(text: str) -> bool:
    """Go's flag package accepts `-upload`, `-upload=true`, `-upload=false`, 1/0, t/f."""
    value = text.strip().lower()
    if value in {"1", "t", "true"}:
        return True
    if value in {"0", "f", "false"}:
        return False
    # the value is not echoed: a token typed after `-upload` (`-upload TOKEN`) would be
    raise argparse.ArgumentTypeError("not a boolean: use true or false (also 1/0, t/f)")


def _scheme(text: str) -> str:
    """http or https; "" is Go's unset string, so the file's scheme stays (pcapdaemon's rule)."""
    if text not in ("http", "https", ""):
        raise argparse.ArgumentTypeError("use http or https")
    return text


def add_pcapdaemon_flags(parser: argparse.ArgumentParser, config_flag: bool = True) -> None:
    """pcapdaemon's Go-style flags (`-cshost x`, `-cshost=x`; `--cshost` works too).

    Every flag defaults to None so that "not given" can be told from "given": only given flags
    override the file. As in pcapdaemon (Go), a number flag of 0 and a string flag of "" are
    "not given" too (`pcapdaemon.pcapdaemon_flags`). `-config` is another spelling of
    `--config` (same dest). Every flag of pcapdaemon's main.go is here, `-panic` too, which has
    no meaning in pushcap: accepted, and noted once (by `check` and at start).
    """
    group = parser.add_argument_group("pcapdaemon flags (override the config file)")

    def flag(name: str, **kwargs) -> None:
        group.add_argument(f"-{name}", f"--{name}", dest=f"pd_{name}", default=None, **kwargs)

    flag("cshost", metavar="HOST", help=f"CloudShark host (default {defaults.CS_HOST})")
    flag("csscheme", type=_scheme, metavar="http|https",
         help=f"CloudShark scheme (default {defaults.CS_SCHEME})")
    flag("cstoken", metavar="TOKEN", help="CloudShark API token")
    flag("csport", type=int, metavar="PORT", help="CloudShark port (default: the scheme's)")
    flag("cstimeout", type=float, metavar="S",
         help=f"CloudShark timeout in seconds (default {defaults.CS_TIMEOUT_S:g})")
    flag("redischannel", metavar="NAME", help=f"Redis channel (default {defaults.REDIS_CHANNEL})")
    flag("redisnode", metavar="HOST",
         help=f"Redis host or rediss:// URL (default {defaults.REDIS_HOST})")
    flag("redisport", type=int, metavar="PORT", help=f"Redis port (default {defaults.REDIS_PORT})")
    flag("upload", type=_go_bool, nargs="?", const=True, metavar="BOOL",
         help="upload captures to CloudShark")
    flag("writelocal", type=_go_bool, nargs="?", const=True, metavar="BOOL",
         help="write captures into -destdir")
    flag("destdir", metavar="DIR",
         help=f"folder for -writelocal (default {defaults.TRIGGER_LOCAL_DIR})")
    flag("maxpackets", type=int, metavar="N",
         help=f"packets per capture at most ({defaults.TRIGGER_MAX_PACKETS})")
    flag("panic", type=_go_bool, nargs="?", const=True, metavar="BOOL",
         help="pcapdaemon's panic on packet-layer parse errors: accepted, no meaning in pushcap")
    if config_flag:
        group.add_argument("-config", dest="config", default=argparse.SUPPRESS, metavar="FILE",
                           help="same as --config")
