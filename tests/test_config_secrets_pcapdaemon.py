"""pcapdaemon.toml and its flags: an error names the key, file and line (or the flag), never a
credential's value (CloudShark token, Redis password, a password inside a redis:// URL)."""

from __future__ import annotations

import argparse

import pytest

from pushcap.config.model import ConfigError
from pushcap.config.pcapdaemon import add_pcapdaemon_flags
from pushcap.config.toml import key_lines, load_daemon_config

BASE = '\n[[interface]]\nname = "lo"\n'


def error(tmp_path, toml: str, argv: tuple[str, ...] = ()) -> str:
    path = tmp_path / "pcapdaemon.toml"
    path.write_text(toml + BASE)
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_pcapdaemon_flags(parser)
    with pytest.raises(ConfigError) as info:
        load_daemon_config(path, parser.parse_args(list(argv)))
    return str(info.value)


@pytest.mark.parametrize(("toml", "where", "secret"), [
    ('[cloudshark]\nhost = "cs"\ntoken = 987654321\n', "[cloudshark] token (line 3)", "987654321"),
    ('[cloudshark]\ntoken = ["CSTOKENabc"]\n', "[cloudshark] token (line 2)", "CSTOKENabc"),
    ('[cloudshark]\ntoken = ""\n', "[cloudshark] token (line 2)", "''"),
    ('[redis]\nport = 6379\nauth = 31337\n', "[redis] auth (line 3)", "31337"),
    ('[redis]\n\nauth = { pw = "REDISpw99" }\n', "[redis] auth (line 3)", "REDISpw99"),
    ('[redis]\nhost = ["redis://u:REDISpw99@h"]\n', "[redis] host (line 2)", "REDISpw99"),
    ('[redis]\nhost = "redis://u:REDISpw99@h:port"\n', "[redis] host (line 2)", "REDISpw99"),
    ('[redis]\natuh = "REDISpw99"\n', "[redis] atuh (line 2): unknown key", "REDISpw99"),
    ('[cloudshark]\ntokn = "CSTOKENabc"\n', "[cloudshark] tokn (line 2): unknown key",
     "CSTOKENabc"),
    ('[cloudshark]\nupload = true\ntoken = "CSTOKEN abc"\n', "[cloudshark] token (line 3)",
     "CSTOKEN"),
])
def test_file_errors_name_key_and_line_not_the_secret(tmp_path, toml, where, secret):
    message = error(tmp_path, toml)
    assert message.startswith(f"pcapdaemon.toml: {where}"), message
    assert secret not in message


@pytest.mark.parametrize(("argv", "start", "secret"), [
    (("-redisnode", "redis://u:REDISpw99@h:notaport"), "-redisnode: not a valid", "REDISpw99"),
    (("-redisnode", "redis://u:REDISpw99@[::1"), "-redisnode: not a valid", "REDISpw99"),
    (("-upload", "-cstoken", "CSTOKEN abc"), "-cstoken: CloudShark upload is on", "CSTOKEN"),
    (("-cshost", "https://u:CSpass1234@cs.example"), "CloudShark host", "CSpass1234"),
])
def test_flag_errors_name_the_flag_not_the_secret(tmp_path, argv, start, secret):
    message = error(tmp_path, "", argv)
    assert message.startswith(start), message
    assert secret not in message


def test_a_token_after_a_boolean_flag_is_not_echoed(capsys):
    parser = argparse.ArgumentParser()
    add_pcapdaemon_flags(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["-upload", "CSTOKENabc123"])  # `-cstoken` forgotten
    err = capsys.readouterr().err
    assert "-upload" in err and "not a boolean" in err and "CSTOKENabc123" not in err


def test_a_logged_daemon_config_shows_no_credential(tmp_path):
    path = tmp_path / "pcapdaemon.toml"
    path.write_text('[redis]\nhost = "redis://u:REDISpw99@h"\nauth = "REDISauth1"\n'
                    '[cloudshark]\ntoken = "CSTOKENabc"\n' + BASE)
    config = load_daemon_config(path)
    assert config.trigger.redis.password == "REDISpw99"  # the URL's password wins over auth
    assert config.trigger.redis.username == "u" and config.trigger.redis.host == "h"
    assert config.trigger.cloudshark.token == "CSTOKENabc"
    shown = repr(config)
    assert "host='h'" in shown and "username='u'" in shown  # the rest is shown
    assert not any(s in shown for s in ("REDISpw99", "REDISauth1", "CSTOKENabc"))


def test_key_lines_follow_tables_and_skip_strings_and_arrays():
    text = ('top = 1\n[general]\nnode = "a"\n"quoted" = 2\nnote = """\nauth = "x"\n"""\n'
            "[[interface]]\nname = 1\n[redis] # r\nauth = 'y'\n")
    assert key_lines(text) == {"": {"top": 1}, "general": {"node": 3, "quoted": 4, "note": 5},
                               "redis": {"auth": 11}}
