"""pcapdaemon's command-line flags and the defaults of its settings (see pcapdaemon.py).

Kept apart from pcapdaemon.py so that building the `pushcap` parser, which every command does
(`replay` too, whose start-up time is measured), needs neither its dataclasses nor its parsing.
"""

from __future__ import annotations

import argparse

# Defaults, each with its unit (pcapdaemon's README, the seed's flag help and its validator).
MAX_PACKETS = 50_000
MAX_BYTES = 100_000_000
MAX_TIMEOUT_S = 3600.0
MAX_DURATION_S = 3600.0
DEFAULT_TIMEOUT_S = 60.0
SNAP_LENGTH_BYTES = 512
# -writelocal's folder: below the unit's StateDirectory, so captures outlive the service (its
# PrivateTmp would empty /tmp at every stop); created with mode 0750 when writelocal needs it.
LOCAL_DIR = "/var/lib/pushcap/captures"
FALLBACK_DIR = "out/trigger-fallback"  # pushcap: where a pcap goes when every upload attempt failed
MAX_CONCURRENT = 8  # captures running at once
MAX_QUEUED = 16  # accepted captures waiting for a worker; beyond that a request is refused
REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
REDIS_CHANNEL = "capture"
RESULTS_STREAM_MAX_LEN = 10_000
CS_HOST = "localhost"
CS_SCHEME = "https"
CS_TIMEOUT_S = 15.0  # pcapdaemon's HTTP client timeout
CS_RETRIES = 3  # further attempts after a 5xx answer or a connection error
CS_RETRY_BACKOFF_S = 1.0  # first wait between attempts; doubles each time


def _go_bool(text: str) -> bool:
    """Go's flag package accepts `-upload`, `-upload=true`, `-upload=false`, 1/0, t/f."""
    value = text.strip().lower()
    if value in {"1", "t", "true"}:
        return True
    if value in {"0", "f", "false"}:
        return False
    # the value is not echoed: a token typed after `-upload` (`-upload TOKEN`) would be
    raise argparse.ArgumentTypeError("not a boolean: use true or false (also 1/0, t/f)")


def add_pcapdaemon_flags(parser: argparse.ArgumentParser, config_flag: bool = True) -> None:
    """pcapdaemon's Go-style flags (`-cshost x`, `-cshost=x`; `--cshost` works too).

    Every flag defaults to None so that "not given" can be told from "given": only given flags
    override the file. `-config` is another spelling of `--config` (same dest).
    """
    group = parser.add_argument_group("pcapdaemon flags (override the config file)")

    def flag(name: str, **kwargs) -> None:
        group.add_argument(f"-{name}", f"--{name}", dest=f"pd_{name}", default=None, **kwargs)

    flag("cshost", metavar="HOST", help=f"CloudShark host (default {CS_HOST})")
    flag("csscheme", choices=["http", "https"], help=f"CloudShark scheme (default {CS_SCHEME})")
    flag("cstoken", metavar="TOKEN", help="CloudShark API token")
    flag("csport", type=int, metavar="PORT", help="CloudShark port (default: the scheme's)")
    flag("cstimeout", type=float, metavar="S",
         help=f"CloudShark timeout in seconds (default {CS_TIMEOUT_S:g})")
    flag("redischannel", metavar="NAME", help=f"Redis channel (default {REDIS_CHANNEL})")
    flag("redisnode", metavar="HOST", help=f"Redis host or rediss:// URL (default {REDIS_HOST})")
    flag("redisport", type=int, metavar="PORT", help=f"Redis port (default {REDIS_PORT})")
    flag("upload", type=_go_bool, nargs="?", const=True, metavar="BOOL",
         help="upload captures to CloudShark")
    flag("writelocal", type=_go_bool, nargs="?", const=True, metavar="BOOL",
         help="write captures into -destdir")
    flag("destdir", metavar="DIR", help=f"folder for -writelocal (default {LOCAL_DIR})")
    flag("maxpackets", type=int, metavar="N", help=f"packets per capture at most ({MAX_PACKETS})")
    if config_flag:
        group.add_argument("-config", dest="config", default=argparse.SUPPRESS, metavar="FILE",
                           help="same as --config")
