"""The archive: what File targets have published, kept under control and searchable.

- `retention` and `keeper`: Keep's limits, applied to a series' published files off the packet
  path (a thread per series, after each publish and every few seconds); `series_scan`: what a
  keeper finds of its series on disk when it starts;
- `keys`, `native_keys`, `keys_numpy`, `index_file`: the Parquet index of one file (one row per
  flow with its records' offsets), built from the just-published file, never from the packet
  path;
- `filter_keys`: what a BPF expression tells about those keys (a conservative analysis);
- `query`: the packets of a time window matching a BPF, time ordered, from indexed files (only
  the records of matching flows are read) and unindexed ones (scanned) alike;
- `layout`: where files and indexes are and which files are a series'; `remote`: the same over
  rclone.

A layer of its own, between the consumers and capture: push builds indexes and applies retention,
and trigger (its lookback into the archive) and the `pushcap query` command read them, while
consumers never import each other.
"""
