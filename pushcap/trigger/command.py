"""`pushcap trigger`: publish a capture request from the command line and print the results.

It subscribes to `<channel>:results` before publishing, so no answer can be missed, tags the
request with a fresh `requestid`, and prints every result carrying it until `--wait` seconds
pass (or `--expect` results came). Exit status: 0 when results came and none failed.

Without `--wait`, the wait is what the request itself lets a node take: its capture time, plus
the node's worst case for delivering the file (every CloudShark attempt at its timeout and the
backoffs between them, from `[cloudshark]` in `--config` or pcapdaemon's defaults), plus a margin.
The capture time is where the node ends the window (job.py): the earliest of `end` and the live
start (now, or `start` when ahead) + `duration` or + `timeout`; without any of the three, live
start + `defaulttimeout` from `--config` (or pcapdaemon's). A `duration` or `end` given without
`timeout` is not cut by the default timeout on the node, so not here either. `before` adds
nothing: the lookback is read at once. The wait is printed, so a user whose node is configured
otherwise sees what to change.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pushcap import defaults
from pushcap.config.model import ConfigError
from pushcap.config.text import one_line

# Every `pushcap` command builds this parser: what only `pushcap trigger` runs is imported in the
# functions below (start-up time).
if TYPE_CHECKING:
    from pushcap.config.pcapdaemon import RedisSettings

PASSWORD_ENV = "PUSHCAP_REDIS_PASSWORD"
WAIT_MARGIN_S = defaults.TRIGGER_WAIT_MARGIN_S  # tests import it from here


def add_trigger_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("trigger", help="publish a capture request and print the results")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--node", help='node name to capture on, or "any"')
    where.add_argument("--nodere", help="regular expression searched in node names")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--interface", action="append", help="interface (repeat for several)")
    what.add_argument("--alias", action="append", help="interface alias (repeat for several)")
    p.add_argument("--bpf", help="capture filter")
    p.add_argument("--snap", type=int, help="bytes kept of each packet")
    p.add_argument("--packets", type=int, help="stop after this many packets")
    p.add_argument("--bytes", type=int, help="stop before the file exceeds this size")
    p.add_argument("--timeout", type=float, help="stop this many seconds after the capture "
                   "starts should --packets not be reached first (pcapdaemon's timeout)")
    p.add_argument("--duration", type=float, help="capture this many seconds (the node's "
                   "defaulttimeout then does not apply; --timeout, when given, still does)")
    p.add_argument("--before", type=float, help="seconds of lookback from the ring")
    p.add_argument("--start", type=float, help="window start, epoch seconds")
    p.add_argument("--end", type=float, help="window end, epoch seconds")
    p.add_argument("--tags", help="comma-separated tags")
    p.add_argument("--customer")
    p.add_argument("--alertid", type=int)
    p.add_argument("--logrequest", action="store_true", help="ask nodes to log the request")
    p.add_argument("--config", default=defaults.CONFIG_PATH,
                   help="daemon config for [redis] (optional; flags override it)")
    for name, kwargs in (("redisnode", {"metavar": "HOST"}),
                         ("redisport", {"type": int, "metavar": "PORT"}),
                         ("redischannel", {"metavar": "NAME"})):
        p.add_argument(f"-{name}", f"--{name}", dest=f"pd_{name}", default=None,
                       help="as pushcap run's flag", **kwargs)
    p.add_argument("--wait", type=float, help="seconds to wait for results (default: the "
                   "request's capture time (the earliest of end, start + duration and start + "
                   "timeout; start is now unless given) + the config's CloudShark timeout x "
                   f"attempts + backoffs + {WAIT_MARGIN_S:g})")
    p.add_argument("--expect", type=int, help="stop once this many results came")
    p.add_argument("--json", action="store_true", help="print results as JSON lines")
    p.set_defaults(func=cmd_trigger)
    return p


def build_message(args: argparse.Namespace) -> dict:
    """The request in pcapdaemon's format (plus pushcap's before/start/end/requestid)."""
    import uuid

    message: dict = {"requestid": uuid.uuid4().hex}
    for key in ("node", "nodere", "interface", "alias", "bpf", "snap", "packets", "bytes",
                "timeout", "duration", "before", "start", "end", "tags", "customer", "alertid"):
        value = getattr(args, key)
        if value is not None:
            message[key] = value
    if args.logrequest:
        message["logrequest"] = True
    return message


def _load_config(path: Path) -> dict:
    """The daemon's TOML as a dict ({} when there is none: flags and defaults apply); the
    sections read here ([general], [redis], [cloudshark]) are tables."""
    if not path.is_file():
        return {}
    import tomllib

    try:
        config = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: is not UTF-8 text (a TOML file was expected)") from None
    except RecursionError:
        raise ConfigError(f"{path}: values nested too deeply") from None
    for name in ("general", "redis", "cloudshark"):
        if not isinstance(config.get(name, {}), dict):
            raise ConfigError(f"{path}: [{name}] must be a table")
    return config


def _settings(args: argparse.Namespace, config: dict) -> RedisSettings:
    from pushcap.config.pcapdaemon import redis_settings

    path = Path(args.config)
    settings = redis_settings(config.get("redis", {}), args, path.name)
    if settings.password is None and os.environ.get(PASSWORD_ENV):
        from dataclasses import replace

        settings = replace(settings, password=os.environ[PASSWORD_ENV])
    return settings


def wait_s(args: argparse.Namespace, config: dict, now_s: float | None = None
           ) -> tuple[float, str]:
    """Seconds to wait for results, and how they were reckoned (printed for the user)."""
    if args.wait is not None:
        return args.wait, "--wait"
    capture_s, how = capture_s_of(args, config, time.time() if now_s is None else now_s)
    upload_s = upload_allowance_s(config.get("cloudshark", {}))
    return (capture_s + upload_s + WAIT_MARGIN_S,
            f"{how} {capture_s:g} s + upload {upload_s:g} s + margin {WAIT_MARGIN_S:g} s")


def capture_s_of(args: argparse.Namespace, config: dict, now_s: float) -> tuple[float, str]:
    """The longest the request lets a capture last, as the node reckons its window's end
    (job.py): the earliest of `end`, lead + `duration` and lead + `timeout`, the default timeout
    only when the request gives none of the three; 0 means "not given", as on the node."""
    lead_s = max(0.0, args.start - now_s) if args.start is not None else 0.0
    ends: list[tuple[float, str]] = []
    if args.end is not None:
        ends.append((max(0.0, args.end - now_s), "until end"))
    if args.duration:
        ends.append((lead_s + args.duration, "duration"))
    if args.timeout:
        ends.append((lead_s + args.timeout, "timeout"))
    if ends:
        return min(ends)
    timeout_s = _seconds(config.get("general", {}).get("defaulttimeout"))
    if not timeout_s:  # absent, or 0: "not given", as the daemon reads its file
        timeout_s = defaults.TRIGGER_TIMEOUT_S
    return lead_s + timeout_s, "defaulttimeout"


def upload_allowance_s(section: dict) -> float:
    """The node's worst case for one delivery: every CloudShark attempt at its timeout, plus
    the backoffs between attempts (doubling, capped as cloudshark.py caps them). None unless
    the file turns uploads on: the daemon's default is off (a 2 s capture waited 74 s for an
    upload no node made); a node uploading through its `-upload` flag alone needs `--wait`."""
    if section.get("upload") is not True:
        return 0.0  # a local file only: the margin covers it
    timeout_s = _seconds(section.get("timeout")) or defaults.CS_TIMEOUT_S
    retries = section.get("retries", defaults.CS_RETRIES)
    retries = retries if isinstance(retries, int) and 0 <= retries <= 20 else defaults.CS_RETRIES
    backoff_s = _seconds(section.get("retrybackoff"))
    backoff_s = defaults.CS_RETRY_BACKOFF_S if backoff_s is None else backoff_s
    waits_s = sum(min(backoff_s * 2**i, defaults.CS_MAX_BACKOFF_S) for i in range(retries))
    return (retries + 1) * timeout_s + waits_s


def _seconds(value: object) -> float | None:
    """A config number of seconds, or a Go duration ("90s", "1m30s"); None if neither, or if
    it is out of the range the daemon accepts (the daemon then refuses its file anyway)."""
    from pushcap.config.toml_section import MAX_SECONDS, go_duration_s

    if isinstance(value, str):
        value = go_duration_s(value)
    if isinstance(value, int | float) and not isinstance(value, bool) \
            and 0 <= value <= MAX_SECONDS:
        return float(value)
    return None


def cmd_trigger(args: argparse.Namespace) -> int:
    import redis  # here, not at the top: every `pushcap` command builds this parser

    config = _load_config(Path(args.config))
    settings = _settings(args, config)
    message = build_message(args)
    client = redis.Redis(**settings.client_kwargs(), socket_timeout=10)
    results: list[dict] = []
    try:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(settings.results_channel)
        receivers = client.publish(settings.channel, json.dumps(message))
        print(f"published requestid={message['requestid']} to {settings.describe()} "
              f"({receivers} listening)", file=sys.stderr)
        if receivers == 0:
            print("pushcap: warning: no node is subscribed to the channel", file=sys.stderr)
        wait, how = wait_s(args, config)
        print(f"waiting up to {wait:g} s for results ({how}; --expect N ends the wait once N "
              "came)", file=sys.stderr)
        _collect(pubsub, message["requestid"], wait, args.expect, args.json, results)
        pubsub.close()
    except redis.RedisError as exc:  # refused, or lost while waiting (its server stopped)
        got = f" after {len(results)} result(s)" if results else ""
        print(one_line(f"pushcap: error: redis {settings.describe()}: {exc}{got}"),
              file=sys.stderr)
        return 1
    finally:
        client.close()
    if not results:
        print(f"no results within {wait:g} s (give --wait to wait longer)", file=sys.stderr)
        return 1
    return 0 if all(r.get("status") in ("ok", "empty") for r in results) else 1


def _collect(pubsub, request_id: str, wait_s: float, expect: int | None,
             as_json: bool, results: list[dict]) -> None:
    """Print each result for `request_id` as it comes, into `results` (kept if Redis is lost)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and (expect is None or len(results) < expect):
        msg = pubsub.get_message(timeout=min(0.5, max(0.01, deadline - time.monotonic())))
        if not msg or msg.get("type") != "message":
            continue
        try:
            record = json.loads(msg["data"])
        except ValueError:
            continue
        if not isinstance(record, dict) or record.get("requestid") != request_id:
            continue
        results.append(record)
        print(json.dumps(record, sort_keys=True) if as_json else format_result(record),
              flush=True)


def format_result(record: dict) -> str:
    keys = ("node", "status", "interface", "alias", "packets", "bytes", "reason",
            "cloudshark_url", "path", "field", "error")
    return " ".join(f"{k}={record[k]}" for k in keys if record.get(k) is not None)
