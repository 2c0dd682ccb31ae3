"""AXI4-Stream links between the DMA models and the HLS IP models.

A beat is one data word (up to 64 bits, held as ``uint64``) plus TLAST. A link is a
bounded FIFO: a producer can push only while there is room, as TVALID/TREADY
back-pressure allows on hardware. For speed, a consumer that finds the FIFO empty may
pull beats straight from the producer (``source.supply``); that is the same order of
beats the hardware would deliver, just without copying through the buffer.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

import numpy as np

EMPTY_WORDS = np.zeros(0, dtype=np.uint64)
EMPTY_LAST = np.zeros(0, dtype=bool)


class BeatSource(Protocol):
    def supply(self, n: int, until_last: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Hand out up to ``n`` beats that are ready to leave the producer."""

    def pending_beats(self) -> int:
        """How many beats the producer holds ready."""


def _cut_at_last(words: np.ndarray, last: np.ndarray, until_last: bool):
    if until_last and last.any():
        k = int(np.argmax(last)) + 1
        return words[:k], last[:k], words[k:], last[k:]
    return words, last, EMPTY_WORDS, EMPTY_LAST


class AxisFifo:
    """A bounded stream FIFO of ``depth`` beats."""

    def __init__(self, depth: int, name: str = "axis"):
        if depth < 1:
            raise ValueError(f"stream FIFO depth must be >= 1, got {depth}")
        self.depth = depth
        self.name = name
        self.source: BeatSource | None = None
        self._chunks: deque[tuple[np.ndarray, np.ndarray]] = deque()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def free(self) -> int:
        return max(0, self.depth - self._count)

    def clear(self) -> None:
        self._chunks.clear()
        self._count = 0

    def push(self, words: np.ndarray, last: np.ndarray) -> int:
        """Append as many beats as fit; returns how many were accepted."""
        n = min(self.free, len(words))
        if n:
            self._chunks.append((np.array(words[:n], np.uint64), np.array(last[:n], bool)))
            self._count += n
        return n

    def unpop(self, words: np.ndarray, last: np.ndarray) -> None:
        """Put beats back at the head (a consumer read them but did not use them)."""
        if len(words):
            self._chunks.appendleft((np.array(words, np.uint64), np.array(last, bool)))
            self._count += len(words)

    def pop(self, n: int, until_last: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Take up to ``n`` beats (ending at the first TLAST when ``until_last``),
        pulling through from ``source`` once the buffer is empty."""
        words, last, got = [], [], 0
        while got < n and self._chunks:
            w, l = self._chunks.popleft()
            take = min(n - got, len(w))
            w_take, l_take, w_rest, l_rest = _cut_at_last(w[:take], l[:take], until_last)
            rest_w = np.concatenate([w_rest, w[take:]])
            rest_l = np.concatenate([l_rest, l[take:]])
            if len(rest_w):
                self._chunks.appendleft((rest_w, rest_l))
            self._count -= len(w_take)
            got += len(w_take)
            words.append(w_take)
            last.append(l_take)
            if until_last and len(l_take) and l_take[-1]:
                return np.concatenate(words), np.concatenate(last)
        if got < n and self.source is not None:
            w, l = self.source.supply(n - got, until_last)
            words.append(np.asarray(w, np.uint64))
            last.append(np.asarray(l, bool))
        if not words:
            return EMPTY_WORDS, EMPTY_LAST
        return np.concatenate(words), np.concatenate(last)

    def available(self) -> int:
        """Beats a consumer could take now, including what the source holds ready."""
        extra = self.source.pending_beats() if self.source is not None else 0
        return self._count + extra
