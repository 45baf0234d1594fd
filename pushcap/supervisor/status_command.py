"""`pushcap status` and `pushcap reload`: clients of the running daemon's loopback endpoint.

Their exit codes are for service managers and monitoring: status exits 0 only when every
interface captures and no target is failing, 1 when something is wrong (the problems are
printed first), 2 when no daemon answers (nothing listens, or what answers is no pushcap).
What they say on stderr is one line each (`one_line`), as every command's error: a file name
or a daemon's answer quoted in it may hold a newline.
"""

from __future__ import annotations

import json
import sys

from pushcap.config.text import one_line

EXIT_UNHEALTHY = 1
EXIT_NO_DAEMON = 2


def _status_address(args) -> tuple[str, int] | None:
    """The daemon's address from `[status]`; None (said on stderr) when the file cannot give it:
    then no daemon can be asked, which is exit 2, not the daemon's health."""
    from pushcap.config.model import ConfigError
    from pushcap.config.toml import load_status_address

    try:
        return load_status_address(args.config)
    except ConfigError as exc:
        _say(f"pushcap: error: {exc}")
        return None


def cmd_status(args) -> int:
    """Exit 0 only when every interface captures and no target is failing, 1 otherwise, 2 when
    no daemon answers: what a systemd watchdog or a monitoring check needs."""
    from pushcap.supervisor.status import fetch, render_table

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

    from pushcap.supervisor.status import fetch

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
