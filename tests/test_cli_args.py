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


def test_status_and_reload_say_a_config_name_holding_a_newline_in_one_line(tmp_path, capsys):
    """Found by tests/fuzz/test_fuzz_cli.py: `pushcap status --config $'a\\nb'` printed its
    error on two lines (status_command.py printed the message raw; cli.main's errors were
    already one line)."""
    for command in ("status", "reload"):
        assert cli.main([command, "--config", str(tmp_path / "a\nb.toml")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("pushcap: error: "), err
        assert "a\\nb.toml" in err


def test_check_refuses_a_cstimeout_that_is_no_number_of_seconds_in_one_line(tmp_path, capsys):
    """Found by tests/fuzz/test_fuzz_cli.py: `pushcap check -cstimeout nan` (inf, 1e400)
    printed OK; 0 stays pcapdaemon's "not set"."""
    lua = tmp_path / "push.lua"
    lua.write_text(f'return {{ Target = {{ {{ Desc = "a", Mode = "File", '
                   f'Path = "{tmp_path}/out/a" }} }} }}\n')
    toml = tmp_path / "pcapdaemon.toml"
    toml.write_text('[[interface]]\nname = "lo"\n')
    base = ["check", "--lua", str(lua), "--config", str(toml)]
    for value in ("nan", "inf", "1e400", "-1"):
        assert cli.main([*base, "-cstimeout", value]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("pushcap: error: -cstimeout "), err
    assert cli.main([*base, "-cstimeout", "0"]) == 0
    assert cli.main([*base, "-cstimeout", "2.5"]) == 0


def test_trigger_says_a_redis_error_holding_a_newline_in_one_line(tmp_path, capsys, monkeypatch):
    """The same rule for `pushcap trigger`, whose Redis errors were printed raw."""
    import redis

    class Refusing:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def pubsub(self, **kwargs):
            raise redis.ConnectionError("Error 111 connecting\nto 127.0.0.1:1")

        def close(self) -> None:
            pass

    monkeypatch.setattr(redis, "Redis", Refusing)
    toml = tmp_path / "pcapdaemon.toml"
    toml.write_text('[[interface]]\nname = "lo"\n')
    assert cli.main(["trigger", "--node", "any", "--interface", "lo", "--config", str(toml),
                     "--redisnode", "127.0.0.1", "--redisport", "1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Error 111 connecting\\nto 127.0.0.1:1" in err, err
