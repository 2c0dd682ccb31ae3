// dcim kernel: weight-stationary digital CIM macro slice (docs/macros.md).
// Capacity and registers mirror host/cimstack/overlay_shape.py (DCIM).
#ifndef CIMSTACK_DCIM_TOP_H
#define CIMSTACK_DCIM_TOP_H

#include "cimstack/streams.h"

namespace dcim {

const unsigned MAX_K = 1152;              // matrix rows (inputs per output)
const unsigned MAX_N = 128;               // output channels
const unsigned MAX_W_BITS = 8;
const unsigned MAX_X_BITS = 8;
const unsigned MAX_ROWS_ON = 4096;        // DcimSpec limit; groups are capped at K
const unsigned MAX_PSUM_BITS = 16;
const unsigned MAX_SHIFT = 62;
const unsigned PLANE_WORDS = MAX_K / 64;  // 64-bit words of one bit plane
// Weight bit columns: w_bits per channel (two for binary weights: w > 0 and w != 0),
// LANES of them read in parallel over one 64-row word per cycle.
const unsigned MAX_COLS = MAX_N * MAX_W_BITS;
const unsigned LANES = 16;
const unsigned LANE_GROUPS = MAX_COLS / LANES;      // at most 64: one bit each in a word
const unsigned BANK_DEPTH = LANE_GROUPS * PLANE_WORDS;

// Stream formats and word counts: cimstack/streams.h.
enum Mode { LOAD_WEIGHTS = 0, LOAD_REQUANT = 1, COMPUTE = 2 };

}  // namespace dcim

// Top function; the scalar arguments are the AXI-Lite registers in DCIM.registers order.
void dcim_top(cimstack::axis_stream& in, cimstack::axis_stream& out,
              ap_uint<32> mode, ap_uint<32> k_rows, ap_uint<32> n_out, ap_uint<32> n_vec,
              ap_uint<32> w_bits, ap_uint<32> x_bits, ap_uint<32> rows_on,
              ap_uint<32> psum_bits, ap_uint<32> psum_mode, ap_uint<32> shift,
              ap_int<32> out_lo, ap_int<32> out_hi);

#endif
