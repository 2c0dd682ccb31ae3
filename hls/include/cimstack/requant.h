// Per-channel requantizer (docs/macros.md):
//   y = clamp((acc * M + B + r) >> s, lo, hi),  r = 2^(s-1) if s > 0 else 0,
// with 64-bit intermediates and an arithmetic (flooring) shift: round half up.
#ifndef CIMSTACK_REQUANT_H
#define CIMSTACK_REQUANT_H

#include <stdint.h>

namespace cimstack {

inline int32_t requantize(int32_t acc, int64_t multiplier, int64_t bias,
                          unsigned shift, int32_t lo, int32_t hi) {
    const int64_t round = shift > 0 ? (int64_t(1) << (shift - 1)) : int64_t(0);
    const int64_t y = (int64_t(acc) * multiplier + bias + round) >> shift;
    return y < lo ? lo : (y > hi ? hi : int32_t(y));
}

}  // namespace cimstack

#endif
