"""Redis restarted under traffic: the daemon's listener comes back on its own and answers the
next trigger request; the push target, which never needed Redis, loses nothing."""

from __future__ import annotations

import time

import pytest
from packet_accounting import assert_accounted, read_target
from seq_stream import PORT, file_target, lua_file, newest_seq, scaled
from trigger_requests import RedisServer, request, trigger_toml, wait_subscribed
from waiting import wait_until

pytestmark = pytest.mark.timeout(scaled(180, 900))

RESTARTS = int(scaled(2, 10))


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def test_redis_restart_triggers_answer_again_and_push_loses_nothing(
        seq_link, start_sender, start_daemon, redis_server, tmp_path):
    out = tmp_path / "out"
    daemon = start_daemon(lua_file(file_target("seq", out / "seq", seq_link.bpf)),
                          toml_extra=trigger_toml(tmp_path, redis_server.port))
    sender = start_sender()
    bpf = f"udp and dst port {PORT}"
    for restart in range(RESTARTS + 1):
        wait_subscribed(redis_server)
        result, _ = request(redis_server, seq_link.capture, bpf, packets=40, timeout=10)
        assert (result["status"], result["packets"]) == ("ok", 40), (restart, result)
        if restart == RESTARTS:
            break
        stopped_at = time.time()
        redis_server.stop()
        wait_until(lambda t=stopped_at: daemon.seen_at("event=trigger_redis_error", t), 30,
                   "the listener to notice Redis is gone")
        restarted_at = time.time()
        redis_server.start()  # the same port, an empty Redis
        wait_until(lambda t=restarted_at: daemon.seen_at("event=trigger_subscribed", t), 30,
                   "the listener to subscribe again")
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
