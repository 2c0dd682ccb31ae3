// Host-only stand-in for Vitis HLS <ap_axi_sdata.h>: the subset of ap_axiu<D,U,TI,TD>
// that cimstack kernels use (data, keep, strb, last). Never used under Vitis HLS,
// which provides the real header; see types.h for the selection.
#ifndef CIMSTACK_HOST_AXI_SDATA_H
#define CIMSTACK_HOST_AXI_SDATA_H

#include <ap_int.h>

template <int D, int U, int TI, int TD>
struct ap_axiu {
    ap_uint<D> data;
    ap_uint<(D + 7) / 8> keep;
    ap_uint<(D + 7) / 8> strb;
    ap_uint<1> last;

    ap_axiu() : data(0), keep(0), strb(0), last(0) {}
};

#endif
