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
of jumps testing the same A is resolved with masks and split once (`bpf_numpy_jumps`); packets
bound for `ret #0` are simply dropped; and a load within the batch's shortest packet skips the
per-packet bounds check (`bpf_numpy_groups`, with the selecting and merging of groups). Here:
the scheduler and the other instructions. The opcodes, the validation and the analyses of the
program alone are in `bpf_program`.

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
from pushcap.capture.bpf_numpy_groups import Group, Part, Regs, Run, select_group
from pushcap.capture.bpf_numpy_jumps import Jumps
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
    liveness,
)

_MAX_BACKWARD_JUMPS = 1 << 16  # above any compiled filter's need: see the module docstring
_U32 = np.uint32


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
        accepts = tuple(code == RET and k != 0 for code, _, _, k in self.program)
        jumps = Jumps(self.program, self._live, self._rejects, accepts)
        self._branches, self._branch = jumps.runs, jumps.route  # conditional jumps: see Jumps

    def match(self, data: np.ndarray, offsets: np.ndarray, caplen: np.ndarray,
              wirelen: np.ndarray) -> np.ndarray:
        """Bool mask over packets data[offsets[i]:offsets[i] + caplen[i]] (wirelen[i] on the
        wire): True where the program accepts."""
        n = len(offsets)
        result = np.zeros(n, dtype=bool)
        if n == 0:
            return result
        run = Run(data, np.asarray(offsets, np.int64), np.asarray(caplen, np.int64),
                  np.asarray(wirelen, np.int64), result)
        prog, live = self.program, self._live
        zeros = np.zeros(n, dtype=_U32)  # libpcap starts with A = X = 0; scratch reads as 0 too
        pending: list[list[Group] | None] = [None] * len(prog)
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

    def _step(self, run: Run, pc: int, idx: np.ndarray | None, regs: Regs) -> list[Part]:
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
                    idx, regs = select_group(idx, regs, ok.nonzero()[0], self._live[pc])
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
                    idx, regs = select_group(idx, regs, ok.nonzero()[0], self._live[pc])
                    a, operand = regs[0], regs[1]
            regs[0] = _alu(op, a, operand)
        return [] if self._rejects[pc + 1] else [(pc + 1, idx, regs)]


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
