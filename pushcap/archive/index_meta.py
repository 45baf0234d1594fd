"""What an index says about its data file, and its format's names: shared by the index's
writer (`index_write`, which must not import pyarrow) and its reader (`index_file`)."""

from __future__ import annotations

import json
from dataclasses import dataclass

METADATA_KEY = b"pushcap.index"
FORMAT_VERSION = 1
RECORD_COLUMNS = ("rec_offset", "rec_caplen")
FLOW_COLUMNS = ("vlan", "inner_vlan", "ethertype", "ip_version", "protocol", "src_port",
                "dst_port", "first_ts", "last_ts", "packets", "exact", "src_raw", "dst_raw")


class IndexUnusable(Exception):
    """An index cannot be read (missing, partial, another version); the query scans instead."""


@dataclass(frozen=True)
class IndexMeta:
    """The figures of the data file an index describes."""

    data_size: int
    linktype: int
    snaplen: int
    nano: bool
    packets: int
    first_ts: int  # the smallest timestamp in the file (0 without packets)
    last_ts: int  # the largest

    def to_json(self) -> bytes:
        return json.dumps({"version": FORMAT_VERSION, **self.__dict__}).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> IndexMeta:
        fields = json.loads(raw)
        if fields.pop("version", None) != FORMAT_VERSION:
            raise IndexUnusable("an index of another format version")
        return cls(**fields)
