"""The framing of a query the daemon serves (`POST /query`), shared by server and client.

The request is JSON (what to read, the window, the filter: never a path outside the daemon's
targets' folders). The answer is HTTP 200 with a stream of frames, each a kind byte and a
little-endian uint32 length, then that many bytes: the pcap comes as DATA frames, notes as
they happen, and the stream ends with STATS (JSON figures) or ERROR (one line). DECLINED, as
the only frame, says the daemon does not serve this query (not its files, busy): the client
then reads the archive itself. Frames, not a plain pcap body, because a note or an error can
come after packets were sent.
"""

from __future__ import annotations

import struct

PATH = "/query"
CONTENT_TYPE = "application/x-pushcap-query"
MAX_REQUEST_BYTES = 64 * 1024
MAX_FILTER_CHARS = 8192
HEADER = struct.Struct("<cI")
DATA, NOTE, STATS, ERROR, DECLINED = b"D", b"N", b"S", b"E", b"X"


def frame(kind: bytes, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload
