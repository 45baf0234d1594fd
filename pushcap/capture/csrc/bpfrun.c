/* Classic BPF over a whole batch, in C (pushcap/capture/native_bpf.py).
 *
 * libpcap's bpf_filter() called once per packet costs ~30 ns a packet for `tcp` over a 1M
 * packet trace: a cache miss on every packet (a batch's bytes are not in the cache) and a
 * mispredicted branch at every protocol test. Here chunks of packets go through the program
 * together (`run_lanes`) while the lines of the packets ahead are on their way: ~12.5 ns. The
 * semantics are libpcap's (1.10 pcap_filter_with_aux_data, no aux data), instruction for
 * instruction; programs with a backward jump (only `protochain` emits one) are left to
 * libpcap's own bpf_filter() (`use_libpcap`).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pcap/bpf.h>

/* libpcap's loop prefetches this many packets ahead: a memory latency at ~15 ns a packet. */
#define PREFETCH_AHEAD 8
#define RECORD_HEADER 16

/* What libpcap's interpreter has a case for (anything else makes it abort()), with the static
 * rules of its validator and of pushcap's check_program: scratch words exist, no constant
 * division by 0 or shift by 32+ (undefined in C), jumps stay inside, the last insn returns.
 * A backward `ja` is accepted only where libpcap runs the program. */
static int valid_program(const struct bpf_insn *prog, int64_t len, int backward_ok)
{
    if (len < 1 || BPF_CLASS(prog[len - 1].code) != BPF_RET)
        return 0;
    for (int64_t pc = 0; pc < len; pc++) {
        const struct bpf_insn *in = &prog[pc];
        uint32_t k = in->k;
        switch (in->code) {
        case BPF_LD | BPF_W | BPF_ABS: case BPF_LD | BPF_H | BPF_ABS:
        case BPF_LD | BPF_B | BPF_ABS: case BPF_LD | BPF_W | BPF_IND:
        case BPF_LD | BPF_H | BPF_IND: case BPF_LD | BPF_B | BPF_IND:
        case BPF_LDX | BPF_MSH | BPF_B:
            /* Linux ancillary loads (SKF_AD_OFF...) mean something else in the kernel. */
            if (k >= 0xFFE00000u && BPF_CLASS(in->code) == BPF_LD)
                return 0;
            break;
        case BPF_LD | BPF_W | BPF_LEN: case BPF_LDX | BPF_W | BPF_LEN:
        case BPF_LD | BPF_IMM: case BPF_LDX | BPF_IMM:
        case BPF_RET | BPF_K: case BPF_RET | BPF_A:
        case BPF_MISC | BPF_TAX: case BPF_MISC | BPF_TXA:
        case BPF_ALU | BPF_NEG:
            break;
        case BPF_LD | BPF_MEM: case BPF_LDX | BPF_MEM: case BPF_ST: case BPF_STX:
            if (k >= BPF_MEMWORDS)
                return 0;
            break;
        case BPF_JMP | BPF_JA:
            if ((int32_t)k < 0) {
                if (!backward_ok || k == 0xFFFFFFFFu || pc + 1 + (int32_t)k < 0)
                    return 0;
            } else if (pc + 1 + (int64_t)k >= len) {
                return 0;
            }
            break;
        default:
            /* Only the op (0xF0) and source (0x08) bits may vary around the class. */
            if ((in->code & ~0xF8) == BPF_JMP && BPF_OP(in->code) >= BPF_JEQ
                && BPF_OP(in->code) <= BPF_JSET) {
                if (pc + 1 + (in->jt > in->jf ? in->jt : in->jf) >= len)
                    return 0;
                break;
            }
            if ((in->code & ~0xF8) == BPF_ALU && BPF_OP(in->code) <= BPF_XOR
                && BPF_OP(in->code) != BPF_NEG) {
                if (BPF_SRC(in->code) == BPF_K
                    && (((BPF_OP(in->code) == BPF_DIV || BPF_OP(in->code) == BPF_MOD) && k == 0)
                        || ((BPF_OP(in->code) == BPF_LSH || BPF_OP(in->code) == BPF_RSH)
                            && k >= 32)))
                    return 0;
                break;
            }
            return 0;
        }
    }
    return 1;
}

/* Network-order loads at any alignment (packets start anywhere in the records buffer). */
static inline uint32_t load(const uint8_t *p, int size)
{
    if (size == 4) {
        uint32_t v;
        memcpy(&v, p, 4);
        return __builtin_bswap32(v);
    }
    return size == 2 ? (uint32_t)p[0] << 8 | p[1] : p[0];
}

static inline uint32_t alu(int op, uint32_t a, uint32_t b)
{
    switch (op) {
    case BPF_ADD: return a + b;
    case BPF_SUB: return a - b;
    case BPF_MUL: return a * b;
    case BPF_DIV: return a / b;
    case BPF_MOD: return a % b;
    case BPF_AND: return a & b;
    case BPF_OR: return a | b;
    case BPF_XOR: return a ^ b;
    case BPF_LSH: return b < 32 ? a << b : 0;  /* libpcap's rule for X >= 32 (C's is UB) */
    case BPF_RSH: return b < 32 ? a >> b : 0;
    default: return 0u - a;  /* BPF_NEG */
    }
}

static inline int test(int op, uint32_t a, uint32_t b)
{
    switch (op) {
    case BPF_JEQ: return a == b;
    case BPF_JGT: return a > b;
    case BPF_JGE: return a >= b;
    default: return (a & b) != 0;  /* BPF_JSET */
    }
}

/* Why lanes: run packet by packet, an interpreter mispredicts at every jump whose outcome
 * depends on the packet (IPv4 or IPv6? TCP or UDP?), ~14 ns a packet for `tcp` on a mixed
 * trace even with every byte in the cache. So a chunk of packets goes through the program
 * together, as the numpy interpreter does: each instruction loops over the packets ("lanes")
 * waiting at it, and a jump appends each lane to its target's list without a branch. The
 * branches left (the loops, a load's bounds check) are predictable. */
#define CHUNK 256  /* lanes are uint8_t indices; the state below stays in L1 */

struct lanes {
    uintptr_t pkt[CHUNK];  /* where each lane's bytes start */
    uint32_t buflen[CHUNK], wire[CHUNK], A[CHUNK], X[CHUNK];
    uint32_t mem[BPF_MEMWORDS][CHUNK];
    uint8_t accepted[CHUNK];
};

/* A packet load for the lanes `in`: into A, or X for MSH. Lanes whose load does not fit in
 * their captured bytes are dropped (libpcap returns 0); the rest go on to `out`. The sum is
 * taken in 64 bits, so X + k past 2^32 cannot wrap back into the packet (libpcap orders its
 * u_int compares for that). Called with constant size/mode, so it is specialized per case. */
static inline __attribute__((always_inline)) int
ld(struct lanes *L, const uint8_t *in, int m, uint8_t *out, int o,
   uint32_t k, int size, int ind, int msh)
{
    for (int j = 0; j < m; j++) {
        unsigned i = in[j];
        uint64_t at = (uint64_t)k + (ind ? L->X[i] : 0);
        int ok = at + size <= L->buflen[i];
        if (ok) {  /* only reads what was captured; almost always taken */
            uint32_t v = load((const uint8_t *)L->pkt[i] + at, size);
            if (msh)
                L->X[i] = (v & 0xF) << 2;
            else
                L->A[i] = v;
        }
        out[o] = (uint8_t)i;  /* written always, kept only if ok: no branch */
        o += ok;
    }
    return o;
}

/* A op= k (or X); a division or modulo by X == 0 drops the lane (libpcap returns 0). */
static inline __attribute__((always_inline)) int
alu_op(struct lanes *L, const uint8_t *in, int m, uint8_t *out, int o,
       uint32_t k, int op, int src_x)
{
    for (int j = 0; j < m; j++) {
        unsigned i = in[j];
        uint32_t b = src_x ? L->X[i] : k;
        int ok = 1;
        if (src_x && (op == BPF_DIV || op == BPF_MOD)) {
            ok = b != 0;
            b += !ok;  /* a dropped lane's A is never read: divide by 1, not trap */
        }
        L->A[i] = alu(op, L->A[i], b);
        out[o] = (uint8_t)i;
        o += ok;
    }
    return o;
}

/* A conditional jump: each lane is appended to the list of the target its test picks. */
static inline __attribute__((always_inline)) void
jump(struct lanes *L, const uint8_t *in, int m, uint8_t (*list)[CHUNK],
     int *cnt, int64_t pc, const struct bpf_insn *insn, int op, int src_x)
{
    int64_t t = pc + 1 + insn->jt, f = pc + 1 + insn->jf;
    if (t == f) {  /* both lists are one: the writes below would count it twice */
        memcpy(list[t] + cnt[t], in, (size_t)m);
        cnt[t] += m;
        return;
    }
    uint8_t *tl = list[t], *fl = list[f];
    int tc = cnt[t], fc = cnt[f];
    for (int j = 0; j < m; j++) {
        unsigned i = in[j];
        int c = test(op, L->A[i], src_x ? L->X[i] : insn->k);
        tl[tc] = (uint8_t)i;
        fl[fc] = (uint8_t)i;
        tc += c;
        fc += !c;
    }
    cnt[t] = tc;
    cnt[f] = fc;
}

#define ALU_CASES(OP) \
    case BPF_ALU | OP | BPF_K: o = alu_op(L, in, m, out, o, k, OP, 0); break; \
    case BPF_ALU | OP | BPF_X: o = alu_op(L, in, m, out, o, k, OP, 1); break;
#define JUMP_CASES(OP) \
    case BPF_JMP | OP | BPF_K: jump(L, in, m, list, cnt, pc, insn, OP, 0); continue; \
    case BPF_JMP | OP | BPF_X: jump(L, in, m, list, cnt, pc, insn, OP, 1); continue;

/* The lanes in list[0] through a valid forward-only program; sets L->accepted for the lanes
 * that reach a nonzero return, and leaves every cnt[] at 0 for the next chunk. Jumps only go
 * forward, so one pass in program order sees every lane that reaches an instruction. */
static void run_lanes(const struct bpf_insn *prog, int64_t len, struct lanes *L,
                      uint8_t (*list)[CHUNK], int *cnt)
{
    for (int64_t pc = 0; pc < len; pc++) {
        int m = cnt[pc];
        if (m == 0)
            continue;
        cnt[pc] = 0;
        const struct bpf_insn *insn = &prog[pc];
        const uint8_t *in = list[pc];
        uint8_t *out = list[pc + 1];  /* list has len + 1 rows */
        int o = cnt[pc + 1];
        uint32_t k = insn->k;
        switch (insn->code) {
        case BPF_RET | BPF_K:  /* `ret #0`: nothing to do, accepted[] starts at 0 */
            for (int j = 0; j < m && k != 0; j++)
                L->accepted[in[j]] = 1;
            continue;
        case BPF_RET | BPF_A:
            for (int j = 0; j < m; j++)
                L->accepted[in[j]] = L->A[in[j]] != 0;
            continue;
        case BPF_LD | BPF_W | BPF_ABS: o = ld(L, in, m, out, o, k, 4, 0, 0); break;
        case BPF_LD | BPF_H | BPF_ABS: o = ld(L, in, m, out, o, k, 2, 0, 0); break;
        case BPF_LD | BPF_B | BPF_ABS: o = ld(L, in, m, out, o, k, 1, 0, 0); break;
        case BPF_LD | BPF_W | BPF_IND: o = ld(L, in, m, out, o, k, 4, 1, 0); break;
        case BPF_LD | BPF_H | BPF_IND: o = ld(L, in, m, out, o, k, 2, 1, 0); break;
        case BPF_LD | BPF_B | BPF_IND: o = ld(L, in, m, out, o, k, 1, 1, 0); break;
        case BPF_LDX | BPF_MSH | BPF_B: o = ld(L, in, m, out, o, k, 1, 0, 1); break;
        ALU_CASES(BPF_ADD) ALU_CASES(BPF_SUB) ALU_CASES(BPF_MUL) ALU_CASES(BPF_DIV)
        ALU_CASES(BPF_MOD) ALU_CASES(BPF_AND) ALU_CASES(BPF_OR) ALU_CASES(BPF_XOR)
        ALU_CASES(BPF_LSH) ALU_CASES(BPF_RSH)
        JUMP_CASES(BPF_JEQ) JUMP_CASES(BPF_JGT) JUMP_CASES(BPF_JGE) JUMP_CASES(BPF_JSET)
        case BPF_JMP | BPF_JA:
            memcpy(list[pc + 1 + k] + cnt[pc + 1 + k], in, (size_t)m);
            cnt[pc + 1 + k] += m;
            continue;
        default:  /* the rest cannot fail: every lane goes on, after one of these */
            for (int j = 0; j < m; j++) {
                unsigned i = in[j];
                switch (insn->code) {  /* loop-invariant: predicted */
                case BPF_ALU | BPF_NEG: L->A[i] = 0u - L->A[i]; break;
                case BPF_LD | BPF_W | BPF_LEN: L->A[i] = L->wire[i]; break;
                case BPF_LDX | BPF_W | BPF_LEN: L->X[i] = L->wire[i]; break;
                case BPF_LD | BPF_IMM: L->A[i] = k; break;
                case BPF_LDX | BPF_IMM: L->X[i] = k; break;
                case BPF_LD | BPF_MEM: L->A[i] = L->mem[k][i]; break;
                case BPF_LDX | BPF_MEM: L->X[i] = L->mem[k][i]; break;
                case BPF_ST: L->mem[k][i] = L->A[i]; break;
                case BPF_STX: L->mem[k][i] = L->X[i]; break;
                case BPF_MISC | BPF_TAX: L->X[i] = L->A[i]; break;
                case BPF_MISC | BPF_TXA: L->A[i] = L->X[i]; break;
                }
                out[o++] = (uint8_t)i;
            }
            break;
        }
        cnt[pc + 1] = o;
    }
}

/* A batch's bytes are not in the cache: the walk that found the records has moved on by
 * megabytes, and one line fetched per packet costs more than the program. So each chunk asks
 * for the lines of the packets two chunks ahead (asking for the next chunk only left the first
 * lanes waiting); two lines a packet, those of the first bytes the program loads (lo..hi),
 * often one and the same. Into L2 (T1): measured faster than into L1, as the lines are read
 * once, a chunk later. */
#define AHEAD (2 * CHUNK)

static inline void ask(uintptr_t at_lo, uintptr_t at_hi, int64_t off)
{
    __builtin_prefetch((const void *)(at_lo + (uintptr_t)off), 0, 2);  /* never faults */
    __builtin_prefetch((const void *)(at_hi + (uintptr_t)off), 0, 2);
}

/* Whether a packet's bytes lie outside records[0, records_len), records_len >= 16: unsigned
 * compares, so a negative offset or caplen is out too and nothing can overflow. */
static inline int outside(int64_t records_len, int64_t off, int64_t cap)
{
    uint64_t room = (uint64_t)records_len - RECORD_HEADER;
    return ((uint64_t)off > room) | ((uint64_t)cap > room - (uint64_t)off);
}

/* libpcap's lengths are u_int: a caplen past 4 GiB is read as its first 4 GiB. */
static inline uint32_t u_int_len(int64_t cap)
{
    return cap > UINT32_MAX ? UINT32_MAX : (uint32_t)cap;
}

/* libpcap's own interpreter, a packet at a time, prefetching ahead (for backward jumps). */
static int64_t select_libpcap(const struct bpf_insn *prog, const uint8_t *records,
                              int64_t records_len, const int64_t *offsets, const int64_t *caplen,
                              const int64_t *wirelen, int64_t n, int64_t *out_idx)
{
    int64_t count = 0;
    for (int64_t i = 0; i < n; i++) {
        if (i + PREFETCH_AHEAD < n)  /* an address only: a prefetch never faults */
            __builtin_prefetch((const void *)((uintptr_t)records
                                              + (uintptr_t)offsets[i + PREFETCH_AHEAD]
                                              + RECORD_HEADER));
        if (records_len < RECORD_HEADER || outside(records_len, offsets[i], caplen[i]))
            return -1;
        const uint8_t *p = records + offsets[i] + RECORD_HEADER;
        out_idx[count] = i;
        count += bpf_filter(prog, p, (uint32_t)wirelen[i], u_int_len(caplen[i])) != 0;
    }
    return count;
}

/* Indices of the packets of a batch that `prog` accepts, ascending, into out_idx; returns how
 * many, -1 if some packet's bytes lie outside records[0, records_len) (checked, never trusted;
 * nothing outside is read), -2 if the program is not one libpcap's interpreter runs (checked
 * before any packet, so n = 0 just validates), -3 if memory for the lanes ran out. */
int64_t bpf_select(const struct bpf_insn *prog, int64_t prog_len, int use_libpcap,
                   const uint8_t *records, int64_t records_len,
                   const int64_t *offsets, const int64_t *caplen, const int64_t *wirelen,
                   int64_t n, int64_t *out_idx)
{
    if (!valid_program(prog, prog_len, use_libpcap))
        return -2;
    if (use_libpcap)
        return select_libpcap(prog, records, records_len, offsets, caplen, wirelen, n, out_idx);
    if (n == 0)
        return 0;
    if (records_len < RECORD_HEADER)
        return -1;
    /* Scratch words start at 0 (libpcap leaves them undefined; compiled filters store before
     * they load): the rows a program loads are cleared for every chunk. */
    uint32_t loaded = 0;
    /* The lines to prefetch: those of the first packet bytes the program loads (lo) and of
     * the other loads close behind (hi): 12..23 for `tcp` on Ethernet, often one line. */
    uint32_t lo = UINT32_MAX, hi = 0;
    for (int64_t pc = 0; pc < prog_len; pc++) {
        uint16_t code = prog[pc].code;
        if (code == (BPF_LD | BPF_MEM) || code == (BPF_LDX | BPF_MEM))
            loaded |= 1u << prog[pc].k;
        if (BPF_CLASS(code) == BPF_LD && BPF_MODE(code) == BPF_ABS && prog[pc].k < lo)
            lo = prog[pc].k;
    }
    for (int64_t pc = 0; pc < prog_len; pc++)
        if (BPF_CLASS(prog[pc].code) == BPF_LD && BPF_MODE(prog[pc].code) == BPF_ABS
            && prog[pc].k - lo < 16 && prog[pc].k > hi)
            hi = prog[pc].k;
    if (lo == UINT32_MAX)
        lo = hi = 0;
    uintptr_t at_lo = (uintptr_t)records + RECORD_HEADER + lo;
    uintptr_t at_hi = (uintptr_t)records + RECORD_HEADER + hi;
    for (int64_t i = 0; i < AHEAD && i < n; i++)  /* what no chunk before asks for */
        ask(at_lo, at_hi, offsets[i]);
    struct lanes *L = malloc(sizeof *L);
    uint8_t (*list)[CHUNK] = malloc((size_t)(prog_len + 1) * CHUNK);
    int *cnt = calloc((size_t)prog_len + 1, sizeof *cnt);
    int64_t count = L && list && cnt ? 0 : -3;
    if (count == 0)
        for (int j = 0; j < CHUNK; j++)  /* nothing jumps to pc 0: its list never changes */
            list[0][j] = (uint8_t)j;
    for (int64_t base = 0; base < n && count >= 0; base += CHUNK) {
        int m = n - base < CHUNK ? (int)(n - base) : CHUNK, bad = 0;
        for (int j = 0; j < m; j++) {  /* no branch: checked once for the chunk, below */
            int64_t off = offsets[base + j], cap = caplen[base + j];
            bad |= outside(records_len, off, cap);
            L->pkt[j] = (uintptr_t)records + (uintptr_t)off + RECORD_HEADER;
            L->buflen[j] = u_int_len(cap);
            L->wire[j] = (uint32_t)wirelen[base + j];
        }
        if (bad) {  /* before any of the chunk's bytes is read */
            count = -1;
            break;
        }
        cnt[0] = m;
        memset(L->A, 0, sizeof L->A);
        memset(L->X, 0, sizeof L->X);
        memset(L->accepted, 0, sizeof L->accepted);
        for (int w = 0; w < BPF_MEMWORDS; w++)
            if (loaded >> w & 1)
                memset(L->mem[w], 0, sizeof L->mem[w]);
        for (int64_t i = base + AHEAD; i < base + AHEAD + m && i < n; i++)
            ask(at_lo, at_hi, offsets[i]);
        run_lanes(prog, prog_len, L, list, cnt);
        for (int j = 0; j < m; j++) {
            out_idx[count] = base + j;  /* written always, kept only if accepted */
            count += L->accepted[j];
        }
    }
    free(L);
    free(list);
    free(cnt);
    return count;
}
