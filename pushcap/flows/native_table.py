"""A flows target's per-batch work in C (`capture/csrc/flowcount.c`): decode and count in one
call, into a flow table held in arrays that the call updates.

Why: the numpy path (decode.py, aggregate.py) runs some fifty array operations per batch and
sorts every batch's keys, ~0.7-1 µs a packet, more than capture itself costs; in C a packet is
read once and counted where it lies. The table keeps flows in first-seen order with the same
cap rule as `aggregate.FlowTable`, so `take()` gives the same `Flows` (keys, counts, lengths)
and the records sent are the same, byte for byte (tests/test_flows_native.py compares the two
paths on real captures). Where the library is not built, or predates `flows_count`,
`native_flows()` is None and the target takes the numpy path.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

from pushcap.capture.batch import Batch
from pushcap.capture.native import bind, buffer_address
from pushcap.flows.aggregate import KEY_BYTES, Flows, FlowTable, Overflow

_I64 = ctypes.c_int64
_P = ctypes.c_void_p
DONE, NEW_INTERVAL, GROW, NEED_OVERFLOW_SET = 0, 1, 2, 3
FIRST_ROWS = 4096  # the table's first size; it doubles up to max_flows
# flowcount.c's struct flow_row: a flow in one 64-byte cache line
ROW = np.dtype([("key", np.uint8, (KEY_BYTES,)), ("count", "<i8"), ("length", "<i8"),
                ("hash", "<u8")])


class _Table(ctypes.Structure):
    """flowcount.c's struct flow_table."""

    _fields_ = [("rows_at", _P), ("slots", _P),
                ("rows", _I64), ("capacity", _I64), ("slot_mask", _I64), ("max_flows", _I64),
                ("ov_rows_at", _P), ("ov_slots", _P),
                ("ov_rows", _I64), ("ov_capacity", _I64), ("ov_slot_mask", _I64),
                ("ov_flows", _I64), ("ov_packets", _I64), ("ov_bytes", _I64),
                ("packets", _I64)]


class _Call(ctypes.Structure):
    """flowcount.c's struct flow_call."""

    _fields_ = [("interval_ns", _I64), ("base", _I64), ("open", _I64), ("stop", _I64),
                ("packets", _I64), ("non_ip", _I64)]


class NativeFlows:
    """The loaded functions (see csrc/flowcount.c for their contracts)."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self.count = library.flows_count
        self.count.restype = _I64
        self.count.argtypes = [_P, _I64, _P, _P, _P, _P, _I64, ctypes.c_int, _P, _I64, _I64,
                                ctypes.POINTER(_Call), ctypes.POINTER(_Table)]
        self.rehash = library.flows_rehash
        self.rehash.restype = None
        self.rehash.argtypes = [ctypes.POINTER(_Table)]


@functools.cache
def native_flows() -> NativeFlows | None:
    """The C functions, or None where the library was not built (or predates them)."""
    return bind(NativeFlows)


def _slots_for(rows: int) -> int:
    """A power of two at least twice `rows`: lookups probe a table at most half full."""
    return 1 << max(4, (2 * rows - 1).bit_length())


class NativeFlowTable:
    """One interval's flows, counted by `flowcount.c`; `take()` as `aggregate.FlowTable`'s."""

    def __init__(self, max_flows: int, native: NativeFlows | None = None) -> None:
        native = native or native_flows()
        if native is None:
            raise RuntimeError("the C library (flows_count) is not built")
        if max_flows < 1:
            raise ValueError("max_flows must be at least 1")
        self.max_flows = max_flows
        self._native = native
        self._c = _Table(max_flows=max_flows)
        self._call = _Call()
        self._arrays: dict[str, np.ndarray] = {}  # owns the memory the struct points to
        self._grow(min(max_flows, FIRST_ROWS))

    @property
    def overflow(self) -> Overflow:
        """What the cap turned away (cumulative, as FlowTable.overflow)."""
        c = self._c
        return Overflow(c.ov_flows, c.ov_packets, c.ov_bytes)

    @property
    def packets(self) -> int:
        return self._c.packets

    def __bool__(self) -> bool:
        return self._c.rows > 0

    def count(self, batch: Batch, selected, position: int, interval_ns: int, base: int,
              is_open: bool) -> tuple[int, int, int, int | None, int]:
        """Count packets of `batch` (the ascending indices `selected`, or all for None) from
        `position` on, until done or until a packet opens another interval. `base` is the
        open interval (`is_open`), else the first one a packet may open (the target's rule).

        Returns (position reached, IP packets counted, non-IP packets, the open interval or
        None, stop): stop is DONE, or NEW_INTERVAL for the packet at the position returned
        (the caller sends the open interval and calls again from there)."""
        call = self._call
        call.interval_ns, call.base, call.open = interval_ns, base, int(is_open)
        n = len(batch)
        if selected is None:
            sel, nsel = None, n
        else:
            sel, nsel = buffer_address(selected, 8)
            if not nsel:  # NULL would mean every packet
                return 0, 0, 0, base if is_open else None, DONE
        offsets, ts_ns, caplen, wirelen = batch.columns
        columns = [buffer_address(column, 8)[0] for column in (offsets, ts_ns, caplen, wirelen)]
        records, records_len = buffer_address(batch.records)
        packets = non_ip = 0
        while True:
            reached = self._native.count(records, records_len, *columns, n, batch.linktype, sel,
                                         nsel, position, ctypes.byref(call),
                                         ctypes.byref(self._c))
            if reached < 0:
                raise ValueError("a packet lies outside the records buffer")
            packets += call.packets
            non_ip += call.non_ip
            position = reached
            if call.stop == GROW:
                self._grow(min(self.max_flows, 2 * self._c.capacity))
            elif call.stop == NEED_OVERFLOW_SET:
                self._overflow_set()
            else:
                return position, packets, non_ip, call.base if call.open else None, call.stop

    def take(self) -> Flows:
        """The interval's flows (first seen first); the table starts empty again."""
        c = self._c
        rows = self._arrays["rows"][:c.rows]
        flows = Flows(rows["key"].copy(), rows["count"].copy(), rows["length"].copy())
        c.rows = 0
        c.packets = 0
        self._arrays["slots"][:] = 0
        if c.ov_capacity:
            c.ov_rows = 0
            self._arrays["ov_slots"][:] = 0
        return flows

    def _grow(self, capacity: int) -> None:
        """Rows for `capacity` flows, the rows held moved over, their slots rebuilt."""
        c = self._c
        rows = np.zeros(capacity, ROW)
        if "rows" in self._arrays:
            rows[:c.rows] = self._arrays["rows"][:c.rows]
        slots = np.zeros(_slots_for(capacity), np.int32)
        self._arrays.update(rows=rows, slots=slots)
        c.rows_at, c.slots = rows.ctypes.data, slots.ctypes.data
        c.capacity, c.slot_mask = capacity, len(slots) - 1
        self._native.rehash(ctypes.byref(c))

    def _overflow_set(self) -> None:
        """The set of turned-away keys, made when the first flow is turned away."""
        capacity = self.max_flows
        rows = np.zeros(capacity, ROW)
        slots = np.zeros(_slots_for(capacity), np.int32)
        self._arrays.update(ov_rows=rows, ov_slots=slots)
        c = self._c
        c.ov_rows_at, c.ov_slots = rows.ctypes.data, slots.ctypes.data
        c.ov_rows, c.ov_capacity, c.ov_slot_mask = 0, capacity, len(slots) - 1


def new_table(max_flows: int, numpy_only: bool = False) -> NativeFlowTable | FlowTable:
    """The C table where the library has it (and `numpy_only` does not ask otherwise), else
    aggregate.FlowTable (the target counts with numpy then)."""
    native = None if numpy_only else native_flows()
    return FlowTable(max_flows) if native is None else NativeFlowTable(max_flows, native)
