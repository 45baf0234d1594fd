"""pcapdaemon's upstream config and flags load unchanged (issue 18, item 4).

`tests/data/pcapdaemon.conf.example` is pcapdaemon's own example, byte for byte (its source is in
tests/data/README.md). Go cannot tell a missing number from 0, so pcapdaemon treats 0 as "not
set" for its limits, ports and number flags: so must pushcap. Every flag of its main.go is
accepted, `-panic` too (with a notice: it has no meaning here).
"""

from __future__ import annotations

import argparse
import logging
import tomllib
from pathlib import Path

import pytest

from pushcap.config.model import ConfigError
from pushcap.config.pcapdaemon import add_pcapdaemon_flags, pcapdaemon_flags
from pushcap.config.s3_settings import parse_s3
from pushcap.config.toml import parse_daemon_config
from pushcap.trigger.cloudshark import additional_tags
from pushcap.trigger.job import CaptureOutcome
from pushcap.trigger.message import parse_request
from pushcap.trigger.packet_debug import log_packets

EXAMPLE = Path(__file__).resolve().parent / "data" / "pcapdaemon.conf.example"
BASE = '[[interface]]\nname = "lo"\n'
# Every flag pcapdaemon's main.go defines, with a value of the type it takes.
MAIN_GO_FLAGS = ["-cshost", "cs.example", "-cstoken", "tok123", "-csscheme", "http", "-csport",
                 "8080", "-cstimeout", "20", "-config", "x.toml", "-redisnode", "r.example",
                 "-redisport", "6380", "-redischannel", "caps", "-maxpackets", "77", "-upload",
                 "-panic", "-writelocal", "-destdir", "/tmp"]


def flags(*argv: str) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_pcapdaemon_flags(parser)
    return pcapdaemon_flags(parser.parse_args(list(argv)))


def load(text: str, *argv: str, source: str = "t.toml"):
    return parse_daemon_config(tomllib.loads(text), source, text, flags(*argv))


def test_the_upstream_example_loads_verbatim():
    text = EXAMPLE.read_text()
    config = load(text, source=EXAMPLE.name)
    trigger = config.trigger
    assert [i.name for i in config.interfaces] == ["eth0", "lo"]
    assert trigger.cloudshark.timeout_s == 15.0  # `timeout = 0`: unset, the default
    assert trigger.log_requests and not trigger.packet_debug and trigger.default_timeout_s == 10
    assert trigger.redis.password == "password" and trigger.redis.listen
    s3 = trigger.s3
    assert (s3.upload, s3.bucket, s3.folder, s3.region, s3.acl, s3.encryption) == (
        True, "pcapdaemon", "pcaps", "us-east-1", "private", False)
    assert s3.endpoint_url == "https://s3.amazonaws.com" and s3.provider == "AWS"
    sqs = trigger.sqs
    assert (sqs.listen, sqs.wait_s, sqs.chunk, sqs.region) == (True, 20, 10, "us-east-1")
    assert sqs.endpoint_url == "https://example.amazone.com"
    assert trigger.kafka.listen and trigger.kafka.topic == "capture"
    assert config.syslog.priority == 25 and config.syslog.tag == "pcapdaemon"
    # loads, but `run` would refuse: check says so
    assert trigger.refusal and "Kafka is not supported" in trigger.refusal
    assert any("Kafka is not supported" in n for n in trigger.notices)


def test_credentials_of_the_example_appear_in_no_repr():
    trigger = load(EXAMPLE.read_text()).trigger
    shown = repr(trigger)
    assert "xxxxxxxxxxxxxxxxxxxxxxx" not in shown and "fffffffffffffffffff" not in shown
    assert "password" not in repr(trigger.redis)


def test_kafka_without_listen_loads_and_says_nothing():
    trigger = load('[kafka]\nlisten = false\nserver = ["127.0.0.1:9092"]\ntopic = "c"\n'
                   + BASE).trigger
    assert trigger.refusal is None and trigger.notices == ()
    with pytest.raises(ConfigError, match=r"\[kafka\] serverz"):
        load("[kafka]\nserverz = 1\n" + BASE)


def test_kafka_listen_is_refused_in_one_line_naming_the_key():
    refusal = load("[kafka]\nlisten = true\n" + BASE).trigger.refusal
    assert refusal.startswith("t.toml: [kafka] listen (line 2) = true: Kafka is not supported")
    assert "\n" not in refusal


@pytest.mark.parametrize("text", [
    "[cloudshark]\ntimeout = 0\n", "[cloudshark]\nport = 0\n", "[redis]\nport = 0\n",
    "[general]\nmaxpackets = 0\nmaxbytes = 0\nsnaplength = 0\n",
    '[general]\ndefaulttimeout = 0\nmaxtimeout = "0s"\nmaxduration = 0\n',
    "[syslog]\npriority = 0\n",
])
def test_zero_means_unset_as_in_pcapdaemon(text):
    config = load(text + BASE)
    trigger = config.trigger
    assert (trigger.max_packets, trigger.max_bytes, trigger.snap_length) == (50000, 100_000_000,
                                                                           512)
    assert (trigger.default_timeout_s, trigger.max_timeout_s, trigger.max_duration_s) == (
        60, 3600, 3600)
    assert (trigger.cloudshark.timeout_s, trigger.cloudshark.port, trigger.redis.port) == (
        15.0, None, 6379)
    if config.syslog is not None:
        assert config.syslog.priority == 85  # pcapdaemon's default, not kern.emerg


def test_zero_flags_leave_the_file_alone():
    text = ("[cloudshark]\nport = 8443\ntimeout = 7\nhost = \"cs.example\"\n"
            "[redis]\nport = 6390\n[general]\nmaxpackets = 99\n" + BASE)
    trigger = load(text, "-cstimeout", "0", "-maxpackets", "0", "-redisport", "0", "-csport",
                   "0", "-cshost", "", "-csscheme", "", "-redisnode", "").trigger
    assert (trigger.cloudshark.timeout_s, trigger.cloudshark.port) == (7, 8443)
    assert trigger.cloudshark.host == "cs.example" and trigger.cloudshark.scheme == "https"
    assert (trigger.max_packets, trigger.redis.port, trigger.redis.host) == (99, 6390,
                                                                             "127.0.0.1")


def test_every_flag_of_pcapdaemons_main_go_is_accepted():
    given = flags(*MAIN_GO_FLAGS)
    trigger = parse_daemon_config(tomllib.loads(BASE), "t.toml", None, given).trigger
    assert (trigger.cloudshark.host, trigger.cloudshark.port, trigger.cloudshark.scheme) == (
        "cs.example", 8080, "http")
    assert trigger.cloudshark.upload and trigger.cloudshark.timeout_s == 20
    assert (trigger.redis.host, trigger.redis.port, trigger.redis.channel) == ("r.example", 6380,
                                                                               "caps")
    assert trigger.max_packets == 77 and trigger.write_local and str(trigger.local_dir) == "/tmp"
    assert any(n.startswith("-panic:") for n in trigger.notices)  # accepted, noted once


def test_panic_false_is_no_notice():
    assert load(BASE, "-panic=false").trigger.notices == ()


def test_alertid_zero_is_no_tag_and_no_alert_id():
    assert "alertid" not in additional_tags(None, 0, (), None, "n", "lo", 512)
    assert "alertid:7" in additional_tags(None, 7, (), None, "n", "lo", 512)
    trigger = load(BASE).trigger
    request = parse_request('{"node": "any", "interface": "lo", "alertid": 0}', trigger,
                            load(BASE).interfaces)
    assert request.alertid is None


def test_s3_credentials_go_to_the_environment_never_the_remote():
    s3 = parse_s3({"accessid": "AKIAEXAMPLE1234", "accesskey": "secret-key-Zq81",
                   "endpoint": "http://127.0.0.1:9000", "bucket": "caps", "folder": "/a/b/",
                   "upload": True, "encryption": True, "acl": "bucket-owner-full-control"},
                  "t.toml")
    remote = s3.remote("n-lo-1.pcap")
    assert "AKIAEXAMPLE1234" not in remote and "secret-key-Zq81" not in remote
    assert remote.startswith(":s3,provider=Other,endpoint='http://127.0.0.1:9000',")
    assert remote.endswith(":caps/a/b/n-lo-1.pcap") and "server_side_encryption=AES256" in remote
    assert s3.environment() == {"RCLONE_S3_ACCESS_KEY_ID": "AKIAEXAMPLE1234",
                                "RCLONE_S3_SECRET_ACCESS_KEY": "secret-key-Zq81"}
    assert s3.object_url("n-lo-1.pcap") == "http://127.0.0.1:9000/caps/a/b/n-lo-1.pcap"


@pytest.mark.parametrize("section, culprit", [
    ({"acl": "everyone"}, "acl"), ({"folder": "../up"}, "folder"),
    ({"endpoint": "http://h/x"}, "endpoint"), ({"bucket": "a,b"}, "bucket"),
    ({"upload": True}, "bucket"), ({"accessid": "only-the-id"}, "accesskey"),
    ({"region": "us east"}, "region"), ({"extra": 1}, "extra"),
])
def test_bad_s3_settings_name_the_culprit(section, culprit):
    with pytest.raises(ConfigError, match=culprit):
        parse_s3(section, "t.toml")


def test_sqs_and_ondemand_keys():
    trigger = load('[sqs]\nlisten = true\nurl = "http://127.0.0.1:5000/123456789012/q"\n'
                   "waitseconds = 0\nchunksize = 3\n[general]\nondemand = false\n"
                   "packetdebug = true\n" + BASE).trigger
    assert trigger.sqs.endpoint_url == "http://127.0.0.1:5000" and trigger.sqs.wait_s == 0
    assert trigger.sqs.chunk == 3 and not trigger.on_demand and trigger.packet_debug
    with pytest.raises(ConfigError, match="url"):
        load("[sqs]\nlisten = true\n" + BASE)
    with pytest.raises(ConfigError, match="chunksize"):
        load('[sqs]\nurl = "https://q.example/1/q"\nchunksize = 11\n' + BASE)


def test_packetdebug_logs_each_packet_at_debug_level(caplog):
    records = b"".join(
        (1_700_000_000 + i).to_bytes(4, "little") + (5).to_bytes(4, "little")
        + (4).to_bytes(4, "little") + (60).to_bytes(4, "little") + b"abcd" for i in range(3))
    outcome = CaptureOutcome("lo", None, 1, 512, packets=3, parts=[records])
    request = parse_request('{"node": "any", "interface": "lo", "packetdebug": true}',
                            load(BASE).trigger, load(BASE).interfaces)
    assert request.packet_debug and request.notes == ()  # a known field, no "unknown" note
    with caplog.at_level(logging.DEBUG, logger="pushcap.trigger.packets"):
        assert log_packets(request, outcome, limit=2) == 2
    lines = [r.getMessage() for r in caplog.records]
    assert "ts=1700000000.000000005 caplen=4 wirelen=60" in lines[0]
    assert "event=trigger_packets_not_logged" in lines[-1] and "count=1" in lines[-1]


def test_without_redis_a_result_is_logged_not_published(caplog):
    from pushcap.config.pcapdaemon import RedisSettings
    from pushcap.trigger.results import ResultPublisher

    publisher = ResultPublisher(RedisSettings(listen=False, port=1))  # nothing listens on 1
    with caplog.at_level(logging.INFO, logger="pushcap.trigger.results"):
        assert publisher.publish({"node": "n", "status": "ok", "requestid": "r1"})
    assert 'event=trigger_result result={"node":"n","requestid":"r1","status":"ok"}' \
        in caplog.text
