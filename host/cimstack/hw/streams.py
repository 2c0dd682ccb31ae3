"""Word formats of the AXI-Stream transfers between host and kernels (64-bit words,
little endian, TLAST on the last word of every transfer). Pure NumPy so the board
runtime, the emulator and the tests share one definition.

dcim kernel
- load weights: the K x N int8 weight matrix, row k then column n (k-major), 8 weights
  per word, zero padded to a whole word.
- load requantizer: two words per output channel n: bias B_n (int64), then
  multiplier M_n (int64, within int32).
- compute: each input vector is K unsigned bytes, 8 per word, zero padded to a whole
  word per vector; each output vector is N int32 values, 2 per word, padded to a whole
  word per vector.

acim kernel: weights, requantizer, inputs and outputs as dcim, plus
- load ABN (mode 3): one word per channel, gain g in bits 0..31 (uint32), offset o in
  bits 32..63 (int32).
"""

from __future__ import annotations

import numpy as np

from ..overlay_shape import STREAM_BYTES


def words_for(n_bytes: int) -> int:
    """Number of 64-bit words that hold ``n_bytes`` bytes."""
    return -(-n_bytes // STREAM_BYTES)


def _rows_to_words(rows: np.ndarray) -> np.ndarray:
    """Pack a 2-D byte array row by row, each row padded to whole words (rows of whole
    words as they are: a view of contiguous bytes, no copy)."""
    n, width = rows.shape
    if width % STREAM_BYTES == 0:
        return np.ascontiguousarray(rows).reshape(-1).view("<u8")
    padded = np.zeros((n, words_for(width) * STREAM_BYTES), dtype=np.uint8)
    padded[:, :width] = rows
    return padded.reshape(-1).view("<u8")


def pack_weights(w_mat: np.ndarray) -> np.ndarray:
    """K x N int8 weight matrix -> words (k-major)."""
    flat = np.ascontiguousarray(w_mat, dtype=np.int8).reshape(1, -1).view(np.uint8)
    return _rows_to_words(flat)


def pack_requant(multiplier: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Per-channel (B_n, M_n) pairs -> 2N words."""
    pairs = np.stack([np.asarray(bias, np.int64), np.asarray(multiplier, np.int64)], axis=1)
    return np.ascontiguousarray(pairs).reshape(-1).view("<u8")


def pack_inputs(x_mat: np.ndarray) -> np.ndarray:
    """n_vec x K unsigned activations (< 256) -> words, each vector word aligned."""
    return _rows_to_words(np.asarray(x_mat, dtype=np.uint8))


def input_words(k: int, n_vec: int) -> int:
    return words_for(k) * n_vec


def output_words(n: int, n_vec: int) -> int:
    return words_for(4 * n) * n_vec


def unpack_outputs(words: np.ndarray, n: int, n_vec: int) -> np.ndarray:
    """Words -> n_vec x N int32 outputs."""
    per_vec = words_for(4 * n) * 2
    vals = np.asarray(words, dtype="<u8")[: output_words(n, n_vec)].view("<i4")
    return vals.reshape(n_vec, per_vec)[:, :n]


def pack_abn(gain: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """ABN stream of the acim kernel (mode 3): one 64-bit word per channel, gain g in
    bits 0..31 (uint32), offset o in bits 32..63 (int32 two's complement)."""
    g = np.asarray(gain, np.int64).astype(np.uint64) & np.uint64(0xFFFFFFFF)
    o = np.asarray(offset, np.int64).astype(np.uint64) & np.uint64(0xFFFFFFFF)
    return g | (o << np.uint64(32))
