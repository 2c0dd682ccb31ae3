// dcim kernel: weight-stationary bit-serial digital CIM macro slice.
//
// mode 0 streams the K x N int8 weights (k-major, 8 per word) into bit columns held in
// on-chip memory across calls; mode 1 streams the requantizer (B_n, M_n per channel);
// mode 2 streams n_vec input vectors (K bytes each, word aligned) and writes N int32
// outputs per vector (2 per word, word aligned), TLAST on the last word of the call.
// Semantics: docs/macros.md. Mode 2 uses the weight geometry (k_rows, n_out, w_bits) of
// the last mode 0 and must be given the same k_rows and n_out; rows_on may change
// between calls (the block table is rebuilt).
//
// Datapath (its cycle model: host/cimstack/cost/fpga.py):
// - every stream word is unpacked in one II = 1 iteration: the 8 bytes of an input word
//   are transposed into 8 bits of every input bit plane, those of a weight word into
//   their weight bit columns;
// - a compute step reads one 64-row word of LANES weight bit columns (a lane group) and
//   makes, per lane, the column reads popcount(x_b AND column) of every input bit b;
// - with exact partial sums, reading vector v+1, computing v and writing v-1 share one
//   pipelined loop (ping-pong input planes and accumulators); behind a column ADC the
//   three run one after the other and the lane groups whose blocks are all pruned in a
//   row group are skipped.
//
// Weight SRAM: column col = c * cpc + j holds bit j of channel c's weights (cpc columns
// per channel: column_bits), one 64-bit word per 64 rows; bank col % LANES, so a lane
// group (LANES consecutive columns) reads one word of each bank. The weight stream is
// row-major, so a load first gathers 8 rows of every column in a band buffer (LUTRAM,
// bit writes) and then writes the band's column bytes into the SRAM with byte enables,
// LANES columns per cycle, while the next band fills (ping-pong). A weight word whose
// bytes span two rows can meet a band bank twice (n not a multiple of 8): a second cycle
// in hardware, not counted by the cycle model.
#include "dcim_top.h"

#include "cimstack/bitserial.h"

using cimstack::min_u;
using cimstack::popcount64;
using cimstack::u64;
using namespace dcim;

// Bit r of w_col[(col / LANES) * PLANE_WORDS + w][col % LANES]: column col, row 64 w + r.
// The lane index is the partitioned dimension (LANES banks, as before); declared last,
// the LANES words of one step are adjacent in the C simulation's memory (two cache
// lines, not sixteen: 10-19% of its time on ResNet18's calls).
static u64 w_col[BANK_DEPTH][LANES];
// Band buffers of the load: bit 8 * (col % 8) + row % 8 of band[row / 8 % 2][col / 8].
static u64 band[2][LANE_GROUPS * 2];
// Channel and column index j of lane 0 of every lane group, for the last mode 0.
static uint8_t lane_chan[LANE_GROUPS];
static uint8_t lane_bit[LANE_GROUPS];
static unsigned loaded_w_bits = 1, loaded_cols = 0;  // w_bits and n * cpc of mode 0
// Bit g of kept_groups[G]: lane group g has a non-zero weight bit in row group G
// (rows_on = kept_rows_on); lane groups without one are skipped behind the ADC.
static u64 kept_groups[MAX_K];
static unsigned kept_k = 0, kept_rows_on = 0;  // geometry of kept_groups; 0 = stale
static int64_t rq_bias[MAX_N];
static int64_t rq_mult[MAX_N];
// Operand, result and input registers of the two shared units: lane_reads computes
// lane_p[b][l] = popcount(lane_x[b] AND column l); add_lanes adds the lanes' lane_v.
static u64 lane_x[MAX_X_BITS];
static uint8_t lane_p[MAX_X_BITS][LANES];
static int32_t lane_v[LANES];

static unsigned columns_per_channel(unsigned w_bits) { return w_bits == 1 ? 2 : w_bits; }

// The cpc column bits of weight byte v: its low w_bits bits; for binary weights bit 0
// is (v > 0) and bit 1 is (v != 0).
static unsigned column_bits(unsigned v, unsigned w_bits) {
    if (w_bits == 1) return unsigned(int8_t(v) > 0) | unsigned(v != 0) << 1;
    return v & ((1u << w_bits) - 1);
}

// Column j's term of a channel's sum, c_j * v: cimstack::column_coeff as a shift and a
// sign (no multiplier); for binary weights 2v on (w > 0) and -v on (w != 0), as
// x . w = 2 x . [w > 0] - x . [w != 0].
static int32_t lane_term(unsigned j, unsigned w_bits, int32_t v) {
    if (w_bits == 1) return j == 0 ? v << 1 : -v;
    return j + 1 == w_bits ? -(v << j) : v << j;
}

// Rows lo .. lo+len-1 that fall in the 64-row word w, as a mask of that word.
static u64 row_mask(unsigned w, unsigned lo, unsigned len) {
    const unsigned first = lo > 64 * w ? lo - 64 * w : 0;
    return cimstack::low_mask(min_u(lo + len - 64 * w, 64)) & ~cimstack::low_mask(first);
}

// Input word i (rows 8i .. 8i+7 of the vector) into byte i % 8 of word i / 8 of every
// input bit plane (the rest of that word cleared when i % 8 = 0).
static void unpack_input(u64 xp[MAX_X_BITS][PLANE_WORDS], u64 i, u64 data) {
    const u64 t = cimstack::transpose8(data);  // byte b: bit b of the 8 inputs
    const unsigned w = unsigned(i >> 3), shift = 8 * unsigned(i & 7);
UNPACK_B:
    for (unsigned b = 0; b < MAX_X_BITS; ++b) {
        const u64 bits = ((t >> (8 * b)) & 0xFF) << shift;
        xp[b][w] = shift == 0 ? bits : xp[b][w] | bits;
    }
}

// One write-out step of band `b` (rows 8 rt .. 8 rt + 7): its words 2s and 2s+1, i.e.
// the column bytes of columns LANES * s .. LANES * s + 15, into byte rt % 8 of their
// column words; the two band words are cleared for their next use.
static void write_band_step(unsigned b, unsigned rt, unsigned s) {
WB_LANE:
    for (unsigned l = 0; l < LANES; ++l) {
        const unsigned col = LANES * s + l, shift = 8 * (rt & 7);
        const u64 byte = (band[b][col >> 3] >> (8 * (col & 7))) & 0xFF;
        u64& word = w_col[s * PLANE_WORDS + (rt >> 3)][l];
        word = (word & ~(u64(0xFF) << shift)) | byte << shift;
    }
    band[b][2 * s] = 0;
    band[b][2 * s + 1] = 0;
}

static void load_weights(cimstack::axis_stream& in, unsigned k, unsigned n, unsigned w_bits) {
    const unsigned cpc = columns_per_channel(w_bits);
    const unsigned groups = (n * cpc + LANES - 1) / LANES;
    unsigned c = 0, j = 0;
LANE_TABLE:
    for (unsigned lg = 0; lg < groups; ++lg) {
#pragma HLS LOOP_TRIPCOUNT max = LANE_GROUPS
#pragma HLS PIPELINE II = 1
        lane_chan[lg] = uint8_t(c);
        lane_bit[lg] = uint8_t(j);
        for (unsigned l = 0; l < LANES; ++l)
            if (++j == cpc) { j = 0; ++c; }
    }
    // byte (row, ch) sets bit row % 8 of its cpc column bytes in band row / 8 % 2; a
    // full band (8 rows) is written out one step per following word, and is done
    // before the band after the next one starts (it takes n words, its write-out at
    // most n steps)
    unsigned row = 0, ch = 0, col = 0;
    bool pending = false;  // a band awaits write-out: rows 8 out_rt .., next step out_s
    unsigned out_rt = 0, out_s = 0;
    cimstack::read_words<MAX_K * MAX_N / 8>(in, k, n, [&](u64, u64 data) {
        if (pending) {
            write_band_step(out_rt & 1, out_rt, out_s);
            pending = ++out_s < groups;
        }
    LOAD_BYTE:
        for (unsigned t = 0; t < 8; ++t) {
            if (row >= k) break;
            const unsigned v = column_bits(unsigned(data >> (8 * t)) & 0xFF, w_bits);
            // the bit is ORed in, set or not (v < 2^cpc): in the C simulation a branch
            // on the weights' random bits took about half the load's time
            for (unsigned i = 0; i < MAX_W_BITS; ++i)
                if (i < cpc)
                    band[(row >> 3) & 1][(col + i) >> 3] |= u64((v >> i) & 1)
                                                            << (8 * ((col + i) & 7) + (row & 7));
            col += cpc;
            if (++ch == n) {
                if ((row & 7) == 7) { pending = true; out_rt = row >> 3; out_s = 0; }
                ch = 0;
                col = 0;
                ++row;
            }
        }
    });
    // after the stream: the rest of the last full band, then a last band of k % 8 rows
WRITE_PENDING_BAND:
    for (; pending; pending = ++out_s < groups) {
#pragma HLS LOOP_TRIPCOUNT max = LANE_GROUPS
#pragma HLS PIPELINE II = 1
        write_band_step(out_rt & 1, out_rt, out_s);
    }
WRITE_SHORT_BAND:
    for (unsigned s = 0; (k & 7) != 0 && s < groups; ++s) {
#pragma HLS LOOP_TRIPCOUNT max = LANE_GROUPS
#pragma HLS PIPELINE II = 1
        write_band_step((k >> 3) & 1, k >> 3, s);
    }
    loaded_w_bits = w_bits;
    loaded_cols = n * cpc;
    kept_rows_on = 0;
}

static unsigned lane_groups() { return (loaded_cols + LANES - 1) / LANES; }

// Add the terms of lane group g's lanes (values lane_v) to their channels' accumulators:
// the terms of a channel's lanes are summed first, then added to its accumulator; with
// `start` a channel whose column 0 is in the group sets its accumulator instead. One
// instance serves both read-outs.
static void add_lanes(unsigned g, bool start, int32_t acc[MAX_N]) {
#pragma HLS INLINE off
    const unsigned cpc = columns_per_channel(loaded_w_bits);
    const unsigned last = min_u(LANES, loaded_cols - LANES * g) - 1;  // the group's last lane
    unsigned c = lane_chan[g], j = lane_bit[g];
    bool set = start && j == 0;  // channel c's column 0 is in the group
    int32_t sum = 0;             // the terms of channel c's lanes so far
ADD_LANE:
    for (unsigned l = 0; l < LANES; ++l) {
        sum += lane_term(j, loaded_w_bits, lane_v[l]);
        if (++j == cpc || l == last) {
            acc[c] = set ? sum : acc[c] + sum;
            if (l == last) break;
            sum = 0;
            set = start;
            j = 0;
            ++c;
        }
    }
}

// The column reads of one step: lane_p[b][l] = popcount(lane_x[b] AND column l) for the
// LANES columns of lane group g over the 64-row word w and operands b < bits (at most
// MAX_X_BITS). Lanes past the loaded columns read stale bits their callers ignore. One
// instance (MAX_X_BITS x LANES popcounts) serves every caller.
static void lane_reads(unsigned bits, unsigned g, unsigned w) {
#pragma HLS INLINE off
LR_BIT:
    for (unsigned b = 0; b < MAX_X_BITS; ++b) {
        if (b >= bits) break;
        const u64 x = lane_x[b];
    LR_LANE:
        for (unsigned l = 0; l < LANES; ++l)
            lane_p[b][l] = uint8_t(popcount64(x & w_col[g * PLANE_WORDS + w][l]));
    }
}

// Exact partial sums, one step: lane group g over word w, every input bit; a channel's
// accumulator starts at its column 0 in word 0 (steps run w-major).
static void exact_step(const u64 xp[MAX_X_BITS][PLANE_WORDS], unsigned g, unsigned w,
                       unsigned x_bits, int32_t acc[MAX_N]) {
    for (unsigned b = 0; b < MAX_X_BITS; ++b) lane_x[b] = xp[b][w];
    lane_reads(x_bits, g, w);
    // v[l] = sum over b of lane_p[b][l] 2^b, one input bit at a time over all lanes (a
    // local array: the host compiler keeps it in vector registers)
    int32_t v[LANES];
#pragma HLS ARRAY_PARTITION variable = v complete
EX_INIT:
    for (unsigned l = 0; l < LANES; ++l) v[l] = lane_p[0][l];
EX_BIT:
    for (unsigned b = 1; b < MAX_X_BITS; ++b) {
        if (b >= x_bits) break;
    EX_LANE:
        for (unsigned l = 0; l < LANES; ++l) v[l] += int32_t(lane_p[b][l]) << b;
    }
    for (unsigned l = 0; l < LANES; ++l) lane_v[l] = v[l];
    add_lanes(g, w == 0, acc);
}

// Exact partial sums of n_vec vectors: phase p reads vector p, computes p-1 and writes
// p-2 in one pipelined loop of max(read words, compute steps, write words) iterations.
static void compute_exact(cimstack::axis_stream& in, cimstack::axis_stream& out, unsigned k,
                          unsigned n, unsigned n_vec, unsigned x_bits, unsigned shift,
                          int32_t lo, int32_t hi, u64 x_pp[2][MAX_X_BITS][PLANE_WORDS],
                          int32_t acc_pp[2][MAX_N]) {
    const unsigned in_words = unsigned(cimstack::vector_words(k));
    const unsigned out_words = unsigned(cimstack::output_vector_words(n));
    const unsigned groups = lane_groups(), steps_c = groups * ((k + 63) / 64);
    const u64 last_mask = (k & 7) ? (u64(1) << (8 * (k & 7))) - 1 : ~u64(0);
PHASE:
    for (unsigned p = 0; p < n_vec + 2; ++p) {
#pragma HLS LOOP_TRIPCOUNT max = 1026
        const bool reading = p < n_vec, computing = p >= 1 && p <= n_vec, writing = p >= 2;
        unsigned steps = reading ? in_words : 0;
        if (computing && steps_c > steps) steps = steps_c;
        if (writing && out_words > steps) steps = out_words;
        unsigned g = 0, w = 0;
    STEP:
        for (unsigned s = 0; s < steps; ++s) {
#pragma HLS LOOP_TRIPCOUNT max = BANK_DEPTH
#pragma HLS PIPELINE II = 1
            if (reading && s < in_words) {
                const u64 data = in.read().data;
                unpack_input(x_pp[p & 1], s, s + 1 == in_words ? data & last_mask : data);
            }
            if (computing && s < steps_c) {
                exact_step(x_pp[(p - 1) & 1], g, w, x_bits, acc_pp[(p - 1) & 1]);
                if (++g == groups) { g = 0; ++w; }
            }
            if (writing && s < out_words)
                out.write(cimstack::make_word(
                    cimstack::requantized_word(acc_pp[p & 1], s, n, rq_mult, rq_bias, shift,
                                               lo, hi),
                    p == n_vec + 1 && s + 1 == out_words));
        }
    }
}

// Rebuild kept_groups: lane group g is kept in row group G unless all its weight bits
// over the group's rows are 0 (lanes past the loaded columns count as 0).
static void prepare_blocks(unsigned k, unsigned rows_on) {
    const unsigned groups = lane_groups();
    unsigned gr = 0;
PREP_G:
    for (unsigned lo = 0; lo < k; lo += rows_on, ++gr) {
#pragma HLS LOOP_TRIPCOUNT max = MAX_K
        const unsigned len = min_u(rows_on, k - lo), w0 = lo >> 6, w1 = (lo + len - 1) >> 6;
        u64 kept = 0;
        unsigned g = 0, w = w0;
    PREP_STEP:
        for (unsigned s = 0; s < groups * (w1 - w0 + 1); ++s) {
#pragma HLS LOOP_TRIPCOUNT max = BANK_DEPTH
#pragma HLS PIPELINE II = 1
            lane_x[0] = row_mask(w, lo, len);
            lane_reads(1, g, w);
            const unsigned lanes = min_u(LANES, loaded_cols - LANES * g);
            for (unsigned l = 0; l < LANES; ++l)
                if (l < lanes && lane_p[0][l] != 0) kept |= u64(1) << g;
            if (w == w1) { w = w0; ++g; } else { ++w; }
        }
        kept_groups[gr] = kept;
    }
    kept_k = k;
    kept_rows_on = rows_on;
}

// ADC-limited partial sums of one vector, one input bit per step: per row group and
// kept lane group, per input bit b, the lanes' column reads over the group's words go
// through the ADC into their channels' accumulators. A binary channel's (w != 0) lane
// reads the reference column instead: q_b, popcount of x_b over the group.
static void matvec_blocks(const u64 xp[MAX_X_BITS][PLANE_WORDS], unsigned k, unsigned n,
                          unsigned x_bits, unsigned rows_on, const cimstack::Adc& adc,
                          int32_t acc[MAX_N]) {
    const unsigned cpc = columns_per_channel(loaded_w_bits);
    const bool binary = loaded_w_bits == 1;
BL_INIT:
    for (unsigned c = 0; c < n; c += LANES) {
#pragma HLS LOOP_TRIPCOUNT max = MAX_N / LANES
#pragma HLS PIPELINE II = 1
        for (unsigned l = 0; l < LANES; ++l)
            if (c + l < n) acc[c + l] = 0;
    }
    unsigned gr = 0;
BL_G:
    for (unsigned lo = 0; lo < k; lo += rows_on, ++gr) {
#pragma HLS LOOP_TRIPCOUNT max = MAX_K
        const unsigned len = min_u(rows_on, k - lo), w0 = lo >> 6, w1 = (lo + len - 1) >> 6;
        unsigned q[MAX_X_BITS];
#pragma HLS ARRAY_PARTITION variable = q complete
        for (unsigned b = 0; b < MAX_X_BITS; ++b) q[b] = 0;
    BL_X:
        for (unsigned w = w0; binary && w <= w1; ++w) {
#pragma HLS LOOP_TRIPCOUNT max = PLANE_WORDS
#pragma HLS PIPELINE II = 1
            for (unsigned b = 0; b < MAX_X_BITS; ++b)
                if (b < x_bits) q[b] += popcount64(xp[b][w] & row_mask(w, lo, len));
        }
        u64 todo = kept_groups[gr];
        const unsigned steps = popcount64(todo) * x_bits * (w1 - w0 + 1);
        unsigned g = todo ? cimstack::ctz64(todo) : 0, b = 0, w = w0;
        uint16_t cnt[LANES];  // the lanes' column reads of bit b over the group so far
        bool nz[LANES];       // the lanes' columns have a non-zero row in the group so far
#pragma HLS ARRAY_PARTITION variable = cnt complete
#pragma HLS ARRAY_PARTITION variable = nz complete
    BL_STEP:
        for (unsigned s = 0; s < steps; ++s) {
#pragma HLS LOOP_TRIPCOUNT max = BANK_DEPTH
#pragma HLS PIPELINE II = 1
            const unsigned lanes = min_u(LANES, loaded_cols - LANES * g);
            const bool first = w == w0, last = w == w1;
            lane_x[1] = row_mask(w, lo, len);  // operands: x_b over the group's rows, those rows
            lane_x[0] = xp[b][w] & lane_x[1];
            lane_reads(binary ? 2 : 1, g, w);
            unsigned j = lane_bit[g];
        BL_LANE:
            for (unsigned l = 0; l < LANES; ++l) {
                if (l >= lanes) break;
                cnt[l] = uint16_t((first ? 0 : cnt[l]) + lane_p[0][l]);
                const bool ref = binary && j == 1;
                nz[l] = ref && ((first ? false : nz[l]) || lane_p[1][l] != 0);
                lane_v[l] = last && !(ref && !nz[l])
                                ? int32_t(adc.read(ref ? q[b] : cnt[l])) << b : 0;
                if (++j == cpc) j = 0;
            }
            if (last) add_lanes(g, false, acc);
            if (!last) { ++w; continue; }
            w = w0;
            if (++b < x_bits) continue;
            b = 0;
            todo &= todo - 1;
            g = todo ? cimstack::ctz64(todo) : 0;
        }
    }
}

static void compute(cimstack::axis_stream& in, cimstack::axis_stream& out, unsigned k,
                    unsigned n, unsigned n_vec, unsigned x_bits, unsigned rows_on,
                    const cimstack::Adc& adc, unsigned shift, int32_t lo, int32_t hi) {
    // ping-pong input planes and accumulators (the ADC path uses the first of each)
    u64 x_pp[2][MAX_X_BITS][PLANE_WORDS];
#pragma HLS ARRAY_PARTITION variable = x_pp dim = 1 complete
#pragma HLS ARRAY_PARTITION variable = x_pp dim = 2 complete
    int32_t acc_pp[2][MAX_N];
#pragma HLS ARRAY_PARTITION variable = acc_pp dim = 1 complete
#pragma HLS ARRAY_PARTITION variable = acc_pp dim = 2 cyclic factor = 16
    if (adc.exact) {
        compute_exact(in, out, k, n, n_vec, x_bits, shift, lo, hi, x_pp, acc_pp);
        return;
    }
    if (kept_rows_on != rows_on || kept_k != k) prepare_blocks(k, rows_on);
VEC:
    for (unsigned v = 0; v < n_vec; ++v) {
#pragma HLS LOOP_TRIPCOUNT max = 1024
        cimstack::read_words<MAX_K / 8>(in, k, 1, [&](u64 i, u64 data) {
            unpack_input(x_pp[0], i, data);
        });
        matvec_blocks(x_pp[0], k, n, x_bits, rows_on, adc, acc_pp[0]);
        cimstack::write_requantized(out, acc_pp[0], n, rq_mult, rq_bias, shift, lo, hi,
                                    v + 1 == n_vec);
    }
}

void dcim_top(cimstack::axis_stream& in, cimstack::axis_stream& out,
              ap_uint<32> mode, ap_uint<32> k_rows, ap_uint<32> n_out, ap_uint<32> n_vec,
              ap_uint<32> w_bits, ap_uint<32> x_bits, ap_uint<32> rows_on,
              ap_uint<32> psum_bits, ap_uint<32> psum_mode, ap_uint<32> shift,
              ap_int<32> out_lo, ap_int<32> out_hi) {
#pragma HLS INTERFACE axis port = in
#pragma HLS INTERFACE axis port = out
#pragma HLS INTERFACE s_axilite port = mode bundle = control
#pragma HLS INTERFACE s_axilite port = k_rows bundle = control
#pragma HLS INTERFACE s_axilite port = n_out bundle = control
#pragma HLS INTERFACE s_axilite port = n_vec bundle = control
#pragma HLS INTERFACE s_axilite port = w_bits bundle = control
#pragma HLS INTERFACE s_axilite port = x_bits bundle = control
#pragma HLS INTERFACE s_axilite port = rows_on bundle = control
#pragma HLS INTERFACE s_axilite port = psum_bits bundle = control
#pragma HLS INTERFACE s_axilite port = psum_mode bundle = control
#pragma HLS INTERFACE s_axilite port = shift bundle = control
#pragma HLS INTERFACE s_axilite port = out_lo bundle = control
#pragma HLS INTERFACE s_axilite port = out_hi bundle = control
#pragma HLS INTERFACE s_axilite port = return bundle = control
#pragma HLS INTERFACE ap_ctrl_hs port = return
#pragma HLS ARRAY_PARTITION variable = w_col dim = 2 complete
#pragma HLS ARRAY_PARTITION variable = band dim = 1 complete
#pragma HLS ARRAY_PARTITION variable = band dim = 2 cyclic factor = 16
#pragma HLS ARRAY_PARTITION variable = lane_x complete
#pragma HLS ARRAY_PARTITION variable = lane_p dim = 0 complete
#pragma HLS ARRAY_PARTITION variable = lane_v complete
#pragma HLS ARRAY_PARTITION variable = rq_bias cyclic factor = 2
#pragma HLS ARRAY_PARTITION variable = rq_mult cyclic factor = 2
    // Out-of-range registers are clipped to the static bounds (the drivers check them);
    // a call missing a register its mode needs does nothing.
    const unsigned k = min_u(unsigned(k_rows), MAX_K);
    const unsigned n = min_u(unsigned(n_out), MAX_N);
    const unsigned wb = min_u(unsigned(w_bits), MAX_W_BITS);
    const unsigned xb = min_u(unsigned(x_bits), MAX_X_BITS);
    const unsigned r = min_u(unsigned(rows_on), MAX_ROWS_ON);
    switch (unsigned(mode)) {
        case LOAD_WEIGHTS:
            if (k == 0 || n == 0 || wb == 0) break;
            load_weights(in, k, n, wb);
            break;
        case LOAD_REQUANT:
            if (n != 0) cimstack::load_requant(in, n, rq_bias, rq_mult);
            break;
        case COMPUTE: {
            if (k == 0 || n == 0 || wb == 0 || xb == 0 || r == 0) break;
            const cimstack::Adc adc(unsigned(psum_bits), unsigned(psum_mode), r);
            compute(in, out, k, n, unsigned(n_vec), xb, r, adc,
                    min_u(unsigned(shift), MAX_SHIFT), int32_t(out_lo), int32_t(out_hi));
            break;
        }
        default:
            break;
    }
}
