/* FMADIO's Decap for a push target's filter: where each packet's innermost frame starts
 * (pushcap/capture/decap.py says why and what the filter then sees).
 *
 * A packet's inner frame is always written as an Ethernet frame: 12 MAC bytes (the outer
 * frame's, or the innermost Ethernet header's for a tunnel that carries Ethernet), an
 * ethertype, then the packet's bytes from `payload` on. The layers taken off, innermost last,
 * at most DECAP_MAX_STEPS of them:
 *   802.1Q / 802.1ad / 0x9100 tags (each one a step; QinQ is two),
 *   MPLS (up to DECAP_MAX_LABELS labels; after the bottom of the stack a first nibble 4 is
 *     IPv4, 6 IPv6, 0 a pseudowire control word before an Ethernet frame, anything else an
 *     Ethernet frame without one, as Wireshark guesses),
 *   GRE version 0 without routing (IPv4, IPv6, MPLS and VLAN payloads, transparent Ethernet
 *     bridging 0x6558, ERSPAN type I/II 0x88BE, type III 0x22EB with Ethernet frames),
 *   UDP to port 4789 (VXLAN, I flag set) and 6081 (Geneve with Ethernet, IPv4 or IPv6),
 *   IP in IP (protocols 4 and 41),
 * the last three in IPv4 (not a fragment) or IPv6 (no extension header). A layer whose header
 * is not all captured, or anything else, ends the walk: what was taken off so far stays off.
 * decap_numpy.py computes the same, step for step (tests hold the two equal).
 */
#include <stdint.h>
#include <string.h>

#define RECORD_HEADER 16
#define ETH_HEADER 14
#define DECAP_MAX_STEPS 8
#define DECAP_MAX_LABELS 8
/* A batch's bytes are not in the cache (the walk that found its records is megabytes ahead)
 * and this is the first pass to read them: the lines of the packets this far ahead are asked
 * for, two a packet (the ethertype and the IP header behind it straddle lines at most). */
#define SCAN_AHEAD 256
#define INFO_BITS 24 /* mac and payload are below 2^18 (libpcap's largest snaplen) */

static inline uint32_t be16(const uint8_t *p)
{
    return (uint32_t)p[0] << 8 | p[1];
}

static inline int outside(int64_t records_len, int64_t off, int64_t cap)
{
    uint64_t room = (uint64_t)records_len - RECORD_HEADER;
    return ((uint64_t)off > room) | ((uint64_t)cap > room - (uint64_t)off);
}

/* The inner Ethernet frame at q: 1 when it is all there (its MACs and type). */
static inline int ethernet_at(const uint8_t *d, int64_t len, int64_t q, int64_t *mac,
                              uint32_t *type, int64_t *payload)
{
    if (q + ETH_HEADER > len)
        return 0;
    *mac = q;
    *type = be16(d + q + 12);
    *payload = q + ETH_HEADER;
    return 1;
}

/* One step of GRE at t (the IP payload). */
static int gre_step(const uint8_t *d, int64_t len, int64_t t, int64_t *mac, uint32_t *type,
                    int64_t *payload)
{
    if (t + 4 > len)
        return 0;
    uint32_t flags = be16(d + t), ptype = be16(d + t + 2);
    if ((flags & 7) != 0 || (flags & 0x4000))
        return 0; /* version 1 (PPTP) or a routing header */
    int64_t q = t + 4 + ((flags & 0x8000) ? 4 : 0) + ((flags & 0x2000) ? 4 : 0)
                + ((flags & 0x1000) ? 4 : 0);
    if (q > len)
        return 0;
    switch (ptype) {
    case 0x6558:
        return ethernet_at(d, len, q, mac, type, payload);
    case 0x88BE: /* ERSPAN II has a sequence number and an 8-byte header; type I neither */
        return ethernet_at(d, len, q + ((flags & 0x1000) ? 8 : 0), mac, type, payload);
    case 0x22EB: /* ERSPAN III: 12 bytes, 8 more with the O flag; frame type 0 = Ethernet */
        if (q + 12 > len || ((d[q + 10] >> 2) & 0x1F) != 0)
            return 0;
        return ethernet_at(d, len, q + 12 + ((d[q + 11] & 1) ? 8 : 0), mac, type, payload);
    case 0x0800: case 0x86DD: case 0x8847: case 0x8848: case 0x8100: case 0x88A8: case 0x9100:
        *type = ptype;
        *payload = q;
        return 1;
    default:
        return 0;
    }
}

/* One step of UDP at t: VXLAN or Geneve. */
static int udp_step(const uint8_t *d, int64_t len, int64_t t, int64_t *mac, uint32_t *type,
                    int64_t *payload)
{
    if (t + 8 > len)
        return 0;
    uint32_t port = be16(d + t + 2);
    int64_t q = t + 8;
    if (port == 4789) {
        if (q + 8 > len || !(d[q] & 0x08))
            return 0;
        return ethernet_at(d, len, q + 8, mac, type, payload);
    }
    if (port == 6081) {
        if (q + 8 > len || (d[q] >> 6) != 0)
            return 0;
        uint32_t ptype = be16(d + q + 2);
        int64_t inner = q + 8 + (int64_t)(d[q] & 0x3F) * 4;
        if (ptype == 0x6558)
            return ethernet_at(d, len, inner, mac, type, payload);
        if ((ptype == 0x0800 || ptype == 0x86DD) && inner <= len) {
            *type = ptype;
            *payload = inner;
            return 1;
        }
    }
    return 0;
}

/* One step of the IP packet at p carrying protocol `proto` from t on. */
static int ip_payload_step(const uint8_t *d, int64_t len, uint32_t proto, int64_t t,
                           int64_t *mac, uint32_t *type, int64_t *payload)
{
    switch (proto) {
    case 47:
        return gre_step(d, len, t, mac, type, payload);
    case 17:
        return udp_step(d, len, t, mac, type, payload);
    case 4: case 41:
        *type = proto == 4 ? 0x0800 : 0x86DD;
        *payload = t;
        return 1;
    default:
        return 0;
    }
}

/* One step of MPLS at p. */
static int mpls_step(const uint8_t *d, int64_t len, int64_t p, int64_t *mac, uint32_t *type,
                     int64_t *payload)
{
    int64_t q = -1;
    for (int k = 0; k < DECAP_MAX_LABELS; k++) {
        int64_t at = p + 4 * k;
        if (at + 4 > len)
            return 0;
        if (d[at + 2] & 1) {
            q = at + 4;
            break;
        }
    }
    if (q < 0 || q + 1 > len)
        return 0;
    switch (d[q] >> 4) {
    case 4:
        *type = 0x0800;
        *payload = q;
        return 1;
    case 6:
        *type = 0x86DD;
        *payload = q;
        return 1;
    case 0:
        return ethernet_at(d, len, q + 4, mac, type, payload);
    default:
        return ethernet_at(d, len, q, mac, type, payload);
    }
}

/* One layer off (mac, type, payload); 0 when there is none to take off. */
static int step(const uint8_t *d, int64_t len, int64_t *mac, uint32_t *type, int64_t *payload)
{
    int64_t p = *payload;
    switch (*type) {
    case 0x8100: case 0x88A8: case 0x9100:
        if (p + 4 > len)
            return 0;
        *type = be16(d + p + 2);
        *payload = p + 4;
        return 1;
    case 0x8847: case 0x8848:
        return mpls_step(d, len, p, mac, type, payload);
    case 0x0800: {
        if (p + 20 > len || (d[p] >> 4) != 4)
            return 0;
        int64_t ihl = (int64_t)(d[p] & 0xF) * 4;
        if (ihl < 20 || p + ihl > len || (be16(d + p + 6) & 0x3FFF) != 0)
            return 0; /* options cut off, or a fragment: no whole header behind it */
        return ip_payload_step(d, len, d[p + 9], p + ihl, mac, type, payload);
    }
    case 0x86DD:
        if (p + 40 > len || (d[p] >> 4) != 6)
            return 0;
        return ip_payload_step(d, len, d[p + 6], p + 40, mac, type, payload);
    default:
        return 0;
    }
}

/* How much of an inner frame of `full` bytes is copied when the filter reads at most `limit`
 * bytes of a packet (-1: no bound known): the whole Ethernet header at least. */
static inline int64_t kept(int64_t full, int64_t limit)
{
    if (limit < 0 || limit >= full)
        return full;
    return limit < ETH_HEADER ? ETH_HEADER : limit;
}

/* For each packet of a batch, where its inner frame starts. The packets that have one (m of
 * them) are listed in order: idx[j] the batch index, info[j] = mac | payload << 24 | type << 48.
 * *need is the size of a records buffer for their inner frames (16-byte header each), each cut
 * to `limit` bytes (bpf_program.load_bound; -1 for whole frames). Returns m, or -1 if a packet
 * lies outside records (checked before it is read). */
int64_t decap_scan(const uint8_t *records, int64_t records_len, const int64_t *offsets,
                   const int64_t *caplen, int64_t n, int64_t limit, int64_t *idx, uint64_t *info,
                   int64_t *need)
{
    int64_t m = 0, bytes = 0;
    if (n > 0 && records_len < RECORD_HEADER)
        return -1;
    for (int64_t i = 0; i < n; i++) {
        if (i + SCAN_AHEAD < n) { /* an address only: a prefetch never faults */
            const uint8_t *ahead = records + offsets[i + SCAN_AHEAD] + RECORD_HEADER;
            __builtin_prefetch(ahead + 12, 0, 2);
            __builtin_prefetch(ahead + 40, 0, 2);
        }
        if (outside(records_len, offsets[i], caplen[i]))
            return -1;
        const uint8_t *d = records + offsets[i] + RECORD_HEADER;
        int64_t len = caplen[i];
        if (len < ETH_HEADER)
            continue;
        int64_t mac = 0, payload = ETH_HEADER;
        uint32_t type = be16(d + 12);
        int steps = 0;
        while (steps < DECAP_MAX_STEPS && step(d, len, &mac, &type, &payload))
            steps++;
        if (steps == 0)
            continue;
        idx[m] = i;
        info[m] = (uint64_t)mac | (uint64_t)payload << INFO_BITS
                  | (uint64_t)type << (2 * INFO_BITS);
        m++;
        bytes += RECORD_HEADER + kept(ETH_HEADER + len - payload, limit);
    }
    *need = bytes;
    return m;
}

/* The inner frames of decap_scan's m packets as records in `out` (out_len bytes, at least
 * *need): their offsets, captured lengths (cut to `limit` as decap_scan counted them) and wire
 * lengths (the wire length less what was taken off). Returns the bytes written, or -1 if a
 * packet lies outside records or `out` is too small. */
int64_t decap_build(const uint8_t *records, int64_t records_len, const int64_t *offsets,
                    const int64_t *caplen, const int64_t *wirelen, int64_t n, int64_t limit,
                    const int64_t *idx, const uint64_t *info, int64_t m, uint8_t *out,
                    int64_t out_len, int64_t *out_offsets, int64_t *out_caplen,
                    int64_t *out_wirelen)
{
    const uint64_t mask = ((uint64_t)1 << INFO_BITS) - 1;
    int64_t at = 0;
    for (int64_t j = 0; j < m; j++) {
        int64_t i = idx[j];
        if (i < 0 || i >= n || outside(records_len, offsets[i], caplen[i]))
            return -1;
        const uint8_t *d = records + offsets[i] + RECORD_HEADER;
        int64_t mac = (int64_t)(info[j] & mask);
        int64_t payload = (int64_t)(info[j] >> INFO_BITS & mask);
        uint32_t type = (uint32_t)(info[j] >> (2 * INFO_BITS) & 0xFFFF);
        if (mac + 12 > caplen[i] || payload > caplen[i])
            return -1;
        int64_t full = ETH_HEADER + caplen[i] - payload, frame = kept(full, limit);
        int64_t body = frame - ETH_HEADER, size = RECORD_HEADER + frame;
        if (at + size > out_len)
            return -1;
        uint8_t *o = out + at;
        memset(o, 0, RECORD_HEADER);
        memcpy(o + RECORD_HEADER, d + mac, 12);
        o[RECORD_HEADER + 12] = (uint8_t)(type >> 8);
        o[RECORD_HEADER + 13] = (uint8_t)type;
        memcpy(o + RECORD_HEADER + ETH_HEADER, d + payload, (size_t)body);
        out_offsets[j] = at;
        out_caplen[j] = frame;
        int64_t wire = wirelen[i] - (payload - ETH_HEADER);
        out_wirelen[j] = wire > full ? wire : full;
        at += size;
    }
    return at;
}

/* The selection of a batch where m packets were decapsulated: `sel` (ns ascending batch
 * indices, from the packets as captured) without those m (idx, ascending), merged with
 * idx[inner[k]] (ni ascending positions among them, from their inner frames). Returns the
 * count written to out (room for ns + ni), or -1 for an inner position outside 0..m-1. */
int64_t decap_merge(const int64_t *sel, int64_t ns, const int64_t *idx, int64_t m,
                    const int64_t *inner, int64_t ni, int64_t *out)
{
    int64_t a = 0, e = 0, k = 0, count = 0;
    while (a < ns || k < ni) {
        int64_t next_inner = INT64_MAX;
        if (k < ni) {
            if (inner[k] < 0 || inner[k] >= m)
                return -1;
            next_inner = idx[inner[k]];
        }
        if (a < ns && sel[a] < next_inner) {
            while (e < m && idx[e] < sel[a])
                e++;
            if (!(e < m && idx[e] == sel[a]))
                out[count++] = sel[a];
            a++;
        } else {
            if (a < ns && sel[a] == next_inner)
                a++; /* the same packet: its inner frame decides, not the outer */
            out[count++] = next_inner;
            k++;
        }
    }
    return count;
}
