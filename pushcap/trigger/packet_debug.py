"""pcapdaemon's `packetdebug`: log what a capture holds, packet by packet, at debug level.

Asked for by a request (`"packetdebug": true`) or for every request (`[general] packetdebug`).
pcapdaemon printed each captured packet's metadata; pushcap logs one debug line per packet
(time, captured and wire length) after the capture, at most `PACKET_DEBUG_MAX_LINES` of them and
then one line counting the rest, so a 50,000-packet capture cannot flood the log. It reads the
pcap records the capture already built: nothing is decoded, nothing slows the capture itself.
"""

from __future__ import annotations

import logging
import struct

from pushcap import defaults
from pushcap.capture.batch import RECORD_HEADER_BYTES
from pushcap.trigger.job import CaptureOutcome
from pushcap.trigger.message import CaptureRequest

log = logging.getLogger("pushcap.trigger.packets")
_HEADER = struct.Struct("<IIII")  # pcap record header: seconds, ns, caplen, wire length


def log_packets(request: CaptureRequest, outcome: CaptureOutcome,
                limit: int = defaults.PACKET_DEBUG_MAX_LINES) -> int:
    """Log the capture's packets at debug level; returns how many lines were logged."""
    if not log.isEnabledFor(logging.DEBUG):
        return 0
    logged = 0
    for part in outcome.parts:
        offset = 0
        while offset + RECORD_HEADER_BYTES <= len(part):
            seconds, nanos, caplen, wirelen = _HEADER.unpack_from(part, offset)
            offset += RECORD_HEADER_BYTES + caplen
            if logged == limit:
                log.debug("event=trigger_packets_not_logged requestid=%s interface=%s count=%d",
                          request.request_id, outcome.interface, outcome.packets - logged)
                return logged
            logged += 1
            log.debug("event=trigger_packet requestid=%s interface=%s n=%d ts=%d.%09d "
                      "caplen=%d wirelen=%d", request.request_id, outcome.interface, logged,
                      seconds, nanos, caplen, wirelen)
    return logged
