"""What a BPF expression says about the index keys: which flows of a file can hold a match.

`pushcap query` runs the real filter (libpcap's program, capture/bpf.py) over the records it
reads; this analysis only decides which records it need not read. So it must be conservative:
for every packet libpcap's filter accepts, the key predicate derived here must accept the
packet's flow. Where it is unsure it answers "every flow" (`None`), and the file is scanned.

Understood (pcap-filter syntax): `host A`, `net N[/len]`, `net N mask M`, `port P`,
`portrange A-B` with the qualifiers `ip`, `ip6`, `tcp`, `udp`, `sctp` and `src`/`dst`
(direction is ignored: either end matches, a superset); `tcp`, `udp`, `sctp`, `icmp`, `icmp6`,
`igmp`, `pim`, `vrrp`, `ip proto N`, `ip6 proto N`, `proto N`, `ip`, `ip6`, `arp`, `rarp`
(a bare IPv4 `host`/`net` also matches ARP and RARP addresses, as libpcap's does); `vlan [ID]`;
`and`/`&&`, `or`/`||` (equal precedence, left to right, as in libpcap), `not`/`!`,
parentheses, and libpcap's carried-over qualifiers (`host A or B`, `tcp port 80 or 443`).

Every other primitive (`arp host`, ether, less/greater, byte tests like `tcp[13] & 2 != 0`, names to
resolve) is "every flow" for its part of the expression; `not X` is always "every flow" (the
index keeps no negative facts). Keywords that move libpcap's header offsets for the rest of the
expression (`mpls`, `pppoes`, `geneve`, `vxlan`, ...) make the whole answer "every flow", and so
does `vlan` anywhere but as a term of the top-level `and`: only there does every packet the
filter accepts have as many tags as the expression has `vlan` keywords, so that the primitives
after them read the headers the index decoded behind the tags. A construction the parser does
not know (or a syntax error) is "every flow" too: libpcap, not this module, judges filters.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import numpy as np

PORTED = (6, 17, 132)
# keyword -> (protocol, family or None for IPv4 and IPv6)
PROTO_KEYWORDS = {"tcp": (6, None), "udp": (17, None), "sctp": (132, None), "icmp": (1, 4),
                  "icmp6": (58, 6), "igmp": (2, 4), "igrp": (9, 4), "pim": (103, None),
                  "vrrp": (112, 4)}
SHIFTING = {"mpls", "pppoes", "pppoed", "geneve", "vxlan", "llc", "atm", "lane", "oamf4",
            "oamf4s", "oamf4ec", "oam", "metac", "bcc", "sc", "ilmic", "connectmsg",
            "metaconnect"}
_DIRS = {"src", "dst"}
_TYPES = {"host", "net", "port", "portrange"}
_QUALIFIER_PROTOS = ("ip", "ip6", "tcp", "udp", "sctp", "ether", "arp", "rarp")
_AND, _OR, _NOT = {"and", "&&"}, {"or", "||"}, {"not", "!"}
_TOKEN = re.compile(r"\s*(&&|\|\||!=|==|<=|>=|<<|>>|[()!\[\]&|+*%<>=^-]|[^\s()!\[\]&|+*%<>=^]+)")


class Unsure(Exception):
    """A construction the analysis does not understand: the answer is every flow."""


# --- the predicate tree ------------------------------------------------------------------------
@dataclass(frozen=True)
class Leaf:
    kind: str  # host, net, port, proto, family, vlan, all
    a: object = None
    b: object = None
    c: object = None


@dataclass(frozen=True)
class Node:
    op: str  # and, or, not
    parts: tuple


ALL = Leaf("all")


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0
        self.quals: tuple | None = None  # (proto, type) of the last qualified primitive

    def peek(self, ahead: int = 0) -> str | None:
        at = self.pos + ahead
        return self.tokens[at] if at < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise Unsure("the expression ends early")
        self.pos += 1
        return token

    def parse(self):
        tree = self.expr()
        if self.peek() is not None:
            raise Unsure(f"unexpected {self.peek()!r}")
        return tree

    def expr(self):
        tree = self.unary()
        while self.peek() in _AND | _OR:
            op = "and" if self.take() in _AND else "or"
            right = self.unary()
            tree = Node(op, (tree, right))  # equal precedence, left to right (libpcap)
        return tree

    def unary(self):
        token = self.peek()
        if token in _NOT:
            self.take()
            return Node("not", (self.unary(),))
        if token == "(":
            self.take()
            self.quals = None
            tree = self.expr()
            if self.take() != ")":
                raise Unsure("unbalanced parentheses")
            self.quals = None
            return tree
        return self.primitive()

    def _at_end_of_primitive(self) -> bool:
        return self.peek() in (None, ")", *_AND, *_OR)

    def primitive(self) -> Leaf:
        """One primitive; libpcap's keywords are lower case (`TCP` would be a host name)."""
        word = self.take()
        if word in SHIFTING:
            raise Unsure(f"{word} moves the header offsets")
        if word == "vlan":
            self.quals = None
            if self._at_end_of_primitive():
                return Leaf("vlan")
            return Leaf("vlan", _number(self.take(), 4095))
        if word in ("less", "greater"):
            _number(self.take(), 1 << 32)
            self.quals = None
            return ALL
        if word in ("arp", "rarp") and self._at_end_of_primitive():
            self.quals = None
            return Leaf("ethertype", 0x0806 if word == "arp" else 0x8035)
        if word in PROTO_KEYWORDS and word not in _QUALIFIER_PROTOS:
            if not self._at_end_of_primitive():
                raise Unsure(f"{word} followed by {self.peek()!r}")
            self.quals = None
            return self._keyword(word)
        proto = qualified = None
        if word in _QUALIFIER_PROTOS:
            proto = word
            if self._at_end_of_primitive():
                self.quals = None
                if word in ("ip", "ip6"):
                    return Leaf("family", 4 if word == "ip" else 6)
                return self._keyword(word)
            qualified, word = True, self.take()
        if word == "proto":
            self.quals = None
            return self._proto(proto, self.take())
        if word in _DIRS:
            if self.peek() in ("or", "and") and self.peek(1) in _DIRS:
                self.pos += 2
            qualified, word = True, self.take()
        if word in _TYPES:
            self.quals = (proto, word)
            return self._typed(proto, word, self.take())
        if qualified:  # `ip src A`, `dst A`: without a type, libpcap assumes host
            self.quals = (proto, "host")
            return self._typed(proto, "host", word)
        if self.quals is not None:  # a bare id: libpcap gives it the last qualifiers
            return self._typed(self.quals[0], self.quals[1], word)
        if self.pos == 1 and _is_address(word):  # the expression's first word: a host
            self.quals = (None, "host")
            return self._typed(None, "host", word)
        raise Unsure(f"unknown primitive at {word!r}")

    def _keyword(self, word: str) -> Leaf:
        if word not in PROTO_KEYWORDS:
            raise Unsure(f"{word} needs more")
        protocol, family = PROTO_KEYWORDS[word]
        return Leaf("proto", protocol, family)

    def _proto(self, proto: str | None, value: str) -> Leaf:
        if proto not in (None, "ip", "ip6"):
            raise Unsure(f"{proto} proto")
        name = value.lstrip("\\").lower()
        if name in PROTO_KEYWORDS:
            number = PROTO_KEYWORDS[name][0]
        else:
            number = _number(value, 255)
        return Leaf("proto", number, {None: None, "ip": 4, "ip6": 6}[proto])

    def _typed(self, proto: str | None, kind: str, value: str) -> Leaf:
        if proto in ("ether", "arp", "rarp"):
            if kind != "host":
                raise Unsure(f"{proto} {kind}")
            return ALL  # one value: an address or a MAC, which the index does not hold
        if kind in ("port", "portrange"):
            if proto not in (None, "tcp", "udp", "sctp"):
                raise Unsure(f"{proto} {kind}")
            protocol = PROTO_KEYWORDS[proto][0] if proto else None
            if kind == "port":
                port = _number(value, 65535)
                return Leaf("port", port, port, protocol)
            low, sep, high = value.partition("-")
            if not sep:
                raise Unsure("a portrange without '-'")
            low_n, high_n = _number(low, 65535), _number(high, 65535)
            return Leaf("port", min(low_n, high_n), max(low_n, high_n), protocol)
        if proto in ("tcp", "udp", "sctp"):
            raise Unsure(f"{proto} {kind}")
        network = _network(value, kind, self)
        family = 4 if network.version == 4 else 6
        if proto is not None and {"ip": 4, "ip6": 6}[proto] != family:
            raise Unsure("an address of the other family")
        # a bare IPv4 host or net is libpcap's `ip ... or arp ... or rarp ...`
        return Leaf("net", network, family, proto is None and family == 4)


def _tokenize(text: str) -> list[str]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise Unsure("unreadable expression")
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


def _number(text: str, limit: int) -> int:
    try:
        value = int(text, 16) if text.lower().startswith("0x") else int(text, 10)
    except ValueError:
        raise Unsure(f"not a number: {text!r}") from None
    if not 0 <= value <= limit:
        raise Unsure(f"out of range: {text!r}")
    return value


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _network(value: str, kind: str, parser: _Parser):
    """The network a host or net primitive names (a host is a /32 or /128)."""
    try:
        if kind == "host":
            address = ipaddress.ip_address(value)
            return ipaddress.ip_network(address)
        if "/" in value:
            return ipaddress.ip_network(value, strict=True)
        if (parser.peek() or "").lower() == "mask":
            parser.take()
            return ipaddress.ip_network(f"{value}/{parser.take()}", strict=True)
        if ":" in value:
            return ipaddress.ip_network(value, strict=True)
        octets = value.split(".")
        if not 1 <= len(octets) <= 4 or not all(o.isdigit() for o in octets):
            raise Unsure(f"net {value}")
        return ipaddress.ip_network(".".join(octets + ["0"] * (4 - len(octets)))
                                    + f"/{8 * len(octets)}", strict=True)
    except ValueError:
        raise Unsure(f"{kind} {value}") from None


# --- the analysis ------------------------------------------------------------------------------
def _vlans_on_top(tree) -> bool:
    """True unless a vlan leaf lies below an `or` or a `not`."""
    def under(node, top: bool) -> bool:
        if isinstance(node, Leaf):
            return node.kind != "vlan" or top
        return all(under(p, top and node.op == "and") for p in node.parts)
    return under(tree, True)


def analyse(expression: str | None):
    """The predicate tree of `expression`, or None for every flow."""
    if expression is None or not expression.strip():
        return None
    try:
        tree = _Parser(expression).parse()
    except Unsure:
        return None
    if not _vlans_on_top(tree):
        return None
    tree = _simplify(tree)
    return None if tree == ALL else tree


def _simplify(tree):
    if isinstance(tree, Leaf):
        return tree
    if tree.op == "not":
        return ALL
    parts = [_simplify(p) for p in tree.parts]
    if tree.op == "or" and ALL in parts:
        return ALL
    if tree.op == "and":
        parts = [p for p in parts if p != ALL] or [ALL]
        if len(parts) == 1:
            return parts[0]
    return Node(tree.op, tuple(parts))


def flow_mask(tree, flows: dict[str, np.ndarray]) -> np.ndarray:
    """True for the flows (IndexReader.flows() columns) whose packets the filter may accept:
    the predicate's, plus every flow not `exact`."""
    n = len(flows["exact"])
    if tree is None:
        return np.ones(n, bool)
    return _evaluate(tree, flows, n) | ~flows["exact"].astype(bool)


def _evaluate(tree, flows: dict[str, np.ndarray], n: int) -> np.ndarray:
    if isinstance(tree, Node):
        masks = [_evaluate(p, flows, n) for p in tree.parts]
        if tree.op == "and":
            return np.logical_and.reduce(masks)
        return np.logical_or.reduce(masks)
    kind = tree.kind
    if kind == "all":
        return np.ones(n, bool)
    if kind == "family":
        return flows["ip_version"] == tree.a
    if kind == "ethertype":
        return flows["ethertype"] == tree.a
    if kind == "proto":
        mask = flows["protocol"] == tree.a
        if tree.b is None:
            return mask & (flows["ip_version"] != 0)
        return mask & (flows["ip_version"] == tree.b)
    if kind == "port":
        low, high, protocol = tree.a, tree.b, tree.c
        sport, dport = flows["src_port"], flows["dst_port"]
        mask = ((sport >= low) & (sport <= high)) | ((dport >= low) & (dport <= high))
        allowed = PORTED if protocol is None else (protocol,)
        return mask & np.isin(flows["protocol"], allowed) & (flows["ip_version"] != 0)
    if kind == "vlan":
        tagged = flows["vlan"] >= 0
        if tree.a is None:
            return tagged
        return tagged & ((flows["vlan"] == tree.a) | (flows["inner_vlan"] == tree.a))
    if kind == "net":
        network, family = tree.a, tree.b
        size = 4 if family == 4 else 16
        mask_bytes = np.frombuffer(network.netmask.packed, np.uint8)
        net_bytes = np.frombuffer(network.network_address.packed, np.uint8)
        right = flows["ip_version"] == family
        if tree.c:  # ARP and RARP addresses too
            right |= np.isin(flows["ethertype"], (0x0806, 0x8035))
        ends = [_in_net(flows[col], size, mask_bytes, net_bytes)
                for col in ("src_raw", "dst_raw")]
        return right & (ends[0] | ends[1])
    raise ValueError(f"unknown leaf {kind}")


def _in_net(raw: np.ndarray, size: int, mask_bytes: np.ndarray,
            net_bytes: np.ndarray) -> np.ndarray:
    """Rows of `raw` ((n, 16) uint8 addresses) whose first `size` bytes are in the network,
    compared as 4- or 8-byte words (a host of a daemon-served query: ~10x faster than bytes)."""
    word = np.dtype("<u4") if size == 4 else np.dtype("<u8")
    words = np.ascontiguousarray(raw).view(word)[:, :size // word.itemsize]
    mask, net = mask_bytes.view(word), net_bytes.view(word)
    return ((words & mask) == net).all(axis=1) if len(mask) > 1 else \
        (words[:, 0] & mask[0]) == net[0]


_LEAF_COLUMNS = {"all": (), "family": ("ip_version",), "ethertype": ("ethertype",),
                 "proto": ("protocol", "ip_version"),
                 "port": ("src_port", "dst_port", "protocol", "ip_version"),
                 "vlan": ("vlan", "inner_vlan"),
                 "net": ("ip_version", "ethertype", "src_raw", "dst_raw")}


def columns_needed(tree) -> tuple[str, ...]:
    """The flow columns `flow_mask(tree, ...)` reads, with the time span and `exact`."""
    found = {"exact", "first_ts", "last_ts"}
    stack = [tree] if tree is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, Node):
            stack.extend(node.parts)
        else:
            found.update(_LEAF_COLUMNS[node.kind])
    return tuple(sorted(found))
