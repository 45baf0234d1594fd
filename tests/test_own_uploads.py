"""Where an rclone target's uploads go (host, port from the remote's settings, as rclone reads
them) and whether a target's filter selects them (issue 17, item 7)."""

from __future__ import annotations

import pytest

from pushcap.config.model import NamingRule, PushMode, SplitKind, SplitRule, TargetConfig
from pushcap.config.rclone_settings import RcloneSettings
from pushcap.push.rclone_endpoint import remote_endpoint
from pushcap.supervisor.own_uploads import route_to, selects, tcp_packets


@pytest.fixture
def rclone_env(tmp_path, monkeypatch):
    """Only what a test sets: no machine config, no RCLONE_* variables."""
    monkeypatch.setenv("RCLONE_CONFIG", str(tmp_path / "none.conf"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    for key in [k for k in __import__("os").environ if k.startswith("RCLONE_")]:
        if key != "RCLONE_CONFIG":
            monkeypatch.delenv(key)
    return monkeypatch


def test_endpoint_from_environment_remotes(rclone_env):
    rclone_env.setenv("RCLONE_CONFIG_DAV_TYPE", "webdav")
    rclone_env.setenv("RCLONE_CONFIG_DAV_URL", "http://user:secret@127.0.0.1:8123/dav")
    assert remote_endpoint("dav:folder/all", RcloneSettings()) == ("127.0.0.1", 8123)
    rclone_env.setenv("RCLONE_CONFIG_MINIO_TYPE", "s3")
    rclone_env.setenv("RCLONE_CONFIG_MINIO_PROVIDER", "Minio")
    rclone_env.setenv("RCLONE_CONFIG_MINIO_ENDPOINT", "minio.example:9000")
    assert remote_endpoint("minio:b/x", RcloneSettings()) == ("minio.example", 9000)


def test_endpoint_from_the_config_file_through_a_wrapper(tmp_path, rclone_env):
    conf = tmp_path / "rclone.conf"
    conf.write_text("[box]\ntype = sftp\nhost = backup.example\nport = 2222\npass = xyz\n\n"
                    "[secret]\ntype = crypt\nremote = box:enc\npassword = abc\n\n"
                    "[aws]\ntype = s3\nprovider = AWS\nregion = eu-west-1\n")
    settings = RcloneSettings(config=str(conf))
    assert remote_endpoint("box:x/all", settings) == ("backup.example", 2222)
    assert remote_endpoint("secret:x/all", settings) == ("backup.example", 2222)
    assert remote_endpoint("aws:bucket/all", settings) == ("s3.eu-west-1.amazonaws.com", 443)


def test_endpoint_precedence_connection_string_then_flags_then_environment(rclone_env):
    rclone_env.setenv("RCLONE_CONFIG_DAV_TYPE", "webdav")
    rclone_env.setenv("RCLONE_CONFIG_DAV_URL", "http://env.example")
    flags = RcloneSettings(flags=("--webdav-url", "https://flag.example:8443"))
    assert remote_endpoint("dav:x", RcloneSettings()) == ("env.example", 80)
    assert remote_endpoint("dav:x", flags) == ("flag.example", 8443)
    assert remote_endpoint("dav,url='http://spec.example:81':x", flags) == ("spec.example", 81)
    assert remote_endpoint(":sftp,host=10.1.2.3:x/all", RcloneSettings()) == ("10.1.2.3", 22)


def test_no_endpoint_where_the_settings_do_not_say(rclone_env):
    assert remote_endpoint(":local:/tmp/x", RcloneSettings()) is None
    assert remote_endpoint("unknown:x", RcloneSettings()) is None
    rclone_env.setenv("RCLONE_CONFIG_LOOP_TYPE", "alias")
    rclone_env.setenv("RCLONE_CONFIG_LOOP_REMOTE", "loop:x")
    assert remote_endpoint("loop:x", RcloneSettings()) is None  # a loop ends


def target(bpf: str | None) -> TargetConfig:
    return TargetConfig(1, "t", PushMode.FILE, "/tmp/t", SplitRule(SplitKind.TIME, 60 * 10**9),
                        NamingRule("--filename-epoch-sec"), filter_bpf=bpf)


@pytest.mark.parametrize("linktype", [1, 101, 113, 276])
@pytest.mark.parametrize(("bpf", "captured"), [
    (None, True), ("tcp", True), ("tcp port 8123", True), ("host 10.0.0.9", True),
    ("udp", False), ("not (host 10.0.0.9 and tcp port 8123)", False), ("tcp port 80", False),
])
def test_a_filter_selects_the_upload_connection_as_libpcap_would(linktype, bpf, captured):
    packets = tcp_packets(linktype, "10.0.0.1", "10.0.0.9", 8123)
    assert selects(target(bpf), linktype, packets) is captured


def test_ipv6_uploads():
    packets = tcp_packets(1, "2001:db8::1", "2001:db8::9", 443)
    assert selects(target("ip6 and tcp port 443"), 1, packets)
    assert not selects(target("ip and tcp"), 1, packets)


def test_a_loopback_address_routes_through_lo():
    assert route_to("127.0.0.1")[0] == "lo"
