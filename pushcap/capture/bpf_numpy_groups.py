"""Groups of packets for the numpy BPF evaluator (bpf_numpy.py): selecting, merging, loading.

A group is the packets at one instruction: their positions in the batch (None: all of them)
and their registers A, X, the scratch words the program uses, the backward-jump count, each a
uint32 array aligned with the positions. A register that is dead there (see
`bpf_program.liveness`) is None, and every operation here carries only the live ones, so a
split after `ldh [12]; jeq` selects nothing but positions. `Run` holds what one call of
`NumpyProgram.match` reads from the batch, and its loads follow libpcap: a load past a
packet's captured bytes rejects that packet.
"""

from __future__ import annotations

import numpy as np

_U32 = np.uint32

Regs = list[np.ndarray | None]
Group = tuple[np.ndarray | None, Regs]
Part = tuple[int, np.ndarray | None, Regs]  # a group and the instruction it goes to


def select_group(idx: np.ndarray | None, regs: Regs, nz: np.ndarray, rows: tuple[int, ...]
                 ) -> Group:
    """The packets at positions `nz` of a group, with only the registers `rows` (the rest die).

    Registers are kept as separate 1-D arrays because selecting along the second axis of a 2-D
    array is several times slower; `nonzero` once then `take` per array also beats a boolean
    index per array.
    """
    new: Regs = [None] * len(regs)
    for r in rows:
        new[r] = regs[r].take(nz)
    return (nz if idx is None else idx.take(nz)), new


class Run:
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

    def merge(self, groups: list[Group], rows: tuple[int, ...]) -> Group:
        """One group from several that reached the same instruction, with the live registers."""
        idx = np.concatenate([np.arange(self.n) if g[0] is None else g[0] for g in groups])
        regs: Regs = [None] * len(groups[0][1])
        for r in rows:
            regs[r] = np.concatenate([g[1][r] for g in groups])
        return idx, regs

    def load(self, idx: np.ndarray | None, regs: Regs, k: int, x: np.ndarray | None, size: int,
             rows: tuple[int, ...]) -> tuple[np.ndarray | None, Regs, np.ndarray] | None:
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
                idx, regs = select_group(idx, regs, nz, rows)
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
