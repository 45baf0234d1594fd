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

/* ---- A mapped little-endian region, walked in lanes ------------------------------------------
 *
 * In a mapped file nothing has brought the bytes into the cache, and each header's place depends
 * on the one before: walked from one end, every step waits a full memory latency (~90 ns).
 * pcap_walk above prefetches every line ahead, which streams the whole file through the cache
 * (~40 ms per 566 MB here, the memory bandwidth). Here the region is cut into LANES stretches, a
 * likely record header is guessed near the start of each (`guess`), and all lanes step forward
 * together, so their loads are in flight at once and only the header lines are fetched (the
 * writer's copy fetches the packets it writes, in order). A lane is trusted only when the chain
 * of trusted lanes from the region's start lands exactly on its start (`pcap_walk_lanes`); a
 * wrong guess only costs speed: its stretch is walked one record at a time instead. The result
 * is therefore exactly pcap_walk's.
 */
#define LANES 16
#define MIN_STRETCH 32768 /* below this a lane's guess costs more than it saves */

struct lane {
    int64_t start, stop, pos, first, count; /* first: its records' index in the scratch */
    int stuck;                                /* stopped at a cut or oversized record */
};

/* Whether a plausible record header starts at p: the same second as the region's first record
 * give or take ~18 hours, a fraction below one second, a caplen within libpcap's limit and no
 * larger than the wire length. A guess only; checked by the chain of lanes. */
static int plausible(const uint8_t *buf, int64_t n, int64_t p, uint32_t sec0, int nano,
                     int64_t max_caplen)
{
    if (p + 16 > n)
        return 0;
    uint32_t sec = load32(buf + p, 0), frac = load32(buf + p + 4, 0);
    uint32_t cap = load32(buf + p + 8, 0), wire = load32(buf + p + 12, 0);
    return sec - sec0 + 65536u < 131072u && frac < (nano ? 1000000000u : 1000000u)
           && (int64_t)cap <= max_caplen && cap <= wire;
}

/* The first offset in [from, to) where a header and the one it points to both look right. */
static int64_t guess(const uint8_t *buf, int64_t n, int64_t from, int64_t to, uint32_t sec0,
                     int nano, int64_t max_caplen)
{
    for (int64_t p = from; p < to; p++) {
        if (!plausible(buf, n, p, sec0, nano, max_caplen))
            continue;
        int64_t next = p + 16 + (int64_t)load32(buf + p + 8, 0);
        if (next + 16 > n || plausible(buf, n, next, sec0, nano, max_caplen))
            return p;
    }
    return -1;
}

/* Stores the record at pos (its fields read from its header) as number `count`. */
static void store(const uint8_t *buf, int64_t pos, int64_t count, int nano, int64_t *offsets,
                  int64_t *ts_ns, int64_t *caplen, int64_t *wirelen)
{
    const uint8_t *h = buf + pos;
    uint32_t sec = load32(h, 0), frac = load32(h + 4, 0);
    offsets[count] = pos;
    ts_ns[count] = (int64_t)sec * 1000000000 + (nano ? (int64_t)frac : (int64_t)frac * 1000);
    caplen[count] = load32(h + 8, 0);
    wirelen[count] = load32(h + 12, 0);
}

/* pcap_walk for a whole little-endian region in memory, from its start: the same records, the
 * same *end, the region only read. `scratch` holds 3 * (n / 16 + LANES + 1) int64 (every lane's
 * records before they are known to be right); with less, or a small region, pcap_walk serves. */
int64_t pcap_walk_lanes(const uint8_t *buf, int64_t n, int nano, int64_t max_records,
                        int64_t *offsets, int64_t *ts_ns, int64_t *caplen, int64_t *wirelen,
                        int64_t *end, int64_t max_caplen, int64_t *scratch, int64_t scratch_len)
{
    int lanes = n / MIN_STRETCH < LANES ? (int)(n / MIN_STRETCH) : LANES;
    if (lanes < 2 || n < 16 || scratch_len < 3 * (n / 16 + LANES + 1))
        return pcap_walk((uint8_t *)buf, n, 0, 0, 0, nano, max_records, offsets, ts_ns, caplen,
                         wirelen, end, max_caplen); /* little-endian: never writes */
    struct lane lane[LANES];
    uint32_t sec0 = load32(buf, 0);
    int count_lanes = 0;
    for (int l = 0; l < lanes; l++) {
        int64_t from = n / lanes * l, to = l + 1 < lanes ? n / lanes * (l + 1) : n;
        int64_t start = l == 0 ? 0 : guess(buf, n, from, to, sec0, nano, max_caplen);
        if (start < 0)
            continue; /* no guess in this stretch: the lane before walks through it */
        lane[count_lanes++] = (struct lane){.start = start, .pos = start};
    }
    int64_t base = 0;
    for (int l = 0; l < count_lanes; l++) {
        lane[l].stop = l + 1 < count_lanes ? lane[l + 1].start : n;
        lane[l].first = base;
        base += (lane[l].stop - lane[l].start) / 16 + 1; /* records are 16 bytes or more */
    }
    /* All lanes one step at a time: independent loads, in flight together. */
    for (int moving = 1; moving;) {
        moving = 0;
        for (int l = 0; l < count_lanes; l++) {
            struct lane *ln = &lane[l];
            if (ln->stuck || ln->pos >= ln->stop)
                continue;
            int64_t cap = ln->pos + 16 <= n ? (int64_t)load32(buf + ln->pos + 8, 0) : 0;
            if (ln->pos + 16 > n || cap > max_caplen || ln->pos + 16 + cap > n) {
                ln->stuck = 1;
                continue;
            }
            /* The header's line is here now: keep its fields, so the stitch below need not
             * come back to it (a second miss per record, measured 7 ms per million). */
            int64_t *slot = scratch + 3 * (ln->first + ln->count++);
            uint32_t sec = load32(buf + ln->pos, 0), frac = load32(buf + ln->pos + 4, 0);
            slot[0] = ln->pos;
            slot[1] = (int64_t)sec * 1000000000 + (nano ? (int64_t)frac : (int64_t)frac * 1000);
            slot[2] = (int64_t)((uint64_t)load32(buf + ln->pos + 12, 0) << 32 | (uint64_t)cap);
            ln->pos += 16 + cap;
            moving = 1;
        }
    }
    /* Stitch, from the region's start (a record start): the records of each lane the chain
     * lands on exactly, one record at a time up to the next lane's start elsewhere. */
    int64_t count = 0, pos = 0;
    int next = 0; /* the first lane not yet passed */
    while (count < max_records) {
        while (next < count_lanes && lane[next].start < pos)
            next++; /* a lane the chain has passed: its guess was wrong */
        if (next < count_lanes && lane[next].start == pos) {
            const struct lane *ln = &lane[next++];
            int64_t i = 0;
            for (; i < ln->count && count < max_records; i++, count++) {
                const int64_t *slot = scratch + 3 * (ln->first + i);
                offsets[count] = slot[0];
                ts_ns[count] = slot[1];
                caplen[count] = slot[2] & 0xFFFFFFFF;
                wirelen[count] = (uint64_t)slot[2] >> 32;
            }
            pos = i < ln->count ? scratch[3 * (ln->first + i)] : ln->pos;
            if (ln->stuck && i == ln->count)
                break; /* before a cut or oversized record, where pcap_walk stops too */
            continue;
        }
        int64_t stop = next < count_lanes ? lane[next].start : n;
        int blocked = 0;
        while (count < max_records && pos < stop) {
            int64_t cap = pos + 16 <= n ? (int64_t)load32(buf + pos + 8, 0) : 0;
            if (pos + 16 > n || cap > max_caplen || pos + 16 + cap > n) {
                blocked = 1;
                break;
            }
            store(buf, pos, count++, nano, offsets, ts_ns, caplen, wirelen);
            pos += 16 + cap;
        }
        if (blocked || pos >= n)
            break;
    }
    *end = pos;
    return count;
}
