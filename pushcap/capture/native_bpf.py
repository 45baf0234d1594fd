"""Classic BPF over a whole batch in C (`csrc/bpfrun.c`), called through ctypes, without numpy.

`pushcap replay` must not import numpy, so the numpy interpreter (`bpf_numpy.py`) cannot serve
it, and libpcap's bpf_filter() called per packet from Python would cost far more than the replay
itself. The C code runs libpcap's semantics over a whole batch, chunks of packets at a time, with
the packets ahead prefetched (a batch's bytes are not in the cache): ~12 ns a packet for `tcp`
over a 1M-packet trace, against ~28 ns for bpf_filter() in a C loop and ~27 ns for numpy.
Programs with a backward jump (`protochain`'s loop, where libpcap sign-extends the `ja` offset)
are run by libpcap's own bpf_filter() in the C loop instead. tests/test_native_bpf.py holds both
paths to libpcap's verdicts and to tcpdump's selections.
"""

from __future__ import annotations

import ctypes
import functools

from pushcap.capture.native import bind, buffer_address

_I64 = ctypes.c_int64
_JA = 0x05  # BPF_JMP | BPF_JA
_INT64_FORMATS = ("q", "l", "<q", "<l", "=q", "=l", "@q", "@l")  # little-endian hosts only
_OUTSIDE, _INVALID, _NO_MEMORY = -1, -2, -3  # bpf_select's errors


class BpfInsn(ctypes.Structure):
    """libpcap's struct bpf_insn (pcap/bpf.h)."""

    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class NativeProgram:
    """A program ready for `NativeBpf.select`: the instructions as C structs, built once per
    filter rather than once per batch."""

    __slots__ = ("insns", "length", "use_libpcap")

    def __init__(self, insns: ctypes.Array, length: int, use_libpcap: bool) -> None:
        self.insns = insns
        self.length = length
        self.use_libpcap = use_libpcap

    def __repr__(self) -> str:
        return f"NativeProgram({self.length} insns, use_libpcap={self.use_libpcap})"


def _int64_column(name: str, column, writable: bool = False) -> tuple[int, int]:
    """(address, items) of an int64 column; buffer_address only checks the item width, so the
    format is checked too (a float64 or big-endian array would be silently misread)."""
    view = memoryview(column)
    if view.format not in _INT64_FORMATS or view.ndim != 1:
        raise ValueError(f"{name} must be a row of native int64 items, not {view.ndim}-D "
                         f"{view.format!r}")
    if writable and view.readonly:
        raise ValueError(f"{name} is read-only")
    return buffer_address(column, 8)


class NativeBpf:
    """The loaded function."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self._function = library.bpf_select
        self._function.restype = _I64
        self._function.argtypes = [ctypes.c_void_p, _I64, ctypes.c_int, ctypes.c_void_p, _I64,
                                   ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, _I64,
                                   ctypes.c_void_p]

    def prepare(self, program: tuple[tuple[int, int, int, int], ...]) -> NativeProgram:
        """`program` is libpcap's instruction list as (code, jt, jf, k), e.g. BpfFilter.program.

        Raises ValueError for a program that libpcap's interpreter would not run (the C side
        checks it, as it does at every `select`): checked here so a bad filter fails at start.
        """
        for code, jt, jf, k in program:
            if not (0 <= code <= 0xFFFF and 0 <= jt <= 0xFF and 0 <= jf <= 0xFF
                    and 0 <= k <= 0xFFFFFFFF):
                raise ValueError(f"BPF instruction {(code, jt, jf, k)} has a field out of range")
        insns = (BpfInsn * len(program))(*program)
        use_libpcap = any(code == _JA and k >= 0x80000000 for code, _, _, k in program)
        prepared = NativeProgram(insns, len(program), use_libpcap)
        if self._function(insns, len(program), int(use_libpcap), None, 0, None, None, None, 0,
                          None) == _INVALID:
            raise ValueError("not a BPF program libpcap's interpreter runs")
        return prepared

    def select(self, program: NativeProgram, records, offsets, caplen, wirelen, out) -> int:
        """How many packets `program` accepts; their indices are out[:count], ascending.

        Packet i's bytes are records[offsets[i] + 16:][:caplen[i]] (after its pcap record
        header), wirelen[i] long on the wire. `records` is any contiguous byte buffer, read-only
        ones included; offsets, caplen, wirelen are int64 buffers of one length n; `out` a
        writable int64 buffer of at least n items. Raises ValueError for mismatched lengths or a
        packet outside `records` (checked in C before it is read).
        """
        records_address, records_len = buffer_address(records)
        offsets_address, n = _int64_column("offsets", offsets)
        caplen_address, n_caplen = _int64_column("caplen", caplen)
        wirelen_address, n_wirelen = _int64_column("wirelen", wirelen)
        out_address, room = _int64_column("out", out, writable=True)
        if n_caplen != n or n_wirelen != n:
            raise ValueError(f"{n} offsets, {n_caplen} caplen, {n_wirelen} wirelen")
        if room < n:
            raise ValueError(f"room for {room} indices, {n} packets")
        count = self._function(program.insns, program.length, int(program.use_libpcap),
                               records_address, records_len, offsets_address, caplen_address,
                               wirelen_address, n, out_address)
        if count == _OUTSIDE:
            raise ValueError("a packet lies outside the records buffer")
        if count == _INVALID:
            raise ValueError("not a BPF program libpcap's interpreter runs")
        if count == _NO_MEMORY:
            raise MemoryError("no memory for the BPF interpreter's lanes")
        return count


@functools.cache
def native_bpf() -> NativeBpf | None:
    """The C interpreter, or None where the library was not built (see `native`) or predates it
    (a `_native` library left from an older build: `make setup` rebuilds it)."""
    return bind(NativeBpf)
