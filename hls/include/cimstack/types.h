// Common types of the cimstack HLS kernels: the 64-bit AXI-Stream word and its stream.
#ifndef CIMSTACK_TYPES_H
#define CIMSTACK_TYPES_H

#include <stdint.h>
#include <ap_int.h>
#include <hls_stream.h>

// Under Vitis HLS (synthesis, or C simulation with the vendor headers) use the real
// <ap_axi_sdata.h>; a g++ build against the open-source ap_types uses the host stand-in.
// Define CIMSTACK_HOST_AXIS to force the stand-in.
#if defined(__SYNTHESIS__) || (!defined(CIMSTACK_HOST_AXIS) && __has_include(<ap_axi_sdata.h>))
#include <ap_axi_sdata.h>
#else
#include "cimstack/host_axi_sdata.h"
#endif

namespace cimstack {

typedef ap_axiu<64, 0, 0, 0> axis_word;
typedef hls::stream<axis_word> axis_stream;
typedef uint64_t u64;

// One output word with every byte valid.
inline axis_word make_word(u64 data, bool last) {
    axis_word w;
    w.data = data;
    w.keep = -1;
    w.strb = -1;
    w.last = last ? 1 : 0;
    return w;
}

inline unsigned min_u(unsigned a, unsigned b) { return a < b ? a : b; }

}  // namespace cimstack

#endif
