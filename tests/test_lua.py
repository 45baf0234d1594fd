"""push_realtime.lua loading: the seed example and every field's good and bad forms."""

from __future__ import annotations

from pathlib import Path

import pytest
from lua_config_helpers import NAME, SEED, TARGET2_LINE, load_error, one_target

from pushcap import defaults
from pushcap.config.lua import load_push_config_text, load_targets, load_targets_text
from pushcap.config.model import PushMode, SplitKind, SplitRule

REPO = Path(__file__).resolve().parent.parent
AT2 = f"{NAME}:{TARGET2_LINE}"  # where one_target() writes target 2


def second(**fields: str):
    return load_targets_text(one_target(**fields), NAME)[1]


# --- good configs -----------------------------------------------------------------------------


def test_seed_example_loads(tmp_path):
    path = tmp_path / NAME
    path.write_text(SEED)
    targets = load_targets(path)
    assert [t.index for t in targets] == [1, 2]
    all_, tcp = targets
    assert (all_.desc, all_.mode, all_.path) == (
        "pcap-all",
        PushMode.FILE,
        "/tmp/pushcap-test/push/all",
    )
    assert all_.split == SplitRule(SplitKind.TIME, 60_000_000_000)
    assert all_.naming.mode == "--filename-epoch-sec-startend" and all_.naming.strftime is None
    assert all_.filter_bpf is None and all_.interface is None
    assert (tcp.desc, tcp.path, tcp.filter_bpf) == ("pcap-tcp", "/tmp/pushcap-test/push/tcp", "tcp")


def test_shipped_config_loads():
    targets = load_targets(REPO / "etc" / "push_realtime.lua")
    assert [(t.desc, t.path, t.filter_bpf) for t in targets] == [
        ("pcap-all", "out/push/all", None),
        ("pcap-tcp", "out/push/tcp", "tcp"),
    ]
    assert all(t.split == SplitRule(SplitKind.TIME, 60_000_000_000) for t in targets)


def test_defaults_apply_when_split_and_filename_are_absent():
    target = second()
    assert target.split == SplitRule(SplitKind.TIME, 60_000_000_000)
    assert target.naming.mode == defaults.DEFAULT_FILENAME


def test_targets_as_a_list_literal_and_lua_computation():
    text = """
    local dirs = {"a", "b", "c"}
    local Config = {Target = {}}
    for i, d in ipairs(dirs) do
      Config.Target[#Config.Target + 1] = {
        Desc = "t-" .. d, Mode = "File", Path = string.format("out/%s/pcap", d),
        Split = "--split-byte " .. tostring(2 ^ 20 // 1),
      }
    end
    return Config
    """
    targets = load_targets_text(text, NAME)
    assert [t.path for t in targets] == ["out/a/pcap", "out/b/pcap", "out/c/pcap"]
    assert targets[2].split == SplitRule(SplitKind.BYTE, 1_048_576)


@pytest.mark.parametrize(
    ("lua_value", "expected"),
    [
        ('"--split-time 60e9"', SplitRule(SplitKind.TIME, 60_000_000_000)),
        ('"--split-time 1e6"', SplitRule(SplitKind.TIME, 1_000_000)),
        ('"--split-time 1.5e9"', SplitRule(SplitKind.TIME, 1_500_000_000)),
        ('"--split-time   3600000000000"', SplitRule(SplitKind.TIME, 3_600_000_000_000)),
        ('"--split-byte 1e9"', SplitRule(SplitKind.BYTE, 1_000_000_000)),
        ('"--split-byte 1024"', SplitRule(SplitKind.BYTE, 1024)),
    ],
)
def test_split_good(lua_value, expected):
    assert second(Split=lua_value, FileName='"--filename-epoch-nsec"').split == expected


@pytest.mark.parametrize(
    ("lua_value", "words"),
    [
        ('"--split-time 60"', "did you mean 60e9"),
        ('"--split-time 1.5"', "whole number"),
        ('"--split-time 0"', "positive"),
        ('"--split-time -5"', "not a number"),
        ('"--split-time 1e99"', "below 2^63"),
        ('"--split-time sixty"', "not a number"),
        ('"--split-byte 1000"', "at least 1024"),
        ('"--split-bytes 1e9"', "--split-time"),
        ('"--split-time"', "--split-time"),
        ("60e9", "must be a string"),
    ],
)
def test_split_bad(lua_value, words):
    message = load_error(one_target(Split=lua_value), line=True)
    assert message.startswith(f'{AT2}: target 2 "t2": Split ')
    assert words in message


@pytest.mark.parametrize(
    ("lua_value", "mode", "fmt"),
    [
        ('"--filename-epoch-sec"', "--filename-epoch-sec", None),
        ('"--filename-tstr-HHMMSS_TZ"', "--filename-tstr-HHMMSS_TZ", None),
        ("'--filename-strftime \"%Y%m%d_%H%M%S\"'", "--filename-strftime", "%Y%m%d_%H%M%S"),
        ("\"--filename-strftime '%Y%m%d %H%M%S'\"", "--filename-strftime", "%Y%m%d %H%M%S"),
        ('"--filename-strftime %Y%m%d_%H%M%S.%N"', "--filename-strftime", "%Y%m%d_%H%M%S.%N"),
    ],
)
def test_filename_good(lua_value, mode, fmt):
    naming = second(FileName=lua_value).naming
    assert (naming.mode, naming.strftime) == (mode, fmt)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"FileName": '"--filename-epoch-secs"'}, "did you mean --filename-epoch-sec"),
        ({"FileName": '"--filename-strftime"'}, "needs a format"),
        ({"FileName": '"--filename-strftime %Y/%m"'}, "subdirectories"),
        ({"FileName": '"--filename-strftime %Y %m"'}, "must be quoted"),
        ({"FileName": "'--filename-strftime \"%Y'"}, "does not end"),
        ({"FileName": '"--filename-epoch-sec x"'}, "takes no argument"),
        (
            {"FileName": '"--filename-tstr-HHMM"', "Split": '"--split-time 1e9"'},
            "would overwrite each other",
        ),
    ],
)
def test_filename_bad(fields, words):
    message = load_error(one_target(**fields), line=True)
    assert message.startswith(f'{AT2}: target 2 "t2": FileName ')
    assert words in message


def test_mode_is_case_insensitive_and_normalized():
    assert second(Mode='"file"').mode is PushMode.FILE
    assert second(Mode='"RCLONE"', Path='"s3:bucket/push/all"').mode is PushMode.RCLONE


@pytest.mark.parametrize(
    "path",
    [
        "s3:bucket/push/all",
        "my remote:push/all",
        "remote,provider=AWS:bucket/all",
        ":s3,endpoint='http://127.0.0.1:9000':bucket/all",
        ":local:/tmp/push/all",
    ],
)
def test_rclone_path_good(path):
    target = second(Mode='"rclone"', Path=f'"{path}"')
    assert target.path == path


@pytest.mark.parametrize(
    ("mode", "path", "words"),
    [
        ("rclone", "/mnt/push/all", "rclone destination"),
        ("rclone", "s3:", "rclone destination"),
        ("rclone", "s3:bucket/.x", "starts with '.'"),
        ("File", "out/push/.x", "starts with '.'"),
        ("File", "out/.push", "starts with '.'"),
        ("File", "", "is empty"),
        ("File", " out/push/all", "spaces"),
        ("File", "out/push\\nall", "control character"),
        ("File", "out/push\\0all", "control character"),
    ],
)
def test_path_bad(mode, path, words):
    message = load_error(one_target(Mode=f'"{mode}"', Path=f'"{path}"'), line=True)
    assert message.startswith(f'{AT2}: target 2 "t2": Path ')
    assert words in message


@pytest.mark.parametrize(
    ("fields", "prefix", "words"),
    [
        ({"Desc": None}, "target 2: Desc is missing", "Desc = "),
        ({"Desc": '"pcap\\tall"'}, 'target 2: Desc "pcap\\tall"', "control character"),
        ({"Desc": '"  "'}, 'target 2: Desc "  "', "is empty"),
        ({"Desc": '"a\\u{200b}b"'}, "target 2: Desc", "printable"),
        ({"Desc": "42"}, "target 2: Desc 42", "must be a string"),
        ({"Desc": '"' + "x" * 201 + '"'}, "target 2: Desc", "longer than 200"),
        ({"Mode": None}, 'target 2 "t2": Mode is missing', 'Mode = "File"'),
        ({"Mode": '"ftp"'}, 'target 2 "t2": Mode "ftp"', "'File' or 'rclone'"),
        ({"Path": None}, 'target 2 "t2": Path is missing', "Path = "),
        ({"Path": "{}"}, 'target 2 "t2": Path <a table>', "must be a string"),
        ({"Interface": '"eth 0"'}, 'target 2 "t2": Interface "eth 0"', "interface name"),
        ({"Interface": '""'}, 'target 2 "t2": Interface ""', "empty"),
        ({"FilterBPF": "true"}, 'target 2 "t2": FilterBPF true', "must be a string"),
        ({"Chunked": '"yes"'}, 'target 2 "t2": Chunked "yes"', "must be true or false"),
        ({"Decap": "1"}, 'target 2 "t2": Decap 1', "must be true or false"),
        ({"CPU": '"two"'}, 'target 2 "t2": CPU "two"', "a CPU number"),
        ({"Fitler": '"tcp"'}, 'target 2 "t2": unknown field Fitler', "known: Desc, Mode"),
    ],
)
def test_field_errors_name_target_and_field(fields, prefix, words):
    message = load_error(one_target(**fields), line=True)
    assert message.startswith(f"{AT2}: {prefix}")
    assert words in message


def test_an_unknown_field_name_is_quoted_when_it_is_not_a_plain_name():
    """Found by tests/fuzz: a key holding a newline came out raw, a message of two lines."""
    message = load_error(one_target(**{'["Fit\\nler"]': '"tcp"'}), line=True)
    assert message.startswith(f'{AT2}: target 2 "t2": unknown field "Fit\\nler" (known: ')
    assert "\n" not in message


def test_filter_bpf_compiled_at_load_with_libpcap_message():
    message = load_error(one_target(FilterBPF='"tcpp"'), line=True)
    assert message == f'{AT2}: target 2 "t2": FilterBPF "tcpp": syntax error'
    message = load_error(one_target(FilterBPF='"port 99999"'), line=True)
    assert message.startswith(f'{AT2}: target 2 "t2": FilterBPF "port 99999": ')
    assert "99999" in message.split(": ", 3)[3]


def test_filter_bpf_and_interface_good():
    target = second(FilterBPF='"not host 192.168.1.100"', Interface='"eth0"')
    assert (target.filter_bpf, target.interface) == ("not host 192.168.1.100", "eth0")


def test_duplicate_desc():
    message = load_error(one_target(Desc='"t1"'), line=True)
    assert message.startswith(
        f'{AT2}: target 2 "t1": Desc "t1": is also used by target 1 "t1" (line 2); each target'
    )


def test_a_shared_path_gets_each_targets_desc():
    """FMADIO's generated example gives all its targets one Path: each gets its Desc into it."""
    push = load_push_config_text(one_target(Path='"out/push/t1"'), NAME)
    assert [t.path for t in push.targets] == ["out/push/t1_t1", "out/push/t1_t2"]
    assert len(push.notices) == 2
    assert push.notices[1].startswith(f'{NAME}: target 2 "t2": Path "out/push/t1" is shared by '
                                      "targets 1, 2: this target's files are named "
                                      '"out/push/t1_t2"_<name>')
    folder = load_push_config_text(one_target(Path='"out/"').replace('"out/push/t1"', '"out/"'),
                                   NAME)
    assert [t.path for t in folder.targets] == ["out/t1", "out/t2"]


def test_flows_targets_sharing_an_address_are_refused():
    text = ('return { Target = {\n'
            '  { Desc = "a", Mode = "flows", Path = "udp://127.0.0.1:9000" },\n'
            '  { Desc = "b", Mode = "flows", Path = "udp://127.0.0.1:9001" },\n'
            '  { Desc = "c", Mode = "flows", Path = "udp://127.0.0.1:9000" },\n'
            '} }\n')
    with pytest.raises(Exception, match=r'Path "udp://127.0.0.1:9000": is also used by target 1 '
                                        r'"a" \(line 2\)'):
        load_targets_text(text, NAME)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("return {}", "Config.Target is missing"),
        ("return {Target = {}}", "Config.Target is empty"),
        ('return {Target = "x"}', "not a table"),
        ("return {Target = {[1] = {}, [3] = {}}}", "must be a list"),
        ("return {Target = {{}}, Other = 1}", "unknown top-level field Other"),
        ('return {Target = {"pcap-all"}}', 'target 1: is "pcap-all", not a table'),
        ('return {Target = {{"pcap-all", "File"}}}', "target 1: has the key 1"),
        ("local Config = {}", "returned nothing"),
        ("return 5", "returned 5"),
    ],
)
def test_structure_errors(text, words):
    message = load_error(text)
    assert message.startswith(f"{NAME}: ")
    assert words in message


def test_a_clash_names_the_earliest_target_it_clashes_with():
    text = ('return { Target = {\n'
            '  { Desc = "a b", Mode = "File", Path = "o/x" },\n'
            '  { Desc = "c", Mode = "File", Path = "o/y" },\n'
            '  { Desc = "c", Mode = "File", Path = "o/z" },\n'
            '  { Desc = "a_b", Mode = "File", Path = "o/w" },\n'
            '} }\n')
    with pytest.raises(Exception, match=r'target 3 "c": Desc "c": is also used by target 2'):
        load_targets_text(text, NAME)
    with pytest.raises(Exception, match=r'target 4 "a_b": Desc "a_b": is also used by target 1 '
                                        r'"a b" \(line 2\); both would name their log file and '
                                        r"spool folder 'a_b'"):
        load_targets_text(text.replace('"c", Mode = "File", Path = "o/z"',
                                       '"d", Mode = "File", Path = "o/z"'), NAME)


@pytest.mark.timeout(60)  # a hang guard: comparing every pair took minutes at this size
def test_fifty_thousand_targets_are_checked_in_one_pass():
    """Issue 17, item 12: validation was quadratic in the number of targets (20,000: 21 s)."""
    text = ('local C = { Target = {} }\nfor i = 1, 50000 do C.Target[i] = '
            '{ Desc = "t" .. i, Mode = "File", Path = "o/t" .. i } end\nreturn C\n')
    targets = load_targets_text(text, NAME)
    assert len(targets) == 50000 and targets[-1].desc == "t50000"
