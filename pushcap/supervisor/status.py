"""The daemon's loopback HTTP endpoint: `/` (the status page), `/status` (JSON), `/metrics`
(Prometheus), `/reload`, `/query` (`pushcap query` served from memory: query_server.py).

One small server answers `pushcap status`, `pushcap reload` and a Prometheus scrape. Figures are
read from the engine when asked, never counted per packet for this. It listens on loopback by
default; `/reload` only re-reads the daemon's own config files, so it carries no input.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pushcap.capture.consumer import newest_error
from pushcap.supervisor.engine import EngineView
from pushcap.supervisor.target_counters import consumer_status, counters

log = logging.getLogger("pushcap.supervisor.status")

SERVE_POLL_S = 60.0  # how often the idle server looks at its stop flag (shutdown pokes it)
SHUTDOWN_WAIT_S = 5.0
SHUTDOWN_POKE_TIMEOUT_S = 0.5
SHUTDOWN_POKE_GAP_S = 0.05


def engine_status(view: EngineView, extras: dict[str, Callable[[], dict]]) -> dict:
    """A JSON-ready snapshot of what the daemon is doing, from the engine's view (a copy taken
    at once: the push threads change their consumers while this runs on the HTTP thread)."""
    interfaces = {}
    for name, ring in view.rings.items():
        packets, nbytes, span_ns = ring.span()
        cap = view.capture_stats[name]
        interfaces[name] = {
            "packets_captured": ring.packets_total, "kernel_drops": cap.kernel_drops,
            "if_drops": cap.if_drops, "push_missed_packets": cap.missed_by_push,
            "lost_at_failure": cap.lost_at_failure,
            "ring_packets": packets, "ring_bytes": nbytes, "ring_seconds": span_ns / 1e9,
            "ring_max_bytes": ring.max_bytes, "capturing": int(cap.error is None),
            "reopens": cap.reopens,
        }
        if cap.error is not None:
            interfaces[name]["capture_error"] = cap.error
    targets = []
    for name, consumers in view.consumers.items():
        by_desc: dict[str, list] = {}  # a changed target waiting for its file end has two
        for consumer in consumers:
            by_desc.setdefault(consumer.target.desc, []).append(consumer)
        for desc, group in by_desc.items():
            newest = group[-1]
            entry = {"desc": desc, "mode": newest.target.mode.value, "interface": name,
                     **consumer_status(newest)}
            earlier = view.retired.totals(name, desc)
            for consumer in group[:-1]:
                earlier.update(counters(consumer))
            for key, value in earlier.items():
                entry[key] = entry.get(key, 0) + value
            missed = view.missed.get((name, desc), 0)  # evicted before this target read them
            entry["missed_packets"] = missed
            entry["lost_packets"] = entry.get("lost_packets", 0) + missed
            entry.update(newest_error(entry, newest))  # with when it last happened
            targets.append(entry)
    status = {"time": time.time(), "node": view.node, "reloads": view.reloads,
              "interfaces": interfaces, "targets": targets, "problems": problems(interfaces,
                                                                                 targets)}
    for key, snapshot in extras.items():
        status[key] = snapshot()
    return status


def problems(interfaces: dict, targets: list[dict]) -> list[str]:
    """Why the daemon is not healthy, one line each; empty when every interface captures and
    no target is failing (what `pushcap status` turns into its exit code)."""
    found = [f"interface {name} is not capturing: {i.get('capture_error', '?')}"
             for name, i in interfaces.items() if not i["capturing"]]
    found += [f"target {t['desc']} ({t['interface']}) is failing: {t.get('last_error') or '?'}"
              for t in targets if t.get("failing")]
    return found


class _Handler(BaseHTTPRequestHandler):
    server: StatusServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.partition("?")[0] in ("/", "/index.html"):  # the page's own ?refresh=
            from pushcap.supervisor.status_page import page

            body, headers = page()
            self._send(200, "text/html; charset=utf-8", body, headers)
        elif self.path == "/status":
            self._send(200, "application/json", json.dumps(self.server.snapshot()).encode())
        elif self.path == "/metrics":
            from pushcap.supervisor.metrics import render_metrics

            body, content_type = render_metrics(self.server.snapshot())
            self._send(200, content_type, body)
        else:
            self._send(404, "text/plain", b"not found: try /, /status or /metrics\n")

    def do_POST(self) -> None:  # noqa: N802
        if self.path == "/query" and self.server.query is not None:
            self.server.query(self)  # query_server.py: streams the pcap back
            return
        if self.path != "/reload":
            self._send(404, "text/plain", b"not found\n")
            return
        ok, message = self.server.reload()
        self._send(200 if ok else 409, "application/json",
                   json.dumps({"ok": ok, "message": message}).encode())

    def _send(self, code: int, content_type: str, body: bytes,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args) -> None:
        log.debug("event=http_request %s", fmt % args)


class StatusServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, snapshot: Callable[[], dict],
                 reload: Callable[[], tuple[bool, str]],
                 query: Callable[[BaseHTTPRequestHandler], None] | None = None) -> None:
        """`query`: answers `POST /query` (query_server.QueryService.handle), if given."""
        super().__init__((host, port), _Handler)
        self._serving = False
        self.snapshot = snapshot
        self.reload = reload
        self.query = query

    def start(self) -> None:
        self._serving = True
        threading.Thread(target=self.serve_forever, name="status-http", daemon=True,
                         kwargs={"poll_interval": SERVE_POLL_S}).start()
        log.info("event=status_listen address=http://%s:%d", *self.server_address[:2])

    def shutdown(self) -> None:
        """Stop serving at once. serve_forever looks at its stop flag only when a connection
        comes or SERVE_POLL_S passes (the default 0.5 s woke an idle daemon twice a second,
        issue 19), so connections are made to it until it has stopped. Not started, or
        stopped already: nothing to do (BaseServer.shutdown would wait for a loop that never
        runs)."""
        if not self._serving:
            return
        self._serving = False
        stopping = threading.Thread(target=super().shutdown, name="status-http-stop",
                                    daemon=True)
        stopping.start()
        host, port = self.server_address[:2]
        deadline = time.monotonic() + SHUTDOWN_WAIT_S
        while stopping.is_alive() and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                socket.create_connection((host, port), timeout=SHUTDOWN_POKE_TIMEOUT_S).close()
            stopping.join(SHUTDOWN_POKE_GAP_S)
