"""A capture filter: libpcap compiles the expression, pushcap runs it over whole batches.

libpcap (`pcapy.compile`, under config/bpf_compile.py's size and time budgets and through its
cache) turns the expression into a classic BPF program, the same one `tcpdump -r` runs;
`bpf_program.check_program` refuses what libpcap's own validator would, and Linux-only ancillary
loads. The program then runs over a batch at once, never one Python call per
packet: in C (`native_bpf`, `select`) on the push path, or with numpy (`bpf_numpy`) where the
library was not built and where a caller wants a mask (triggers, flows). Both give exactly
libpcap's `bpf_filter()` answers (tests hold them to it and to tcpdump).
"""

from __future__ import annotations

import threading

from pushcap import defaults
from pushcap.capture.batch import RECORD_HEADER_BYTES, Batch
from pushcap.capture.bpf_program import BpfError, check_program
from pushcap.capture.decap import DECAP_LINKTYPES, DecapFilter
from pushcap.capture.native_bpf import native_bpf
from pushcap.config.bpf_compile import check_size, compile_program
from pushcap.config.field_check import lua_repr
from pushcap.config.model import ConfigError, TargetConfig

TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
if TYPE_CHECKING:  # numpy is imported where it is used: a replay never needs it
    import numpy as np

    from pushcap.capture.bpf_numpy import NumpyProgram
    from pushcap.capture.native_bpf import NativeProgram

__all__ = ["BpfError", "BpfFilter", "compile_shared"]  # BpfError is re-exported for callers

# File LINKTYPE_* values whose libpcap DLT_* differs (libpcap's linktype_to_dlt(), Linux values):
# pcap files say 101 for raw IP, but pcap_compile() only knows DLT_RAW = 12.
_LINKTYPE_TO_DLT = {100: 11, 101: 12, 102: 15, 103: 16}

_shared_lock = threading.Lock()
_shared: dict[tuple[str, int, int], BpfFilter] = {}


class BpfFilter:
    """One compiled filter expression.

    Immutable once built (the evaluators are made on first use; two threads racing to make one
    make equal ones), so one instance is safely shared by every target and thread that uses the
    same expression (see `compile_shared`).
    """

    def __init__(self, expression: str, linktype: int,
                 snaplen: int = defaults.MAX_SNAPLEN_BYTES, *,
                 budget_s: float | None = None,
                 max_chars: int | None = defaults.MAX_FILTER_BPF_CHARS) -> None:
        """`linktype` is the pcap file header's LINKTYPE_*; libpcap's DLT_* is accepted too.

        The program comes from bpf_compile's cache, compiled there under `budget_s` (None: a
        FilterBPF's) and `max_chars` when it is not cached (a trigger passes its own): a long
        expression waits for a child process, holding no GIL, so build this off threads that
        must answer (the trigger listener) and it never stalls capture threads.
        """
        self.expression = expression
        self.linktype = linktype
        self.snaplen = snaplen
        self.program = compile_program(expression, _LINKTYPE_TO_DLT.get(linktype, linktype),
                                       snaplen, budget_s=budget_s, max_chars=max_chars)
        check_program(list(self.program))
        self._numpy: NumpyProgram | None = None
        self._native: NativeProgram | None = None
        native = native_bpf()
        if native is not None:  # prepared (and checked again, by C) now: a bad one fails here
            try:
                self._native = native.prepare(self.program)
            except ValueError as exc:
                raise BpfError(str(exc)) from None

    def __repr__(self) -> str:
        return f"BpfFilter({self.expression!r}, linktype={self.linktype})"

    def runs_in_c(self) -> bool:
        """Whether `select` runs in C (answering a memoryview) rather than numpy."""
        return native_bpf() is not None and self._native is not None

    def select(self, batch: Batch) -> memoryview | np.ndarray:
        """Indices of the packets the filter accepts, ascending: an int64 memoryview from C, or
        a numpy array where the library was not built."""
        native = native_bpf()
        if native is None or self._native is None:
            import numpy as np

            return np.flatnonzero(self.match(batch))
        offsets, _, caplen, wirelen = batch.columns
        out = memoryview(bytearray(8 * len(batch))).cast("q")
        count = native.select(self._native, batch.records, offsets, caplen, wirelen, out)
        return out[:count]

    def match(self, batch: Batch) -> np.ndarray:
        """Bool mask over the batch's packets: True where the filter accepts."""
        import numpy as np

        # Viewing the buffer from the first packet's data on spares adding 16 to every offset.
        data = np.frombuffer(batch.records, dtype=np.uint8)[RECORD_HEADER_BYTES:]
        return self._numpy_program().match(data, batch.offsets, batch.caplen, batch.wirelen)

    def match_arrays(self, buf: bytes | memoryview, data_offsets: np.ndarray,
                     caplen: np.ndarray, wirelen: np.ndarray) -> np.ndarray:
        """Bool mask for packets given as arrays rather than a Batch (e.g. a raw pcap file).

        Packet i is buf[data_offsets[i]:data_offsets[i] + caplen[i]] and was wirelen[i] bytes
        on the wire.
        """
        import numpy as np

        return self._numpy_program().match(np.frombuffer(buf, dtype=np.uint8), data_offsets,
                                           caplen, wirelen)

    def _numpy_program(self) -> NumpyProgram:
        if self._numpy is None:
            from pushcap.capture.bpf_numpy import NumpyProgram

            self._numpy = NumpyProgram(self.program)
        return self._numpy


def compile_shared(expression: str | None, linktype: int, snaplen: int,
                   max_chars: int | None = defaults.MAX_FILTER_BPF_CHARS) -> BpfFilter | None:
    """The one BpfFilter for (expression, linktype, snaplen); None (match all) for no expression.

    Targets with the same filter share one compiled program (and its C form). The lock makes
    concurrent callers agree on a single object. It is held while compiling: targets are built
    one after the other, off the capture threads, and a compile holds it at most for
    defaults.BPF_COMPILE_BUDGET_S (the wait for a child process holds no GIL). Only targets'
    filters come here: the dict is bounded by the config, not by the network.
    """
    if expression is None:
        return None
    key = (expression, linktype, snaplen)
    with _shared_lock:
        bpf = _shared.get(key)
        if bpf is None:
            bpf = _shared[key] = BpfFilter(expression, linktype, snaplen, max_chars=max_chars)
        return bpf


def compile_target_filter(target: TargetConfig, linktype: int, snaplen: int,
                          expression: str | None = None) -> BpfFilter | DecapFilter | None:
    """A target's shared filter (`expression` when the consumer widens the target's own, e.g.
    flows leaving out their own datagrams); a bad one is a ConfigError naming the target, its
    FilterBPF and the link type, the one wording every consumer and check uses. The size budget
    applies to the FilterBPF as written; a widened expression adds a known few characters.
    With the target's Decap on an Ethernet link, the filter runs on the decapsulated packets
    (decap.py); without a filter Decap changes nothing, every packet is taken."""
    try:
        if target.filter_bpf is not None:
            check_size(target.filter_bpf, defaults.MAX_FILTER_BPF_CHARS)
        bpf = compile_shared(target.filter_bpf if expression is None else expression,
                             linktype, snaplen, max_chars=None)
    except BpfError as exc:
        raise ConfigError(f'target {target.index} "{target.desc}": FilterBPF '
                          f'{lua_repr(target.filter_bpf)}: {exc} (link type {linktype})') from exc
    if bpf is not None and target.decap and linktype in DECAP_LINKTYPES:
        return DecapFilter(bpf)
    return bpf
