/* Batch records from what libpcap handed over, in C (pushcap/capture/native_records.py).
 *
 * pcapy-ng's next_batch() gives the packets back to back in one buffer plus a table of
 * (sec, usec, offset, caplen) rows. A batch needs them as pcap records: a 16-byte header before
 * every packet. Building that with numpy and the kernel (write every header and packet to a
 * memfd, read it all back) costs two copies and two system calls a batch; here it is one pass
 * and one copy, while the packets are still in the CPU's cache.
 */
#include <stdint.h>
#include <string.h>

/* Appends the records of `n` packets to out[pos, out_len): for each row of `meta` (four native
 * uint32: sec, usec, offset into `data`, caplen) a little-endian header with the fraction in ns
 * (a usec of a second or more carries into the seconds, as the numpy path does) and caplen as
 * wire length (a live capture keeps whole packets), then the packet. Fills
 * offsets/ts_ns/caplen (n entries each). Returns the position after the last record, or
 * -1 - i when row i does not fit: its packet lies outside `data` or its record outside `out`
 * (nothing is read or written outside either buffer). */
int64_t pcap_records_from_meta(const uint8_t *data, int64_t data_len, const uint8_t *meta,
                               int64_t n, uint8_t *out, int64_t out_len, int64_t pos,
                               int64_t *offsets, int64_t *ts_ns, int64_t *caplen)
{
    for (int64_t i = 0; i < n; i++) {
        uint32_t row[4];
        memcpy(row, meta + 16 * i, sizeof row);
        uint32_t sec = row[0], usec = row[1], off = row[2], cap = row[3];
        if ((int64_t)off + cap > data_len || pos < 0 || pos + 16 + (int64_t)cap > out_len)
            return -1 - i;
        int64_t ts = (int64_t)sec * 1000000000 + (int64_t)usec * 1000;
        uint32_t whole = (uint32_t)(ts / 1000000000), frac = (uint32_t)(ts % 1000000000);
        uint8_t *h = out + pos;
        for (int b = 0; b < 4; b++) {
            h[b] = (uint8_t)(whole >> (8 * b));
            h[4 + b] = (uint8_t)(frac >> (8 * b));
            h[8 + b] = (uint8_t)(cap >> (8 * b));
            h[12 + b] = (uint8_t)(cap >> (8 * b));
        }
        memcpy(h + 16, data + off, cap);
        offsets[i] = pos;
        ts_ns[i] = ts;
        caplen[i] = cap;
        pos += 16 + (int64_t)cap;
    }
    return pos;
}
