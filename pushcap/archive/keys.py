"""The content of one file's index, gathered batch by batch as the file is read.

`FileKeys.add(batch, file_offset)` per batch (the batch's records start at `file_offset` in the
file), `finish()` once: the file's flows (key, first/last timestamp, packets, wire bytes) and
every record's offset and captured length, ordered by flow (file order within a flow) so the
index stores each flow's records together. The per-packet work is C (`native_keys`) or, where
the library was not built, numpy (`keys_numpy`); nothing runs per packet in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pushcap.archive import keys_numpy
from pushcap.archive.keys_numpy import KEY_DTYPE
from pushcap.archive.native_keys import NativeFlows, native_keys


@dataclass
class IndexData:
    """What an index holds, by flow: `keys` (KEY_DTYPE), `first_ts`, `last_ts`, `packets`,
    `bytes`; `rec_offset`/`rec_caplen`: every record's file offset and captured length, flow
    after flow (`packets` of each, in flow order)."""

    keys: np.ndarray
    first_ts: np.ndarray
    last_ts: np.ndarray
    packets: np.ndarray
    bytes: np.ndarray
    rec_offset: np.ndarray
    rec_caplen: np.ndarray

    @property
    def records(self) -> int:
        return len(self.rec_offset)


class FileKeys:
    """Gathers one file's index content; `native=False` forces the numpy path (tests)."""

    def __init__(self, linktype: int, native: bool = True) -> None:
        functions = native_keys() if native else None
        self._native = NativeFlows(functions, linktype) if functions is not None else None
        self._offsets: list[np.ndarray] = []
        self._caplen: list[np.ndarray] = []
        self._flows: list[np.ndarray] = []  # native: flow numbers; numpy: KEY_DTYPE keys
        self._ts: list[np.ndarray] = []
        self._wirelen: list[np.ndarray] = []

    def add(self, batch, file_offset: int) -> None:
        if not len(batch):
            return
        self._offsets.append(batch.offsets + file_offset)
        self._caplen.append(np.asarray(batch.caplen, dtype=np.int64))
        if self._native is not None:
            self._flows.append(self._native.add(batch))
        else:
            self._flows.append(keys_numpy.decode(batch))
            self._ts.append(batch.ts_ns.copy())
            self._wirelen.append(batch.wirelen.copy())

    def finish(self) -> IndexData:
        offsets = _joined(self._offsets, np.int64)
        caplen = _joined(self._caplen, np.int64)
        if self._native is not None:
            flow = _joined(self._flows, np.int32)
            keys, first_ts, last_ts, packets, nbytes = self._native.export(KEY_DTYPE)
            perm = self._native.order(flow, len(keys))
            self._native.close()
        else:
            all_keys = np.concatenate(self._flows) if self._flows else np.zeros(0, KEY_DTYPE)
            flow, keys, first_ts, last_ts, packets, nbytes = keys_numpy.group(
                all_keys, _joined(self._ts, np.int64), _joined(self._wirelen, np.int64))
            perm = np.argsort(flow, kind="stable")
        return IndexData(keys, first_ts, last_ts, packets, nbytes, offsets[perm],
                         caplen[perm].astype(np.int32))


def _joined(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)
