"""The status page in a real browser: what an operator sees while the daemon captures.

The real daemon captures `lo` while UDP traffic flows, with three push targets (one writing, one
whose Path runs through a regular file, one whose uploads fail) and triggers served through a
real Redis and the CloudShark receiver. Debian's Chromium, headless and driven by Playwright,
opens the page and the test reads it as a person would: the interface with a non-zero rate, each
target's state, the failing ones shown failing, the last triggers with their link. User text
with markup in it (a file name, a filter) must appear as text and run nothing.
A screenshot is kept: under the test's tmp_path and in out/test-artifacts/status-page.png.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis
from service_harness import Daemon, free_port
from waiting import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ARTIFACT = REPO / "out" / "test-artifacts" / "status-page.png"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]  # --headless: Playwright's; --user-data-dir: a fresh one
TOKEN = "page-token"
NODE = "pagetest"
CHANNEL = "capture-page"
# A regular file where the failing targets need a folder; its name is markup that would run if
# the page ever turned data into HTML.
BLOCKER = "<img src=x onerror=document.title='pwned'>"
BAD_FILTER = "<script>document.title='pwned'</script>"


def chromium_or_skip():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("Debian's chromium is not installed (`make test` installs it: "
                    "apt-get install chromium); the status page cannot be checked in a browser")
    return pytest.importorskip("playwright.sync_api",
                               reason="playwright is not installed (pip install -e '.[test]')")


class RedisServer:
    """A throw-away redis-server on a free loopback port."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(self.port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis(port=self.port, socket_timeout=5)
        wait_until(self._answers, 10, "redis-server to answer")

    def _answers(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Traffic:
    """UDP datagrams to one loopback port, about a thousand a second, until stopped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sent = 0
            while not self._stop.is_set():
                sock.sendto(b"page%08d" % sent, ("127.0.0.1", self.port))
                sent += 1
                time.sleep(0.001)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def targets_lua(tmp: Path, port: int) -> str:
    blocked = tmp / BLOCKER
    bpf = f"udp and dst port {port}"
    return f"""
return {{ Target = {{
  {{ Desc = "seq", Mode = "File", Path = "{tmp}/out/seq", FilterBPF = "{bpf}" }},
  {{ Desc = "bad", Mode = "File", Path = "{blocked}/bad", FilterBPF = "{bpf}" }},
  {{ Desc = "up", Mode = "rclone", Path = ":local:{blocked}/remote/up",
     Split = "--split-byte 3000", FilterBPF = "{bpf}" }},
}} }}
"""


def daemon_toml(tmp: Path, redis_port: int, cloudshark_port: int) -> str:
    return f"""
[general]
node = "{NODE}"
writelocal = true
localdir = "{tmp}/captures"
[redis]
port = {redis_port}
channel = "{CHANNEL}"
[cloudshark]
host = "127.0.0.1"
scheme = "http"
port = {cloudshark_port}
token = "{TOKEN}"
upload = true
[rclone]
spool_dir = "{tmp}/spool"
"""


@pytest.fixture
def services(tmp_path, udp_port):
    """The daemon (with its Redis and CloudShark receiver) and traffic on lo."""
    from cloudshark_receiver import Receiver

    (tmp_path / BLOCKER).write_text("a file, not a folder\n")
    (tmp_path / "captures").mkdir()
    server = RedisServer(tmp_path)
    receiver = Receiver(tmp_path / "cloudshark", TOKEN).start()
    daemon = Daemon(tmp_path, targets_lua(tmp_path, udp_port),
                    daemon_toml(tmp_path, server.port, receiver.port))
    traffic = Traffic(udp_port)
    try:
        yield daemon, server, udp_port
    finally:
        traffic.stop()
        code = daemon.stop()
        receiver.stop()
        server.stop()
        assert code == 0, daemon.text()[-3000:]


def trigger(daemon: Daemon, server: RedisServer, port: int) -> dict:
    """One capture that succeeds (to CloudShark and the local folder), one request rejected
    for its filter; returns the successful result as /status has it."""
    wait_until(lambda: daemon.status()["trigger"]["redis_connected"], 20, "the trigger listener")
    daemon.wait_packets("seq", 50, "traffic before the trigger (it looks back 2 s)")
    for message in ({"node": NODE, "interface": "lo", "bpf": f"udp and dst port {port}",
                     "before": 2, "packets": 25, "requestid": "page-ok"},
                    {"node": NODE, "interface": "lo", "bpf": BAD_FILTER,
                     "requestid": "page-rejected"}):
        server.client.publish(CHANNEL, json.dumps(message))

    def results() -> dict | None:
        recent = {r["requestid"]: r for r in daemon.status()["trigger"]["recent"]}
        return recent if len(recent) >= 2 else None

    recent = wait_until(results, 30, "both trigger results in /status")
    assert recent["page-ok"]["status"] == "ok", recent
    assert recent["page-rejected"]["status"] == "rejected", recent
    return recent["page-ok"]


def test_what_an_operator_sees(services, tmp_path):
    sync_api = chromium_or_skip()
    daemon, server, port = services
    ok = trigger(daemon, server, port)
    assert ok["cloudshark_url"].startswith("http://127.0.0.1:") and ok["packets"] == 25
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1400, "height": 1000})
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(f"http://127.0.0.1:{daemon.status_port}/?refresh=0.5")
            see_it(sync_api.expect, page, ok)
            shot = tmp_path / "status-page.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ARTIFACT)
    assert shot.stat().st_size > 10_000
    assert problems == []  # no script error, and no policy violation (a blocked script)


def see_it(expect, page, ok: dict) -> None:
    """The checks, in the order a person reads the page."""
    timeout_ms = 30_000
    expect(page.locator("#health")).to_have_text("FAILING", timeout=timeout_ms)
    expect(page.locator("#problems")).to_contain_text("target bad (lo) is failing")

    lo = page.locator('#interfaces tr[data-interface="lo"]')
    expect(lo.locator(".state")).to_have_text("capturing")
    nonzero_rate = re.compile(r"^(?:[1-9][0-9]*(?:\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*)[kM]?/s$")
    expect(lo.locator(".rate .value")).to_have_text(nonzero_rate, timeout=timeout_ms)
    assert lo.locator(".rate svg polyline.rate").count() == 1  # the chart has a line
    expect(lo.locator(".ring")).to_contain_text(" s")

    def target(desc: str):
        return page.locator(f'#targets tr[data-target="{desc}"]')

    expect(target("seq").locator(".state")).to_have_text("writing", timeout=timeout_ms)
    expect(target("seq").locator("td.file")).to_contain_text(".seq.")
    expect(target("bad").locator(".state")).to_have_text("failing", timeout=timeout_ms)
    expect(target("bad").locator("td.error")).to_contain_text(f"{BLOCKER}")  # as text
    expect(target("up").locator(".state")).to_have_text("retrying uploads", timeout=timeout_ms)
    expect(target("up").locator(".pending")).to_contain_text("oldest")

    ok_row = page.locator('#triggers tr[data-status="ok"]')
    expect(ok_row).to_contain_text("page-ok")
    expect(ok_row).to_contain_text("25")
    expect(ok_row.locator("a")).to_have_attribute("href", ok["cloudshark_url"])
    rejected = page.locator('#triggers tr[data-status="rejected"]')
    expect(rejected).to_contain_text("page-rejected")
    expect(rejected).to_contain_text(BAD_FILTER)

    # Markup in the data stayed text: nothing it describes exists or ran.
    assert page.locator("img").count() == 0
    assert page.locator("script").count() == 1
    assert page.title() == "pushcap status"
