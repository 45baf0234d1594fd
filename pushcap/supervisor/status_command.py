"""`pushcap status` and `pushcap reload`: clients of the running daemon's loopback endpoint.

Their exit codes are for service managers and monitoring: status exits 0 only when every
interface captures and no target is failing, 1 when something is wrong (the problems are
printed first), 2 when no daemon answers (nothing listens, or what answers is no pushcap).
What they say on stderr is one line each (`one_line`), as every command's error: a file name
or a daemon's answer quoted in it may hold a newline.
"""

from __future__ import annotations

import json
import os
import sys

from pushcap import defaults
from pushcap.config.text import one_line

EXIT_UNHEALTHY = 1
EXIT_NO_DAEMON = 2


def _status_address(args) -> tuple[str, int] | None:
    """The daemon's address from `[status]`; None (said on stderr) when the file cannot give it:
    then no daemon can be asked, which is exit 2, not the daemon's health. Without `--config`,
    the default file where it exists (it is relative: a check run from another folder, as a
    monitoring agent runs it, finds none), else the default address, as `pushcap query` and
    `pushcap trigger` do; a `--config` that cannot be read is an error."""
    from pushcap.config.model import ConfigError
    from pushcap.config.toml import load_status_address

    if args.config is None and not os.path.exists(defaults.CONFIG_PATH):
        return defaults.STATUS_HOST, defaults.STATUS_PORT
    try:
        return load_status_address(args.config or defaults.CONFIG_PATH)
    except ConfigError as exc:
        _say(f"pushcap: error: {exc}")
        return None


def cmd_status(args) -> int:
    """Exit 0 only when every interface captures and no target is failing, 1 otherwise, 2 when
    no daemon answers: what a systemd watchdog or a monitoring check needs."""
    from pushcap.supervisor.status_client import fetch

    address = _status_address(args)
    if address is None:
        return EXIT_NO_DAEMON
    host, port = address
    try:
        code, body = fetch(host, port, "/status")
        status = json.loads(body)
    except (OSError, ValueError) as exc:
        _say(f"pushcap: no daemon answers on http://{host}:{port} ({exc})")
        return EXIT_NO_DAEMON
    if code != 200 or not isinstance(status, dict) or "interfaces" not in status:
        _say(f"pushcap: http://{host}:{port}/status answered {code} without a status: "
             "is that a pushcap daemon?")
        return EXIT_NO_DAEMON
    print(json.dumps(status, indent=2, sort_keys=True) if args.json else render_table(status))
    return EXIT_UNHEALTHY if status.get("problems") else 0


def cmd_reload(args) -> int:
    from pushcap.supervisor.status_client import fetch

    address = _status_address(args)
    if address is None:
        return EXIT_NO_DAEMON
    host, port = address
    try:
        code, body = fetch(host, port, "/reload", method="POST", timeout_s=30)
        answer = json.loads(body)
        if not isinstance(answer, dict) or "ok" not in answer:
            raise ValueError(f"HTTP {code} without a reload answer: is that a pushcap daemon?")
    except (OSError, ValueError) as exc:
        _say(f"pushcap: no daemon answers on http://{host}:{port} ({exc})")
        return EXIT_NO_DAEMON
    print(("reloaded: " if answer["ok"] else "refused: ") + one_line(str(answer["message"])))
    return 0 if code == 200 else 1


def _say(message: str) -> None:
    print(one_line(message), file=sys.stderr)


def render_table(status: dict) -> str:
    """The human view of /status, one table per part."""
    problems_found = status.get("problems", [])
    lines = [f"node {status['node']}  reloads {status['reloads']}  health "
             + ("OK" if not problems_found else "FAILING"),
             *(f"  ! {line}" for line in problems_found), "", "interfaces"]
    rows = [("name", "captured", "kernel_drops", "if_drops", "push_missed", "ring_s", "ring_MB",
             "capture_error")]
    for name, i in status["interfaces"].items():
        rows.append((name, i["packets_captured"], i["kernel_drops"], i["if_drops"],
                     i["push_missed_packets"], f"{i['ring_seconds']:.1f}",
                     f"{i['ring_bytes'] / 1e6:.1f}", _or_dash(i.get("capture_error"))))
    lines += _table(rows)
    lines += ["", "targets"]
    rows = [("desc", "mode", "iface", "packets", "files", "bytes", "pending", "last_error",
             "current_file")]
    for t in status["targets"]:
        rows.append((t["desc"], t["mode"], t["interface"], t.get("packets", 0),
                     t.get("files", 0), t.get("bytes", 0), _or_dash(t.get("files_pending")),
                     _error_with_age(t), t.get("current_file") or "-"))
    lines += _table(rows)
    for key in sorted(set(status) - {"time", "node", "reloads", "interfaces", "targets",
                                     "problems"}):
        part = status[key]
        if not isinstance(part, dict):
            lines += ["", key, "  " + json.dumps(part, sort_keys=True)]
            continue
        flat = sorted(name for name, v in part.items() if not isinstance(v, dict | list))
        lines += ["", key, *(_table([(name, part[name]) for name in flat]) if flat else [])]
        for name in sorted(set(part) - set(flat)):  # nested figures: as JSON, which says what
            items = part[name] if isinstance(part[name], list) else [part[name]]  # nests in what
            lines += [f"  {name}", *(f"    {json.dumps(v, sort_keys=True)}" for v in items)]
    return "\n".join(lines)


def _error_with_age(target: dict) -> str:
    """The last error, and how long ago it was where known: an upload error stays in status
    after the remote recovered, and without its age it reads as a live failure."""
    error = target.get("last_error")
    if not error:
        return "-"
    age = target.get("last_error_age_s")
    return f"({age:.0f} s ago) {error}" if isinstance(age, int | float) else error


def _or_dash(value) -> object:
    """A missing or unknown count (a File target has no spool; a spool that cannot be listed)."""
    return "-" if value is None else value


def _table(rows: list[tuple]) -> list[str]:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in cells]
