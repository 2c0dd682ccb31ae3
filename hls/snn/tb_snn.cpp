// Self-checking testbench of snn_top: random conv / fc layers with input pooling,
// random event streams; the kernel's output spikes and membranes must equal a plain
// integer model (docs/macros.md) bit for bit, run one timestep per call (STEP) and all
// timesteps in one call (RUN). Runs under g++ (make -C hls csim) and Vitis HLS (csim /
// cosim).
#include <stdint.h>
#include <stdio.h>

#include <vector>

#include "cimstack/testbench.h"
#include "snn_top.h"

namespace {

cimstack::Rng rng(0x2545F4914F6CDD1DULL);

struct Case {
    unsigned op, c, src, pool, n, k, pad, stride, wb, vb, leak, reset_zero, wrap, steps;
};

struct Model {  // plain integer model of one layer
    Case cs;
    unsigned in_h, oh, n_out, n_in;
    std::vector<int> w;       // conv [N][C][k][k], fc [N][K]
    std::vector<int64_t> v;
    int theta;

    int weight(unsigned n, unsigned c, unsigned dy, unsigned dx) const {
        return w[((n * cs.c + c) * cs.k + dy) * cs.k + dx];
    }
    std::vector<uint32_t> step(const std::vector<uint8_t>& src_spikes) {
        std::vector<uint8_t> in(n_in, 0);
        for (unsigned a = 0; a < src_spikes.size(); ++a) {
            if (!src_spikes[a]) continue;
            const unsigned c = a / (cs.src * cs.src), y = a % (cs.src * cs.src) / cs.src / cs.pool,
                           x = a % cs.src / cs.pool;
            if (y < in_h && x < in_h) in[(c * in_h + y) * in_h + x] = 1;
        }
        std::vector<int64_t> acc(n_out, 0);
        for (unsigned o = 0; o < n_out; ++o) {
            if (cs.op == snn::FC) {
                for (unsigned i = 0; i < n_in; ++i) acc[o] += in[i] * w[o * n_in + i];
            } else {
                const unsigned n = o / (oh * oh), yo = o % (oh * oh) / oh, xo = o % oh;
                for (unsigned c = 0; c < cs.c; ++c)
                    for (unsigned dy = 0; dy < cs.k; ++dy)
                        for (unsigned dx = 0; dx < cs.k; ++dx) {
                            const int y = int(yo * cs.stride + dy) - int(cs.pad),
                                      x = int(xo * cs.stride + dx) - int(cs.pad);
                            if (y >= 0 && x >= 0 && y < int(in_h) && x < int(in_h))
                                acc[o] += in[(c * in_h + y) * in_h + x] * weight(n, c, dy, dx);
                        }
            }
        }
        std::vector<uint32_t> spikes;
        const int64_t lo = -(int64_t(1) << (cs.vb - 1)), hi = -lo - 1;
        for (unsigned o = 0; o < n_out; ++o) {
            int64_t u = v[o] + acc[o];
            if (cs.wrap) { while (u > hi) u -= 2 * (hi + 1); while (u < lo) u += 2 * (hi + 1); }
            else u = u < lo ? lo : (u > hi ? hi : u);
            if (cs.leak) u -= u >> cs.leak;
            if (u >= theta) { spikes.push_back(o); u = cs.reset_zero ? 0 : u - theta; }
            v[o] = u;
        }
        return spikes;
    }
};

void call(cimstack::axis_stream& in, cimstack::axis_stream& out, const Case& cs, const Model& m,
          unsigned mode, unsigned n_lo, unsigned n_count, unsigned n_words, unsigned n_steps = 1) {
    snn_top(in, out, mode, cs.op, cs.src, cs.src, cs.pool, cs.c, m.in_h, m.in_h, cs.n, cs.k,
            cs.pad, cs.stride, n_lo, n_count, cs.wb, cs.vb, m.theta, cs.leak, cs.reset_zero, cs.wrap,
            0, 0, 0, n_words, n_steps, 0, 0);   // fire at v >= theta, leak after the input,
                                             // v from 0, one run of timesteps
}

// Drain `out`: n spike packets of timesteps t0, t0 + 1, ... (each opened by its marker in
// the low half of a beat), TLAST on the very last beat only; spikes appended to got[t].
// Returns the errors.
int read_packets(cimstack::axis_stream& out, unsigned t0, unsigned n,
                 std::vector<std::vector<uint32_t> >& got) {
    int errors = 0;
    unsigned opened = 0;
    bool last = false;
    while (!out.empty()) {
        const cimstack::axis_word wd = out.read();
        if (last) ++errors;  // words after TLAST
        last = wd.last;
        const uint32_t lo = uint32_t(uint64_t(wd.data)), hi = uint32_t(uint64_t(wd.data) >> 32);
        if ((lo & snn::MARKER) && lo != snn::PAD) {
            if (opened == n || lo != (snn::MARKER | (t0 + opened))) ++errors;
            ++opened;
        } else if (!opened) {
            ++errors;        // no marker opens the answer
        } else if (lo != snn::PAD) {
            got[t0 + opened - 1].push_back(lo);
        }
        if (opened && opened <= n && hi != snn::PAD) got[t0 + opened - 1].push_back(hi);
    }
    return errors + (!last) + (opened != n);
}

int run_case(const Case& cs, unsigned mode) {
    Model m;
    m.cs = cs;
    m.in_h = cs.src / cs.pool;
    m.oh = cs.op == snn::CONV ? (m.in_h + 2 * cs.pad - cs.k) / cs.stride + 1 : 1;
    m.n_out = cs.op == snn::CONV ? cs.n * m.oh * m.oh : cs.n;
    m.n_in = cs.c * m.in_h * m.in_h;
    const int wlo = cs.wb == 1 ? -1 : -(1 << (cs.wb - 1)), whi = cs.wb == 1 ? 1 : (1 << (cs.wb - 1)) - 1;
    const size_t nw = cs.op == snn::CONV ? size_t(cs.n) * cs.c * cs.k * cs.k : size_t(cs.n) * m.n_in;
    m.w.resize(nw);
    for (size_t i = 0; i < nw; ++i) {
        int v = int(rng.uniform(wlo, whi));
        if (cs.wb == 1) v = v >= 0 ? 1 : -1;
        m.w[i] = v;
    }
    m.v.assign(m.n_out, 0);
    m.theta = int(rng.uniform(1, (1 << (cs.vb - 1)) - 1));
    // slices: at most three, to exercise n_lo
    const unsigned per = (m.n_out + 2) / 3;
    std::vector<std::vector<uint8_t> > frames(cs.steps);
    for (unsigned t = 0; t < cs.steps; ++t) {
        frames[t].resize(cs.c * cs.src * cs.src);
        for (size_t a = 0; a < frames[t].size(); ++a) frames[t][a] = rng.uniform(0, 4) == 0;
    }
    std::vector<std::vector<uint32_t> > want(cs.steps), got(cs.steps);
    for (unsigned t = 0; t < cs.steps; ++t) want[t] = m.step(frames[t]);
    int errors = 0;
    for (unsigned lo = 0; lo < m.n_out; lo += per) {
        const unsigned cnt = lo + per <= m.n_out ? per : m.n_out - lo;
        cimstack::axis_stream in("tb_in"), out("tb_out");
        std::vector<int> wv;  // slice weights in stream order
        if (cs.op == snn::CONV) wv = m.w;
        else
            for (unsigned k = 0; k < m.n_in; ++k)
                for (unsigned j = 0; j < cnt; ++j) wv.push_back(m.w[(lo + j) * m.n_in + k]);
        std::vector<uint64_t> words;   // int16, 4 per word
        cimstack::pack_fields(wv.begin(), wv.end(), 16, words);
        cimstack::push_words(in, words);
        call(in, out, cs, m, snn::LOAD_WEIGHTS, lo, cnt, unsigned(words.size()));
        call(in, out, cs, m, snn::CLEAR, lo, cnt, 0);
        std::vector<uint64_t> stream;     // every timestep's packet, back to back
        for (unsigned t = 0; t < cs.steps; ++t) {
            std::vector<uint32_t> w32(1, snn::MARKER | t);
            for (size_t a = 0; a < frames[t].size(); ++a)
                if (frames[t][a]) w32.push_back(uint32_t(a));
            if (w32.size() & 1) w32.push_back(snn::PAD);
            std::vector<uint64_t> packet;
            cimstack::pack_fields(w32.begin(), w32.end(), 32, packet);
            if (mode == snn::STEP) {
                cimstack::push_words(in, packet);
                call(in, out, cs, m, snn::STEP, lo, cnt, unsigned(packet.size()));
                errors += read_packets(out, t, 1, got);
            }
            stream.insert(stream.end(), packet.begin(), packet.end());
        }
        if (mode == snn::RUN) {
            cimstack::push_words(in, stream);
            call(in, out, cs, m, snn::RUN, lo, cnt, unsigned(stream.size()), cs.steps);
            errors += read_packets(out, 0, cs.steps, got);
        }
        call(in, out, cs, m, snn::READ_MEMBRANES, lo, cnt, 0);
        for (unsigned j = 0; j < cnt; j += 2) {
            const uint64_t d = out.read().data;
            if (int32_t(uint32_t(d)) != m.v[lo + j]) ++errors;
            if (j + 1 < cnt && int32_t(uint32_t(d >> 32)) != m.v[lo + j + 1]) ++errors;
        }
    }
    for (unsigned t = 0; t < cs.steps; ++t)
        if (got[t] != want[t]) ++errors;
    return errors;
}

}  // namespace

int main() {
    const Case cases[] = {
        {snn::CONV, 2, 12, 1, 4, 3, 0, 1, 8, 16, 0, 0, 0, 6},
        {snn::CONV, 3, 12, 2, 5, 3, 1, 1, 4, 6, 1, 1, 0, 6},
        {snn::CONV, 2, 10, 1, 3, 5, 2, 1, 1, 5, 0, 0, 1, 5},
        {snn::CONV, 2, 11, 1, 3, 3, 1, 2, 6, 10, 0, 0, 0, 5},   // stride 2, odd size
        {snn::CONV, 2, 13, 1, 2, 2, 0, 3, 8, 12, 1, 0, 0, 5},   // stride 3 > k
        {snn::FC, 2, 6, 2, 7, 1, 0, 1, 16, 16, 0, 0, 0, 6},
        {snn::FC, 4, 5, 1, 9, 1, 0, 1, 3, 4, 2, 1, 1, 6},
    };
    int failed = 0;
    for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        for (unsigned mode : {unsigned(snn::STEP), unsigned(snn::RUN)}) {
            const int e = run_case(cases[i], mode);
            printf("case %u %s: %s (%d errors)\n", i, mode == snn::STEP ? "step" : "run",
                   e ? "FAIL" : "ok", e);
            failed += e != 0;
        }
    }
    printf("%s\n", failed ? "snn testbench FAILED" : "snn testbench passed");
    return failed;
}
