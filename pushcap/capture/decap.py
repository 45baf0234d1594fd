"""FMADIO's `Decap`: a push target's filter sees each packet with its encapsulation taken off,
while its file keeps the packet as captured.

FMADIO documents Decap as on by default for push targets ("full packet de-encapsulation is
performed by default before the BPF filter is applied ... VLAN, ERSPAN, GRE tunnels and many
more"), so `FilterBPF = "host 10.0.0.1"` also takes that host's packets inside a VLAN tag, an
MPLS label stack, a GRE/ERSPAN tunnel or VXLAN. csrc/decap.c lists the layers and how the inner
frame is written (always as an Ethernet frame, the filter being compiled for Ethernet).

Per batch, and only for Ethernet captures: one pass finds the packets with a layer to take off
(most links have none, and then the filter runs on the batch as it is, nothing copied); their
inner frames are copied into a scratch records buffer, the filter runs over that buffer for them
and over the batch for the others, and the two answers are merged into the batch's indices. Of
an inner frame only as many bytes are copied as the filter can read (`tcp port 80`: 78;
bpf_program.load_bound): whole frames cost 3x more. The writer then writes the batch's own
records: the file holds what was captured. In C where the library is built (`native_decap`),
with numpy where not (`decap_numpy`), with the same answer (tests/test_decap.py).
"""

from __future__ import annotations

from pushcap.capture.batch import Batch
from pushcap.capture.bpf_program import load_bound
from pushcap.capture.native_decap import native_decap

TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
if TYPE_CHECKING:
    import numpy as np

    from pushcap.capture.bpf import BpfFilter

__all__ = ["DECAP_LINKTYPES", "DecapFilter"]

DECAP_LINKTYPES = frozenset({1})  # LINKTYPE_ETHERNET: the layers decap.c knows sit on Ethernet


class DecapFilter:
    """A compiled filter run on the decapsulated packets; the same interface as BpfFilter for
    the consumers (`select`, `match`). Immutable: shared like the BpfFilter it wraps."""

    def __init__(self, bpf: BpfFilter) -> None:
        self.bpf = bpf
        self.expression = bpf.expression
        self.linktype = bpf.linktype
        # the bytes of an inner frame the filter can read: no more is copied (None: all)
        self.limit = load_bound(list(bpf.program))

    def __repr__(self) -> str:
        return f"DecapFilter({self.expression!r}, linktype={self.linktype})"

    def select(self, batch: Batch) -> memoryview | np.ndarray:
        """Indices of the packets whose inner frame the filter accepts, ascending."""
        native = native_decap()
        if native is None or not self.bpf.runs_in_c():  # one path for the whole selection
            import numpy as np

            return np.flatnonzero(self.match(batch))
        offsets, _, caplen, wirelen = batch.columns
        idx, info, need = native.scan(batch.records, offsets, caplen, self.limit)
        if not len(idx):
            return self.bpf.select(batch)
        records, in_offsets, in_caplen, in_wirelen = native.build(
            batch.records, offsets, caplen, wirelen, idx, info, need, self.limit)
        inner = Batch(records, in_offsets, in_offsets, in_caplen, in_wirelen, batch.linktype,
                      batch.snaplen)
        outer = self.bpf.select(batch) if len(idx) < len(batch) else idx[:0]
        return native.merge(outer, idx, self.bpf.select(inner))

    def match(self, batch: Batch) -> np.ndarray:
        """Bool mask over the batch's packets: True where the filter accepts the inner frame."""
        import numpy as np

        from pushcap.capture import decap_numpy

        data = np.frombuffer(batch.records, dtype=np.uint8)
        idx, info = decap_numpy.scan(data, batch.offsets, batch.caplen)
        if not len(idx):
            return self.bpf.match(batch)
        mask = self.bpf.match(batch) if len(idx) < len(batch) else \
            np.zeros(len(batch), dtype=bool)
        buf, starts, caplen, wirelen = decap_numpy.inner_frames(
            data, batch.offsets, batch.caplen, batch.wirelen, idx, info, self.limit)
        mask[idx] = self.bpf.match_arrays(buf, starts, caplen, wirelen)
        return mask
