"""Per-interval flow table: packets and bytes per 5-tuple, summed with numpy.

The fallback of native_table.NativeFlowTable (the C table, where the library is built), which
keeps the same first-seen order and cap, so both give the same records.

A batch's packets are reduced to one row per distinct flow in numpy (a 64-bit hash of the packed
key, `np.unique`, `np.bincount`), so no Python runs per packet. The per-batch rows are kept in a
pending list and merged (compacted) with the interval's table once they pile up, so the Python
work is per flow per compaction, not per packet, and memory stays bounded.

The cap: at most `max_flows` flows per interval. The first flows seen in an interval keep their
place (as a dict would do); a flow that arrives when the table is full is turned away and its
packets and bytes are added to the overflow counters, which the target reports. The hash is
only an accelerator: every group is checked against the full key and a collision falls back to
an exact sort of the keys, so two flows are never merged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pushcap import defaults
from pushcap.flows.decode import Decoded

# One flow key packed into 40 bytes (5 x uint64 for hashing), a row of a (n, 40) uint8 array:
# family, proto, sport (LE u16), dport (LE u16), 2 zero bytes, src (16), dst (16).
# A plain byte matrix rather than a structured dtype: np.concatenate drops a structured dtype's
# padding, and the 8-byte word view needs exactly 40 bytes per row.
KEY_BYTES = 40
SRC_AT, DST_AT = 8, 24
_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


@dataclass
class Flows:
    """The flows of one interval: `keys` ((n, 40) uint8, see KEY_BYTES), `count` and `length`
    (int64), aligned; `unpack_keys` gives the fields back."""

    keys: np.ndarray
    count: np.ndarray
    length: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)


@dataclass
class Overflow:
    """What the cap turned away: exact packets and bytes; flows counted once per compaction."""

    flows: int = 0
    packets: int = 0
    bytes: int = 0


def pack_keys(decoded: Decoded, idx: np.ndarray) -> np.ndarray:
    """Key rows for packets `idx` of a decoded batch."""
    keys = np.zeros((len(idx), KEY_BYTES), dtype=np.uint8)
    keys[:, 0] = decoded.family[idx]
    keys[:, 1] = decoded.proto[idx]
    keys[:, 2:6].view("<u2")[:] = np.stack([decoded.sport[idx], decoded.dport[idx]], axis=1)
    keys[:, SRC_AT:SRC_AT + 16] = decoded.src[idx]
    keys[:, DST_AT:DST_AT + 16] = decoded.dst[idx]
    return keys


def unpack_keys(keys: np.ndarray) -> dict[str, np.ndarray]:
    """family, proto, sport, dport (1-D) and src, dst ((n, 16) uint8) of key rows."""
    ports = np.ascontiguousarray(keys[:, 2:6]).view("<u2")
    return {"family": keys[:, 0], "proto": keys[:, 1], "sport": ports[:, 0],
            "dport": ports[:, 1], "src": keys[:, SRC_AT:SRC_AT + 16],
            "dst": keys[:, DST_AT:DST_AT + 16]}


def _hash(keys: np.ndarray) -> np.ndarray:
    words = keys.view("<u8")
    h = words[:, 0] * _MIX[0]
    for i in range(1, 5):
        h = (h ^ words[:, i]) * _MIX[1]
        h ^= h >> np.uint64(29)
    return h * _MIX[2]


def group(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first index of each distinct key, inverse: group number per row), groups in key-hash
    order. Exact: verified against the full keys."""
    if not len(keys):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    with np.errstate(over="ignore"):
        h = _hash(keys)
    _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
    raw = keys.view("<u8")
    if not (raw == raw[first[inverse]]).all():  # a 64-bit collision: sort the real keys
        _, first, inverse = np.unique(keys.view(f"V{KEY_BYTES}").ravel(), return_index=True,
                                      return_inverse=True)
    return first, inverse.ravel()


def reduce_rows(keys: np.ndarray, count: np.ndarray, length: np.ndarray) -> Flows:
    """Sum rows with equal keys; the result is ordered by each key's first row."""
    first, inverse = group(keys)
    n = len(first)
    order = np.argsort(first, kind="stable")
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    g = rank[inverse]
    return Flows(keys[first[order]], np.bincount(g, weights=count, minlength=n).astype(np.int64),
                 np.bincount(g, weights=length, minlength=n).astype(np.int64))


def _no_flows() -> Flows:
    return Flows(np.zeros((0, KEY_BYTES), np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int64))


class FlowTable:
    """One interval's flows; `add` per batch, `take` at the end of the interval."""

    def __init__(self, max_flows: int = defaults.MAX_FLOWS, compact_rows: int | None = None
                 ) -> None:
        """`compact_rows`: pending per-batch rows that trigger a merge (memory vs. merge work)."""
        if max_flows < 1:
            raise ValueError("max_flows must be at least 1")
        self.max_flows = max_flows
        self.overflow = Overflow()
        self._compact_rows = compact_rows or max(defaults.FLOWS_COMPACT_MIN_ROWS, 2 * max_flows)
        self._table = _no_flows()
        self._pending: list[Flows] = []
        self._pending_rows = 0
        self.packets = 0

    def __bool__(self) -> bool:
        return bool(len(self._table) or self._pending)

    def add(self, decoded: Decoded, idx: np.ndarray) -> None:
        """Count packets `idx` of a decoded batch (indices of IP packets only)."""
        if not len(idx):
            return
        keys = pack_keys(decoded, idx)
        lengths = decoded.length[idx]
        # bincount's float weights are exact below 2**53 bytes per flow per batch.
        batch = reduce_rows(keys, np.ones(len(idx), np.int64), lengths)
        self.packets += len(idx)
        self._pending.append(batch)
        self._pending_rows += len(batch)
        if self._pending_rows >= self._compact_rows:
            self._compact()

    def _compact(self) -> None:
        """Merge pending rows into the table, turning away flows beyond the cap."""
        if not self._pending:
            return
        parts = [self._table, *self._pending]
        self._pending, self._pending_rows = [], 0
        merged = reduce_rows(np.concatenate([p.keys for p in parts]),
                             np.concatenate([p.count for p in parts]),
                             np.concatenate([p.length for p in parts]))
        if len(merged) > self.max_flows:  # table rows come first: old flows keep their place
            cut = self.max_flows
            self.overflow.flows += len(merged) - cut
            self.overflow.packets += int(merged.count[cut:].sum())
            self.overflow.bytes += int(merged.length[cut:].sum())
            merged = Flows(merged.keys[:cut], merged.count[:cut], merged.length[:cut])
        self._table = merged

    def take(self) -> Flows:
        """The interval's flows (first seen first); the table starts empty again."""
        self._compact()
        flows = self._table
        self._table = _no_flows()
        self.packets = 0
        return flows
