"""Keep and Index, the archive's target fields: FMADIO's units, every option once, File targets
only; a wrong value is one error naming the file, line, target and field."""

from __future__ import annotations

import pytest

from pushcap.config.lua import load_targets_text
from pushcap.config.model import ConfigError, KeepRule


def target(extra: str, mode: str = "File", path: str = "/tmp/out/all") -> str:
    return (f'return {{ Target = {{ {{ Desc = "t", Mode = "{mode}", Path = "{path}", {extra} }} '
            "} }\n")


def load(extra: str, **kwargs):
    return load_targets_text(target(extra, **kwargs), "push.lua")[0]


def test_keep_options_in_fmadio_units():
    t = load('Keep = "--keep-bytes 500e9 --keep-files 1000 --keep-time 86400e9 '
             '--keep-free 12.5", Index = true')
    assert t.keep == KeepRule(500 * 10**9, 1000, 86400 * 10**9, 12.5) and t.indexed
    assert load("").keep is None and not load("").indexed


@pytest.mark.parametrize(("extra", "message"), [
    ('Keep = "--keep-time 86400"', "did you mean 86400e9"),
    ('Keep = "--keep-files 3 --keep-files 4"', "given twice"),
    ('Keep = "--keep-days 3"', "not a Keep option"),
    ('Keep = "--keep-bytes"', "takes a value"),
    ('Keep = "--keep-bytes -5"', "positive whole number"),
    ('Keep = "--keep-free 0"', "above 0"),
    ('Index = "yes"', "must be true"),
])
def test_bad_values_are_refused(extra, message):
    with pytest.raises(ConfigError, match=message) as caught:
        load(extra)
    assert str(caught.value).startswith('push.lua:1: target 1 "t": ')


def test_file_targets_only():
    with pytest.raises(ConfigError, match="File targets only"):
        load("Index = true", mode="rclone", path="remote:bucket/all")
    with pytest.raises(ConfigError, match="Mode flows"):
        load('Keep = "--keep-files 2"', mode="flows", path="udp://127.0.0.1:9000")
