/* The keys of an archive index, in C: per packet its VLAN tags, IP addresses, protocol and
 * ports, grouped into the flows of one file (pushcap/archive/native_keys.py).
 *
 * `pushcap query` narrows a search with these keys before it runs the real BPF over what is
 * left, so a key must never miss a packet that libpcap's filter would accept: where a packet's
 * headers are not what libpcap's fixed offsets see (a truncated or malformed IP header, an IPv6
 * fragment header, a third VLAN tag, a link type decoded loosely), its key is marked not
 * exact and the query always reads it. The rules are those of pushcap/archive/keys_numpy.py,
 * the numpy version of this file (tests hold the two to each other).
 *
 * One index context holds the flows of one file: an open-addressing hash table of flow keys,
 * flows numbered in the order they first appear. ix_add assigns each packet of a batch its flow;
 * ix_order sorts the file's records by flow (a counting sort: each flow's records stay in file
 * order) so the index stores every flow's records together.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RECORD_HEADER 16
#define NO_VLAN 0xFFFF
#define PREFETCH_AHEAD 8 /* packets */

struct ix_key { /* 48 bytes, the row layout keys_numpy.KEY_DTYPE describes */
    uint8_t family, proto, exact, ntags;
    uint16_t vlan0, vlan1, ethertype, sport, dport, pad;
    uint8_t src[16], dst[16];
};

struct ix_flow {
    struct ix_key key;
    int64_t first_ts, last_ts, packets, bytes;
};

struct ix_ctx {
    uint32_t *slots; /* flow number + 1, 0 = empty */
    uint64_t mask;
    struct ix_flow *flows;
    int64_t nflows, cap;
};

static inline uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static void ipv4(const uint8_t *p, int64_t caplen, int64_t l3, struct ix_key *k)
{
    if (caplen < l3 + 20) { /* libpcap may still read the fields it needs: read it always */
        k->exact = 0;
        return;
    }
    const uint8_t *ip = p + l3;
    int ihl = (ip[0] & 15) * 4;
    k->family = 4;
    k->proto = ip[9];
    memcpy(k->src, ip + 12, 4);
    memcpy(k->dst, ip + 16, 4);
    if ((ip[0] >> 4) != 4 || ihl < 20)
        k->exact = 0;
    if ((k->proto == 6 || k->proto == 17 || k->proto == 132) && (be16(ip + 6) & 0x1FFF) == 0) {
        int64_t l4 = l3 + ihl;
        if (caplen >= l4 + 4) {
            k->sport = be16(p + l4);
            k->dport = be16(p + l4 + 2);
        } else {
            k->exact = 0;
        }
    }
}

static void ipv6(const uint8_t *p, int64_t caplen, int64_t l3, struct ix_key *k)
{
    if (caplen < l3 + 40) {
        k->exact = 0;
        return;
    }
    const uint8_t *ip = p + l3;
    k->family = 6;
    k->proto = ip[6]; /* the fixed header's next header: what `ip6 proto` and `port` test */
    memcpy(k->src, ip + 8, 16);
    memcpy(k->dst, ip + 24, 16);
    if ((ip[0] >> 4) != 6 || k->proto == 44) /* `tcp` also looks past a fragment header */
        k->exact = 0;
    if (k->proto == 6 || k->proto == 17 || k->proto == 132) {
        if (caplen >= l3 + 44) {
            k->sport = be16(ip + 40);
            k->dport = be16(ip + 42);
        } else {
            k->exact = 0;
        }
    }
}

/* ARP and RARP: `host A` also tests their sender and target protocol addresses, at libpcap's
 * fixed offsets (14 and 24 into the message, whatever its hardware and protocol types say). */
static void arp(const uint8_t *p, int64_t caplen, int64_t l3, struct ix_key *k)
{
    if (caplen < l3 + 28) {
        k->exact = 0;
        return;
    }
    memcpy(k->src, p + l3 + 14, 4);
    memcpy(k->dst, p + l3 + 24, 4);
}

static int is_tpid(uint16_t t) { return t == 0x8100 || t == 0x88A8 || t == 0x9100; }

/* The key of one packet (`p`, `caplen` captured bytes) of link type `linktype`. */
static void decode(const uint8_t *p, int64_t caplen, int linktype, struct ix_key *k)
{
    uint16_t et;
    int64_t l3;
    memset(k, 0, sizeof *k);
    k->vlan0 = k->vlan1 = NO_VLAN;
    k->exact = 1;
    switch (linktype) {
    case 1: /* Ethernet, up to two 802.1Q/802.1ad tags */
        if (caplen < 14) {
            k->exact = 0;
            return;
        }
        et = be16(p + 12);
        l3 = 14;
        while (is_tpid(et)) {
            if (k->ntags == 2 || caplen < l3 + 4) {
                k->exact = 0;
                k->ethertype = et;
                return;
            }
            uint16_t id = be16(p + l3) & 0x0FFF;
            if (k->ntags == 0)
                k->vlan0 = id;
            else
                k->vlan1 = id;
            k->ntags++;
            et = be16(p + l3 + 2);
            l3 += 4;
        }
        if (et == 0x9200 || et == 0x9300) /* old QinQ TPIDs: not ours to judge */
            k->exact = 0;
        break;
    case 113: /* Linux cooked v1 */
        if (caplen < 16) {
            k->exact = 0;
            return;
        }
        et = be16(p + 14);
        l3 = 16;
        break;
    case 276: /* Linux cooked v2 */
        if (caplen < 20) {
            k->exact = 0;
            return;
        }
        et = be16(p);
        l3 = 20;
        break;
    case 101: case 12: case 14: case 228: case 229: /* raw IP */
        if (caplen < 1) {
            k->exact = 0;
            return;
        }
        l3 = 0;
        if (linktype == 228)
            et = 0x0800;
        else if (linktype == 229)
            et = 0x86DD;
        else
            et = (p[0] >> 4) == 4 ? 0x0800 : (p[0] >> 4) == 6 ? 0x86DD : 0;
        break;
    case 0: case 108: { /* BSD loopback: decoded for the flow rows, never trusted */
        k->exact = 0;
        if (caplen < 4)
            return;
        uint8_t family = p[0] ? p[0] : p[3];
        et = family == 2 ? 0x0800
           : (family == 10 || family == 24 || family == 28 || family == 30) ? 0x86DD : 0;
        l3 = 4;
        break;
    }
    default:
        k->exact = 0;
        return;
    }
    k->ethertype = et;
    if (linktype != 1 && is_tpid(et))
        k->exact = 0;
    if (et == 0x0800)
        ipv4(p, caplen, l3, k);
    else if (et == 0x86DD)
        ipv6(p, caplen, l3, k);
    else if (et == 0x0806 || et == 0x8035)
        arp(p, caplen, l3, k);
}

static uint64_t hash_key(const struct ix_key *k)
{
    uint64_t w[6];
    memcpy(w, k, sizeof w);
    uint64_t a = (w[0] ^ w[3]) * 0x9E3779B97F4A7C15ULL, b = (w[1] ^ w[4]) * 0xC2B2AE3D27D4EB4FULL;
    uint64_t c = (w[2] ^ w[5]) * 0x165667B19E3779F9ULL;
    uint64_t h = a ^ (b >> 7) ^ (b << 57) ^ (c >> 13) ^ (c << 51);
    h ^= h >> 32; /* the table takes the low bits: fold the high ones in */
    h *= 0xD6E8FEB86659FD93ULL;
    return h ^ (h >> 32);
}

void *ix_new(void) { return calloc(1, sizeof(struct ix_ctx)); }

void ix_free(void *handle)
{
    struct ix_ctx *c = handle;
    if (!c)
        return;
    free(c->slots);
    free(c->flows);
    free(c);
}

static int grow_slots(struct ix_ctx *c)
{
    uint64_t size = c->mask ? (c->mask + 1) * 2 : 1024;
    uint32_t *slots = calloc(size, sizeof *slots);
    if (!slots)
        return -1;
    for (int64_t f = 0; f < c->nflows; f++) {
        uint64_t s = hash_key(&c->flows[f].key) & (size - 1);
        while (slots[s])
            s = (s + 1) & (size - 1);
        slots[s] = (uint32_t)(f + 1);
    }
    free(c->slots);
    c->slots = slots;
    c->mask = size - 1;
    return 0;
}

/* The flow number of key `k` (whose hash_key is `hash`), a new one if unseen; -1 without
 * memory. */
static int64_t flow_of(struct ix_ctx *c, const struct ix_key *k, uint64_t hash)
{
    if ((uint64_t)(c->nflows + 1) * 2 > c->mask + 1 && grow_slots(c))
        return -1;
    uint64_t s = hash & c->mask;
    while (c->slots[s]) {
        struct ix_flow *f = &c->flows[c->slots[s] - 1];
        if (!memcmp(&f->key, k, sizeof *k))
            return c->slots[s] - 1;
        s = (s + 1) & c->mask;
    }
    if (c->nflows == c->cap) {
        int64_t cap = c->cap ? c->cap * 2 : 1024;
        struct ix_flow *flows = realloc(c->flows, cap * sizeof *flows);
        if (!flows)
            return -1;
        c->flows = flows;
        c->cap = cap;
    }
    struct ix_flow *f = &c->flows[c->nflows];
    f->key = *k;
    f->first_ts = INT64_MAX;
    f->last_ts = INT64_MIN;
    f->packets = f->bytes = 0;
    c->slots[s] = (uint32_t)(c->nflows + 1);
    return c->nflows++;
}

/* Packets are keyed IX_BLOCK at a time, in three steps, so that the cache misses of a block
 * overlap instead of following each other: every key and its hash (the packets' header lines
 * were asked for PREFETCH_AHEAD packets before), then the hash slots are asked for, then the
 * flows they name, then each packet finds its flow. A file's flows (80 bytes each, thousands)
 * do not stay in the cache while its packets stream through it: looked up one packet at a
 * time, that lookup was half of the key pass (~30 ns a packet, measured with perf). */
#define IX_BLOCK 16

/* Add n packets of a batch: packet i's record starts at records[offsets[i]]; flow_out[i] gets
 * its flow number. 0, -1 without memory, -2 for a packet outside the buffer. */
int64_t ix_add(void *handle, const uint8_t *records, int64_t records_len, const int64_t *offsets,
               const int64_t *ts, const int64_t *caplen, const int64_t *wirelen, int64_t n,
               int linktype, int32_t *flow_out)
{
    struct ix_ctx *c = handle;
    struct ix_key k[IX_BLOCK];
    uint64_t hash[IX_BLOCK];
    if (!c->mask && grow_slots(c))
        return -1;
    for (int64_t base = 0; base < n; base += IX_BLOCK) {
        int64_t m = n - base < IX_BLOCK ? n - base : IX_BLOCK;
        for (int64_t j = 0; j < m; j++) {
            int64_t i = base + j;
            if (offsets[i] < 0 || caplen[i] < 0 || offsets[i] > records_len - RECORD_HEADER
                || caplen[i] > records_len - RECORD_HEADER - offsets[i])
                return -2;
            if (i + PREFETCH_AHEAD < n && offsets[i + PREFETCH_AHEAD] >= 0
                && offsets[i + PREFETCH_AHEAD] < records_len - 64) {
                /* a batch's packets are far apart in memory: ask for the headers ahead, or
                 * every packet waits for its own cache miss (~300 ns a packet instead of ~30) */
                __builtin_prefetch(records + offsets[i + PREFETCH_AHEAD] + RECORD_HEADER);
                __builtin_prefetch(records + offsets[i + PREFETCH_AHEAD] + RECORD_HEADER + 63);
            }
            decode(records + offsets[i] + RECORD_HEADER, caplen[i], linktype, &k[j]);
            hash[j] = hash_key(&k[j]);
            __builtin_prefetch(&c->slots[hash[j] & c->mask]);
        }
        for (int64_t j = 0; j < m; j++) {
            uint32_t slot = c->slots[hash[j] & c->mask];
            if (slot) {
                __builtin_prefetch(&c->flows[slot - 1]);
                __builtin_prefetch((const char *)&c->flows[slot - 1] + 64);
            }
        }
        for (int64_t j = 0; j < m; j++) {
            int64_t i = base + j, f = flow_of(c, &k[j], hash[j]);
            if (f < 0)
                return -1;
            struct ix_flow *flow = &c->flows[f];
            if (ts[i] < flow->first_ts)
                flow->first_ts = ts[i];
            if (ts[i] > flow->last_ts)
                flow->last_ts = ts[i];
            flow->packets++;
            flow->bytes += wirelen[i];
            flow_out[i] = (int32_t)f;
        }
    }
    return 0;
}

int64_t ix_flows(void *handle) { return ((struct ix_ctx *)handle)->nflows; }

/* The flows, numbered as ix_add numbered them: keys (48 bytes each) and their figures. */
void ix_export(void *handle, uint8_t *keys, int64_t *first_ts, int64_t *last_ts,
               int64_t *packets, int64_t *bytes)
{
    struct ix_ctx *c = handle;
    for (int64_t f = 0; f < c->nflows; f++) {
        memcpy(keys + f * sizeof(struct ix_key), &c->flows[f].key, sizeof(struct ix_key));
        first_ts[f] = c->flows[f].first_ts;
        last_ts[f] = c->flows[f].last_ts;
        packets[f] = c->flows[f].packets;
        bytes[f] = c->flows[f].bytes;
    }
}

/* perm_out: the record numbers 0..n-1 ordered by flow, file order within a flow (a stable
 * counting sort; `starts` is scratch of nflows items). 0, or -2 for a flow number out of range. */
int64_t ix_order(const int32_t *flow, int64_t n, int64_t nflows, int64_t *starts,
                 int64_t *perm_out)
{
    memset(starts, 0, nflows * sizeof *starts);
    for (int64_t i = 0; i < n; i++) {
        if (flow[i] < 0 || flow[i] >= nflows)
            return -2;
        starts[flow[i]]++;
    }
    int64_t sum = 0;
    for (int64_t f = 0; f < nflows; f++) {
        int64_t count = starts[f];
        starts[f] = sum;
        sum += count;
    }
    for (int64_t i = 0; i < n; i++)
        perm_out[starts[flow[i]]++] = i;
    return 0;
}

/* The source (`which` 0) or destination (1) addresses of n exported keys as text, for the
 * index's `src`/`dst` columns, in Parquet's PLAIN layout: for each IP key its text's length
 * (4 bytes, little-endian) then inet_ntop's text, nothing for a key that is not IP (a null);
 * key i's bytes are out[offsets[i], offsets[i + 1]), so a row group's are one slice. `out`
 * holds 50 bytes a key. Per flow, not per packet, but done in Python (pyarrow.compute for IPv4,
 * inet_ntop per IPv6 flow) it took 0.025 s for the 16,000 flows of a million bench packets. */
void ix_address_text(const uint8_t *keys, int64_t n, int which, char *out, int64_t *offsets)
{
    int64_t at = 0;
    offsets[0] = 0;
    for (int64_t i = 0; i < n; i++) {
        const struct ix_key *k = (const struct ix_key *)(keys + i * sizeof(struct ix_key));
        const uint8_t *address = which ? k->dst : k->src;
        if ((k->family == 4 && inet_ntop(AF_INET, address, out + at + 4, INET6_ADDRSTRLEN))
            || (k->family == 6 && inet_ntop(AF_INET6, address, out + at + 4, INET6_ADDRSTRLEN))) {
            uint32_t length = (uint32_t)strlen(out + at + 4);
            memcpy(out + at, &length, 4); /* little-endian, as every platform pushcap runs on */
            at += 4 + length;
        }
        offsets[i + 1] = at;
    }
}
