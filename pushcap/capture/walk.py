"""Where the records of a classic pcap file start, found for a whole window at once.

A pcap file can only be walked record by record (each header gives the next one's place), which
in Python would cost a bytecode loop per packet. Instead the window is cut into lanes that all
step forward together, one numpy operation per step for all of them (`record_starts`). The
result is exactly the sequential walk's, for any bytes (tests/test_record_walk.py).
"""

from __future__ import annotations

import re
import struct

import numpy as np

from pushcap import defaults
from pushcap.capture.batch import RECORD_HEADER_BYTES

_MIN_LANE_BYTES = 16384  # spacing of the parallel lanes of the record walk (`record_starts`):
_LANES = 512  # about this many lanes per window, but never closer than _MIN_LANE_BYTES
_FEW_LANES = 8  # below this many lanes a numpy step costs more than walking each in Python
_STEPS_PER_CHECK = 4  # lanes walk this many steps between checks whether all have arrived


def record_starts(region: np.ndarray, order: str, pattern: tuple[bytes, int]
                   ) -> tuple[np.ndarray, int]:
    """Offsets of the whole records in `region` (whose first record starts at 0), and the
    offset just past the last of them.

    A pcap file can only be walked record by record (each header gives the next one's place),
    so the walk runs in *lanes*: the region is cut into about `_LANES` stretches, a likely record
    header is looked for near each cut (`pattern`: bytes every header of this stretch holds,
    found by a regular expression in C), and all lanes step forward together, one numpy
    operation per step for all of them (`_walk_lanes`). A lane is trusted only when the lane
    before it, trusted itself, lands exactly on its start; lane 0 starts at a known record. A
    wrong guess (the pattern found in packet data, or not found at all) only costs speed: that
    lane is dropped and the lane before it walks on through its stretch. The result is
    therefore exactly the sequential walk's.
    """
    n = len(region)
    if n < RECORD_HEADER_BYTES:
        return np.zeros(0, dtype=np.int64), 0
    # caplen of the record starting at byte p is caplen_at[p] (unaligned strided view, no copy).
    caplen_at = np.ndarray((n - RECORD_HEADER_BYTES + 1,), dtype=np.dtype(order + "u4"),
                           buffer=region, offset=8, strides=(1,))
    starts = np.concatenate(([0], _lane_guesses(region, order, pattern, caplen_at)))
    lanes = len(starts)
    stop = np.append(starts[1:], n)
    final, stuck, lane_of, walked = _walk_lanes(region, caplen_at, n, np.arange(lanes), starts,
                                                stop)
    alive = np.ones(lanes, dtype=bool)
    walked_lane, walked_pos = [lane_of], [walked]
    while True:
        live = np.flatnonzero(alive)
        good = ~stuck[live[:-1]] & (final[live[:-1]] == starts[live[1:]])
        bad = np.flatnonzero(~good)
        trusted = int(bad[0]) if len(bad) else len(live) - 1  # lanes chained from lane 0
        if stuck[live[trusted]]:  # a trusted lane reached a record cut by the region's end
            alive[live[trusted + 1:]] = False
            live = live[:trusted + 1]
            break
        if not len(bad):
            break
        # A lane not landed on joins the lane before it; so does a lane that ran into a cut
        # record before its successor (its start was a wrong guess: lane 0's never is).
        victims = live[np.where(stuck[live[bad]], bad, bad + 1)]
        alive[victims] = False
        live = np.flatnonzero(alive)
        heirs = np.unique(live[np.searchsorted(live, victims) - 1])
        heirs = heirs[~stuck[heirs]]
        heir_stop = np.append(starts[live], n)[np.searchsorted(live, heirs, side="right")]
        h_final, h_stuck, h_lane, h_walked = _walk_lanes(region, caplen_at, n, heirs,
                                                         final[heirs], heir_stop)
        final[heirs], stuck[heirs] = h_final, h_stuck
        walked_lane.append(h_lane)
        walked_pos.append(h_walked)
    end = int(final[live[-1]])
    if len(walked_pos) == 1 and len(live) == lanes:
        return walked, end  # every guess was right: lane by lane, already in order
    lane_of, positions = np.concatenate(walked_lane), np.concatenate(walked_pos)
    positions = positions[alive[lane_of]]
    positions.sort()
    return positions, end


def _lane_guesses(region: np.ndarray, order: str, pattern: tuple[bytes, int],
                  caplen_at: np.ndarray) -> np.ndarray:
    """One likely record start per lane (a stretch of the region), ascending.

    The regular expression finds the needle followed by a caplen below 2**18 (its two
    high-order bytes), then skips the rest of the lane, all in C. A guess is kept only if it
    looks like a record header followed by another one (or the region's end): fewer wrong lanes
    when packet data happens to hold the needle. Speed only: a real header dropped here is
    walked through by the lane before it."""
    n = len(region)
    needle, shift = pattern
    lane_bytes = max(_MIN_LANE_BYTES, n // _LANES)
    caplen_high = rb"(?s:.{6})[\x00-\x03]\x00" if shift else rb"(?s:.{5})\x00[\x00-\x03]"
    lane_re = re.compile(re.escape(needle) + caplen_high + b"(?s:.{0,%d})" % lane_bytes)
    guesses = np.fromiter(map(re.Match.start, lane_re.finditer(region, lane_bytes + shift,
                                                                n - RECORD_HEADER_BYTES)),
                          dtype=np.int64)
    guesses -= shift
    last_header = n - RECORD_HEADER_BYTES
    wirelen_at = np.ndarray((n - 15,), dtype=caplen_at.dtype, buffer=region, offset=12,
                            strides=(1,))
    at = np.minimum(guesses, last_header)
    caplen = caplen_at[at]
    nxt = guesses + RECORD_HEADER_BYTES + caplen
    ok = (caplen <= defaults.MAX_SNAPLEN_BYTES) & (caplen <= wirelen_at[at]) & (nxt <= n)
    data = np.frombuffer(region, dtype=np.uint8)
    probe = np.minimum(nxt, last_header) + shift
    follows = np.ones(len(guesses), dtype=bool)
    for i, byte in enumerate(needle):
        follows &= data[probe + i] == byte
    follows |= nxt > last_header  # no room for another header: the region ends
    return guesses[ok & follows]


def _walk_lanes(region, caplen_at: np.ndarray, n: int, lane: np.ndarray, pos: np.ndarray,
                stop: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Step every lane from `pos` record by record until it reaches its `stop` or a record cut
    by the end of the region.

    Returns, per lane, where it ended (`final`: the first record start at or past `stop`, or
    the cut record) and whether it stopped at a cut record (`stuck`); and the whole records it
    passed, as (lane, position) arrays grouped lane by lane, ascending within each lane.

    Lanes are not masked while they walk: every step moves every lane, positions clamped to
    the region's end (a fixed point), so a step is five numpy calls whatever the lanes do;
    which positions count is sorted out once afterwards.
    """
    if len(lane) <= _FEW_LANES:  # a plain loop per lane beats a numpy call per step here
        return _walk_few(region, caplen_at.dtype.byteorder, n, lane, pos, stop)
    last_header = n - RECORD_HEADER_BYTES
    rows = [pos]
    cur = pos
    while True:
        for _ in range(_STEPS_PER_CHECK):
            nxt = caplen_at[np.minimum(cur, last_header)] + cur
            nxt += RECORD_HEADER_BYTES
            np.minimum(nxt, n, out=nxt)
            rows.append(nxt)
            cur = nxt
        if (cur >= stop).all():
            break
    steps = np.stack(rows, axis=1)  # lanes x steps
    inside = steps < stop[:, None]
    count = inside.sum(axis=1)
    index = np.arange(len(lane))
    landing = steps[index, count]
    last = steps[index, np.maximum(count - 1, 0)]
    # The last record before the landing is whole unless its header or data reach past the end.
    true_next = caplen_at[np.minimum(last, last_header)] + (last + RECORD_HEADER_BYTES)
    stuck = (count > 0) & ((last > last_header) | (true_next > n))
    final = np.where(stuck, last, landing)
    inside[index[stuck], count[stuck] - 1] = False
    return final, stuck, np.repeat(lane, count - stuck), steps[inside]


def _walk_few(region, byteorder: str, n: int, lane: np.ndarray, pos: np.ndarray,
              stop: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`_walk_lanes` for a few lanes (few are left when guesses keep failing, e.g. packet data
    full of header-like bytes): a Python step per record instead of numpy calls per step."""
    unpack = struct.Struct((">" if byteorder == ">" else "<") + "I").unpack_from
    final, stuck = pos.copy(), np.zeros(len(lane), dtype=bool)
    lanes, walked = [], []
    for i, (start, end) in enumerate(zip(pos.tolist(), stop.tolist(), strict=True)):
        positions = []
        p = start
        while p < end and p + RECORD_HEADER_BYTES <= n:
            nxt = p + RECORD_HEADER_BYTES + unpack(region, p + 8)[0]
            if nxt > n:
                break
            positions.append(p)
            p = nxt
        final[i], stuck[i] = p, p < end
        lanes.append(np.full(len(positions), lane[i], dtype=np.int64))
        walked.append(np.array(positions, dtype=np.int64))
    if not lanes:
        return final, stuck, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return final, stuck, np.concatenate(lanes), np.concatenate(walked)
