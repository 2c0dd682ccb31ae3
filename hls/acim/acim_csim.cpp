// C ABI around acim_top for the Python emulator (host/cimstack/emu/csim.py).
// args: the 21 registers as uint32 in ACIM.registers order (out_lo/out_hi two's complement).
// Not part of the synthesized kernel.
#include <stddef.h>
#include <stdint.h>

#include "acim_top.h"

namespace {

enum Reg { MODE, K_ROWS, N_OUT, N_VEC, W_BITS, X_BITS, ROWS, SEGMENTS, SWING, ADC_BITS,
           PER_BIT, GAIN_FRAC, OFFSET_FRAC, SIGMA_Q, SEED, LAYER, CHAN_BASE, SAMPLE_BASE,
           SHIFT, OUT_LO, OUT_HI, N_REGS };

bool in_range(uint32_t v, uint32_t lo, uint32_t hi) { return v >= lo && v <= hi; }

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

}  // namespace

extern "C" {

// Error codes of cimstack_acim_run (0 = success), as cimstack_dcim_run.
const int CIMSTACK_ACIM_ERR_ARGS = -1;
const int CIMSTACK_ACIM_ERR_INPUT = -2;
const int CIMSTACK_ACIM_ERR_OUTPUT = -3;
const int CIMSTACK_ACIM_ERR_PROTOCOL = -4;

// Input words the call reads, or -1 if the registers are out of range.
long long cimstack_acim_words_needed(const uint32_t* args) {
    if (!args_valid(args)) return -1;
    switch (args[MODE]) {
        case acim::LOAD_WEIGHTS: return (long long)acim::weight_words(args[K_ROWS], args[N_OUT]);
        case acim::LOAD_REQUANT: return (long long)acim::requant_words(args[N_OUT]);
        case acim::LOAD_ABN: return (long long)acim::abn_words(args[N_OUT]);
        default: return (long long)(acim::vector_words(args[K_ROWS]) * args[N_VEC]);
    }
}

// Output words the call writes, or -1 if the registers are out of range.
long long cimstack_acim_words_out(const uint32_t* args) {
    if (!args_valid(args)) return -1;
    if (args[MODE] != acim::COMPUTE) return 0;
    return (long long)(acim::output_vector_words(args[N_OUT]) * args[N_VEC]);
}

// Run one kernel call on the first words of in_data/in_last. Refuses (consuming
// nothing) when the registers are out of range or fewer than the needed words are given.
int cimstack_acim_run(const uint32_t* args, const uint64_t* in_data, const uint8_t* in_last,
                      size_t n_in, size_t* n_consumed, uint64_t* out_data, uint8_t* out_last,
                      size_t out_cap, size_t* n_out) {
    *n_consumed = 0;
    *n_out = 0;
    const long long need = cimstack_acim_words_needed(args);
    const long long give = cimstack_acim_words_out(args);
    if (need < 0 || give < 0) return CIMSTACK_ACIM_ERR_ARGS;
    if ((unsigned long long)need > n_in) return CIMSTACK_ACIM_ERR_INPUT;
    if ((unsigned long long)give > out_cap) return CIMSTACK_ACIM_ERR_OUTPUT;

    cimstack::axis_stream in("acim_in"), out("acim_out");
    for (long long i = 0; i < need; ++i) in.write(cimstack::make_word(in_data[i], in_last[i] != 0));
    acim_top(in, out, args[MODE], args[K_ROWS], args[N_OUT], args[N_VEC], args[W_BITS],
             args[X_BITS], args[ROWS], args[SEGMENTS], args[SWING], args[ADC_BITS],
             args[PER_BIT], args[GAIN_FRAC], args[OFFSET_FRAC], args[SIGMA_Q], args[SEED],
             args[LAYER], args[CHAN_BASE], args[SAMPLE_BASE], args[SHIFT],
             ap_int<32>(int32_t(args[OUT_LO])), ap_int<32>(int32_t(args[OUT_HI])));
    *n_consumed = size_t(need);
    size_t got = 0;
    while (!out.empty() && got < out_cap) {
        const cimstack::axis_word w = out.read();
        out_data[got] = uint64_t(w.data);
        out_last[got] = uint8_t(w.last);
        ++got;
    }
    *n_out = got;
    return in.empty() && out.empty() && (long long)got == give ? 0 : CIMSTACK_ACIM_ERR_PROTOCOL;
}

}  // extern "C"
