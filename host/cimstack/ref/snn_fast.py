"""Event-driven synaptic input for the SNN reference, compiled with numba.

The same integers as :func:`cimstack.ref.snn.synaptic_input` (a test), computed the
way the event core does: every input spike adds the weight slice of its address into
the currents of the neurons it reaches, so the work is proportional to the events
(synaptic operations), not to the dense map. Frames are processed in parallel.
Optional: without numba the reference uses the dense BLAS form.
"""

from __future__ import annotations

import numpy as np

try:
    import numba
    from numba import njit, prange
except ImportError:          # pragma: no cover - numba not installed
    numba = None

AVAILABLE = numba is not None


if AVAILABLE:
    @njit(parallel=True, cache=True, nogil=True)
    def _conv_events(ptr, ev, w_t, out, h, w, pad):   # pragma: no cover - compiled
        # w_t: [C, k, k, N]; a frame accumulates channels-last (the N weights of one
        # kernel tap are contiguous), then is written out as [N, Ho, Wo].
        n_frames = ptr.size - 1
        k = w_t.shape[1]
        n = w_t.shape[3]
        ho = out.shape[2]
        wo = out.shape[3]
        for f in prange(n_frames):
            if ptr[f + 1] == ptr[f]:
                continue
            buf = np.zeros((ho, wo, n), np.int32)
            for e in range(ptr[f], ptr[f + 1]):
                a = ev[e]
                c = a // (h * w)
                r = a - c * h * w
                y = r // w
                x = r - y * w
                dy0 = max(0, y + pad - ho + 1)
                dy1 = min(k, y + pad + 1)
                dx0 = max(0, x + pad - wo + 1)
                dx1 = min(k, x + pad + 1)
                for dy in range(dy0, dy1):
                    yo = y + pad - dy
                    for dx in range(dx0, dx1):
                        xo = x + pad - dx
                        for j in range(n):
                            buf[yo, xo, j] += w_t[c, dy, dx, j]
            for j in range(n):
                for yo in range(ho):
                    for xo in range(wo):
                        out[f, j, yo, xo] = buf[yo, xo, j]

    @njit(parallel=True, cache=True, nogil=True)
    def _fc_events(ptr, ev, w_t, out):                # pragma: no cover - compiled
        n_frames = ptr.size - 1
        n = w_t.shape[1]
        for f in prange(n_frames):
            for e in range(ptr[f], ptr[f + 1]):
                a = ev[e]
                for j in range(n):
                    out[f, j] += w_t[a, j]


def synaptic_input_events(layer, spikes: np.ndarray) -> np.ndarray:
    """Input currents int32 ``[F, *out_shape]`` of binary maps ``[F, *in_shape]``."""
    f = spikes.shape[0]
    flat = spikes.reshape(f, -1)
    frame, addr = np.nonzero(flat)
    ptr = np.zeros(f + 1, np.int64)
    np.cumsum(np.bincount(frame, minlength=f), out=ptr[1:])
    addr = addr.astype(np.int64)
    if layer.op == "fc":
        w_t = np.ascontiguousarray(layer.weight.T, dtype=np.int32)
        out = np.zeros((f, w_t.shape[1]), np.int32)
        _fc_events(ptr, addr, w_t, out)
        return out
    _, h, w = layer.in_shape
    w_t = np.ascontiguousarray(layer.weight.transpose(1, 2, 3, 0), dtype=np.int32)
    out = np.zeros((f, *layer.out_shape), np.int32)
    _conv_events(ptr, addr, w_t, out, h, w, layer.padding)
    return out


if AVAILABLE:
    @njit(parallel=True, cache=True, nogil=True)
    def _if_dynamics(cur, theta, v_bits, leak, reset, wrap, fire_gt, leak_before, v_init,
                     spikes, v_out):  # pragma: no cover
        # reset: SnnLayer.reset_code (0 subtract, 1 zero, 2 every timestep)
        b, t, n = cur.shape
        lo = -(1 << (v_bits - 1))
        hi = (1 << (v_bits - 1)) - 1
        span = 1 << v_bits
        for s in prange(b):
            v = np.full(n, v_init, np.int64)
            for step in range(t):
                for j in range(n):
                    u = v[j]
                    if leak > 0 and leak_before:
                        u -= u >> leak
                    u += np.int64(cur[s, step, j])
                    if wrap:
                        u = (u - lo) % span + lo
                    elif u < lo:
                        u = lo
                    elif u > hi:
                        u = hi
                    if leak > 0 and not leak_before:
                        u -= u >> leak
                    fire = u > theta if fire_gt else u >= theta
                    if reset == 2 or (fire and reset == 1):
                        u = 0
                    elif fire:
                        u -= theta
                    spikes[s, step, j] = fire
                    v[j] = u
            for j in range(n):
                v_out[s, j] = v[j]


def if_dynamics(cur: np.ndarray, layer) -> tuple[np.ndarray, np.ndarray]:
    """Integrate-and-fire over all timesteps: currents ``[B, T, N]`` -> (spikes bool
    ``[B, T, N]``, final membranes int32 ``[B, N]``); the arithmetic of
    :func:`cimstack.ref.snn.neuron_update`."""
    b, t, n = cur.shape
    spikes = np.empty((b, t, n), np.bool_)
    v = np.empty((b, n), np.int64)
    _if_dynamics(np.ascontiguousarray(cur), np.int64(layer.theta), np.int64(layer.v_bits),
                 np.int64(layer.leak_shift), np.int64(layer.reset_code),
                 layer.overflow == "wrap", layer.fire == "gt", layer.leak_order == "before",
                 np.int64(layer.v_init), spikes, v)
    return spikes, v.astype(np.int32)
