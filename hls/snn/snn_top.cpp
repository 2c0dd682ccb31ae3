// snn kernel: spiking event core slice, FlexSpIM family.
//
// One on-chip array of ROWS x COLS bits holds the slice's weights (w_bits each, from
// bit 0) and, right after them, its membranes (v_bits each). mode 0 streams the
// weights in (int16, 4 per word); mode 1 sets the membranes to v_init; mode 2 runs one
// timestep: it reads one event packet (32-bit words: marker, addresses, pad; n_words
// beats) and writes one packet of output spikes, TLAST on its last beat; mode 3 streams
// the membranes out (int32, 2 per word); mode 4 runs n_steps timesteps in one call: its
// n_words beats are n_steps such packets back to back (n_samples >= 1: n_samples
// samples of n_steps packets each, the membranes set to v_init before each sample's
// first packet; v_out = 1: after each sample's spike packets a membrane packet), and it
// writes one spike packet
// per timestep, TLAST only on the last beat of the last (one S2MM transfer). Modes 2
// and 4 are the same loop (run_steps). Semantics: docs/macros.md.
#include "snn_top.h"

using cimstack::min_u;
using cimstack::u64;
using namespace snn;

static u64 array_mem[ARRAY_WORDS];   // the array, row-major, bit i at word i/64, bit i%64
static u64 seen[MAX_IN / 64];        // input neurons already integrated this timestep
// This timestep's synaptic input per membrane of the slice. A slice of whole output
// channels c_lo .. c_lo + c_n - 1 keeps them position-major, its channels side by side
// (acc[p * c_n + n - c_lo] for output (n, p)): an event's weight row adds into
// consecutive accumulators, as the columns of the array add in parallel; any other
// slice keeps them in neuron order (acc[j] for neuron n_lo + j).
static int32_t acc[MAX_COUNT];
// conv: the weights of the input channels, each kernel position (dy, dx) major and the
// slice's output channels side by side (c_n * k * k words, a slot per channel), read
// from the array at a channel's first event in a call and kept for the call, when
// every input channel has a slot (at most MAX_SLOTS: the bench's convs); otherwise the
// weights are read from the array per event (integrate). Tags are cleared at every call.
static int16_t slice_w[SLICE_WORDS];   // weights are at most 16 bits
static uint32_t slice_tag[MAX_SLOTS];   // the input channel each slot holds, NO_SLICE if none
const uint32_t NO_SLICE = 0xFFFFFFFFu;

// A field width of the array (1..16 bits) with the constants derived from it, computed
// once per call rather than per field.
struct Field {
    unsigned bits;
    u64 mask;        // (1 << bits) - 1
    int32_t sign;    // 1 << (bits - 1): the sign bit of a signed field
};

static Field field_of(unsigned bits) {
    return Field{bits, (u64(1) << bits) - 1, int32_t(1) << (bits - 1)};
}

// Unsigned field at bit offset `pos` of the array. Both words are read whether or not
// the field crosses into the second (no branch): when it does not, the second word's
// bits land above the field and are masked off (after the last word the index wraps to
// the first, whose bits land there alike).
static unsigned get_field(uint32_t pos, const Field& f) {
    const unsigned w = pos >> 6, o = pos & 63;
    const u64 next = array_mem[(w + 1) & (ARRAY_WORDS - 1)];
    const u64 v = (array_mem[w] >> o) | ((next << 1) << (63 - o));
    return unsigned(v & f.mask);
}

// Write an unsigned field at bit offset `pos`. Both words are written whether or not
// the field crosses into the second (no branch): the second word's mask is empty when
// it does not ((x >> 1) >> (63 - o) is x >> (64 - o) for o > 0, and 0 for o = 0).
static void put_field(uint32_t pos, const Field& f, unsigned value) {
    const unsigned w = pos >> 6, o = pos & 63, w2 = (w + 1) & (ARRAY_WORDS - 1);
    const u64 v = u64(value) & f.mask;
    array_mem[w] = (array_mem[w] & ~(f.mask << o)) | (v << o);
    const u64 hi_mask = (f.mask >> 1) >> (63 - o), hi = (v >> 1) >> (63 - o);
    array_mem[w2] = (array_mem[w2] & ~hi_mask) | hi;
}

static int32_t sign_extend(unsigned v, const Field& f) {
    return (int32_t(v) ^ f.sign) - f.sign;
}

static int32_t weight_at(uint32_t idx, const Field& wf) {
    const unsigned raw = get_field(idx * wf.bits, wf);
    return wf.bits == 1 ? 2 * int32_t(raw) - 1 : sign_extend(raw, wf);
}

static void load_weights(cimstack::axis_stream& in, uint32_t count, const Field& wf) {
    const uint32_t words = uint32_t(weight_words(count));
LOAD_W:
    for (uint32_t i = 0; i < words; ++i) {
#pragma HLS LOOP_TRIPCOUNT max = 32768
        const u64 data = in.read().data;
        for (unsigned h = 0; h < 4; ++h) {
#pragma HLS PIPELINE II = 1
            const uint32_t idx = 4 * i + h;
            if (idx < count) {
                const int v = int16_t(uint16_t(data >> (16 * h)));
                put_field(idx * wf.bits, wf, wf.bits == 1 ? unsigned(v > 0) : unsigned(v));
            }
        }
    }
}

struct Layer {
    unsigned op, src_h, src_w, pool, in_c, in_h, in_w, out_c, k, pad, stride, oh, ow;
    uint32_t n_lo, n_count, w_count, v_base;
    Field wf, vf;                            // weight and membrane fields (w_bits, v_bits)
    unsigned leak, reset, wrap, fire_gt, leak_before;
    int32_t theta, v_init;
    uint32_t plane;                          // src_h * src_w
    uint32_t out_plane, c_lo, c_n;           // oh * ow; the output channels the slice touches
    bool whole;                              // the slice is whole output channels
    bool cached;                             // a slice_w slot for every input channel
    unsigned taps;                           // ceil(k / stride): most rows an event reaches
    Divisor by_plane, by_src_w, by_pool, by_stride;   // division by plane, src_w, pool, stride
};

// The kernel rows (columns) an input row y (column x) reaches and the output rows
// (columns) they feed: input row y reaches output row yo through kernel row dy when
// y + pad - dy = yo * stride; with y + pad = q * stride + r (one division per axis and
// event), those are dy = r + i * stride < k with yo = q - i >= 0, i = 0, 1, ...; of
// them the ones with yo < out_h count. They are consecutive values of i, so an
// arithmetic run: dy = d + b * stride, yo = o - b for b < n (n <= ceil(k / stride)).
struct Reach {
    unsigned n, d, o;
};

static Reach reach(unsigned yp, const Divisor& by_stride, unsigned stride, unsigned k,
                   unsigned out) {
    const unsigned q = divide(yp, by_stride), rem = yp - q * stride;
    const unsigned i0 = q >= out ? q - out + 1 : 0;     // the first i with yo < out
    const unsigned d0 = rem + i0 * stride;
    Reach r{0, d0, q - i0};
    if (d0 >= k || i0 > q) return r;
    // n = the rows below k: floor((k - 1 - d0) / stride) + 1, and those with yo >= 0
    const unsigned by_k = divide(k - 1 - d0, by_stride) + 1, by_o = r.o + 1;
    r.n = by_k < by_o ? by_k : by_o;
    return r;
}

// Add the weights of input neuron (c, y, x) into the accumulators of the slice: for
// each kernel position the event reaches (Reach, once per event), one row of weights
// over the slice's output channels.
static void integrate(const Layer& L, unsigned c, unsigned y, unsigned x) {
    // L's fields as locals: the compiler must otherwise reload them after every store
    // to acc (an int32_t may alias them)
    const Field wf = L.wf;
    if (L.op == FC) {
        const uint32_t n_count = L.n_count;
        const uint32_t base = ((c * L.in_h + y) * L.in_w + x) * n_count;
    FC_J:
        for (uint32_t j = 0; j < n_count; ++j) {
#pragma HLS LOOP_TRIPCOUNT max = 8192
#pragma HLS PIPELINE II = 1
            acc[j] += weight_at(base + j, wf);
        }
        return;
    }
    const unsigned k = L.k, ow = L.ow, kk = k * k, stride = L.stride;
    const uint32_t c_lo = L.c_lo, c_n = L.c_n;
    const Reach ry = reach(y + L.pad, L.by_stride, stride, k, L.oh);
    const Reach rx = reach(x + L.pad, L.by_stride, stride, k, ow);
    if (ry.n == 0 || rx.n == 0) return;
    // with a slot for every input channel (L.cached) the weights come from channel c's
    // slot, read from the array at its first event in the call; else straight from the
    // array, one field per lane (a slot refilled per timestep would read all of
    // c_n * k * k weights for the few positions an event reaches)
    const bool cached = L.cached;
    const uint32_t slot = cached ? c : 0;
    int16_t* const sw = slice_w + slot * (c_n * kk);
    if (cached && slice_tag[slot] != c) {   // read channel c's weights into its slot
    SLICE_N:
        for (uint32_t n = 0; n < c_n; ++n) {
#pragma HLS LOOP_TRIPCOUNT max = 256
            const uint32_t w0 = ((c_lo + n) * L.in_c + c) * kk;      // weight (n, c, 0, 0)
        SLICE_T:
            for (unsigned t = 0; t < kk; ++t) {
#pragma HLS LOOP_TRIPCOUNT max = 49
#pragma HLS PIPELINE II = 1
                sw[t * c_n + n] = int16_t(weight_at(w0 + t, wf));
            }
        }
        slice_tag[slot] = c;
    }
    // neuron order: output (n, p) is acc[p + n * out_plane - n_lo] if that is below
    // n_span (n_count, or 0 when n_lo + n_count wraps in 32 bits)
    const uint32_t n_lo = L.n_lo, n_span = L.n_lo + L.n_count >= L.n_lo ? L.n_count : 0;
    const uint32_t first = c_lo * L.out_plane - n_lo;     // output (c_lo, 0) in neuron order
    const uint32_t lane_stride = L.in_c * kk;             // weight (n + 1, c) after (n, c)
    if (c_n < L.taps) {
        // fewer lanes than kernel columns (a slice of one or two channels): lanes
        // outside, the reached columns as the pipelined loop, so that a loop entry is
        // paid per lane and row instead of per position
    LANE_ROWS:
        for (uint32_t n = 0; n < c_n; ++n) {
#pragma HLS LOOP_TRIPCOUNT max = 7
            for (unsigned a = 0; a < ry.n; ++a) {
#pragma HLS LOOP_TRIPCOUNT max = 7
            ROW_COLS:
                for (unsigned b = 0; b < rx.n; ++b) {
#pragma HLS LOOP_TRIPCOUNT max = 7
#pragma HLS PIPELINE II = 1
                    const uint32_t p = (ry.o - a) * ow + rx.o - b;
                    const uint32_t t = (ry.d + a * stride) * k + rx.d + b * stride;
                    const uint32_t j = L.whole ? p * c_n + n : first + p + n * L.out_plane;
                    if (j < n_span)
                        acc[j] += cached ? int32_t(sw[t * c_n + n])
                                         : weight_at((c_lo * L.in_c + c) * kk + t +
                                                     n * lane_stride, wf);
                }
            }
        }
        return;
    }
CONV_DY:
    for (unsigned a = 0; a < ry.n; ++a) {
#pragma HLS LOOP_TRIPCOUNT max = 7
    CONV_DX:
        for (unsigned b = 0; b < rx.n; ++b) {
#pragma HLS LOOP_TRIPCOUNT max = 7
            const uint32_t p = (ry.o - a) * ow + rx.o - b;           // output position
            const uint32_t t = (ry.d + a * stride) * k + rx.d + b * stride;   // (dy, dx)
            const int16_t* wv = sw + t * c_n;
            if (L.whole && cached) {
                int32_t* av = acc + p * c_n;
            LANES:
                for (uint32_t n = 0; n < c_n; ++n) {
#pragma HLS LOOP_TRIPCOUNT max = 256
#pragma HLS PIPELINE II = 1
                    av[n] += wv[n];
                }
            } else {                          // cut slice, or weights from the array
                const uint32_t w_row = (c_lo * L.in_c + c) * kk + t;   // weight (c_lo, c, t)
            LANES_ANY:
                for (uint32_t n = 0; n < c_n; ++n) {
#pragma HLS LOOP_TRIPCOUNT max = 256
#pragma HLS PIPELINE II = 1
                    const uint32_t j = L.whole ? p * c_n + n : first + p + n * L.out_plane;
                    if (j < n_span)
                        acc[j] += cached ? int32_t(wv[n])
                                         : weight_at(w_row + n * lane_stride, wf);
                }
            }
        }
    }
}

// Integrate-and-fire update of membrane value `v` (the field as stored) with synaptic
// input `in`: the new field value, and whether it spikes in `fire`. The branches on
// L's modes are the same for every membrane; the ones on the data are selections.
static unsigned update(const Layer& L, unsigned v, int32_t in, bool& fire) {
    const int64_t lo = -int64_t(L.vf.sign), hi = int64_t(L.vf.sign) - 1;
    int64_t u = sign_extend(v, L.vf);
    if (L.leak && L.leak_before) u -= u >> L.leak;   // leak the old membrane, then integrate
    u += in;
    if (L.wrap) {                            // two's complement wrap: the low v_bits bits
        u = sign_extend(unsigned(uint64_t(u) & L.vf.mask), L.vf);
    } else {
        u = u < lo ? lo : (u > hi ? hi : u);
    }
    if (L.leak && !L.leak_before) u -= u >> L.leak;   // arithmetic shift (floor)
    fire = L.fire_gt ? u > L.theta : u >= L.theta;
    const int64_t reset = L.reset == RESET_SUBTRACT ? u - L.theta : 0;
    u = fire ? reset : u;
    if (L.reset == RESET_STEP) u = 0;
    return unsigned(uint64_t(u) & L.vf.mask);
}

// Emit one 32-bit word; two make a beat. `end` closes the packet: PAD fills the
// second half of its last beat, which carries TLAST when `tlast`.
struct Packer {
    cimstack::axis_stream& out;
    u64 half;
    bool have;
    explicit Packer(cimstack::axis_stream& o) : out(o), half(0), have(false) {}
    void push(uint32_t w, bool end, bool tlast) {
        if (!have) {
            half = w;
            have = true;
            if (end) {
                out.write(cimstack::make_word(half | (u64(PAD) << 32), tlast));
                have = false;
            }
        } else {
            out.write(cimstack::make_word(half | (u64(w) << 32), end && tlast));
            have = false;
        }
    }
};

// A new timestep: forget the inputs seen and the synaptic input of the last one.
static void begin_timestep(const Layer& L) {
    const uint32_t n_in = L.in_c * L.in_h * L.in_w;
CLR_SEEN:
    for (uint32_t i = 0; i < (n_in + 63) / 64; ++i) seen[i] = 0;
CLR_ACC:
    for (uint32_t j = 0; j < L.n_count; ++j) acc[j] = 0;
}

// One 32-bit word of an event packet after its marker: an address is decoded, cropped,
// OR-pooled and integrated; pad (and a stray marker) is ignored.
static void take_event(const Layer& L, uint32_t w) {
    if (w & MARKER) return;
    // w = (c * src_h + ys) * src_w + xs; y = ys / pool, x = xs / pool
    const uint32_t c = divide(w, L.by_plane), rem = w - c * L.plane;
    const uint32_t ys = divide(rem, L.by_src_w), xs = rem - ys * L.src_w;
    const unsigned y = divide(ys, L.by_pool), x = divide(xs, L.by_pool);
    if (c >= L.in_c || y >= L.in_h || x >= L.in_w) return;   // outside / cropped
    const uint32_t ia = (c * L.in_h + y) * L.in_w + x;
    if ((seen[ia >> 6] >> (ia & 63)) & 1) return;            // OR pooling
    seen[ia >> 6] |= u64(1) << (ia & 63);
    integrate(L, c, y, x);
}

// Update every membrane of the slice and write timestep t's spike packet (marker,
// spikes, pad); its last beat carries TLAST when `tlast`. The membranes are contiguous
// fields: the array's words stream through two registers, each field is read from the
// words as they were and its new value ORed into the word being written back, which
// goes back to the array when the fields move past it (bits outside the membranes:
// weights before them, free bits after, are kept).
static void fire(cimstack::axis_stream& out, const Layer& layer, uint32_t t, bool tlast) {
    const Layer L = layer;   // a local copy: the compiler keeps it in registers across writes
    const Field vf = L.vf;
    Packer pk(out);
    pk.push(MARKER | t, false, false);
    int32_t pending = -1;                    // spikes are emitted one behind to close the packet
    // membrane j is output (c_lo + n, p): its input is acc[p * c_n + n] for a slice of
    // whole channels (which starts at p = 0), else acc[j]: runs of `run` membranes whose
    // inputs are `step` apart, the runs' first inputs one apart
    const uint32_t runs = L.whole ? L.c_n : 1, run = L.whole ? L.out_plane : L.n_count;
    const uint32_t step = L.whole ? L.c_n : 1;
    uint32_t w = L.v_base >> 6, j = 0;
    unsigned o = L.v_base & 63;
    u64 in0 = array_mem[w], in1 = array_mem[(w + 1) & (ARRAY_WORDS - 1)];
    u64 out0 = in0 & ((u64(1) << o) - 1), out1 = 0;
FIRE_RUNS:
    for (uint32_t r = 0; r < runs; ++r) {
#pragma HLS LOOP_TRIPCOUNT max = 256
        const int32_t* in = acc + r;
    FIRE:
        for (uint32_t i = 0; i < run; ++i, ++j, in += step) {
#pragma HLS LOOP_TRIPCOUNT max = 8192
#pragma HLS PIPELINE II = 1
            const unsigned v = unsigned(((in0 >> o) | ((in1 << 1) << (63 - o))) & vf.mask);
            bool spike;
            const u64 nv = update(L, v, *in, spike);
            out0 |= nv << o;
            out1 |= (nv >> 1) >> (63 - o);
            o += vf.bits;
            if (o >= 64) {                   // the fields moved past word w
                array_mem[w] = out0;
                w = (w + 1) & (ARRAY_WORDS - 1);
                in0 = in1;
                in1 = array_mem[(w + 1) & (ARRAY_WORDS - 1)];
                out0 = out1;
                out1 = 0;
                o -= 64;
            }
            if (spike) {
                if (pending >= 0) pk.push(uint32_t(pending), false, false);
                pending = int32_t(L.n_lo + j);
            }
        }
    }
    array_mem[w] = out0 | (in0 & ~((u64(1) << o) - 1));   // the bits after the last field
    if (pending >= 0) pk.push(uint32_t(pending), true, tlast);
    else pk.push(PAD, true, tlast);          // the marker's beat: half full
}

// Set the slice's membranes to v_init (mode 1, and before each sample of a RUN).
static void clear_membranes(const Layer& L) {
CLR_V:
    for (uint32_t j = 0; j < L.n_count; ++j)
        put_field(L.v_base + j * L.vf.bits, L.vf, unsigned(uint32_t(L.v_init)));
}

// The membrane packet of a sample (v_out): marker n_steps (one past its last timestep),
// then each membrane's field as stored (v_bits <= 16 bits, so never a marker or pad),
// pad; TLAST on its last beat when `tlast`.
static void write_membranes(cimstack::axis_stream& out, const Layer& L, uint32_t n_steps,
                            bool tlast) {
    Packer pk(out);
    pk.push(MARKER | n_steps, L.n_count == 0, tlast);
V_PACKET:
    for (uint32_t j = 0; j < L.n_count; ++j) {
#pragma HLS LOOP_TRIPCOUNT max = 8192
#pragma HLS PIPELINE II = 1
        pk.push(get_field(L.v_base + j * L.vf.bits, L.vf), j + 1 == L.n_count, tlast);
    }
}

// Timesteps: n_words beats holding up to n_packets event packets, each opened by a marker
// in the low half of a beat (packets fill whole beats). Each packet is integrated, then
// fired (fire) when the next one opens or the words end: one spike packet per timestep,
// TLAST on the last beat of the last one. The first word always opens the first packet;
// markers past the n_packets-th are ignored, as within a packet (STEP: one packet).
// n_steps > 0: the packets are samples of n_steps packets each, the membranes set to
// v_init as each sample's first packet opens (0: they continue as they are); with
// v_out each sample's spike packets are followed by its membrane packet
// (write_membranes), which then holds the TLAST of the last.
static void run_steps(cimstack::axis_stream& in, cimstack::axis_stream& out, const Layer& L,
                      uint32_t n_words, uint32_t n_packets, uint32_t n_steps, bool v_out) {
    uint32_t t = 0, opened = 0, in_sample = 0;   // in_sample: packets opened in this sample
READ:
    for (uint32_t i = 0; i < n_words; ++i) {
#pragma HLS LOOP_TRIPCOUNT max = 4096
        const u64 data = in.read().data;
        const uint32_t lo = uint32_t(data), hi = uint32_t(data >> 32);
        if (i == 0 || ((lo & MARKER) && lo != PAD && opened < n_packets)) {
            if (opened) fire(out, L, t, false);
            if (opened && v_out && in_sample == 0) write_membranes(out, L, n_steps, false);
            if (n_steps && in_sample == 0) clear_membranes(L);
            in_sample = in_sample + 1 == n_steps ? 0 : in_sample + 1;
            begin_timestep(L);
            t = lo & ~MARKER;
            ++opened;
        } else {
            take_event(L, lo);
        }
        take_event(L, hi);
    }
    fire(out, L, t, !v_out);
    if (v_out) write_membranes(out, L, n_steps, true);
}

static void read_membranes(cimstack::axis_stream& out, const Layer& L) {
    const uint32_t words = uint32_t(membrane_words(L.n_count));
READ_V:
    for (uint32_t i = 0; i < words; ++i) {
#pragma HLS PIPELINE II = 1
        u64 data = 0;
        for (unsigned h = 0; h < 2; ++h) {
            const uint32_t j = 2 * i + h;
            if (j < L.n_count)
                data |= u64(uint32_t(sign_extend(get_field(L.v_base + j * L.vf.bits, L.vf),
                                                 L.vf)))
                        << (32 * h);
        }
        out.write(cimstack::make_word(data, i + 1 == words));
    }
}

void snn_top(cimstack::axis_stream& in, cimstack::axis_stream& out,
             ap_uint<32> mode, ap_uint<32> op, ap_uint<32> src_h, ap_uint<32> src_w,
             ap_uint<32> pool, ap_uint<32> in_c, ap_uint<32> in_h, ap_uint<32> in_w,
             ap_uint<32> out_c, ap_uint<32> ksize, ap_uint<32> padding, ap_uint<32> stride,
             ap_uint<32> n_lo, ap_uint<32> n_count, ap_uint<32> w_bits, ap_uint<32> v_bits,
             ap_uint<32> theta, ap_uint<32> leak_shift, ap_uint<32> reset_mode,
             ap_uint<32> overflow, ap_uint<32> fire_mode, ap_uint<32> leak_order,
             ap_uint<32> v_init, ap_uint<32> n_words, ap_uint<32> n_steps,
             ap_uint<32> n_samples, ap_uint<32> v_out) {
#pragma HLS INTERFACE axis port = in
#pragma HLS INTERFACE axis port = out
#pragma HLS INTERFACE s_axilite port = mode bundle = control
#pragma HLS INTERFACE s_axilite port = op bundle = control
#pragma HLS INTERFACE s_axilite port = src_h bundle = control
#pragma HLS INTERFACE s_axilite port = src_w bundle = control
#pragma HLS INTERFACE s_axilite port = pool bundle = control
#pragma HLS INTERFACE s_axilite port = in_c bundle = control
#pragma HLS INTERFACE s_axilite port = in_h bundle = control
#pragma HLS INTERFACE s_axilite port = in_w bundle = control
#pragma HLS INTERFACE s_axilite port = out_c bundle = control
#pragma HLS INTERFACE s_axilite port = ksize bundle = control
#pragma HLS INTERFACE s_axilite port = padding bundle = control
#pragma HLS INTERFACE s_axilite port = stride bundle = control
#pragma HLS INTERFACE s_axilite port = n_lo bundle = control
#pragma HLS INTERFACE s_axilite port = n_count bundle = control
#pragma HLS INTERFACE s_axilite port = w_bits bundle = control
#pragma HLS INTERFACE s_axilite port = v_bits bundle = control
#pragma HLS INTERFACE s_axilite port = theta bundle = control
#pragma HLS INTERFACE s_axilite port = leak_shift bundle = control
#pragma HLS INTERFACE s_axilite port = reset_mode bundle = control
#pragma HLS INTERFACE s_axilite port = overflow bundle = control
#pragma HLS INTERFACE s_axilite port = fire_mode bundle = control
#pragma HLS INTERFACE s_axilite port = leak_order bundle = control
#pragma HLS INTERFACE s_axilite port = v_init bundle = control
#pragma HLS INTERFACE s_axilite port = n_words bundle = control
#pragma HLS INTERFACE s_axilite port = n_steps bundle = control
#pragma HLS INTERFACE s_axilite port = n_samples bundle = control
#pragma HLS INTERFACE s_axilite port = v_out bundle = control
#pragma HLS INTERFACE s_axilite port = return bundle = control
#pragma HLS INTERFACE ap_ctrl_hs port = return
    // The drivers check every register (cimstack_snn_words_needed refuses bad ones in
    // C simulation); here values are only clipped to the static bounds.
    Layer L;
    L.op = unsigned(op) == FC ? FC : CONV;
    L.pool = min_u(unsigned(pool) ? unsigned(pool) : 1, MAX_POOL);
    L.by_pool = divisor(L.pool);
    L.in_c = unsigned(in_c);
    L.in_h = unsigned(in_h);
    L.in_w = unsigned(in_w);
    L.src_h = min_u(unsigned(src_h) ? unsigned(src_h) : 1, MAX_SRC);
    L.src_w = min_u(unsigned(src_w) ? unsigned(src_w) : 1, MAX_SRC);
    L.plane = L.src_h * L.src_w;
    L.by_plane = divisor(L.plane);
    L.by_src_w = divisor(L.src_w);
    L.out_c = min_u(unsigned(out_c), MAX_OUT_C);
    L.k = min_u(unsigned(ksize), MAX_KSIZE);
    L.pad = unsigned(padding);
    L.stride = min_u(unsigned(stride) ? unsigned(stride) : 1, MAX_STRIDE);
    L.by_stride = divisor(L.stride);
    L.oh = L.op == CONV ? unsigned(out_h(L.in_h, L.k, L.pad, L.by_stride)) : 1;
    L.ow = L.op == CONV ? unsigned(out_h(L.in_w, L.k, L.pad, L.by_stride)) : 1;
    L.n_lo = uint32_t(n_lo);
    L.n_count = min_u(unsigned(n_count), MAX_COUNT);
    L.wf = field_of(min_u(unsigned(w_bits) ? unsigned(w_bits) : 1, MAX_BITS));
    L.vf = field_of(min_u(unsigned(v_bits) ? unsigned(v_bits) : 1, MAX_BITS));
    L.theta = int32_t(uint32_t(theta));
    L.leak = min_u(unsigned(leak_shift), 15);
    L.reset = min_u(unsigned(reset_mode), RESET_STEP);
    L.wrap = unsigned(overflow) != 0;
    L.fire_gt = unsigned(fire_mode) != 0;
    L.leak_before = unsigned(leak_order) != 0;
    L.v_init = int32_t(uint32_t(v_init));
    L.out_plane = L.oh * L.ow;
    L.c_lo = L.n_lo / L.out_plane;           // once per call: a divider, not per event
    L.c_n = L.n_count ? (L.n_lo + L.n_count - 1) / L.out_plane + 1 - L.c_lo : 0;
    L.c_n = L.c_lo < L.out_c ? min_u(L.c_n, L.out_c - L.c_lo) : 0;   // slice_w's bound
    L.whole = L.n_lo % L.out_plane == 0 && L.n_count % L.out_plane == 0;
    L.w_count = uint32_t(weight_count(L.op, L.in_c, L.in_h, L.in_w, L.out_c, L.k, L.n_count));
    L.v_base = L.w_count * L.wf.bits;
    if (uint64_t(L.v_base) + uint64_t(L.n_count) * L.vf.bits > ARRAY_BITS)
        return;                              // does not fit
    const uint32_t slot_words = L.c_n * L.k * L.k;   // at most SLICE_WORDS (c_n <= MAX_OUT_C)
    L.cached = slot_words && min_u(SLICE_WORDS / slot_words, MAX_SLOTS) >= L.in_c;
    L.taps = L.k ? divide(L.k - 1, L.by_stride) + 1 : 1;
CLR_TAGS:
    for (unsigned i = 0; i < MAX_SLOTS; ++i) slice_tag[i] = NO_SLICE;   // weights may change
    switch (unsigned(mode)) {
        case LOAD_WEIGHTS:
            load_weights(in, L.w_count, L.wf);
            break;
        case CLEAR:
            clear_membranes(L);
            break;
        case STEP:
        case RUN: {
            const bool run = unsigned(mode) == RUN;
            const unsigned steps = run ? min_u(unsigned(n_steps) ? unsigned(n_steps) : 1,
                                               MAX_STEPS) : 1;
            const unsigned samples = run ? min_u(unsigned(n_samples), MAX_SAMPLES) : 0;
            if (L.in_c * L.in_h * L.in_w <= MAX_IN && n_words > 0)
                run_steps(in, out, L, n_words, steps * (samples ? samples : 1),
                          samples ? steps : 0, samples && unsigned(v_out) != 0);
            break;
        }
        case READ_MEMBRANES:
            read_membranes(out, L);
            break;
        default:
            break;
    }
}
