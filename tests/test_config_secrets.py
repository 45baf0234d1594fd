"""push_realtime.lua errors never show a credential, yet still say where the problem is.

An rclone Path can be a connection string holding keys and a URL can carry user:password@; every
kind of error that quotes a value (a field rule, a duplicate Path, a target that is no table, Lua's
own syntax and runtime errors) must show it without them.
"""

from __future__ import annotations

import pytest
from lua_config_helpers import NAME, load_error, one_target

from pushcap.config.field_check import conceal, lua_repr
from pushcap.config.lua import load_push_config_text

# (a Path carrying credentials, the secrets in it, how the Path is shown in a message)
SHAPES = [
    (":s3,access_key_id=AKIDEXAMPLE7,secret_access_key=S3SECRETxyz:bucket/x",
     ("AKIDEXAMPLE7", "S3SECRETxyz"), ":s3:bucket/x"),
    (":webdav,url='http://davuser:DAVPASSword@h',bearer_token=BEARERtok123:dav/x",
     ("DAVPASSword", "BEARERtok123"), ":webdav:dav/x"),
    ("remote,pass=OBSCUREDpw1,user=bob:dir/x", ("OBSCUREDpw1",), "remote:dir/x"),
    (":azureblob,account=acct,key=AZUREkey0001:c/x", ("AZUREkey0001",), ":azureblob:c/x"),
    ("sftp://sshuser:SFTPpass99@host/x", ("SFTPpass99",), "sftp://***@host/x"),
]
IDS = ["s3-keys", "webdav-url-and-token", "named-remote-pass", "azure-key", "url-password"]


def assert_clean(message: str, secrets: tuple[str, ...]) -> None:
    for secret in secrets:
        assert secret not in message
        assert secret[:5] not in message  # not even the start of one, cut by the 80-char limit


def lua_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# (fields of target 2, the start every such message keeps); {p} is the secret-bearing Path
FIELD_ERRORS = [
    ({"Mode": '"rclone"', "Path": "{p}/"}, 'target 2 "t2": Path "{shown}/.x": the file prefix'),
    ({"Mode": '"File"', "Path": "{p}/"}, 'target 2 "t2": Path "{shown}/.x": the file prefix'),
    ({"Mode": '"flows"', "Path": "{p}"}, 'target 2 "t2": Path "{shown}": must be "udp://'),
    ({"Mode": '"File"', "Path": '"out/a"', "Split": "{p}"}, 'target 2 "t2": Split "'),
    ({"Mode": '"File"', "Path": '"out/a"', "Interval": "{p}"}, 'target 2 "t2": Interval "'),
    ({"Mode": '"File"', "Path": '"out/a"', "Interface": "{p}"}, 'target 2 "t2": Interface "'),
    ({"Mode": '"File"', "Path": '"out/a"', "FileName": "{p}"}, 'target 2 "t2": FileName "'),
    ({"Mode": "{p}"}, 'target 2 "t2": Mode "'),
    ({"Desc": "{p}\tx"}, 'target 2: Desc "'),  # a Desc is any printable text: a tab is not
]


@pytest.mark.parametrize(("fields", "start"), FIELD_ERRORS,
                         ids=[f"{f}-{i}" for i, (f, _) in enumerate(FIELD_ERRORS)])
@pytest.mark.parametrize(("path", "secrets", "shown"), SHAPES, ids=IDS)
def test_field_errors_hide_credentials(path, secrets, shown, fields, start):
    lua_fields = {k: lua_str(path + "/.x" if v == "{p}/" else path + v[3:]) if "{p}" in v
                  else v for k, v in fields.items()}
    message = load_error(one_target(**lua_fields))
    assert message.startswith(f"{NAME}: {start.format(shown=shown)}"), message
    assert_clean(message, secrets)


@pytest.mark.parametrize(("path", "secrets", "shown"), SHAPES, ids=IDS)
def test_a_shared_path_is_named_without_credentials(path, secrets, shown):
    text = one_target(Mode='"rclone"', Path=lua_str(path)).replace(
        'Mode = "File", Path = "out/push/t1"', f'Mode = "rclone", Path = {lua_str(path)}')
    notices = load_push_config_text(text, NAME).notices
    assert notices[1].startswith(f'{NAME}: target 2 "t2": Path "{shown}" is shared by targets')
    for notice in notices:
        assert_clean(notice, secrets)


@pytest.mark.parametrize(("path", "secrets", "shown"), SHAPES, ids=IDS)
def test_structure_errors_hide_credentials(path, secrets, shown):
    message = load_error(f"return {{Target = {{{lua_str(path)}}}}}")
    assert message.startswith(f"{NAME}: target 1: is ")
    assert_clean(message, secrets)
    # a field named by mistake with the value: targets.py quotes an unknown field's name
    message = load_error(one_target(**{f"[{lua_str(path)}]": "1"}))
    assert message.startswith(f'{NAME}: target 2 "t2": unknown field ')
    assert_clean(message, secrets)


@pytest.mark.parametrize(("path", "secrets", "shown"), SHAPES, ids=IDS)
def test_lua_errors_keep_their_line_but_hide_credentials(path, secrets, shown):
    # Lua quotes the source of an unfinished string, and a config may error() with a value
    message = load_error(f'local Config = {{}}\nlocal p = "{path}\nreturn Config\n')
    assert message.startswith(f"{NAME}:2: unfinished string near ")
    assert_clean(message, secrets)
    message = load_error(f"local Config = {{}}\nlocal p = {lua_str(path)}\n"
                         'error("no such bucket: " .. p)\n')
    assert message.startswith(f"{NAME}:3: no such bucket: ")
    assert_clean(message, secrets)


def test_a_rule_quoting_part_of_the_value_leaks_nothing():
    # the flows rule quotes the host it could not read, here with a token as the URL's user name
    token = "TOKEN" + "abcdefghij" * 2
    message = load_error(one_target(Mode='"flows"', Path=f'"udp://{token}@collector:9000"'))
    assert message.startswith(f'{NAME}: target 2 "t2": Path "udp://***@collector:9000": ')
    assert "is not an IPv4 address" in message
    assert token not in message


@pytest.mark.parametrize("field", ["Path", "Split", "Interval"])
def test_a_secret_built_by_lua_code_is_hidden_too(field):
    # no string literal of the file holds the whole key, so only the value itself can tell
    built = '":s3,secret_access_key=" .. string.rep("Q", 3) .. "BUILTsecret:bucket/x/.y"'
    fields = {"Mode": '"rclone"', "Path": '"s3:bucket/x"', field: built}
    message = load_error(one_target(**fields))
    assert message.startswith(f'{NAME}: target 2 "t2": {field} "')
    assert "QQQBUILT" not in message


def test_the_cut_to_80_characters_comes_after_hiding():
    value = ":s3,region=eu" + "x" * 37 + ",secret_access_key=CUTSECRETvalue123:" + "y" * 30
    shown = lua_repr(value)
    assert shown.endswith('..."') and "CUTSE" not in shown and "secret_acc" in shown


def test_conceal_keeps_what_helps_and_hides_tokens():
    assert conceal("udp://mon@collector:9000") == "udp://mon@collector:9000"  # a login name
    token = "ghp_" + "A1b2C3d4" * 4
    assert token not in conceal(f"https://{token}@github.com/x")
    assert conceal("-- split SECRETvalue42 --", "bearer_token=SECRETvalue42") == (
        "-- split *** --")


@pytest.mark.timeout(30)  # a hang guard: the quadratic scan took hours at this size
def test_scrubbing_a_huge_value_is_linear():
    """Issue 17, item 11: every position of a long run of scheme characters started a new URL
    scan to the run's end. A megabyte pasted into a field must still give its message."""
    from pushcap.config.field_check import conceal
    from pushcap.config.secrets import scrub, url_secrets

    huge = "A" * 1_000_000
    assert scrub(huge) == huge and url_secrets(huge) == set()
    assert conceal(huge + " https://u:pw123456@h/x").endswith("https://***@h/x")


@pytest.mark.parametrize("text", ["1https://user:pa55word@host", "-https://user:pa55word@host",
                                  "...https://ghp_abcdefghijklmnopqrstuvwx@github.com"])
def test_a_url_after_digits_or_dots_is_still_scrubbed(text):
    from pushcap.config.secrets import scrub

    assert "pa55word" not in scrub(text) and "ghp_" not in scrub(text)
    assert scrub(text).endswith(("***@host", "***@github.com"))
