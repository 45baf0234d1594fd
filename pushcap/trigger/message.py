"""A capture request as published on Redis: parsed and validated into a frozen CaptureRequest.

The message format is pcapdaemon's, so existing publishers work unchanged; pushcap adds `before`,
`start`/`end` and `requestid`. Validation is complete before anything is captured: every bad
message is refused with a TriggerError naming the field, so the publisher learns what to fix and
the listener goes on with the next message. A message for another node is not an error: parse
returns None and the caller stays quiet.

Node regexes come from the network and run in this process, so only a safe subset is accepted
(see `check_regex_cost`): Python's `re` cannot be interrupted, a bounded cost must be proved
before the search runs.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]

from pushcap.capture.bpf import BpfError
from pushcap.config.model import InterfaceConfig
from pushcap.config.pcapdaemon import TriggerSettings

MAX_MESSAGE_BYTES = 64 * 1024
MAX_REGEX_CHARS = 256
MAX_REGEX_STEPS = 10_000_000  # bound on (len(node)+1) ** (repeats+1): a search that ends at once
MAX_BPF_CHARS = 4096
MAX_TEXT_CHARS = 1024
MAX_SNAP_BYTES = 262144
WINDOW_PAST_LIMIT_S = 7 * 86400  # `start` older than this is surely a unit mistake
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Fields pcapdaemon accepts that have no meaning here (S3, packet debug): allowed, ignored.
IGNORED_FIELDS = {"packetdebug", "folder", "bucket", "acl", "region", "endpoint", "encryption",
                  "aliasmatched", "alertstr"}


class TriggerError(ValueError):
    """A request that cannot be served; `field` names the culprit ("message" for the whole)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class Capture:
    """One interface to capture, and the alias that selected it (for tags and results)."""

    interface: str
    alias: str | None = None


@dataclass(frozen=True)
class CaptureRequest:
    """A validated request; every limit already resolved against the settings."""

    request_id: str
    received_ns: int  # when this node received it: "the moment of the request"
    captures: tuple[Capture, ...]
    bpf: str | None
    snap: int
    packets: int
    max_bytes: int
    timeout_s: float
    duration_s: float
    before_s: float = 0.0
    start_ns: int | None = None  # absolute window, epoch nanoseconds
    end_ns: int | None = None
    tags: tuple[str, ...] = ()
    customer: str | None = None
    alertid: int | None = None
    log_request: bool = False


# A BPF check callback: compile `expr` for an interface or raise BpfError.
BpfCheck = Callable[[str, str], None]


def request_id_of(data: bytes | str) -> str | None:
    """The `requestid` of a message that failed validation, if one can be read (for its result)."""
    try:
        value = json.loads(data).get("requestid")
    except (ValueError, AttributeError, TypeError):
        return None
    return value if isinstance(value, str) and _SAFE_ID.match(value) else None


def parse_request(data: bytes | str, settings: TriggerSettings,
                  interfaces: tuple[InterfaceConfig, ...], check_bpf: BpfCheck | None = None,
                  received_ns: int | None = None) -> CaptureRequest | None:
    """Validate a raw message for this node; None when it is addressed to another node."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise TriggerError("message", f"larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        msg = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise TriggerError("message", f"not JSON ({type(exc).__name__}: {exc})"[:200]) from None
    if not isinstance(msg, dict):
        raise TriggerError("message", "must be a JSON object")
    if not _for_this_node(msg, settings.node_name):
        return None
    received_ns = received_ns if received_ns is not None else time.time_ns()
    fields = _Fields(msg)
    captures = _captures(fields, interfaces)
    bpf = fields.text("bpf", MAX_BPF_CHARS) or None
    if bpf is not None and check_bpf is not None:
        for capture in captures:
            try:
                check_bpf(bpf, capture.interface)
            except BpfError as exc:
                raise TriggerError("bpf", f"{bpf!r} does not compile: {exc}") from None
    timeout_s = fields.seconds("timeout", settings.default_timeout_s, settings.max_timeout_s,
                               "maxtimeout")
    duration_s = fields.seconds("duration", settings.max_duration_s, settings.max_duration_s,
                                "maxduration")
    start_ns, end_ns = _window(fields, received_ns, settings.max_duration_s)
    request_id = fields.text("requestid", 64)
    if request_id and not _SAFE_ID.match(request_id):
        raise TriggerError("requestid", "letters, digits and ._:- only, at most 64")
    alertid = fields.integer("alertid", None, 0, 2**63 - 1)
    return CaptureRequest(
        request_id=request_id or uuid.uuid4().hex,
        received_ns=received_ns,
        captures=captures,
        bpf=bpf,
        snap=fields.integer("snap", settings.snap_length, 1, MAX_SNAP_BYTES),
        packets=fields.integer("packets", settings.max_packets, 1, settings.max_packets,
                               "maxpackets"),
        max_bytes=fields.integer("bytes", settings.max_bytes, 1, settings.max_bytes, "maxbytes"),
        timeout_s=timeout_s,
        duration_s=duration_s,
        before_s=fields.seconds("before", 0.0, settings.max_duration_s, "maxduration",
                                allow_zero=True),
        start_ns=start_ns,
        end_ns=end_ns,
        tags=_tags(fields),
        customer=fields.text("customer", 256) or None,
        alertid=alertid,
        log_request=fields.boolean("logrequest"),
    )


def _for_this_node(msg: dict, node_name: str) -> bool:
    """pcapdaemon's node rule: exactly one of `node` (exact, or "any") and `nodere` (search)."""
    node, nodere = msg.get("node"), msg.get("nodere")
    if node in (None, "") and nodere in (None, ""):
        raise TriggerError("node", "one of node or nodere is required")
    if node not in (None, "") and nodere not in (None, ""):
        raise TriggerError("node", "give node or nodere, not both")
    if node not in (None, ""):
        if not isinstance(node, str) or len(node) > 255:
            raise TriggerError("node", "must be a host name (string) or \"any\"")
        return node in ("any", node_name)
    if not isinstance(nodere, str):
        raise TriggerError("nodere", "must be a string (a regular expression)")
    pattern = compile_node_regex(nodere, len(node_name))
    return pattern.search(node_name) is not None


def compile_node_regex(expr: str, subject_chars: int) -> re.Pattern[str]:
    """Compile `expr` only if a search over `subject_chars` characters provably ends quickly."""
    if len(expr) > MAX_REGEX_CHARS:
        raise TriggerError("nodere", f"longer than {MAX_REGEX_CHARS} characters")
    try:
        parsed = sre_parse.parse(expr)
        pattern = re.compile(expr)
    except (re.error, RecursionError, OverflowError) as exc:
        raise TriggerError("nodere", f"{expr!r} does not compile: {exc}") from None
    check_regex_cost(parsed, subject_chars, expr)
    return pattern


_REPEATS = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT,
            getattr(sre_constants, "POSSESSIVE_REPEAT", sre_constants.MAX_REPEAT)}
_REFUSED = {sre_constants.GROUPREF: "backreferences", sre_constants.GROUPREF_EXISTS:
            "conditionals", sre_constants.ASSERT: "lookahead/lookbehind",
            sre_constants.ASSERT_NOT: "lookahead/lookbehind"}


def check_regex_cost(parsed, subject_chars: int, expr: str) -> None:
    """Refuse what makes backtracking explode, so the search is bounded without a timeout.

    Exponential blow-up needs a repeat over something that can match in several ways (a nested
    repeat, an alternation, a backreference); those are refused inside a repeat. What is left is
    polynomial: at most (n+1) ** (repeats + 1) steps for n characters, checked against a budget.
    """
    repeats = _count_repeats(parsed, inside_repeat=False, expr=expr)
    if (subject_chars + 1) ** (repeats + 1) > MAX_REGEX_STEPS:
        raise TriggerError("nodere", f"{expr!r} has too many repetitions ({repeats}) to search "
                           "in bounded time; simplify it")


def _count_repeats(items, inside_repeat: bool, expr: str) -> int:
    count = 0
    for op, arg in items:
        if op in _REFUSED:
            raise TriggerError("nodere", f"{expr!r}: {_REFUSED[op]} are not allowed")
        if op in _REPEATS:
            low, high, body = arg
            if inside_repeat:
                raise TriggerError("nodere", f"{expr!r}: nested repetition can backtrack "
                                   "forever; not allowed")
            count += 1 if low != high else 0  # a fixed count like \d{3} offers no choice
            count += _count_repeats(body, inside_repeat or high != 1, expr)
        elif op is sre_constants.BRANCH:
            if inside_repeat:
                raise TriggerError("nodere", f"{expr!r}: alternation inside a repetition can "
                                   "backtrack forever; use a character class")
            count += max((_count_repeats(b, inside_repeat, expr) for b in arg[1]), default=0)
        elif op is sre_constants.SUBPATTERN:
            count += _count_repeats(arg[-1], inside_repeat, expr)
        elif op is getattr(sre_constants, "ATOMIC_GROUP", None):
            count += _count_repeats(arg, inside_repeat, expr)
    return count


def _captures(fields: _Fields, interfaces: tuple[InterfaceConfig, ...]) -> tuple[Capture, ...]:
    """`interface` xor `alias`, each a list (or one string); one capture per interface."""
    names = fields.names("interface")
    aliases = fields.names("alias")
    if names and aliases:
        raise TriggerError("interface", "give interface or alias, not both")
    if not names and not aliases:
        raise TriggerError("interface", "one of interface or alias is required")
    known = {i.name for i in interfaces}
    result: dict[str, Capture] = {}
    for name in names:
        if name not in known:
            raise TriggerError("interface", f"{name!r} is not captured on this node "
                               f"(known: {', '.join(sorted(known))})")
        result.setdefault(name, Capture(name))
    for alias in aliases:
        covered = [i.name for i in interfaces if alias in i.aliases]
        if not covered:
            known_aliases = sorted({a for i in interfaces for a in i.aliases})
            raise TriggerError("alias", f"{alias!r} is not an alias on this node "
                               f"(known: {', '.join(known_aliases) or 'none'})")
        for name in covered:
            result.setdefault(name, Capture(name, alias))
    return tuple(result.values())


def _window(fields: _Fields, received_ns: int, max_duration_s: float
            ) -> tuple[int | None, int | None]:
    start = fields.number("start")
    end = fields.number("end")
    now_s = received_ns / 1e9
    for name, value in (("start", start), ("end", end)):
        if value is not None and not now_s - WINDOW_PAST_LIMIT_S <= value <= now_s + 86400:
            raise TriggerError(name, f"{value:g} is not an epoch time in seconds near now")
    if start is not None and end is not None:
        if end <= start:
            raise TriggerError("end", "must be after start")
        if end - start > max_duration_s:
            raise TriggerError("end", f"window longer than maxduration {max_duration_s:g} s")
    return (None if start is None else int(start * 1e9), None if end is None else int(end * 1e9))


def _tags(fields: _Fields) -> tuple[str, ...]:
    raw = fields.msg.get("tags")
    if raw is None or raw == "":
        return ()
    if isinstance(raw, list) and all(isinstance(t, str) for t in raw):
        raw = ",".join(raw)
    if not isinstance(raw, str) or len(raw) > MAX_TEXT_CHARS or _CONTROL.search(raw):
        raise TriggerError("tags", "must be a comma-separated string without control characters")
    return tuple(t.strip() for t in raw.split(",") if t.strip())


class _Fields:
    """Typed getters over the message whose errors name the field and the allowed range."""

    def __init__(self, msg: dict) -> None:
        self.msg = msg

    def text(self, key: str, max_chars: int) -> str:
        value = self.msg.get(key)
        if value is None:
            return ""
        if not isinstance(value, str) or len(value) > max_chars or _CONTROL.search(value):
            raise TriggerError(key, f"must be a string of at most {max_chars} characters "
                               "without control characters")
        return value

    def names(self, key: str) -> list[str]:
        value = self.msg.get(key)
        if value in (None, "", []):
            return []
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(
                isinstance(v, str) and 0 < len(v) <= 64 and not _CONTROL.search(v)
                for v in values):
            raise TriggerError(key, "must be a name or an array of names")
        return values

    def boolean(self, key: str) -> bool:
        value = self.msg.get(key, False)
        if not isinstance(value, bool):
            raise TriggerError(key, "must be true or false")
        return value

    def number(self, key: str) -> float | None:
        value = self.msg.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise TriggerError(key, "must be a number")
        return float(value)

    def integer(self, key: str, default: int | None, low: int, high: int,
                cap_name: str | None = None) -> int | None:
        value = self.msg.get(key)
        if value is None:
            return default
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TriggerError(key, "must be an integer")
        if not low <= value <= high:
            cap = f" ({cap_name})" if cap_name else ""
            raise TriggerError(key, f"{value} is out of range {low}..{high}{cap}")
        return value

    def seconds(self, key: str, default: float, high: float, cap_name: str,
                allow_zero: bool = False) -> float:
        value = self.number(key)
        if value is None:
            return default
        if value < 0 or (value == 0 and not allow_zero) or value > high:
            low = "0" if allow_zero else "above 0"
            raise TriggerError(key, f"{value:g} s is out of range: {low} up to {high:g} s "
                               f"({cap_name})")
        return value


def describe_request(request: CaptureRequest) -> str:
    """key=value summary for the log (no secrets live in a request)."""
    ifaces = ",".join(c.interface for c in request.captures)
    return (f"requestid={request.request_id} interfaces={ifaces} bpf={request.bpf!r} "
            f"snap={request.snap} packets={request.packets} bytes={request.max_bytes} "
            f"timeout_s={request.timeout_s:g} duration_s={request.duration_s:g} "
            f"before_s={request.before_s:g} alertid={request.alertid}")

