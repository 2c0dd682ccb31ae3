// C ABI around dcim_top for the Python emulator (host/cimstack/emu/csim.py).
// args: the 12 registers as uint32 in DCIM.registers order (out_lo/out_hi two's complement).
// Not part of the synthesized kernel.
#include <stddef.h>
#include <stdint.h>

#include "cimstack/csim_bridge.h"
#include "dcim_top.h"

namespace {

using cimstack::csim::in_range;

enum Reg { MODE, K_ROWS, N_OUT, N_VEC, W_BITS, X_BITS, ROWS_ON, PSUM_BITS, PSUM_MODE,
           SHIFT, OUT_LO, OUT_HI, N_REGS };

// The registers a mode reads are in range (others are ignored).
bool args_valid(const uint32_t* a) {
    using namespace dcim;
    switch (a[MODE]) {
        case LOAD_WEIGHTS:
            return in_range(a[K_ROWS], 1, MAX_K) && in_range(a[N_OUT], 1, MAX_N) &&
                   in_range(a[W_BITS], 1, MAX_W_BITS) && in_range(a[ROWS_ON], 0, MAX_ROWS_ON);
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

void call_top(const uint32_t* a, cimstack::axis_stream& in, cimstack::axis_stream& out) {
    dcim_top(in, out, a[MODE], a[K_ROWS], a[N_OUT], a[N_VEC], a[W_BITS], a[X_BITS],
             a[ROWS_ON], a[PSUM_BITS], a[PSUM_MODE], a[SHIFT], ap_int<32>(int32_t(a[OUT_LO])),
             ap_int<32>(int32_t(a[OUT_HI])));
}

}  // namespace

extern "C" {

// Input words the call reads, or -1 if the registers are out of range.
long long cimstack_dcim_words_needed(const uint32_t* args) {
    if (!args_valid(args)) return -1;
    switch (args[MODE]) {
        case dcim::LOAD_WEIGHTS:
            return (long long)cimstack::weight_words(args[K_ROWS], args[N_OUT]);
        case dcim::LOAD_REQUANT: return (long long)cimstack::requant_words(args[N_OUT]);
        default: return (long long)(cimstack::vector_words(args[K_ROWS]) * args[N_VEC]);
    }
}

// Output words the call writes, or -1 if the registers are out of range.
long long cimstack_dcim_words_out(const uint32_t* args) {
    if (!args_valid(args)) return -1;
    if (args[MODE] != dcim::COMPUTE) return 0;
    return (long long)(cimstack::output_vector_words(args[N_OUT]) * args[N_VEC]);
}

// Run one kernel call on the first words of in_data/in_last. Refuses (consuming
// nothing) when the registers are out of range or fewer than the needed words are given;
// return codes cimstack::csim::ERR_*.
int cimstack_dcim_run(const uint32_t* args, const uint64_t* in_data, const uint8_t* in_last,
                      size_t n_in, size_t* n_consumed, uint64_t* out_data, uint8_t* out_last,
                      size_t out_cap, size_t* n_out) {
    return cimstack::csim::run("dcim", call_top, args, cimstack_dcim_words_needed(args),
                               cimstack_dcim_words_out(args), cimstack::csim::EXACTLY,
                               in_data, in_last, n_in, n_consumed, out_data, out_last,
                               out_cap, n_out);
}

}  // extern "C"
