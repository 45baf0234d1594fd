"""Classic BPF evaluated over a whole batch at once with numpy (`NumpyProgram`).

`bpf.BpfFilter` compiles the expression and runs it in C where the library is built; this is the
evaluation that needs no compiler, and the one that answers with a mask for triggers and flows.
Calling pcapy's `BPFProgram.filter()` once per packet instead costs more than the capture itself
(see DESIGN.md, "What the packet path costs").

How: the packets that sit at the same instruction form one *group*, an index array plus their
registers as uint32 arrays (A, X, then the scratch words the program uses). Each instruction is
a few numpy operations on its group; a conditional jump splits the group, and packets reaching
the same instruction by different paths are merged again. libpcap only emits forward jumps except
for `protochain`, whose loop jumps back; the scheduler therefore always runs the lowest instruction
that has packets waiting: a single forward pass for ordinary programs, still correct for loops.

What keeps that cheap: a split or merge only copies the registers that are live where the
packets go (`liveness`; after `ldh [12]; jeq` A is dead, so only the indices are selected); a run
of jumps testing the same A is resolved with masks and split once (`_branch`); packets bound for
`ret #0` are simply dropped; and a load within the batch's shortest packet skips the per-packet
bounds check. The opcodes, the validation and the analyses of the program alone are in
`bpf_program`.

Semantics follow libpcap's `bpf_filter()` (pcapint_filter_with_aux_data) exactly: a load that does
not fit in the captured bytes, or a division by zero, makes the program return 0 (reject) for that
packet; `len` is the wire length; shifts by 32 or more give 0; a `ret` value is a snap length and
only "nonzero" matters here. libpcap (1.10's bpf_filter()) puts no limit on backward jumps;
pcap_compile's one loop, protochain's, moves at least 8 bytes forward through the packet at each
jump, so it ends within caplen / 8 <= 32768 jumps. The guard here, 65536 jumps per packet, can
therefore never change a compiled filter's answer (65 or more IPv6 extension headers, which a
hostile packet may carry, are followed as libpcap follows them); it only ends a hand-made
endless loop.
"""

from __future__ import annotations

import numpy as np

from pushcap.capture import bpf_program
from pushcap.capture.bpf_program import (
    DIV,
    IMM,
    IND,
    JA,
    JMP,
    LD,
    LDX,
    LEN,
    LSH,
    MEM,
    MISC,
    MOD,
    MSH,
    NEG,
    RET,
    RET_A,
    SIZE,
    ST,
    STX,
    TXA,
    X_SRC,
    jump_run,
    liveness,
)

_MAX_BACKWARD_JUMPS = 1 << 16  # above any compiled filter's need: see the module docstring
_U32 = np.uint32

# A group is the packets at one instruction: their positions in the batch (None: all of them)
# and their registers A, X, the scratch words the program uses, the backward-jump count. A
# register that is dead there (see `liveness`) is None.
_Regs = list[np.ndarray | None]
_Group = tuple[np.ndarray | None, _Regs]
_Part = tuple[int, np.ndarray | None, _Regs]  # a group and the instruction it goes to


class NumpyProgram:
    """One checked program (`bpf_program.check_program`), ready to run over batches.

    Immutable after construction, so one instance is safely shared by every thread.
    """

    def __init__(self, program: tuple[tuple[int, int, int, int], ...]) -> None:
        self.program = program
        slots = sorted({k for code, _, _, k in self.program
                        if code in (LD | MEM, LDX | MEM, ST, STX)})
        self._mem_row = {slot: 2 + i for i, slot in enumerate(slots)}
        has_loops = any(code == JMP | JA and k >= 0x80000000 for code, _, _, k in self.program)
        self._rows = 2 + len(slots) + has_loops  # the loop count, if any, is the last row
        self._live = liveness(self.program, self._mem_row, self._rows - 1)
        self._is_ret = tuple(code & 0x07 == RET for code, _, _, _ in self.program)
        # Packets bound for `ret #0` need no more work: their result is already False.
        self._rejects = tuple(code == RET and k == 0 for code, _, _, k in self.program)
        self._accepts = tuple(code == RET and k != 0 for code, _, _, k in self.program)
        self._tests = {pc: (_CONDITIONS[code & 0xF0], None if code & X_SRC else _U32(k),
                            pc + 1 + jt, pc + 1 + jf)
                       for pc, (code, jt, jf, k) in enumerate(self.program)
                       if code & 0x07 == JMP and code != JMP | JA}
        self._branches = {pc: jump_run(self._tests, pc) for pc in self._tests}

    def match(self, data: np.ndarray, offsets: np.ndarray, caplen: np.ndarray,
              wirelen: np.ndarray) -> np.ndarray:
        """Bool mask over packets data[offsets[i]:offsets[i] + caplen[i]] (wirelen[i] on the
        wire): True where the program accepts."""
        n = len(offsets)
        result = np.zeros(n, dtype=bool)
        if n == 0:
            return result
        run = _Run(data, np.asarray(offsets, np.int64), np.asarray(caplen, np.int64),
                   np.asarray(wirelen, np.int64), result)
        prog, live = self.program, self._live
        zeros = np.zeros(n, dtype=_U32)  # libpcap starts with A = X = 0; scratch reads as 0 too
        pending: list[list[_Group] | None] = [None] * len(prog)
        pending[0] = [(None, [zeros if r in live[0] else None for r in range(self._rows)])]
        pc = 0
        while pc < len(prog):
            groups = pending[pc]
            if groups is None:
                pc += 1
                continue
            pending[pc] = None
            if self._is_ret[pc]:  # no need to merge: each group writes its own results
                code, _, _, k = prog[pc]
                for idx, regs in groups:
                    result[slice(None) if idx is None else idx] = (
                        regs[0] != 0 if code & RET_A else k != 0)
                pc += 1
                continue
            idx, regs = groups[0] if len(groups) == 1 else run.merge(groups, live[pc])
            next_pc = pc + 1
            for target, t_idx, t_regs in self._step(run, pc, idx, regs):
                waiting = pending[target]
                if waiting is None:
                    pending[target] = [(t_idx, t_regs)]
                else:
                    waiting.append((t_idx, t_regs))
                next_pc = min(next_pc, target)  # below pc only for protochain's loop
            pc = next_pc
        return result

    def _step(self, run: _Run, pc: int, idx: np.ndarray | None, regs: _Regs) -> list[_Part]:
        """Execute instruction pc (not a `ret`) for the packets idx; return where they go next.

        The `regs` list belongs to this group alone, so its slots are reassigned in place; the
        arrays in it may be shared (after `tax`, or between groups) and are never modified.
        Packets rejected by a failed load or a division by zero are dropped from the group, and
        so are packets whose next instruction is `ret #0`. Empty groups are never returned.
        """
        if pc in self._branches:
            return self._branch(run, pc, idx, regs)
        code, _, _, k = self.program[pc]
        cls, op = code & 0x07, code & 0xF0
        a, x = regs[0], regs[1]
        if cls == JMP:  # ja
            target = (pc + 1 + k) & 0xFFFFFFFF
            if target <= pc:  # protochain's loop: count and cap as libpcap does
                ok = regs[-1] < _MAX_BACKWARD_JUMPS
                if not ok.all():
                    if not ok.any():
                        return []
                    idx, regs = _select(idx, regs, ok.nonzero()[0], self._live[pc])
                regs[-1] = regs[-1] + _U32(1)
            return [] if self._rejects[target] else [(target, idx, regs)]
        if cls in (LD, LDX):
            mode = code & 0xE0
            if mode == IMM:
                value = np.full(run.count(idx), k, dtype=_U32)
            elif mode == LEN:
                value = run.take(run.wirelen, idx).astype(_U32)
            elif mode == MEM:
                value = regs[self._mem_row[k]]
            else:
                size = 1 if mode == MSH else SIZE[code & 0x18]
                loaded = run.load(idx, regs, k, x if mode == IND else None, size,
                                  self._live[pc])
                if loaded is None:
                    return []
                idx, regs, value = loaded
                if mode == MSH:
                    value = (value & _U32(0xF)) << _U32(2)
            regs[0 if cls == LD else 1] = value
        elif cls in (ST, STX):
            regs[self._mem_row[k]] = a if cls == ST else x
        elif cls == MISC:
            regs[0 if code & TXA else 1] = x if code & TXA else a
        elif op == NEG:
            regs[0] = _U32(0) - a
        else:
            operand = x if code & X_SRC else _U32(k)
            if op in (DIV, MOD) and code & X_SRC:
                ok = x != 0
                if not ok.all():
                    if not ok.any():
                        return []
                    idx, regs = _select(idx, regs, ok.nonzero()[0], self._live[pc])
                    a, operand = regs[0], regs[1]
            regs[0] = _alu(op, a, operand)
        return [] if self._rejects[pc + 1] else [(pc + 1, idx, regs)]

    def _branch(self, run: _Run, pc: int, idx: np.ndarray | None, regs: _Regs) -> list[_Part]:
        """Route the group through the conditional jumps starting at pc; split it once per exit.

        Each part carries only the registers live where it goes, so a typical `ld; jeq` split
        selects nothing but packet indices. libpcap also emits runs of tests on the same A (the
        three VLAN ethertypes, `tcp or udp or sctp`); splitting at each of them would copy A
        for the packets going on to the next test, so the exit from the whole run is worked out
        first with boolean masks over the group (None: every packet), then the group is split.
        """
        nodes, exits = self._branches[pc]
        a, x = regs[0], regs[1]
        if len(nodes) == 1:  # the common case, kept cheap
            test, k, t_pc, f_pc = self._tests[pc]
            cond = test(a, x if k is None else k)
            n_true = np.count_nonzero(cond)
            if n_true in (0, len(cond)) or t_pc == f_pc:
                target = t_pc if n_true else f_pc
                return [] if self._rejects[target] else [(target, idx, regs)]
            parts = [(t_pc, cond)] + ([] if self._rejects[f_pc] else [(f_pc, ~cond)])
        else:
            reach: dict[int, np.ndarray | None] = {pc: None}
            for node in nodes:
                if node not in reach:
                    continue
                mask = reach.pop(node)
                test, k, t_pc, f_pc = self._tests[node]
                if t_pc == f_pc:
                    sides = [(t_pc, mask)]
                else:
                    cond = test(a, x if k is None else k)
                    sides = [(t_pc, cond if mask is None else cond & mask)]
                    if not self._rejects[f_pc]:
                        sides.append((f_pc, ~cond if mask is None else mask & ~cond))
                for target, part in sides:
                    if target in reach:
                        other = reach[target]
                        part = None if other is None or part is None else other | part
                    reach[target] = part
            parts = []
            for target in exits:
                mask = reach.get(target, False)
                if mask is None:  # every packet: the other exits are empty
                    return [] if self._rejects[target] else [(target, idx, regs)]
                if mask is not False and mask.any():
                    parts.append((target, mask))
        out = []
        for target, mask in parts:
            if self._rejects[target]:
                continue
            if idx is None and self._accepts[target]:
                run.result |= mask  # cheaper than selecting the packets
            else:
                out.append((target, *_select(idx, regs, mask.nonzero()[0], self._live[target])))
        return out


def _select(idx: np.ndarray | None, regs: _Regs, nz: np.ndarray, rows: tuple[int, ...]
            ) -> _Group:
    """The packets at positions `nz` of a group, with only the registers `rows` (the rest die).

    Registers are kept as separate 1-D arrays because selecting along the second axis of a 2-D
    array is several times slower; `nonzero` once then `take` per array also beats a boolean
    index per array.
    """
    new: _Regs = [None] * len(regs)
    for r in rows:
        new[r] = regs[r].take(nz)
    return (nz if idx is None else idx.take(nz)), new


def _test_bits(a: np.ndarray, b: np.ndarray | np.uint32) -> np.ndarray:
    return (a & b) != 0


_CONDITIONS = {bpf_program.JEQ: np.equal, bpf_program.JGT: np.greater,
               bpf_program.JGE: np.greater_equal, bpf_program.JSET: _test_bits}
_UFUNCS = {bpf_program.ADD: np.add, bpf_program.SUB: np.subtract, bpf_program.MUL: np.multiply,
           bpf_program.DIV: np.floor_divide, bpf_program.MOD: np.remainder,
           bpf_program.AND: np.bitwise_and, bpf_program.OR: np.bitwise_or,
           bpf_program.XOR: np.bitwise_xor}


def _alu(op: int, a: np.ndarray, b: np.ndarray | np.uint32) -> np.ndarray:
    """32-bit unsigned ALU as libpcap does it; uint32 numpy arithmetic wraps the same way."""
    if op in _UFUNCS:
        return _UFUNCS[op](a, b)
    # Shifts: libpcap gives 0 for counts >= 32 (C leaves them undefined); mask so numpy agrees.
    shifted = (a << (b & _U32(31))) if op == LSH else (a >> (b & _U32(31)))
    return np.where(b < 32, shifted, _U32(0)).astype(_U32)


class _Run:
    """Per-call packet data: the byte buffer and per-packet offsets, lengths and results."""

    __slots__ = ("data", "offsets", "caplen", "wirelen", "result", "n", "min_caplen")

    def __init__(self, data: np.ndarray, offsets: np.ndarray, caplen: np.ndarray,
                 wirelen: np.ndarray, result: np.ndarray) -> None:
        self.data, self.offsets, self.caplen = data, offsets, caplen
        self.wirelen, self.result, self.n = wirelen, result, len(offsets)
        # A load that ends within the shortest packet needs no per-packet bounds check.
        self.min_caplen = int(caplen.min())

    def count(self, idx: np.ndarray | None) -> int:
        return self.n if idx is None else len(idx)

    @staticmethod
    def take(values: np.ndarray, idx: np.ndarray | None) -> np.ndarray:
        return values if idx is None else values.take(idx)

    def merge(self, groups: list[_Group], rows: tuple[int, ...]) -> _Group:
        """One group from several that reached the same instruction, with the live registers."""
        idx = np.concatenate([np.arange(self.n) if g[0] is None else g[0] for g in groups])
        regs: _Regs = [None] * len(groups[0][1])
        for r in rows:
            regs[r] = np.concatenate([g[1][r] for g in groups])
        return idx, regs

    def load(self, idx: np.ndarray | None, regs: _Regs, k: int, x: np.ndarray | None, size: int,
             rows: tuple[int, ...]) -> tuple[np.ndarray | None, _Regs, np.ndarray] | None:
        """Big-endian load of `size` bytes at k (plus X if indirect) into each packet.

        Packets whose captured bytes do not cover the load are dropped (libpcap returns 0),
        keeping the registers `rows`; None if no packet is left.
        """
        if (k if x is None else int(x.max()) + k) + size > self.min_caplen:
            need = k + size if x is None else x.astype(np.int64) + (k + size)  # no uint32 wrap
            ok = self.take(self.caplen, idx) >= need
            if not ok.all():
                nz = ok.nonzero()[0]
                if not len(nz):
                    return None
                idx, regs = _select(idx, regs, nz, rows)
                x = None if x is None else x.take(nz)
        start = self.take(self.offsets, idx)
        if x is not None:
            start = start + x
        # One gather per byte: big-endian strided views (dtype '>u2'/'>u4', strides 1) read all
        # bytes in one gather but go through numpy's slow unaligned path and measured 2x slower.
        # data[k + i:] reads byte k + i of each packet without adding k + i to every offset.
        value = self.data[k:].take(start).astype(_U32)
        for i in range(k + 1, k + size):
            value <<= _U32(8)
            value |= self.data[i:].take(start)
        return idx, regs, value
