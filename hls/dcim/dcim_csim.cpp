// C ABI around dcim_top for the Python emulator (host/cimstack/emu/csim.py).
// args: the 12 registers as uint32 in DCIM.registers order (out_lo/out_hi two's complement).
// Not part of the synthesized kernel.
#include <stddef.h>
#include <stdint.h>

#include "dcim_top.h"

namespace {

enum Reg { MODE, K_ROWS, N_OUT, N_VEC, W_BITS, X_BITS, ROWS_ON, PSUM_BITS, PSUM_MODE,
           SHIFT, OUT_LO, OUT_HI, N_REGS };

bool in_range(uint32_t v, uint32_t lo, uint32_t hi) { return v >= lo && v <= hi; }

// The registers a mode reads are in range (others are ignored).
bool args_valid(const uint32_t* a) {
    using namespace dcim;
    switch (a[MODE]) {
        case LOAD_WEIGHTS:
            return in_range(a[K_ROWS], 1, MAX_K) && in_range(a[N_OUT], 1, MAX_N) &&
                   in_range(a[ROWS_ON], 0, MAX_ROWS_ON);
        case LOAD_REQUANT:
            return in_range(a[N_OUT], 1, MAX_N);
        case COMPUTE:
            return in_range(a[K_ROWS], 1, MAX_K) && in_range(a[N_OUT], 1, MAX_N) &&
                   in_range(a[W_BITS], 1, MAX_W_BITS) && in_range(a[X_BITS], 1, MAX_X_BITS) &&
                   in_range(a[ROWS_ON], 1, MAX_ROWS_ON) &&
                   in_range(a[PSUM_BITS], 0, MAX_PSUM_BITS) && in_range(a[PSUM_MODE], 0, 1) &&
                   in_range(a[SHIFT], 0, MAX_SHIFT) &&
                   int32_t(a[OUT_LO]) <= int32_t(a[OUT_HI]);
        default:
            return false;
    }
}

}  // namespace

extern "C" {

// Error codes of cimstack_dcim_run (0 = success).
const int CIMSTACK_ERR_ARGS = -1;      // a register is out of range
const int CIMSTACK_ERR_INPUT = -2;     // fewer input words than the call needs
const int CIMSTACK_ERR_OUTPUT = -3;    // output buffer too small
const int CIMSTACK_ERR_PROTOCOL = -4;  // the kernel did not consume exactly its words

// Input words the call reads, or -1 if the registers are out of range.
long long cimstack_dcim_words_needed(const uint32_t* args) {
    if (!args_valid(args)) return -1;
    switch (args[MODE]) {
        case dcim::LOAD_WEIGHTS: return (long long)dcim::weight_words(args[K_ROWS], args[N_OUT]);
        case dcim::LOAD_REQUANT: return (long long)dcim::requant_words(args[N_OUT]);
        default: return (long long)(dcim::vector_words(args[K_ROWS]) * args[N_VEC]);
    }
}

// Output words the call writes, or -1 if the registers are out of range.
long long cimstack_dcim_words_out(const uint32_t* args) {
    if (!args_valid(args)) return -1;
    if (args[MODE] != dcim::COMPUTE) return 0;
    return (long long)(dcim::output_vector_words(args[N_OUT]) * args[N_VEC]);
}

// Run one kernel call on the first words of in_data/in_last. Refuses (consuming
// nothing) when the registers are out of range or fewer than the needed words are given.
int cimstack_dcim_run(const uint32_t* args, const uint64_t* in_data, const uint8_t* in_last,
                      size_t n_in, size_t* n_consumed, uint64_t* out_data, uint8_t* out_last,
                      size_t out_cap, size_t* n_out) {
    *n_consumed = 0;
    *n_out = 0;
    const long long need = cimstack_dcim_words_needed(args);
    const long long give = cimstack_dcim_words_out(args);
    if (need < 0 || give < 0) return CIMSTACK_ERR_ARGS;
    if ((unsigned long long)need > n_in) return CIMSTACK_ERR_INPUT;
    if ((unsigned long long)give > out_cap) return CIMSTACK_ERR_OUTPUT;

    cimstack::axis_stream in("dcim_in"), out("dcim_out");
    for (long long i = 0; i < need; ++i) {
        cimstack::axis_word w = cimstack::make_word(in_data[i], in_last[i] != 0);
        in.write(w);
    }
    dcim_top(in, out, args[MODE], args[K_ROWS], args[N_OUT], args[N_VEC], args[W_BITS],
             args[X_BITS], args[ROWS_ON], args[PSUM_BITS], args[PSUM_MODE], args[SHIFT],
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
    return in.empty() && out.empty() && (long long)got == give ? 0 : CIMSTACK_ERR_PROTOCOL;
}

}  // extern "C"
