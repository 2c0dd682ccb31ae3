// Host-only helpers of the kernels' C bridges (hls/<kernel>/<kernel>_csim.cpp), which
// export the C ABI host/cimstack/emu/csim.py loads with ctypes. Not synthesized.
#ifndef CIMSTACK_CSIM_BRIDGE_H
#define CIMSTACK_CSIM_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#include <string>

#include "cimstack/types.h"

namespace cimstack {
namespace csim {

// Return codes of cimstack_<kernel>_run (0 = success), as in emu/csim.py.
const int ERR_ARGS = -1;      // a register is out of range
const int ERR_INPUT = -2;     // fewer input words than the call needs
const int ERR_OUTPUT = -3;    // output buffer too small
const int ERR_PROTOCOL = -4;  // the kernel did not consume / write the words it should

inline bool in_range(uint64_t v, uint64_t lo, uint64_t hi) { return v >= lo && v <= hi; }

// Whether a call writes exactly its words_out, or at most that many.
enum OutWords { EXACTLY, AT_MOST };

// The body of cimstack_<kernel>_run: one call top(args, in, out) on the first words of
// in_data/in_last, with need / give the call's words_needed / words_out (< 0: registers
// out of range). Refuses, consuming nothing, when the registers are out of range, fewer
// than need words are given or fewer than give fit in the output.
template <typename Top>
int run(const char* kernel, Top top, const uint32_t* args, long long need, long long give,
        OutWords out_words, const uint64_t* in_data, const uint8_t* in_last, size_t n_in,
        size_t* n_consumed, uint64_t* out_data, uint8_t* out_last, size_t out_cap,
        size_t* n_out) {
    *n_consumed = 0;
    *n_out = 0;
    if (need < 0 || give < 0) return ERR_ARGS;
    if ((unsigned long long)need > n_in) return ERR_INPUT;
    if ((unsigned long long)give > out_cap) return ERR_OUTPUT;

    axis_stream in((std::string(kernel) + "_in").c_str());
    axis_stream out((std::string(kernel) + "_out").c_str());
    for (long long i = 0; i < need; ++i) in.write(make_word(in_data[i], in_last[i] != 0));
    top(args, in, out);
    *n_consumed = size_t(need);
    size_t got = 0;
    while (!out.empty() && got < out_cap) {
        const axis_word w = out.read();
        out_data[got] = uint64_t(w.data);
        out_last[got] = uint8_t(w.last);
        ++got;
    }
    *n_out = got;
    const bool wrote = out_words == EXACTLY ? (long long)got == give : (long long)got <= give;
    return in.empty() && out.empty() && wrote ? 0 : ERR_PROTOCOL;
}

}  // namespace csim
}  // namespace cimstack

#endif
