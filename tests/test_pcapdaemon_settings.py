"""Trigger settings: pcapdaemon's defaults, its TOML keys, and its flags overriding the file."""

from __future__ import annotations

import argparse
import tomllib

import pytest

from pushcap.config.model import ConfigError
from pushcap.config.pcapdaemon import add_pcapdaemon_flags, trigger_settings
from pushcap.config.toml import parse_daemon_config
from pushcap.trigger.cloudshark import additional_tags
from pushcap.trigger.delivery import capture_filename, write_into

BASE = '[[interface]]\nname = "lo"\n'


def settings(toml: str = "", argv: tuple[str, ...] = ()):
    config = parse_daemon_config(tomllib.loads(toml + BASE), "t.toml")
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_pcapdaemon_flags(parser)
    return trigger_settings(config, parser.parse_args(list(argv)))


def test_defaults_are_pcapdaemons():
    s = settings()
    assert (s.max_packets, s.max_bytes, s.snap_length) == (50000, 100_000_000, 512)
    assert (s.default_timeout_s, s.max_timeout_s, s.max_duration_s) == (60, 3600, 3600)
    assert (s.redis.host, s.redis.port, s.redis.channel) == ("127.0.0.1", 6379, "capture")
    assert not s.redis.configured and s.redis.listen
    assert (s.cloudshark.host, s.cloudshark.scheme, s.cloudshark.upload) == ("localhost",
                                                                             "https", False)
    assert s.cloudshark.verify_tls and not s.write_local


def test_toml_keys_apply():
    s = settings("""
[general]
maxpackets = 10
maxbytes = 1e6
maxtimeout = "2m"
maxduration = 90
defaulttimeout = "1m30s"
snaplength = 500
logrequests = true
[redis]
host = "redis.example"
port = 6380
channel = "caps"
auth = "pw"
user = "capture"
[cloudshark]
host = "cloudshark.org"
port = 443
token = "fffffffffffffffffff"
upload = true
timeout = 20
""")
    assert (s.max_packets, s.max_bytes, s.max_timeout_s, s.max_duration_s) == (10, 1_000_000,
                                                                              120, 90)
    assert (s.default_timeout_s, s.snap_length, s.log_requests) == (90, 500, True)
    assert (s.redis.host, s.redis.port, s.redis.channel, s.redis.username) == (
        "redis.example", 6380, "caps", "capture")
    assert s.redis.password == "pw" and "pw" not in repr(s) and s.redis.configured
    assert s.cloudshark.upload_url() == (
        "https://cloudshark.org/api/v1/fffffffffffffffffff/upload")
    assert "fffff" not in repr(s) and s.cloudshark.timeout_s == 20


def test_flags_override_the_file(tmp_path):
    s = settings('[redis]\nhost = "a"\nport = 1\nchannel = "c"\n[general]\nmaxpackets = 3\n'
                 '[cloudshark]\nhost = "h"\n',
                 ("-cshost", "cs.local", "-csscheme=http", "-cstoken", "tok", "-csport", "8080",
                  "-cstimeout", "3", "-redischannel", "chan", "-redisnode", "r.local",
                  "-redisport", "7000", "-upload", "-writelocal", "-destdir", str(tmp_path),
                  "-maxpackets", "77"))
    assert (s.redis.host, s.redis.port, s.redis.channel) == ("r.local", 7000, "chan")
    assert s.cloudshark.upload_url() == "http://cs.local:8080/api/v1/tok/upload"
    assert s.cloudshark.upload and s.cloudshark.timeout_s == 3
    assert s.write_local and s.local_dir == tmp_path and s.max_packets == 77


def test_go_style_booleans_and_config_alias():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="x.toml")
    add_pcapdaemon_flags(parser)
    assert parser.parse_args(["-upload=false"]).pd_upload is False
    assert parser.parse_args(["--upload"]).pd_upload is True
    assert parser.parse_args(["-config", "y.toml"]).config == "y.toml"
    assert parser.parse_args([]).config == "x.toml"


def test_redis_url_and_tls():
    s = settings("", ("-redisnode", "rediss://user:p%40ss@redis.example:6390"))
    assert (s.redis.tls, s.redis.host, s.redis.port) == (True, "redis.example", 6390)
    assert (s.redis.username, s.redis.password) == ("user", "p@ss")
    assert s.redis.client_kwargs()["ssl"] and "p@ss" not in s.redis.describe()


def test_port_left_out_only_for_the_schemes_own():
    assert settings("[cloudshark]\nport = 443\n").cloudshark.base_url == "https://localhost"
    assert settings("[cloudshark]\nport = 80\nscheme = \"http\"\n").cloudshark.base_url == \
        "http://localhost"
    assert settings("[cloudshark]\nport = 443\nscheme = \"http\"\n").cloudshark.base_url == \
        "http://localhost:443"


@pytest.mark.parametrize("toml, argv, culprit", [
    ("[general]\nmaxpackets = 0\n", (), "maxpackets"),
    ("[general]\nmaxtimeout = \"soon\"\n", (), "maxtimeout"),
    ("[general]\ndefaulttimeout = 100\nmaxtimeout = 10\n", (), "defaulttimeout"),
    ("[general]\nwritelocal = true\nlocaldir = \"/nonexistent/x\"\n", (), "/nonexistent/x"),
    ("[cloudshark]\nupload = true\n", (), "token"),
    ("[cloudshark]\nscheme = \"ftp\"\n", (), "scheme"),
    ("[redis]\nprot = 1\n", (), "prot"),
    ("[redis]\nchannel = \"a b\"\n", (), "channel"),
    ("", ("-redisport", "70000"), "port"),
])
def test_bad_settings_name_the_culprit(toml, argv, culprit):
    with pytest.raises(ConfigError, match=culprit):
        settings(toml, argv)


def test_tags_and_file_names():
    assert additional_tags("acme", 5, ("a", "b"), "public", "n1", "eth0", 512) == (
        "customer:acme,alertid:5,a,b,alias:public,node:n1,interface:eth0,snaplength:512")
    assert additional_tags(None, None, (), None, "n1", "lo", 64) == (
        "node:n1,interface:lo,snaplength:64")
    assert capture_filename("../evil/node", "eth0:1", 17) == "_evil_node-eth0_1-17.pcap"


def test_write_into_never_overwrites_or_escapes(tmp_path):
    first = write_into(tmp_path, "n-lo-1.pcap", b"one")
    second = write_into(tmp_path, "n-lo-1.pcap", b"two")
    assert (first.name, second.name) == ("n-lo-1.pcap", "n-lo-1_2.pcap")
    assert first.read_bytes() == b"one" and second.read_bytes() == b"two"
    for bad in ("../x.pcap", ".hidden", "a/b.pcap"):
        with pytest.raises(ValueError):
            write_into(tmp_path, bad, b"")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n-lo-1.pcap", "n-lo-1_2.pcap"]
