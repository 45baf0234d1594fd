"""The loopback collector and target config both flows test files drive, kept in one place."""

from __future__ import annotations

import json
import socket
import threading
import time

from pushcap.config.model import NamingRule, PushMode, SplitKind, SplitRule, TargetConfig

NS = 1_000_000_000


class Collector:
    """A UDP listener on loopback that reads in its own thread into a list of datagrams."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:  # root may exceed rmem_max: a replay sends thousands of records at once
            self.sock.setsockopt(socket.SOL_SOCKET, 33, 32 * 1024 * 1024)  # SO_RCVBUFFORCE
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.url = f"udp://127.0.0.1:{self.port}"
        self.datagrams: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.datagrams.append(self.sock.recv(65536))
            except TimeoutError:
                continue

    def records(self) -> list[dict]:
        out = []
        for d in list(self.datagrams):
            assert d.endswith(b"\n")
            out.extend(json.loads(line) for line in d.decode().splitlines())
        return out

    def wait_for(self, predicate, timeout_s: float) -> list[dict]:
        deadline = time.monotonic() + timeout_s
        while True:
            records = self.records()
            if predicate(records) or time.monotonic() > deadline:
                return records
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def flows_config(url: str, interval_s: float, bpf: str | None = None) -> TargetConfig:
    return TargetConfig(index=1, desc="flows-test", mode=PushMode.FLOWS, path=url,
                        split=SplitRule(SplitKind.TIME, int(interval_s * NS)),
                        naming=NamingRule("--filename-epoch-sec"), filter_bpf=bpf,
                        interval_s=interval_s)
