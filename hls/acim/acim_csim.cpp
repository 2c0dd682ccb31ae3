// C ABI around acim_top for the Python emulator (host/cimstack/emu/csim.py).
// args: the 21 registers as uint32 in ACIM.registers order (out_lo/out_hi two's complement).
// Not part of the synthesized kernel.
#include <stddef.h>
#include <stdint.h>

#include "acim_top.h"
#include "cimstack/acim_adc.h"
#include "cimstack/csim_bridge.h"

namespace {

using cimstack::csim::in_range;

enum Reg { MODE, K_ROWS, N_OUT, N_VEC, W_BITS, X_BITS, ROWS, SEGMENTS, SWING, ADC_BITS,
           PER_BIT, GAIN_FRAC, OFFSET_FRAC, SIGMA_Q, SEED, LAYER, CHAN_BASE, SAMPLE_BASE,
           SHIFT, OUT_LO, OUT_HI, N_REGS };

// The registers a mode reads are in range (others are ignored).
bool args_valid(const uint32_t* a) {
    using namespace acim;
    switch (a[MODE]) {
        case LOAD_WEIGHTS:
            return in_range(a[K_ROWS], 1, MAX_K) && in_range(a[N_OUT], 1, MAX_N);
        case LOAD_REQUANT:
        case LOAD_ABN:
            return in_range(a[N_OUT], 1, MAX_N);
        case COMPUTE:
            return in_range(a[ROWS], 1, MAX_ROWS) && in_range(a[K_ROWS], 1, MAX_K) &&
                   a[K_ROWS] <= a[ROWS] && in_range(a[N_OUT], 1, MAX_N) &&
                   in_range(a[SEGMENTS], 1, a[ROWS]) && a[ROWS] % a[SEGMENTS] == 0 &&
                   in_range(a[SWING], 0, 1) && in_range(a[W_BITS], 1, MAX_W_BITS) &&
                   in_range(a[X_BITS], 1, MAX_X_BITS) && in_range(a[ADC_BITS], 1, MAX_ADC_BITS) &&
                   in_range(a[PER_BIT], 0, 1) && in_range(a[GAIN_FRAC], 0, MAX_FRAC) &&
                   in_range(a[OFFSET_FRAC], 0, MAX_FRAC) && in_range(a[SIGMA_Q], 0, MAX_SIGMA_Q) &&
                   in_range(a[LAYER], 0, MAX_LAYER) &&
                   uint64_t(a[CHAN_BASE]) + a[N_OUT] - 1 <= MAX_CHANNEL &&
                   (a[N_VEC] == 0 || uint64_t(a[SAMPLE_BASE]) + a[N_VEC] - 1 <= 0xFFFFFFFFULL) &&
                   in_range(a[SHIFT], 0, MAX_SHIFT) && int32_t(a[OUT_LO]) <= int32_t(a[OUT_HI]);
        default:
            return false;
    }
}

void call_top(const uint32_t* a, cimstack::axis_stream& in, cimstack::axis_stream& out) {
    acim_top(in, out, a[MODE], a[K_ROWS], a[N_OUT], a[N_VEC], a[W_BITS], a[X_BITS], a[ROWS],
             a[SEGMENTS], a[SWING], a[ADC_BITS], a[PER_BIT], a[GAIN_FRAC], a[OFFSET_FRAC],
             a[SIGMA_Q], a[SEED], a[LAYER], a[CHAN_BASE], a[SAMPLE_BASE], a[SHIFT],
             ap_int<32>(int32_t(a[OUT_LO])), ap_int<32>(int32_t(a[OUT_HI])));
}

}  // namespace

extern "C" {

// Input words the call reads, or -1 if the registers are out of range.
long long cimstack_acim_words_needed(const uint32_t* args) {
    if (!args_valid(args)) return -1;
    switch (args[MODE]) {
        case acim::LOAD_WEIGHTS:
            return (long long)cimstack::weight_words(args[K_ROWS], args[N_OUT]);
        case acim::LOAD_REQUANT: return (long long)cimstack::requant_words(args[N_OUT]);
        case acim::LOAD_ABN: return (long long)acim::abn_words(args[N_OUT]);
        default: return (long long)(cimstack::vector_words(args[K_ROWS]) * args[N_VEC]);
    }
}

// Output words the call writes, or -1 if the registers are out of range.
long long cimstack_acim_words_out(const uint32_t* args) {
    if (!args_valid(args)) return -1;
    if (args[MODE] != acim::COMPUTE) return 0;
    return (long long)(cimstack::output_vector_words(args[N_OUT]) * args[N_VEC]);
}

// Run one kernel call, as cimstack_dcim_run.
int cimstack_acim_run(const uint32_t* args, const uint64_t* in_data, const uint8_t* in_last,
                      size_t n_in, size_t* n_consumed, uint64_t* out_data, uint8_t* out_last,
                      size_t out_cap, size_t* n_out) {
    return cimstack::csim::run("acim", call_top, args, cimstack_acim_words_needed(args),
                               cimstack_acim_words_out(args), cimstack::csim::EXACTLY,
                               in_data, in_last, n_in, n_consumed, out_data, out_last,
                               out_cap, n_out);
}

// The ADC arithmetic alone, composed as compute() in acim_top.cpp composes it, for the
// property tests against the NumPy reference (tests/test_acim_adc.py).
long long cimstack_acim_sar_code(long long num, long long den, unsigned bits) {
    return cimstack::sar_code(num, den, bits);
}

// One charge-mode code: dot, FS, gain g, offset o, noise integer m.
long long cimstack_acim_charge_code(long long dot, long long fs, long long g, long long o,
                                    int32_t m, unsigned sigma_q, unsigned adc_bits,
                                    unsigned gain_frac, unsigned offset_frac) {
    using namespace cimstack;
    const AdcScale scale = adc_scale(fs, sigma_q, adc_bits);
    return adc_convert(dot, adc_gain_term(g, gain_frac, adc_bits),
                       fs * adc_offset_term(o, offset_frac), m, scale);
}

// One per-bit-mode code: the x_bits bit-plane dots and their noise integers, FS_1.
long long cimstack_acim_per_bit_code(const int32_t* dots, const int32_t* ms, unsigned x_bits,
                                     long long fs1, long long g, long long o, unsigned sigma_q,
                                     unsigned adc_bits, unsigned gain_frac,
                                     unsigned offset_frac) {
    using namespace cimstack;
    const AdcScale scale = adc_scale(fs1, sigma_q, adc_bits);
    const int64_t h = int64_t(1) << (adc_bits - 1);
    int32_t s = 0;
    for (unsigned b = 0; b < x_bits; ++b) {
        const int64_t cb = adc_convert(dots[b], adc_gain_term(g, gain_frac, adc_bits), 0,
                                       ms[b], scale);
        s += int32_t((cb - h) * (int64_t(1) << b));
    }
    return perbit_combine(s, x_bits, adc_offset_term(o, offset_frac), adc_bits);
}

}  // extern "C"
