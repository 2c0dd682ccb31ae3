// Self-checking testbench of acim_top: the kernel must equal an independent, plain
// 128-bit rational evaluation of docs/macros.md ("Analog CIM macro (acim)"), noise
// included, in both ADC modes; identical seeds give identical outputs. Returns nonzero
// on any mismatch. Runs under g++ (make -C hls csim) and Vitis HLS (csim / cosim).
#include <stdint.h>
#include <stdio.h>

#include <vector>

#include "acim_top.h"
#include "cimstack/testbench.h"

namespace {

using cimstack::pack_fields;
using cimstack::push_words;

cimstack::Rng rng(0x2545F4914F6CDD1DULL);

// splitmix64 state number c of stream key, and its Irwin-Hall integer (n = m / 64).
uint64_t splitmix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

int64_t normal_m(uint32_t seed, uint32_t layer, uint64_t sample, uint64_t channel, uint64_t conv) {
    const uint64_t key = splitmix((uint64_t(seed) << 32) | layer);
    const uint64_t r = splitmix(key + ((sample << 24) | (channel << 8) | conv) * 0x9E3779B97F4A7C15ULL);
    int64_t s = 0;
    for (int i = 0; i < 12; ++i) s += (r >> (5 * i)) & 31;
    return 2 * s - 372;
}

typedef __int128 i128;

// floor(p / q), q > 0
i128 floor_div(i128 p, i128 q) { return p >= 0 ? p / q : -((-p + q - 1) / q); }

int64_t clip(i128 v, unsigned adc_bits) {
    const i128 top = (i128(1) << adc_bits) - 1;
    return int64_t(v < 0 ? 0 : (v > top ? top : v));
}

// round_half_up(h*(G*dot/FS + 1) + beta + sigma*n) with G = g/2^gf, beta = o/2^of,
// sigma = sq/256, n = m/64, as one fraction over FS * 2^(gf+of+14).
int64_t code_of(int64_t dot, int64_t fs, int64_t g, unsigned gf, int64_t o, unsigned of,
                int64_t sq, int64_t m, unsigned adc_bits) {
    const i128 h = i128(1) << (adc_bits - 1);
    const unsigned e = gf + of + 14;
    const i128 den = i128(fs) << e;
    const i128 num = (h * g * dot << (of + 14)) + ((h * fs) << e) + ((i128(o) * fs) << (gf + 14)) +
                     ((i128(sq) * m * fs) << (gf + of)) + (den / 2);
    return clip(floor_div(num, den), adc_bits);
}

struct Case {
    unsigned k, n, n_vec, w_bits, x_bits, rows, segments, swing, adc_bits, per_bit, sigma_q;
};

const unsigned GF = 8, OF = 2, SEED = 1234, LAYER = 2, CHAN_BASE = 5, SAMPLE_BASE = 40;

void call(cimstack::axis_stream& in, cimstack::axis_stream& out, const Case& c, unsigned mode,
          unsigned seed) {
    acim_top(in, out, mode, c.k, c.n, c.n_vec, c.w_bits, c.x_bits, c.rows, c.segments, c.swing,
             c.adc_bits, c.per_bit, GF, OF, c.sigma_q, seed, LAYER, CHAN_BASE, SAMPLE_BASE,
             0, -2147483647 - 1, 2147483647);
}

// Runs one case; returns the mismatches. outputs receives the codes.
int run_case(const Case& c, unsigned seed, std::vector<int32_t>& outputs) {
    std::vector<int8_t> w(size_t(c.k) * c.n);
    const int wlo = c.w_bits == 1 ? -1 : -(1 << (c.w_bits - 1));
    const int whi = c.w_bits == 1 ? 1 : (1 << (c.w_bits - 1)) - 1;
    for (size_t i = 0; i < w.size(); ++i) {
        int v = int(rng.uniform(wlo, whi));
        if (c.w_bits == 1) v = v >= 0 ? 1 : -1;
        w[i] = int8_t(v);
    }
    std::vector<int64_t> g(c.n), o(c.n);
    for (unsigned n = 0; n < c.n; ++n) {
        g[n] = rng.uniform(0, 4095);     // G < 16 (the full format is covered by the pytest suite)
        o[n] = rng.uniform(-256, 255);
    }
    std::vector<uint8_t> x(size_t(c.n_vec) * c.k);
    for (size_t i = 0; i < x.size(); ++i) x[i] = uint8_t(rng.uniform(0, (1 << c.x_bits) - 1));

    cimstack::axis_stream in("tb_in"), out("tb_out");
    std::vector<uint64_t> words;
    pack_fields(w.begin(), w.end(), 8, words);
    push_words(in, words);
    call(in, out, c, acim::LOAD_WEIGHTS, seed);
    words.clear();
    for (unsigned n = 0; n < c.n; ++n) {
        words.push_back(0);  // bias
        words.push_back(1);  // multiplier: outputs are the raw codes
    }
    push_words(in, words);
    call(in, out, c, acim::LOAD_REQUANT, seed);
    words.clear();
    for (unsigned n = 0; n < c.n; ++n) words.push_back(uint64_t(uint32_t(g[n])) | (uint64_t(uint32_t(int32_t(o[n]))) << 32));
    push_words(in, words);
    call(in, out, c, acim::LOAD_ABN, seed);
    words.clear();
    for (unsigned v = 0; v < c.n_vec; ++v)
        pack_fields(x.begin() + size_t(v) * c.k, x.begin() + size_t(v + 1) * c.k, 8, words);
    push_words(in, words);
    call(in, out, c, acim::COMPUTE, seed);

    const unsigned seg_rows = c.rows / c.segments;
    const int64_t norm = c.swing ? int64_t((c.k + seg_rows - 1) / seg_rows) * seg_rows : c.rows;
    const int64_t xm = (int64_t(1) << c.x_bits) - 1, wm = int64_t(1) << (c.w_bits - 1);
    const int64_t h = int64_t(1) << (c.adc_bits - 1);
    int errors = 0;
    const unsigned per_vec = unsigned(cimstack::output_vector_words(c.n));
    if (out.size() != size_t(per_vec) * c.n_vec) {
        printf("  %zu output words, expected %u\n", size_t(out.size()), per_vec * c.n_vec);
        return 1;
    }
    outputs.clear();
    for (unsigned v = 0; v < c.n_vec; ++v) {
        for (unsigned i = 0; i < per_vec; ++i) {
            const cimstack::axis_word word = out.read();
            errors += bool(word.last) != (v + 1 == c.n_vec && i + 1 == per_vec);
            for (unsigned hh = 0; hh < 2; ++hh) {
                const unsigned n = 2 * i + hh;
                if (n >= c.n) continue;
                const int32_t got = int32_t(uint32_t(uint64_t(word.data) >> (32 * hh)));
                const uint64_t sample = SAMPLE_BASE + v, chan = CHAN_BASE + n;
                int64_t want;
                if (!c.per_bit) {
                    int64_t dot = 0;
                    for (unsigned k = 0; k < c.k; ++k) dot += int64_t(x[size_t(v) * c.k + k]) * w[size_t(k) * c.n + n];
                    want = code_of(dot, norm * xm * wm, g[n], GF, o[n], OF, c.sigma_q,
                                   c.sigma_q ? normal_m(seed, LAYER, sample, chan, 0) : 0, c.adc_bits);
                } else {
                    i128 s = 0;
                    for (unsigned b = 0; b < c.x_bits; ++b) {
                        int64_t dot = 0;
                        for (unsigned k = 0; k < c.k; ++k)
                            if ((x[size_t(v) * c.k + k] >> b) & 1) dot += w[size_t(k) * c.n + n];
                        const int64_t cb = code_of(dot, norm * wm, g[n], GF, 0, OF, c.sigma_q,
                                                   c.sigma_q ? normal_m(seed, LAYER, sample, chan, b) : 0,
                                                   c.adc_bits);
                        s += i128(cb - h) << b;
                    }
                    // round_half_up(S / (2^x - 1) + h + o / 2^OF)
                    const i128 num = ((s << OF) + xm * ((i128(h) << OF) + o[n])) * 2 + (xm << OF);
                    want = clip(floor_div(num, (i128(xm) << OF) * 2), c.adc_bits);
                }
                if (got != want && errors < 10) printf("  vector %u channel %u: got %d want %lld\n", v, n, got, (long long)want);
                errors += got != want;
                outputs.push_back(got);
            }
        }
    }
    return errors;
}

}  // namespace

int main() {
    const Case cases[] = {
        {1, 1, 1, 8, 8, 1152, 9, 1, 8, 0, 0},       {144, 16, 3, 8, 8, 1152, 9, 1, 8, 0, 512},
        {144, 16, 3, 8, 8, 1152, 9, 0, 4, 0, 256},  {300, 40, 2, 1, 5, 1152, 9, 1, 3, 1, 128},
        {acim::MAX_K, acim::MAX_N, 2, 8, 8, 1152, 9, 0, 8, 0, 1024},
        {77, 9, 4, 4, 3, 128, 4, 1, 6, 1, 700},     {9, 3, 5, 3, 8, 1152, 9, 1, 1, 0, 64},
    };
    int failed = 0;
    for (const Case& c : cases) {
        std::vector<int32_t> a, b, d;
        const cimstack::Rng saved = rng;   // same data for the three runs
        int errors = run_case(c, SEED, a);
        rng = saved;
        errors += run_case(c, SEED, b);
        rng = saved;
        errors += run_case(c, SEED + 1, d);
        if (a != b) { printf("  same seed and data, different outputs\n"); ++errors; }
        if (c.sigma_q >= 256 && a == d) { printf("  another seed gave identical outputs\n"); ++errors; }
        printf("%s K=%u N=%u n_vec=%u w_bits=%u x_bits=%u rows=%u segments=%u swing=%u "
               "adc_bits=%u per_bit=%u sigma_q=%u\n", errors ? "FAIL" : "ok  ", c.k, c.n, c.n_vec,
               c.w_bits, c.x_bits, c.rows, c.segments, c.swing, c.adc_bits, c.per_bit, c.sigma_q);
        failed += errors != 0;
    }
    printf(failed ? "tb_acim: %d case(s) FAILED\n" : "tb_acim: all cases passed\n", failed);
    return failed ? 1 : 0;
}
