/* Live capture straight into a batch's records (pushcap/capture/native_live.py).
 *
 * pcapy-ng's next_batch() copies every packet twice (into its own buffer, then into a Python
 * bytes object) before the batch builder copies it a third time to put a record header before
 * it. Here libpcap's pcap_dispatch() hands each packet to a C callback that writes the 16-byte
 * record header and the packet into the batch's buffer: one copy out of the kernel's ring, and
 * the batch's columns (offset, ts_ns, caplen, wirelen) filled on the way. The handle is opened
 * with the libpcap this library is linked with (the system's), so it never meets pcapy-ng's.
 *
 * A packet that does not fit the buffer's rest is kept ("spilled") and goes first into the next
 * read: libpcap has already consumed it from its ring, so it must not be dropped.
 */
#include <errno.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct live_handle {
    pcap_t *pcap;
    uint8_t *spill; /* one packet that did not fit the last read's buffer */
    struct pcap_pkthdr spill_header;
    int has_spill;
    int snaplen;
    /* the read in progress */
    uint8_t *out;
    int64_t out_len, pos, count;
    int64_t *offsets, *ts_ns, *caplen, *wirelen;
    /* live_set_wake: a reader waiting for the batch being gathered (an eventfd, -1: none),
     * and how soon after the last batch a hurried one may end */
    int wake_fd;
    int64_t hurry_gap_us;
    int64_t last_end_us; /* when live_gather last returned packets (monotonic) */
    /* live_set_idle: an eventfd that ends the wait for a batch's first packets (the capture
     * stops; -1: none), and how long a gathering batch naps between reads (0: never) */
    int stop_fd;
    int64_t nap_us;
};

/* The packet into the batch: the destination, a recycled arena the ring let go seconds ago, is
 * never in the cache. x86's `rep movsb` writes whole cache lines without reading them first
 * (fast strings), which memcpy's vector stores do (0.18 against 0.21 µs a 570-byte packet,
 * issue 19); elsewhere memcpy. */
static inline void copy_packet(uint8_t *to, const uint8_t *from, size_t n)
{
#if defined(__x86_64__)
    __asm__ volatile("rep movsb" : "+D"(to), "+S"(from), "+c"(n) : : "memory");
#else
    memcpy(to, from, n);
#endif
}

/* One record at out[pos]: seconds, nanosecond fraction, caplen, wire length (little-endian,
 * as every batch's records), then the packet. 0, or 1 when there is no room for it. */
static int put_record(struct live_handle *h, const struct pcap_pkthdr *header,
                      const uint8_t *data)
{
    uint32_t cap = header->caplen, len = header->len;
    if (h->pos + 16 + (int64_t)cap > h->out_len)
        return 1;
    int64_t ts = (int64_t)header->ts.tv_sec * 1000000000 + (int64_t)header->ts.tv_usec * 1000;
    uint32_t whole = (uint32_t)(ts / 1000000000), frac = (uint32_t)(ts % 1000000000);
    uint8_t *r = h->out + h->pos;
    for (int b = 0; b < 4; b++) {
        r[b] = (uint8_t)(whole >> (8 * b));
        r[4 + b] = (uint8_t)(frac >> (8 * b));
        r[8 + b] = (uint8_t)(cap >> (8 * b));
        r[12 + b] = (uint8_t)(len >> (8 * b));
    }
    copy_packet(r + 16, data, cap);
    h->offsets[h->count] = h->pos;
    h->ts_ns[h->count] = ts;
    h->caplen[h->count] = cap;
    h->wirelen[h->count] = len;
    h->count++;
    h->pos += 16 + (int64_t)cap;
    return 0;
}

static void on_packet(u_char *user, const struct pcap_pkthdr *header, const u_char *data)
{
    struct live_handle *h = (struct live_handle *)user;
    if (put_record(h, header, data) == 0)
        return;
    uint32_t cap = header->caplen > (uint32_t)h->snaplen ? (uint32_t)h->snaplen : header->caplen;
    memcpy(h->spill, data, cap);
    h->spill_header = *header;
    h->spill_header.caplen = cap;
    h->has_spill = 1;
    pcap_breakloop(h->pcap);
}

/* Open and activate `device` (whole packets up to `snaplen`, promiscuous or not, the poll
 * timeout and kernel buffer given), nonblocking. NULL on failure: `*code` is libpcap's
 * activate code (or -1) and `errbuf` (PCAP_ERRBUF_SIZE) says why. */
void *live_open(const char *device, int snaplen, int promisc, int timeout_ms, int buffer_bytes,
                char *errbuf, int *code)
{
    struct live_handle *h = calloc(1, sizeof *h);
    *code = -1;
    if (h == NULL) {
        strncpy(errbuf, "out of memory", PCAP_ERRBUF_SIZE - 1);
        return NULL;
    }
    h->snaplen = snaplen;
    h->wake_fd = -1;
    h->stop_fd = -1;
    h->spill = malloc((size_t)snaplen);
    h->pcap = pcap_create(device, errbuf);
    if (h->spill == NULL || h->pcap == NULL)
        goto fail;
    pcap_set_snaplen(h->pcap, snaplen);
    pcap_set_promisc(h->pcap, promisc);
    pcap_set_timeout(h->pcap, timeout_ms);
    pcap_set_buffer_size(h->pcap, buffer_bytes);
    *code = pcap_activate(h->pcap);
    if (*code < 0) {
        strncpy(errbuf, pcap_geterr(h->pcap), PCAP_ERRBUF_SIZE - 1);
        goto fail;
    }
    if (pcap_setnonblock(h->pcap, 1, errbuf) < 0) {
        *code = -1;
        goto fail;
    }
    return h;
fail:
    if (h->pcap != NULL)
        pcap_close(h->pcap);
    free(h->spill);
    free(h);
    return NULL;
}

int live_fd(void *handle) { return pcap_get_selectable_fd(((struct live_handle *)handle)->pcap); }

int live_datalink(void *handle) { return pcap_datalink(((struct live_handle *)handle)->pcap); }

/* Up to `limit` packets into out[0, out_len) as records, their columns into the four arrays
 * (`limit` entries each). Returns the packets written; `*used` is the bytes of `out` they take.
 * `*status`: 0, or -1 when libpcap failed (`errbuf` says why; the packets before it are
 * returned), or -2 when `out` cannot hold even the spilled packet. */
int64_t live_read(void *handle, uint8_t *out, int64_t out_len, int64_t limit, int64_t *offsets,
                  int64_t *ts_ns, int64_t *caplen, int64_t *wirelen, int64_t *used,
                  int *status, char *errbuf)
{
    struct live_handle *h = (struct live_handle *)handle;
    h->out = out;
    h->out_len = out_len;
    h->pos = 0;
    h->count = 0;
    h->offsets = offsets;
    h->ts_ns = ts_ns;
    h->caplen = caplen;
    h->wirelen = wirelen;
    *status = 0;
    if (h->has_spill && limit > 0) {
        if (put_record(h, &h->spill_header, h->spill) != 0) {
            *status = -2;
            *used = 0;
            return 0;
        }
        h->has_spill = 0;
    }
    while (h->count < limit && !h->has_spill) {
        int64_t want = limit - h->count;
        int got = pcap_dispatch(h->pcap, want > 0x7fffffff ? 0x7fffffff : (int)want, on_packet,
                                (u_char *)h);
        if (got == PCAP_ERROR) {
            strncpy(errbuf, pcap_geterr(h->pcap), PCAP_ERRBUF_SIZE - 1);
            *status = -1;
            break;
        }
        if (got == 0)
            break; /* nothing more ready */
    }
    *used = h->pos;
    return h->count;
}

/* Wait up to `timeout_ms` for the handle to be readable (not watched when `watch_handle` is 0:
 * a gathering batch's nap), or for `wake_fd` (none when negative; poll skips a negative fd):
 * READY_PACKETS when the handle is (or an error is pending: the read that follows returns it),
 * READY_WAKE when `wake_fd` is; 0 when the time ran out or a signal came. */
enum { READY_PACKETS = 1, READY_WAKE = 2 };

static int wait_ready(struct live_handle *h, int watch_handle, int wake_fd, int timeout_ms)
{
    struct pollfd p[2] = {{.fd = watch_handle ? pcap_get_selectable_fd(h->pcap) : -1,
                           .events = POLLIN},
                          {.fd = wake_fd, .events = POLLIN}};
    if (poll(p, 2, timeout_ms) <= 0)
        return 0;
    return (p[0].revents ? READY_PACKETS : 0) | (p[1].revents ? READY_WAKE : 0);
}

/* Set (and clear) the wake-up a reader that waits for packets gives the capture (see
 * live_gather): `fd` an eventfd it writes to, or -1 for none; a hurried batch ends no sooner
 * than `gap_us` after the last batch, so readers that wait again and again cannot make a busy
 * link's batches tiny (each costs a fixed amount of Python). */
void live_set_wake(void *handle, int fd, int64_t gap_us)
{
    struct live_handle *h = (struct live_handle *)handle;
    h->wake_fd = fd;
    h->hurry_gap_us = gap_us;
}

/* Set how the capture waits when nothing happens (see live_gather): `stop_fd` an eventfd that
 * ends the wait for a batch's first packets at once (-1: none), so the caller may wait long on
 * a quiet link, and `nap_us` how long a gathering batch naps between reads (0: never). */
void live_set_idle(void *handle, int stop_fd, int64_t nap_us)
{
    struct live_handle *h = (struct live_handle *)handle;
    h->stop_fd = stop_fd;
    h->nap_us = nap_us;
}

static int64_t monotonic_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* One live batch in one call, the capture thread's whole turn without the GIL (ctypes lets it
 * go): wait up to `poll_ms` for packets (not at all when it is negative: more were known to
 * be waiting; the stop fd of live_set_idle ends the wait), read what is ready, and gather on
 * while the batch has fewer than `enough` packets, for at most `gather_us` after its first
 * packets were read. Every batch costs the capture thread and each target's lane a fixed
 * amount of Python, thread wake-ups and system calls whatever its size: gathering makes a
 * slow link's batches several blocks long instead of one (issue 19), and a fast link's reach
 * `enough` at once. Packets go into out[0, out_len) as records, their columns into `cols` (4
 * rows of `limit`: offset, ts_ns, caplen, wirelen).
 *
 * While it gathers, the batch waits for the kernel's next block (poll on the handle) only
 * while blocks come slower than the nap (live_set_idle); once one came sooner, it naps instead
 * and reads every block retired meanwhile, until a nap brings nothing. With whole-packet
 * snaplen libpcap's blocks are 256 KiB, one every 4.5 ms at 100k packets/s: a wake-up for each
 * (what tcpdump pays, ~120 µs of CPU each on a VM) cost more than the packets' own work. The
 * caller bounds the nap by the kernel buffer, so a nap never lets it fill.
 *
 * A reader that waits for the packets being gathered (a trigger whose window end has passed,
 * or whose packet count is near) writes to the wake fd (live_set_wake): the batch then ends at
 * once, or `hurry_gap_us` after the last one if that is later, instead of at the end of its
 * gathering time (issue 19: T1's live requests waited out the 50 ms). The wake fd is only
 * looked at while a batch gathers, and read (cleared) when it is seen; a wake-up that comes
 * while no packet is there hurries the next batch: its first packets end it.
 *
 * Returns the packets read;
 * `*used` as in live_read. `*status`: 0, or 1 when the batch stopped full (`limit` packets,
 * or `out` could not hold the next packet: more are waiting, read on at once), or -1 / -2 as
 * in live_read. */
int64_t live_gather(void *handle, uint8_t *out, int64_t out_len, int64_t limit, int64_t *cols,
                    int poll_ms, int64_t gather_us, int64_t enough, int64_t *used,
                    int *status, char *errbuf)
{
    struct live_handle *h = (struct live_handle *)handle;
    int64_t count = 0, pos = 0, deadline = 0, waited_us = 0;
    int woken = 1, napped = 0, napping = 0, wake_fd = h->wake_fd;
    if (poll_ms >= 0 && !h->has_spill)
        wait_ready(h, 1, h->stop_fd, poll_ms);
    for (;;) {
        int64_t got = live_read(handle, out + pos, out_len - pos, limit - count, cols + count,
                                cols + limit + count, cols + 2 * limit + count,
                                cols + 3 * limit + count, used, status, errbuf);
        for (int64_t i = count; i < count + got; i++)
            cols[i] += pos; /* offsets into `out`, not into this read's part of it */
        count += got;
        pos += *used;
        if (*status != 0)
            break;
        if (count >= limit || h->has_spill) {
            *status = 1;
            break;
        }
        /* nothing yet (the caller polls again), enough, no gathering, or a wake-up that
         * brought nothing (an odd socket: never spin on it) */
        if (count == 0 || count >= enough || gather_us <= 0 || (woken && got == 0 && deadline))
            break;
        if (napped)
            napping = got > 0; /* traffic slowed to less than a block a nap: poll again */
        else if (woken && deadline && waited_us < h->nap_us)
            napping = 1; /* a block came sooner than a nap: nap from now on */
        int64_t now = monotonic_us();
        if (deadline == 0)
            deadline = now + gather_us;
        if (now >= deadline)
            break;
        int64_t wait_us = deadline - now;
        if (napping && h->nap_us < wait_us)
            wait_us = h->nap_us;
        int ready = wait_ready(h, !napping, wake_fd, (int)((wait_us + 999) / 1000));
        napped = napping;
        waited_us = monotonic_us() - now;
        if (ready & READY_WAKE) {
            uint64_t wakes;
            if (read(wake_fd, &wakes, sizeof wakes) < 0 && errno != EAGAIN)
                break; /* not an eventfd that can be read: end the batch, never spin on it */
            wake_fd = -1; /* hurried: the rest of this batch waits for packets alone */
            int64_t soonest = h->last_end_us + h->hurry_gap_us;
            now = monotonic_us();
            if (soonest < now)
                soonest = now;
            if (soonest < deadline)
                deadline = soonest;
        }
        woken = ready & READY_PACKETS;
    }
    if (count > 0)
        h->last_end_us = monotonic_us();
    *used = pos;
    return count;
}

/* libpcap's counters: received, dropped by the kernel, dropped by the interface. -1 on error. */
int live_stats(void *handle, uint32_t *out, char *errbuf)
{
    struct live_handle *h = (struct live_handle *)handle;
    struct pcap_stat stats;
    if (pcap_stats(h->pcap, &stats) < 0) {
        strncpy(errbuf, pcap_geterr(h->pcap), PCAP_ERRBUF_SIZE - 1);
        return -1;
    }
    out[0] = stats.ps_recv;
    out[1] = stats.ps_drop;
    out[2] = stats.ps_ifdrop;
    return 0;
}

void live_close(void *handle)
{
    struct live_handle *h = (struct live_handle *)handle;
    pcap_close(h->pcap);
    free(h->spill);
    free(h);
}
