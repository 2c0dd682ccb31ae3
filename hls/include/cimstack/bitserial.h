// Bit-serial datapath of the digital CIM macro (docs/macros.md, "Digital CIM macro").
// Operands are bit planes: one bit per matrix row k, packed 64 rows per word
// (row k is bit k % 64 of word k / 64). A column read is the popcount of an input bit
// plane AND a weight bit plane over the rows of one row group.
#ifndef CIMSTACK_BITSERIAL_H
#define CIMSTACK_BITSERIAL_H

#include <stdint.h>

namespace cimstack {

// Number of set bits. The host build uses the compiler builtin (one instruction with
// -mpopcnt on x86-64, or on AArch64); synthesis gets the SWAR adder tree.
inline unsigned popcount64(uint64_t v) {
#if !defined(__SYNTHESIS__) && defined(__GNUC__)
    return unsigned(__builtin_popcountll(v));
#else
    v = v - ((v >> 1) & 0x5555555555555555ULL);
    v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
    v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return unsigned((v * 0x0101010101010101ULL) >> 56);
#endif
}

// Index of the lowest set bit of v != 0 (the count of trailing zeros).
inline unsigned ctz64(uint64_t v) { return popcount64((v & (0 - v)) - 1); }

// Transpose of an 8x8 bit matrix held in a word, row r in byte r (bit c of byte r is
// entry (r, c)): bit c of byte r moves to bit r of byte c. Three swap rounds; in
// hardware only wiring.
inline uint64_t transpose8(uint64_t x) {
    uint64_t t = (x ^ (x >> 7)) & 0x00AA00AA00AA00AAULL;
    x ^= t ^ (t << 7);
    t = (x ^ (x >> 14)) & 0x0000CCCC0000CCCCULL;
    x ^= t ^ (t << 14);
    t = (x ^ (x >> 28)) & 0x00000000F0F0F0F0ULL;
    x ^= t ^ (t << 28);
    return x;
}

// Mask of the low n bits, 0 <= n <= 64.
inline uint64_t low_mask(unsigned n) {
    return n >= 64 ? ~uint64_t(0) : ((uint64_t(1) << n) - 1);
}

// Bits lo .. lo+len-1 (1 <= len <= 64) of a packed plane, as the low bits of a word.
inline uint64_t plane_bits(const uint64_t* plane, unsigned lo, unsigned len) {
    const unsigned w = lo >> 6, o = lo & 63;
    uint64_t v = plane[w] >> o;
    if (o != 0 && o + len > 64) v |= plane[w + 1] << (64 - o);
    return v & low_mask(len);
}

// Set bits lo .. lo+len-1 (any len) of a packed plane.
inline void plane_set(uint64_t* plane, unsigned lo, unsigned len) {
    for (unsigned k = lo; k < lo + len;) {
        const unsigned o = k & 63;
        const unsigned n = (64 - o) < (lo + len - k) ? (64 - o) : (lo + len - k);
        plane[k >> 6] |= low_mask(n) << o;
        k += n;
    }
}

// Column ADC of the partial sums: psum_bits (0 = exact) and psum_mode
// (0 saturate, 1 quantize) for row groups of rows_on word lines. read() is branch free:
// saturate clips at 2^psum_bits - 1, quantize clears the d low bits, with d the
// smallest shift for which rows_on >> d <= 2^psum_bits - 1.
struct Adc {
    bool exact;
    unsigned limit;  // saturation bound (no bound: larger than any read value)
    unsigned keep;   // mask of the bits that survive quantization

    Adc(unsigned psum_bits, unsigned psum_mode, unsigned rows_on) {
        const unsigned top = psum_bits > 0 && psum_bits <= 16 ? (1u << psum_bits) - 1 : 0;
        exact = top == 0 || top >= rows_on;
        limit = 0xFFFFFFFFu;
        keep = 0xFFFFFFFFu;
        if (exact) return;
        if (psum_mode == 1) {
            unsigned drop = 0;
        ADC_DROP:
            while ((rows_on >> drop) > top) ++drop;
            keep = ~((1u << drop) - 1);
        } else {
            limit = top;
        }
    }

    // adc(v) of one column read value v.
    unsigned read(unsigned v) const { return (v < limit ? v : limit) & keep; }
};

// Shift-add weight c_j of weight bit column j: S(b, g, n) = sum_j c_j * adc(p_j), with
// c_j = 2^j and the MSB column -2^(w_bits-1) for w_bits >= 2. For binary weights
// (w_bits = 1) the weight column weighs 2 and the reference column q adds -adc(q).
inline int column_coeff(unsigned j, unsigned w_bits) {
    if (w_bits == 1) return 2;
    return j + 1 == w_bits ? -(1 << j) : (1 << j);
}

// Column read of one row group held in `chunks` 64-row words: popcount(a AND b).
inline unsigned group_popcount(const uint64_t* a, const uint64_t* b, unsigned chunks) {
    if (chunks == 1) return popcount64(a[0] & b[0]);
    unsigned p = 0;
GROUP_CHUNK:
    for (unsigned i = 0; i < chunks; ++i) p += popcount64(a[i] & b[i]);
    return p;
}

}  // namespace cimstack

#endif
