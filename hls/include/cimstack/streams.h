// Stream formats and loops shared by the weight-stationary macro kernels (dcim, acim),
// word counts as host/cimstack/hw/streams.py: int8 weights (k-major) and input vectors
// 8 per word, the requantizer (B_n, M_n) one word each, int32 outputs 2 per word; every
// block word aligned. Synthesizable: the callers give each loop's static tripcount bound.
#ifndef CIMSTACK_STREAMS_H
#define CIMSTACK_STREAMS_H

#include "cimstack/requant.h"
#include "cimstack/types.h"

namespace cimstack {

// Stream words one call reads / writes.
inline uint64_t weight_words(unsigned k, unsigned n) { return (uint64_t(k) * n + 7) / 8; }
inline uint64_t requant_words(unsigned n) { return 2 * uint64_t(n); }
inline uint64_t vector_words(unsigned k) { return (k + 7) / 8; }
inline uint64_t output_vector_words(unsigned n) { return (4 * uint64_t(n) + 7) / 8; }

// Read rows x cols bytes, row-major, 8 per little-endian word (the last one padded),
// calling store(row, col, byte) for each; an input vector is cols = 1. MAX_WORDS is
// the largest word count (for the latency report).
template <unsigned MAX_WORDS, typename Store>
void read_bytes(axis_stream& in, unsigned rows, unsigned cols, Store store) {
    const u64 words = (u64(rows) * cols + 7) / 8;
    unsigned row = 0, col = 0;
READ_WORDS:
    for (u64 i = 0; i < words; ++i) {
#pragma HLS LOOP_TRIPCOUNT max = MAX_WORDS
        const u64 data = in.read().data;
    READ_BYTES:
        for (unsigned b = 0; b < 8; ++b) {
#pragma HLS PIPELINE II = 1
            if (row < rows) {
                store(row, col, unsigned(data >> (8 * b)) & 0xFF);
                if (++col == cols) { col = 0; ++row; }
            }
        }
    }
}

// Read the words of rows x cols bytes (the layout of read_bytes) one word per cycle,
// calling store(i, data) for word i with the padding bytes past rows x cols cleared;
// store unpacks all 8 bytes of the word in that one pipelined iteration.
template <unsigned MAX_WORDS, typename Store>
void read_words(axis_stream& in, unsigned rows, unsigned cols, Store store) {
    const u64 bytes = u64(rows) * cols;
    const u64 words = (bytes + 7) / 8;
    const u64 last_mask = (bytes & 7) ? (u64(1) << (8 * (bytes & 7))) - 1 : ~u64(0);
READ_WORD:
    for (u64 i = 0; i < words; ++i) {
#pragma HLS LOOP_TRIPCOUNT max = MAX_WORDS
#pragma HLS PIPELINE II = 1
        const u64 data = in.read().data;
        store(i, i + 1 == words ? data & last_mask : data);
    }
}

// The requantizer of channels 0 .. n-1.
template <unsigned N>
void load_requant(axis_stream& in, unsigned n, int64_t (&bias)[N], int64_t (&mult)[N]) {
LOAD_RQ:
    for (unsigned c = 0; c < n; ++c) {
#pragma HLS LOOP_TRIPCOUNT max = N
#pragma HLS PIPELINE II = 2
        bias[c] = int64_t(u64(in.read().data));
        mult[c] = int64_t(u64(in.read().data));
    }
}

// Output word i of one vector: channels 2i and 2i+1 (those below n) requantized.
template <unsigned N>
u64 requantized_word(const int32_t (&acc)[N], unsigned i, unsigned n,
                     const int64_t (&mult)[N], const int64_t (&bias)[N], unsigned shift,
                     int32_t lo, int32_t hi) {
    u64 data = 0;
    for (unsigned h = 0; h < 2; ++h) {
        const unsigned c = 2 * i + h;
        if (c < n)
            data |= u64(uint32_t(requantize(acc[c], mult[c], bias[c], shift, lo, hi)))
                    << (32 * h);
    }
    return data;
}

// Requantize the n values of one output vector and write them, TLAST on its last word
// when `last` (the last vector of the call).
template <unsigned N, unsigned MAX_WORDS = (N + 1) / 2>
void write_requantized(axis_stream& out, const int32_t (&acc)[N], unsigned n,
                       const int64_t (&mult)[N], const int64_t (&bias)[N], unsigned shift,
                       int32_t lo, int32_t hi, bool last) {
    const unsigned words = unsigned(output_vector_words(n));
WRITE:
    for (unsigned i = 0; i < words; ++i) {
#pragma HLS LOOP_TRIPCOUNT max = MAX_WORDS
#pragma HLS PIPELINE II = 1
        out.write(make_word(requantized_word(acc, i, n, mult, bias, shift, lo, hi),
                            last && i + 1 == words));
    }
}

}  // namespace cimstack

#endif
