// snn kernel: one layer slice of the spiking event core (docs/macros.md, "Spiking
// event core (snn)"). Capacity and registers mirror host/cimstack/overlay_shape.py (SNN).
#ifndef CIMSTACK_SNN_TOP_H
#define CIMSTACK_SNN_TOP_H

#include "cimstack/types.h"

namespace snn {

const unsigned ROWS = 512;                       // array rows (FlexSpIM)
const unsigned COLS = 256;                       // array bit columns
const unsigned ARRAY_BITS = ROWS * COLS;
const unsigned ARRAY_WORDS = ARRAY_BITS / 64;
static_assert((ARRAY_WORDS & (ARRAY_WORDS - 1)) == 0, "get_field wraps word indices by a mask");
const unsigned MAX_IN = 65536;                   // input neurons of a layer (after pooling)
const unsigned MAX_COUNT = 8192;                 // membranes of one resident slice
const unsigned MAX_OUT_C = 256;
const unsigned MAX_KSIZE = 7;
const unsigned MAX_STRIDE = 7;                   // conv stride (above k it skips inputs)
const unsigned MAX_PAD = 64;                     // conv zero padding (at or above k: outputs
                                                 // on the border see only padding)
const unsigned MAX_POOL = 8;
const unsigned MAX_SRC = 65535;                  // src_h, src_w
const unsigned MAX_BITS = 16;
const unsigned MAX_STEPS = 65535;                // timesteps of one RUN call
const unsigned MAX_SAMPLES = 65535;              // samples of one RUN call
const unsigned SLICE_WORDS = MAX_OUT_C * MAX_KSIZE * MAX_KSIZE;   // slice buffer (int16)
const unsigned MAX_SLOTS = 64;                   // its slots (input channels held)
const uint32_t MARKER = 0x80000000u;             // timestep marker flag
const uint32_t PAD = 0xFFFFFFFFu;                // fills the last beat of a packet

enum Mode { LOAD_WEIGHTS = 0, CLEAR = 1, STEP = 2, READ_MEMBRANES = 3, RUN = 4 };
enum Op { CONV = 0, FC = 1 };
enum Reset { RESET_SUBTRACT = 0, RESET_ZERO = 1, RESET_STEP = 2 };   // STEP: every timestep

// Weights resident for a slice: conv all N*C*k*k, fc the K x n_count columns.
inline uint64_t weight_count(unsigned op, unsigned in_c, unsigned in_h, unsigned in_w,
                             unsigned out_c, unsigned k, unsigned n_count) {
    return op == CONV ? uint64_t(out_c) * in_c * k * k : uint64_t(in_c) * in_h * in_w * n_count;
}
inline uint64_t weight_words(uint64_t count) { return (count + 3) / 4; }   // int16, 4 per word
inline uint64_t step_out_words_max(unsigned n_count) { return (uint64_t(n_count) + 2) / 2; }
inline uint64_t membrane_words(unsigned n_count) { return (uint64_t(n_count) + 1) / 2; }

// floor(n / d) for n < 2^31 and 1 <= d < 2^32 as a multiply and a shift: with
// l = ceil(log2 d), m = ceil(2^(31+l) / d) (computed once per call) gives
// floor(n / d) = floor(n * m / 2^(31+l)) (Granlund and Montgomery 1994, theorem 4.2:
// 0 <= m*d - 2^(31+l) <= 2^l); m <= 2^32, so n * m is a 31 x 33-bit product below 2^63.
struct Divisor {
    ap_uint<33> m;
    unsigned shift;
};

inline Divisor divisor(uint32_t d) {
    unsigned l = 0;
CEIL_LOG2:
    for (unsigned i = 0; i < 32; ++i)
        if ((uint64_t(1) << l) < d) ++l;
    return Divisor{ap_uint<33>(((uint64_t(1) << (31 + l)) + d - 1) / d), 31 + l};
}

// The product of the 31- and 33-bit operands zero-extended to 64 bits: the value of
// ap_uint<31> * ap_uint<33>, which in C simulation goes through a heap-allocating
// 128-bit multiply (ap_private; about a tenth of the snn kernel's C-simulation time).
inline uint32_t divide(uint32_t n, const Divisor& d) {
    const uint64_t p = uint64_t(n & 0x7FFFFFFFu) * d.m.to_uint64();
    return uint32_t(p >> d.shift);
}

// Conv output height (width): (in_h + 2 pad - k) / stride + 1, for in_h + 2 pad >= k.
inline uint64_t out_h(unsigned in_h, unsigned k, unsigned pad, const Divisor& stride) {
    return divide(in_h + 2 * pad - k, stride) + 1;
}

}  // namespace snn

// Top function; the scalar arguments are the AXI-Lite registers in SNN.registers order.
void snn_top(cimstack::axis_stream& in, cimstack::axis_stream& out,
             ap_uint<32> mode, ap_uint<32> op, ap_uint<32> src_h, ap_uint<32> src_w,
             ap_uint<32> pool, ap_uint<32> in_c, ap_uint<32> in_h, ap_uint<32> in_w,
             ap_uint<32> out_c, ap_uint<32> ksize, ap_uint<32> padding, ap_uint<32> stride,
             ap_uint<32> n_lo, ap_uint<32> n_count, ap_uint<32> w_bits, ap_uint<32> v_bits,
             ap_uint<32> theta, ap_uint<32> leak_shift, ap_uint<32> reset_mode,
             ap_uint<32> overflow, ap_uint<32> fire_mode, ap_uint<32> leak_order,
             ap_uint<32> v_init, ap_uint<32> n_words, ap_uint<32> n_steps,
             ap_uint<32> n_samples, ap_uint<32> v_out);

#endif
