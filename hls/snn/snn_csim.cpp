// C ABI around snn_top for the Python emulator (host/cimstack/emu/csim.py).
// args: the 25 registers as uint32 in SNN.registers order. Not part of the kernel.
#include <stddef.h>
#include <stdint.h>

#include "cimstack/csim_bridge.h"
#include "snn_top.h"

namespace {

using cimstack::csim::in_range;

enum Reg { MODE, OP, SRC_H, SRC_W, POOL, IN_C, IN_H, IN_W, OUT_C, KSIZE, PADDING, STRIDE,
           N_LO, N_COUNT, W_BITS, V_BITS, THETA, LEAK_SHIFT, RESET_MODE, OVERFLOW, FIRE_MODE,
           LEAK_ORDER, V_INIT, N_WORDS, N_STEPS, N_SAMPLES, V_OUT, N_REGS };

// Event packets of a RUN call: n_steps per sample, n_samples samples (0: one).
uint64_t run_packets(const uint32_t* a) {
    return uint64_t(a[N_STEPS]) * (a[N_SAMPLES] ? a[N_SAMPLES] : 1);
}

bool args_valid(const uint32_t* a) {
    using namespace snn;
    if (a[MODE] > RUN || a[OP] > FC) return false;
    if (!in_range(a[W_BITS], 1, MAX_BITS) || !in_range(a[V_BITS], 1, MAX_BITS)) return false;
    if (!in_range(a[IN_C], 1, MAX_IN) || !in_range(a[IN_H], 1, MAX_IN) ||
        !in_range(a[IN_W], 1, MAX_IN) ||
        uint64_t(a[IN_C]) * a[IN_H] * a[IN_W] > MAX_IN) return false;
    if (!in_range(a[POOL], 1, MAX_POOL)) return false;
    if (uint64_t(a[SRC_H]) < uint64_t(a[IN_H]) * a[POOL] ||
        uint64_t(a[SRC_W]) < uint64_t(a[IN_W]) * a[POOL] || a[SRC_H] > MAX_SRC ||
        a[SRC_W] > MAX_SRC)
        return false;
    if (!in_range(a[OUT_C], 1, MAX_OUT_C) || !in_range(a[N_COUNT], 1, MAX_COUNT)) return false;
    uint64_t n_out;
    if (a[OP] == CONV) {
        if (!in_range(a[KSIZE], 1, MAX_KSIZE) || a[PADDING] > MAX_PAD) return false;
        if (!in_range(a[STRIDE], 1, MAX_STRIDE)) return false;
        if (a[IN_H] + 2 * a[PADDING] < a[KSIZE] || a[IN_W] + 2 * a[PADDING] < a[KSIZE]) return false;
        const Divisor by_stride = divisor(a[STRIDE]);
        n_out = uint64_t(a[OUT_C]) * out_h(a[IN_H], a[KSIZE], a[PADDING], by_stride) *
                out_h(a[IN_W], a[KSIZE], a[PADDING], by_stride);
    } else {
        n_out = a[OUT_C];
    }
    if (uint64_t(a[N_LO]) + a[N_COUNT] > n_out) return false;
    const uint64_t wc = weight_count(a[OP], a[IN_C], a[IN_H], a[IN_W], a[OUT_C], a[KSIZE],
                                     a[N_COUNT]);
    if (wc * a[W_BITS] + uint64_t(a[N_COUNT]) * a[V_BITS] > ARRAY_BITS) return false;
    if (!in_range(a[THETA], 1, (uint64_t(1) << (a[V_BITS] - 1)) - 1)) return false;
    if (a[LEAK_SHIFT] > 15 || a[RESET_MODE] > RESET_STEP || a[OVERFLOW] > 1) return false;
    if (a[FIRE_MODE] > 1 || a[LEAK_ORDER] > 1) return false;
    const int64_t v_init = int32_t(a[V_INIT]), v_half = int64_t(1) << (a[V_BITS] - 1);
    if (v_init < -v_half || v_init >= v_half) return false;
    if (a[MODE] == STEP && a[N_WORDS] < 1) return false;
    // RUN: every timestep's packet is at least one beat
    if (a[MODE] == RUN && (!in_range(a[N_STEPS], 1, MAX_STEPS) || a[N_SAMPLES] > MAX_SAMPLES ||
                           a[N_WORDS] < run_packets(a)))
        return false;
    // membrane packets (a RUN of samples; other calls ignore the register, which keeps
    // its value from call to call as the board's does)
    if (a[V_OUT] > 1) return false;
    return true;
}

void call_top(const uint32_t* a, cimstack::axis_stream& in, cimstack::axis_stream& out) {
    snn_top(in, out, a[MODE], a[OP], a[SRC_H], a[SRC_W], a[POOL], a[IN_C], a[IN_H], a[IN_W],
            a[OUT_C], a[KSIZE], a[PADDING], a[STRIDE], a[N_LO], a[N_COUNT], a[W_BITS], a[V_BITS],
            a[THETA], a[LEAK_SHIFT], a[RESET_MODE], a[OVERFLOW], a[FIRE_MODE], a[LEAK_ORDER],
            a[V_INIT], a[N_WORDS], a[N_STEPS], a[N_SAMPLES], a[V_OUT]);
}

}  // namespace

extern "C" {

// Input words the call reads, or -1 if the registers are out of range.
long long cimstack_snn_words_needed(const uint32_t* a) {
    if (!args_valid(a)) return -1;
    switch (a[MODE]) {
        case snn::LOAD_WEIGHTS:
            return (long long)snn::weight_words(snn::weight_count(
                a[OP], a[IN_C], a[IN_H], a[IN_W], a[OUT_C], a[KSIZE], a[N_COUNT]));
        case snn::STEP:
        case snn::RUN: return (long long)a[N_WORDS];
        default: return 0;
    }
}

// Upper bound of the output words the call writes, or -1 if out of range.
long long cimstack_snn_words_out(const uint32_t* a) {
    if (!args_valid(a)) return -1;
    if (a[MODE] == snn::STEP) return (long long)snn::step_out_words_max(a[N_COUNT]);
    if (a[MODE] == snn::RUN)
        return (long long)(run_packets(a) + (a[V_OUT] ? a[N_SAMPLES] : 0)) *
               (long long)snn::step_out_words_max(a[N_COUNT]);   // a membrane packet: as long
    if (a[MODE] == snn::READ_MEMBRANES) return (long long)snn::membrane_words(a[N_COUNT]);
    return 0;
}

// Run one kernel call, as cimstack_dcim_run; a STEP or RUN may write fewer words than
// cimstack_snn_words_out (an upper bound).
int cimstack_snn_run(const uint32_t* a, const uint64_t* in_data, const uint8_t* in_last,
                     size_t n_in, size_t* n_consumed, uint64_t* out_data, uint8_t* out_last,
                     size_t out_cap, size_t* n_out) {
    return cimstack::csim::run("snn", call_top, a, cimstack_snn_words_needed(a),
                               cimstack_snn_words_out(a), cimstack::csim::AT_MOST, in_data,
                               in_last, n_in, n_consumed, out_data, out_last, out_cap, n_out);
}

// The event decode's division alone, for its property test (tests/test_hls_snn.py).
uint32_t cimstack_snn_divide(uint32_t n, uint32_t d) { return snn::divide(n, snn::divisor(d)); }

}  // extern "C"
