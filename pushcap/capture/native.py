"""pushcap's small C library (`csrc/`), loaded once.

Only what numpy cannot do well is in C: the walk over a pcap file's records, a chain of
dependent loads (`native_walk`), and interleaving a header before every packet of a live batch,
one small copy per packet (`native_records`). The numpy versions stay (`walk.py`,
`batch.records_from_slices`) and give the same result: they serve where the library was not
built (a plain `pip install`, no C compiler) or PUSHCAP_NO_NATIVE=1 asks for it (comparisons,
debugging). `make setup` builds it.

Measured and left out: libpcap's bpf_filter() called in a C loop over a batch took 0.032 s of
CPU per million packets for `tcp`, the numpy run of the same program (`bpf.py`) 0.018 s.
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

LIBRARY = Path(__file__).with_name("_native.so")
DISABLE_ENV = "PUSHCAP_NO_NATIVE"

_loaded: list[ctypes.CDLL | None] = []


def native_library() -> ctypes.CDLL | None:
    """The library, or None where it was not built (or is turned off)."""
    if not _loaded:
        library = None
        if os.environ.get(DISABLE_ENV, "") not in ("1", "yes", "true"):
            try:
                library = ctypes.CDLL(str(LIBRARY))
            except OSError as exc:
                log.debug("event=native_unavailable library=%s error=%r", LIBRARY, str(exc))
        _loaded.append(library)
    return _loaded[0]
