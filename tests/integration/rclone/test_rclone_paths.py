"""rclone paths and credential scrubbing (no server needed, but kept beside the rclone tests)."""

from __future__ import annotations

import pytest

from pushcap.push.rclone_remote import display_path, known_secrets, scrub, split_remote


@pytest.mark.parametrize("path,spec,rel", [
    ("s3:bucket/p/all", "s3:", "bucket/p/all"),
    ("remote:", "remote:", ""),
    ("sftp:/abs/dir/all", "sftp:", "/abs/dir/all"),
    ("s3,region=eu-west-1:bucket/all", "s3,region=eu-west-1:", "bucket/all"),
    (":s3,endpoint='http://h:9000',provider=Minio:b/x/all",
     ":s3,endpoint='http://h:9000',provider=Minio:", "b/x/all"),
    (':local:/tmp/a:b/all', ":local:", "/tmp/a:b/all"),
])
def test_split_remote(path, spec, rel):
    assert split_remote(path) == (spec, rel)


@pytest.mark.parametrize("path", ["/mnt/push/all", "relative/dir:x/all", "no-colon"])
def test_not_a_remote(path):
    with pytest.raises(ValueError, match="not an rclone path"):
        split_remote(path)


def test_display_path_leaves_connection_parameters_out():
    path = ":s3,access_key_id=AKIAEXAMPLE,secret_access_key=s3cr3tvalue:bucket/all"
    assert display_path(path) == ":s3:bucket/all"
    assert display_path("s3,session_token=tok123:b/all") == "s3:b/all"


def test_scrub_known_and_pattern_secrets(monkeypatch):
    monkeypatch.setenv("RCLONE_CONFIG_MYS3_SECRET_ACCESS_KEY", "verysecretvalue")
    monkeypatch.setenv("RCLONE_CONFIG_MYS3_REGION", "eu-west-1")
    secrets = known_secrets(None)
    assert "verysecretvalue" in secrets and "eu-west-1" not in secrets
    text = ('Put "https://bob:hunter22@dav.example/x?X-Amz-Signature=abcdef&X-Amz-Credential=AK/1":'
            " :s3,secret_access_key=inline123:b echo verysecretvalue Authorization: Bearer zzz")
    out = scrub(text, secrets)
    for leaked in ("hunter22", "abcdef", "AK/1", "inline123", "verysecretvalue", "zzz"):
        assert leaked not in out, leaked
    assert "dav.example" in out  # the host stays: the operator needs it


def test_secrets_from_config_file(tmp_path):
    conf = tmp_path / "rclone.conf"
    conf.write_text("[remote]\ntype = sftp\nhost = h\npass = obscuredpass\nkey_pem = PEMDATA\n")
    secrets = known_secrets(str(conf))
    assert {"obscuredpass", "PEMDATA"} <= secrets and "sftp" not in secrets


def test_rclone_python_uses_the_wheel_binary():
    from rclone_python import rclone

    from pushcap.push.rclone_remote import Rclone, RcloneSettings, rclone_binary

    Rclone(RcloneSettings())
    assert rclone.utils.Config().executable_path == str(rclone_binary())
    assert rclone.version().startswith("v1.")  # the wheel's binary answers through the library


def test_building_a_shipper_touches_nothing_and_shows_no_secret(tmp_path):
    """`pushcap check` builds shippers beside a running daemon: no folder, no cleanup, no key."""
    from pathlib import Path

    from pushcap.config.model import NamingRule, PushMode, SplitKind, SplitRule, TargetConfig
    from pushcap.push.ship import make_shipper

    path = ":s3,provider=Minio,access_key_id=AKIDSHOWN,secret_access_key=topsecret99:b/p/all"
    target = TargetConfig(index=1, desc="otf", mode=PushMode.RCLONE, path=path,
                          split=SplitRule(SplitKind.TIME, 60 * 10**9),
                          naming=NamingRule("--filename-epoch-sec-startend"),
                          pipe_cmd="zstd -c -T0", file_suffix=".pcap.zstd")
    shipper = make_shipper(target, Path("b/p/all"), {"spool_dir": str(tmp_path / "spool")})
    assert not (tmp_path / "spool").exists()
    shown = shipper.describe()
    assert shown.startswith(":s3:b/p/all_*.pcap.zstd via rclone, zstd level 3 threads=-1")
    assert "topsecret99" not in shown and "AKIDSHOWN" not in shown
    assert shipper.stats()["files_pending"] == 0
