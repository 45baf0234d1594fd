"""Config text and error capture that the push_realtime.lua and target-field tests build on."""

from __future__ import annotations

import re

import pytest

from pushcap.config.lua import load_targets_text
from pushcap.config.model import ConfigError

NAME = "push_realtime.lua"

# FMADIO's documented example, verbatim apart from the paths
SEED = """\
local Config = {}

Config.Target = {}

-- push all pcap data to /mnt/remote0/push/all_*.pcap
table.insert(Config.Target, 
{
    Desc      = "pcap-all",
    Mode      = "File",
    Path      = "/tmp/pushcap-test/push/all",
    Split     = "--split-time 60e9",
    FileName  = "--filename-epoch-sec-startend",
    FilterBPF = nil 
})

-- push all tcp data to /mnt/remote0/push/tcp_*.pcap
table.insert(Config.Target, 
{
    Desc      = "pcap-tcp", 
    Mode      = "File", 
    Path      = "/tmp/pushcap-test/push/tcp",   
    Split     = "--split-time 60e9", 
    FileName  = "--filename-epoch-sec-startend", 
    FilterBPF = "tcp" 
})

return Config
"""  # noqa: W291 (trailing spaces are part of the verbatim example)


TARGET2_LINE = 3  # where one_target() writes target 2's table, all its fields on that line


def one_target(**fields: str) -> str:
    """Config text with target 1 valid and target 2 built from `fields` (Lua expressions)."""
    body = {"Desc": '"t2"', "Mode": '"File"', "Path": '"out/push/t2"', **fields}
    items = ", ".join(f"{k} = {v}" for k, v in body.items() if v is not None)
    return (
        "local Config = {Target = {}}\n"
        'table.insert(Config.Target, {Desc = "t1", Mode = "File", Path = "out/push/t1"})\n'
        f"table.insert(Config.Target, {{{items}}})\n"
        "return Config\n"
    )


# `push_realtime.lua:12: target 2 ...`: the start of a message about a target written on line 12
_TARGET_AT_LINE = re.compile(rf"{re.escape(NAME)}:[0-9]+: (?=target [0-9]+[ :])")


def load_error(text: str, *, line: bool = False) -> str:
    """The ConfigError loading `text` raises.

    A message about a target starts `<file>:<line>: target <i>`; without `line` that line number
    is dropped (`<file>: target <i>`), for the tests about what a message says rather than where
    it points, which test_lua_lines.py checks on its own texts. Lua's own `<file>:<line>:
    <error>` messages are returned whole.
    """
    with pytest.raises(ConfigError) as info:
        load_targets_text(text, NAME)
    message = str(info.value)
    return message if line else _TARGET_AT_LINE.sub(f"{NAME}: ", message, count=1)
