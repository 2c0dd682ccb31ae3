"""A trainable torch model of an integer graph bundle: fine-tuning any bundle's macro
layers without its Brevitas source.

:class:`GraphModel` runs a bundle's DAG (docs/bundle.md) in torch, in float64, on the
integer codes the bundle passes between its nodes, with the integer semantics of the
reference (:mod:`cimstack.ref.network`, docs/macros.md) and straight-through gradients
for every rounding:

- a **dcim** layer: signed codes get their offset first (a conv pads with it, the code
  of 0); ``acc = conv(u, W_q)`` (stride, dilation, groups) or ``u @ W_q``; the
  requantizer ``clamp(round_half_up((acc*M' + B') / 2^s), lo, hi)``;
- an **acim** layer: the same ``acc`` through the macro's ADC
  (:func:`cimstack.quant.analog.adc_codes`: the fixed-point ABN gain and offset of the
  layer's :class:`~cimstack.config.AcimSpec`, Gaussian noise of ``sigma`` LSB while
  training), then its fixed requantizer on the codes;
- max pools, average pools (an integer window sum and the node's fixed requantizer with
  its rounding), residual adds (``(a*M + b*M_b + B) / 2^s`` rounded as the node says),
  concats and flattens as in the reference; they have nothing to learn.

What trains: the integer weights of every macro layer (``W_q = clamp(round(W0 + 2^(w_bits-1)
dW))``, binary ones ``sign``), a dcim layer's requantizer multiplier and bias (``M' = M (1 + dM)``,
``B' = B + 2^s * 16 dB``: the bias moves in output codes) and an acim layer's ABN gain and
offset. Every trained offset starts at 0, so an untrained model computes the bundle's
own integers (exactly, while ``|acc*M + B| < 2^53``: a test), and :func:`export_graph`
of an untrained model gives back the bundle's function. A dcim layer's blocks that are
all zero (``rows_on`` rows of one channel, the block pruning the macro skips) stay zero,
so fine-tuning keeps the layer's block sparsity and its cost.

The input quantizer is the bundle's (:func:`cimstack.ref.network.quantize_input`): the
model takes the input codes. The logits are the last node's codes times a learned
temperature (for the loss only, set by :meth:`GraphModel.calibrate`).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..bundle import (INPUT, AddLayer, AvgPoolLayer, Bundle, ConcatLayer, MacroLayer,
                      PoolLayer, weight_range)
from ..config import AcimSpec
from ..errors import ConfigError
from ..mapping.tiling import kept_weights
from ..ref.requant import make_requant
from .analog import adc_codes, fixed_gain, fixed_offset

BIAS_STEP = 16.0              # a dcim bias parameter of 1 moves the output by 16 codes
TRAINABLE = ("dcim", "acim")  # the macro families the model knows
DTYPE = torch.float64
F32_EXACT = 1 << 24           # float32 adds integers below 2^24 exactly


class _Round(torch.autograd.Function):
    """Rounding with a straight-through gradient: half up (the macros), half to even
    (as torch.round) or down."""

    @staticmethod
    def forward(ctx, x, rounding):
        if rounding == "half_up":
            return torch.floor(x + 0.5)
        return torch.round(x) if rounding == "half_even" else torch.floor(x)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def round_as(x: torch.Tensor, rounding: str = "half_up") -> torch.Tensor:
    return _Round.apply(x, rounding)


def _per_channel(v: torch.Tensor, ndim: int) -> torch.Tensor:
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _requant(acc: torch.Tensor, m: torch.Tensor, b: torch.Tensor, shift: int, lo: int,
             hi: int, rounding: str = "half_up") -> torch.Tensor:
    """``clamp(round((acc*m + b) / 2^shift), lo, hi)`` per channel (axis 1)."""
    y = (acc * _per_channel(m, acc.ndim) + _per_channel(b, acc.ndim)) / 2.0 ** shift
    return torch.clamp(round_as(y, rounding), lo, hi)


def _buffer(values) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, np.float64), dtype=DTYPE)


def _sign_ste(w: torch.Tensor) -> torch.Tensor:
    """Binary weights {-1, +1} (0 counts as +1) with a straight-through gradient."""
    return w + (torch.where(w >= 0, 1.0, -1.0).to(w.dtype) - w).detach()


class TunedMacro(nn.Module):
    """One macro layer of the bundle, trainable (module docstring)."""

    def __init__(self, layer: MacroLayer, offset: int, spec: AcimSpec | None, rows_on: int):
        super().__init__()
        self.layer = layer
        self.offset = offset
        self.register_buffer("w0", _buffer(layer.weight))
        self.dw = nn.Parameter(torch.zeros_like(self.w0))
        self.w_step = 2.0 ** (layer.w_bits - 1)
        self.w_lo, self.w_hi = weight_range(layer.w_bits)
        keep = (kept_weights(layer, rows_on)
                if layer.macro == "dcim" and layer.groups == 1 and layer.w_bits > 1
                else np.ones(layer.weight.shape, bool))
        self.register_buffer("keep", torch.as_tensor(keep))
        # the product in float32 when every partial sum is an integer below 2^24 (exact in
        # any order, and several times faster than float64 convolutions), else float64
        peak = layer.k * ((1 << layer.x_bits) - 1) * (1 << (layer.w_bits - 1))
        self.acc_dtype = torch.float32 if peak < F32_EXACT else DTYPE
        rq = layer.requant
        self.register_buffer("rq_m", _buffer(rq.multiplier))
        self.register_buffer("rq_b", _buffer(rq.bias))
        n = layer.channels
        self.spec = spec
        self.noise_sigma = 0.0
        if layer.macro == "acim":
            a = layer.analog
            g = np.asarray(a.gain, np.float64) / 2.0 ** spec.gain_frac_bits
            self.log2_gain = nn.Parameter(_buffer(np.log2(np.maximum(g, 2.0 ** -40))))
            h = 2.0 ** (spec.adc_bits - 1)
            self.offset_h = nn.Parameter(
                _buffer(np.asarray(a.offset, np.float64) / 2.0 ** spec.offset_frac_bits / h))
            self.fs = float(spec.norm_rows(layer.k) * ((1 << layer.x_bits) - 1)
                            * 2 ** (layer.w_bits - 1))
        else:
            self.dm = nn.Parameter(torch.zeros(n, dtype=DTYPE))
            self.db = nn.Parameter(torch.zeros(n, dtype=DTYPE))

    def int_weight(self) -> torch.Tensor:
        w = self.w0 + self.w_step * self.dw
        q = _sign_ste(w) if self.layer.w_bits == 1 else \
            torch.clamp(round_as(w), self.w_lo, self.w_hi)
        return torch.where(self.keep, q, torch.zeros_like(q))

    def real_requant(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The dcim requantizer's ``M'`` and ``B'`` (module docstring), as reals."""
        shift = self.layer.requant.shift
        return self.rq_m * (1.0 + self.dm), self.rq_b + 2.0 ** shift * BIAS_STEP * self.db

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layer, w = self.layer, self.int_weight().to(self.acc_dtype)
        u = (x + self.offset if self.offset else x).to(self.acc_dtype)
        if layer.op == "conv2d":
            p = layer.padding
            if p:
                u = F.pad(u, (p, p, p, p), value=float(self.offset))
            acc = F.conv2d(u, w, None, layer.stride, 0, layer.dilation, layer.groups)
        else:
            acc = u.reshape(u.shape[0], -1) @ w.T
        acc = acc.to(DTYPE)
        rq = layer.requant
        if layer.macro == "acim":
            codes = adc_codes(acc, fixed_gain(self.log2_gain, self.spec),
                              fixed_offset(self.offset_h, self.spec), self.spec, self.fs,
                              self.noise_sigma)
            return _requant(codes, self.rq_m, self.rq_b, rq.shift, rq.lo, rq.hi)
        m, b = self.real_requant()
        return _requant(acc, m, b, rq.shift, rq.lo, rq.hi)


class GraphModel(nn.Module):
    """A bundle as a trainable torch model on its input codes (module docstring)."""

    def __init__(self, bundle: Bundle):
        super().__init__()
        bundle.validate()
        for layer in bundle.macro_layers:
            if layer.macro not in TRAINABLE:
                raise ConfigError(f"layer {layer.name} is on {layer.macro}: fine-tuning "
                                  f"models the {' and '.join(TRAINABLE)} macros only")
        self.bundle = bundle
        formats = bundle.formats()
        self.macros = nn.ModuleDict({
            layer.name: TunedMacro(layer, formats[layer.inputs[0]].offset,
                                   bundle.acim_for(layer) if layer.macro == "acim" else None,
                                   bundle.dcim.rows_on)
            for layer in bundle.macro_layers})
        self.fixed = {node.name: (_buffer(node.requant.multiplier), _buffer(node.requant.bias),
                                  _buffer(node.multiplier_b) if isinstance(node, AddLayer)
                                  else None)
                      for node in bundle.layers if isinstance(node, (AvgPoolLayer, AddLayer))}
        self.log_temp = nn.Parameter(torch.zeros((), dtype=DTYPE))   # loss only

    def set_noise(self, on: bool) -> None:
        """Gaussian noise of each acim layer's ``sigma`` (as applied: ``sigma_q / 256``
        LSB) on, or off."""
        for macro in self.macros.values():
            if macro.spec is not None:
                macro.noise_sigma = macro.spec.sigma_q / 256 if on else 0.0

    def logits(self, codes: torch.Tensor) -> torch.Tensor:
        """The integer logits (the last node's codes, flattened) of input codes."""
        values = {INPUT: codes.to(DTYPE)}
        for node in self.bundle.layers:
            xs = [values[src] for src in node.inputs]
            values[node.name] = self._node(node, xs)
        out = values[self.bundle.layers[-1].name]
        return out.reshape(out.shape[0], -1)

    def _node(self, node, xs: list) -> torch.Tensor:
        if isinstance(node, MacroLayer):
            return self.macros[node.name](xs[0])
        if isinstance(node, PoolLayer):
            return F.max_pool2d(xs[0], node.kernel, node.stride)
        if isinstance(node, ConcatLayer):
            return torch.cat(xs, dim=1)
        if isinstance(node, (AvgPoolLayer, AddLayer)):
            m, b, m_b = self.fixed[node.name]
            rq = node.requant
            if isinstance(node, AvgPoolLayer):        # the window sum, then M
                acc = F.avg_pool2d(xs[0], node.kernel, node.stride, divisor_override=1)
                return _requant(acc, m, b, rq.shift, rq.lo, rq.hi, node.rounding)
            nd = xs[0].ndim                             # a*M + b*M_b, then M = 1
            acc = xs[0] * _per_channel(m, nd) + xs[1] * _per_channel(m_b, nd)
            return _requant(acc, torch.ones_like(m), b, rq.shift, rq.lo, rq.hi, node.rounding)
        return xs[0].reshape(xs[0].shape[0], -1)                     # flatten

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.logits(codes) * torch.exp(self.log_temp)

    @torch.no_grad()
    def calibrate(self, codes: torch.Tensor) -> None:
        """The temperature that puts the largest logit of ``codes`` at 8 (for the loss)."""
        peak = float(self.logits(codes).abs().max())
        self.log_temp.fill_(math.log(8.0 / peak) if peak > 0 else 0.0)


@torch.no_grad()
def export_graph(model: GraphModel, name: str | None = None, meta: dict | None = None) -> Bundle:
    """The model's bundle: the source bundle's graph with the trained integer weights, dcim
    requantizers (:func:`~cimstack.ref.requant.make_requant` of ``M' / 2^s``, ``B' /
    2^s``; a layer whose multiplier and bias did not move keeps its own) and acim ABN
    gains and offsets."""
    src = model.bundle
    layers = []
    for node in src.layers:
        if not isinstance(node, MacroLayer):
            layers.append(node)
            continue
        macro = model.macros[node.name]
        w = macro.int_weight().round().to(torch.int64).numpy().astype(np.int8)
        if node.macro == "acim":
            spec = macro.spec
            g = torch.round(fixed_gain(macro.log2_gain, spec) * 2 ** spec.gain_frac_bits)
            o = torch.round(fixed_offset(macro.offset_h, spec) * 2 ** spec.offset_frac_bits)
            analog = replace(node.analog, gain=g.to(torch.int64).numpy(),
                             offset=o.to(torch.int64).numpy())
            layers.append(replace(node, weight=w, analog=analog))
            continue
        rq = node.requant
        if bool((macro.dm != 0).any() or (macro.db != 0).any()):
            m, b = macro.real_requant()
            acc_max = int(np.abs(w.reshape(len(w), -1).astype(np.int64)).sum(1).max()
                          * ((1 << node.x_bits) - 1))
            rq = make_requant(m.numpy() / 2.0 ** rq.shift, b.numpy() / 2.0 ** rq.shift,
                              acc_max, rq.lo, rq.hi)
        layers.append(replace(node, weight=w, requant=rq))
    out = replace(src, name=name or src.name, layers=layers,
                  meta={**src.meta, **(meta or {})})
    out.validate()
    return out
