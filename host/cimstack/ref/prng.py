"""Counter-based integer noise of the analog macro (docs/macros.md, "Analog CIM macro").

Every ADC conversion draws one approximately standard normal number ``n = m / 64`` from
a pure function of its key, so runs are reproducible, batches can be split anywhere,
and the C++ kernel (hls/include/cimstack/acim_noise.h) draws the same numbers:

- ``key = mix64(seed * 2^32 + layer)``, seed and layer 32-bit;
- counter ``c = sample * 2^24 + channel * 2^8 + conversion`` (channel < 2^16,
  conversion < 2^8: 0 for a charge-mode conversion, the input bit b in the
  ADC-per-input-bit mode, sample < 2^32);
- ``r = mix64(key + c * 0x9E3779B97F4A7C15)`` (mod 2^64): the splitmix64 output for
  state number c of the stream ``key``;
- Irwin-Hall: the twelve 5-bit fields ``u_i`` (bits 5i .. 5i+4, i < 12) of ``r`` are
  summed, ``m = 2 * sum(u_i) - 12 * 31`` (an even integer in [-372, 372]), and
  ``n = m / 64`` has mean 0 and variance 1023/1024.

``mix64`` is the splitmix64 finalizer. Only 64-bit integer operations; no floats.
"""

from __future__ import annotations

import numpy as np

GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
MASK64 = (1 << 64) - 1
NORMAL_FRAC_BITS = 6          # n = m / 2^6
IRWIN_HALL_TERMS = 12
FIELD_BITS = 5
M_OFFSET = IRWIN_HALL_TERMS * ((1 << FIELD_BITS) - 1)   # 372
MAX_SAMPLE = 2**32 - 1
MAX_CHANNEL = 2**16 - 1
MAX_CONVERSION = 2**8 - 1

_U = np.uint64
FIELDS_EVEN = _U(sum(0x1F << (10 * i) for i in range(6)))  # fields 0, 2, 4, .. in 10-bit lanes
LANE_SUM = _U(sum(1 << (10 * i) for i in range(6)))        # adds the six lanes into bits 50..59


def mix64_int(z: int) -> int:
    """splitmix64 finalizer on a Python int (mod 2^64)."""
    z &= MASK64
    z = ((z ^ (z >> 30)) * MIX1) & MASK64
    z = ((z ^ (z >> 27)) * MIX2) & MASK64
    return z ^ (z >> 31)


def mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer on a uint64 array, in place (wrapping arithmetic)."""
    t = z >> _U(30)
    z ^= t
    z *= _U(MIX1)
    np.right_shift(z, _U(27), out=t)
    z ^= t
    z *= _U(MIX2)
    np.right_shift(z, _U(31), out=t)
    z ^= t
    return z


def stream_key(seed: int, layer: int) -> int:
    """``mix64(seed * 2^32 + layer)``: the key of one layer's noise stream."""
    if not 0 <= seed <= 2**32 - 1 or not 0 <= layer <= 2**32 - 1:
        raise ValueError(f"seed {seed} and layer {layer} must be 32-bit unsigned integers")
    return mix64_int((seed << 32) | layer)


def counters(samples: np.ndarray, channels: np.ndarray, conversion: int) -> np.ndarray:
    """uint64 counters ``sample * 2^24 + channel * 2^8 + conversion`` (broadcast)."""
    s = np.asarray(samples, np.uint64)
    c = np.asarray(channels, np.uint64)
    return (s << _U(24)) | (c << _U(8)) | _U(conversion)


def normal_m(key: int, counter: np.ndarray) -> np.ndarray:
    """The Irwin-Hall integers m (n = m / 64) for uint64 counters; int64, same shape."""
    z = np.multiply(counter, _U(GOLDEN), dtype=np.uint64)
    z += _U(key)
    return _irwin_hall(z)


def _irwin_hall(z: np.ndarray) -> np.ndarray:
    """m from splitmix64 states z (consumed in place)."""
    mix64(z)
    t = z >> _U(5)
    t &= FIELDS_EVEN
    z &= FIELDS_EVEN
    z += t                       # six 10-bit lanes, each the sum of two fields (<= 62)
    z *= LANE_SUM                # lane sums accumulate in bits 50..59 (total <= 372)
    z >>= _U(50)
    z &= _U(0x3FF)
    m = z.view(np.int64)
    m <<= 1
    m -= M_OFFSET
    return m


def normal_m_grid(seed: int, layer: int, samples: np.ndarray, channels: np.ndarray,
                  conversion: int = 0) -> np.ndarray:
    """m for every (sample, channel) pair: int64 [len(samples), len(channels)].

    Same numbers as :func:`normal_m` of :func:`counters`."""
    rows, cols = grid_states(seed, layer, samples, channels, conversion)
    z = np.add(rows[:, None], cols[None, :], dtype=np.uint64)
    return _irwin_hall(z)


def grid_states(seed: int, layer: int, samples: np.ndarray, channels: np.ndarray,
                conversion: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The splitmix64 states ``key + c * GOLDEN`` (mod 2^64) of a (sample, channel) grid
    as a row term plus a column term, uint64 ``[len(samples)]`` and ``[len(channels)]``:
    the counter's fields do not overlap, so ``c * GOLDEN`` splits into the sample's,
    the channel's and the conversion's products; adding ``d * GOLDEN`` to a row moves
    it to conversion ``conversion + d``."""
    g = _U(GOLDEN)
    rows = np.multiply(counters(samples, 0, conversion), g, dtype=np.uint64)
    rows += _U(stream_key(seed, layer))
    cols = np.multiply(np.asarray(channels, np.uint64) << _U(8), g, dtype=np.uint64)
    return rows, cols


def normal_m_scalar(seed: int, layer: int, sample: int, channel: int, conversion: int) -> int:
    """Plain-Python reference of one draw (documentation and tests)."""
    c = (sample << 24) | (channel << 8) | conversion
    r = mix64_int(stream_key(seed, layer) + c * GOLDEN)
    s = sum((r >> (FIELD_BITS * i)) & 0x1F for i in range(IRWIN_HALL_TERMS))
    return 2 * s - M_OFFSET
