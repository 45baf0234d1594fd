/* Flow statistics of a batch in one pass: each packet's 5-tuple and tcpdump's `length`,
 * counted straight into the interval's flow table (pushcap/flows/native_table.py says why).
 *
 * The decoding is pushcap/flows/decode.py's, field for field (its docstring lists the link
 * types, tags, IPv6 extension headers and the `length` rules; tests hold the two equal on
 * real captures): a packet the numpy path gives family 0 is "not IP" here too.
 *
 * The table's arrays are the caller's (numpy arrays it grows, struct flow_table); this code
 * never allocates. Rows are kept in first-seen order, so the interval's records come out in
 * the order the numpy table gives. Lookups: open addressing over `slots` (row + 1; 0 empty),
 * at most half full, each candidate checked against the full 40-byte key, so a hash collision
 * never merges two flows. A flow that arrives when `max_flows` rows are taken is turned away:
 * its packets and bytes go to the overflow counters, and a bounded set of turned-away keys
 * counts distinct flows (emptied when full, so a flow may be counted again, as the numpy table
 * counts once per merge).
 */
#include <stdint.h>
#include <string.h>

#define RECORD_HEADER 16
#define KEY_BYTES 40 /* family, proto, sport LE, dport LE, 2 zero bytes, src 16, dst 16 */
#define ROW_BYTES 64 /* a flow's row, one cache line: key, count, length, hash */
#define SRC_AT 8
#define DST_AT 24
#define PREFETCH_AHEAD 8 /* packets: a batch's bytes are not in the cache */
#define CHUNK 32         /* packets decoded before their lookups (see struct decoded) */
#define MAX_VLAN_TAGS 2
#define IPV6_MAX_EXT_HEADERS 4

enum { FLOWS_DONE = 0, FLOWS_NEW_INTERVAL = 1, FLOWS_GROW = 2, FLOWS_NEED_OVERFLOW_SET = 3 };

/* A flow: what a lookup reads and a count writes share one cache line (a lookup in a table
 * of thousands of flows misses the cache: once for the slot, once for the row). */
struct flow_row {
    uint8_t key[KEY_BYTES];
    int64_t count, length;
    uint64_t hash;
};

_Static_assert(sizeof(struct flow_row) == ROW_BYTES, "a row is one cache line");

struct flow_table { /* mirrored by native_table._Table */
    struct flow_row *rows_at; /* capacity rows, first seen first */
    int32_t *slots;           /* slot_mask + 1 entries */
    int64_t rows, capacity, slot_mask, max_flows;
    struct flow_row *ov_rows_at; /* flows turned away: keys only */
    int32_t *ov_slots;
    int64_t ov_rows, ov_capacity, ov_slot_mask;
    int64_t ov_flows, ov_packets, ov_bytes; /* cumulative, like FlowTable.overflow */
    int64_t packets;                        /* IP packets counted this interval */
};

struct flow_call { /* mirrored by native_table._Call */
    int64_t interval_ns;
    int64_t base; /* in/out: the open interval (open = 1), else the first that may open */
    int64_t open; /* in/out */
    int64_t stop; /* out: why the call returned (FLOWS_*) */
    int64_t packets; /* out: IP packets the filter took */
    int64_t non_ip;  /* out: packets the filter took that are not IP */
};

static inline uint32_t be16(const uint8_t *p)
{
    return (uint32_t)p[0] << 8 | p[1];
}

static inline int outside(int64_t records_len, int64_t off, int64_t cap)
{
    uint64_t room = (uint64_t)records_len - RECORD_HEADER;
    return records_len < RECORD_HEADER || off < 0 || cap < 0 || (uint64_t)off > room ||
           (uint64_t)cap > room - (uint64_t)off;
}

/* decode.py's _link: the ethertype and where the network header starts; 0 if none. */
static int link_layer(const uint8_t *p, int64_t cap, int linktype, uint32_t *et, int64_t *l3)
{
    switch (linktype) {
    case 1: /* Ethernet */
        if (cap < 14)
            return 0;
        *et = be16(p + 12), *l3 = 14;
        return 1;
    case 113: /* Linux SLL */
        if (cap < 16)
            return 0;
        *et = be16(p + 14), *l3 = 16;
        return 1;
    case 276: /* Linux SLL2 */
        if (cap < 20)
            return 0;
        *et = be16(p), *l3 = 20;
        return 1;
    case 101: case 228: case 229: case 12: case 14: { /* raw IP */
        if (cap < 1)
            return 0;
        uint32_t version = p[0] >> 4;
        *et = version == 4 ? 0x0800 : version == 6 ? 0x86DD : 0, *l3 = 0;
        return 1;
    }
    case 0: case 108: { /* BSD loopback: the family in either end byte */
        if (cap < 4)
            return 0;
        uint32_t family = p[0] ? p[0] : p[3];
        *et = family == 2 ? 0x0800
              : (family == 10 || family == 24 || family == 28 || family == 30) ? 0x86DD : 0;
        *l3 = 4;
        return 1;
    }
    default:
        return 0;
    }
}

/* decode.py's _transport: ports into the key, tcpdump's `length` returned. */
static int64_t transport(const uint8_t *p, int64_t cap, int64_t l4, int64_t payload,
                         uint32_t proto, int non_first, uint8_t *key)
{
    int tcp = proto == 6 && !non_first, udp = proto == 17 && !non_first;
    if (!tcp && !udp)
        return payload;
    if (cap >= l4 + 4) {
        uint16_t sport = (uint16_t)be16(p + l4), dport = (uint16_t)be16(p + l4 + 2);
        memcpy(key + 2, &sport, 2); /* little-endian hosts, as the numpy keys */
        memcpy(key + 4, &dport, 2);
    }
    int64_t length;
    if (tcp) {
        int64_t doff = cap >= l4 + 13 ? (int64_t)(p[l4 + 12] >> 4) * 4 : 20;
        length = payload - doff;
    } else {
        int64_t ulen = cap >= l4 + 6 ? (int64_t)be16(p + l4 + 4) : payload;
        length = (ulen < payload ? ulen : payload) - 8;
    }
    return length > 0 ? length : 0;
}

/* One packet's key (zeroed by the caller) and length: its family, 0 for "not IP". */
static int decode(const uint8_t *p, int64_t cap, int64_t wire, int linktype, uint8_t *key,
                  int64_t *length)
{
    uint32_t et;
    int64_t l3;
    if (!link_layer(p, cap, linktype, &et, &l3))
        return 0;
    for (int k = 0; k < MAX_VLAN_TAGS && (et == 0x8100 || et == 0x88A8 || et == 0x9100); k++) {
        if (cap < l3 + 4)
            return 0;
        et = be16(p + l3 + 2), l3 += 4;
    }
    if (et == 0x0800) {
        if (cap < l3 + 20)
            return 0;
        uint32_t b0 = p[l3];
        int64_t ihl = (int64_t)(b0 & 0x0F) * 4;
        if ((b0 >> 4) != 4 || ihl < 20)
            return 0;
        int64_t total = be16(p + l3 + 2);
        if (total == 0) /* TSO: the length field left 0 */
            total = wire - l3;
        int non_first = (be16(p + l3 + 6) & 0x1FFF) != 0;
        uint32_t proto = p[l3 + 9];
        key[0] = 4, key[1] = (uint8_t)proto;
        memcpy(key + SRC_AT, p + l3 + 12, 4);
        memcpy(key + DST_AT, p + l3 + 16, 4);
        int64_t payload = total - ihl;
        *length = transport(p, cap, l3 + ihl, payload > 0 ? payload : 0, proto, non_first, key);
        return 4;
    }
    if (et == 0x86DD) {
        if (cap < l3 + 40 || (p[l3] >> 4) != 6)
            return 0;
        int64_t payload = be16(p + l3 + 4);
        if (payload == 0) { /* jumbogram */
            payload = wire - l3 - 40;
            payload = payload > 0 ? payload : 0;
        }
        memcpy(key + SRC_AT, p + l3 + 8, 16);
        memcpy(key + DST_AT, p + l3 + 24, 16);
        uint32_t nh = p[l3 + 6];
        int64_t l4 = l3 + 40;
        int non_first = 0;
        for (int k = 0; k < IPV6_MAX_EXT_HEADERS; k++) {
            int generic = nh == 0 || nh == 43 || nh == 60, frag = nh == 44, ah = nh == 51;
            if (!(generic || frag || ah) || cap < l4 + 8 || non_first)
                break;
            int64_t hdr_len = p[l4 + 1];
            int64_t size = generic ? (hdr_len + 1) * 8 : ah ? (hdr_len + 2) * 4 : 8;
            non_first = frag && (be16(p + l4 + 2) & 0xFFF8) != 0;
            nh = p[l4];
            l4 += size;
            payload = payload > size ? payload - size : 0;
        }
        key[0] = 6, key[1] = (uint8_t)nh;
        *length = transport(p, cap, l4, payload, nh, non_first, key);
        return 6;
    }
    return 0;
}

/* A packet decoded, waiting for its count (a chunk is decoded first, so the table's lines it
 * needs are asked for ahead of the lookups: the table is larger than what the packets'
 * bytes leave of the cache). */
struct decoded {
    uint8_t key[KEY_BYTES];
    int64_t length, interval;
    uint64_t hash;
    int family;
};

static inline uint64_t key_hash(const uint8_t *key)
{
    /* five independent products, then one mix: no chain of dependent multiplies */
    uint64_t w[5];
    memcpy(w, key, sizeof w);
    uint64_t a = w[0] * 0x9E3779B97F4A7C15ULL ^ w[1] * 0xBF58476D1CE4E5B9ULL;
    uint64_t b = w[2] * 0x94D049BB133111EBULL ^ w[3] * 0xD6E8FEB86659FD93ULL;
    uint64_t c = w[4] * 0xC2B2AE3D27D4EB4FULL;
    uint64_t h = a ^ (b << 23 | b >> 41) ^ (c << 47 | c >> 17);
    h ^= h >> 32;
    h *= 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 29);
}

/* The row holding `key`, or -1 with *slot the empty slot where it would go. */
static inline int64_t find(const struct flow_row *rows, const int32_t *slots, int64_t mask,
                           const uint8_t *key, uint64_t h, int64_t *slot)
{
    for (int64_t s = (int64_t)(h & (uint64_t)mask);; s = (s + 1) & mask) {
        int64_t row = (int64_t)slots[s] - 1;
        if (row < 0) {
            *slot = s;
            return -1;
        }
        if (rows[row].hash == h && memcmp(rows[row].key, key, KEY_BYTES) == 0)
            return row;
    }
}

static inline int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* A flow the full table turns away: its packet and bytes, and whether it is new. */
static void turn_away(struct flow_table *t, const uint8_t *key, uint64_t h, int64_t length)
{
    t->ov_packets++;
    t->ov_bytes += length;
    int64_t slot = 0;
    if (find(t->ov_rows_at, t->ov_slots, t->ov_slot_mask, key, h, &slot) >= 0)
        return;
    t->ov_flows++;
    if (t->ov_rows == t->ov_capacity) { /* bounded: start the set again */
        memset(t->ov_slots, 0, (size_t)(t->ov_slot_mask + 1) * sizeof *t->ov_slots);
        t->ov_rows = 0;
        find(t->ov_rows_at, t->ov_slots, t->ov_slot_mask, key, h, &slot);
    }
    struct flow_row *r = t->ov_rows_at + t->ov_rows;
    memcpy(r->key, key, KEY_BYTES);
    r->hash = h;
    t->ov_slots[slot] = (int32_t)(++t->ov_rows);
}

/* Count the packets sel[pos..nsel) of a batch (every packet pos..n when sel is NULL) into the
 * table, in order, for the open interval. Returns the position reached: nsel (n) when done;
 * less when call->stop says why it stopped before that packet: FLOWS_NEW_INTERVAL (the caller
 * sends the interval and calls again from there), FLOWS_GROW (the table needs more rows),
 * FLOWS_NEED_OVERFLOW_SET (the first flow turned away: the caller provides the set).
 * An interval is a packet's ts_ns // interval_ns, never below call->base (target.py's rule:
 * intervals already sent never reopen). -1: a packet lies outside the records buffer,
 * or a selected index outside the batch. */
int64_t flows_count(const uint8_t *records, int64_t records_len, const int64_t *offsets,
                    const int64_t *ts_ns, const int64_t *caplen, const int64_t *wirelen,
                    int64_t n, int linktype, const int64_t *sel, int64_t nsel, int64_t pos,
                    struct flow_call *call, struct flow_table *t)
{
    int64_t end = sel ? nsel : n;
    call->stop = FLOWS_DONE;
    call->packets = call->non_ip = 0;
    struct decoded chunk[CHUNK];
    for (int64_t first = pos; first < end; first += CHUNK) {
        int64_t m = end - first < CHUNK ? end - first : CHUNK;
        /* 1: decode the chunk, asking for each key's slot */
        for (int64_t k = 0; k < m; k++) {
            int64_t i = first + k;
            if (i + PREFETCH_AHEAD < end) { /* an address only: a prefetch never faults */
                int64_t ahead = sel ? sel[i + PREFETCH_AHEAD] : i + PREFETCH_AHEAD;
                if (ahead >= 0 && ahead < n) {
                    const uint8_t *a = records + (uintptr_t)offsets[ahead] + RECORD_HEADER;
                    __builtin_prefetch(a, 0, 0);
                    __builtin_prefetch(a + 63, 0, 0);
                }
            }
            int64_t j = sel ? sel[i] : i;
            if (j < 0 || j >= n || outside(records_len, offsets[j], caplen[j]))
                return -1;
            struct decoded *d = chunk + k;
            memset(d->key, 0, KEY_BYTES);
            d->length = 0;
            d->family = decode(records + offsets[j] + RECORD_HEADER, caplen[j], wirelen[j],
                               linktype, d->key, &d->length);
            if (!d->family)
                continue;
            d->interval = floor_div(ts_ns[j], call->interval_ns);
            d->hash = key_hash(d->key);
            __builtin_prefetch(t->slots + (d->hash & (uint64_t)t->slot_mask), 0, 1);
        }
        /* 2: ask for the rows the slots name (a hint: step 3 looks again) */
        for (int64_t k = 0; k < m; k++) {
            if (chunk[k].family) {
                int64_t row = (int64_t)t->slots[chunk[k].hash & (uint64_t)t->slot_mask] - 1;
                if (row >= 0)
                    __builtin_prefetch(t->rows_at + row, 1, 1);
            }
        }
        /* 3: count, in order */
        for (int64_t k = 0; k < m; k++) {
            const struct decoded *d = chunk + k;
            if (!d->family) {
                call->non_ip++;
                continue;
            }
            int64_t interval = d->interval < call->base ? call->base : d->interval;
            if (!call->open) {
                call->open = 1;
                call->base = interval;
            } else if (interval != call->base) {
                call->stop = FLOWS_NEW_INTERVAL;
                return first + k;
            }
            int64_t slot = 0;
            int64_t row = find(t->rows_at, t->slots, t->slot_mask, d->key, d->hash, &slot);
            if (row < 0) {
                if (t->rows >= t->max_flows) {
                    if (t->ov_capacity == 0) {
                        call->stop = FLOWS_NEED_OVERFLOW_SET;
                        return first + k;
                    }
                    turn_away(t, d->key, d->hash, d->length);
                    t->packets++;
                    call->packets++;
                    continue;
                }
                if (t->rows == t->capacity) {
                    call->stop = FLOWS_GROW;
                    return first + k;
                }
                row = t->rows++;
                struct flow_row *r = t->rows_at + row;
                memcpy(r->key, d->key, KEY_BYTES);
                r->hash = d->hash;
                r->count = r->length = 0;
                t->slots[slot] = (int32_t)(row + 1);
            }
            t->rows_at[row].count++;
            t->rows_at[row].length += d->length;
            t->packets++;
            call->packets++;
        }
    }
    return end;
}

/* Rebuild the slots (emptied by the caller, slot_mask + 1 of them) for the rows held:
 * after the caller moved the rows into larger arrays. */
void flows_rehash(struct flow_table *t)
{
    for (int64_t row = 0; row < t->rows; row++) {
        int64_t slot = 0;
        find(t->rows_at, t->slots, t->slot_mask, t->rows_at[row].key, t->rows_at[row].hash,
             &slot);
        t->slots[slot] = (int32_t)(row + 1);
    }
}
