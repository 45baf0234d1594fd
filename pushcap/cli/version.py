"""`pushcap --version`: imported only when it is asked for, since it loads libpcap and the C
library, which no other command line needs before its command runs."""

from __future__ import annotations


def version_text() -> str:
    """pushcap's version, the packet path this install runs, and libpcap's version: the three
    facts a bug report about speed or capture needs first."""
    import ctypes

    import pcapy

    from pushcap import __version__
    from pushcap.capture import native

    def libpcap_version(library: ctypes.CDLL) -> str:
        function = library.pcap_lib_version  # found through the library's dependencies
        function.restype = ctypes.c_char_p
        return function().decode()

    capture_pcap = libpcap_version(ctypes.CDLL(pcapy.__file__))
    path = native.packet_path()
    lines = [f"pushcap {__version__}",
             f"packet path: {path}" + (f" ({native.library_path()})" if path == "C" else
                                       " (the C library is not built or is turned off)"),
             f"capture: {capture_pcap} (pcapy-ng {_dist_version('pcapy-ng')})"]
    library = native.native_library()
    if library is not None and (linked := libpcap_version(library)) != capture_pcap:
        lines.append(f"C library linked with: {linked}")
    return "\n".join(lines)


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"
