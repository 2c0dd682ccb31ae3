// acim kernel: weight-stationary analog charge-domain CIM macro slice.
//
// mode 0 streams the K x N int8 weights (k-major, 8 per word) into on-chip memory;
// mode 1 the requantizer (B_n, M_n per channel, as dcim); mode 3 the ABN parameters (one
// word per channel: gain g in bits 0..31 as uint32, offset o in bits 32..63 as int32);
// mode 2 streams n_vec input vectors (K bytes each, word aligned) and writes N int32
// outputs per vector (requantized ADC codes, 2 per word, word aligned), TLAST on the last
// word of the call. Noise is keyed by (seed, layer, sample_base + v, chan_base + n).
// Semantics: docs/macros.md; arithmetic: cimstack/acim_adc.h, cimstack/acim_noise.h.
#include "acim_top.h"

#include "cimstack/acim_adc.h"
#include "cimstack/acim_noise.h"

using cimstack::min_u;
using cimstack::u64;
using namespace acim;

static int8_t weights[MAX_K][MAX_N];
static int64_t abn_gain[MAX_N];
static int64_t abn_offset[MAX_N];
static int64_t rq_bias[MAX_N];
static int64_t rq_mult[MAX_N];

static void load_weights(cimstack::axis_stream& in, unsigned k, unsigned n) {
    const auto store = [](unsigned row, unsigned col, unsigned byte) {
        weights[row][col] = int8_t(uint8_t(byte));
    };
    cimstack::read_bytes<MAX_K * MAX_N / 8>(in, k, n, store);
}

static void load_abn(cimstack::axis_stream& in, unsigned n) {
LOAD_ABN:
    for (unsigned c = 0; c < n; ++c) {
#pragma HLS LOOP_TRIPCOUNT max = 128
#pragma HLS PIPELINE II = 1
        const u64 data = in.read().data;
        abn_gain[c] = int64_t(uint32_t(data));
        abn_offset[c] = int64_t(int32_t(uint32_t(data >> 32)));
    }
}

struct Params {
    unsigned k, n, n_vec, w_bits, x_bits, adc_bits, gain_frac, offset_frac, shift;
    bool per_bit;
    int64_t norm, sigma_q;
    uint64_t key, sample_base;
    unsigned chan_base;
    int32_t lo, hi;
};

// Saturate out-of-format ABN values to the int64-safe range (|G| < 256, |beta| <= 2048
// LSB); the drivers reject such values before they reach the kernel.
static int64_t sat(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

static void compute(cimstack::axis_stream& in, cimstack::axis_stream& out, const Params& p) {
    using namespace cimstack;
    const int64_t h = int64_t(1) << (p.adc_bits - 1);
    const int64_t w_max = int64_t(1) << (p.w_bits - 1);
    const int64_t xm = (int64_t(1) << p.x_bits) - 1;
    const int64_t fs = p.per_bit ? p.norm * w_max : p.norm * xm * w_max;
    int64_t gain_term[MAX_N], level[MAX_N];
PREP:
    for (unsigned c = 0; c < p.n; ++c) {
#pragma HLS LOOP_TRIPCOUNT max = 128
        const int64_t g = sat(abn_gain[c], 0, (int64_t(256) << p.gain_frac) - 1);
        const int64_t o = sat(abn_offset[c], -(int64_t(2048) << p.offset_frac),
                              int64_t(2048) << p.offset_frac);
        gain_term[c] = (h * g) << (ACIM_FRAC - p.gain_frac);
        level[c] = (h << ACIM_FRAC) + (o << (ACIM_FRAC - p.offset_frac)) +
                   (int64_t(1) << (ACIM_FRAC - 1));
    }
    const int64_t bit_level = (h << ACIM_FRAC) + (int64_t(1) << (ACIM_FRAC - 1));
VEC:
    for (unsigned v = 0; v < p.n_vec; ++v) {
#pragma HLS LOOP_TRIPCOUNT max = 1024
        uint8_t x[MAX_K];
        read_bytes<MAX_K / 8>(in, p.k, 1, [&](unsigned row, unsigned, unsigned byte) {
            x[row] = uint8_t(byte);
        });
        const uint64_t sample = p.sample_base + v;
        int32_t code[MAX_N];
    CHANNEL:
        for (unsigned c = 0; c < p.n; ++c) {
#pragma HLS LOOP_TRIPCOUNT max = 128
            const unsigned channel = p.chan_base + c;
            if (!p.per_bit) {
                int32_t dot = 0;
            DOT:
                for (unsigned r = 0; r < p.k; ++r) {
#pragma HLS LOOP_TRIPCOUNT max = 1152
#pragma HLS PIPELINE II = 1
                    dot += int32_t(x[r]) * int32_t(weights[r][c]);
                }
                const int64_t noise = p.sigma_q == 0 ? 0 :
                    (p.sigma_q * noise_m(p.key, sample, channel, 0)) << ACIM_NOISE_SHIFT;
                code[c] = int32_t(adc_convert(dot, fs, gain_term[c], level[c], noise,
                                              p.adc_bits));
            } else {
                int64_t s = 0;
            BIT:
                for (unsigned b = 0; b < p.x_bits; ++b) {
#pragma HLS LOOP_TRIPCOUNT max = 8
                    int32_t dot = 0;
                DOT_BIT:
                    for (unsigned r = 0; r < p.k; ++r) {
#pragma HLS LOOP_TRIPCOUNT max = 1152
#pragma HLS PIPELINE II = 1
                        if ((x[r] >> b) & 1) dot += int32_t(weights[r][c]);
                    }
                    const int64_t noise = p.sigma_q == 0 ? 0 :
                        (p.sigma_q * noise_m(p.key, sample, channel, b)) << ACIM_NOISE_SHIFT;
                    const int64_t cb = adc_convert(dot, fs, gain_term[c], bit_level, noise,
                                                   p.adc_bits);
                    s += (cb - h) * (int64_t(1) << b);
                }
                code[c] = int32_t(perbit_combine(s, p.x_bits, level[c] , p.adc_bits));
            }
        }
        write_requantized(out, code, p.n, rq_mult, rq_bias, p.shift, p.lo, p.hi,
                          v + 1 == p.n_vec);
    }
}

void acim_top(cimstack::axis_stream& in, cimstack::axis_stream& out,
              ap_uint<32> mode, ap_uint<32> k_rows, ap_uint<32> n_out, ap_uint<32> n_vec,
              ap_uint<32> w_bits, ap_uint<32> x_bits, ap_uint<32> rows, ap_uint<32> segments,
              ap_uint<32> swing, ap_uint<32> adc_bits, ap_uint<32> per_bit,
              ap_uint<32> gain_frac, ap_uint<32> offset_frac, ap_uint<32> sigma_q,
              ap_uint<32> seed, ap_uint<32> layer, ap_uint<32> chan_base,
              ap_uint<32> sample_base, ap_uint<32> shift, ap_int<32> out_lo,
              ap_int<32> out_hi) {
#pragma HLS INTERFACE axis port = in
#pragma HLS INTERFACE axis port = out
#pragma HLS INTERFACE s_axilite port = mode bundle = control
#pragma HLS INTERFACE s_axilite port = k_rows bundle = control
#pragma HLS INTERFACE s_axilite port = n_out bundle = control
#pragma HLS INTERFACE s_axilite port = n_vec bundle = control
#pragma HLS INTERFACE s_axilite port = w_bits bundle = control
#pragma HLS INTERFACE s_axilite port = x_bits bundle = control
#pragma HLS INTERFACE s_axilite port = rows bundle = control
#pragma HLS INTERFACE s_axilite port = segments bundle = control
#pragma HLS INTERFACE s_axilite port = swing bundle = control
#pragma HLS INTERFACE s_axilite port = adc_bits bundle = control
#pragma HLS INTERFACE s_axilite port = per_bit bundle = control
#pragma HLS INTERFACE s_axilite port = gain_frac bundle = control
#pragma HLS INTERFACE s_axilite port = offset_frac bundle = control
#pragma HLS INTERFACE s_axilite port = sigma_q bundle = control
#pragma HLS INTERFACE s_axilite port = seed bundle = control
#pragma HLS INTERFACE s_axilite port = layer bundle = control
#pragma HLS INTERFACE s_axilite port = chan_base bundle = control
#pragma HLS INTERFACE s_axilite port = sample_base bundle = control
#pragma HLS INTERFACE s_axilite port = shift bundle = control
#pragma HLS INTERFACE s_axilite port = out_lo bundle = control
#pragma HLS INTERFACE s_axilite port = out_hi bundle = control
#pragma HLS INTERFACE s_axilite port = return bundle = control
#pragma HLS INTERFACE ap_ctrl_hs port = return
#pragma HLS ARRAY_PARTITION variable = rq_bias cyclic factor = 2
#pragma HLS ARRAY_PARTITION variable = rq_mult cyclic factor = 2
    // Out-of-range registers are clipped to the static bounds (the drivers check them);
    // a call missing a register its mode needs does nothing.
    const unsigned k = min_u(unsigned(k_rows), MAX_K);
    const unsigned n = min_u(unsigned(n_out), MAX_N);
    switch (unsigned(mode)) {
        case LOAD_WEIGHTS:
            if (k != 0 && n != 0) load_weights(in, k, n);
            break;
        case LOAD_REQUANT:
            if (n != 0) cimstack::load_requant(in, n, rq_bias, rq_mult);
            break;
        case LOAD_ABN:
            if (n != 0) load_abn(in, n);
            break;
        case COMPUTE: {
            Params p;
            p.k = k;
            p.n = n;
            p.n_vec = unsigned(n_vec);
            p.w_bits = min_u(unsigned(w_bits), MAX_W_BITS);
            p.x_bits = min_u(unsigned(x_bits), MAX_X_BITS);
            p.adc_bits = min_u(unsigned(adc_bits), MAX_ADC_BITS);
            p.gain_frac = min_u(unsigned(gain_frac), MAX_FRAC);
            p.offset_frac = min_u(unsigned(offset_frac), MAX_FRAC);
            p.shift = min_u(unsigned(shift), MAX_SHIFT);
            p.per_bit = unsigned(per_bit) != 0;
            p.sigma_q = min_u(unsigned(sigma_q), MAX_SIGMA_Q);
            p.key = cimstack::noise_key(uint32_t(seed), min_u(unsigned(layer), MAX_LAYER));
            p.sample_base = uint64_t(uint32_t(sample_base));
            p.chan_base = min_u(unsigned(chan_base), MAX_CHANNEL);
            p.lo = int32_t(out_lo);
            p.hi = int32_t(out_hi);
            const unsigned r = min_u(unsigned(rows), MAX_ROWS);
            const unsigned seg = unsigned(segments);
            if (k == 0 || n == 0 || p.w_bits == 0 || p.x_bits == 0 || p.adc_bits == 0 ||
                r < k || seg == 0 || seg > r || r % seg != 0)
                break;
            const unsigned seg_rows = r / seg;
            // N_norm: the whole array (fixed swing) or the active segments (adaptive).
            p.norm = unsigned(swing) != 0 ? int64_t((k + seg_rows - 1) / seg_rows) * seg_rows
                                          : int64_t(r);
            compute(in, out, p);
            break;
        }
        default:
            break;
    }
}
