"""Classic BPF evaluated over a whole batch at once.

libpcap compiles the expression (`pcapy.compile`); this module runs the resulting program with
numpy so the cost per packet stays in C: calling `BPFProgram.filter()` once per packet costs more
than the capture itself (see DESIGN.md, "What the packet path costs").

How: the packets that sit at the same instruction form one *group*, an index array plus their
registers as uint32 arrays (A, X, then the scratch words the program uses). Each instruction is
one numpy operation on its group; a conditional jump splits the group in two, and packets reaching
the same instruction by different paths are merged again. libpcap only emits forward jumps except
for `protochain`, whose loop jumps back; the scheduler therefore always runs the lowest instruction
that has packets waiting: a single forward pass for ordinary programs, still correct for loops.

Semantics follow libpcap's `bpf_filter()` (pcapint_filter_with_aux_data) exactly: a load that does
not fit in the captured bytes, or a division by zero, makes the program return 0 (reject) for that
packet; `len` is the wire length; shifts by 32 or more give 0; a `ret` value is a snap length and
only "nonzero" matters here. Backward jumps are limited to 64 per packet as in libpcap.
"""

from __future__ import annotations

import threading

import numpy as np
import pcapy

from pushcap.capture.batch import RECORD_HEADER_BYTES, Batch

_PARSE_PREFIX = "can't parse filter expression: "
_MEMWORDS = 16
_SKF_LL_OFF = 0xFFE00000  # Linux-only negative offsets (SKF_LL_OFF, SKF_NET_OFF, SKF_AD_OFF)
_MAX_BACKWARD_JUMPS = 64
# File LINKTYPE_* values whose libpcap DLT_* differs (libpcap's linktype_to_dlt(), Linux values):
# pcap files say 101 for raw IP, but pcap_compile() only knows DLT_RAW = 12.
_LINKTYPE_TO_DLT = {100: 11, 101: 12, 102: 15, 103: 16}
_U32 = np.uint32

# Opcode classes and fields (pcap/bpf.h).
_LD, _LDX, _ST, _STX, _ALU, _JMP, _RET, _MISC = range(8)
_W, _H, _B = 0x00, 0x08, 0x10
_IMM, _ABS, _IND, _MEM, _LEN, _MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
_X_SRC = 0x08
_RET_A = 0x10
_TXA = 0x80
_SIZE = {_W: 4, _H: 2, _B: 1}
_ADD, _SUB, _MUL, _DIV, _OR, _AND, _LSH, _RSH, _NEG, _MOD, _XOR = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0)
_JA, _JEQ, _JGT, _JGE, _JSET = 0x00, 0x10, 0x20, 0x30, 0x40

_VALID_LD = {_LD | _W | _ABS, _LD | _H | _ABS, _LD | _B | _ABS, _LD | _W | _IND, _LD | _H | _IND,
             _LD | _B | _IND, _LD | _W | _LEN, _LD | _IMM, _LD | _MEM, _LDX | _W | _LEN,
             _LDX | _B | _MSH, _LDX | _IMM, _LDX | _MEM}
_ALU_OPS = {_ADD, _SUB, _MUL, _DIV, _OR, _AND, _LSH, _RSH, _MOD, _XOR}
_JMP_OPS = {_JEQ, _JGT, _JGE, _JSET}

# A group's registers: A, X, the scratch words the program uses, the backward-jump count.
_Regs = list[np.ndarray]

_compile_lock = threading.Lock()
_shared_lock = threading.Lock()
_shared: dict[tuple[str, int, int], BpfFilter] = {}


class BpfError(ValueError):
    """A filter that libpcap rejects, or a program this evaluator cannot run faithfully."""


def _check_program(insns: list[tuple[int, int, int, int]]) -> None:
    """Reject what libpcap's validator rejects, plus Linux-only ancillary loads.

    Ancillary loads (k at or above SKF_LL_OFF) only mean something to the Linux kernel, where
    they read socket metadata such as VLAN tags; libpcap only emits them for a live Linux handle,
    and evaluating them here would silently give a different answer than the kernel.
    """
    n = len(insns)
    if n == 0 or (insns[-1][0] & 0x07) != _RET:
        raise BpfError("BPF program does not end with a return")
    for pc, (code, jt, jf, k) in enumerate(insns):
        cls, op = code & 0x07, code & 0xF0
        if cls in (_LD, _LDX):
            ok = code in _VALID_LD and (code & 0xE0 != _MEM or k < _MEMWORDS)
            if code & 0xE0 in (_ABS, _IND) and cls == _LD and k >= _SKF_LL_OFF:
                raise BpfError(f"instruction {pc}: Linux ancillary load (k={k:#x}) unsupported")
        elif cls in (_ST, _STX):
            ok = code == cls and k < _MEMWORDS
        elif cls == _ALU:
            ok = (code == _ALU | _NEG) or (op in _ALU_OPS and code & ~0xF8 == _ALU)
            if ok and not code & _X_SRC:
                ok = not (op in (_DIV, _MOD) and k == 0) and not (op in (_LSH, _RSH) and k >= 32)
        elif cls == _JMP:
            if code == _JMP | _JA:
                ok = (pc + 1 + k) & 0xFFFFFFFF < n and k != 0xFFFFFFFF
            else:
                ok = op in _JMP_OPS and code & ~0xF8 == _JMP and pc + 1 + max(jt, jf) < n
        elif cls == _RET:
            ok = code in (_RET, _RET | _RET_A)
        else:
            ok = code in (_MISC, _MISC | _TXA)
        if not ok:
            raise BpfError(f"instruction {pc}: invalid BPF instruction {(code, jt, jf, k)}")


class BpfFilter:
    """One compiled filter expression; `match` answers for a whole batch at once.

    Immutable after construction, so one instance is safely shared by every target and thread
    that uses the same expression (see `compile_shared`).
    """

    def __init__(self, expression: str, linktype: int, snaplen: int = 262144) -> None:
        """`linktype` is the pcap file header's LINKTYPE_*; libpcap's DLT_* is accepted too."""
        self.expression = expression
        self.linktype = linktype
        self.snaplen = snaplen
        try:
            with _compile_lock:  # older libpcaps keep parser state in globals
                prog = pcapy.compile(_LINKTYPE_TO_DLT.get(linktype, linktype), snaplen,
                                     expression, 1, 0)
        except pcapy.PcapError as e:
            msg = str(e)
            raise BpfError(msg.removeprefix(_PARSE_PREFIX)) from None
        self.program: tuple[tuple[int, int, int, int], ...] = tuple(
            tuple(int(v) for v in insn) for insn in prog.get_bpf())
        _check_program(list(self.program))
        slots = sorted({k for code, _, _, k in self.program
                        if code in (_LD | _MEM, _LDX | _MEM, _ST, _STX)})
        self._mem_row = {slot: 2 + i for i, slot in enumerate(slots)}
        self._has_loops = any(code == _JMP | _JA and k >= 0x80000000
                              for code, _, _, k in self.program)
        self._rows = 2 + len(slots) + self._has_loops

    def __repr__(self) -> str:
        return f"BpfFilter({self.expression!r}, linktype={self.linktype})"

    def match(self, batch: Batch) -> np.ndarray:
        """Bool mask over the batch's packets: True where the filter accepts."""
        return self.match_arrays(batch.records, batch.offsets + RECORD_HEADER_BYTES,
                                 batch.caplen, batch.wirelen)

    def match_arrays(self, buf: bytes | memoryview, data_offsets: np.ndarray,
                     caplen: np.ndarray, wirelen: np.ndarray) -> np.ndarray:
        """Bool mask for packets given as arrays rather than a Batch (e.g. a raw pcap file).

        Packet i is buf[data_offsets[i]:data_offsets[i] + caplen[i]] and was wirelen[i] bytes
        on the wire.
        """
        n = len(data_offsets)
        result = np.zeros(n, dtype=bool)
        if n == 0:
            return result
        run = _Run(np.frombuffer(buf, dtype=np.uint8), np.asarray(data_offsets, np.int64),
                   np.asarray(caplen, np.int64), np.asarray(wirelen, np.int64), result)
        prog = self.program
        pending: list[list[tuple[np.ndarray, _Regs]] | None] = [None] * len(prog)
        pending[0] = [(np.arange(n, dtype=np.int64), [np.zeros(n, dtype=_U32)] * self._rows)]
        pc = 0
        while pc < len(prog):
            groups = pending[pc]
            if not groups:
                pc += 1
                continue
            pending[pc] = None
            if len(groups) == 1:
                idx, regs = groups[0]
            else:
                idx = np.concatenate([g[0] for g in groups])
                regs = [np.concatenate([g[1][r] for g in groups]) for r in range(self._rows)]
            next_pc = pc + 1
            for target, t_idx, t_regs in self._step(run, pc, idx, regs):
                if len(t_idx):
                    waiting = pending[target]
                    if waiting is None:
                        waiting = pending[target] = []
                    waiting.append((t_idx, t_regs))
                    next_pc = min(next_pc, target)
            pc = next_pc
        return result

    def _step(self, run: _Run, pc: int, idx: np.ndarray, regs: _Regs
              ) -> list[tuple[int, np.ndarray, _Regs]]:
        """Execute instruction pc for the packets idx; return where each part goes next.

        The `regs` list belongs to this group alone, so its slots are reassigned in place; the
        arrays in it may be shared (after `tax`, or between groups) and are never modified.
        Packets rejected by a failed load or a division by zero are dropped from the group.
        """
        code, jt, jf, k = self.program[pc]
        cls, op = code & 0x07, code & 0xF0
        a, x = regs[0], regs[1]
        if cls == _RET:
            run.result[idx] = (a != 0) if code & _RET_A else (k != 0)
            return []
        if cls == _JMP:
            return self._jump(pc, code, jt, jf, k, idx, regs)
        if cls in (_LD, _LDX):
            mode = code & 0xE0
            if mode == _IMM:
                value = np.full(len(idx), k, dtype=_U32)
            elif mode == _LEN:
                value = run.wirelen[idx].astype(_U32)
            elif mode == _MEM:
                value = regs[self._mem_row[k]]
            else:
                offset = k if mode != _IND else x.astype(np.int64) + k
                idx, regs, value = run.load(idx, regs, offset, 1 if mode == _MSH else
                                            _SIZE[code & 0x18])
                if mode == _MSH:
                    value = (value & 0xF) << 2
            regs[0 if cls == _LD else 1] = value
        elif cls in (_ST, _STX):
            regs[self._mem_row[k]] = a if cls == _ST else x
        elif cls == _MISC:
            regs[0 if code & _TXA else 1] = x if code & _TXA else a
        elif op == _NEG:
            regs[0] = _U32(0) - a
        else:
            operand = x if code & _X_SRC else _U32(k)
            if op in (_DIV, _MOD) and code & _X_SRC:
                ok = x != 0
                if not ok.all():
                    idx, regs = _keep(idx, regs, ok)
                    a, operand = regs[0], regs[1]
            regs[0] = _alu(op, a, operand)
        return [(pc + 1, idx, regs)]

    def _jump(self, pc: int, code: int, jt: int, jf: int, k: int, idx: np.ndarray,
              regs: _Regs) -> list[tuple[int, np.ndarray, _Regs]]:
        """Send the group on, splitting it where the condition differs between packets."""
        if code == _JMP | _JA:
            target = (pc + 1 + k) & 0xFFFFFFFF
            if target <= pc:  # protochain's loop: count and cap as libpcap does
                ok = regs[-1] < _MAX_BACKWARD_JUMPS
                idx, regs = _keep(idx, regs, ok)
                regs[-1] = regs[-1] + _U32(1)
            return [(target, idx, regs)]
        a = regs[0]
        b = regs[1] if code & _X_SRC else _U32(k)
        op = code & 0xF0
        if op == _JEQ:
            cond = a == b
        elif op == _JGT:
            cond = a > b
        elif op == _JGE:
            cond = a >= b
        else:
            cond = (a & b) != 0
        t_pc, f_pc = pc + 1 + jt, pc + 1 + jf
        if t_pc == f_pc or cond.all():
            return [(t_pc, idx, regs)]
        if not cond.any():
            return [(f_pc, idx, regs)]
        return [(t_pc, *_keep(idx, regs, cond)), (f_pc, *_keep(idx, regs, ~cond))]


def _keep(idx: np.ndarray, regs: _Regs, mask: np.ndarray) -> tuple[np.ndarray, _Regs]:
    """The part of a group selected by `mask`. Registers are kept as separate 1-D arrays because
    boolean selection along the second axis of a 2-D array is several times slower."""
    return idx[mask], [r[mask] for r in regs]


_UFUNCS = {_ADD: np.add, _SUB: np.subtract, _MUL: np.multiply, _DIV: np.floor_divide,
           _MOD: np.remainder, _AND: np.bitwise_and, _OR: np.bitwise_or, _XOR: np.bitwise_xor}


def _alu(op: int, a: np.ndarray, b: np.ndarray | np.uint32) -> np.ndarray:
    """32-bit unsigned ALU as libpcap does it; uint32 numpy arithmetic wraps the same way."""
    if op in _UFUNCS:
        return _UFUNCS[op](a, b)
    # Shifts: libpcap gives 0 for counts >= 32 (C leaves them undefined); mask so numpy agrees.
    shifted = (a << (b & _U32(31))) if op == _LSH else (a >> (b & _U32(31)))
    return np.where(b < 32, shifted, _U32(0)).astype(_U32)


class _Run:
    """Per-call packet data: the byte buffer and per-packet offsets, lengths and results."""

    __slots__ = ("data", "offsets", "caplen", "wirelen", "result")

    def __init__(self, data: np.ndarray, offsets: np.ndarray, caplen: np.ndarray,
                 wirelen: np.ndarray, result: np.ndarray) -> None:
        self.data, self.offsets, self.caplen = data, offsets, caplen
        self.wirelen, self.result = wirelen, result

    def load(self, idx: np.ndarray, regs: _Regs, offset: int | np.ndarray, size: int
             ) -> tuple[np.ndarray, _Regs, np.ndarray]:
        """Big-endian load of `size` bytes at `offset` into each packet.

        Packets whose captured bytes do not cover the load are dropped (libpcap returns 0).
        """
        ok = self.caplen[idx] >= offset + size
        if not ok.all():
            idx, regs = _keep(idx, regs, ok)
            if not isinstance(offset, int):
                offset = offset[ok]
        start = self.offsets[idx] + offset
        data = self.data
        value = data.take(start).astype(_U32)
        for i in range(1, size):
            value = (value << _U32(8)) | data.take(start + i)
        return idx, regs, value


def compile_shared(expression: str | None, linktype: int, snaplen: int) -> BpfFilter | None:
    """The one BpfFilter for (expression, linktype, snaplen); None (match all) for no expression.

    Targets with the same filter share one compiled program. The lock makes concurrent callers
    agree on a single object; compiling is cheap, so holding it while compiling is fine.
    """
    if expression is None:
        return None
    key = (expression, linktype, snaplen)
    with _shared_lock:
        bpf = _shared.get(key)
        if bpf is None:
            bpf = _shared[key] = BpfFilter(expression, linktype, snaplen)
        return bpf
