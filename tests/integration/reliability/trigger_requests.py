"""Triggered captures beside the push targets: the daemon's trigger sections for a test's Redis
and CloudShark, and a request whose result is read back from Redis' results stream."""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

from waiting import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "trigger"))
from trigger_harness import TOKEN, RedisServer  # noqa: E402,F401 - reused as they are

NODE = "reliability-node"
CHANNEL = "relcapture"


def trigger_toml(tmp: Path, redis_port: int, cloudshark_port: int | None = None,
                 cs_timeout_s: float = 2.0, cs_retries: int = 1) -> str:
    """[general], [redis] and (when a port is given) [cloudshark] for the daemon's TOML; without
    CloudShark captures are written to tmp/captures."""
    captures = tmp / "captures"
    captures.mkdir(exist_ok=True)
    text = (f'[general]\nnode = "{NODE}"\nfallbackdir = "{tmp / "fallback"}"\n'
            f'writelocal = {"false" if cloudshark_port else "true"}\n'
            f'localdir = "{captures}"\n'
            f'[redis]\nhost = "127.0.0.1"\nport = {redis_port}\nchannel = "{CHANNEL}"\n')
    if cloudshark_port:
        text += (f'[cloudshark]\nhost = "127.0.0.1"\nscheme = "http"\nport = {cloudshark_port}\n'
                 f'token = "{TOKEN}"\nupload = true\ntimeout = "{cs_timeout_s:g}s"\n'
                 f'retries = {cs_retries}\nretrybackoff = "0.2s"\n')
    return text


def request(redis: RedisServer, interface: str, bpf: str, timeout_s: float = 30,
            **fields) -> tuple[dict, float]:
    """Publish a capture request and wait for its result on the results stream; the result
    and the seconds it took."""
    client = redis.client()
    try:
        request_id = uuid.uuid4().hex[:12]
        message = {"node": NODE, "interface": [interface], "bpf": bpf, "requestid": request_id,
                   **fields}
        began = time.monotonic()
        assert client.publish(CHANNEL, json.dumps(message)) >= 1, "no daemon subscribed"

        def result() -> dict | None:
            for _, entry in client.xrange(f"{CHANNEL}:results:stream"):
                record = json.loads(entry[b"result"])
                if record.get("requestid") == request_id:
                    return record
            return None

        found = wait_until(result, timeout_s, f"the result of request {request_id}")
        return found, time.monotonic() - began
    finally:
        client.close()


def wait_subscribed(redis: RedisServer, timeout_s: float = 30) -> None:
    """Until a daemon listens on the request channel of this Redis."""
    client = redis.client()
    try:
        wait_until(lambda: client.pubsub_numsub(CHANNEL)[0][1] >= 1, timeout_s,
                   f"a subscriber on {CHANNEL}")
    finally:
        client.close()
