"""A capture request as published on Redis: parsed and validated into a frozen CaptureRequest.

The message format is pcapdaemon's, so existing publishers work unchanged; pushcap adds `before`,
`start`/`end` and `requestid`. Validation is complete before anything is captured: every bad
message is refused with a TriggerError naming the field, so the publisher learns what to fix and
the listener goes on with the next message; hostile input too (numbers beyond a float, nesting
beyond the parser): nothing but TriggerError leaves `parse_request`. A message for another node
is not an error: parse returns None and the caller stays quiet.

pcapdaemon's conventions are kept where publishers rely on them: a limit of 0 (`timeout`,
`duration`, `bytes`, `snap`) means what leaving it out means, as in Go where absent and 0 are one
value; names in `interface`/`alias` this node lacks are skipped with a note (`notes`), and only a
request naming none of its interfaces is refused, so a fleet-wide request with per-node names
works.

Times: `start`/`end` are epoch seconds; `before` reaches back from the request. `timeout` and
`duration` both bound the live part of the capture, so they count from the request, or from
`start` when that lies in the future; a past `start` only reaches back into the ring, like
`before` (start = now - 30 with duration 10 is [now - 30, now + 10)). pcapdaemon has no `start`:
there, as here, a capture and its timeout begin at the request. `end` cuts the window wherever
`duration` or `timeout` would end it later.

`timeout` is pcapdaemon's "seconds to let capture last should the number of packets not get
hit": a cap on the live time, not a gap between packets, so "50 packets or 15 s, whichever
first" holds on a busy link too. Its default (`defaulttimeout`) exists for pcapdaemon requests,
which say nothing else about how long to capture; a request giving `duration` or `end` has said
it, so without an explicit `timeout` the default does not cut it short (`timeout_s` None), while
one given explicitly still applies and the earlier end wins.

Node regexes come from the network and run in this process, so only a safe subset is accepted:
node_match.py proves a bounded cost before the search runs. Each field is read through the typed
getters of message_fields.py, whose refusals name the field and its allowed form.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass

from pushcap import defaults
from pushcap.capture.bpf import BpfError
from pushcap.config.bpf_compile import shown_filter
from pushcap.config.model import InterfaceConfig
from pushcap.config.pcapdaemon import TriggerSettings
from pushcap.trigger.errors import TriggerError  # raised here; importers may take it from here
from pushcap.trigger.message_fields import CONTROL_CHARS, MessageFields
from pushcap.trigger.node_match import compile_node_regex

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
# Fields pcapdaemon accepts that have no meaning here: allowed, ignored. Its per-request S3
# fields among them: a request may not send the node's S3 keys to another endpoint or bucket,
# nor make a capture public; [s3] alone says where captures go.
IGNORED_FIELDS = {"folder", "bucket", "acl", "region", "endpoint", "encryption",
                  "aliasmatched", "alertstr"}


@dataclass(frozen=True)
class Capture:
    """One interface to capture, and the alias that selected it (for tags and results)."""

    interface: str
    alias: str | None = None
    # an interface of this host that [[interface]] does not list: captured live, no lookback
    on_demand: bool = False


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
    # Seconds from the live start (module docstring), matches or not; None: no timeout, the
    # request's `duration`/`end` says how long (pcapdaemon's default would cut it short).
    timeout_s: float | None
    duration_s: float  # from the request, or from `start` if that is ahead (module docstring)
    before_s: float = 0.0
    start_ns: int | None = None  # absolute window, epoch nanoseconds
    end_ns: int | None = None
    tags: tuple[str, ...] = ()
    customer: str | None = None
    alertid: int | None = None
    log_request: bool = False
    packet_debug: bool = False  # `packetdebug` (or [general] packetdebug): log its packets
    notes: tuple[str, ...] = ()  # what was adjusted or skipped, for every result and the log
    # `maxduration`: the longest window [start, end), lookback included (the job cuts its end)
    max_window_s: float = defaults.TRIGGER_MAX_DURATION_S


# A BPF check callback: compile `expr` for an interface or raise BpfError. The service passes
# none: it compiles off the listener thread, after parsing (request_filter.py says why).
BpfCheck = Callable[[str, str], None]
# The host's capture devices (libpcap's list), asked for lazily.
HostInterfaces = Callable[[], Collection[str]]


def request_id_of(data: bytes | str) -> str | None:
    """The `requestid` of a message that failed validation, if one can be read (for its result)."""
    try:
        value = json.loads(data).get("requestid")
    except (ValueError, AttributeError, TypeError, RecursionError):
        return None
    return value if isinstance(value, str) and _SAFE_ID.match(value) else None


def parse_request(data: bytes | str, settings: TriggerSettings,
                  interfaces: tuple[InterfaceConfig, ...], check_bpf: BpfCheck | None = None,
                  received_ns: int | None = None,
                  host_interfaces: HostInterfaces | None = None) -> CaptureRequest | None:
    """Validate a raw message for this node; None when it is addressed to another node.
    `host_interfaces`: the host's capture devices, asked only for an `interface` name that
    [[interface]] lacks (on-demand capture, `[general] ondemand`); None: such names are skipped.

    Raises TriggerError and nothing else: a number or a nesting that breaks Python's own
    limits somewhere no field check foresaw is still a refusal of the message, not a crash.
    """
    try:
        return _parse(data, settings, interfaces, check_bpf, received_ns, host_interfaces)
    except (OverflowError, RecursionError, MemoryError) as exc:
        raise TriggerError("message", f"cannot be validated ({type(exc).__name__}: {exc})"[:200]
                           ) from None


def _parse(data: bytes | str, settings: TriggerSettings,
           interfaces: tuple[InterfaceConfig, ...], check_bpf: BpfCheck | None,
           received_ns: int | None, host_interfaces: HostInterfaces | None = None
           ) -> CaptureRequest | None:
    if len(data) > defaults.MAX_MESSAGE_BYTES:
        raise TriggerError("message", f"larger than {defaults.MAX_MESSAGE_BYTES} bytes")
    try:
        # surrogatepass: an encoded lone surrogate (ED A0 80) decodes, so the field holding it
        # is named below (MessageFields refuses it), rather than the whole message
        text = data.decode("utf-8", "surrogatepass") if isinstance(data, bytes) else data
        msg = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise TriggerError("message", f"not JSON ({type(exc).__name__}: {exc})"[:200]) from None
    if not isinstance(msg, dict):
        raise TriggerError("message", "must be a JSON object")
    if not _for_this_node(msg, settings.node_name):
        return None  # another node's message, even a bad one: its node answers for it
    _check_utf8(msg)
    received_ns = received_ns if received_ns is not None else time.time_ns()
    fields = MessageFields(msg)
    captures, notes = _captures(fields, interfaces, host_interfaces)
    notes += _unknown_fields(msg)
    bpf = fields.text("bpf", defaults.MAX_BPF_CHARS) or None
    if bpf is not None and check_bpf is not None:
        for capture in captures:
            try:
                check_bpf(bpf, capture.interface)
            except BpfError as exc:
                raise TriggerError("bpf", f"{shown_filter(bpf)} does not compile: {exc}"
                                   ) from None
    # 0 is "not set" for every limit below, as in pcapdaemon (see the module docstring).
    timeout_s: float | None = fields.seconds("timeout", 0.0, settings.max_timeout_s, "maxtimeout")
    duration_s = fields.seconds("duration", 0.0, settings.max_duration_s, "maxduration")
    start_ns, end_ns = _window(fields, received_ns, settings.max_duration_s)
    if not timeout_s:
        # The default timeout only for requests that say nothing of how long (module docstring).
        timeout_s = None if duration_s or end_ns is not None else settings.default_timeout_s
    duration_s = duration_s or settings.max_duration_s
    request_id = fields.text("requestid", 64)
    if request_id and not _SAFE_ID.match(request_id):
        raise TriggerError("requestid", "letters, digits and ._:- only, at most 64")
    # 0 is no alert id, as in pcapdaemon (Go's zero value): no `alertid:0` tag, none in results
    alertid = fields.integer("alertid", None, 0, 2**63 - 1) or None
    return CaptureRequest(
        request_id=request_id or uuid.uuid4().hex,
        received_ns=received_ns,
        captures=captures,
        bpf=bpf,
        snap=fields.integer("snap", settings.snap_length, 1, defaults.MAX_SNAPLEN_BYTES,
                            zero_is_default=True),
        # `packets: 0` stays refused, as pcapdaemon refuses it ("between 1 and maxpackets").
        packets=fields.integer("packets", settings.max_packets, 1, settings.max_packets,
                               "maxpackets"),
        max_bytes=fields.integer("bytes", settings.max_bytes, 1, settings.max_bytes, "maxbytes",
                                 zero_is_default=True),
        timeout_s=timeout_s,
        duration_s=duration_s,
        before_s=fields.seconds("before", 0.0, settings.max_duration_s, "maxduration"),
        start_ns=start_ns,
        end_ns=end_ns,
        tags=_tags(fields),
        customer=fields.text("customer", 256) or None,
        alertid=alertid,
        log_request=fields.boolean("logrequest"),
        packet_debug=fields.boolean("packetdebug") or settings.packet_debug,
        notes=notes,
        max_window_s=settings.max_duration_s,
    )


# Every field pcapdaemon's messages have, and pushcap's own (before, start, end, duration).
KNOWN_FIELDS = ("node", "nodere", "interface", "alias", "bpf", "snap", "packets", "bytes",
                "timeout", "duration", "before", "start", "end", "tags", "customer", "alertid",
                "logrequest", "packetdebug", "requestid")


_MAX_UNKNOWN_NOTES = 10


def _check_utf8(msg: dict) -> None:
    """Every string must be text that can be written out: a lone surrogate (`"\\ud800"` in
    the JSON, or its bytes) is refused naming its field, before anything uses it."""
    for key, value in msg.items():
        for item in value if isinstance(value, list) else (value,):
            if isinstance(item, str):
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    # named by its key when that can name it (an empty or huge key cannot)
                    field = (key if isinstance(key, str) and key.isprintable()
                             and 0 < len(key) <= 64 else "message")
                    raise TriggerError(field, "is not valid UTF-8 text (a lone surrogate)"
                                       ) from None
        if isinstance(key, str):
            try:
                key.encode("utf-8")
            except UnicodeEncodeError:
                raise TriggerError("message", "a field name is not valid UTF-8 text") from None


def _unknown_fields(msg: dict) -> tuple[str, ...]:
    """Notes for fields nobody reads: pcapdaemon accepts them too, but a typo (`bfp` for `bpf`)
    would silently capture every packet, so the result and the log say so."""
    import difflib

    notes = []
    unknown = sorted(k for k in msg if k not in KNOWN_FIELDS and k not in IGNORED_FIELDS)
    for key in unknown[:_MAX_UNKNOWN_NOTES]:
        close = difflib.get_close_matches(key, KNOWN_FIELDS, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        notes.append(f"unknown field {key[:64]!r} ignored{hint}")
    if len(unknown) > _MAX_UNKNOWN_NOTES:
        notes.append(f"and {len(unknown) - _MAX_UNKNOWN_NOTES} more unknown fields ignored")
    return tuple(notes)


def _for_this_node(msg: dict, node_name: str) -> bool:
    """pcapdaemon's node rule: exactly one of `node` (exact, or "any") and `nodere` (search)."""
    node, nodere = msg.get("node"), msg.get("nodere")
    if node in (None, "") and nodere in (None, ""):
        raise TriggerError("node", "one of node or nodere is required")
    if node not in (None, "") and nodere not in (None, ""):
        raise TriggerError("node", "give node or nodere, not both")
    if node not in (None, ""):
        if not isinstance(node, str):
            raise TriggerError("node", "must be a host name (string) or \"any\"")
        if len(node) > 255:
            raise TriggerError("node", f"{len(node)} characters: a host name has at most 255")
        return node in ("any", node_name)
    if not isinstance(nodere, str):
        raise TriggerError("nodere", "must be a string (a regular expression)")
    pattern = compile_node_regex(nodere, len(node_name))
    return pattern.search(node_name) is not None


def _captures(fields: MessageFields, interfaces: tuple[InterfaceConfig, ...],
              host_interfaces: HostInterfaces | None = None
              ) -> tuple[tuple[Capture, ...], tuple[str, ...]]:
    """`interface` xor `alias`, each a list (or one string); one capture per interface.

    An `interface` name that [[interface]] lacks but the host has is captured on demand when
    `host_interfaces` is given (pcapdaemon captured any interface of its host). Names this node
    does not have are skipped with a note (pcapdaemon skipped them too); the request is refused
    only when none of them is here, naming what is.
    """
    names = fields.names("interface")
    aliases = fields.names("alias")
    if names and aliases:
        raise TriggerError("interface", "give interface or alias, not both")
    if not names and not aliases:
        raise TriggerError("interface", "one of interface or alias is required")
    known = sorted({i.name for i in interfaces})
    known_aliases = sorted({a for i in interfaces for a in i.aliases})
    result: dict[str, Capture] = {}
    unknown: list[str] = []
    for name in names:
        if name in known:
            result.setdefault(name, Capture(name))
        elif name not in unknown:
            unknown.append(name)
    if unknown and names and host_interfaces is not None:
        present = set(host_interfaces())
        for name in [n for n in unknown if n in present]:
            unknown.remove(name)
            result.setdefault(name, Capture(name, on_demand=True))
    for alias in aliases:
        covered = [i.name for i in interfaces if alias in i.aliases]
        if not covered and alias not in unknown:
            unknown.append(alias)
        for name in covered:
            result.setdefault(name, Capture(name, alias))
    key, what, listed = (("interface", "captured on this node", known) if names else
                         ("alias", "an alias on this node", known_aliases))
    shown = ", ".join(map(repr, unknown))
    if not result:
        raise TriggerError(key, f"{shown} {'is' if len(unknown) == 1 else 'are'} not {what} "
                           f"(known: {', '.join(listed) or 'none'})")
    notes = tuple(f"{key} {name!r} skipped: not {what} (known: {', '.join(listed) or 'none'})"
                  for name in unknown)
    return tuple(result.values()), notes


def _window(fields: MessageFields, received_ns: int, max_duration_s: float
            ) -> tuple[int | None, int | None]:
    start = fields.number("start")
    end = fields.number("end")
    now_s = received_ns / 1e9
    for name, value in (("start", start), ("end", end)):
        if value is not None and not now_s - defaults.WINDOW_PAST_LIMIT_S <= value <= now_s + 86400:
            raise TriggerError(name, f"{value:g} is not an epoch time in seconds near now")
    if start is not None and end is not None:
        if end <= start:
            raise TriggerError("end", "must be after start")
        if end - start > max_duration_s:
            raise TriggerError("end", f"window longer than maxduration {max_duration_s:g} s")
    return (None if start is None else int(start * 1e9), None if end is None else int(end * 1e9))


def _tags(fields: MessageFields) -> tuple[str, ...]:
    raw = fields.msg.get("tags")
    if raw is None or raw == "":
        return ()
    if isinstance(raw, list) and all(isinstance(t, str) for t in raw):
        raw = ",".join(raw)
    if not isinstance(raw, str) or CONTROL_CHARS.search(raw):
        raise TriggerError("tags", "must be a comma-separated string without control characters")
    if len(raw) > defaults.MAX_TEXT_CHARS:
        raise TriggerError("tags", f"{len(raw)} characters: at most {defaults.MAX_TEXT_CHARS}")
    return tuple(t.strip() for t in raw.split(",") if t.strip())


def describe_request(request: CaptureRequest) -> str:
    """key=value summary for the log (no secrets live in a request)."""
    ifaces = ",".join(c.interface for c in request.captures)
    timeout = "none" if request.timeout_s is None else f"{request.timeout_s:g}"
    return (f"requestid={request.request_id} interfaces={ifaces} bpf={request.bpf!r} "
            f"snap={request.snap} packets={request.packets} bytes={request.max_bytes} "
            f"timeout_s={timeout} duration_s={request.duration_s:g} "
            f"before_s={request.before_s:g} alertid={request.alertid}")

