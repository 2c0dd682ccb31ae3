// acim kernel: weight-stationary analog charge-domain CIM macro slice (docs/macros.md,
// "Analog CIM macro (acim)"). Capacity and registers mirror host/cimstack/overlay_shape.py
// (ACIM).
#ifndef CIMSTACK_ACIM_TOP_H
#define CIMSTACK_ACIM_TOP_H

#include "cimstack/streams.h"

namespace acim {

const unsigned MAX_K = 1152;              // active rows (inputs per output)
const unsigned MAX_N = 128;               // output channels of one slice
const unsigned ROW_WORDS = MAX_N / 8;     // words of one weight row (8 channels each)
const unsigned MAX_ROWS = 1152;           // array rows (AcimSpec.rows)
const unsigned MAX_W_BITS = 8;
const unsigned MAX_X_BITS = 8;
const unsigned MAX_ADC_BITS = 8;
const unsigned MAX_FRAC = 16;             // gain_frac / offset_frac
const unsigned MAX_SIGMA_Q = 4096;        // 16 LSB in 1/256 LSB
const unsigned MAX_LAYER = 65535;
const unsigned MAX_CHANNEL = 65535;
const unsigned MAX_SHIFT = 62;

enum Mode { LOAD_WEIGHTS = 0, LOAD_REQUANT = 1, COMPUTE = 2, LOAD_ABN = 3 };

// Stream words of a LOAD_ABN call; the other formats, shared with dcim: cimstack/streams.h.
inline uint64_t abn_words(unsigned n) { return uint64_t(n); }

}  // namespace acim

// Top function; the scalar arguments are the AXI-Lite registers in ACIM.registers order.
void acim_top(cimstack::axis_stream& in, cimstack::axis_stream& out,
              ap_uint<32> mode, ap_uint<32> k_rows, ap_uint<32> n_out, ap_uint<32> n_vec,
              ap_uint<32> w_bits, ap_uint<32> x_bits, ap_uint<32> rows, ap_uint<32> segments,
              ap_uint<32> swing, ap_uint<32> adc_bits, ap_uint<32> per_bit,
              ap_uint<32> gain_frac, ap_uint<32> offset_frac, ap_uint<32> sigma_q,
              ap_uint<32> seed, ap_uint<32> layer, ap_uint<32> chan_base,
              ap_uint<32> sample_base, ap_uint<32> shift, ap_int<32> out_lo,
              ap_int<32> out_hi);

#endif
