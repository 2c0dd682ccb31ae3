"""Noise-aware training for the analog macro (acim) and export of its parameters.

:class:`AnalogQuantLayer` wraps a Brevitas ``QuantConv2d`` / ``QuantLinear`` (its weight
quantizer gives the integer weights) and replaces the digital output stage with the
macro's analog path, in the forward pass, with straight-through gradients:

    dot  = x_int . w_int                                  (exact integers, float32)
    V    = dot / FS,  FS = N_norm * (2^x_bits - 1) * 2^(w_bits-1)   (swing of AcimSpec)
    code = clip(round(h * (G_c * V + 1) + beta_c + sigma * n), 0, 2^adc_bits - 1)

``G_c`` and ``beta_c`` are learned, fake-quantized to the AcimSpec fixed-point formats
(G unsigned, ``gain_frac_bits``; beta signed, in LSB, ``offset_frac_bits``), and
initialised from the float network's batch-norm folded into the ADC (IMAGINE's in-ADC
BN): with BN(z) = a_c z + b_c, z = s_x s_w,c dot and an output scale s_o,

    G_c = a_c s_x s_w,c FS / (s_o h),   beta_c = b_c / s_o - h   (hidden layers: the ADC's
    lower clip is the ReLU, the codes 0..2^adc_bits-1 are the next layer's inputs)
    G_c = s_x s_w,c FS / (s_o h),       beta_c = b_c / s_o       (last layer: logits = codes)

``n`` is ``torch.randn`` during training (noise-aware: ``train_sigma`` > 0). The exported
model runs on the integer reference (:func:`analog_engine`), whose noise is the
counter-based generator of :mod:`cimstack.ref.prng`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..bundle import Bundle, FlattenLayer, InputSpec, MacroLayer, PoolLayer, Requant
from ..config import AcimLayerParams, AcimSpec
from ..mapping.imagine import channel_split, check_channel_split
from .data import DigitsSplit, load_digits_split
from .model import FloatDigitsNet

IN_BITS = 5                   # first-layer input: pixels 0..16 (scale 1/16) in 5 bits
IN_SCALE = 1.0 / 16
INT32 = (-(2**31), 2**31 - 1)


class _RoundSte(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.floor(x + 0.5)           # round half up, as the fixed-point ADC

    @staticmethod
    def backward(ctx, grad):
        return grad


def round_ste(x: torch.Tensor) -> torch.Tensor:
    return _RoundSte.apply(x)


def fake_fixed(x: torch.Tensor, frac: int, lo: int, hi: int) -> torch.Tensor:
    """Value of the integer clamp(round(x * 2^frac), lo, hi) / 2^frac, STE gradient."""
    s = float(2 ** frac)
    return torch.clamp(round_ste(x * s), lo, hi) / s


def fixed_gain(log2_gain: torch.Tensor, spec: AcimSpec) -> torch.Tensor:
    """The ABN gains ``G`` of the learned ``log2 G``, in the spec's fixed-point format."""
    return fake_fixed(torch.pow(2.0, log2_gain), spec.gain_frac_bits, *spec.gain_range)


def fixed_offset(offset_h: torch.Tensor, spec: AcimSpec) -> torch.Tensor:
    """The ABN offsets ``beta`` (LSB) of the learned ``beta / h``, in the spec's
    fixed-point format."""
    h = 2 ** (spec.adc_bits - 1)
    return fake_fixed(offset_h * h, spec.offset_frac_bits, *spec.offset_range)


def adc_codes(dot: torch.Tensor, gain: torch.Tensor, offset: torch.Tensor, spec: AcimSpec,
              fs: float, noise_sigma: float = 0.0) -> torch.Tensor:
    """The ADC's codes of the dot products ``dot`` ([B, N] or [B, N, H, W]):
    ``clip(round(h * (G * dot / FS + 1) + beta + sigma * n), 0, 2^adc_bits - 1)``
    (module docstring), ``n`` from ``torch.randn`` when ``noise_sigma`` > 0."""
    h = 2.0 ** (spec.adc_bits - 1)
    shape = (1, -1) + (1,) * (dot.ndim - 2)
    u = h * (gain.reshape(shape) * dot / fs + 1.0) + offset.reshape(shape)
    if noise_sigma > 0:
        u = u + noise_sigma * torch.randn_like(u)
    return torch.clamp(round_ste(u), 0, 2 ** spec.adc_bits - 1)


class AnalogQuantLayer(nn.Module):
    """A Brevitas conv/linear layer whose output goes through the analog macro's ADC."""

    def __init__(self, inner: nn.Module, spec: AcimSpec, x_bits: int, w_bits: int,
                 layer_key: int):
        super().__init__()
        self.inner = inner
        self.spec = spec
        self.x_bits = x_bits
        self.w_bits = w_bits
        self.layer_key = layer_key
        w = inner.weight
        area = int(np.prod(w.shape[2:])) if w.ndim == 4 else 1
        check_channel_split(spec, channel_split(spec, int(w.shape[1]), area,
                                                f"{type(inner).__name__} {layer_key}"))
        n = inner.out_channels if hasattr(inner, "out_channels") else inner.out_features
        self.log2_gain = nn.Parameter(torch.zeros(n))
        self.offset_h = nn.Parameter(torch.zeros(n))      # beta / h
        self.noise_sigma = 0.0                            # LSB; torch noise when > 0

    @property
    def is_conv(self) -> bool:
        return isinstance(self.inner, nn.Conv2d)

    @property
    def k(self) -> int:
        w = self.inner.weight
        return int(np.prod(w.shape[1:]))

    def fs(self) -> float:
        return float(self.spec.norm_rows(self.k) * ((1 << self.x_bits) - 1)
                     * 2 ** (self.w_bits - 1))

    def int_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(integer-valued weight with STE gradient, per-channel scale)."""
        qw = self.inner.quant_weight()
        scale = qw.scale
        return qw.value / scale, scale.detach().reshape(-1)

    def dot(self, x_int: torch.Tensor) -> torch.Tensor:
        w, _ = self.int_weight()
        if self.is_conv:
            return F.conv2d(x_int, w, None, self.inner.stride, self.inner.padding)
        return F.linear(x_int, w)

    def gain(self) -> torch.Tensor:
        return fixed_gain(self.log2_gain, self.spec)

    def offset(self) -> torch.Tensor:
        return fixed_offset(self.offset_h, self.spec)

    def forward(self, x_int: torch.Tensor) -> torch.Tensor:
        return adc_codes(self.dot(x_int), self.gain(), self.offset(), self.spec, self.fs(),
                         self.noise_sigma)

    def export_params(self) -> tuple[np.ndarray, AcimLayerParams]:
        """(int8 weight in torch layout, integer ABN parameters)."""
        s = self.spec
        with torch.no_grad():
            w, _ = self.int_weight()
            g = torch.round(self.gain() * 2 ** s.gain_frac_bits).to(torch.int64).numpy()
            o = torch.round(self.offset() * 2 ** s.offset_frac_bits).to(torch.int64).numpy()
        return (torch.round(w).to(torch.int64).numpy().astype(np.int8),
                AcimLayerParams(gain=g, offset=o, layer=self.layer_key))


class AnalogDigitsNet(nn.Module):
    """The digits CNN (conv-pool-conv-pool-fc, as :class:`FloatDigitsNet`) with every
    macro layer on the analog macro; activations are ADC codes."""

    def __init__(self, spec: AcimSpec, w_bits: int = 8, c1: int = 16, c2: int = 32,
                 num_classes: int = 10):
        from brevitas.nn import QuantConv2d, QuantLinear
        from brevitas.quant import Int8WeightPerChannelFloat
        super().__init__()
        self.spec = spec
        self.w_bits = w_bits
        a = spec.adc_bits
        wq = dict(weight_quant=Int8WeightPerChannelFloat, weight_bit_width=w_bits, bias=False)
        self.conv1 = AnalogQuantLayer(QuantConv2d(1, c1, 3, padding=1, **wq), spec, IN_BITS,
                                      w_bits, 0)
        self.conv2 = AnalogQuantLayer(QuantConv2d(c1, c2, 3, padding=1, **wq), spec, a,
                                      w_bits, 1)
        self.fc = AnalogQuantLayer(QuantLinear(c2 * 4, num_classes, **wq), spec, a, w_bits, 2)
        self.pool = nn.MaxPool2d(2, 2)
        self.log_temp = nn.Parameter(torch.tensor(math.log(8.0)))   # loss only

    @property
    def macro_layers(self) -> list[AnalogQuantLayer]:
        return [self.conv1, self.conv2, self.fc]

    def set_noise(self, sigma: float) -> None:
        for layer in self.macro_layers:
            layer.noise_sigma = float(sigma)

    @staticmethod
    def quantize_input(x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(round_ste(x / IN_SCALE), 0, 2 ** IN_BITS - 1)

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """Output ADC codes of the last layer (the integer logits)."""
        x = self.quantize_input(x)
        x = self.pool(self.conv1(x))
        x = self.pool(self.conv2(x))
        return self.fc(torch.flatten(x, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = 2.0 ** (self.spec.adc_bits - 1)
        return (self.codes(x) - h) / h * torch.exp(self.log_temp)


# ---------------------------------------------------------------------- BN -> ADC init

@torch.no_grad()
def init_from_float(net: AnalogDigitsNet, fnet: FloatDigitsNet, x_train: np.ndarray,
                    percentile: float = 99.9) -> None:
    """Copy the float weights and fold each BN (and an output scale from the float
    activations' percentile) into the ADC gains and offsets (module docstring)."""
    fnet.eval()
    net.conv1.inner.weight.copy_(fnet.conv1.weight)
    net.conv2.inner.weight.copy_(fnet.conv2.weight)
    net.fc.inner.weight.copy_(fnet.fc.weight)
    x = torch.from_numpy(x_train)
    h = 2.0 ** (net.spec.adc_bits - 1)
    top = 2 ** net.spec.adc_bits - 1
    s_x = IN_SCALE
    a_in = x
    for layer, conv, bn in ((net.conv1, fnet.conv1, fnet.bn1), (net.conv2, fnet.conv2, fnet.bn2)):
        std = torch.sqrt(bn.running_var + bn.eps)
        a = bn.weight / std
        b = bn.bias - bn.running_mean * a
        y = torch.relu(bn(conv(a_in)))
        s_o = float(np.percentile(y.numpy(), percentile)) / top or 1.0
        _, s_w = layer.int_weight()
        g = a * s_x * s_w * layer.fs() / (s_o * h)
        layer.log2_gain.copy_(torch.log2(torch.clamp(g, min=1e-3)))
        layer.offset_h.copy_((b / s_o - h) / h)
        a_in = fnet.pool(y)
        s_x = s_o
    z = fnet.fc(torch.flatten(a_in, 1))
    s_o = float(np.percentile(np.abs(z.numpy()), percentile)) / (h - 1 if h > 1 else 1) or 1.0
    _, s_w = net.fc.int_weight()
    g = s_x * s_w * net.fc.fs() / (s_o * h)
    net.fc.log2_gain.copy_(torch.log2(torch.clamp(g, min=1e-3)))
    net.fc.offset_h.copy_(fnet.fc.bias / s_o / h)


# ------------------------------------------------------------------------- training

@dataclass
class AnalogTrainResult:
    spec: AcimSpec
    model: AnalogDigitsNet
    data: DigitsSplit
    train_sigma: float
    torch_acc: float
    seconds: float
    history: list = field(default_factory=list)

    def export(self, spec: AcimSpec | None = None) -> Bundle:
        return export_analog(self.model, spec)


def fit(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, lr: float, seed: int,
        batch: int = 32, on_epoch: Callable[[int, float], None] | None = None) -> list:
    """Adam + one-cycle schedule, seeded; returns the loss per epoch."""
    gen = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = max(1, epochs * (-(-len(x) // batch)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.2)
    losses = []
    model.train()
    for ep in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(x))
        if on_epoch is not None:
            on_epoch(ep + 1, losses[-1])
    model.eval()
    return losses


def train_float(seed: int = 0, epochs: int = 20, data: DigitsSplit | None = None,
                threads: int = 2) -> FloatDigitsNet:
    """The float digits CNN with batch-norm (the source of the ABN parameters)."""
    data = data or load_digits_split()
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        net = FloatDigitsNet()
        fit(net, data.x_train, data.y_train, epochs, 1e-2, seed)
    finally:
        torch.set_num_threads(old)
    return net


@torch.no_grad()
def torch_accuracy(model: AnalogDigitsNet, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    return float((model.codes(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def train_analog_digits(spec: AcimSpec | None = None, train_sigma: float = 0.0, *,
                        w_bits: int = 8, epochs: int = 10, lr: float = 2e-3, seed: int = 0,
                        float_model: FloatDigitsNet | None = None, float_epochs: int = 20,
                        threads: int = 2,
                        on_epoch: Callable[[int, float], None] | None = None
                        ) -> AnalogTrainResult:
    """BN-folded analog digits model, fine-tuned with the ADC in the loop; noise-aware
    when ``train_sigma`` (LSB) > 0. ``float_model`` reuses a trained float network."""
    spec = spec or AcimSpec()
    t0 = time.perf_counter()
    data = load_digits_split()
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if float_model is None:
            float_model = train_float(seed, float_epochs, data, threads)
        torch.manual_seed(seed)
        net = AnalogDigitsNet(spec, w_bits=w_bits)
        init_from_float(net, float_model, data.x_train)
        net.set_noise(train_sigma)
        history = fit(net, data.x_train, data.y_train, epochs, lr, seed + 1, on_epoch=on_epoch)
        net.set_noise(0.0)
        acc = torch_accuracy(net, data.x_test, data.y_test)
    finally:
        torch.set_num_threads(old)
    return AnalogTrainResult(spec=spec, model=net, data=data, train_sigma=train_sigma,
                             torch_acc=acc, seconds=time.perf_counter() - t0, history=history)


# --------------------------------------------------------------------------- export

def export_analog(model: AnalogDigitsNet, spec: AcimSpec | None = None) -> Bundle:
    """The integer bundle of an analog model: int8 weights, the ABN gain/offset and noise
    key per layer (``layer.analog``), identity requantizers on the codes, ``acim`` spec."""
    spec = spec or model.spec
    a = model.spec.adc_bits
    c1, c2 = model.conv1.inner.out_channels, model.conv2.inner.out_channels
    top = (1 << a) - 1
    macro = {}
    shapes = {"conv1": ((1, 8, 8), (c1, 8, 8)), "conv2": ((c1, 4, 4), (c2, 4, 4)),
              "fc": ((c2 * 4,), (model.fc.inner.out_features,))}
    for name, layer in zip(("conv1", "conv2", "fc"), model.macro_layers):
        w, p = layer.export_params()
        n = w.shape[0]
        lo, hi = (0, top) if name != "fc" else INT32
        rq = Requant(np.ones(n, np.int64), np.zeros(n, np.int64), 0, lo, hi)
        macro[name] = MacroLayer(name, "conv2d" if w.ndim == 4 else "linear", w, layer.w_bits,
                                 layer.x_bits, rq, *shapes[name], stride=1,
                                 padding=1 if w.ndim == 4 else 0, macro="acim", analog=p)
    layers = [macro["conv1"], PoolLayer("pool1", (c1, 8, 8), (c1, 4, 4)),
              macro["conv2"], PoolLayer("pool2", (c2, 4, 4), (c2, 2, 2)),
              FlattenLayer("flatten", (c2, 2, 2), (c2 * 4,)), macro["fc"]]
    bundle = Bundle(name=f"digits-acim-a{a}", input=InputSpec((1, 8, 8), IN_BITS, IN_SCALE),
                    layers=layers, acim=spec)
    bundle.validate()
    return bundle
