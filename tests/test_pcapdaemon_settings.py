"""Trigger settings: pcapdaemon's defaults, its TOML keys, and its flags overriding the file."""

from __future__ import annotations

import argparse
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest

from pushcap.config.model import ConfigError
from pushcap.config.pcapdaemon import add_pcapdaemon_flags, check_local_dir, pcapdaemon_flags
from pushcap.config.toml import parse_daemon_config
from pushcap.defaults import TRIGGER_LOCAL_DIR as LOCAL_DIR
from pushcap.trigger.cloudshark import additional_tags
from pushcap.trigger.delivery import capture_filename, write_into
from pushcap.trigger.local_dir import prepare_local_dir

BASE = '[[interface]]\nname = "lo"\n'
REPO = Path(__file__).resolve().parent.parent


def settings(toml: str = "", argv: tuple[str, ...] = (), create_local_dir: bool = True,
             **options):
    """Trigger settings as `run` makes them (create_local_dir: then the daemon's start makes
    the default writelocal folder) or as `check` does (False: the folder is checked, nothing
    is created)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_pcapdaemon_flags(parser)
    flags = pcapdaemon_flags(parser.parse_args(list(argv)))
    result = parse_daemon_config(tomllib.loads(toml + BASE), "t.toml", None, flags,
                                 **options).trigger
    if create_local_dir:
        prepare_local_dir(result, "t.toml")
    else:
        check_local_dir(result, "t.toml")
    return result


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
    ("[general]\nmaxpackets = -1\n", (), "maxpackets"),  # 0 is pcapdaemon's "not set"
    ("[general]\nmaxtimeout = \"soon\"\n", (), "maxtimeout"),
    ("[general]\ndefaulttimeout = 100\nmaxtimeout = 10\n", (), "defaulttimeout"),
    ("[general]\nwritelocal = true\nlocaldir = \"/nonexistent/x\"\n", (), "/nonexistent/x"),
    ("[cloudshark]\nupload = true\n", (), "token"),
    ("[cloudshark]\nscheme = \"ftp\"\n", (), "scheme"),
    ("[redis]\nprot = 1\n", (), "prot"),
    ("[redis]\nchannel = \"a b\"\n", (), "channel"),
    ("", ("-redisport", "70000"), "port"),
    # found by tests/fuzz/test_fuzz_cli.py: `check -cstimeout nan` (inf, 1e400) printed OK
    ("", ("-cstimeout", "nan"), "^-cstimeout nan: must be 0.001 to"),
    ("", ("-cstimeout", "inf"), "^-cstimeout inf: "),
    ("", ("-cstimeout", "1e400"), "^-cstimeout inf: "),
    ("", ("-cstimeout=-inf",), "^-cstimeout -inf: "),
    ("", ("-cstimeout", "-1"), "^-cstimeout -1: "),
    ("", ("-cstimeout", "1e-4"), "^-cstimeout 0.0001: "),
    ("", ("-cstimeout", "1e9"), "^-cstimeout 1e[+]09: "),
])
def test_bad_settings_name_the_culprit(toml, argv, culprit):
    with pytest.raises(ConfigError, match=culprit):
        settings(toml, argv)


def test_writelocal_default_folder_outlives_the_service():
    # /tmp would be the unit's PrivateTmp: emptied at every stop, invisible to operators
    assert settings().local_dir == Path("/var/lib/pushcap/captures") == Path(LOCAL_DIR)
    unit = (REPO / "etc" / "pushcap.service").read_text().splitlines()
    assert "StateDirectory=pushcap" in unit and "StateDirectoryMode=0750" in unit
    state_dir = Path("/var/lib/pushcap")
    assert state_dir in Path(LOCAL_DIR).parents
    shipped = tomllib.loads((REPO / "etc" / "pcapdaemon.toml").read_text())
    assert "localdir" not in shipped["general"]  # the default applies, as documented there


def test_writelocal_creates_the_default_folder_with_mode_0750(tmp_path):
    folder = tmp_path / "state" / "captures"
    umask = os.umask(0o077)  # mkdir's mode alone would give 0700 here
    try:
        s = settings("[general]\nwritelocal = true\n", default_local_dir=folder)
    finally:
        os.umask(umask)
    assert s.write_local and s.local_dir == folder
    for level in (folder, folder.parent):
        assert stat.S_IMODE(level.stat().st_mode) == 0o750
    assert settings("[general]\nwritelocal = true\n", default_local_dir=folder).local_dir == folder
    typo = tmp_path / "captrues"  # a folder the config names must exist: a typo is no new folder
    with pytest.raises(ConfigError, match="captrues does not exist"):
        settings("", ("-writelocal", "-destdir", str(typo)), default_local_dir=folder)
    assert not typo.exists()


def test_a_check_does_not_create_the_default_folder(tmp_path):
    folder = tmp_path / "captures"
    s = settings("", ("-writelocal",), default_local_dir=folder, create_local_dir=False)
    assert s.local_dir == folder and not folder.exists()


@pytest.mark.parametrize("create", [True, False])
def test_default_folder_that_cannot_be_created_is_a_clear_error(tmp_path, create):
    """Also for a check (create=False), which must not say OK where the daemon's start fails."""
    (tmp_path / "state").write_text("a file where a folder should be")
    with pytest.raises(ConfigError, match=r"t.toml: writelocal is on but its default folder "
                       r".*/state/captures cannot be created: .*StateDirectory=pushcap"):
        settings("[general]\nwritelocal = true\n", default_local_dir=tmp_path / "state/captures",
                 create_local_dir=create)


@pytest.mark.parametrize("link", ["dangling", "loop"])
@pytest.mark.parametrize("create", [True, False])
def test_a_default_folder_behind_a_broken_symlink_is_refused(tmp_path, link, create):
    state = tmp_path / "state"
    state.symlink_to(tmp_path / "nowhere" / "deeper" if link == "dangling" else state)
    with pytest.raises(ConfigError, match=r"default folder .*/state/captures cannot be created"):
        settings("[general]\nwritelocal = true\n", default_local_dir=state / "captures",
                 create_local_dir=create)
    assert not (tmp_path / "nowhere").exists()


def test_braces_in_the_config_file_name_are_only_text(tmp_path):
    (tmp_path / "state").write_text("a file where a folder should be")
    config = parse_daemon_config(tomllib.loads(BASE), "site{a}.toml", None, {"writelocal": True},
                                 default_local_dir=tmp_path / "state" / "captures")
    with pytest.raises(ConfigError, match=r"^site\{a\}\.toml: writelocal is on"):
        check_local_dir(config.trigger, config.source_file)


CHECK_AS_OTHER_USER = """
import sys
from pathlib import Path
from pushcap.config.model import ConfigError
from pushcap.config.pcapdaemon import check_local_dir
from pushcap.config.toml import parse_daemon_config
try:
    config = parse_daemon_config({"interface": [{"name": "lo"}]}, "t.toml", None,
                                 {"writelocal": True}, default_local_dir=Path(sys.argv[1]))
    check_local_dir(config.trigger, "t.toml")
except ConfigError as exc:
    print(exc)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the check as another user")
def test_a_check_by_a_user_who_cannot_create_the_default_folder_is_refused():
    """`pushcap check` run by a user without StateDirectory: `run` would fail, so check does."""
    base = Path(tempfile.mkdtemp(prefix="pushcap-state-"))
    try:
        base.chmod(0o755)  # root's folder: nobody may look in, not write
        probe = subprocess.run([sys.executable, "-c", "import pushcap"], user="nobody",
                               capture_output=True, timeout=60)
        if probe.returncode:
            pytest.skip("user nobody cannot read this checkout")
        folder = base / "pushcap" / "captures"
        out = subprocess.run([sys.executable, "-c", CHECK_AS_OTHER_USER, str(folder)],
                             user="nobody", capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert f"default folder {folder} cannot be created: this user cannot write into " \
               f"{base}" in out.stdout
        assert not folder.parent.exists()
    finally:
        shutil.rmtree(base)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_folder_this_user_cannot_write_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    with pytest.raises(ConfigError, match="cannot write into"):
        settings("", ("-writelocal", "-destdir", str(folder)))


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
