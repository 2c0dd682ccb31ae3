// Self-checking testbench of dcim_top with exact partial sums: the kernel must equal a
// plain integer dot product plus the requantizer, bit for bit. Returns nonzero on any
// mismatch. Runs under g++ (make -C hls csim) and Vitis HLS (csim / cosim).
#include <stdint.h>
#include <stdio.h>

#include <vector>

#include "cimstack/requant.h"
#include "cimstack/testbench.h"
#include "dcim_top.h"

namespace {

using cimstack::pack_fields;
using cimstack::push_words;

cimstack::Rng rng(0x9E3779B97F4A7C15ULL);

struct Case {
    unsigned k, n, n_vec, w_bits, x_bits, rows_on;
};

struct Regs {
    unsigned mode, k, n, n_vec, w_bits, x_bits, rows_on, psum_bits, psum_mode, shift;
    int lo, hi;
};

void call(cimstack::axis_stream& in, cimstack::axis_stream& out, const Regs& r) {
    dcim_top(in, out, r.mode, r.k, r.n, r.n_vec, r.w_bits, r.x_bits, r.rows_on, r.psum_bits,
             r.psum_mode, r.shift, r.lo, r.hi);
}

// One case: random block-pruned weights, requantizer and inputs; returns the mismatches.
int run_case(const Case& c) {
    const int wlo = c.w_bits == 1 ? -1 : -(1 << (c.w_bits - 1));
    const int whi = c.w_bits == 1 ? 1 : (1 << (c.w_bits - 1)) - 1;
    std::vector<int8_t> w(size_t(c.k) * c.n);
    for (unsigned g = 0; g * c.rows_on < c.k; ++g) {
        for (unsigned n = 0; n < c.n; ++n) {
            const bool pruned = rng.uniform(0, 2) == 0;
            for (unsigned k = g * c.rows_on; k < c.k && k < (g + 1) * c.rows_on; ++k) {
                int v = pruned ? 0 : int(rng.uniform(wlo, whi));
                if (c.w_bits == 1 && !pruned) v = v >= 0 ? 1 : -1;
                w[size_t(k) * c.n + n] = int8_t(v);
            }
        }
    }
    std::vector<int64_t> mult(c.n), bias(c.n);
    for (unsigned n = 0; n < c.n; ++n) {
        mult[n] = rng.uniform(-(1 << 20), 1 << 20);
        bias[n] = rng.uniform(-(int64_t(1) << 40), int64_t(1) << 40);
    }
    const unsigned shift = unsigned(rng.uniform(0, 30));
    const int lo = int(rng.uniform(-1000, 0)), hi = int(rng.uniform(0, 1000));
    std::vector<uint8_t> x(size_t(c.n_vec) * c.k);
    for (size_t i = 0; i < x.size(); ++i) x[i] = uint8_t(rng.uniform(0, (1 << c.x_bits) - 1));

    cimstack::axis_stream in("tb_in"), out("tb_out");
    Regs r = {dcim::LOAD_WEIGHTS, c.k, c.n, c.n_vec, c.w_bits, c.x_bits, c.rows_on, 0, 0,
              shift, lo, hi};
    std::vector<uint64_t> words;
    pack_fields(w.begin(), w.end(), 8, words);
    push_words(in, words);
    call(in, out, r);

    words.clear();
    for (unsigned n = 0; n < c.n; ++n) {
        words.push_back(uint64_t(bias[n]));
        words.push_back(uint64_t(mult[n]));
    }
    push_words(in, words);
    r.mode = dcim::LOAD_REQUANT;
    call(in, out, r);

    words.clear();
    for (unsigned v = 0; v < c.n_vec; ++v)
        pack_fields(x.begin() + size_t(v) * c.k, x.begin() + size_t(v + 1) * c.k, 8, words);
    push_words(in, words);
    r.mode = dcim::COMPUTE;
    call(in, out, r);

    int errors = 0;
    if (!in.empty()) {
        printf("  %zu input words left over\n", size_t(in.size()));
        ++errors;
    }
    const unsigned per_vec = unsigned(cimstack::output_vector_words(c.n));
    if (out.size() != size_t(per_vec) * c.n_vec) {
        printf("  %zu output words, expected %u\n", size_t(out.size()), per_vec * c.n_vec);
        return errors + 1;
    }
    for (unsigned v = 0; v < c.n_vec; ++v) {
        for (unsigned i = 0; i < per_vec; ++i) {
            const cimstack::axis_word word = out.read();
            const bool last = v + 1 == c.n_vec && i + 1 == per_vec;
            if (bool(word.last) != last) {
                printf("  TLAST wrong at vector %u word %u\n", v, i);
                ++errors;
            }
            for (unsigned h = 0; h < 2; ++h) {
                const unsigned n = 2 * i + h;
                const int32_t got = int32_t(uint32_t(uint64_t(word.data) >> (32 * h)));
                int32_t want = 0;
                if (n < c.n) {
                    int32_t acc = 0;
                    for (unsigned k = 0; k < c.k; ++k)
                        acc += int32_t(x[size_t(v) * c.k + k]) * w[size_t(k) * c.n + n];
                    want = cimstack::requantize(acc, mult[n], bias[n], shift, lo, hi);
                }
                if (got != want && errors < 10) {
                    printf("  vector %u channel %u: got %d want %d\n", v, n, got, want);
                }
                errors += got != want;
            }
        }
    }
    return errors;
}

}  // namespace

int main() {
    const Case cases[] = {
        {1, 1, 1, 8, 8, 1},      {9, 3, 2, 1, 1, 4},        {100, 17, 5, 4, 3, 16},
        {64, 8, 3, 2, 8, 64},    {300, 40, 4, 1, 8, 16},    {130, 5, 3, 8, 8, 100},
        {dcim::MAX_K, dcim::MAX_N, 2, 8, 8, 16},             {777, 33, 3, 3, 5, 7},
    };
    int failed = 0;
    for (const Case& c : cases) {
        const int errors = run_case(c);
        printf("%s K=%u N=%u n_vec=%u w_bits=%u x_bits=%u rows_on=%u\n",
               errors ? "FAIL" : "ok  ", c.k, c.n, c.n_vec, c.w_bits, c.x_bits, c.rows_on);
        failed += errors != 0;
    }
    printf(failed ? "tb_dcim: %d case(s) FAILED\n" : "tb_dcim: all cases passed\n", failed);
    return failed ? 1 : 0;
}
