"""The digits CNN: a float version (with BN) and a Brevitas QAT version.

Float: ``conv3x3(1->c1, pad 1)-BN-ReLU-maxpool2 -> conv3x3(c1->c2, pad 1)-BN-ReLU-maxpool2
-> flatten(c2*2*2) -> linear(10)``.

QAT (:class:`QuantDigitsNet`) is built from the BN-folded float weights (MARS: BN is
folded before quantization), so it has no BN:

- input quantizer :class:`InputQuant`: unsigned ``in_bits``, fixed power-of-two scale
  (``2^-min(in_bits, 4)``; the digit pixels are multiples of 1/16, so with >= 5 bits
  the quantization is lossless and in every case exact in any float precision);
- ``QuantConv2d`` / ``QuantLinear`` with per-output-channel weight scales, ``w_bits``
  1..8 per layer (``w_bits = 1``: binary {-1, +1} with a per-channel mean-|w| scale;
  ``w_bits >= 2``: narrow-range signed integers with a per-channel max-|w| scale);
- ``QuantReLU`` unsigned ``a_bits`` 1..8 per hidden layer, learned scale initialised
  from runtime statistics;
- float bias (folded into the integer requantizer bias ``B_n`` at export).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError

NUM_LAYERS = 3  # conv1, conv2, fc


def per_layer(value: int | Sequence[int], n: int, what: str) -> list[int]:
    """Expand one bit width to ``n`` layers or check a list of ``n``; 1..8 each."""
    values = [int(value)] * n if isinstance(value, int) else [int(v) for v in value]
    if len(values) != n:
        raise ConfigError(f"{what} needs 1 or {n} values, got {len(values)}: {list(value)}")
    for v in values:
        if not 1 <= v <= 8:
            raise ConfigError(f"{what} = {v} is out of range: allowed 1..8")
    return values


@dataclass(frozen=True)
class QuantConfig:
    """Bit widths: ``w_bits`` per macro layer (3), ``a_bits`` per hidden activation (2),
    ``in_bits`` for the input image (the first layer's ``x_bits``)."""

    w_bits: tuple = (8, 8, 8)
    a_bits: tuple = (8, 8)
    in_bits: int = 8

    @classmethod
    def make(cls, w_bits: int | Sequence[int] = 8, a_bits: int | Sequence[int] = 8,
             in_bits: int | None = None) -> "QuantConfig":
        w = per_layer(w_bits, NUM_LAYERS, "w_bits")
        a = per_layer(a_bits, NUM_LAYERS - 1, "a_bits")
        i = per_layer(8 if in_bits is None else in_bits, 1, "in_bits")[0]
        return cls(tuple(w), tuple(a), i)

    @property
    def x_bits(self) -> tuple:
        """Input bits of each macro layer."""
        return (self.in_bits, *self.a_bits)

    def to_dict(self) -> dict:
        return {"w_bits": list(self.w_bits), "a_bits": list(self.a_bits),
                "in_bits": self.in_bits, "x_bits": list(self.x_bits)}


def input_scale(bits: int) -> float:
    """Power-of-two input scale: lossless for the 1/16 pixel grid from 5 bits up."""
    return 2.0 ** -min(bits, 4)


# ------------------------------------------------------------------------ float model

class FloatDigitsNet(nn.Module):
    def __init__(self, c1: int = 16, c2: int = 32, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c2)
        self.fc = nn.Linear(c2 * 2 * 2, num_classes)
        self.pool = nn.MaxPool2d(2, 2)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        x = self.pool(torch.relu(self.bn2(self.conv2(x))))
        return self.fc(torch.flatten(x, 1))


class FoldedDigitsNet(nn.Module):
    """The float net with BN folded into conv weights/biases (eval-equivalent)."""

    def __init__(self, net: FloatDigitsNet):
        from .fold import fold_conv_bn
        super().__init__()
        self.conv1 = fold_conv_bn(net.conv1, net.bn1)
        self.conv2 = fold_conv_bn(net.conv2, net.bn2)
        self.fc = nn.Linear(net.fc.in_features, net.fc.out_features)
        self.fc.load_state_dict(net.fc.state_dict())
        self.pool = nn.MaxPool2d(2, 2)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        return self.fc(torch.flatten(x, 1))


# -------------------------------------------------------------------------- quantizers

class _SignSte(torch.autograd.Function):
    """sign with a straight-through (clipped to |x| <= 1 in scale units) gradient.

    ``torch.sign(0) = 0`` keeps exactly-zero (pruned) weights at 0, so a pruned block of
    a binary layer is all zeros while every kept weight is -1 or +1."""

    @staticmethod
    def forward(ctx, x):
        return torch.sign(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


class _BinaryQuant(nn.Module):
    """Brevitas tensor quantizer: ``sign(x) * scale`` per channel, bit width 1."""

    def __init__(self, scaling_impl: nn.Module):
        super().__init__()
        self.scaling_impl = scaling_impl
        self.register_buffer("_zero", torch.tensor(0.0), persistent=False)
        self.register_buffer("_bits", torch.tensor(1.0), persistent=False)

    def forward(self, x):
        scale = self.scaling_impl(x)
        return _SignSte.apply(x) * scale, scale, self._zero, self._bits


def _quantizers():
    """Brevitas injectors (imported lazily so importing this module stays cheap)."""
    from brevitas.inject.enum import ScalingImplType, StatsOp
    from brevitas.quant import Int8WeightPerChannelFloat, SignedBinaryWeightPerTensorConst
    from brevitas.quant.scaled_int import Uint8ActPerTensorFloat

    class IntWeightPerChannel(Int8WeightPerChannelFloat):
        pass

    class BinaryWeightPerChannel(SignedBinaryWeightPerTensorConst):
        tensor_quant = _BinaryQuant
        scaling_impl_type = ScalingImplType.STATS
        scaling_stats_op = StatsOp.AVE
        scaling_per_output_channel = True
        scaling_min_val = 1e-10

    class ActPerTensor(Uint8ActPerTensorFloat):
        collect_stats_steps = 30

    return IntWeightPerChannel, BinaryWeightPerChannel, ActPerTensor


class _RoundSte(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)  # round half to even, as InputSpec

    @staticmethod
    def backward(ctx, grad):
        return grad


class InputQuant(nn.Module):
    """``clip(round_half_even(x / scale), 0, 2^bits - 1) * scale`` with a fixed scale."""

    def __init__(self, bits: int):
        super().__init__()
        self.bits = bits
        self.scale = input_scale(bits)

    def quantize_int(self, x):
        return torch.clamp(_RoundSte.apply(x / self.scale), 0, 2 ** self.bits - 1)

    def forward(self, x):
        return self.quantize_int(x) * self.scale


class QuantDigitsNet(nn.Module):
    """Brevitas QAT digits net; see the module docstring."""

    def __init__(self, cfg: QuantConfig, c1: int = 16, c2: int = 32, num_classes: int = 10):
        from brevitas.nn import QuantConv2d, QuantLinear, QuantReLU
        super().__init__()
        self.cfg = cfg
        intq, binq, actq = _quantizers()

        def wq(bits):
            return dict(weight_quant=binq) if bits == 1 else dict(weight_quant=intq,
                                                                  weight_bit_width=bits)

        self.inp = InputQuant(cfg.in_bits)
        self.conv1 = QuantConv2d(1, c1, 3, padding=1, bias=True, **wq(cfg.w_bits[0]))
        self.act1 = QuantReLU(act_quant=actq, bit_width=cfg.a_bits[0])
        self.conv2 = QuantConv2d(c1, c2, 3, padding=1, bias=True, **wq(cfg.w_bits[1]))
        self.act2 = QuantReLU(act_quant=actq, bit_width=cfg.a_bits[1])
        self.fc = QuantLinear(c2 * 2 * 2, num_classes, bias=True, **wq(cfg.w_bits[2]))
        self.pool = nn.MaxPool2d(2, 2)

    @property
    def macro_layers(self) -> list:
        return [self.conv1, self.conv2, self.fc]

    @property
    def acts(self) -> list:
        return [self.act1, self.act2]

    def forward(self, x):
        x = self.inp(x)
        x = self.pool(self.act1(self.conv1(x)))
        x = self.pool(self.act2(self.conv2(x)))
        return self.fc(torch.flatten(x, 1))

    @classmethod
    def from_float(cls, net: FloatDigitsNet, cfg: QuantConfig) -> "QuantDigitsNet":
        """QAT model initialised with the BN-folded float weights."""
        folded = FoldedDigitsNet(net)
        q = cls(cfg, net.conv1.out_channels, net.conv2.out_channels, net.fc.out_features)
        with torch.no_grad():
            for dst, src in ((q.conv1, folded.conv1), (q.conv2, folded.conv2), (q.fc, folded.fc)):
                dst.weight.copy_(src.weight)
                dst.bias.copy_(src.bias)
        return q


def predict(model: nn.Module, x: np.ndarray | torch.Tensor, batch: int = 512) -> np.ndarray:
    """Argmax predictions of ``model`` in eval mode (restores the training flag)."""
    was = model.training
    model.eval()
    xt = torch.as_tensor(x)
    out = [model(xt[i:i + batch]).argmax(1) for i in range(0, len(xt), batch)]
    model.train(was)
    return torch.cat(out).numpy()
