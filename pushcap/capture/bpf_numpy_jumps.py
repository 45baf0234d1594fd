"""Conditional jumps for the numpy BPF evaluator (bpf_numpy.py): a group split once per exit.

libpcap emits runs of tests on the same A (the three VLAN ethertypes, `tcp or udp or sctp`);
splitting the group at each of them would copy A for the packets going on to the next test.
`Jumps.route` works out the exit from the whole run (`bpf_program.jump_run`) with boolean masks
over the group first, then splits it once: each part carries only the registers live where it
goes, a part bound for `ret #0` is dropped, and one bound for an accepting `ret` from a whole
batch only sets its results (cheaper than selecting the packets).
"""

from __future__ import annotations

import numpy as np

from pushcap.capture import bpf_program
from pushcap.capture.bpf_numpy_groups import Part, Regs, Run, select_group
from pushcap.capture.bpf_program import JA, JMP, X_SRC, jump_run

_U32 = np.uint32


def _test_bits(a: np.ndarray, b: np.ndarray | np.uint32) -> np.ndarray:
    return (a & b) != 0


_CONDITIONS = {bpf_program.JEQ: np.equal, bpf_program.JGT: np.greater,
               bpf_program.JGE: np.greater_equal, bpf_program.JSET: _test_bits}


class Jumps:
    """A program's conditional jumps (`runs`: the run starting at each), ready to route groups.

    Immutable after construction, as the NumpyProgram that owns it.
    """

    def __init__(self, program: tuple[tuple[int, int, int, int], ...],
                 live: list[tuple[int, ...]], rejects: tuple[bool, ...],
                 accepts: tuple[bool, ...]) -> None:
        """`live`, `rejects`, `accepts`: per instruction, the live registers and whether it is
        `ret #0` or an accepting `ret` (NumpyProgram's tables)."""
        self._live, self._rejects, self._accepts = live, rejects, accepts
        self._tests = {pc: (_CONDITIONS[code & 0xF0], None if code & X_SRC else _U32(k),
                            pc + 1 + jt, pc + 1 + jf)
                       for pc, (code, jt, jf, k) in enumerate(program)
                       if code & 0x07 == JMP and code != JMP | JA}
        self.runs = {pc: jump_run(self._tests, pc) for pc in self._tests}

    def route(self, run: Run, pc: int, idx: np.ndarray | None, regs: Regs) -> list[Part]:
        """Route the group through the conditional jumps starting at pc; split it once per exit
        (see the module docstring). Empty groups are never returned."""
        nodes, exits = self.runs[pc]
        if len(nodes) == 1:  # the common case, kept cheap
            parts = self._one_test(pc, regs[0], regs[1])
        else:
            parts = self._run_of_tests(pc, nodes, exits, regs[0], regs[1])
        if isinstance(parts, int):  # every packet goes the same way: no split
            return [] if self._rejects[parts] else [(parts, idx, regs)]
        out = []
        for target, mask in parts:
            if self._rejects[target]:
                continue
            if idx is None and self._accepts[target]:
                run.result |= mask  # cheaper than selecting the packets
            else:
                out.append((target, *select_group(idx, regs, mask.nonzero()[0],
                                                  self._live[target])))
        return out

    def _one_test(self, pc: int, a: np.ndarray, x: np.ndarray | None
                  ) -> int | list[tuple[int, np.ndarray]]:
        """The exits of the single test at pc with their masks, or the one exit of them all."""
        test, k, t_pc, f_pc = self._tests[pc]
        cond = test(a, x if k is None else k)
        n_true = np.count_nonzero(cond)
        if n_true in (0, len(cond)) or t_pc == f_pc:
            return t_pc if n_true else f_pc
        return [(t_pc, cond)] + ([] if self._rejects[f_pc] else [(f_pc, ~cond)])

    def _run_of_tests(self, pc: int, nodes: tuple[int, ...], exits: tuple[int, ...],
                      a: np.ndarray, x: np.ndarray | None
                      ) -> int | list[tuple[int, np.ndarray]]:
        """The same for a run of tests: masks (None: every packet) carried from test to test
        in program order, as jumps only go forward within a run."""
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
                return target
            if mask is not False and mask.any():
                parts.append((target, mask))
        return parts
