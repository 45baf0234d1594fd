"""CloudShark failing beside the push targets: answering 5xx, or accepting the connection and
never answering. The trigger result says so within the upload budget (every attempt at
`[cloudshark] timeout`, plus the backoffs), the capture goes to the fallback folder, and the
push target loses nothing meanwhile."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
from packet_accounting import assert_accounted, read_target
from seq_stream import PORT, file_target, lua_file, newest_seq, scaled
from trigger_requests import TOKEN, RedisServer, request, trigger_toml, wait_subscribed
from waiting import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))
from cloudshark_receiver import Receiver  # noqa: E402

pytestmark = pytest.mark.timeout(scaled(180, 900))

REQUESTS = int(scaled(2, 10))
CS_TIMEOUT_S, CS_RETRIES, CS_BACKOFF_S = 2.0, 1, 0.2
# Every attempt may take the whole timeout; the backoffs double from 0.2 s. Plus the capture
# itself (40 packets of a 3,000/s stream) and the slack of a busy 2-core machine.
BUDGET_S = (CS_RETRIES + 1) * CS_TIMEOUT_S + CS_BACKOFF_S * (2 ** CS_RETRIES - 1) + 3.0


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture(params=["5xx", "silence"])
def failing_cloudshark(request, tmp_path):
    """(port, what the result's error must say): a receiver answering 500 to every upload, or a
    socket that completes the connection (the kernel's backlog) and never answers."""
    if request.param == "5xx":
        receiver = Receiver(tmp_path / "cloudshark", TOKEN, fail_times=-1).start()
        yield receiver.port, "HTTP 500"
        receiver.stop()
    else:
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(16)
            yield silent.getsockname()[1], "timed out"


def test_cloudshark_failure_is_reported_in_time_and_push_is_unaffected(
        seq_link, start_sender, start_daemon, redis_server, failing_cloudshark, tmp_path):
    port, says = failing_cloudshark
    out = tmp_path / "out"
    daemon = start_daemon(lua_file(file_target("seq", out / "seq", seq_link.bpf)),
                          toml_extra=trigger_toml(tmp_path, redis_server.port, port,
                                                  CS_TIMEOUT_S, CS_RETRIES))
    wait_subscribed(redis_server)
    sender = start_sender()
    bpf = f"udp and dst port {PORT}"
    for _ in range(REQUESTS):
        result, took_s = request(redis_server, seq_link.capture, bpf, timeout_s=BUDGET_S + 30,
                                 packets=40, timeout=10)
        assert result["status"] == "error" and says in result["error"], result
        assert took_s <= BUDGET_S, f"the result came after {took_s:.1f} s: {result}"
        assert result.get("fallback") and result.get("path"), result
        kept = read_target("fallback", [Path(result["path"])], sender.run_id, sender.sent)
        assert kept.packets == 40 and not len(kept.duplicates), result
    sent = sender.stop()
    wait_until(lambda: newest_seq(out, sender.run_id) == sent - 1, 30,
               "the target to write the last datagram sent")
    status = daemon.target("seq")
    assert daemon.stop() == 0, daemon.text()
    assert not list(out.glob(".*.part")), "a clean stop left temporaries"
    assert sender.on_wire() == sent, "the wire carried what the sender counted"
    seqs = read_target("seq", out.glob("seq_*.pcap"), sender.run_id, sent)
    assert_accounted(seqs, sender.times())
    assert status["lost_packets"] == 0 and status["errors"] == 0, status
    assert TOKEN not in daemon.text()
