"""The status page as served: self-contained, locked down by its policy, never markup from data.

What it shows is checked in a real browser (tests/integration/test_status_page_browser.py);
these are the properties of the file and the endpoint that hold without one.
"""

from __future__ import annotations

import base64
import hashlib
import re
import urllib.request

import pytest

from pushcap.supervisor.status import StatusServer
from pushcap.supervisor.status_page import page


@pytest.fixture
def server():
    status = {"node": "n", "reloads": 0, "interfaces": {}, "targets": [], "problems": []}
    srv = StatusServer("127.0.0.1", 0, lambda: status, lambda: (True, ""))
    srv.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def get(url: str) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_the_root_serves_the_page_with_its_policy(server):
    for path in ("/", "/?refresh=5", "/index.html"):
        code, headers, body = get(server + path)
        assert code == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
        assert body == page()[0]
    policy = headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    html = body.decode()
    for kind in ("script", "style"):
        inline = re.search(rf"<{kind}>(.*?)</{kind}>", html, re.DOTALL).group(1)
        digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
        assert f"{kind}-src 'sha256-{digest}'" in policy  # the page's own, and only it, runs
    assert get(server + "/status")[0] == 200
    code, _, body = get(server + "/nothing")
    assert code == 404 and b"/status" in body


def test_the_page_loads_nothing_from_elsewhere():
    html = page()[0].decode()
    assert html.count("<script>") == 1 and "<script src" not in html
    urls = set(re.findall(r"https?://[^\s\"'`)]+", html))
    assert urls == {"http://www.w3.org/2000/svg"}  # a namespace name, never fetched
    assert "@import" not in html and "url(" not in html


def test_data_never_becomes_markup():
    """Desc, paths, errors and request ids are user text: the script builds the page with
    DOM calls and textContent only."""
    script = re.search(r"<script>(.*?)</script>", page()[0].decode(), re.DOTALL).group(1)
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "setAttribute(\"href\"", "setAttribute('href'"):
        assert sink not in script, sink
