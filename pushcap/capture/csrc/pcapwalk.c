/* The classic pcap record walk of pushcap/capture/native_walk.py, in C.
 *
 * A pcap file can only be walked record by record: each header gives the next one's place.
 * In Python that is a bytecode loop per packet; numpy can only do it in lanes with guesses
 * (walk.py). This loop costs a few nanoseconds a record. The headers of a big-endian file are
 * rewritten in place to little-endian in the same pass; the timestamp fraction keeps its unit
 * (µs or ns, as the file has it), so a little-endian file is only read, never written.
 */
#include <stdint.h>

static uint32_t load32(const uint8_t *p, int big_endian)
{
    if (big_endian)
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* How far ahead of the record being read the walk asks for the file's bytes. Each header's
 * place depends on the one before, so without this every step waits a full memory latency for
 * a header that is not in the cache (a mapped file is not: nothing has copied it yet), about
 * 0.09 s per million records measured; with it the lines are on their way 8 KB ahead. */
#define PREFETCH_AHEAD 8192
#define CACHE_LINE 64

static void store32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Walks the whole records of buf[pos, n), the record at pos being number `count`, until
 * max_records in all. For each: its offset, timestamp in ns (a fraction of a second or more
 * carries into the seconds), caplen and wirelen. Headers are rewritten to little-endian, field
 * for field, only when the file is big-endian (buf is then written; otherwise only read).
 * Returns the number of records so far; *end is the offset just past the last one. The walk
 * stops before a record cut by n (a later call with more bytes resumes there) and before one
 * whose caplen exceeds max_caplen (corrupt: the caller reads that header and says so). */
int64_t pcap_walk(uint8_t *buf, int64_t n, int64_t pos, int64_t count, int big_endian, int nano,
                  int64_t max_records, int64_t *offsets, int64_t *ts_ns, int64_t *caplen,
                  int64_t *wirelen, int64_t *end, int64_t max_caplen)
{
    int64_t ahead = pos;
    while (count < max_records && pos + 16 <= n) {
        int64_t want = pos + PREFETCH_AHEAD < n ? pos + PREFETCH_AHEAD : n;
        for (; ahead < want; ahead += CACHE_LINE)
            __builtin_prefetch(buf + ahead);
        uint8_t *h = buf + pos;
        uint32_t sec = load32(h, big_endian), frac = load32(h + 4, big_endian);
        uint32_t cap = load32(h + 8, big_endian), wire = load32(h + 12, big_endian);
        int64_t next = pos + 16 + (int64_t)cap;
        if (next > n || (int64_t)cap > max_caplen)
            break;
        int64_t ts = (int64_t)sec * 1000000000 + (nano ? (int64_t)frac : (int64_t)frac * 1000);
        offsets[count] = pos;
        ts_ns[count] = ts;
        caplen[count] = cap;
        wirelen[count] = wire;
        if (big_endian) {
            store32le(h, sec);
            store32le(h + 4, frac);
            store32le(h + 8, cap);
            store32le(h + 12, wire);
        }
        count++;
        pos = next;
    }
    *end = pos;
    return count;
}
