/*
 * design_models: pushcap's live data path written twice in C, to tell the design's cost from
 * the code's (issue 19; not part of pushcap, and not a goal of the bench). Both capture one
 * interface the way pushcap's default config does and write two files in the current folder,
 * all.pcap (every packet) and tcp.pcap (untagged IPv4/IPv6 TCP, pushcap's `tcp` with Decap
 * false, tested on the headers instead of a BPF program), from two writer threads that take
 * batches of up to 8,192 packets gathered for up to 100 ms with 25 ms naps, as pushcap's lanes do.
 *
 *   design_models copy IFACE [BUFFER_BYTES]   today's design: libpcap's pcap_dispatch, every
 *       packet copied behind its record header into a 256 MiB ring of 16 MiB arenas (as
 *       csrc/livecap.c does); the writers writev runs of contiguous records.
 *   design_models zero IFACE [BUFFER_BYTES]   the zero-copy design: its own TPACKET_V3 ring of
 *       256 MiB of history plus BUFFER_BYTES of room for the kernel; each record header is
 *       written into the frame's room before its packet (a VLAN tag the kernel took off is put
 *       back there, as libpcap does); blocks stay ours as history and go back to the kernel
 *       when older than 256 MiB and both writers are past them; one iovec a packet.
 *
 * Prints "listening on IFACE" once capturing; on SIGTERM or SIGINT it reads what is left and
 * prints "packets=N drops=D" (the kernel's drop count), then "written all=A tcp=T".
 *
 * What building it showed: with blocks held as history, poll() reports the ring readable all
 * the time (it looks at the block before the kernel's, which is ours), so the zero-copy reader
 * must nap instead. And by construction a writer that falls behind keeps its blocks from the
 * kernel, whose room then runs out and capture loses packets for every target, where today's
 * ring only makes that writer miss packets (the ring's rule: a slow reader never stalls capture).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <pcap/pcap.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAXB 8192
#define GATHER_NS 100000000LL
#define NAP_NS 25000000L
static volatile sig_atomic_t stopping;
static void on_signal(int s) { (void)s; stopping = 1; }
static long long now_ns(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000LL + t.tv_nsec; }

/* ---- batches and writers ---- */
struct batch { int n; uint8_t *rec[2 * MAXB]; uint32_t len[2 * MAXB]; };
#define QN 256 /* batches in flight at most: ~2M packets, far more than the ring */
static struct batch *queue[QN]; static long qhead; /* published count */
static long wdone[2];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER, cvdone = PTHREAD_COND_INITIALIZER;
static int finished;
static unsigned long long written[2];

static int is_tcp(const uint8_t *p, uint32_t caplen) {
    if (caplen < 34) return 0;
    uint16_t et = p[12] << 8 | p[13];
    if (et == 0x0800) return p[23] == 6;
    if (et == 0x86dd) return caplen >= 54 && p[20] == 6;
    return 0;
}
static void *writer(void *arg) {
    int w = (int)(long)arg; long seen = 0;
    char path[64]; snprintf(path, sizeof path, "%s.pcap", w ? "tcp" : "all");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    struct { uint32_t m; uint16_t a, b; int32_t z; uint32_t s, sl, lt; } __attribute__((packed)) fh = {0xa1b23c4d, 2, 4, 0, 0, 262144, 1};
    if (write(fd, &fh, 24) != 24) abort();
    struct iovec iov[1024];
    for (;;) {
        pthread_mutex_lock(&mu);
        while (seen == qhead && !finished) pthread_cond_wait(&cv, &mu);
        if (seen == qhead && finished) { pthread_mutex_unlock(&mu); break; }
        struct batch *b = queue[seen % QN];
        pthread_mutex_unlock(&mu);
        int m = 0;
        for (int i = 0; i < b->n; i++) {
            uint8_t *r = b->rec[i]; uint32_t l = b->len[i];
            if (w && !is_tcp(r + 16, l - 16)) continue;
            written[w]++;
            if (m && (uint8_t *)iov[m - 1].iov_base + iov[m - 1].iov_len == r) { iov[m - 1].iov_len += l; continue; }
            iov[m].iov_base = r; iov[m].iov_len = l;
            if (++m == 1024) { if (writev(fd, iov, m) < 0) abort(); m = 0; }
        }
        if (m && writev(fd, iov, m) < 0) abort();
        seen++;
        pthread_mutex_lock(&mu); wdone[w] = seen; pthread_cond_broadcast(&cvdone); pthread_mutex_unlock(&mu);
    }
    close(fd);
    return NULL;
}
static void publish(struct batch *b) {
    pthread_mutex_lock(&mu);
    while (qhead - wdone[0] >= QN - 1 || qhead - wdone[1] >= QN - 1) pthread_cond_wait(&cvdone, &mu);
    queue[qhead % QN] = b; qhead++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}
static long writers_done(void) { pthread_mutex_lock(&mu); long d = wdone[0] < wdone[1] ? wdone[0] : wdone[1]; pthread_mutex_unlock(&mu); return d; }
static struct batch *batches; /* QN batch slots, reused cyclically */

/* ---- copy model ---- */
#define ARENA (16L << 20)
#define RING (256L << 20)
static uint8_t *ring; static long ring_pos;
static struct batch *cur; static long published;
static long arena_batch[RING / ARENA]; /* the last batch with records in each arena */
static unsigned long long arena_waits;
/* An arena is written again only once both writers are past every batch in it (pushcap lets
 * go of an arena only when no batch holds it); the capture waits meanwhile, as a stall the
 * kernel's buffer absorbs (counted: it never happened in the bench's runs). An arena the batch
 * being gathered is in already cannot be waited for: a batch larger than the ring is beyond
 * this model. */
static void enter_arena(long arena) {
    while (arena_batch[arena] >= writers_done() && arena_batch[arena] != published) {
        arena_waits++;
        struct timespec t = {0, 1000000}; nanosleep(&t, NULL);
    }
}
static void copy_cb(u_char *u, const struct pcap_pkthdr *h, const u_char *d) {
    (void)u;
    long need = 16 + h->caplen;
    long in_arena = ring_pos % ARENA;
    if (in_arena + need > ARENA) ring_pos += ARENA - in_arena;
    if (ring_pos + need > RING) ring_pos = 0;
    if (ring_pos % ARENA == 0 || in_arena + need > ARENA) enter_arena(ring_pos / ARENA);
    arena_batch[ring_pos / ARENA] = published;
    uint8_t *r = ring + ring_pos;
    uint32_t hdr[4] = {(uint32_t)h->ts.tv_sec, (uint32_t)h->ts.tv_usec /* ns: nano precision */, h->caplen, h->len};
    memcpy(r, hdr, 16); memcpy(r + 16, d, h->caplen);
    ring_pos += need;
    cur->rec[cur->n] = r; cur->len[cur->n] = need; cur->n++;
}
static int run_copy(const char *ifname, long buf) {
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_create(ifname, err);
    pcap_set_snaplen(p, 262144); pcap_set_promisc(p, 1); pcap_set_timeout(p, 100);
    pcap_set_buffer_size(p, (int)buf);
    pcap_set_tstamp_precision(p, PCAP_TSTAMP_PRECISION_NANO);
    if (pcap_activate(p) < 0) { fprintf(stderr, "activate: %s\n", pcap_geterr(p)); return 1; }
    pcap_setnonblock(p, 1, err);
    ring = mmap(NULL, RING, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ring == MAP_FAILED) { perror("mmap"); return 1; }
    for (long a = 0; a < RING / ARENA; a++) arena_batch[a] = -1;
    madvise(ring, RING, MADV_NOHUGEPAGE); /* as record_arena.fresh_arena */
    fprintf(stderr, "listening on %s\n", ifname);
    unsigned long long total = 0;
    int drain = 0, failed = 0;
    while (!failed) {
        cur = &batches[published % QN]; cur->n = 0;
        long long start = now_ns();
        for (;;) {
            int room = MAXB - cur->n;
            int got = pcap_dispatch(p, room, copy_cb, NULL);
            if (got < 0) { fprintf(stderr, "pcap_dispatch: %s\n", pcap_geterr(p)); failed = 1; break; }
            if (cur->n >= MAXB || now_ns() - start >= GATHER_NS) break;
            if (got == 0) {
                if (stopping) { drain++; if (drain > 8) break; /* 200 ms without a packet: a partial block retires after 100 */ }
                struct timespec t = {0, NAP_NS}; nanosleep(&t, NULL);
            }
        }
        total += cur->n;
        if (cur->n) { publish(cur); published++; }
        if (stopping && drain > 8) break;
    }
    struct pcap_stat st; pcap_stats(p, &st);
    return printf("packets=%llu drops=%u arena_waits=%llu\n", total, st.ps_drop, arena_waits) < 0 || failed;
}

/* ---- zero-copy model ---- */
#define BLOCK (1L << 20)
/* History beyond `history` blocks goes back to the kernel once both writers are past it. */
static void evict(uint8_t *map, int history, int nblocks, const long *block_batch,
                  int *held_first, int *held) {
    long done = writers_done();
    while (*held > history && block_batch[*held_first] < done) {
        struct tpacket_block_desc *bd = (void *)(map + (long)*held_first * BLOCK);
        __atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
        *held_first = (*held_first + 1) % nblocks;
        (*held)--;
    }
}
static int run_zero(const char *ifname, long buf) {
    /* No protocol until bound to the interface: else every interface's packets come in. */
    int fd = socket(AF_PACKET, SOCK_RAW, 0);
    unsigned ifindex = if_nametoindex(ifname);
    if (fd < 0 || ifindex == 0) { perror(ifname); return 1; }
    int v = TPACKET_V3; setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v);
    int history = (int)(RING / BLOCK), nblocks = history + (int)(buf / BLOCK);
    struct tpacket_req3 req = {.tp_block_size = BLOCK, .tp_block_nr = nblocks, .tp_frame_size = 2048,
                               .tp_frame_nr = (BLOCK / 2048) * nblocks, .tp_retire_blk_tov = 100};
    if (setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req)) { perror("rx_ring"); return 1; }
    uint8_t *map = mmap(NULL, BLOCK * nblocks, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED, fd, 0);
    if (map == MAP_FAILED) { perror("mmap"); return 1; }
    struct sockaddr_ll ll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = (int)ifindex};
    if (bind(fd, (struct sockaddr *)&ll, sizeof ll)) { perror("bind"); return 1; }
    struct packet_mreq mr = {.mr_ifindex = ll.sll_ifindex, .mr_type = PACKET_MR_PROMISC};
    setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr);
    fprintf(stderr, "listening on %s\n", ifname);
    int next = 0, held_first = 0, held = 0; /* blocks [held_first, held_first+held) are ours */
    long *block_batch = calloc(nblocks, sizeof(long)); /* the batch number that last used a block */
    if (block_batch == NULL) return 1;
    unsigned long long total = 0; int drain = 0;
    long published_z = 0;
    for (;;) {
        struct batch *b = &batches[published_z % QN]; b->n = 0;
        long long start = now_ns();
        for (;;) {
            evict(map, history, nblocks, block_batch, &held_first, &held);
            struct tpacket_block_desc *bd = (void *)(map + (long)next * BLOCK);
            /* every block ours (the writers are a whole ring behind): nothing new to read */
            if (held == nblocks
                || !(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) {
                if (stopping) { drain++; if (drain > 8) break; }
                if (now_ns() - start >= GATHER_NS && b->n) break;
                /* poll() is no use with held blocks: it reports the ring readable while the block
                 * before the kernel's is ours, i.e. always. Nap as pushcap's gathering does. */
                struct timespec t = {0, NAP_NS}; nanosleep(&t, NULL);
                continue;
            }
            int np = bd->hdr.bh1.num_pkts;
            if (b->n + np > 2 * MAXB) break; /* the batch is full: this block starts the next */
            uint8_t *pk = (uint8_t *)bd + bd->hdr.bh1.offset_to_first_pkt;
            for (int i = 0; i < np; i++) {
                struct tpacket3_hdr *h = (void *)pk;
                uint8_t *mac = pk + h->tp_mac;
                uint32_t cap = h->tp_snaplen, len = h->tp_len;
                if (h->tp_status & TP_STATUS_VLAN_VALID) { /* put the tag back, as libpcap does */
                    memmove(mac - 4, mac, 12);
                    mac -= 4;
                    uint16_t tpid = htons(h->hv1.tp_vlan_tpid ? h->hv1.tp_vlan_tpid : 0x8100), tci = htons(h->hv1.tp_vlan_tci);
                    memcpy(mac + 12, &tpid, 2); memcpy(mac + 14, &tci, 2);
                    cap += 4; len += 4;
                }
                uint32_t hdr[4] = {h->tp_sec, h->tp_nsec, cap, len};
                memcpy(mac - 16, hdr, 16);
                b->rec[b->n] = mac - 16; b->len[b->n] = 16 + cap; b->n++;
                pk += h->tp_next_offset;
            }
            block_batch[next] = published_z;
            held++;
            next = (next + 1) % nblocks;
            if (b->n >= MAXB || now_ns() - start >= GATHER_NS) break;
        }
        total += b->n;
        if (b->n) { publish(b); published_z++; }
        if (stopping && drain > 8) break;
    }
    struct tpacket_stats_v3 st; socklen_t sl = sizeof st;
    getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl);
    return printf("packets=%llu drops=%u\n", total, st.tp_drops) < 0;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4 || (strcmp(argv[1], "copy") && strcmp(argv[1], "zero"))) {
        fprintf(stderr, "usage: %s copy|zero IFACE [BUFFER_BYTES]\n", argv[0]);
        return 2;
    }
    struct sigaction a; memset(&a, 0, sizeof a); a.sa_handler = on_signal;
    sigaction(SIGTERM, &a, NULL); sigaction(SIGINT, &a, NULL);
    batches = calloc(QN, sizeof(struct batch));
    if (batches == NULL) return 1;
    pthread_t t[2];
    for (long w = 0; w < 2; w++) pthread_create(&t[w], NULL, writer, (void *)w);
    long buf = argc > 3 ? atol(argv[3]) : 64L << 20;
    int rc = strcmp(argv[1], "zero") == 0 ? run_zero(argv[2], buf) : run_copy(argv[2], buf);
    fflush(stdout);
    pthread_mutex_lock(&mu); finished = 1; pthread_cond_broadcast(&cv); pthread_mutex_unlock(&mu);
    for (int w = 0; w < 2; w++) pthread_join(t[w], NULL);
    printf("written all=%llu tcp=%llu\n", written[0], written[1]);
    return rc;
}
