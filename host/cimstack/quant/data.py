"""The UCI handwritten digits (8x8, 10 classes) as float images, with a fixed split.

``sklearn.datasets.load_digits`` ships with scikit-learn, so nothing is downloaded.
Pixels are integers 0..16 in the data set; they are scaled to [0, 1] by ``/16`` (every
value is exactly representable in float32, so input quantization with a power-of-two
scale is exact in any precision). This module does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TEST_FRACTION = 0.2
SPLIT_SEED = 0
NUM_CLASSES = 10
IMAGE_SHAPE = (1, 8, 8)


@dataclass(frozen=True)
class DigitsSplit:
    """Train/test arrays: images float32 [N, 1, 8, 8] in [0, 1], labels int64 [N]."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def __iter__(self):  # allows ``x_tr, y_tr, x_te, y_te = load_digits_split()``
        return iter((self.x_train, self.y_train, self.x_test, self.y_test))


def load_digits_split(test_fraction: float = TEST_FRACTION,
                      seed: int = SPLIT_SEED) -> DigitsSplit:
    """The digits with a seeded, stratified train/test split (default 20 % test, seed 0)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images.astype(np.float32) / np.float32(16.0)).reshape(-1, *IMAGE_SHAPE)
    labels = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, labels, test_size=test_fraction, random_state=seed, stratify=labels)
    return DigitsSplit(np.ascontiguousarray(x_tr), np.ascontiguousarray(y_tr),
                       np.ascontiguousarray(x_te), np.ascontiguousarray(y_te))
