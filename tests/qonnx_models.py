"""Brevitas networks for the QONNX import tests, built with random (seeded) weights.

- :func:`finn_model`: FINN's BNN-PYNQ networks (``brevitas_examples.bnn_pynq``: TFC, SFC,
  LFC, CNV) with random weights and randomized batch-norm / TensorNorm statistics (no
  pretrained download; from the model zoo, :mod:`cimstack.models.zoo`);
- :func:`user_cnn`: a small digits CNN (8-bit signed input, stride-2 padded conv,
  depthwise conv, quantized residual add, average pool, global average pool, linear);
- :func:`resnet8`: a CIFAR-shaped ResNet-8 (the zoo's :class:`~cimstack.models.zoo.ResNet`
  with one ``QuantBasicBlock`` per stage);
- :func:`mlp`: a 2-layer MLP on the 64 digits pixels.

:data:`BUILDERS` maps each network name to ``(builder, input shape)``; :func:`export`
writes a QONNX file; :func:`train_digits` trains a digits model for a few epochs (both
from the zoo).
Everything is deterministic for a given seed.
"""

from __future__ import annotations

import torch
from torch import nn

from cimstack.models.zoo import (  # noqa: F401  (re-exported for the tests)
    FINN_NETS,
    ResNet,
    export,
    finn_input_shape,
    finn_model,
    input_quant,
    train_digits,
)


def _randomize_bn(model: nn.Module, gen: torch.Generator) -> None:
    """Random BatchNorm statistics in sane ranges for a model whose pre-norm values are
    of order 1 (mean U(-0.2, 0.2), variance U(0.5, 1.5), weight U(0.5, 1.5), bias
    U(-0.2, 0.2))."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(0.4 * torch.rand(n, generator=gen) - 0.2)
                m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(0.4 * torch.rand(n, generator=gen) - 0.2)


def _seeded_init(model: nn.Module, seed: int) -> None:
    """Re-initialize from a seeded generator: every conv and linear weight
    Kaiming-uniform, bias U(-0.1, 0.1); every learned activation scale (Brevitas
    starts them all at the same value) times U(0.5, 2), so the quantizers' scales
    differ (a shared quantizer keeps one scale); BatchNorm
    statistics as in :func:`_randomize_bn`."""
    from brevitas.core.scaling import ParameterFromRuntimeStatsScaling
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, ParameterFromRuntimeStatsScaling):
                # the scale's threshold before any statistics are collected is ``buffer``;
                # init_scale() makes it the learned value and ends the statistics phase
                m.buffer.mul_(0.5 + 1.5 * torch.rand(m.buffer.shape, generator=gen))
                m.init_scale()
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                bound = (6.0 / fan_in) ** 0.5
                m.weight.copy_((torch.rand(m.weight.shape, generator=gen) * 2 - 1) * bound)
                if m.bias is not None:
                    m.bias.copy_((torch.rand(m.bias.shape, generator=gen) * 2 - 1) * 0.1)
    _randomize_bn(model, gen)


class UserCNN(nn.Module):
    """Digits CNN (C = ``channels``): 8-bit signed input; 3x3 stride-2 padded conv 1->C
    (8x8 -> 4x4) + BN + 4-bit QuantReLU ``act``; 3x3 depthwise conv (groups = C) + BN
    through the *same* ``act`` (so both addends share one scale); residual add; 4-bit
    QuantReLU ``add_act``; 2x2 TruncAvgPool2d (4x4 -> 2x2; Trunc to 8 bits, exact here:
    the sum of four 4-bit codes has 6 bits); global average pool as a float
    AdaptiveAvgPool2d(1) followed by an 8-bit signed QuantIdentity; QuantLinear C -> 10
    with an Int32 bias; 4-bit per-tensor weights."""

    def __init__(self, channels: int = 32, w_bits: int = 4, a_bits: int = 4):
        super().__init__()
        from brevitas.nn import (
            QuantConv2d,
            QuantIdentity,
            QuantLinear,
            QuantReLU,
            TruncAvgPool2d,
        )
        from brevitas.quant import Int32Bias, TruncTo8bit
        self.inp = input_quant(signed=True)
        self.conv = QuantConv2d(1, channels, 3, stride=2, padding=1, bias=False,
                                weight_bit_width=w_bits)
        self.bn = nn.BatchNorm2d(channels)
        self.act = QuantReLU(bit_width=a_bits, return_quant_tensor=True)
        self.dwconv = QuantConv2d(channels, channels, 3, padding=1, groups=channels,
                                  bias=False, weight_bit_width=w_bits)
        self.dwbn = nn.BatchNorm2d(channels)
        self.add_act = QuantReLU(bit_width=a_bits, return_quant_tensor=True)
        self.pool = TruncAvgPool2d(kernel_size=2, trunc_quant=TruncTo8bit,
                                   float_to_int_impl_type="FLOOR")
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.gap_quant = QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.fc = QuantLinear(channels, 10, bias=True, weight_bit_width=w_bits,
                              bias_quant=Int32Bias)

    def forward(self, x):
        x = self.act(self.bn(self.conv(self.inp(x))))
        y = self.act(self.dwbn(self.dwconv(x)))
        x = self.pool(self.add_act(x + y))
        x = self.gap_quant(self.gap(x))
        return self.fc(torch.flatten(x, 1))


def user_cnn(seed: int = 0) -> nn.Module:
    """A :class:`UserCNN` with seeded random weights and BN statistics, in eval mode."""
    model = UserCNN()
    _seeded_init(model, seed)
    return model.eval()


def resnet8(seed: int = 0) -> nn.Module:
    """A CIFAR ResNet-8 with seeded random weights and BN statistics, in eval mode: the
    zoo's :class:`~cimstack.models.zoo.ResNet` with 16, 32 and 64 channels, one block
    each (both addends of a residual add from one shared quantizer), 4-bit block
    weights and activations, 8-bit stem and fc weights."""
    model = ResNet(planes=(16, 32, 64), blocks=(1, 1, 1))
    _seeded_init(model, seed)
    return model.eval()


class MLP(nn.Module):
    """2-layer MLP on the 64 digits pixels: 8-bit unsigned input, QuantLinear 64 -> 32
    (bias), 4-bit QuantReLU, QuantLinear 32 -> 10 (bias); 4-bit weights."""

    def __init__(self, hidden: int = 32, w_bits: int = 4, a_bits: int = 4):
        super().__init__()
        from brevitas.nn import QuantLinear, QuantReLU
        from brevitas.quant import Int32Bias
        self.inp = input_quant(signed=False)
        self.fc1 = QuantLinear(64, hidden, bias=True, weight_bit_width=w_bits, bias_quant=Int32Bias)
        self.act = QuantReLU(bit_width=a_bits, return_quant_tensor=True)
        self.fc2 = QuantLinear(hidden, 10, bias=True, weight_bit_width=w_bits, bias_quant=Int32Bias)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(self.inp(torch.flatten(x, 1)))))


def mlp(seed: int = 0) -> nn.Module:
    """An :class:`MLP` with seeded random weights, in eval mode."""
    model = MLP()
    _seeded_init(model, seed)
    return model.eval()


def _finn(name):
    return lambda seed=0: finn_model(name, seed)


# network name -> (builder(seed=0) -> eval-mode module, input shape with batch 1)
BUILDERS = {
    **{name: (_finn(name), finn_input_shape(name)) for name in FINN_NETS},
    "user_cnn": (user_cnn, (1, 1, 8, 8)),
    "resnet8": (resnet8, (1, 3, 32, 32)),
    "mlp": (mlp, (1, 64)),
}
