"""pushcap's small C library (`csrc/`), loaded once, and how buffers are handed to it.

In C: the walk over a pcap file's records, a chain of dependent loads (`native_walk`);
interleaving a header before every packet of a live batch, one small copy per packet
(`native_records`); a filter run over a batch (`native_bpf`); a target's split points and
record writes (`push/native_runs`); a flows target's decode and count (`flows/native_table`,
`csrc/flowcount.c`); an index's keys (`archive/native_keys`, `csrc/indexkeys.c`,
`indexfile.c`). With these a replay of push targets needs no numpy at all
(importing it was 0.045 s of CPU, a fifth of a million-packet replay). The numpy versions stay
(`walk.py`, `batch.records_from_slices`, `bpf_numpy.py`, `push/split.py`) and give the same
result: they serve where the library was not built (a plain `pip install`, no C compiler) or
PUSHCAP_NO_NATIVE=1 asks for it (comparisons, debugging). The package build compiles it (setup.py:
`pip install`, `pip wheel`, editable installs and `make setup` alike) as an extension file named
`_native<EXTENSION_SUFFIX>`; it holds plain C functions, loaded with ctypes.

Measured: libpcap's bpf_filter() called in a C loop over a batch takes ~30 ns a packet for `tcp`,
the numpy interpreter ~28 ns, bpfrun.c (packets through the program a chunk at a time) ~13 ns.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import logging
import os
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

DISABLE_ENV = "PUSHCAP_NO_NATIVE"

_loaded: list[ctypes.CDLL | None] = []
TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")


def library_path() -> Path | None:
    """The built library beside this module (the build names it with the interpreter's
    extension suffix, e.g. `_native.cpython-311-x86_64-linux-gnu.so`), or None."""
    here = Path(__file__).parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = here / f"_native{suffix}"
        if candidate.is_file():
            return candidate
    return None


def disabled() -> bool:
    """True when PUSHCAP_NO_NATIVE asks for the numpy path."""
    return os.environ.get(DISABLE_ENV, "") in ("1", "yes", "true")


def native_library() -> ctypes.CDLL | None:
    """The library, or None where it was not built (or is turned off). A missing or unloadable
    library is said once, as a warning: the install succeeded without a compiler or libpcap's
    headers and every packet now takes the slower numpy path, which an operator should know."""
    if not _loaded:
        library = None
        if not disabled():
            path = library_path()
            try:
                if path is None:
                    raise OSError("not built (no C compiler or libpcap headers at install time?)")
                library = ctypes.CDLL(str(path))
            except OSError as exc:
                log.warning("event=native_unavailable packet_path=numpy error=%r", str(exc))
        _loaded.append(library)
    return _loaded[0]


def packet_path() -> str:
    """"C" or "numpy": which packet path this process runs (for `--version` and status)."""
    return "C" if native_library() is not None else "numpy"


def bind(make: Callable[[ctypes.CDLL], T]) -> T | None:
    """`make(library)`: the wrapper of some of the library's functions, or None where the
    library was not built (or is turned off) or predates them (a `_native` library left from an
    older checkout, which `make setup` rebuilds): the caller then takes its numpy path."""
    library = native_library()
    try:
        return make(library) if library is not None else None
    except AttributeError:  # a function the library does not have
        return None


class _PyBuffer(ctypes.Structure):
    """CPython's Py_buffer (Include/pybuffer.h), as PyObject_GetBuffer fills it."""

    _fields_ = [("buf", ctypes.c_void_p), ("obj", ctypes.c_void_p), ("len", ctypes.c_ssize_t),
                ("itemsize", ctypes.c_ssize_t), ("readonly", ctypes.c_int),
                ("ndim", ctypes.c_int), ("format", ctypes.c_char_p),
                ("shape", ctypes.c_void_p), ("strides", ctypes.c_void_p),
                ("suboffsets", ctypes.c_void_p), ("internal", ctypes.c_void_p)]


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int]
_get_buffer.restype = ctypes.c_int
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = [ctypes.POINTER(_PyBuffer)]
_release_buffer.restype = None
_PYBUF_C_CONTIGUOUS = 0x0020 | 0x0008 | 0x0004  # PyBUF_C_CONTIGUOUS: strides, nd, format


def buffer_address(obj, itemsize: int = 1) -> tuple[int, int]:
    """(address, length in items) of any C-contiguous buffer: bytes, bytearray, memoryview,
    mmap, a numpy array. For handing packet buffers and per-packet columns to the C library
    without numpy and without a copy, read-only buffers included (a mapped capture file),
    which ctypes' own `from_buffer` refuses.

    The address is valid while the caller keeps `obj` alive and unresized (the buffer is
    released before returning; the objects passed here are never resized while in use).
    Raises ValueError for a buffer that is not contiguous or whose items are not `itemsize`
    bytes wide.
    """
    view = _PyBuffer()
    _get_buffer(obj, ctypes.byref(view), _PYBUF_C_CONTIGUOUS)  # raises for non-buffers
    try:
        if view.len and view.itemsize != itemsize:
            raise ValueError(f"buffer items are {view.itemsize} bytes, not {itemsize}")
        return view.buf or 0, view.len // itemsize if view.len else 0
    finally:
        _release_buffer(ctypes.byref(view))
