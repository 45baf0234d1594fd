"""Capture request validation: each field's good and bad forms, node matching, unsafe regexes."""

from __future__ import annotations

import json
import time

import pytest

from pushcap.capture.bpf import BpfFilter
from pushcap.config.model import InterfaceConfig
from pushcap.config.pcapdaemon import TriggerSettings
from pushcap.defaults import MAX_MESSAGE_BYTES
from pushcap.trigger.message import (
    Capture,
    TriggerError,
    describe_request,
    parse_request,
    request_id_of,
)
from pushcap.trigger.node_match import compile_node_regex

NODE = "cap-east-01"
SETTINGS = TriggerSettings(node_name=NODE, max_packets=1000, max_bytes=10_000_000,
                           max_timeout_s=120, max_duration_s=600, default_timeout_s=30,
                           snap_length=512)
IFACES = (InterfaceConfig("eth0", ("main", "public")), InterfaceConfig("eth1", ("public",)),
          InterfaceConfig("lo", ("local",)))


def check_bpf(expr: str, _interface: str) -> None:
    BpfFilter(expr, 1)


def parse(**fields):
    message = {"node": NODE, "interface": ["eth0"], **fields}
    return parse_request(json.dumps(message), SETTINGS, IFACES, check_bpf)


def rejected(field: str, message: dict | str | bytes) -> TriggerError:
    data = message if isinstance(message, str | bytes) else json.dumps(message)
    with pytest.raises(TriggerError) as info:
        parse_request(data, SETTINGS, IFACES, check_bpf)
    assert info.value.field == field, info.value
    assert str(info.value).startswith(f"{field}: ")
    return info.value


def test_seed_example_message():
    seed = {"node": NODE, "interface": ["eth0", "eth1"], "tags": "blah,tagme,stuff",
            "bpf": "dst host 10.0.0.1", "customer": "importantcustomer", "snap": 1500,
            "packets": 50, "alertid": 655443, "timeout": 15}
    request = parse_request(json.dumps(seed), SETTINGS, IFACES, check_bpf, 123)
    assert request.captures == (Capture("eth0"), Capture("eth1"))
    assert (request.snap, request.packets, request.timeout_s, request.alertid) == (1500, 50, 15,
                                                                                  655443)
    assert request.tags == ("blah", "tagme", "stuff") and request.customer == "importantcustomer"
    assert request.bpf == "dst host 10.0.0.1" and request.received_ns == 123


def test_defaults_come_from_the_settings():
    request = parse()
    assert (request.snap, request.packets, request.max_bytes) == (512, 1000, 10_000_000)
    assert (request.timeout_s, request.duration_s, request.before_s) == (30, 600, 0)
    assert request.bpf is None and request.tags == () and request.alertid is None
    assert len(request.request_id) == 32


def test_default_timeout_only_when_the_request_says_nothing_of_how_long():
    """`defaulttimeout` stands in for pcapdaemon's timeout; a request giving `duration` or `end`
    said how long it wants, so it gets no timeout unless it gives one (0 is "not given")."""
    now = time.time()
    assert parse(duration=3).timeout_s is None
    assert parse(duration=3, timeout=0).timeout_s is None
    assert parse(end=now + 5).timeout_s is None
    assert parse(start=now - 5, end=now + 5).timeout_s is None
    assert parse(duration=3, timeout=5).timeout_s == 5
    assert parse(end=now + 5, timeout=1).timeout_s == 1
    assert parse(start=now + 5).timeout_s == 30
    assert parse(duration=0, before=5).timeout_s == 30
    assert "timeout_s=none duration_s=3 " in describe_request(parse(duration=3))


def test_node_exact_any_and_other_nodes():
    assert parse(node=NODE) is not None
    assert parse(node="any") is not None
    assert parse(node="cap-east-02") is None  # another node's request: ignored quietly
    assert parse(node="CAP-EAST-01") is None


@pytest.mark.parametrize("regex, matches", [
    ("cap-east", True), ("^cap-.*-01$", True), ("east-0[0-9]", True), ("^east", False),
    ("west", False), ("cap-(east|west)", True)])
def test_nodere_is_an_unanchored_search(regex, matches):
    message = {"nodere": regex, "interface": "eth0"}
    assert (parse_request(json.dumps(message), SETTINGS, IFACES) is not None) is matches


@pytest.mark.parametrize("message", [
    {"node": NODE, "nodere": "cap", "interface": "eth0"},
    {"interface": "eth0"},
    {"node": "", "nodere": "", "interface": "eth0"},
    {"node": ["a"], "interface": "eth0"},
    {"node": "x" * 300, "interface": "eth0"},
])
def test_node_forms_refused(message):
    rejected("node", message)


@pytest.mark.parametrize("regex", ["(a+)+$", "(a|aa)*b", "(.*a){20}", "(x?)*y", r"(a)\1",
                                   "(?=a)a", "a*a*a*a*a*a*a*b", "[", "a" * 300])
def test_unsafe_or_broken_regex_refused(regex):
    rejected("nodere", {"nodere": regex, "interface": "eth0"})


def test_refused_regexes_are_refused_quickly():
    started = time.monotonic()
    for regex in ["(a+)+$", "((ab)*)*c", "(a|a)*$", "(.*){1,32000}[bc]"]:
        with pytest.raises(TriggerError):
            compile_node_regex(regex, 40)
    assert time.monotonic() - started < 0.5


def test_interface_and_alias_forms():
    assert parse(interface="eth0").captures == (Capture("eth0"),)
    assert parse(interface=["eth0", "eth0"]).captures == (Capture("eth0"),)
    request = parse_request(json.dumps({"node": NODE, "alias": "public"}), SETTINGS, IFACES)
    assert request.captures == (Capture("eth0", "public"), Capture("eth1", "public"))
    request = parse_request(json.dumps({"node": NODE, "alias": ["local", "main"]}), SETTINGS,
                            IFACES)
    assert request.captures == (Capture("lo", "local"), Capture("eth0", "main"))


@pytest.mark.parametrize("field, message", [
    ("interface", {"node": NODE, "interface": "eth0", "alias": "main"}),
    ("interface", {"node": NODE}),
    ("interface", {"node": NODE, "interface": ["eth9"]}),
    ("interface", {"node": NODE, "interface": [1]}),
    ("interface", {"node": NODE, "interface": {"eth0": 1}}),
    ("alias", {"node": NODE, "alias": ["nosuch"]}),
    ("alias", {"node": NODE, "alias": "x" * 100}),
])
def test_interface_and_alias_refused(field, message):
    rejected(field, message)


def test_unknown_interface_is_ignored_for_another_node():
    assert parse_request(json.dumps({"node": "other", "interface": "eth9"}), SETTINGS,
                         IFACES) is None


def test_message_level_refusals():
    rejected("message", "{not json")
    rejected("message", "[1, 2]")
    rejected("message", "\"text\"")
    rejected("message", " " * (MAX_MESSAGE_BYTES + 1))
    rejected("message", b"\xff\xfe".decode("latin-1"))


def test_bpf():
    assert parse(bpf="udp and port 53").bpf == "udp and port 53"
    assert parse(bpf="").bpf is None
    rejected("bpf", {"node": NODE, "interface": "eth0", "bpf": "udp and port"})
    rejected("bpf", {"node": NODE, "interface": "eth0", "bpf": 53})
    rejected("bpf", {"node": NODE, "interface": "eth0", "bpf": "x" * 5000})


@pytest.mark.parametrize("field, good, bad", [
    ("snap", [1, 64, 262144, 1500.0], [-1, 262145, "1500", True, 1.5, None.__class__]),
    ("packets", [1, 1000], [0, 1001, "5", False, 2.5]),
    ("bytes", [1, 10_000_000], [-1, 10_000_001, "100", False]),
    ("alertid", [655443], [-1, "abc", 1.5, [1]]),
])
def test_integer_fields(field, good, bad):
    for value in good:
        assert getattr(parse(**{field: value}), "max_bytes" if field == "bytes" else field) \
            == int(value)
    for value in bad:
        if value is None.__class__:
            continue
        rejected(field, {"node": NODE, "interface": "eth0", field: value})


@pytest.mark.parametrize("field, cap", [("timeout", 120), ("duration", 600)])
def test_seconds_fields(field, cap):
    attr = f"{field}_s"
    assert getattr(parse(**{field: 0.5}), attr) == 0.5
    assert getattr(parse(**{field: cap}), attr) == cap
    for value in (-1, -0.5, cap + 1, "10", True):
        error = rejected(field, {"node": NODE, "interface": "eth0", field: value})
        if value == cap + 1:
            assert f"max{field}" in str(error)


def test_zero_limits_mean_the_defaults_as_in_pcapdaemon():
    """pcapdaemon (Go) cannot tell 0 from an absent field: publishers send 0 for "not set"."""
    request = parse(timeout=0, duration=0, bytes=0, snap=0, before=0)
    assert (request.timeout_s, request.duration_s) == (30, 600)
    assert (request.max_bytes, request.snap, request.before_s) == (10_000_000, 512, 0)
    assert parse(timeout=0.0, snap=0.0).snap == 512
    rejected("packets", {"node": NODE, "interface": "eth0", "packets": 0})  # as pcapdaemon
    for field in ("snap", "bytes"):
        assert "0 (the default)" in str(rejected(field, {"node": NODE, "interface": "eth0",
                                                         field: -1}))


def test_unknown_names_in_a_list_are_skipped_with_a_note():
    request = parse(interface=["eth9", "eth0", "eth9", "bond1"])
    assert request.captures == (Capture("eth0"),)
    assert len(request.notes) == 2
    assert request.notes[0].startswith("interface 'eth9' skipped: not captured on this node")
    assert "'bond1'" in request.notes[1] and "known: eth0, eth1, lo" in request.notes[1]
    request = parse_request(json.dumps({"node": NODE, "alias": ["nosuch", "local"]}), SETTINGS,
                            IFACES)
    assert request.captures == (Capture("lo", "local"),)
    assert request.notes == ("alias 'nosuch' skipped: not an alias on this node "
                             "(known: local, main, public)",)
    assert parse(interface=["eth0", "lo"]).notes == ()
    error = rejected("interface", {"node": NODE, "interface": ["eth8", "eth9"]})
    assert "'eth8', 'eth9' are not captured on this node (known: eth0, eth1, lo)" in str(error)
    error = rejected("alias", {"node": NODE, "alias": ["x", "y"]})
    assert "(known: local, main, public)" in str(error)


@pytest.mark.parametrize("field", ["timeout", "duration", "before", "start", "end"])
def test_numbers_beyond_a_float_are_rejected_by_field(field):
    for raw in ("1" + "0" * 400, "-1" + "0" * 400, "1e400", "-1e400", "Infinity", "NaN"):
        data = f'{{"node": "{NODE}", "interface": "eth0", "{field}": {raw}}}'
        error = rejected(field, data)
        assert len(str(error)) < 200, error


@pytest.mark.parametrize("field", ["snap", "packets", "bytes", "alertid"])
def test_huge_integers_are_rejected_by_field_in_a_short_message(field):
    for raw in ("1" + "0" * 400, "1e400", "1e300"):
        error = rejected(field, f'{{"node": "{NODE}", "interface": "eth0", "{field}": {raw}}}')
        assert len(str(error)) < 200, error


def test_too_deep_nesting_is_a_message_rejection():
    deep = "[" * 100_000
    rejected("message", f'{{"node": "{NODE}", "interface": "eth0", "tags": {deep[:60000]}')
    # The rejection's result reads the requestid from the same message: that must not fail.
    assert request_id_of(deep[:60000]) is None
    assert request_id_of('{"requestid": "r1", "x": ' + "[" * 5000 + "]" * 5000 + "}") is None


def test_before_and_window():
    assert parse(before=5).before_s == 5
    assert parse(before=0).before_s == 0
    rejected("before", {"node": NODE, "interface": "eth0", "before": -1})
    rejected("before", {"node": NODE, "interface": "eth0", "before": 601})
    now = time.time()
    request = parse(start=now - 10, end=now - 5)
    assert request.start_ns == int((now - 10) * 1e9) and request.end_ns == int((now - 5) * 1e9)
    rejected("end", {"node": NODE, "interface": "eth0", "start": now, "end": now - 1})
    rejected("end", {"node": NODE, "interface": "eth0", "start": now - 700, "end": now})
    rejected("start", {"node": NODE, "interface": "eth0", "start": now * 1000})
    rejected("end", {"node": NODE, "interface": "eth0", "end": "soon"})


def test_metadata_fields():
    request = parse(tags=["a", "b c"], customer="acme", logrequest=True, requestid="r-1.2:3")
    assert request.tags == ("a", "b c") and request.customer == "acme"
    assert request.log_request and request.request_id == "r-1.2:3"
    assert parse(tags=" a, ,b ").tags == ("a", "b")
    rejected("tags", {"node": NODE, "interface": "eth0", "tags": 5})
    rejected("tags", {"node": NODE, "interface": "eth0", "tags": "a\nb"})
    # too long: the limit is the reason given, not "control characters"
    long_tags = rejected("tags", {"node": NODE, "interface": "eth0", "tags": "A" * 5000})
    assert "5000 characters: at most 1024" in str(long_tags), long_tags
    long_node = rejected("node", {"node": "n" * 5000, "interface": "eth0"})
    assert "5000 characters: a host name has at most 255" in str(long_node), long_node
    rejected("customer", {"node": NODE, "interface": "eth0", "customer": 5})
    rejected("logrequest", {"node": NODE, "interface": "eth0", "logrequest": "yes"})
    rejected("requestid", {"node": NODE, "interface": "eth0", "requestid": "../../etc"})


def test_pcapdaemon_only_fields_are_ignored():
    assert parse(packetdebug=True, folder="f", bucket="b", acl="private") is not None


def test_request_id_of_a_bad_message():
    assert request_id_of('{"requestid": "abc", "packets": "x"}') == "abc"
    assert request_id_of('{"requestid": "../x"}') is None
    assert request_id_of("not json") is None


@pytest.mark.parametrize("data", [
    '{"node": "any", "interface": "eth0", "bpf": "udp\\ud800"}',  # an escaped lone surrogate
    b'{"node": "any", "interface": "eth0", "bpf": "udp\xed\xa0\x80"}',  # its bytes
])
def test_a_lone_surrogate_is_refused_naming_its_field(data):
    """Issue 17, item 9: it reached the BPF compiler (a traceback) or was refused as the whole
    `message`; a string must be UTF-8 text, checked per field."""
    error = rejected("bpf", data)
    assert "not valid UTF-8" in str(error)


@pytest.mark.parametrize("key", ["", "k" * 65])
def test_a_lone_surrogate_under_a_key_that_cannot_name_it_is_the_messages_fault(key):
    """Found by tests/fuzz: an empty key holding a lone surrogate was refused with the empty
    field name (": is not valid UTF-8 text"), a 64 KiB key with all of it."""
    error = rejected("message", {"node": "any", "interface": "eth0", key: "\ud800"})
    assert "not valid UTF-8" in str(error)


def test_unknown_fields_are_accepted_with_a_note_naming_them():
    """Issue 17, item 17: pcapdaemon ignores unknown fields, so pushcap accepts them, but a typo
    (`bfp`) would capture every packet unnoticed: the result's notes say so."""
    request = parse(bfp="udp port 53", colour="blue")
    assert request.bpf is None
    assert request.notes == ("unknown field 'bfp' ignored; did you mean 'bpf'?",
                             "unknown field 'colour' ignored")
    assert parse().notes == ()


def test_a_bad_string_in_another_nodes_message_is_not_ours_to_refuse():
    data = '{"node": "some-other-node", "interface": "eth0", "bpf": "udp\\ud800"}'
    assert parse_request(data, SETTINGS, IFACES, check_bpf) is None


def test_pcapdaemons_own_ignored_fields_get_no_note():
    assert parse(bucket="b", region="r", folder="f").notes == ()
    many = parse(**{f"x{i}": 1 for i in range(25)}).notes
    assert len(many) == 11 and many[-1] == "and 15 more unknown fields ignored"


def test_a_results_path_is_absolute_whatever_folder_the_daemon_runs_in(tmp_path, monkeypatch):
    """The default fallback folder is relative (out/trigger-fallback): a result names the file
    so that a program in another folder finds it."""
    from pushcap.trigger.delivery import Delivery
    from pushcap.trigger.result_reporter import delivery_fields

    monkeypatch.chdir(tmp_path)
    _, fields = delivery_fields(Delivery(path="out/trigger-fallback/n-lo-1.pcap", fallback=True))
    assert fields["path"] == str(tmp_path / "out/trigger-fallback/n-lo-1.pcap")
    assert delivery_fields(Delivery(cloudshark_id="x"))[1]["path"] is None
