/* A whole mapped pcap file through the archive index's keys, in one C pass
 * (pushcap/archive/native_keys.py, `FilePass`; pushcap/archive/mapped_keys.py).
 *
 * The batch path (the capture reader's batches, then ix_add per batch, then the records joined
 * and sorted in numpy) cost ~0.2 s of CPU per million packets, most of it going back and forth
 * between Python and C and fetching every packet's header twice from memory (once by the
 * record walk, once by the key pass, a batch of 4 MB apart). Here the file is cut into
 * windows of IXF_WINDOW bytes that stay in the cache: each window's records are found by the
 * lanes walk of pcapwalk.c (only the header lines are fetched), their keys taken by ix_add of
 * indexkeys.c while those lines are still in the cache, and each record's offset, captured
 * length and flow kept. `ixf_grouped` then orders the records by flow (a counting sort, file
 * order within a flow), which is what the index stores.
 *
 * The walk is pcap_walk's: it stops before a record cut by the end of the file or longer than
 * `max_caplen`, and returns where it stopped; the caller then takes the batch path, which says
 * what such a file holds exactly as a replay would.
 *
 * A series that indexes its files does not need the walk: `ixf_feed` takes the keys of the
 * records it writes, as it writes them (pushcap/archive/index_feed.py), into the same store.
 * `ixf_delta_encode` writes the grouped record lists as the index's Parquet file holds them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define IXF_WINDOW (1 << 20) /* bytes: a window's header lines stay in a core's cache */
#define IXF_LANES 16         /* pcapwalk.c's LANES, for the scratch's size */
#define IXF_MAX_CAPLEN (256 << 10) /* larger limits (D-Bus...) take the batch path */

int64_t pcap_walk_lanes(const uint8_t *buf, int64_t n, int nano, int64_t max_records,
                        int64_t *offsets, int64_t *ts_ns, int64_t *caplen, int64_t *wirelen,
                        int64_t *end, int64_t max_caplen, int64_t *scratch, int64_t scratch_len);
int64_t ix_add(void *handle, const uint8_t *records, int64_t records_len, const int64_t *offsets,
               const int64_t *ts, const int64_t *caplen, const int64_t *wirelen, int64_t n,
               int linktype, int32_t *flow_out);

struct ixf {
    void *flows; /* the ix_new() context the keys go to (not owned) */
    int64_t *offset; /* every record so far, in file order */
    int32_t *caplen, *flow;
    int64_t count, cap;
    /* one window's walk */
    int64_t *w_offset, *w_ts, *w_caplen, *w_wirelen, *scratch, scratch_len, w_max;
    int32_t *w_flow;
};

void ixf_free(void *handle)
{
    struct ixf *x = handle;
    if (!x)
        return;
    free(x->offset);
    free(x->caplen);
    free(x->flow);
    free(x->w_offset);
    free(x->w_ts);
    free(x->w_caplen);
    free(x->w_wirelen);
    free(x->w_flow);
    free(x->scratch);
    free(x);
}

/* A pass feeding the flows of `flows` (an ix_new() context); NULL without memory. */
void *ixf_new(void *flows)
{
    struct ixf *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->flows = flows;
    x->w_max = IXF_WINDOW / 16 + 1;
    x->scratch_len = 3 * (IXF_WINDOW / 16 + IXF_LANES + 1);
    x->w_offset = malloc(x->w_max * sizeof(int64_t));
    x->w_ts = malloc(x->w_max * sizeof(int64_t));
    x->w_caplen = malloc(x->w_max * sizeof(int64_t));
    x->w_wirelen = malloc(x->w_max * sizeof(int64_t));
    x->w_flow = malloc(x->w_max * sizeof(int32_t));
    x->scratch = malloc(x->scratch_len * sizeof(int64_t));
    if (!x->w_offset || !x->w_ts || !x->w_caplen || !x->w_wirelen || !x->w_flow || !x->scratch) {
        ixf_free(x);
        return NULL;
    }
    return x;
}

static int reserve(struct ixf *x, int64_t more)
{
    if (x->count + more <= x->cap)
        return 0;
    int64_t cap = x->cap ? x->cap : 65536;
    while (cap < x->count + more)
        cap *= 2;
    int64_t *offset = realloc(x->offset, cap * sizeof *offset);
    if (offset)
        x->offset = offset;
    int32_t *caplen = realloc(x->caplen, cap * sizeof *caplen);
    if (caplen)
        x->caplen = caplen;
    int32_t *flow = realloc(x->flow, cap * sizeof *flow);
    if (flow)
        x->flow = flow;
    if (!offset || !caplen || !flow)
        return -1;
    x->cap = cap;
    return 0;
}

/* Walks buf[pos, n) (pos: a record's start in the mapped file buf of n bytes) window by
 * window until past `stop` or until the walk stops; returns where it stopped (n when every
 * record was whole and within max_caplen), -1 without memory, -2 for a bad argument. */
int64_t ixf_walk(void *handle, const uint8_t *buf, int64_t n, int64_t pos, int64_t stop,
                 int nano, int64_t max_caplen, int linktype)
{
    struct ixf *x = handle;
    if (pos < 0 || pos > n || max_caplen > IXF_MAX_CAPLEN)
        return -2;
    while (pos < n && pos < stop) {
        int64_t length = n - pos < IXF_WINDOW ? n - pos : IXF_WINDOW, end = 0;
        int64_t count = pcap_walk_lanes(buf + pos, length, nano, x->w_max, x->w_offset, x->w_ts,
                                        x->w_caplen, x->w_wirelen, &end, max_caplen, x->scratch,
                                        x->scratch_len);
        if (!count)
            break; /* a record cut by the file's end, or longer than max_caplen */
        int64_t code = ix_add(x->flows, buf + pos, end, x->w_offset, x->w_ts, x->w_caplen,
                              x->w_wirelen, count, linktype, x->w_flow);
        if (code)
            return code;
        if (reserve(x, count))
            return -1;
        for (int64_t i = 0; i < count; i++) {
            x->offset[x->count + i] = pos + x->w_offset[i];
            x->caplen[x->count + i] = (int32_t)x->w_caplen[i];
        }
        memcpy(x->flow + x->count, x->w_flow, count * sizeof(int32_t));
        x->count += count;
        pos += end;
    }
    return pos;
}

int64_t ixf_count(void *handle) { return ((struct ixf *)handle)->count; }

/* The records ordered by flow, file order within a flow (a stable counting sort over the
 * `nflows` flows): offsets into offset_out, captured lengths into caplen_out (count items
 * each). 0, -1 without memory, -2 for a flow number out of range. */
int64_t ixf_grouped(void *handle, int64_t nflows, int64_t *offset_out, int32_t *caplen_out)
{
    struct ixf *x = handle;
    int64_t *starts = calloc(nflows > 0 ? nflows : 1, sizeof *starts);
    if (!starts)
        return -1;
    for (int64_t i = 0; i < x->count; i++) {
        if (x->flow[i] < 0 || x->flow[i] >= nflows) {
            free(starts);
            return -2;
        }
        starts[x->flow[i]]++;
    }
    int64_t sum = 0;
    for (int64_t f = 0; f < nflows; f++) {
        int64_t count = starts[f];
        starts[f] = sum;
        sum += count;
    }
    for (int64_t i = 0; i < x->count; i++) {
        int64_t to = starts[x->flow[i]]++;
        offset_out[to] = x->offset[i];
        caplen_out[to] = x->caplen[i];
    }
    free(starts);
    return 0;
}

/* ---- Parquet's DELTA_BINARY_PACKED, for the index's record lists ----------------------------
 *
 * An index's record offsets ascend within a flow, so their deltas take ~20 bits where PLAIN
 * takes 64; this is the encoding pyarrow gave them (pushcap/archive/parquet_out.py writes the
 * rest of the file). Blocks of 128 values, 4 miniblocks of 32, each miniblock's deltas less the
 * block's smallest, bit-packed LSB first at the miniblock's width (parquet-format's
 * Encodings.md). */
#define DELTA_BLOCK 128
#define DELTA_MINIBLOCKS 4
#define DELTA_MINIBLOCK (DELTA_BLOCK / DELTA_MINIBLOCKS)

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v > 0x7F) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static uint8_t *put_zigzag(uint8_t *p, int64_t v)
{
    return put_varint(p, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

/* The bound ixf_delta_encode's output stays within, for n values. */
int64_t ixf_delta_bound(int64_t n) { return 32 + n * 8 + (n / DELTA_BLOCK + 1) * 16; }

/* values[0, n) DELTA_BINARY_PACKED into out (ixf_delta_bound(n) bytes); the bytes written. */
int64_t ixf_delta_encode(const int64_t *values, int64_t n, uint8_t *out)
{
    uint8_t *p = out;
    p = put_varint(p, DELTA_BLOCK);
    p = put_varint(p, DELTA_MINIBLOCKS);
    p = put_varint(p, (uint64_t)n);
    p = put_zigzag(p, n ? values[0] : 0);
    for (int64_t base = 1; base < n; base += DELTA_BLOCK) {
        int64_t m = n - base < DELTA_BLOCK ? n - base : DELTA_BLOCK;
        uint64_t delta[DELTA_BLOCK];
        int64_t min = INT64_MAX;
        for (int64_t i = 0; i < m; i++) {
            int64_t d = (int64_t)((uint64_t)values[base + i] - (uint64_t)values[base + i - 1]);
            delta[i] = (uint64_t)d;
            if (d < min)
                min = d;
        }
        for (int64_t i = 0; i < m; i++)
            delta[i] -= (uint64_t)min;
        p = put_zigzag(p, min);
        uint8_t *widths = p;
        p += DELTA_MINIBLOCKS;
        for (int mb = 0; mb < DELTA_MINIBLOCKS; mb++) {
            int64_t from = mb * DELTA_MINIBLOCK;
            if (from >= m) {
                widths[mb] = 0; /* not needed: its width is there, its bytes are not */
                continue;
            }
            uint64_t all = 0;
            for (int64_t i = from; i < from + DELTA_MINIBLOCK && i < m; i++)
                all |= delta[i];
            int width = all ? 64 - __builtin_clzll(all) : 0;
            widths[mb] = (uint8_t)width;
            if (!width)
                continue;
            /* 32 values of `width` bits: 4 * width bytes, the unused values as zeros */
            unsigned __int128 bits = 0;
            int held = 0;
            uint8_t *q = p;
            for (int64_t i = from; i < from + DELTA_MINIBLOCK; i++) {
                bits |= (unsigned __int128)(i < m ? delta[i] : 0) << held;
                for (held += width; held >= 8; held -= 8) {
                    *q++ = (uint8_t)bits;
                    bits >>= 8;
                }
            }
            p += 4 * width;
        }
    }
    return p - out;
}

/* ---- Keys as a series writes its file ----------------------------------------------------------
 *
 * Positions [start, end) of a batch's selection (batch indices idx[start, end), or start..end
 * without idx) were just written back to back at file_pos of the file being indexed: their keys
 * are taken now, while the writer's copy has their headers in the cache, and their records
 * kept as ixf_walk keeps them. Returns the file position past them, -1 without memory, -2 for
 * an index or a record outside the batch. */
int64_t ixf_feed(void *handle, const uint8_t *records, int64_t records_len,
                 const int64_t *offsets, const int64_t *ts, const int64_t *caplen,
                 const int64_t *wirelen, int64_t batch_n, const int64_t *idx, int64_t start,
                 int64_t end, int64_t file_pos, int linktype)
{
    struct ixf *x = handle;
    if (start < 0 || end > (idx ? INT64_MAX : batch_n) || start > end)
        return -2;
    for (int64_t from = start; from < end; from += x->w_max) {
        int64_t m = end - from < x->w_max ? end - from : x->w_max;
        const int64_t *o = offsets + from, *t = ts + from, *c = caplen + from;
        const int64_t *w = wirelen + from;
        if (idx) {
            for (int64_t k = 0; k < m; k++) {
                int64_t i = idx[from + k];
                if (i < 0 || i >= batch_n)
                    return -2;
                x->w_offset[k] = offsets[i];
                x->w_ts[k] = ts[i];
                x->w_caplen[k] = caplen[i];
                x->w_wirelen[k] = wirelen[i];
            }
            o = x->w_offset, t = x->w_ts, c = x->w_caplen, w = x->w_wirelen;
        }
        int64_t code = ix_add(x->flows, records, records_len, o, t, c, w, m, linktype, x->w_flow);
        if (code)
            return code;
        if (reserve(x, m))
            return -1;
        for (int64_t k = 0; k < m; k++) {
            x->offset[x->count + k] = file_pos;
            x->caplen[x->count + k] = (int32_t)c[k];
            file_pos += 16 + c[k];
        }
        memcpy(x->flow + x->count, x->w_flow, m * sizeof(int32_t));
        x->count += m;
    }
    return file_pos;
}
