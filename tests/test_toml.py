"""pcapdaemon.toml parsing: the seed's example file, pushcap's [ring], and clear errors."""

from __future__ import annotations

import pytest

from pushcap.config.model import ConfigError
from pushcap.config.toml import load_daemon_config, parse_daemon_config
from pushcap.config.toml_section import array_table_lines

SEED_EXAMPLE = """
[general]
maxpackets  = 50000
writelocal  = false
localdir    = "/tmp"
snaplength  = 500

[cloudshark]
host        = "cloudshark.org"
scheme      = "https"
port        = 443
token       = "fffffffffffffffffff"
upload      = true

[redis]
host        = "node.running.redis.net"
port        = 6379
channel     = "capture"

[syslog]
priority    = 85
tag         = pcapdaemon

[[interface]]
name        = "eth0"
alias       = ["main", "public"]

[[interface]]
name        = "lo"
alias       = ["local"]
"""


def test_seed_example_loads(tmp_path):
    path = tmp_path / "pcapdaemon.toml"
    path.write_text(SEED_EXAMPLE.replace("tag         = pcapdaemon", 'tag = "pcapdaemon"'))
    config = load_daemon_config(path)
    assert [i.name for i in config.interfaces] == ["eth0", "lo"]
    assert config.resolve_interface("public") == ("eth0",)
    assert config.resolve_interface("lo") == ("lo",)
    assert config.resolve_interface("nope") == ()
    assert config.ring.max_seconds == 60 and config.ring.max_bytes == 256 * 1024 * 1024
    assert config.trigger.cloudshark.token == "fffffffffffffffffff"


def test_seed_example_verbatim_has_a_toml_error_reported_with_its_line(tmp_path):
    path = tmp_path / "pcapdaemon.toml"
    path.write_text(SEED_EXAMPLE)  # `tag = pcapdaemon` is not valid TOML (unquoted string)
    with pytest.raises(ConfigError, match=r"pcapdaemon.toml: .*line 22"):
        load_daemon_config(path)


def test_kernel_buffer_defaults_to_64_mib_and_takes_the_configured_size():
    lo = {"interface": [{"name": "lo"}]}
    assert parse_daemon_config(lo, "t").ring.kernel_buffer_bytes == 64 << 20
    raw = {**lo, "ring": {"kernel_buffer_bytes": 8 << 20}}
    assert parse_daemon_config(raw, "t").ring.kernel_buffer_bytes == 8 << 20


def test_alias_shared_by_two_interfaces():
    config = parse_daemon_config({"interface": [{"name": "eth0", "alias": "wan"},
                                                {"name": "eth1", "alias": ["wan", "x"]}]}, "t")
    assert config.resolve_interface("wan") == ("eth0", "eth1")


@pytest.mark.parametrize("raw, message", [
    ({}, "at least one"),
    ({"interface": [{"name": "lo"}, {"name": "lo"}]}, "listed twice"),
    ({"interface": [{"name": "a" * 16}]},
     "name 'aaaaaaaaaaaaaaaa' is longer than an interface name can be \\(15 characters"),
    ({"interface": [{"name": "lo"}], "ring": {"batch_packets": 1 << 21}},
     r"\[ring\] batch_packets = 2097152: must be at most 1048576"),
    ({"interface": [{"name": "lo; rm -rf /"}]}, "must be an interface name"),
    ({"interface": [{"name": "lo", "speed": 1}]}, "unknown key"),
    ({"interface": [{"name": "lo"}], "ring": {"max_bytes": 10}}, r"\[ring\] max_bytes"),
    ({"interface": [{"name": "lo"}], "ring": {"max_secs": 10}}, "unknown key"),
    ({"interface": [{"name": "lo"}], "ring": {"kernel_buffer_bytes": float("nan")}},
     r"\[ring\] kernel_buffer_bytes = nan: must be a number"),
    ({"interface": [{"name": "lo"}], "ring": {"max_seconds": float("inf")}},
     r"\[ring\] max_seconds = inf: must be a number"),
    ({"interface": [{"name": "lo"}], "ring": {"kernel_buffer_bytes": 4096}},
     r"\[ring\] kernel_buffer_bytes = 4096: must be a number >= 1048576"),
    ({"interface": [{"name": "lo"}], "ring": {"kernel_buffer_bytes": 1 << 31}},
     r"\[ring\] kernel_buffer_bytes = 2147483648: must be at most 1073741824"),
    ({"interface": [{"name": "lo"}], "bogus": {}}, "unknown section"),
    ({"interface": [{"name": "lo"}], "general": {"loglevel": "loud"}}, "loglevel"),
])
def test_bad_config_is_refused_with_the_culprit_named(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_daemon_config(raw, "pcapdaemon.toml")


# Found by tests/fuzz/test_fuzz_toml.py: each of these ended in another exception, or in a
# message of two lines.
@pytest.mark.parametrize("text, message", [
    ("[ring]\nmax_seconds = " + "9" * 400, r"\[ring\] max_seconds \(line 2\) = 9999.*: must be"),
    ("[general]\nmaxtimeout = " + "9" * 400, r"\[general\] maxtimeout \(line 2\) = 9999"),
    ("[general]\nmaxduration = nan", r"\[general\] maxduration \(line 2\) = nan: must be"),
    ('[general]\nmaxtimeout = "' + "9" * 400 + 'h"', r"\[general\] maxtimeout \(line 2\)"),
    ('[redis]\n"a\\nb" = 1', r'\[redis\] "a\\nb": unknown key'),
])
def test_a_value_beyond_a_float_or_an_odd_key_is_refused_in_one_line(tmp_path, text, message):
    path = tmp_path / "pcapdaemon.toml"
    path.write_text(text + '\n[[interface]]\nname = "lo"\n')
    with pytest.raises(ConfigError, match=message) as info:
        load_daemon_config(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("entries, message", [
    ('[[interface]]\nname = "lo"\n\n# the uplink\n[[interface]]\nname = "eth0"\nalais = "x"\n',
     r"\[\[interface\]\] 2 \(line 5\) \(eth0\): unknown key"),
    ('[[interface]]\nname = "lo"\n[[interface]]  # twice\nname = "lo"\n',
     r"\[\[interface\]\] 2 \(line 3\): interface 'lo' is listed twice"),
    ('[[interface]] # first\nname = "lo; rm"\n',
     r"\[\[interface\]\] 1 \(line 1\): name 'lo; rm' must be"),
    ('interface = [{ name = "lo" }, { name = 7 }]\n', r"\[\[interface\]\] 2: name 7 must be"),
])
def test_an_interface_entry_is_named_with_the_line_of_its_header(tmp_path, entries, message):
    """An entry of the array of tables has no key line of its own to name: its `[[interface]]`
    header's line is (an inline array has none, and its message says the entry's number)."""
    path = tmp_path / "pcapdaemon.toml"
    path.write_text(entries)
    with pytest.raises(ConfigError, match=message):
        load_daemon_config(path)


def test_a_header_inside_a_multi_line_string_is_no_entry():
    text = 'note = """\n[[interface]]\n"""\n[[interface]]\nname = "lo"\n[[ interface ]]\n'
    assert array_table_lines(text, "interface") == [4, 6]
