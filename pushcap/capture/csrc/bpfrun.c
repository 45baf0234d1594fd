/* Classic BPF over a whole batch, in C (pushcap/capture/native_bpf.py).
 *
 * libpcap's bpf_filter() called once per packet costs ~30 ns a packet for `tcp`: a call, a
 * fresh interpreter state and, above all, a cache miss on every packet, since a batch's bytes
 * are not in the cache. Here the loop over the packets is ours: the packet a few places ahead
 * is prefetched while this one runs, and the program runs inline. The semantics are libpcap's
 * (1.10 pcap_filter_with_aux_data, no aux data), instruction for instruction; programs with a
 * backward jump (only `protochain` emits one) are left to libpcap itself (`use_libpcap`).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pcap/bpf.h>

/* Packets prefetched ahead: far enough to cover a memory latency at a few ns a packet. */
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
static inline uint32_t load32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return __builtin_bswap32(v);
}

static inline uint32_t load16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return __builtin_bswap16(v);
}

/* One packet through a valid forward-only program: libpcap's result (0 = reject). A load
 * that does not fit in the `buflen` captured bytes rejects: the sum is taken in 64 bits, so
 * X + k past 2^32 cannot wrap back into the packet (libpcap orders its compares for that). */
static inline __attribute__((always_inline)) uint32_t
run(const struct bpf_insn *pc, const uint8_t *p, uint32_t buflen, uint32_t wirelen,
    uint32_t *mem)
{
    uint32_t A = 0, X = 0;
    for (;; pc++) {
        uint32_t k = pc->k;
        switch (pc->code) {
        case BPF_RET | BPF_K: return k;
        case BPF_RET | BPF_A: return A;
        case BPF_LD | BPF_W | BPF_ABS:
            if ((uint64_t)k + 4 > buflen) return 0;
            A = load32(p + k); break;
        case BPF_LD | BPF_H | BPF_ABS:
            if ((uint64_t)k + 2 > buflen) return 0;
            A = load16(p + k); break;
        case BPF_LD | BPF_B | BPF_ABS:
            if (k >= buflen) return 0;
            A = p[k]; break;
        case BPF_LD | BPF_W | BPF_IND:
            if ((uint64_t)X + k + 4 > buflen) return 0;
            A = load32(p + X + k); break;
        case BPF_LD | BPF_H | BPF_IND:
            if ((uint64_t)X + k + 2 > buflen) return 0;
            A = load16(p + X + k); break;
        case BPF_LD | BPF_B | BPF_IND:
            if ((uint64_t)X + k >= buflen) return 0;
            A = p[X + k]; break;
        case BPF_LDX | BPF_MSH | BPF_B:
            if (k >= buflen) return 0;
            X = (uint32_t)(p[k] & 0xF) << 2; break;
        case BPF_LD | BPF_W | BPF_LEN: A = wirelen; break;
        case BPF_LDX | BPF_W | BPF_LEN: X = wirelen; break;
        case BPF_LD | BPF_IMM: A = k; break;
        case BPF_LDX | BPF_IMM: X = k; break;
        case BPF_LD | BPF_MEM: A = mem[k]; break;
        case BPF_LDX | BPF_MEM: X = mem[k]; break;
        case BPF_ST: mem[k] = A; break;
        case BPF_STX: mem[k] = X; break;
        case BPF_JMP | BPF_JA: pc += k; break;
        case BPF_JMP | BPF_JEQ | BPF_K: pc += A == k ? pc->jt : pc->jf; break;
        case BPF_JMP | BPF_JGT | BPF_K: pc += A > k ? pc->jt : pc->jf; break;
        case BPF_JMP | BPF_JGE | BPF_K: pc += A >= k ? pc->jt : pc->jf; break;
        case BPF_JMP | BPF_JSET | BPF_K: pc += A & k ? pc->jt : pc->jf; break;
        case BPF_JMP | BPF_JEQ | BPF_X: pc += A == X ? pc->jt : pc->jf; break;
        case BPF_JMP | BPF_JGT | BPF_X: pc += A > X ? pc->jt : pc->jf; break;
        case BPF_JMP | BPF_JGE | BPF_X: pc += A >= X ? pc->jt : pc->jf; break;
        case BPF_JMP | BPF_JSET | BPF_X: pc += A & X ? pc->jt : pc->jf; break;
        case BPF_ALU | BPF_ADD | BPF_K: A += k; break;
        case BPF_ALU | BPF_SUB | BPF_K: A -= k; break;
        case BPF_ALU | BPF_MUL | BPF_K: A *= k; break;
        case BPF_ALU | BPF_DIV | BPF_K: A /= k; break;  /* k != 0: validated */
        case BPF_ALU | BPF_MOD | BPF_K: A %= k; break;
        case BPF_ALU | BPF_AND | BPF_K: A &= k; break;
        case BPF_ALU | BPF_OR | BPF_K: A |= k; break;
        case BPF_ALU | BPF_XOR | BPF_K: A ^= k; break;
        case BPF_ALU | BPF_LSH | BPF_K: A <<= k; break;  /* k < 32: validated */
        case BPF_ALU | BPF_RSH | BPF_K: A >>= k; break;
        case BPF_ALU | BPF_ADD | BPF_X: A += X; break;
        case BPF_ALU | BPF_SUB | BPF_X: A -= X; break;
        case BPF_ALU | BPF_MUL | BPF_X: A *= X; break;
        case BPF_ALU | BPF_DIV | BPF_X: if (X == 0) return 0; A /= X; break;
        case BPF_ALU | BPF_MOD | BPF_X: if (X == 0) return 0; A %= X; break;
        case BPF_ALU | BPF_AND | BPF_X: A &= X; break;
        case BPF_ALU | BPF_OR | BPF_X: A |= X; break;
        case BPF_ALU | BPF_XOR | BPF_X: A ^= X; break;
        case BPF_ALU | BPF_LSH | BPF_X: A = X < 32 ? A << X : 0; break;
        case BPF_ALU | BPF_RSH | BPF_X: A = X < 32 ? A >> X : 0; break;
        case BPF_ALU | BPF_NEG: A = 0u - A; break;
        case BPF_MISC | BPF_TAX: X = A; break;
        case BPF_MISC | BPF_TXA: A = X; break;
        default: return 0;  /* unreachable: the program was validated */
        }
    }
}

/* Indices of the packets of a batch that `prog` accepts, ascending, into out_idx; returns how
 * many, -1 if some packet's bytes lie outside records[0, records_len) (checked, never trusted;
 * nothing outside is read), or -2 if the program is not one libpcap's interpreter runs (checked
 * before any packet, so n = 0 just validates). */
int64_t bpf_select(const struct bpf_insn *prog, int64_t prog_len, int use_libpcap,
                   const uint8_t *records, int64_t records_len,
                   const int64_t *offsets, const int64_t *caplen, const int64_t *wirelen,
                   int64_t n, int64_t *out_idx)
{
    if (!valid_program(prog, prog_len, use_libpcap))
        return -2;
    /* Scratch words start at 0 (libpcap leaves them undefined; compiled filters store before
     * they load), cleared per packet only where the program reads them. */
    int reads_mem = 0;
    for (int64_t pc = 0; pc < prog_len; pc++)
        reads_mem |= prog[pc].code == (BPF_LD | BPF_MEM) || prog[pc].code == (BPF_LDX | BPF_MEM);
    uint32_t mem[BPF_MEMWORDS] = {0};
    int64_t count = 0;
    for (int64_t i = 0; i < n; i++) {
        if (i + PREFETCH_AHEAD < n)  /* an address only: a prefetch never faults */
            __builtin_prefetch((const void *)((uintptr_t)records
                                              + (uintptr_t)offsets[i + PREFETCH_AHEAD]
                                              + RECORD_HEADER));
        int64_t off = offsets[i], cap = caplen[i];
        if (off < 0 || cap < 0 || off > records_len - RECORD_HEADER
            || cap > records_len - RECORD_HEADER - off)
            return -1;
        const uint8_t *p = records + off + RECORD_HEADER;
        /* libpcap's lengths are u_int: a caplen past 4 GiB is read as its first 4 GiB. */
        uint32_t buflen = cap > UINT32_MAX ? UINT32_MAX : (uint32_t)cap;
        uint32_t wire = (uint32_t)wirelen[i];
        uint32_t verdict;
        if (use_libpcap) {
            verdict = bpf_filter(prog, p, wire, buflen);
        } else {
            if (reads_mem)
                memset(mem, 0, sizeof mem);
            verdict = run(prog, p, buflen, wire, mem);
        }
        out_idx[count] = i;  /* always written, kept only if accepted: no branch to mispredict */
        count += verdict != 0;
    }
    return count;
}
