"""`pushcap trigger` reads [general], [redis] and [cloudshark] of the daemon's file itself."""

from __future__ import annotations

import argparse
import re

import pytest

from pushcap.config.model import ConfigError
from pushcap.trigger.command import _load_config, _settings, add_trigger_parser, wait_s


def trigger_args(config) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_trigger_parser(parser.add_subparsers())
    return parser.parse_args(["trigger", "--node", "n", "--interface", "lo", "--config",
                              str(config)])


@pytest.mark.parametrize(("data", "says"), [
    (b"\xff[redis]\n", "is not UTF-8 text"),
    (b"a = " + b"[" * 3000 + b"]" * 3000, "nested too deeply"),
    (b"redis = 5\n", "[redis] must be a table"),
    (b"general = []\n", "[general] must be a table"),
    (b"cloudshark = 'x'\n", "[cloudshark] must be a table"),
])
def test_a_file_trigger_cannot_use_is_a_config_error(tmp_path, data, says):
    """Found by tests/fuzz/test_fuzz_toml.py: a UnicodeDecodeError, a RecursionError, a
    TypeError or an AttributeError before (`pushcap trigger` said "unexpected")."""
    path = tmp_path / "pcapdaemon.toml"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match=re.escape(says)):
        config = _load_config(path)
        _settings(trigger_args(path), config)
        wait_s(trigger_args(path), config, 1_700_000_000.0)


@pytest.mark.parametrize("value", ["9" * 400, "1e400", '"' + "9" * 400 + 'h"', "nan"])
def test_a_timeout_beyond_any_use_falls_back_to_the_default_wait(tmp_path, value):
    """An integer beyond a float raised OverflowError; inf or nan made the wait endless."""
    path = tmp_path / "pcapdaemon.toml"
    path.write_text(f"[general]\ndefaulttimeout = {value}\n[cloudshark]\ntimeout = {value}\n")
    wait, _ = wait_s(trigger_args(path), _load_config(path), 1_700_000_000.0)
    assert wait == wait_s(trigger_args(path), {}, 1_700_000_000.0)[0]
