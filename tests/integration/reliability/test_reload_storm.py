"""A reload storm under traffic: 50 reloads in about 10 s (SIGHUP, the status endpoint's
/reload, and `pushcap reload`), each flipping the target's Split between 1 s and 2 s windows, so
the target is "changed" every time and hands over at a file boundary while the next change is
already on its way. No packet is lost or written twice across those boundaries."""

from __future__ import annotations

import signal
import time
import urllib.request

import pytest
from packet_accounting import assert_accounted, read_target
from seq_stream import file_target, lua_file, newest_seq, scaled
from waiting import wait_until

pytestmark = pytest.mark.timeout(scaled(180, 900))

RELOADS = int(scaled(50, 500))
STORM_S = scaled(10, 100)
SPLITS = ("--split-time 2e9", "--split-time 1e9")


def test_reload_storm_loses_and_repeats_nothing(seq_link, start_sender, start_daemon, tmp_path):
    out = tmp_path / "out"

    def lua(i: int) -> str:
        return lua_file(file_target("seq", out / "seq", seq_link.bpf, split=SPLITS[i % 2]))

    def files() -> int:
        return daemon.target("seq").get("files", 0)

    daemon = start_daemon(lua(0))
    sender = start_sender()
    wait_until(lambda: files() >= 2, 30, "a whole 2 s file before the storm")
    began = time.monotonic()
    for i in range(1, RELOADS + 1):
        time.sleep(max(0.0, began + i * STORM_S / RELOADS - time.monotonic()))  # the storm's pace
        daemon.lua.write_text(lua(i))
        if i % 10 == 0:
            answer = daemon.cli("reload")
            assert answer.returncode == 0, answer.stdout + answer.stderr
        elif i % 2:
            daemon.proc.send_signal(signal.SIGHUP)
            wait_until(lambda n=i: daemon.status()["reloads"] >= n, 10, f"SIGHUP reload {i}")
        else:
            post = urllib.request.Request(f"http://127.0.0.1:{daemon.status_port}/reload",
                                          method="POST")
            with urllib.request.urlopen(post, timeout=30) as answer:
                assert answer.status == 200
        assert daemon.status()["reloads"] == i
    # Settled on 1 s windows after the storm: some whole 1 s files, whatever the storm did.
    daemon.lua.write_text(lua(RELOADS + 1))
    assert daemon.cli("reload").returncode == 0
    published = files()
    wait_until(lambda: files() >= published + 2, 30, "whole 1 s files after the storm")
    sent = sender.stop()
    wait_until(lambda: daemon.target("seq").get("packets", 0) >= sent, 30,
               "the target to take every datagram sent")
    wait_until(lambda: newest_seq(out, sender.run_id) == sent - 1, 30,
               "the last datagram in the files")
    status = daemon.target("seq")
    assert daemon.stop() == 0, daemon.text()
    text = daemon.text()
    assert text.count("event=reload_applied") == RELOADS + 1 and "reload_refused" not in text
    assert "event=target_error" not in text and "Traceback" not in text, text
    assert not list(out.glob(".*.part")), "a clean stop left temporaries"
    assert sender.on_wire() == sent, "the wire carried what the sender counted"
    seqs = read_target("seq", out.glob("seq_*.pcap"), sender.run_id, sent)
    assert_accounted(seqs, sender.times())
    assert status["packets"] == sent and status["lost_packets"] == 0, status
    # Both settings wrote whole files: 2 s ones before the storm, 1 s ones after it.
    spans = [last - first for first, last in (seqs.spans[f.name] for f in seqs.files)]
    assert max(spans) > 1.5 > min(spans[1:-1]), f"no alternation in {spans}"
