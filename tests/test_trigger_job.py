"""A capture job reads what reached the ring between the request and the job's start."""

from __future__ import annotations

import json
import time

import numpy as np

from pushcap.capture.batch import Batch, build_records
from pushcap.capture.ring import Ring
from pushcap.config.model import InterfaceConfig
from pushcap.config.pcapdaemon import TriggerSettings
from pushcap.trigger.job import CaptureJob
from pushcap.trigger.message import parse_request

SETTINGS = TriggerSettings(node_name="n1", max_packets=1000, max_bytes=10_000_000,
                           max_timeout_s=120, max_duration_s=600, default_timeout_s=30,
                           snap_length=512)


def batch_at(ts_ns: list[int], size: int = 60) -> Batch:
    ts = np.array(ts_ns, dtype=np.int64)
    caplen = np.full(len(ts), size, dtype=np.int64)
    records, offsets = build_records(ts, caplen, caplen, bytes(size * len(ts)),
                                     np.arange(len(ts)) * size)
    return Batch(records, offsets, ts, caplen, caplen.copy(), 1, 262144)


def test_queued_request_gets_packets_that_arrived_before_the_job_started():
    ring = Ring("eth0", 1, 262144, max_seconds=60, max_bytes=1 << 30)
    received_ns = time.time_ns()
    ring.append(batch_at([received_ns - 5 * 10**9]))  # before the request: not wanted
    ring.append(batch_at([received_ns + i * 1000 for i in range(1, 16)]))  # while queued
    message = json.dumps({"node": "n1", "interface": "eth0", "packets": 15, "timeout": 1})
    request = parse_request(message, SETTINGS, (InterfaceConfig("eth0"),), None, received_ns)
    outcome = CaptureJob(request, "eth0", None, ring).run()
    assert outcome.packets == 15 and outcome.reason != "timeout"


def test_deeply_nested_json_is_a_clear_rejection():
    from pushcap.trigger.message import TriggerError

    try:
        parse_request("[" * 60000, SETTINGS, (InterfaceConfig("eth0"),), None)
    except TriggerError as exc:
        assert exc.field == "message"
    else:
        raise AssertionError("accepted a pathological message")


def test_failed_local_write_falls_back_instead_of_losing_the_capture(tmp_path):
    import dataclasses

    from pushcap.trigger.delivery import Deliverer

    blocked = tmp_path / "destdir"  # a file where the folder should be (root ignores modes)
    blocked.write_text("not a folder")
    settings = dataclasses.replace(SETTINGS, write_local=True, local_dir=blocked,
                                   fallback_dir=tmp_path / "fallback")
    ring = Ring("eth0", 1, 262144, max_seconds=60, max_bytes=1 << 30)
    received_ns = time.time_ns()
    ring.append(batch_at([received_ns + 1000]))
    message = json.dumps({"node": "n1", "interface": "eth0", "packets": 1})
    request = parse_request(message, settings, (InterfaceConfig("eth0"),), None, received_ns)
    outcome = CaptureJob(request, "eth0", None, ring).run()
    delivery = Deliverer(settings, None).deliver(request, outcome)
    assert delivery.fallback and delivery.local_error
    saved = list((tmp_path / "fallback").iterdir())
    assert len(saved) == 1 and saved[0].read_bytes() == outcome.pcap
