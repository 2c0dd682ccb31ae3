// Host-side helpers of the kernels' self-checking testbenches (hls/<kernel>/tb_<kernel>.cpp).
#ifndef CIMSTACK_TESTBENCH_H
#define CIMSTACK_TESTBENCH_H

#include <stdint.h>

#include <vector>

#include "cimstack/types.h"

namespace cimstack {

// xorshift64*: reproducible random numbers.
struct Rng {
    uint64_t state;
    explicit Rng(uint64_t seed) : state(seed) {}

    // A uniform integer in [lo, hi].
    int64_t uniform(int64_t lo, int64_t hi) {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        return lo + int64_t((state * 0x2545F4914F6CDD1DULL) % uint64_t(hi - lo + 1));
    }
};

// Append [first, last) to words as little-endian fields of `bits` (< 64) bits, 64 / bits
// per word, the last word zero padded.
template <typename It>
void pack_fields(It first, It last, unsigned bits, std::vector<uint64_t>& words) {
    const uint64_t mask = (uint64_t(1) << bits) - 1;
    while (first != last) {
        uint64_t w = 0;
        for (unsigned pos = 0; pos + bits <= 64 && first != last; pos += bits, ++first)
            w |= (uint64_t(*first) & mask) << pos;
        words.push_back(w);
    }
}

// Write words to s, TLAST on the last.
inline void push_words(axis_stream& s, const std::vector<uint64_t>& words) {
    for (size_t i = 0; i < words.size(); ++i) s.write(make_word(words[i], i + 1 == words.size()));
}

}  // namespace cimstack

#endif
