"""Opening a live interface with libpcap, with the settings pushcap captures with (live.py).

Either through the C capture (native_live.py, where the library is built) or through pcapy-ng;
either way a handle that did not activate is refused here with libpcap's reason said plainly, and
the handle is nonblocking: the capture waits for packets itself, so `stop` is seen within a poll.
"""

from __future__ import annotations

import pcapy

from pushcap import defaults
from pushcap.capture.native_live import NativeLive, NativeLiveHandle
from pushcap.capture.source import SourceError

# libpcap's DLT_ values that differ from the LINKTYPE_ values files must carry (raw IP and kin).
DLT_TO_LINKTYPE = {12: 101, 14: 101, 15: 102, 16: 103}
# pcap_activate()'s errors: pcapy-ng returns the code instead of raising, and a handle that did
# not activate fails later with a misleading "F_GETFL: Bad file descriptor".
ACTIVATE_ERRORS = {
    -1: "libpcap could not open it", -5: "no such device",
    -8: "permission denied (capture needs root or CAP_NET_RAW)", -9: "the interface is not up",
    -6: "monitor mode is not supported", -11: "promiscuous mode is not permitted",
}


def open_native(native: NativeLive, interface: str, snaplen: int, promisc: bool,
                poll_timeout_ms: int, buffer_bytes: int) -> NativeLiveHandle:
    """The C capture's handle on `interface` (libpcap's callback writes the batch's records)."""
    handle, code, why = native.open(interface, snaplen, promisc, poll_timeout_ms, buffer_bytes)
    if handle is None:
        raise SourceError(f"interface {interface}: {ACTIVATE_ERRORS.get(code, why)}")
    return handle


def open_pcapy(interface: str, snaplen: int, promisc: bool, poll_timeout_ms: int,
               buffer_bytes: int):
    """pcapy-ng's handle on `interface` and its file descriptor (where the C library is
    missing)."""
    try:
        handle = pcapy.create(interface)
        handle.set_snaplen(snaplen)
        handle.set_promisc(1 if promisc else 0)
        handle.set_timeout(poll_timeout_ms)
        handle.set_buffer_size(buffer_bytes)
        code = handle.activate()
        if code < 0:
            raise SourceError(f"interface {interface}: "
                              f"{ACTIVATE_ERRORS.get(code, f'libpcap error {code}')}")
        handle.setnonblock(1)  # wait in select() instead, so stop() is seen within a poll
        fd = handle.getfd()
    except (pcapy.PcapError, ValueError) as exc:
        raise SourceError(f"interface {interface}: {exc}") from exc
    return handle, fd


def nap_us(buffer_bytes: int) -> int:
    """How long a busy link's gathering batch naps between reads (defaults.GATHER_NAP_MS):
    never longer than a NAP_LINK_BYTES_PER_S link takes to fill half the kernel buffer."""
    fill_half_us = buffer_bytes // 2 * 1_000_000 // defaults.NAP_LINK_BYTES_PER_S
    return min(defaults.GATHER_NAP_MS * 1000, fill_half_us)
