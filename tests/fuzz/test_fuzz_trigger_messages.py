"""Trigger messages from the network, fuzzed: `parse_request` gives a valid CaptureRequest, None
(another node's message) or a TriggerError naming a field, in one line of UTF-8 text; never
another exception. `request_id_of` (used on refused messages) never raises.

Messages are built from pcapdaemon's fields with values of every JSON type (the right one and
wrong ones), huge and non-finite numbers, odd unicode (lone surrogates as JSON escapes, as raw
code points, as their UTF-8-like bytes), invalid UTF-8 bytes, deep nesting, and byte mutations
of valid messages.
"""

from __future__ import annotations

import json

import pytest
from fuzz_helpers import examples, one_line, outcome, within
from hypothesis import given
from hypothesis import strategies as st

from pushcap.capture.bpf import BpfFilter
from pushcap.config.model import InterfaceConfig
from pushcap.config.pcapdaemon import TriggerSettings
from pushcap.trigger.message import (
    _SAFE_ID,
    KNOWN_FIELDS,
    CaptureRequest,
    TriggerError,
    describe_request,
    parse_request,
    request_id_of,
)

pytestmark = pytest.mark.fuzz

NODE = "cap-east-01"
SETTINGS = TriggerSettings(node_name=NODE, max_packets=1000, max_bytes=10_000_000,
                           max_timeout_s=120, max_duration_s=600, default_timeout_s=30,
                           snap_length=512)
IFACES = (InterfaceConfig("eth0", ("main", "public")), InterfaceConfig("eth1", ("public",)),
          InterfaceConfig("lo", ("local",)))
NOW_S = 1_700_000_000.0  # received_ns of every case: start/end are judged against it


def check_bpf(expr: str, interface: str) -> None:
    BpfFilter(expr, 1)


# --- values -----------------------------------------------------------------------------------

LONE_SURROGATES = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff", "\ud83d"])
ODD_TEXT = st.one_of(
    st.text(max_size=20),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=20),
    st.builds(lambda a, s, b: a + s + b, st.text(max_size=5), LONE_SURROGATES,
              st.text(max_size=5)),
    st.sampled_from(["", " ", "any", NODE, "eth0", "lo", "main", "public", "local", "nope",
                     "tcp", "udp port 53", "host 10.0.0.1 and (", "\x00", "\x7f", "a\nb",
                     "\u2028", "\ufeff", "é", "💥", "a" * 65, "a" * 1025, "x" * 4097,
                     ".*", "(a+)+$", "cap-.*-01", "[", "(?P<x>a)", "\\", "abc" * 30]),
)
HUGE_NUMBERS = st.sampled_from([
    0, -0.0, 1, -1, 0.5, 1e-300, 5e-324, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64,
    -(2**63), 10**30, 10**308, 1.7976931348623157e308, float("inf"), float("-inf"),
    float("nan"), 10**400, -(10**400), NOW_S, NOW_S - 30, NOW_S + 30, NOW_S + 86401,
    NOW_S - 8 * 86400, 1e18, 1e19, 9.999999999999999e22,
])
NUMBERS = st.one_of(
    st.integers(), st.integers(min_value=-(10**500), max_value=10**500),
    st.floats(allow_nan=True, allow_infinity=True), HUGE_NUMBERS,
    st.floats(min_value=NOW_S - 10 * 86400, max_value=NOW_S + 2 * 86400),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, ODD_TEXT)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(ODD_TEXT, inner, max_size=4)),
    max_leaves=12,
)

# Each field: values it should take, then anything at all.
GOOD = {
    "node": st.sampled_from(["any", NODE, "other-node", ""]),
    "nodere": st.sampled_from(["", "cap-.*", "^cap-east-0[0-9]$", "(a+)+$", "(", "x{1000}",
                               "." * 300, "other"]),
    "interface": st.one_of(st.sampled_from(["eth0", "lo", "eth9", ""]),
                           st.lists(st.sampled_from(["eth0", "eth1", "lo", "eth9", ""]),
                                    max_size=4)),
    "alias": st.one_of(st.sampled_from(["main", "public", "local", "nope"]),
                       st.lists(st.sampled_from(["main", "public", "local", "nope", ""]),
                                max_size=4)),
    "bpf": st.sampled_from(["tcp", "udp port 53", "", "host 1.2.3.4", "tcpp", "port 99999",
                            "vlan and tcp", "ether proto \\ip", "len > 100", "(", "é"]),
    "snap": st.integers(-2, 300000),
    "packets": st.integers(-2, 2000),
    "bytes": st.integers(-2, 20_000_000),
    "timeout": st.floats(-1, 200),
    "duration": st.floats(-1, 700),
    "before": st.floats(-1, 700),
    "start": st.floats(NOW_S - 8 * 86400, NOW_S + 2 * 86400),
    "end": st.floats(NOW_S - 8 * 86400, NOW_S + 2 * 86400),
    "tags": st.one_of(st.text(max_size=30), st.lists(st.text(max_size=8), max_size=4)),
    "customer": st.text(max_size=30),
    "alertid": st.integers(-1, 2**64),
    "logrequest": st.booleans(),
    "requestid": st.one_of(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,70}", fullmatch=True),
                           ODD_TEXT),
}
KNOWN = st.sampled_from(KNOWN_FIELDS)
FIELD_NAMES = st.one_of(*[KNOWN] * 16, st.text(max_size=12),  # mostly pcapdaemon's fields
                        st.sampled_from(["bfp", "packetdebug", "folder", "Node", "interfaces"]),
                        ODD_TEXT)


@st.composite
def messages(draw) -> dict:
    """A message for this node (usually), its fields right (mostly), wrong or unknown."""
    message: dict = {}
    if draw(st.integers(0, 9)):
        message["node"] = draw(st.sampled_from(["any", NODE]))
    if draw(st.integers(0, 4)):
        if draw(st.booleans()):
            message["interface"] = draw(st.sampled_from(["eth0", ["eth0", "lo"], ["eth9", "lo"]]))
        else:
            message["alias"] = draw(st.sampled_from(["public", ["nope", "local"]]))
    for name in draw(st.lists(FIELD_NAMES, max_size=8)):
        good = GOOD.get(name) if isinstance(name, str) else None
        message[name] = draw(good if good is not None and draw(st.integers(0, 3)) else JSONISH)
    return message


def encodings(message: dict) -> st.SearchStrategy[str | bytes]:
    """The message as publishers could send it: JSON text (escaped or raw code points), its
    bytes (lone surrogates as their 3 bytes), or those bytes damaged."""
    escaped = json.dumps(message, ensure_ascii=True)
    raw = json.dumps(message, ensure_ascii=False)
    data = raw.encode("utf-8", "surrogatepass")
    return st.one_of(st.just(escaped), st.just(raw), st.just(data), st.just(escaped),
                     mutated(data))


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """`data` with a few bytes flipped, removed, inserted (invalid UTF-8 among them) or cut."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "delete", "insert", "cut"]))
        at = draw(st.integers(0, max(0, len(buf) - 1)))
        if op == "flip" and buf:
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "delete":
            del buf[at:at + draw(st.integers(1, 4))]
        elif op == "insert":
            buf[at:at] = draw(st.sampled_from(
                [b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80", b"\x00",
                 b"[", b"{", b'"', b"1e999", b"-", b",", b"\\u", b"\\ud800", b"NaN",
                 b"Infinity"]))
        elif op == "cut":
            del buf[at:]
    return bytes(buf)


# Hand-written shapes of hostile input that random generation rarely reaches.
HOSTILE = [
    "[" * 60_000, "{\"a\":" * 12_000, "1" * 5000, "-" + "9" * 4400, "1e400", "[1e400]",
    "\"\\ud800\"", "{\"node\":\"any\",\"interface\":\"eth0\",\"snap\":" + "9" * 4500 + "}",
    "{\"node\":\"any\",\"interface\":\"eth0\",\"start\":1e400}",
    "{\"node\":\"any\",\"interface\":\"eth0\",\"tags\":[" + "[" * 5000 + "]" * 5000 + "]}",
    "{\"node\":\"any\",\"interface\":\"eth0\",\"x\":" + "[" * 30_000 + "]" * 30_000 + "}",
    "{\"node\":\"any\",\"interface\":\"eth0\",\"\\ud800\":1}",
    "{\"node\":\"any\",\"interface\":\"eth0\",\"customer\":\"\\udfff\"}",
    "{\"node\":\"any\",\"interface\":[\"eth0\",\"\\ud800\"]}",
    "{\"nodere\":\"" + "(a*)*" * 50 + "\",\"interface\":\"eth0\"}",
    b"\xef\xbb\xbf{\"node\":\"any\",\"interface\":\"eth0\"}",
    b"{\"node\":\"any\",\"interface\":\"eth0\",\"bpf\":\"\xed\xa0\x80\"}",
    b"\xff\xfe{\x00}\x00", b"", b"\x00" * 10, "x" * 70_000,
]


# --- the property -----------------------------------------------------------------------------


def check_message(data: str | bytes) -> None:
    with within(what="parse_request"):
        try:
            request = parse_request(data, SETTINGS, IFACES, check_bpf,
                                    received_ns=int(NOW_S * 1e9))
        except TriggerError as exc:
            outcome(f"refused: {exc.field if exc.field in KNOWN_FIELDS else 'other'}")
            check_refusal(exc, data)
        else:
            outcome("accepted" if request is not None else "another node's")
            if request is not None:
                check_request(request)
        found = request_id_of(data)
    assert found is None or _SAFE_ID.match(found)


def check_refusal(exc: TriggerError, data: str | bytes) -> None:
    """A refusal names a field and says what is wrong in one line of UTF-8 text (it goes into
    a result published on Redis, and into the log)."""
    text = str(exc)
    assert isinstance(exc.field, str) and exc.field, repr(exc)
    assert text.startswith(f"{exc.field}: "), text
    assert one_line(text), text
    text.encode("utf-8")  # no lone surrogate: a result carrying it could not be sent
    assert len(text) < 2000, f"a {len(text)}-character message for {data[:100]!r}"
    if exc.field not in (*KNOWN_FIELDS, "message"):
        # a field the message has (e.g. an unknown one holding a lone surrogate)
        assert len(exc.field) <= 64, exc.field


def check_request(request: CaptureRequest) -> None:
    """An accepted request is within every cap, ready for a capture job."""
    assert request.captures and all(c.interface in ("eth0", "eth1", "lo")
                                    for c in request.captures)
    assert 1 <= request.snap <= 262144
    assert 1 <= request.packets <= SETTINGS.max_packets
    assert 1 <= request.max_bytes <= SETTINGS.max_bytes
    assert request.timeout_s is None or 0 < request.timeout_s <= SETTINGS.max_timeout_s
    assert 0 < request.duration_s <= SETTINGS.max_duration_s
    assert 0 <= request.before_s <= SETTINGS.max_duration_s
    if request.start_ns is not None and request.end_ns is not None:
        assert request.start_ns < request.end_ns
    assert _SAFE_ID.match(request.request_id)
    assert request.alertid is None or 0 <= request.alertid < 2**63
    summary = describe_request(request)
    assert one_line(summary)
    summary.encode("utf-8")
    for text in (request.bpf, request.customer, *request.tags, *request.notes):
        if text is not None:
            text.encode("utf-8")


@examples(500)
@given(st.data())
def test_messages_with_fields_of_any_type(data):
    message = data.draw(messages())
    check_message(data.draw(encodings(message)))


@examples(200)
@given(JSONISH)
def test_any_json_value(value):
    check_message(json.dumps(value))


@examples(150)
@given(st.binary(max_size=200))
def test_any_bytes(data):
    check_message(data)


@pytest.mark.parametrize("data", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_shapes(data):
    check_message(data)
