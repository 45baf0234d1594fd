"""The status page served at the status endpoint's root: one static, self-contained HTML file.

The page (`status_page.html`, package data shipped in the wheel) holds its own CSS and script and
loads nothing from elsewhere (capture boxes often have no internet). Its script fetches `/status`
every few seconds and draws from that, so the figures have one source of truth and the daemon
does no work for the page beyond the snapshot it already makes for `pushcap status`; serving the
page itself is a constant byte string, read once.

A Content-Security-Policy allows exactly the page's own script and style (by hash) and requests
to its own origin: even a mistake that put user text (a target's Desc, an error, a path) into
markup could not run script.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from importlib import resources

PAGE_FILE = "status_page.html"
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


@functools.cache
def page() -> tuple[bytes, dict[str, str]]:
    """The page's bytes and the headers to send with them."""
    html = resources.files(__package__).joinpath(PAGE_FILE).read_bytes()
    return html, page_headers(html.decode())


def page_headers(html: str) -> dict[str, str]:
    """The headers beside the content type: a policy that allows the page's inline script and
    style by their SHA-256 (any other script, style element or origin is refused)."""
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for kind, body in _INLINE.findall(html):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        hashes[kind].append(f"'sha256-{digest}'")
    script, style = (" ".join(hashes[kind]) or "'none'" for kind in ("script", "style"))
    policy = (f"default-src 'none'; script-src {script}; style-src {style}; "
              "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
              "frame-ancestors 'none'")
    return {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}
