/* The candidate records of an indexed query, checked and cut to the window in C
 * (pushcap/archive/native_pick.py, for archive/select.py).
 *
 * A daemon-served query reads ~10,000 records scattered over a few GB of mapped files. Right
 * after something has read the whole archive (the benchmark does, before every query), the
 * first touch of each of their ~11,500 pages costs ~2-8 µs on this VM without any page fault
 * (the process's minor-fault count does not move): any memory, even anonymous memory, not
 * touched since costs that, so it is the host's translation of guest memory, gone cold.
 * numpy's fancy index of the 16-byte headers pays it one page after the other; here one loop,
 * with the GIL released so the daemon's two pick threads pay it side by side, reads every
 * header (the next ones prefetched), checks it against the index, keeps the records inside
 * the window and touches every further page they span, so that the filter and the socket write
 * after it (one thread) find them warm.
 */
#include <stdint.h>
#include <string.h>

#define PAGE_BYTES 4096
#define PREFETCH_AHEAD 16

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* For the n records at off[i] (ascending, or any order) whose index says caplen cap[i], in the
 * mapped file base[0, size): keep those whose header's timestamp (ns; µs when !nano) lies in
 * [start_ns, end_ns). Writes each kept record's position i to keep[], its timestamp to ts[] and
 * its header's wire length to wirelen[] (arrays of n entries). Returns how many were kept, or
 * -1 - i for the first record i that lies outside the file or whose header's caplen is not the
 * index's (the index does not describe the file). */
int64_t query_pick(const uint8_t *base, int64_t size, const int64_t *off, const int64_t *cap,
                   int64_t n, int nano, int64_t start_ns, int64_t end_ns, int64_t *keep,
                   int64_t *ts, int64_t *wirelen)
{
    int64_t kept = 0;
    volatile uint8_t sink = 0;
    for (int64_t i = 0; i < n; i++) {
        if (i + PREFETCH_AHEAD < n) {
            int64_t ahead = off[i + PREFETCH_AHEAD];
            if (ahead >= 0 && ahead < size)
                __builtin_prefetch(base + ahead);
        }
        int64_t at = off[i], length = 16 + cap[i];
        if (at < 0 || cap[i] < 0 || at > size - length)
            return -1 - i;
        const uint8_t *h = base + at;
        if ((int64_t)le32(h + 8) != cap[i])
            return -1 - i;
        int64_t t = (int64_t)le32(h) * 1000000000 + (int64_t)le32(h + 4) * (nano ? 1 : 1000);
        if (t < start_ns || t >= end_ns)
            continue;
        /* every further page of the record, now rather than on the writing thread */
        for (int64_t page = (at / PAGE_BYTES + 1) * PAGE_BYTES; page < at + length;
             page += PAGE_BYTES)
            sink ^= base[page];
        keep[kept] = i;
        ts[kept] = t;
        wirelen[kept] = le32(h + 12);
        kept++;
    }
    (void)sink;
    return kept;
}

