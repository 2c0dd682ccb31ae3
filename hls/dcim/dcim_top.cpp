// dcim kernel: weight-stationary bit-serial digital CIM macro slice.
//
// mode 0 streams the K x N int8 weights (k-major, 8 per word) into bit planes held in
// on-chip memory across calls; mode 1 streams the requantizer (B_n, M_n per channel);
// mode 2 streams n_vec input vectors (K bytes each, word aligned) and writes N int32
// outputs per vector (2 per word, word aligned), TLAST on the last word of the call.
// Semantics: docs/macros.md. Weight geometry (k_rows, n_out) in mode 2 must match the
// last mode 0; rows_on may change between calls (the block table is rebuilt).
#include "dcim_top.h"

#include "cimstack/bitserial.h"

using cimstack::min_u;
using cimstack::u64;
using namespace dcim;

// Weight SRAM: bit j of weight (k, n) is bit k%64 of w_plane[j][n][k/64].
static u64 w_plane[MAX_W_BITS][MAX_N][PLANE_WORDS];
// Rows of kept (not all-zero) blocks per channel, for the current rows_on.
static u64 kept_rows[MAX_N][PLANE_WORDS];
static unsigned kept_k = 0, kept_n = 0, kept_rows_on = 0;  // geometry of kept_rows; 0 = stale
static int64_t rq_bias[MAX_N];
static int64_t rq_mult[MAX_N];

// Rows lo .. lo+len-1 (len <= 64) of channel n whose weight is not zero.
static u64 nonzero_bits(unsigned n, unsigned lo, unsigned len) {
    u64 v = 0;
NZ_OR:
    for (unsigned j = 0; j < MAX_W_BITS; ++j) {
#pragma HLS UNROLL
        v |= cimstack::plane_bits(w_plane[j][n], lo, len);
    }
    return v;
}

// Bits of weight column j of channel n over rows lo .. lo+len-1 (len <= 64). For binary
// weights (w_bits = 1) the stored bit is 1 for a positive weight.
static u64 weight_bits(unsigned n, unsigned j, unsigned w_bits, unsigned lo, unsigned len) {
    if (w_bits != 1) return cimstack::plane_bits(w_plane[j][n], lo, len);
    return nonzero_bits(n, lo, len) & ~cimstack::plane_bits(w_plane[MAX_W_BITS - 1][n], lo, len);
}

static void load_weights(cimstack::axis_stream& in, unsigned k, unsigned n) {
    const unsigned words = (k + 63) / 64;
CLEAR_N:
    for (unsigned c = 0; c < n; ++c) {
#pragma HLS LOOP_TRIPCOUNT max = 128
    CLEAR_W:
        for (unsigned w = 0; w < words; ++w) {
#pragma HLS LOOP_TRIPCOUNT max = 18
#pragma HLS PIPELINE II = 1
            for (unsigned j = 0; j < MAX_W_BITS; ++j) w_plane[j][c][w] = 0;
        }
    }
    const auto store = [](unsigned row, unsigned col, unsigned byte) {
        for (unsigned j = 0; j < MAX_W_BITS; ++j)
            if ((byte >> j) & 1) w_plane[j][col][row >> 6] |= u64(1) << (row & 63);
    };
    cimstack::read_bytes<MAX_K * MAX_N / 8>(in, k, n, store);
    kept_rows_on = 0;
}

// Rebuild kept_rows: a block (group g, channel c) is kept unless all its weights are 0.
static void prepare_blocks(unsigned k, unsigned n, unsigned rows_on) {
    const unsigned words = (k + 63) / 64;
    const unsigned r = min_u(rows_on, k);
PREP_N:
    for (unsigned c = 0; c < n; ++c) {
#pragma HLS LOOP_TRIPCOUNT max = 128
    PREP_CLEAR:
        for (unsigned w = 0; w < words; ++w) kept_rows[c][w] = 0;
    PREP_G:
        for (unsigned lo = 0; lo < k; lo += r) {
#pragma HLS LOOP_TRIPCOUNT max = 72
            const unsigned len = min_u(r, k - lo);
            bool kept = false;
        PREP_CHUNK:
            for (unsigned o = 0; o < len; o += 64)
                kept |= nonzero_bits(c, lo + o, min_u(64, len - o)) != 0;
            if (kept) cimstack::plane_set(kept_rows[c], lo, len);
        }
    }
    kept_k = k;
    kept_n = n;
    kept_rows_on = rows_on;
}

// Exact partial sums: column reads over whole words (no ADC, so groups need not be
// separated). Pruned blocks are all zero and contribute nothing; the binary reference
// column reads only rows holding a weight, so the result is x . W exactly.
static void matvec_exact(const u64 xp[MAX_X_BITS][PLANE_WORDS], unsigned k, unsigned n,
                         unsigned w_bits, unsigned x_bits, int32_t acc[MAX_N]) {
    const unsigned words = (k + 63) / 64;
EX_N:
    for (unsigned c = 0; c < n; ++c) {
#pragma HLS LOOP_TRIPCOUNT max = 128
        int32_t a = 0;
    EX_W:
        for (unsigned w = 0; w < words; ++w) {
#pragma HLS LOOP_TRIPCOUNT max = 18
#pragma HLS PIPELINE II = 1
            const unsigned len = min_u(64, k - 64 * w);
        EX_J:
            for (unsigned j = 0; j < MAX_W_BITS; ++j) {
                if (j >= w_bits) break;
                const u64 wb = weight_bits(c, j, w_bits, 64 * w, len);
                const u64 nz = w_bits == 1 ? nonzero_bits(c, 64 * w, len) : 0;
                int32_t col = 0;
            EX_B:
                for (unsigned b = 0; b < MAX_X_BITS; ++b) {
                    if (b >= x_bits) break;
                    int32_t p = int32_t(cimstack::popcount64(xp[b][w] & wb));
                    if (w_bits == 1) p = 2 * p - int32_t(cimstack::popcount64(xp[b][w] & nz));
                    col += p * (1 << b);
                }
                a += w_bits == 1 ? col : cimstack::column_coeff(j, w_bits) * col;
            }
        }
        acc[c] = a;
    }
}

// ADC-limited partial sums: one column read per (input bit, weight column, group) of
// every kept block; pruned blocks are skipped.
static void matvec_blocks(const u64 xp[MAX_X_BITS][PLANE_WORDS], unsigned k, unsigned n,
                          unsigned w_bits, unsigned x_bits, unsigned rows_on,
                          const cimstack::Adc& adc, int32_t acc[MAX_N]) {
    const unsigned r = min_u(rows_on, k);
    int coeff[MAX_W_BITS];
BL_COEFF:
    for (unsigned j = 0; j < MAX_W_BITS; ++j) coeff[j] = cimstack::column_coeff(j, w_bits);
BL_INIT:
    for (unsigned c = 0; c < n; ++c) acc[c] = 0;
BL_G:
    for (unsigned lo = 0; lo < k; lo += r) {
#pragma HLS LOOP_TRIPCOUNT max = 72
        const unsigned len = min_u(r, k - lo);
        const unsigned chunks = (len + 63) / 64;
        u64 xg[MAX_X_BITS][PLANE_WORDS];
        int ref[MAX_X_BITS];  // binary reference column: -adc(q)
    BL_X:
        for (unsigned b = 0; b < x_bits; ++b) {
            unsigned q = 0;
            for (unsigned i = 0; i < chunks; ++i) {
                xg[b][i] = cimstack::plane_bits(xp[b], lo + 64 * i, min_u(64, len - 64 * i));
                q += cimstack::popcount64(xg[b][i]);
            }
            ref[b] = w_bits == 1 ? -int(adc.read(q)) : 0;
        }
    BL_N:
        for (unsigned c = 0; c < n; ++c) {
#pragma HLS LOOP_TRIPCOUNT max = 128
            if (cimstack::plane_bits(kept_rows[c], lo, 1) == 0) continue;  // pruned block
            u64 wg[MAX_W_BITS][PLANE_WORDS];
        BL_WJ:
            for (unsigned j = 0; j < w_bits; ++j)
                for (unsigned i = 0; i < chunks; ++i)
                    wg[j][i] = weight_bits(c, j, w_bits, lo + 64 * i, min_u(64, len - 64 * i));
            int32_t s = 0;
        BL_B:
            for (unsigned b = 0; b < x_bits; ++b) {
                int sb = ref[b];
            BL_J:
                for (unsigned j = 0; j < w_bits; ++j)
                    sb += coeff[j] * int(adc.read(cimstack::group_popcount(xg[b], wg[j], chunks)));
                s += sb * (1 << b);
            }
            acc[c] += s;
        }
    }
}

static void compute(cimstack::axis_stream& in, cimstack::axis_stream& out, unsigned k,
                    unsigned n, unsigned n_vec, unsigned w_bits, unsigned x_bits,
                    unsigned rows_on, const cimstack::Adc& adc, unsigned shift,
                    int32_t lo, int32_t hi) {
    if (kept_rows_on != rows_on || kept_k != k || kept_n != n) prepare_blocks(k, n, rows_on);
    const unsigned plane_words = (k + 63) / 64;
VEC:
    for (unsigned v = 0; v < n_vec; ++v) {
#pragma HLS LOOP_TRIPCOUNT max = 1024
        u64 xp[MAX_X_BITS][PLANE_WORDS];
#pragma HLS ARRAY_PARTITION variable = xp dim = 1 complete
    X_CLEAR:
        for (unsigned w = 0; w < plane_words; ++w)
            for (unsigned b = 0; b < MAX_X_BITS; ++b) xp[b][w] = 0;
        cimstack::read_bytes<MAX_K / 8>(in, k, 1, [&](unsigned row, unsigned, unsigned x) {
            for (unsigned b = 0; b < MAX_X_BITS; ++b)
                if (b < x_bits && ((x >> b) & 1)) xp[b][row >> 6] |= u64(1) << (row & 63);
        });
        int32_t acc[MAX_N];
        if (adc.exact) matvec_exact(xp, k, n, w_bits, x_bits, acc);
        else matvec_blocks(xp, k, n, w_bits, x_bits, rows_on, adc, acc);
        cimstack::write_requantized(out, acc, n, rq_mult, rq_bias, shift, lo, hi,
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
#pragma HLS ARRAY_PARTITION variable = w_plane dim = 1 complete
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
            if (k == 0 || n == 0) break;
            load_weights(in, k, n);
            if (r != 0) prepare_blocks(k, n, r);
            break;
        case LOAD_REQUANT:
            if (n != 0) cimstack::load_requant(in, n, rq_bias, rq_mult);
            break;
        case COMPUTE: {
            if (k == 0 || n == 0 || wb == 0 || xb == 0 || r == 0) break;
            const cimstack::Adc adc(unsigned(psum_bits), unsigned(psum_mode), r);
            compute(in, out, k, n, unsigned(n_vec), wb, xb, r, adc,
                    min_u(unsigned(shift), MAX_SHIFT), int32_t(out_lo), int32_t(out_hi));
            break;
        }
        default:
            break;
    }
}
