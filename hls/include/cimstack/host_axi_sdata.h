// Host-only stand-in for Vitis HLS <ap_axi_sdata.h>: the subset of ap_axiu<D,U,TI,TD>
// that cimstack kernels use (data, keep, strb, last). Never used under Vitis HLS,
// which provides the real header; see types.h for the selection.
//
// The fields are plain integers (host_bits) rather than ap_uint: every copy of an
// ap_uint goes through ap_private's volatile clearUnusedBits, and a stream word is
// copied several times per read and write (about 6% of the dcim C simulation's
// instructions on ResNet18). The kernels use the fields only as integers: assigned from
// one, converted to one.
#ifndef CIMSTACK_HOST_AXI_SDATA_H
#define CIMSTACK_HOST_AXI_SDATA_H

#include <stdint.h>

#include <type_traits>

#include <ap_int.h>

namespace cimstack {

// An unsigned field of W bits (1 <= W <= 64): assigned from an integer it keeps the low
// W bits, as ap_uint<W> does; it converts to uint64_t.
template <int W>
struct host_bits {
    static_assert(W >= 1 && W <= 64, "a stream field of 1 to 64 bits");
    typename std::conditional<(W <= 8), uint8_t, uint64_t>::type bits;

    host_bits() : bits(0) {}
    host_bits(uint64_t v) : bits(W == 64 ? v : v & ((uint64_t(1) << (W % 64)) - 1)) {}
    operator uint64_t() const { return bits; }
};

}  // namespace cimstack

template <int D, int U, int TI, int TD>
struct ap_axiu {
    cimstack::host_bits<D> data;
    cimstack::host_bits<(D + 7) / 8> keep;
    cimstack::host_bits<(D + 7) / 8> strb;
    cimstack::host_bits<1> last;
};

#endif
