"""What a classic BPF program is, independent of any packets: opcodes, validation, analysis.

A program here is libpcap's instruction list, `(code, jt, jf, k)` tuples as `pcapy` returns them.
This module names the opcode fields (pcap/bpf.h), rejects programs that libpcap's validator would
reject or that `bpf.py` cannot evaluate faithfully (`check_program`), and works out from the
program alone what the batch interpreter in `bpf.py` needs to stay cheap: which registers are
live at each instruction (`liveness`) and which runs of conditional jumps can be resolved
together (`jump_run`). It is kept apart from the interpreter so that the program's rules can be
read, and tested, without the numpy machinery that runs them over a batch.
"""

from __future__ import annotations

# One error type for a filter, whoever refuses it: libpcap, its budgets (config, where a
# FilterBPF is first compiled), or check_program below. Re-exported from here and from bpf.py.
from pushcap.config.bpf_compile import BpfError

TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
if TYPE_CHECKING:
    from typing import Any

    import numpy as np

_MEMWORDS = 16
_SKF_LL_OFF = 0xFFE00000  # Linux-only negative offsets (SKF_LL_OFF, SKF_NET_OFF, SKF_AD_OFF)

# Opcode classes and fields (pcap/bpf.h).
LD, LDX, ST, STX, ALU, JMP, RET, MISC = range(8)
W, H, B = 0x00, 0x08, 0x10
IMM, ABS, IND, MEM, LEN, MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
X_SRC = 0x08
RET_A = 0x10
TXA = 0x80
SIZE = {W: 4, H: 2, B: 1}
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0)
JA, JEQ, JGT, JGE, JSET = 0x00, 0x10, 0x20, 0x30, 0x40

_VALID_LD = {LD | W | ABS, LD | H | ABS, LD | B | ABS, LD | W | IND, LD | H | IND,
             LD | B | IND, LD | W | LEN, LD | IMM, LD | MEM, LDX | W | LEN,
             LDX | B | MSH, LDX | IMM, LDX | MEM}
_ALU_OPS = {ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, MOD, XOR}
_JMP_OPS = {JEQ, JGT, JGE, JSET}



def load_bound(insns: list[tuple[int, int, int, int]]) -> int | None:
    """How many leading bytes of a packet the program can read at most, or None when that is
    not known: a packet cut to that many bytes (its wire length kept) gets the same answer, as
    every load beyond them would be out of bounds in both. Indirect loads are bounded only when
    X comes from constants and `4*([k]&0xf)` (at most 60); X from A (`tax`), memory or the
    length leaves them unbounded. Decap (capture/decap.py) copies no more of an inner frame."""
    end = ind_end = x_max = 0
    x_known, indirect = True, False
    for code, _, _, k in insns:
        cls, mode = code & 0x07, code & 0xE0
        if cls == LD and mode == ABS:
            end = max(end, k + SIZE[code & 0x18])
        elif cls == LD and mode == IND:
            indirect, ind_end = True, max(ind_end, k + SIZE[code & 0x18])
        elif cls == LDX and mode == IMM:
            x_max = max(x_max, k)
        elif cls == LDX and mode == MSH:
            end, x_max = max(end, k + 1), max(x_max, 60)
        elif cls == LDX or (cls == MISC and not code & TXA):  # ldx M[]/len, tax
            x_known = False
    if indirect:
        if not x_known:
            return None
        end = max(end, x_max + ind_end)
    return end


def check_program(insns: list[tuple[int, int, int, int]]) -> None:
    """Reject what libpcap's validator rejects, plus Linux-only ancillary loads.

    Ancillary loads (k at or above SKF_LL_OFF) only mean something to the Linux kernel, where
    they read socket metadata such as VLAN tags; libpcap only emits them for a live Linux handle,
    and evaluating them here would silently give a different answer than the kernel.
    """
    n = len(insns)
    if n == 0 or (insns[-1][0] & 0x07) != RET:
        raise BpfError("BPF program does not end with a return")
    for pc, (code, jt, jf, k) in enumerate(insns):
        cls, op = code & 0x07, code & 0xF0
        if cls in (LD, LDX):
            ok = code in _VALID_LD and (code & 0xE0 != MEM or k < _MEMWORDS)
            if code & 0xE0 in (ABS, IND) and cls == LD and k >= _SKF_LL_OFF:
                raise BpfError(f"instruction {pc}: Linux ancillary load (k={k:#x}) unsupported")
        elif cls in (ST, STX):
            ok = code == cls and k < _MEMWORDS
        elif cls == ALU:
            ok = (code == ALU | NEG) or (op in _ALU_OPS and code & ~0xF8 == ALU)
            if ok and not code & X_SRC:
                ok = not (op in (DIV, MOD) and k == 0) and not (op in (LSH, RSH) and k >= 32)
        elif cls == JMP:
            if code == JMP | JA:
                ok = (pc + 1 + k) & 0xFFFFFFFF < n and k != 0xFFFFFFFF
            else:
                ok = op in _JMP_OPS and code & ~0xF8 == JMP and pc + 1 + max(jt, jf) < n
        elif cls == RET:
            ok = code in (RET, RET | RET_A)
        else:
            ok = code in (MISC, MISC | TXA)
        if not ok:
            raise BpfError(f"instruction {pc}: invalid BPF instruction {(code, jt, jf, k)}")


def jump_run(tests: dict[int, tuple[Any, np.uint32 | None, int, int]], start: int,
             limit: int = 8) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The conditional jumps reachable from `start` through conditional jumps only (at most
    `limit`, in program order), and the instructions where that run is left."""
    nodes, todo = set(), [start]
    while todo:
        pc = todo.pop()
        if pc in tests and pc not in nodes and len(nodes) < limit:
            nodes.add(pc)
            todo.extend(tests[pc][2:])
    exits = {t for pc in nodes for t in tests[pc][2:] if t not in nodes}
    return tuple(sorted(nodes)), tuple(sorted(exits))


def liveness(program: tuple[tuple[int, int, int, int], ...], mem_row: dict[int, int],
             loop_row: int) -> list[tuple[int, ...]]:
    """The registers live on entry to each instruction: read on some path before being written.

    Only those are carried when a group is split, merged or loses packets; the others are dead
    and become None. What an instruction writes is not live on its entry, so the same sets say
    what must survive packets being dropped inside it. Iterated to a fixed point for loops.
    """
    uses: list[set[int]] = []
    defs: list[set[int]] = []
    succs: list[list[int]] = []
    for pc, (code, jt, jf, k) in enumerate(program):
        cls, mode = code & 0x07, code & 0xE0
        use: set[int] = set()
        dfn: set[int] = set()
        succ = [pc + 1]
        if cls == RET:
            use, succ = ({0} if code & RET_A else set()), []
        elif code == JMP | JA:
            succ = [(pc + 1 + k) & 0xFFFFFFFF]
            if succ[0] <= pc:
                use = dfn = {loop_row}
        elif cls == JMP:
            use, succ = {0, 1} if code & X_SRC else {0}, [pc + 1 + jt, pc + 1 + jf]
        elif cls in (LD, LDX):
            dfn = {0 if cls == LD else 1}
            use = {1} if mode == IND else {mem_row[k]} if mode == MEM else set()
        elif cls in (ST, STX):
            use, dfn = {0 if cls == ST else 1}, {mem_row[k]}
        elif cls == MISC:
            use, dfn = ({1}, {0}) if code & TXA else ({0}, {1})
        else:  # ALU
            use, dfn = {0, 1} if code & X_SRC else {0}, {0}
        uses.append(use)
        defs.append(dfn)
        succs.append(succ)
    live: list[set[int]] = [set() for _ in program]
    changed = True
    while changed:
        changed = False
        for pc in reversed(range(len(program))):
            new = uses[pc] | (set().union(*(live[s] for s in succs[pc])) - defs[pc])
            if new != live[pc]:
                live[pc], changed = new, True
    return [tuple(sorted(rows)) for rows in live]
