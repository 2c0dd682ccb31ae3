// Counter-based noise of the analog macro (docs/macros.md, "Analog CIM macro (acim)";
// NumPy twin: host/cimstack/ref/prng.py). Integer operations only, no libm.
//   key = mix64(seed * 2^32 + layer)
//   c   = sample * 2^24 + channel * 2^8 + conversion
//   r   = mix64(key + c * 0x9E3779B97F4A7C15)          (mod 2^64)
//   m   = 2 * sum_{i<12} bits(r, 5i, 5) - 372          (n = m / 64 ~ N(0, 1023/1024))
#ifndef CIMSTACK_ACIM_NOISE_H
#define CIMSTACK_ACIM_NOISE_H

#include <stdint.h>

namespace cimstack {

const uint64_t SPLITMIX_GOLDEN = 0x9E3779B97F4A7C15ULL;

// splitmix64 finalizer.
inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

inline uint64_t noise_key(uint32_t seed, uint32_t layer) {
    return mix64((uint64_t(seed) << 32) | layer);
}

// Irwin-Hall integer m of one conversion; n = m / 64.
inline int32_t noise_m(uint64_t key, uint64_t sample, uint32_t channel, uint32_t conversion) {
    const uint64_t c = (sample << 24) | (uint64_t(channel & 0xFFFF) << 8) | (conversion & 0xFF);
    const uint64_t r = mix64(key + c * SPLITMIX_GOLDEN);
    int32_t s = 0;
NOISE_SUM:
    for (unsigned i = 0; i < 12; ++i) {
#pragma HLS UNROLL
        s += int32_t((r >> (5 * i)) & 0x1F);
    }
    return 2 * s - 372;
}

}  // namespace cimstack

#endif
