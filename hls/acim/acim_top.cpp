// acim kernel: weight-stationary analog charge-domain CIM macro slice.
//
// mode 0 streams the K x N int8 weights (k-major, 8 per word) into on-chip memory;
// mode 1 the requantizer (B_n, M_n per channel, as dcim); mode 3 the ABN parameters (one
// word per channel: gain g in bits 0..31 as uint32, offset o in bits 32..63 as int32);
// mode 2 streams n_vec input vectors (K bytes each, word aligned) and writes N int32
// outputs per vector (requantized ADC codes, 2 per word, word aligned), TLAST on the last
// word of the call. Noise is keyed by (seed, layer, sample_base + v, chan_base + n).
// Semantics: docs/macros.md; arithmetic: cimstack/acim_adc.h, cimstack/acim_noise.h.
// Per vector: read its words (one per cycle), then per pass (1, or x_bits in the per-bit
// mode) one row of all channels per cycle (mac_rows) and one conversion per cycle (no
// divider: a SAR search), then write the outputs (cost model: host/cimstack/cost/fpga.py).
#include "acim_top.h"

#include <string.h>

#include "cimstack/acim_adc.h"
#include "cimstack/acim_noise.h"

using cimstack::min_u;
using cimstack::u64;
using namespace acim;

// Weights row-aligned: row r in ROW_WORDS words of 8 channels (channel c in byte c % 8 of
// word c / 8; bytes past n are zero). The 16 words of a row are read in one cycle: 8 banks
// (cyclic on the word index), each a dual-port RAM read on both ports.
static u64 wq[MAX_K][ROW_WORDS];
static u64 abn_word[MAX_N];          // the ABN words as streamed: gain bits 0..31, offset 32..63
static int64_t rq_bias[MAX_N];
static int64_t rq_mult[MAX_N];

// The weights arrive k-major, 8 per word, n per row. One wq word per cycle: its bytes come
// from a window of at most two stream words (a new one is read when the window holds
// fewer bytes than the word takes), so a row's start need not be word aligned.
static void load_weights(cimstack::axis_stream& in, unsigned k, unsigned n) {
    const unsigned row_words = (n + 7) >> 3;
    ap_uint<128> window = 0;         // the next `have` bytes of the stream, byte 0 first
    unsigned have = 0, r = 0, cw = 0;
LOAD_W:
    for (unsigned i = 0; i < k * row_words; ++i) {
#pragma HLS LOOP_TRIPCOUNT max = MAX_K * ROW_WORDS
#pragma HLS PIPELINE II = 1
        const unsigned take = cw + 1 < row_words ? 8 : n - 8 * cw;   // bytes of this word
        if (have < take) {
            window |= ap_uint<128>(u64(in.read().data)) << (8 * have);
            have += 8;
        }
        const u64 mask = take == 8 ? ~u64(0) : (u64(1) << (8 * take)) - 1;
        wq[r][cw] = window.range(63, 0).to_uint64() & mask;
        window >>= 8 * take;
        have -= take;
        if (++cw == row_words) { cw = 0; ++r; }
    }
}

static void load_abn(cimstack::axis_stream& in, unsigned n) {
LOAD_ABN:
    for (unsigned c = 0; c < n; ++c) {
#pragma HLS LOOP_TRIPCOUNT max = MAX_N
#pragma HLS PIPELINE II = 1
        abn_word[c] = in.read().data;
    }
}

struct Params {
    unsigned k, n, n_vec, x_bits, adc_bits, gain_frac, offset_frac, shift;
    bool per_bit;
    int64_t fs;                      // FS (charge mode) or FS_1 (per-bit mode)
    int64_t sigma_q;
    uint64_t key, sample_base;
    unsigned chan_base;
    int32_t lo, hi;
};

// Saturate out-of-format ABN values to the int64-safe range (|G| < 256, |beta| <= 2048
// LSB); the drivers reject such values before they reach the kernel.
static int64_t sat(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

static int64_t abn_gain(unsigned c, const Params& p) {
    return sat(int64_t(uint32_t(abn_word[c])), 0, (int64_t(256) << p.gain_frac) - 1);
}

static int64_t abn_offset(unsigned c, const Params& p) {
    return sat(int64_t(int32_t(uint32_t(abn_word[c] >> 32))), -(int64_t(2048) << p.offset_frac),
               int64_t(2048) << p.offset_frac);
}

// The 8 weights of a row word: channel 8*cw + j in byte j.
static void unpack_word(u64 word, int8_t (&w)[8]) {
#ifdef __SYNTHESIS__
    for (unsigned j = 0; j < 8; ++j) {
#pragma HLS UNROLL
        w[j] = int8_t(uint8_t(word >> (8 * j)));
    }
#else
    // the same bytes on a little-endian host; g++ vectorizes the lanes after a memcpy
    // (3x faster C simulation than the shifts)
    static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "little-endian host");
    memcpy(w, &word, 8);
#endif
}

// One pass over the K rows, all channels in parallel: acc[c] = sum_r a_r * w[r][c], with
// a_r = x_r (charge mode) or bit b of x_r (per-bit mode). One row per cycle: the 16
// words of the row, 128 multiply-accumulates.
static void mac_rows(const u64 (&xw)[MAX_K / 8], const Params& p, unsigned b,
                     int32_t (&acc)[MAX_N]) {
    const unsigned row_words = (p.n + 7) >> 3;
CLEAR:
    for (unsigned c = 0; c < MAX_N; ++c) {
#pragma HLS UNROLL
        acc[c] = 0;
    }
ROWS:
    for (unsigned r = 0; r < p.k; ++r) {
#pragma HLS LOOP_TRIPCOUNT max = MAX_K
#pragma HLS PIPELINE II = 1
        const unsigned xr = unsigned(xw[r >> 3] >> (8 * (r & 7))) & 0xFF;
        const int32_t a = p.per_bit ? int32_t((xr >> b) & 1) : int32_t(xr);
        if (a == 0) continue;                        // adds nothing
    LANES:
        for (unsigned cw = 0; cw < ROW_WORDS; ++cw) {
#pragma HLS UNROLL
            if (cw == row_words) break;              // lanes past n stay idle
            int8_t w[8];
            unpack_word(wq[r][cw], w);
            for (unsigned j = 0; j < 8; ++j) {
#pragma HLS UNROLL
                acc[8 * cw + j] += a * int32_t(w[j]);
            }
        }
    }
}

static void compute(cimstack::axis_stream& in, cimstack::axis_stream& out, const Params& p) {
    using namespace cimstack;
    const int64_t h = int64_t(1) << (p.adc_bits - 1);
    const unsigned passes = p.per_bit ? p.x_bits : 1;
    const unsigned in_words = unsigned(vector_words(p.k));
    const AdcScale scale = adc_scale(p.fs, p.sigma_q, p.adc_bits);
    u64 xw[MAX_K / 8];
    int32_t acc[MAX_N];
#pragma HLS ARRAY_PARTITION variable = acc complete
    int32_t s[MAX_N];
    int32_t code[MAX_N];
VEC:
    for (unsigned v = 0; v < p.n_vec; ++v) {
#pragma HLS LOOP_TRIPCOUNT max = 1024
    READ_X:
        for (unsigned i = 0; i < in_words; ++i) {
#pragma HLS LOOP_TRIPCOUNT max = MAX_K / 8
#pragma HLS PIPELINE II = 1
            xw[i] = in.read().data;
        }
        const uint64_t sample = p.sample_base + v;
    PASS:
        for (unsigned b = 0; b < passes; ++b) {
#pragma HLS LOOP_TRIPCOUNT max = MAX_X_BITS
            mac_rows(xw, p, b, acc);
        CONVERT:
            for (unsigned c = 0; c < p.n; ++c) {
#pragma HLS LOOP_TRIPCOUNT max = MAX_N
#pragma HLS PIPELINE II = 1
                const int32_t m = p.sigma_q == 0 ? 0 : noise_m(p.key, sample, p.chan_base + c, b);
                const int64_t gain = adc_gain_term(abn_gain(c, p), p.gain_frac, p.adc_bits);
                if (!p.per_bit) {
                    const int64_t offset = adc_offset_term(abn_offset(c, p), p.offset_frac);
                    code[c] = int32_t(adc_convert(acc[c], gain, p.fs * offset, m, scale));
                } else {
                    const int64_t cb = adc_convert(acc[c], gain, 0, m, scale);
                    s[c] = (b == 0 ? 0 : s[c]) + int32_t((cb - h) * (int64_t(1) << b));
                }
            }
        }
        if (p.per_bit) {
        COMBINE:
            for (unsigned c = 0; c < p.n; ++c) {
#pragma HLS LOOP_TRIPCOUNT max = MAX_N
#pragma HLS PIPELINE II = 1
                code[c] = int32_t(perbit_combine(s[c], p.x_bits,
                                                 adc_offset_term(abn_offset(c, p), p.offset_frac),
                                                 p.adc_bits));
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
#pragma HLS ARRAY_PARTITION variable = wq cyclic factor = 8 dim = 2
#pragma HLS BIND_STORAGE variable = wq type = ram_t2p impl = bram
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
            const unsigned wb = min_u(unsigned(w_bits), MAX_W_BITS);
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
            if (k == 0 || n == 0 || wb == 0 || p.x_bits == 0 || p.adc_bits == 0 ||
                r < k || seg == 0 || seg > r || r % seg != 0)
                break;
            const unsigned seg_rows = r / seg;
            // N_norm: the whole array (fixed swing) or the active segments (adaptive).
            const int64_t norm = unsigned(swing) != 0
                                     ? int64_t((k + seg_rows - 1) / seg_rows) * seg_rows
                                     : int64_t(r);
            // FS = N_norm * (2^x - 1) * 2^(w-1); FS_1 = N_norm * 2^(w-1) per input bit
            const int64_t xm = (int64_t(1) << p.x_bits) - 1;
            p.fs = (p.per_bit ? norm : norm * xm) << (wb - 1);
            compute(in, out, p);
            break;
        }
        default:
            break;
    }
}
