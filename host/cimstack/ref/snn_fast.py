"""Event-driven integer engine of the SNN reference, compiled with numba.

The same integers as the dense engine of :func:`cimstack.ref.snn.run_snn` (a test),
computed the way the event core works: per sample and timestep, every layer takes the
indices of its input spikes, adds each one's weight slice into the currents of the
neurons it reaches, steps all its neurons and hands the indices of their spikes to
the next layer. The work is proportional to the synaptic operations, not to the dense
maps, and one compiled call runs the whole network over all timesteps (samples in
parallel), with no Python loop per timestep or layer.

Layout inside the kernel: conv currents and membranes are channels-last
(``[Ho, Wo, N]``), so the weights an event adds along one kernel row are one contiguous
run (with a stride above 1: one run of N weights per output reached, after one division
per axis and event); kernel rows are padded with zero weights to whole 16-lane vectors
(LANES), which a full row adds too, so that its run is whole vectors (N = 12, k = 5: one
64-lane pass instead of 8-lane and scalar steps). Spikes travel between layers as
channels-last indices (the network input as addresses): OR-pooling in front of a layer
maps and de-duplicates them through a lookup table (no divisions per event) and a conv
layer reads each event's (c, y, x) from a table in that order, so that the lookups of
a timestep's events walk their tables forwards; fc weight rows are stored in the same
order; addresses ((C, H, W) order) are looked up only for the kept spikes and the
output counts. Currents are int16 when no neuron's sum of ``|w|`` over its inputs can
leave int16 (twice the lanes per vector), else int32; membranes are int16
(``v_bits <= 16``). The neuron settings reach the kernel as an int16 table, so that the
compiler keeps the neuron step in 16-bit vector lanes (numba computes in int64
otherwise; with int16 currents, no leak and saturation the step is a saturating add, a
clamp and a compare per 16 neurons). Spike indices come from the fire flags 64 at a
time (:func:`_set_bytes`: eight multiplications pack them into a bit mask, then one
trailing-zero count per spike, without a branch per flag word). The lookup tables and
event lists are int32. Per call, the Python side builds the weights and work arrays
anew (about 0.35 ms on the benchmark network; not cached, since an ``SnnNet`` and its
weight arrays can change between calls; the tables that depend on shapes only are
cached) and hands the input frames over without a copy when a frame is whole 8-byte
words.

Measured on the benchmark network (bench/bench_snn.py), one thread, CPU time of the old
and new engine alternating in one process on a loaded machine: the mask-based spike
collection 1.18x faster overall (it took about 17% of the time, mostly mispredicted
branches on the flag words), the int32 tables and event lists 1.03-1.05x, the
channels-last event order 1.03x; what is left is the conv additions (about 78% of the
time: per kernel-row run the loop set-up, the overlap check of currents and weights,
and the 8-lane tail of 160-value conv2 runs). Optional: without numba the reference
uses the dense engine.
"""

from __future__ import annotations

import functools

import numpy as np

try:
    import numba
    from llvmlite import ir
    from numba import njit, prange, types
    from numba.extending import intrinsic
except ImportError:          # pragma: no cover - numba not installed
    numba = None

AVAILABLE = numba is not None

# columns of the per-layer parameter table handed to the kernel (int64)
(P_OP, P_POOL, P_IN_H, P_IN_W, P_N, P_HO, P_WO, P_K, P_PAD, P_STRIDE, P_W_OFF, P_V_OFF,
 P_FLAG_OFF, P_SPK_OFF, P_POOL_OFF, P_DEC_OFF, P_ADDR_OFF, P_W_ROW) = range(18)
# columns of the per-layer neuron table (int16: loaded as int16, they let the compiler
# keep the neuron arithmetic in 16-bit lanes)
(N_THETA_SUB, N_FIRE_ABOVE, N_LO, N_HI, N_LEAK, N_LEAK_BEFORE, N_WRAP, N_KEEP_FIRED,
 N_KEEP_QUIET, N_V_INIT, N_V_BITS) = range(11)
# int16 lanes of a 256-bit vector: conv kernel rows are padded with zero weights to a
# multiple of this, and the currents have this many spare entries at their end
LANES = 16
# multiplier of _set_bytes: a word of 0/1 bytes times this holds byte j in bit 56 + j
BYTE_BITS = np.uint64(0x0102040810204080)
# set bits of a 64-flag mask that _set_bytes writes without a branch per bit
UNROLLED = 4
# columns of the per-sample statistics: LayerStats fields
STAT_FIELDS = ("events_in", "active_steps", "sops", "slices_in", "events_out")


if AVAILABLE:
    @intrinsic
    def _bit_count(typingctx, mask):
        """Set bits of a uint64 (one popcnt)."""
        def codegen(context, builder, signature, args):
            return builder.ctpop(args[0])
        return types.uint64(types.uint64), codegen

    @intrinsic
    def _trailing_zeros(typingctx, mask):
        """Zero bits below the lowest set one of a uint64 (64 for 0; one tzcnt)."""
        def codegen(context, builder, signature, args):
            return builder.cttz(args[0], ir.Constant(ir.IntType(1), 0))
        return types.uint64(types.uint64), codegen

    @njit(cache=True, nogil=True)
    def _packed(word):                            # pragma: no cover - compiled
        """The 8 bytes (each 0 or 1) of ``word`` as the bits of one byte (byte j in
        bit j)."""
        return (word * BYTE_BITS) >> np.uint64(56)

    @njit(cache=True, nogil=True)
    def _set_bytes(words, ev):                    # pragma: no cover - compiled
        """Indices of the set bytes (each 0 or 1, 8 per word) of ``words`` into ``ev``,
        ascending; returns their count. Per 8 words (64 flags): each word times
        BYTE_BITS packs its 8 bytes into its top byte (byte j into bit j) and the 8
        packed bytes form a 64-bit mask; the indices of its first UNROLLED set bits are
        written without a branch per bit (trailing zeros of the mask, lowest bit cleared;
        past the last set bit the writes are junk the count leaves out, ``ev`` has room
        for UNROLLED entries past the last one), the rest, if any, in a loop."""
        n = 0
        for g in range(0, words.size, 8):
            mask = np.uint64(0)
            if g + 8 <= words.size:               # (a fixed count: unrolled)
                for j in range(8):
                    mask |= _packed(words[g + j]) << np.uint64(8 * j)
            else:
                for j in range(words.size - g):
                    mask |= _packed(words[g + j]) << np.uint64(8 * j)
            count = np.int64(_bit_count(mask))
            for r in range(UNROLLED):
                ev[n + r] = 8 * g + np.int64(_trailing_zeros(mask))
                mask &= mask - np.uint64(1)
            for r in range(n + UNROLLED, n + count):
                ev[r] = 8 * g + np.int64(_trailing_zeros(mask))
                mask &= mask - np.uint64(1)
            n += count
        return n

    @njit(cache=True, nogil=True)
    def _pool_addresses(p, tab, src, n_src, dst, mark):  # pragma: no cover - compiled
        """OR-pooling of events: maps the indices ``src[:n_src]`` (on the source map)
        to channels-last indices on the pooled map (table at P_POOL_OFF, -1 on the
        cropped border) and drops repeats; returns the count."""
        off = p[P_POOL_OFF]
        n = 0
        for e in range(n_src):
            q = tab[off + src[e]]
            if q >= 0 and mark[q] == 0:
                mark[q] = 1
                dst[n] = q
                n += 1
        for e in range(n):
            mark[dst[e]] = 0
        return n

    @njit(cache=True, nogil=True)
    def _add_strided(w, w_c, w_row, cur, n, k, st, wo, qy, ry, i0, i1, qx, rx, j0,
                     j1):                             # pragma: no cover - compiled
        """One event of a conv with stride ``st`` > 1 (:func:`_integrate`): the
        weights of the channel at ``w[w_c:]`` (kernel rows ``w_row`` apart), kernel rows
        ``ry + i * st`` (i in [i0, i1)) and columns ``rx + j * st`` (j in [j0, j1)), into
        output (qy - i, qx - j): one run of N weights per output (apart so that the
        stride-1 loop stays lean)."""
        for i in range(i0, i1):
            row = w_c + (ry + i * st) * w_row
            for j in range(j0, j1):
                d = ((qy - i) * wo + qx - j) * n
                s = row + (k - 1 - rx - j * st) * n
                for q in range(n):
                    cur[d + q] += w[s + q]

    @njit(cache=True, nogil=True)
    def _integrate(p, w, tab, ev, n_ev, cur, mark, stats):  # pragma: no cover - compiled
        """Adds the weight slices of the events ``ev[:n_ev]`` into ``cur`` (the layer's
        currents and LANES spare entries) and counts events, synaptic operations and
        weight slices into ``stats``."""
        n = p[P_N]
        w_off = p[P_W_OFF]
        stats[0] += n_ev
        if n_ev > 0:
            stats[1] += 1
        if p[P_OP] == 1:                              # fc: w[a] is a row of N weights
            for e in range(n_ev):
                row_w = w[w_off + ev[e] * n:w_off + ev[e] * n + n]
                for j in range(n):
                    cur[j] += row_w[j]
            stats[2] += n_ev * n
            stats[3] += n_ev
            return
        dec = p[P_DEC_OFF]                            # (c, y, x) of every input address
        ho = p[P_HO]
        wo = p[P_WO]
        k = p[P_K]
        w_row = p[P_W_ROW]                            # k * N rounded up to LANES
        st = p[P_STRIDE]
        pad = p[P_PAD]
        sops = 0
        slices = 0
        for e in range(n_ev):
            at = dec + 3 * ev[e]
            c = tab[at]
            if mark[c] == 0:                          # one weight slice per channel
                mark[c] = 1
                slices += 1
            # input row y reaches output row qy - i through kernel row ry + i * st
            # (y + pad = qy * st + ry) for i in [i0, i1); columns alike (j, qx, rx)
            if st == 1:
                qy, ry, i1 = tab[at + 1] + pad, 0, k
                qx, rx, j1 = tab[at + 2] + pad, 0, k
            else:
                qy, ry = divmod(tab[at + 1] + pad, st)
                qx, rx = divmod(tab[at + 2] + pad, st)
                i1 = (k - ry + st - 1) // st
                j1 = (k - rx + st - 1) // st
            i0 = max(0, qy - ho + 1)
            i1 = min(qy + 1, i1)
            j0 = max(0, qx - wo + 1)
            j1 = min(qx + 1, j1)
            if i1 <= i0 or j1 <= j0:
                continue
            sops += (i1 - i0) * (j1 - j0) * n
            # w is [C, k, w_row]: k kernel columns (reversed dx) of N weights, then zeros;
            # kernel column dx at k - 1 - dx
            if st == 1:           # output columns qx-j1+1 .. qx-j0: one contiguous run,
                run = (j1 - j0) * n   # up to the row's end (adding zeros) when j0 = 0,
                if j0 == 0:           # so that full rows are whole vectors
                    run = w_row - (k - j1) * n
                for i in range(i0, i1):
                    d = ((qy - i) * wo + qx - j1 + 1) * n
                    s = w_off + (c * k + i) * w_row + (k - j1) * n
                    row_cur = cur[d:d + run]
                    row_w = w[s:s + run]
                    for q in range(run):              # slices: this loop vectorizes
                        row_cur[q] += row_w[q]
            else:
                _add_strided(w, w_off + c * k * w_row, w_row, cur, n, k, st, wo, qy, ry, i0,
                             i1, qx, rx, j0, j1)
        for e in range(n_ev):
            mark[tab[dec + 3 * ev[e]]] = 0
        stats[2] += sops
        stats[3] += slices

    @njit(cache=True, nogil=True)
    def _step_neurons(nrn, cur, v, fired):           # pragma: no cover - compiled
        """One timestep of integrate-and-fire of all neurons (the arithmetic of
        ``neuron_update``, neuron settings ``nrn``); clears ``cur`` and sets ``fired``.
        Every setting and intermediate fits int16 and the only branches are loop-invariant
        tests (the compiler hoists them), so the compiler narrows the arithmetic to 16-bit
        lanes; with int16 currents and saturation, the two clamps below become one
        saturating add and a clamp."""
        lo = nrn[N_LO]
        hi = nrn[N_HI]
        above = nrn[N_FIRE_ABOVE]                     # fires where u > above
        theta = nrn[N_THETA_SUB]
        keep_fired = nrn[N_KEEP_FIRED]                # mask of u kept on a spike
        keep_quiet = nrn[N_KEEP_QUIET]                # mask of u kept without one
        leak = nrn[N_LEAK] & 15                       # (the masks tell the compiler < 16)
        before = np.int16(-nrn[N_LEAK_BEFORE])        # all ones: leak before the input
        after = np.int16(~before)                     # all ones: leak after it
        wrap = nrn[N_WRAP] != 0
        unused = (16 - nrn[N_V_BITS]) & 15            # top bits a wrap sign-extends over
        for q in range(v.size):
            u = v[q]
            if leak > 0:
                u = np.int16(u - ((u >> leak) & before))
            if wrap:          # modulo 2^16, then sign extension from bit v_bits - 1
                u = np.int16(np.int16(u + cur[q]) << unused) >> unused
            else:             # the int16 range first: a saturating add
                u = min(max(min(max(u + cur[q], -32768), 32767), lo), hi)
            if leak > 0:
                u = np.int16(u - ((u >> leak) & after))
            f = u > above
            v[q] = ((u & keep_fired) - theta) if f else (u & keep_quiet)
            fired[q] = f
            cur[q] = 0

    @njit(cache=True, nogil=True)
    def _emit(p, tab, fired_words, ev, spikes_t, counts):  # pragma: no cover - compiled
        """Channels-last indices of the set bytes of ``fired_words`` into ``ev`` (the
        order the next layer's tables take); marks their addresses (C, H, W order) in
        ``spikes_t`` (when kept) and ``counts`` (last layer only, when given); returns
        their count."""
        n_ev = _set_bytes(fired_words, ev)
        off = p[P_ADDR_OFF]                           # channels-last index -> address
        if spikes_t.size:
            for e in range(n_ev):
                spikes_t[p[P_SPK_OFF] + tab[off + ev[e]]] = True
        if counts.size:
            for e in range(n_ev):
                counts[tab[off + ev[e]]] += 1
        return n_ev

    @njit(parallel=True, cache=True, nogil=True)
    def _run(params, neurons, w, tab, x_words, cur_all, v_all, fired_all, ev_all, mark_all,
             spikes, counts, stats):                  # pragma: no cover - compiled
        """The network (``params`` and ``neurons`` rows, weights ``w``, lookup tables
        ``tab``) on the input frames ``x_words`` ``[B, T, words]``; the other arguments
        are per-sample work arrays and outputs (see :func:`run_events`)."""
        b, t, _ = x_words.shape
        n_layers = params.shape[0]
        for s in prange(b):
            cur = cur_all[s]
            v = v_all[s]
            fired = fired_all[s].view(np.uint8)
            ev = ev_all[s]
            mark = mark_all[s]
            for l in range(n_layers):
                p = params[l]
                n_neurons = p[P_N] * p[P_HO] * p[P_WO]
                v[p[P_V_OFF]:p[P_V_OFF] + n_neurons] = neurons[l, N_V_INIT]
            for step in range(t):
                n_src = _set_bytes(x_words[s, step], ev[0])
                src = 0
                for l in range(n_layers):
                    p = params[l]
                    n_neurons = p[P_N] * p[P_HO] * p[P_WO]
                    lv = p[P_V_OFF]
                    evi = src
                    if p[P_POOL] > 1:
                        n_src = _pool_addresses(p, tab, ev[src], n_src, ev[2], mark)
                        evi = 2
                    _integrate(p, w, tab, ev[evi], n_src, cur[lv:lv + n_neurons + LANES],
                               mark, stats[s, l])
                    f0 = p[P_FLAG_OFF]
                    n_words = (n_neurons + 7) // 8
                    _step_neurons(neurons[l], cur[lv:lv + n_neurons], v[lv:lv + n_neurons],
                                  fired[f0 * 8:f0 * 8 + n_neurons])
                    out = 1 - src
                    last = l == n_layers - 1
                    n_src = _emit(p, tab, fired_all[s, f0:f0 + n_words], ev[out],
                                  spikes[s, step] if spikes.size else spikes[0, 0, :0],
                                  counts[s] if last else counts[0, :0])
                    stats[s, l, 4] += n_src
                    src = out


def _neuron_params(layer) -> list:
    """The neuron table row (N_THETA_SUB .. N_V_BITS) of a spiking layer."""
    lo, hi = -(1 << (layer.v_bits - 1)), (1 << (layer.v_bits - 1)) - 1
    fire_above = layer.theta - (1 if layer.fire == "ge" else 0)   # theta >= 1: fits int16
    keep_fired = -1 if layer.reset == "subtract" else 0          # u - theta, or 0
    theta_sub = layer.theta if layer.reset == "subtract" else 0
    keep_quiet = 0 if layer.reset == "step" else -1
    return [theta_sub, fire_above, lo, hi, layer.leak_shift, int(layer.leak_order == "before"),
            int(layer.overflow == "wrap"), keep_fired, keep_quiet, layer.v_init, layer.v_bits]


def _current_bound(layer) -> int:
    """Largest ``|current|`` a neuron of the layer can receive in one timestep."""
    w = np.abs(layer.weight.astype(np.int64))
    return int(w.reshape(w.shape[0], -1).sum(1).max()) if w.size else 0


def _row_length(k: int, n: int) -> int:
    """Entries of one conv kernel row in the kernel's weights: ``k * n`` rounded up to
    LANES."""
    return -(-k * n // LANES) * LANES


def _kernel_weights(layer, in_shape: tuple, channels_last: bool) -> np.ndarray:
    """conv ``[N, C, k, k]`` -> ``[C, k, row]``: per kernel row the k columns reversed,
    N weights each, then zeros up to :func:`_row_length`; fc ``[N, K]`` -> ``[K, N]``,
    rows in the order of the input indices (of the (C, H, W) map ``in_shape``)."""
    if layer.op == "fc":
        rows = np.empty_like(layer.weight.T)
        rows[_index_grid(in_shape, channels_last).reshape(-1)] = layer.weight.T
        return rows.reshape(-1)
    n, c, k, _ = layer.weight.shape
    rows = np.zeros((c, k, _row_length(k, n)), layer.weight.dtype)
    rows[:, :, :k * n] = layer.weight.transpose(1, 2, 3, 0)[:, :, ::-1, :].reshape(c, k, k * n)
    return rows.reshape(-1)


def _index_grid(shape: tuple, channels_last: bool) -> np.ndarray:
    """Index of every (c, y, x) of a (C, H, W) map, ``[C, H, W]``: its address
    ``(c * H + y) * W + x``, or channels-last ``(y * W + x) * C + c``."""
    c, h, w = shape
    index = np.arange(c * h * w)
    return (index.reshape(h, w, c).transpose(2, 0, 1) if channels_last
            else index.reshape(c, h, w))


@functools.lru_cache(maxsize=64)
def _pool_table(src: tuple, k: int, channels_last: bool) -> np.ndarray:
    """For every index of a ``src`` (C, H, W) map (``channels_last`` or address
    order), the channels-last index of its pooled position; -1 where the floor crop
    drops it."""
    c, h, w = src
    cc, yy, xx = np.meshgrid(np.arange(c), np.arange(h) // k, np.arange(w) // k,
                             indexing="ij")
    ph, pw = h // k, w // k
    table = np.empty(c * h * w, np.int64)
    table[_index_grid(src, channels_last)] = np.where((yy < ph) & (xx < pw),
                                                      (yy * pw + xx) * c + cc, -1)
    return table


@functools.lru_cache(maxsize=64)
def _decode_table(shape: tuple, channels_last: bool) -> np.ndarray:
    """(c, y, x) of every index of a (C, H, W) map (``channels_last`` or address
    order), flattened."""
    grids = np.meshgrid(*(np.arange(d) for d in shape), indexing="ij")
    table = np.empty((int(np.prod(shape)), 3), np.int64)
    table[_index_grid(shape, channels_last).reshape(-1)] = np.stack(
        [g.reshape(-1) for g in grids], axis=1)
    return table.reshape(-1)


@functools.lru_cache(maxsize=64)
def _address_table(n: int, ho: int, wo: int) -> np.ndarray:
    """(N, Ho, Wo) address of every channels-last (Ho, Wo, N) neuron index."""
    return np.arange(n * ho * wo).reshape(n, ho, wo).transpose(1, 2, 0).reshape(-1)


def run_events(net, x: np.ndarray, keep_spikes: bool = False):
    """Run ``net`` (a validated ``SnnNet``) on binary frames ``x`` bool ``[B, T, C, H,
    W]``. Returns ``(counts int64 [B, n_classes], v_final int32 [B, n_classes], stats
    int64 [n_spiking, 5] summed over the batch (columns STAT_FIELDS), spikes)`` where
    ``spikes`` maps each spiking layer's name to bool ``[B, T, *out_shape]`` when
    ``keep_spikes``, else is empty."""
    b, t = x.shape[:2]
    rows, neurons, weights, tables, layers = [], [], [], [], []
    src = tuple(net.input_shape)                      # the map the events arrive on
    src_cl = False          # its indices: addresses (the input), else channels-last
    pool, w_off, v_off, flag_off, tab_off = 1, 0, 0, 0, 0
    max_ev = int(np.prod(src))

    def table(values) -> int:
        nonlocal tab_off
        tables.append(values)
        tab_off += values.size
        return tab_off - values.size

    for layer in net.layers:
        if layer.op == "pool":
            pool *= layer.kernel
            continue
        in_shape = (src[0], src[1] // pool, src[2] // pool)
        in_cl = src_cl or pool > 1                    # pooled indices are channels-last
        n, ho, wo = layer.out_shape if layer.op == "conv" else (layer.out_shape[0], 1, 1)
        conv = layer.op == "conv"
        k, pad, stride = ((layer.weight.shape[2], layer.padding, layer.stride) if conv
                          else (1, 0, 1))
        rows.append([
            0 if conv else 1, pool, in_shape[1], in_shape[2], n, ho, wo, k, pad, stride,
            w_off, v_off, flag_off, v_off,
            table(_pool_table(src, pool, src_cl)) if pool > 1 else -1,
            table(_decode_table(in_shape, in_cl)) if conv else -1,
            table(_address_table(n, ho, wo)), _row_length(k, n)])
        neurons.append(_neuron_params(layer))
        weights.append(_kernel_weights(layer, in_shape, in_cl))
        layers.append(layer)
        w_off += weights[-1].size
        v_off += layer.n_neurons
        flag_off += (layer.n_neurons + 7) // 8
        max_ev = max(max_ev, layer.n_neurons, int(np.prod(in_shape)))
        src, src_cl, pool = (n, ho, wo), True, 1
    params = np.array(rows, np.int64)
    small = max(_current_bound(l) for l in layers) <= np.iinfo(np.int16).max
    cur_type = np.int16 if small else np.int32
    w = np.concatenate(weights).astype(cur_type)
    n_in = int(np.prod(net.input_shape))
    x_bytes = np.ascontiguousarray(x).reshape(b, t, n_in).view(np.uint8)
    if n_in % 8:                                        # whole 8-byte words per frame
        x_bytes = np.pad(x_bytes, ((0, 0), (0, 0), (0, -n_in % 8)))
    spikes = np.zeros((b, t, v_off) if keep_spikes else (1, 1, 0), np.bool_)
    counts = np.zeros((b, layers[-1].n_neurons), np.int64)
    stats = np.zeros((b, len(layers), len(STAT_FIELDS)), np.int64)
    v_all = np.zeros((b, v_off), np.int16)              # v_bits <= 16
    ev_all = np.empty((b, 3, max_ev + 7 + UNROLLED), np.int32)   # (_set_bytes' room; every
    # entry is written before it is read)
    _run(params, np.array(neurons, np.int16), w, np.concatenate(tables).astype(np.int32),
         x_bytes.view(np.uint64), np.zeros((b, v_off + LANES), cur_type), v_all,
         np.zeros((b, flag_off), np.uint64), ev_all, np.zeros((b, max_ev), np.uint8), spikes,
         counts, stats)
    last, row = layers[-1], params[-1]
    v_last = v_all[:, row[P_V_OFF]:row[P_V_OFF] + last.n_neurons]
    if last.op == "conv":                               # channels-last -> (N, Ho, Wo)
        v_last = v_last.reshape(b, row[P_HO], row[P_WO], row[P_N]).transpose(0, 3, 1, 2)
    kept = {}
    if keep_spikes:
        for layer, row in zip(layers, params):
            part = spikes[:, :, row[P_SPK_OFF]:row[P_SPK_OFF] + layer.n_neurons]
            kept[layer.name] = part.reshape(b, t, *layer.out_shape)
    return counts, v_last.reshape(b, -1).astype(np.int32), stats.sum(0), kept
