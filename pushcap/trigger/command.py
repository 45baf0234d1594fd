"""`pushcap trigger`: publish a capture request from the command line and print the results.

It subscribes to `<channel>:results` before publishing, so no answer can be missed, tags the
request with a fresh `requestid`, and prints every result carrying it until `--wait` seconds
pass (or `--expect` results came). Exit status: 0 when results came and none failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pushcap.config.model import ConfigError

# Every `pushcap` command builds this parser: what only `pushcap trigger` runs is imported in the
# functions below (start-up time).
if TYPE_CHECKING:
    from pushcap.config.pcapdaemon import RedisSettings

PASSWORD_ENV = "PUSHCAP_REDIS_PASSWORD"
WAIT_MARGIN_S = 15.0  # beyond the capture's own limits: delivery and upload retries
DEFAULT_CONFIG = "etc/pcapdaemon.toml"


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
    p.add_argument("--timeout", type=float, help="stop after this many seconds without a packet")
    p.add_argument("--duration", type=float, help="stop after this many seconds in any case")
    p.add_argument("--before", type=float, help="seconds of lookback from the ring")
    p.add_argument("--start", type=float, help="window start, epoch seconds")
    p.add_argument("--end", type=float, help="window end, epoch seconds")
    p.add_argument("--tags", help="comma-separated tags")
    p.add_argument("--customer")
    p.add_argument("--alertid", type=int)
    p.add_argument("--logrequest", action="store_true", help="ask nodes to log the request")
    p.add_argument("--config", default=DEFAULT_CONFIG,
                   help="daemon config for [redis] (optional; flags override it)")
    for name, kwargs in (("redisnode", {"metavar": "HOST"}),
                         ("redisport", {"type": int, "metavar": "PORT"}),
                         ("redischannel", {"metavar": "NAME"})):
        p.add_argument(f"-{name}", f"--{name}", dest=f"pd_{name}", default=None,
                       help="as pushcap run's flag", **kwargs)
    p.add_argument("--wait", type=float, help="seconds to wait for results "
                   f"(default: the capture's limits plus {WAIT_MARGIN_S:g})")
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


def _settings(args: argparse.Namespace) -> RedisSettings:
    from pushcap.config.pcapdaemon import redis_settings

    section: dict = {}
    path = Path(args.config)
    if path.is_file():
        import tomllib

        try:
            section = tomllib.loads(path.read_text()).get("redis", {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    settings = redis_settings(section, args, path.name)
    if settings.password is None and os.environ.get(PASSWORD_ENV):
        from dataclasses import replace

        settings = replace(settings, password=os.environ[PASSWORD_ENV])
    return settings


def _wait_s(args: argparse.Namespace) -> float:
    if args.wait is not None:
        return args.wait
    if args.end is not None:
        return max(0.0, args.end - time.time()) + WAIT_MARGIN_S
    if args.duration is not None:
        return args.duration + WAIT_MARGIN_S
    return (args.timeout or 60.0) + WAIT_MARGIN_S


def cmd_trigger(args: argparse.Namespace) -> int:
    import redis  # here, not at the top: every `pushcap` command builds this parser

    settings = _settings(args)
    message = build_message(args)
    client = redis.Redis(**settings.client_kwargs(), socket_timeout=10)
    try:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(settings.results_channel)
        receivers = client.publish(settings.channel, json.dumps(message))
    except redis.RedisError as exc:
        print(f"pushcap: error: redis {settings.describe()}: {exc}", file=sys.stderr)
        return 1
    print(f"published requestid={message['requestid']} to {settings.describe()} "
          f"({receivers} listening)", file=sys.stderr)
    if receivers == 0:
        print("pushcap: warning: no node is subscribed to the channel", file=sys.stderr)
    results = _collect(pubsub, message["requestid"], _wait_s(args), args.expect, args.json)
    pubsub.close()
    client.close()
    if not results:
        print("no results", file=sys.stderr)
        return 1
    return 0 if all(r.get("status") in ("ok", "empty") for r in results) else 1


def _collect(pubsub, request_id: str, wait_s: float, expect: int | None,
             as_json: bool) -> list[dict]:
    results: list[dict] = []
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
    return results


def format_result(record: dict) -> str:
    keys = ("node", "status", "interface", "alias", "packets", "bytes", "reason",
            "cloudshark_url", "path", "field", "error")
    return " ".join(f"{k}={record[k]}" for k in keys if record.get(k) is not None)
