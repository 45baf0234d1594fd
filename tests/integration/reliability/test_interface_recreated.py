"""The captured interface deleted and created again under traffic (the veth pair taken away and
made anew, its far end in the namespace again): packets are lost only while it is gone, none
twice, and the daemon captures the new interface of the same name on its own.
(test_interface_returns.py checks status and the reopen with a few frames; this is the stream.)"""

from __future__ import annotations

import time

import pytest
from packet_accounting import Window, assert_accounted, read_target
from seq_stream import file_target, lua_file, newest_seq, scaled
from waiting import wait_until

pytestmark = pytest.mark.timeout(scaled(180, 900))

CYCLES = int(scaled(2, 10))
PHASE_PACKETS = int(scaled(6000, 30000))  # written between two deletions


def test_interface_deleted_and_recreated_loses_only_while_gone(seq_link, start_sender,
                                                               start_daemon, tmp_path):
    out = tmp_path / "out"
    name = seq_link.capture
    daemon = start_daemon(lua_file(file_target("seq", out / "seq", seq_link.bpf)))
    sender = start_sender()
    windows: list[Window] = []
    for cycle in range(CYCLES):
        written = daemon.target("seq").get("packets", 0)
        wait_until(lambda n=written: daemon.target("seq").get("packets", 0) >= n + PHASE_PACKETS,
                   30, f"traffic before deletion {cycle + 1}")
        gone_at = time.time()
        seq_link.delete()
        wait_until(lambda t=gone_at: daemon.seen_at(f"event=capture_error interface={name}", t),
                   30, "the daemon to notice the interface is gone")
        wait_until(lambda t=gone_at: daemon.seen_at("event=capture_reopen_failed", t), 30,
                   "a reopen to fail while the interface is gone")
        seq_link.create()
        back_at = wait_until(
            lambda t=gone_at: daemon.seen_at(f"event=capture_reopened interface={name}", t), 30,
            "the daemon to capture the new interface")
        windows.append(Window(gone_at, back_at, f"interface gone #{cycle + 1}"))
    written = daemon.target("seq").get("packets", 0)
    wait_until(lambda: daemon.target("seq").get("packets", 0) >= written + PHASE_PACKETS, 30,
               "traffic after the last return")
    sent = sender.stop()
    wait_until(lambda: newest_seq(out, sender.run_id) == sent - 1, 30,
               "the last datagram sent in the files")
    status = daemon.status()
    assert daemon.stop() == 0, daemon.text()
    assert not list(out.glob(".*.part")), "a clean stop left temporaries"
    seqs = read_target("seq", out.glob("seq_*.pcap"), sender.run_id, sent)
    assert_accounted(seqs, sender.times(), windows)
    assert seqs.packets <= sender.on_wire() <= sent
    interface = status["interfaces"][name]
    assert interface["reopens"] == CYCLES and interface["capturing"] == 1, interface
    target = next(t for t in status["targets"] if t["desc"] == "seq")
    assert target["lost_packets"] == 0 and target["errors"] == 0, target
