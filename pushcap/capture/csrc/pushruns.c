/* A push target's share of a batch, in C: where its files split, and its records written with
 * one writev per run of records that lie back to back (pushcap/push/native_runs.py).
 *
 * The numpy version costs a dozen array operations per batch and target, and needs numpy
 * imported (45 ms of a replay's start); these loops cost a few ns a packet. A selection is the
 * ascending batch indices of the packets a target takes (`idx`), or every packet (idx NULL);
 * positions count in the selection.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/uio.h>

#define RECORD_HEADER 16
#define IOV_CHUNK 1024 /* Linux's IOV_MAX: slices per writev() */

#define AT(idx, p) ((idx) ? (idx)[p] : (p))
/* Whether a selection's position p names a packet of a batch of n: indices are checked, never
 * trusted, before a column is read at them. */
#define BAD_AT(idx, p, n) ((uint64_t)AT(idx, p) >= (uint64_t)(n))
#define OUTSIDE_BUFFER INT64_MIN /* write_records: a record lies outside the batch's buffer */

/* First position p in [pos, end) whose packet (of a batch of n) lies in a later time window
 * than `window` (ts_ns // split_ns > window, floor division), or end; -1 for a bad argument. */
int64_t window_end(const int64_t *ts_ns, int64_t n, const int64_t *idx, int64_t pos,
                   int64_t end, int64_t split_ns, int64_t window)
{
    int64_t limit; /* the first ns of window + 1: compare, never divide, per packet */
    if (split_ns <= 0 || pos < 0)
        return -1;
    if (window == INT64_MAX || __builtin_mul_overflow(window + 1, split_ns, &limit))
        return window < 0 ? pos : end; /* beyond every int64 timestamp, on one side or the other */
    for (; pos < end; pos++) {
        if (BAD_AT(idx, pos, n))
            return -1;
        if (ts_ns[AT(idx, pos)] >= limit)
            break;
    }
    return pos;
}

/* Largest p in [pos, end] such that the records (header included) of positions [pos, p) of a
 * batch of n add up to at most `budget` bytes; -1 for a bad argument. */
int64_t bytes_end(const int64_t *caplen, int64_t n, const int64_t *idx, int64_t pos,
                  int64_t end, int64_t budget)
{
    int64_t used = 0;
    if (pos < 0)
        return -1;
    for (; pos < end; pos++) {
        if (BAD_AT(idx, pos, n))
            return -1;
        int64_t size = RECORD_HEADER + caplen[AT(idx, pos)];
        if (used + size > budget)
            break;
        used += size;
    }
    return pos;
}

/* writev() until every slice is written: a short write is continued, EINTR retried. */
static int64_t write_all(int fd, struct iovec *iov, int count)
{
    int64_t done = 0;
    while (count > 0) {
        ssize_t wrote = writev(fd, iov, count);
        if (wrote < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (wrote == 0)
            return -EIO;
        done += wrote;
        while (count > 0 && (size_t)wrote >= iov->iov_len) {
            wrote -= (ssize_t)iov->iov_len;
            iov++;
            count--;
        }
        if (count > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + wrote;
            iov->iov_len -= (size_t)wrote;
        }
    }
    return done;
}

/* Writes the records of positions [pos, end) to fd, in order; records adjacent in `records`
 * go out as one slice. Returns the bytes written, OUTSIDE_BUFFER when a record lies outside
 * records[0, records_len) (checked, never trusted), or -errno from the system call. After an
 * error part of the records may have been written; the caller cuts the file back. */
int64_t write_records(int fd, const uint8_t *records, int64_t records_len,
                      const int64_t *offsets, const int64_t *caplen, int64_t n,
                      const int64_t *idx, int64_t pos, int64_t end)
{
    struct iovec iov[IOV_CHUNK];
    int count = 0;
    int64_t total = 0, run_start = -1, run_end = -1;
    for (; pos <= end; pos++) {
        int64_t start = 0, stop = -1;
        if (pos < end) {
            if (pos < 0 || BAD_AT(idx, pos, n))
                return OUTSIDE_BUFFER;
            int64_t i = AT(idx, pos);
            start = offsets[i];
            if (start < 0 || caplen[i] < 0 || caplen[i] > records_len ||
                start > records_len - RECORD_HEADER - caplen[i])
                return OUTSIDE_BUFFER;
            stop = start + RECORD_HEADER + caplen[i];
            if (start == run_end) { /* continues the run */
                run_end = stop;
                continue;
            }
        }
        if (run_end > run_start) { /* the run before ends here */
            iov[count].iov_base = (void *)(records + run_start);
            iov[count].iov_len = (size_t)(run_end - run_start);
            if (++count == IOV_CHUNK || pos == end) {
                int64_t wrote = write_all(fd, iov, count);
                if (wrote < 0)
                    return wrote;
                total += wrote;
                count = 0;
            }
        }
        run_start = start;
        run_end = stop;
    }
    return total;
}
