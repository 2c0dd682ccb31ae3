"""Integer codes against a float model's values, output by output: equal, or one step
apart only where the float value lies within its float32 error bound of a rounding tie.
Used to check the integer reference against Brevitas (:mod:`cimstack.quant.export`)
and against qonnx's executor (:mod:`cimstack.verify.against`); no torch here."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FLOAT32_UNIT = 2.0**-24        # unit roundoff of float32


@dataclass(frozen=True)
class LayerCheck:
    """One layer of the integer reference against a float model (Brevitas in torch, or
    qonnx's executor), both fed the same input codes.

    For every output, ``torch_value`` is torch's float32 value before rounding, in output
    steps (the activation quantizer's ``relu(y) / scale``; for the logits ``y /
    output_scale``) and ``bound`` bounds its float32 error plus the requantizer's
    fixed-point error (see :func:`cimstack.quant.export.compare_layer_codes`). An output is *unexplained* when
    ``|ref - clip(torch_value, lo, hi)| > 0.5 + bound``: with ``bound < 0.5`` (the hidden
    layers) that allows a code one step away from torch's, and only where torch's value
    lies within ``bound`` of a rounding tie.
    """

    name: str
    outputs: int          # codes compared
    mismatches: int       # reference code != torch's rounded value
    max_steps: int        # largest |reference code - torch's rounded value|
    max_bound: float      # largest error bound used, in output steps
    unexplained: int
    worst: str            # the worst unexplained output, "" when there is none

    @property
    def ok(self) -> bool:
        return self.unexplained == 0

    def summary(self) -> str:
        text = (f"{self.name}: {self.mismatches}/{self.outputs} codes differ (max "
                f"{self.max_steps} step(s), float bound {self.max_bound:.2g} steps), "
                f"{self.unexplained} unexplained")
        return f"{text}; worst {self.worst}" if self.worst else text


def float32_bound(terms: int) -> float:
    """gamma_n = n*u / (1 - n*u): relative error bound of ``n`` float32 operations."""
    nu = terms * FLOAT32_UNIT
    return nu / (1.0 - nu)


def check_codes(name: str, ref: np.ndarray, torch_value: np.ndarray, bound: np.ndarray,
                lo: int, hi: int, source: str = "torch") -> LayerCheck:
    """:class:`LayerCheck` of reference codes against a float model's values (same
    shape); ``source`` names that model in the message of the worst output."""
    target = np.clip(torch_value, lo, hi)
    steps = np.abs(ref - np.round(target))
    miss = np.abs(ref - target) - (0.5 + bound)
    bad = miss > 0
    worst = ""
    if bad.any():
        j = int(np.argmax(miss))
        worst = (f"output {np.unravel_index(j, ref.shape)}: reference {int(ref.flat[j])}, "
                 f"{source} {float(torch_value.flat[j])!r} (bound {float(bound.flat[j]):.2g})")
    return LayerCheck(name, int(ref.size), int(np.count_nonzero(steps)),
                      int(steps.max(initial=0)), float(bound.max(initial=0.0)),
                      int(np.count_nonzero(bad)), worst)
