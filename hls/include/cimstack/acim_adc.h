// ADC of the analog macro in fixed point (docs/macros.md, "Analog CIM macro (acim)";
// NumPy twin: host/cimstack/ref/acim.py). With h = 2^(adc_bits-1), F = 19:
//   charge mode: code = clip(floor(num / (FS * 2^F)), 0, 2^adc_bits - 1),
//     num = h*g*2^(F-gf)*dot + FS*(h*2^F + o*2^(F-of) + 32*sigma_q*m + 2^(F-1))
//   per input bit: c_b as above with FS_1, o = 0; S = sum_b 2^b (c_b - h);
//     code = clip(floor((S*2^F + (2^x-1)*(h*2^F + o*2^(F-of) + 2^(F-1))) / ((2^x-1)*2^F)), ..)
// Every intermediate fits int64 (|num| < 2^60) for the formats AcimSpec allows.
#ifndef CIMSTACK_ACIM_ADC_H
#define CIMSTACK_ACIM_ADC_H

#include <stdint.h>

namespace cimstack {

const unsigned ACIM_FRAC = 19;          // internal fraction bits (2^-19 ADC LSB)
const unsigned ACIM_NOISE_SHIFT = 5;    // sigma_q * m is in 2^-(8+6) LSB -> << 5

// floor(num / den) for den > 0 (C++ division truncates toward zero).
inline int64_t floor_div(int64_t num, int64_t den) {
    const int64_t q = num / den;
    return (num % den) < 0 ? q - 1 : q;
}

inline int64_t clip_code(int64_t v, unsigned adc_bits) {
    const int64_t top = (int64_t(1) << adc_bits) - 1;
    return v < 0 ? 0 : (v > top ? top : v);
}

// One conversion. gain_term = h*g*2^(F-gf); level = h*2^F + o*2^(F-of) + 2^(F-1) (the
// offset is 0 for the per-bit conversions); noise = 32*sigma_q*m.
inline int64_t adc_convert(int64_t dot, int64_t fs, int64_t gain_term, int64_t level,
                           int64_t noise, unsigned adc_bits) {
    const int64_t num = gain_term * dot + fs * (level + noise);
    return clip_code(floor_div(num, fs << ACIM_FRAC), adc_bits);
}

// Digital back end of the per-bit mode: shift-added centred codes S -> output code.
inline int64_t perbit_combine(int64_t s, unsigned x_bits, int64_t level, unsigned adc_bits) {
    const int64_t xm = (int64_t(1) << x_bits) - 1;
    return clip_code(floor_div((s << ACIM_FRAC) + xm * level, xm << ACIM_FRAC), adc_bits);
}

}  // namespace cimstack

#endif
