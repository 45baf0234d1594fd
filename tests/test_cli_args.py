"""`pushcap` argument handling in cli.main, in process."""

from __future__ import annotations

import pytest

from pushcap import cli


@pytest.mark.parametrize("words", [
    ["trigger", "--node", "any", "--interface", "lo", "--redischannel=--"],
    ["trigger", "--node", "any", "--interface=--"],
    ["flows", "--read", "x.pcap", "--interval=--"],
    ["replay", "x.pcap", "--lua=--"],
])
def test_an_option_given_as_equals_double_dash_is_a_usage_error(words, capsys):
    """Found by tests/fuzz/test_fuzz_cli.py: Python 3.11's argparse makes `--opt=--` an empty
    list whatever the option's type, which reached the code as a value (TypeError, "unexpected")."""
    with pytest.raises(SystemExit) as info:
        cli.main(words)
    assert info.value.code == 2
    assert "`=--` is no value" in capsys.readouterr().err.splitlines()[-1]


def test_an_error_quoting_a_newline_is_printed_in_one_line(tmp_path, capsys):
    """Found by tests/fuzz/test_fuzz_cli.py: a file name with a newline (or a config's own
    `error("a\\nb")`) made `pushcap: error: ...` two lines."""
    lua = tmp_path / "push.lua"
    lua.write_text(f'return {{ Target = {{ {{ Desc = "a", Mode = "File", '
                   f'Path = "{tmp_path}/out/a" }} }} }}\n')
    assert cli.main(["replay", str(tmp_path / "a\nb.pcap"), "--lua", str(lua)]) == 1
    assert capsys.readouterr().err.endswith("a\\nb.pcap: No such file or directory\n")
    lua.write_text('error("multi\\nline")\n')
    (tmp_path / "x.pcap").write_bytes(b"\xd4\xc3\xb2\xa1" + bytes(20))
    assert cli.main(["replay", str(tmp_path / "x.pcap"), "--lua", str(lua)]) == 1
    assert capsys.readouterr().err == f"pushcap: error: {lua}:1: multi\\nline\n"
