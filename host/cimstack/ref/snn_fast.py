"""Event-driven integer engine of the SNN reference, compiled with numba.

The same integers as the dense engine of :func:`cimstack.ref.snn.run_snn` (a test),
computed the way the event core works: per sample and timestep, every layer takes the
addresses of its input spikes, adds each one's weight slice into the currents of the
neurons it reaches, steps all its neurons and hands the addresses of their spikes to
the next layer. The work is proportional to the synaptic operations, not to the dense
maps, and one compiled call runs the whole network over all timesteps (samples in
parallel), with no Python loop per timestep or layer.

Layout inside the kernel: conv currents and membranes are channels-last
(``[Ho, Wo, N]``), so the weights an event adds along one kernel row are one
contiguous run (with a stride above 1: one run of N weights per output reached, after
one division per axis and event); OR-pooling in front of a layer maps and de-duplicates
the incoming addresses through lookup tables (no divisions per event). Currents are int16 when no
neuron's sum of ``|w|`` over its inputs can leave int16 (twice the lanes per vector),
else int32; membranes are int16 (``v_bits <= 16``). Optional: without numba the
reference uses the dense engine.
"""

from __future__ import annotations

import numpy as np

try:
    import numba
    from numba import njit, prange
except ImportError:          # pragma: no cover - numba not installed
    numba = None

AVAILABLE = numba is not None

# columns of the per-layer parameter table handed to the kernel
(P_OP, P_POOL, P_IN_H, P_IN_W, P_N, P_HO, P_WO, P_K, P_PAD, P_STRIDE, P_W_OFF, P_V_OFF,
 P_FLAG_OFF, P_SPK_OFF, P_POOL_OFF, P_DEC_OFF, P_ADDR_OFF, P_THETA_SUB, P_FIRE_AT, P_LO,
 P_HI, P_LEAK, P_LEAK_BEFORE, P_WRAP, P_KEEP_FIRED, P_KEEP_QUIET, P_V_INIT) = range(27)
# columns of the per-sample statistics: LayerStats fields
STAT_FIELDS = ("events_in", "active_steps", "sops", "slices_in", "events_out")


if AVAILABLE:
    @njit(cache=True, nogil=True)
    def _input_addresses(words, ev):              # pragma: no cover - compiled
        """Addresses of the set bytes of ``words`` (a frame, 8 bytes per word) into
        ``ev``; returns their count (ascending order)."""
        n = 0
        for i in range(words.size):
            if words[i] != 0:
                for b in range(8):
                    if (words[i] >> np.uint64(8 * b)) & np.uint64(0xFF):
                        ev[n] = i * 8 + b
                        n += 1
        return n

    @njit(cache=True, nogil=True)
    def _pool_addresses(p, tab, src, n_src, dst, mark):  # pragma: no cover - compiled
        """OR-pooling of event addresses: maps ``src[:n_src]`` (on the source map) to
        the pooled map (table at P_POOL_OFF, -1 on the cropped border) and drops
        repeats; returns the count."""
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
    def _add_strided(w, w_c, cur, n, k, st, wo, qy, ry, i0, i1, qx, rx, j0,
                     j1):                             # pragma: no cover - compiled
        """One event of a conv with stride ``st`` > 1 (:func:`_integrate`): the
        weights of the channel at ``w[w_c:]``, kernel rows ``ry + i * st`` (i in [i0,
        i1)) and columns ``rx + j * st`` (j in [j0, j1)), into output (qy - i, qx - j):
        one run of N weights per output (apart so that the stride-1 loop stays
        lean)."""
        for i in range(i0, i1):
            row = w_c + (ry + i * st) * k * n
            for j in range(j0, j1):
                d = ((qy - i) * wo + qx - j) * n
                s = row + (k - 1 - rx - j * st) * n
                for q in range(n):
                    cur[d + q] += w[s + q]

    @njit(cache=True, nogil=True)
    def _integrate(p, w, tab, ev, n_ev, cur, mark, stats):  # pragma: no cover - compiled
        """Adds the weight slices of the events ``ev[:n_ev]`` into ``cur`` and counts
        events, synaptic operations and weight slices into ``stats``."""
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
            # w is [C, k, k (reversed dx), N]: kernel column dx at k - 1 - dx
            if st == 1:           # output columns qx-j1+1 .. qx-j0: one contiguous run
                run = (j1 - j0) * n
                for i in range(i0, i1):
                    d = ((qy - i) * wo + qx - j1 + 1) * n
                    s = w_off + ((c * k + i) * k + k - j1) * n
                    row_cur = cur[d:d + run]
                    row_w = w[s:s + run]
                    for q in range(run):              # slices: this loop vectorizes
                        row_cur[q] += row_w[q]
            else:
                _add_strided(w, w_off + c * k * k * n, cur, n, k, st, wo, qy, ry, i0, i1, qx,
                             rx, j0, j1)
        for e in range(n_ev):
            mark[tab[dec + 3 * ev[e]]] = 0
        stats[2] += sops
        stats[3] += slices

    @njit(cache=True, nogil=True)
    def _step_neurons(p, cur, v, fired):             # pragma: no cover - compiled
        """One timestep of integrate-and-fire of all neurons (the arithmetic of
        ``neuron_update``), branch-free apart from loop-invariant tests (which the
        compiler hoists) so that it vectorizes; clears ``cur``, sets ``fired`` and returns
        the spike count."""
        lo = p[P_LO]
        hi = p[P_HI]
        span_mask = hi - lo                           # 2^v_bits - 1
        leak = p[P_LEAK]
        before = -p[P_LEAK_BEFORE] if leak > 0 else 0  # all ones: leak before the input
        after = ~before if leak > 0 else 0             # all ones: leak after it
        wrap = p[P_WRAP] != 0
        fire_at = p[P_FIRE_AT]
        theta = p[P_THETA_SUB]
        keep_fired = p[P_KEEP_FIRED]                  # mask of u kept on a spike
        keep_quiet = p[P_KEEP_QUIET]                  # mask of u kept without one
        count = 0
        for q in range(v.size):
            u = np.int64(v[q])
            if leak > 0:      # invariant: the compiler makes a loop without the shifts
                u -= (u >> leak) & before
            u += np.int64(cur[q])
            cur[q] = 0
            if wrap:
                u = ((u - lo) & span_mask) + lo
            else:
                u = min(max(u, lo), hi)
            if leak > 0:
                u -= (u >> leak) & after
            f = u >= fire_at
            v[q] = np.int16(((u & keep_fired) - theta) if f else (u & keep_quiet))
            fired[q] = f
            count += f
        return count

    @njit(cache=True, nogil=True)
    def _emit(p, tab, fired_words, ev, spikes_t, counts):  # pragma: no cover - compiled
        """Addresses (C, H, W order) of the set bytes of ``fired_words`` into ``ev``;
        marks them in ``spikes_t`` (when kept) and ``counts`` (last layer only, when
        given); returns their count."""
        off = p[P_ADDR_OFF]                           # channels-last index -> address
        n_ev = 0
        for i in range(fired_words.size):
            if fired_words[i] == 0:
                continue
            for b in range(8):
                if (fired_words[i] >> np.uint64(8 * b)) & np.uint64(0xFF):
                    a = tab[off + i * 8 + b]
                    ev[n_ev] = a
                    n_ev += 1
                    if spikes_t.size:
                        spikes_t[p[P_SPK_OFF] + a] = True
                    if counts.size:
                        counts[a] += 1
        return n_ev

    @njit(parallel=True, cache=True, nogil=True)
    def _run(params, w, tab, x_words, cur_all, v_all, fired_all, ev_all, mark_all, spikes,
             counts, stats):                          # pragma: no cover - compiled
        """The network (``params`` rows, weights ``w``, lookup tables ``tab``) on the
        input frames ``x_words`` ``[B, T, words]``; the other arguments are per-sample
        work arrays and outputs (see :func:`run_events`)."""
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
                v[p[P_V_OFF]:p[P_V_OFF] + n_neurons] = p[P_V_INIT]
            for step in range(t):
                n_src = _input_addresses(x_words[s, step], ev[0])
                src = 0
                for l in range(n_layers):
                    p = params[l]
                    n_neurons = p[P_N] * p[P_HO] * p[P_WO]
                    lv = p[P_V_OFF]
                    evi = src
                    if p[P_POOL] > 1:
                        n_src = _pool_addresses(p, tab, ev[src], n_src, ev[2], mark)
                        evi = 2
                    _integrate(p, w, tab, ev[evi], n_src, cur[lv:lv + n_neurons], mark,
                               stats[s, l])
                    f0 = p[P_FLAG_OFF]
                    n_words = (n_neurons + 7) // 8
                    n_out = _step_neurons(p, cur[lv:lv + n_neurons], v[lv:lv + n_neurons],
                                          fired[f0 * 8:f0 * 8 + n_neurons])
                    out = 1 - src
                    if n_out:
                        last = l == n_layers - 1
                        n_src = _emit(p, tab, fired_all[s, f0:f0 + n_words], ev[out],
                                      spikes[s, step] if spikes.size else spikes[0, 0, :0],
                                      counts[s] if last else counts[0, :0])
                    else:
                        n_src = 0
                    stats[s, l, 4] += n_src
                    src = out


def _neuron_params(layer) -> list:
    """P_THETA_SUB .. P_V_INIT of a spiking layer."""
    lo, hi = -(1 << (layer.v_bits - 1)), (1 << (layer.v_bits - 1)) - 1
    fire_at = layer.theta + (1 if layer.fire == "gt" else 0)
    keep_fired = -1 if layer.reset == "subtract" else 0          # u - theta, or 0
    theta_sub = layer.theta if layer.reset == "subtract" else 0
    keep_quiet = 0 if layer.reset == "step" else -1
    return [theta_sub, fire_at, lo, hi, layer.leak_shift, int(layer.leak_order == "before"),
            int(layer.overflow == "wrap"), keep_fired, keep_quiet, layer.v_init]


def _current_bound(layer) -> int:
    """Largest ``|current|`` a neuron of the layer can receive in one timestep."""
    w = np.abs(layer.weight.astype(np.int64))
    return int(w.reshape(w.shape[0], -1).sum(1).max()) if w.size else 0


def _kernel_weights(layer) -> np.ndarray:
    """conv ``[N, C, k, k]`` -> ``[C, k, k reversed, N]``; fc ``[N, K]`` -> ``[K, N]``."""
    if layer.op == "fc":
        return layer.weight.T.reshape(-1)
    return layer.weight.transpose(1, 2, 3, 0)[:, :, ::-1, :].reshape(-1)


def _pool_table(src: tuple, k: int) -> np.ndarray:
    """Pooled address of every address of a ``src`` (C, H, W) map, -1 where the
    floor crop drops it."""
    c, h, w = src
    cc, yy, xx = np.meshgrid(np.arange(c), np.arange(h) // k, np.arange(w) // k,
                             indexing="ij")
    ph, pw = h // k, w // k
    return np.where((yy < ph) & (xx < pw), (cc * ph + yy) * pw + xx, -1).reshape(-1)


def _decode_table(shape: tuple) -> np.ndarray:
    """(c, y, x) of every address of a (C, H, W) map, flattened."""
    grids = np.meshgrid(*(np.arange(d) for d in shape), indexing="ij")
    return np.stack([g.reshape(-1) for g in grids], axis=1).reshape(-1)


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
    rows, weights, tables, layers = [], [], [], []
    src = tuple(net.input_shape)                      # the map the events arrive on
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
        n, ho, wo = layer.out_shape if layer.op == "conv" else (layer.out_shape[0], 1, 1)
        conv = layer.op == "conv"
        k, pad, stride = ((layer.weight.shape[2], layer.padding, layer.stride) if conv
                          else (1, 0, 1))
        rows.append([
            0 if conv else 1, pool, in_shape[1], in_shape[2], n, ho, wo, k, pad, stride,
            w_off, v_off, flag_off, v_off,
            table(_pool_table(src, pool)) if pool > 1 else -1,
            table(_decode_table(in_shape)) if conv else -1,
            table(_address_table(n, ho, wo)), *_neuron_params(layer)])
        weights.append(_kernel_weights(layer))
        layers.append(layer)
        w_off += weights[-1].size
        v_off += layer.n_neurons
        flag_off += (layer.n_neurons + 7) // 8
        max_ev = max(max_ev, layer.n_neurons, int(np.prod(in_shape)))
        src, pool = (n, ho, wo), 1
    params = np.array(rows, np.int64)
    small = max(_current_bound(l) for l in layers) <= np.iinfo(np.int16).max
    cur_type = np.int16 if small else np.int32
    w = np.concatenate(weights).astype(cur_type)
    n_in = int(np.prod(net.input_shape))
    x_bytes = np.zeros((b, t, -(-n_in // 8) * 8), np.uint8)
    x_bytes[:, :, :n_in] = x.reshape(b, t, n_in)
    spikes = np.zeros((b, t, v_off) if keep_spikes else (1, 1, 0), np.bool_)
    counts = np.zeros((b, layers[-1].n_neurons), np.int64)
    stats = np.zeros((b, len(layers), len(STAT_FIELDS)), np.int64)
    v_all = np.zeros((b, v_off), np.int16)              # v_bits <= 16
    _run(params, w, np.concatenate(tables).astype(np.int64), x_bytes.view(np.uint64),
         np.zeros((b, v_off), cur_type), v_all, np.zeros((b, flag_off), np.uint64),
         np.zeros((b, 3, max_ev), np.int64), np.zeros((b, max_ev), np.uint8), spikes, counts,
         stats)
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
