// ADC of the analog macro in fixed point (docs/macros.md, "Analog CIM macro (acim)";
// NumPy twin: host/cimstack/ref/acim.py). With h = 2^(adc_bits-1), F = 19:
//   charge mode: code = clip(floor(num / (FS * 2^F)), 0, 2^adc_bits - 1),
//     num = h*g*2^(F-gf)*dot + FS*(h*2^F + o*2^(F-of) + 2^(F-1)) + m*FS*sigma_q*2^5
//   per input bit: c_b as above with FS_1, o = 0; S = sum_b 2^b (c_b - h);
//     code = clip(floor((S*2^F + (2^x-1)*(h*2^F + o*2^(F-of) + 2^(F-1))) / ((2^x-1)*2^F)), ..)
// No divider: clip(floor(num / den)) is found by successive approximation (sar_code), as a
// SAR ADC does: one compare per code bit against the running level code*den, built by
// adding den*2^i. Every intermediate fits int64 (|num| < 2^60, den*2^adc_bits < 2^53) for
// the formats AcimSpec allows.
#ifndef CIMSTACK_ACIM_ADC_H
#define CIMSTACK_ACIM_ADC_H

#include <stdint.h>

namespace cimstack {

const unsigned ACIM_FRAC = 19;          // internal fraction bits (2^-19 ADC LSB)
const unsigned ACIM_NOISE_SHIFT = 5;    // sigma_q * m is in 2^-(8+6) LSB -> << 5
const unsigned ACIM_SAR_STEPS = 8;      // the widest ADC: 8 bits

// clip(floor(num / den), 0, 2^bits - 1) for den > 0 and 1 <= bits <= ACIM_SAR_STEPS:
// the largest code < 2^bits with code*den <= num (0 when num < den), decided from the
// most significant bit down. No division, no multiplication.
inline int64_t sar_code(int64_t num, int64_t den, unsigned bits) {
    int64_t code = 0, level = 0;        // level = code * den
SAR:
    for (unsigned s = 0; s < ACIM_SAR_STEPS; ++s) {
#pragma HLS UNROLL
        const unsigned i = ACIM_SAR_STEPS - 1 - s;
        const int64_t trial = level + (den << i);
        const bool up = i < bits && num >= trial;
        code |= int64_t(up) << i;
        level = up ? trial : level;
    }
    return code;
}

// The constants of one call's conversions: den = FS*2^F, noise_unit = FS*sigma_q*2^5 (the
// weight of the noise integer m), mid = FS*(h*2^F + 2^(F-1)) (the level without offset).
struct AdcScale {
    int64_t den, noise_unit, mid;
    unsigned bits;
};

inline AdcScale adc_scale(int64_t fs, int64_t sigma_q, unsigned adc_bits) {
    const int64_t h = int64_t(1) << (adc_bits - 1);
    AdcScale s;
    s.den = fs << ACIM_FRAC;
    s.noise_unit = (fs * sigma_q) << ACIM_NOISE_SHIFT;
    s.mid = fs * ((h << ACIM_FRAC) + (int64_t(1) << (ACIM_FRAC - 1)));
    s.bits = adc_bits;
    return s;
}

// h*g*2^(F-gf): the weight of the dot product (h a power of two: a shift of g).
inline int64_t adc_gain_term(int64_t g, unsigned gain_frac, unsigned adc_bits) {
    return g << (adc_bits - 1 + ACIM_FRAC - gain_frac);
}

// o*2^(F-of): the offset in 2^-F LSB.
inline int64_t adc_offset_term(int64_t o, unsigned offset_frac) {
    return o * (int64_t(1) << (ACIM_FRAC - offset_frac));
}

// One conversion: clip(floor((gain_term*dot + fs*offset_term + mid + m*noise_unit) / den)).
inline int64_t adc_convert(int64_t dot, int64_t gain_term, int64_t fs_offset, int32_t m,
                           const AdcScale& s) {
    const int64_t num = gain_term * dot + fs_offset + s.mid + int64_t(m) * s.noise_unit;
    return sar_code(num, s.den, s.bits);
}

// Digital back end of the per-bit mode: shift-added centred codes S -> output code.
inline int64_t perbit_combine(int64_t s, unsigned x_bits, int64_t offset_term,
                              unsigned adc_bits) {
    const int64_t xm = (int64_t(1) << x_bits) - 1;
    const int64_t h = int64_t(1) << (adc_bits - 1);
    const int64_t level = (h << ACIM_FRAC) + offset_term + (int64_t(1) << (ACIM_FRAC - 1));
    return sar_code(s * (int64_t(1) << ACIM_FRAC) + xm * level, xm << ACIM_FRAC, adc_bits);
}

}  // namespace cimstack

#endif
