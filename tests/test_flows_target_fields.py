"""A flows target's Pack and DatadogRanges fields (config/flows_fields.py, datadog_ranges.py).

DatadogRanges is read when the file is loaded: a missing or broken ranges file is one error
naming the target's Desc and line, the same rules as `pushcap flows --datadog-ranges`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lua_config_helpers import NAME, TARGET2_LINE, one_target

from pushcap.config.lua import load_targets_text
from pushcap.config.model import ConfigError, DatadogRangesFile, TargetConfig
from pushcap.flows.export import DatadogRanges

FLOWS = {"Mode": '"flows"', "Path": '"udp://127.0.0.1:9000"'}
AT2 = f"{NAME}:{TARGET2_LINE}: target 2"

# The shape of https://ip-ranges.datadoghq.com/ (trimmed): metadata members, services with
# both lists, a service with per-location maps besides its lists.
DATADOG = {
    "version": 67,
    "modified": "2024-01-10-00-00-00",
    "agents": {"prefixes_ipv4": ["3.233.144.0/20", "34.192.34.214/32"],
               "prefixes_ipv6": ["2600:1f18:24e6:b900::/56"]},
    "api": {"prefixes_ipv4": ["3.233.144.0/20"], "prefixes_ipv6": []},
    "synthetics": {"prefixes_ipv4": ["52.9.139.134/32"],
                   "prefixes_ipv4_by_location": {"aws:us-west-1": ["52.9.139.134/32"]},
                   "prefixes_ipv6": [],
                   "prefixes_ipv6_by_location": {}},
}


def second(**fields: str | None) -> TargetConfig:
    return load_targets_text(one_target(**fields), NAME)[1]


def error(**fields: str | None) -> str:
    with pytest.raises(ConfigError) as info:
        load_targets_text(one_target(**fields), NAME)
    return str(info.value)


def ranges_file(tmp_path: Path, content: object, name: str = "ip-ranges.json") -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


# --- Pack -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("lua_value", "pack"), [(None, False), ("false", False), ("true", True)])
def test_pack_good(lua_value, pack):
    assert second(**FLOWS, Pack=lua_value).pack is pack


@pytest.mark.parametrize(("lua_value", "shown"), [('"true"', '"true"'), ("1", "1"),
                                                 ("{}", "<a table>")])
def test_pack_bad(lua_value, shown):
    message = error(**FLOWS, Pack=lua_value)
    assert message.startswith(f'{AT2} "t2": Pack {shown}: must be true (several records')
    assert "\n" not in message


# --- DatadogRanges ----------------------------------------------------------------------------


def test_datadog_ranges_are_read_at_load(tmp_path):
    path = ranges_file(tmp_path, DATADOG)
    target = second(**FLOWS, DatadogRanges=json.dumps(path))
    assert target.datadog_ranges == DatadogRangesFile(path, (
        ("agents", ("3.233.144.0/20", "34.192.34.214/32", "2600:1f18:24e6:b900::/56")),
        ("api", ("3.233.144.0/20",)),
        ("synthetics", ("52.9.139.134/32",)),
    ))
    assert second(**FLOWS).datadog_ranges is None
    lookup = DatadogRanges.from_file(target.datadog_ranges)
    assert lookup.service("34.192.34.214") == "agents"
    assert lookup.service("52.9.139.134") == "synthetics"
    assert lookup.service("2600:1f18:24e6:b9ff::1") == "agents"
    assert lookup.service("192.0.2.1") is None


def test_a_changed_ranges_file_makes_a_changed_target(tmp_path):
    """What a reload compares: the ranges read, not only their path."""
    path = ranges_file(tmp_path, DATADOG)
    before = second(**FLOWS, DatadogRanges=json.dumps(path))
    assert second(**FLOWS, DatadogRanges=json.dumps(path)) == before
    ranges_file(tmp_path, {**DATADOG, "logs": {"prefixes_ipv4": ["192.0.2.0/24"]}})
    assert second(**FLOWS, DatadogRanges=json.dumps(path)) != before


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "cannot be read (No such file or directory); give a copy of Datadog's"),
        ("", "is not JSON (Expecting value: line 1 column 1 (char 0))"),
        ('{"agents": {"prefixes_ipv4": ["1.2.3.4/32"]}', "is not JSON (Expecting ',' delimiter"),
        ([{"prefixes_ipv4": ["1.2.3.4/32"]}], "holds a JSON list, not an object of services"),
        ({"version": 1, "modified": "x"}, "holds no prefixes_ipv4 or prefixes_ipv6 list"),
        ({"agents": {"prefixes_ipv4": "1.2.3.4/32"}},
         "agents.prefixes_ipv4 is not a list of prefixes as strings"),
        ({"agents": {"prefixes_ipv6": ["1.2.3.4/33"]}},
         'agents.prefixes_ipv6 holds "1.2.3.4/33", which is not an IP prefix'),
    ],
)
def test_datadog_ranges_bad_file_is_one_line_naming_the_target(tmp_path, content, words):
    path = str(tmp_path / "ip-ranges.json") if content is None else ranges_file(tmp_path, content)
    message = error(**FLOWS, DatadogRanges=json.dumps(path))
    assert message.startswith(f'{AT2} "t2": DatadogRanges {json.dumps(path)}: ')
    assert words in message, message
    assert "\n" not in message


def test_datadog_ranges_directory_is_refused(tmp_path):
    message = error(**FLOWS, DatadogRanges=json.dumps(str(tmp_path)))
    assert "cannot be read (Is a directory)" in message


@pytest.mark.parametrize(("lua_value", "words"), [('""', "is empty"), ("true", "must be a string")])
def test_datadog_ranges_bad_value(lua_value, words):
    message = error(**FLOWS, DatadogRanges=lua_value)
    assert message.startswith(f'{AT2} "t2": DatadogRanges {lua_value}: {words}')


# --- refused where they mean nothing ----------------------------------------------------------


@pytest.mark.parametrize(("field", "lua_value"), [("Pack", "true"),
                                                  ("DatadogRanges", '"ip-ranges.json"')])
@pytest.mark.parametrize("fields", [{}, {"Mode": '"rclone"', "Path": '"s3:bucket/all"'}])
def test_flows_fields_refused_for_file_and_rclone_targets(fields, field, lua_value):
    message = error(**fields, **{field: lua_value})
    assert message.startswith(f'{AT2} "t2": {field} {lua_value}: is only for Mode flows')
