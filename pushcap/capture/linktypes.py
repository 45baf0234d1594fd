"""What libpcap 1.10 knows of a capture file's link type: whether tcpdump reads a file of it, and
the largest record it takes for it.

libpcap's file readers take any number (sf-pcap.c and sf-pcapng.c keep the low 26 bits,
`LT_LINKTYPE`, and `linktype_to_dlt` in pcap-common.c passes a number it has no mapping for
through unchanged, "it may be a DLT from a newer version"). What refuses the others is the next
step every tcpdump takes: compiling its filter (gencode.c `init_linktype`, "unknown data link type
N (min 104, max 289)"; writing the file would fail too, as `dlt_to_linktype` has no number for
them). pushcap compiles its filters with libpcap and writes pcap files as tcpdump does, so it
refuses the same numbers, when the file is opened: a header whose link type is none of these is
damaged, or the file comes from a tool newer than the libpcap it runs with.

The numbers tcpdump reads (checked one by one against tcpdump 4.99 / libpcap 1.10.3 on Linux):
- the LINKTYPE_ values of pcap-common.c's mapping table that gencode can filter: NULL, ETHERNET,
  IEEE802_5, ARCNET_BSD, SLIP, PPP, FDDI (0, 1, 6-10), PPP_HDLC 50, PPP_ETHER 51,
  SYMANTEC_FIREWALL 99 and ATM_RFC1483, RAW, SLIP_BSDOS, PPP_BSDOS (100-103). Its EXP_ETHERNET,
  AX25, PRONET and CHAOS (2-5) are mapped, but gencode has no code for them;
- Linux's own DLT values that the mapping passes through and gencode knows: ATM_RFC1483 11,
  RAW 12, SLIP_BSDOS 15, PPP_BSDOS 16, ATM_CLIP 19;
- LINKTYPE_MATCHING_MIN to LINKTYPE_MATCHING_MAX (104-289 in 1.10), where LINKTYPE and DLT are
  the same number and gencode filters with `link[N:M]` what it has no other code for.
"""

from __future__ import annotations

from pushcap import defaults

LINKTYPE_BITS = 0x03FFFFFF  # libpcap's LT_LINKTYPE: the upper 6 bits are FCS and such
_MATCHING_MAX = 289  # LINKTYPE_MATCHING_MAX of libpcap 1.10 (later releases add 290)
_KNOWN = frozenset({0, 1, 6, 7, 8, 9, 10, 11, 12, 15, 16, 19, 50, 51, 99}) | frozenset(
    range(100, _MATCHING_MAX + 1))
# libpcap's max_snaplen_for_dlt: MAXIMUM_SNAPLEN except for these link types.
_LARGEST_SNAPLEN_BYTES = {231: 128 << 20, 249: 1 << 20, 279: 8 << 20}  # DBUS, USBPCAP, EBHSCR


def max_caplen(linktype: int) -> int:
    """The largest record libpcap reads for this link type (`max_snaplen_for_dlt`): a record
    claiming more is corruption (tcpdump: "invalid packet capture length"), and the largest
    snaplen (a header's 0 reads as it)."""
    return _LARGEST_SNAPLEN_BYTES.get(linktype & LINKTYPE_BITS, defaults.MAX_SNAPLEN_BYTES)


def linktype_refusal(linktype: int) -> str | None:
    """Why a file of this link type (as its header holds it) cannot be read, or None."""
    number = linktype & LINKTYPE_BITS
    if number in _KNOWN:
        return None
    return (f"link type {number} is one libpcap does not know (tcpdump: \"unknown data link "
            f"type {number}\"): the file's header is damaged, or the file was written by a "
            "tool newer than libpcap 1.10")
