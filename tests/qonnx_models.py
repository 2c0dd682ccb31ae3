"""Brevitas networks for the QONNX import tests, built with random (seeded) weights.

- :func:`finn_model`: FINN's BNN-PYNQ networks (``brevitas_examples.bnn_pynq``: TFC, SFC,
  LFC, CNV) with random weights and randomized batch-norm / TensorNorm statistics (no
  pretrained download); the statistics are drawn around the real statistics of each
  norm's input on random images, so every hidden activation uses several of its codes;
- :func:`user_cnn`: a small digits CNN (8-bit signed input, stride-2 padded conv,
  depthwise conv, quantized residual add, average pool, global average pool, linear);
- :func:`resnet8`: a CIFAR-shaped ResNet-8 of Brevitas' ``QuantBasicBlock`` (the
  residual block of ``brevitas_examples.bnn_pynq``, quantized adds with a shared
  quantizer on both branches);
- :func:`mlp`: a 2-layer MLP on the 64 digits pixels.

:data:`BUILDERS` maps each network name to ``(builder, input shape)``; :func:`export`
writes a QONNX file; :func:`train_digits` trains a digits model for a few epochs.
Everything is deterministic for a given seed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

# FINN's networks: name -> (cfg file of brevitas_examples.bnn_pynq, weight bits, act bits).
# LFC has no W2A2 cfg upstream: it is LFC's cfg with the bit widths of TFC/SFC-W2A2
# (2-bit weights, activations and input).
FINN_NETS = {
    "tfc_w1a1": ("tfc_1w1a", 1, 1), "tfc_w2a2": ("tfc_2w2a", 2, 2),
    "sfc_w1a1": ("sfc_1w1a", 1, 1), "sfc_w2a2": ("sfc_2w2a", 2, 2),
    "lfc_w1a1": ("lfc_1w1a", 1, 1), "lfc_w2a2": ("lfc_1w1a", 2, 2),
    "cnv_w1a1": ("cnv_1w1a", 1, 1), "cnv_w2a2": ("cnv_2w2a", 2, 2),
}
CALIBRATION_BATCH = 16   # random images the norms' input statistics are measured on


def export(module: nn.Module, example_input: torch.Tensor, path) -> Path:
    """Write ``module`` as a QONNX file at ``path`` (``brevitas.export.export_qonnx``,
    the TorchScript exporter, eval mode)."""
    from brevitas.export import export_qonnx
    module.eval()
    export_qonnx(module, example_input, export_path=str(path), dynamo=False)
    return Path(path)


def finn_model(name: str, seed: int = 0) -> nn.Module:
    """FINN's network ``name`` (a key of :data:`FINN_NETS`) in eval mode, with uniform
    random weights in [-1, 1] and randomized norm statistics."""
    from brevitas_examples.bnn_pynq.models import get_model_cfg, model_impl
    cfg_name, w_bits, a_bits = FINN_NETS[name]
    cfg = get_model_cfg(cfg_name)
    cfg.set("QUANT", "WEIGHT_BIT_WIDTH", str(w_bits))
    cfg.set("QUANT", "ACT_BIT_WIDTH", str(a_bits))
    if cfg.get("MODEL", "ARCH") == "FC":
        cfg.set("QUANT", "IN_BIT_WIDTH", str(a_bits))
    gen = torch.Generator().manual_seed(seed)
    model = model_impl[cfg.get("MODEL", "ARCH")](cfg)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.weight.copy_(torch.rand(module.weight.shape, generator=gen) * 2 - 1)
    randomize_norms(model.eval(), finn_input_shape(name), gen)
    return model


def finn_input_shape(name: str) -> tuple[int, ...]:
    """The input shape (batch 1) of FINN's network ``name``: images in [0, 1]."""
    return (1, 3, 32, 32) if name.startswith("cnv") else (1, 1, 28, 28)


@torch.no_grad()
def randomize_norms(model: nn.Module, input_shape, gen: torch.Generator) -> None:
    """Set the statistics of every BatchNorm and TensorNorm of ``model`` (in eval mode)
    in one forward pass on random inputs in [0, 1]: just before a norm runs, its input's
    mean and variance are measured (per channel; TensorNorm: one scalar), then its running
    mean becomes that mean plus 0.25 input standard deviations times N(0, 1), its running
    variance that variance times U(0.5, 2), its weight U(0.5, 1.5) and its bias
    U(-0.5, 0.5) (FINN's activation quantizers clip at +-1)."""
    from brevitas_examples.bnn_pynq.models.tensor_norm import TensorNorm

    def randomize(norm, inputs):
        value = torch.as_tensor(inputs[0])
        dims = [d for d in range(value.dim()) if isinstance(norm, TensorNorm) or d != 1]
        mean, var = value.mean(dim=dims), value.var(dim=dims) + 1e-2
        shape = mean.shape
        norm.running_mean.copy_(mean + 0.25 * var.sqrt() * torch.randn(shape, generator=gen))
        norm.running_var.copy_(var * (0.5 + 1.5 * torch.rand(shape, generator=gen)))
        norm.weight.copy_(0.5 + torch.rand(shape, generator=gen))
        norm.bias.copy_(torch.rand(shape, generator=gen) - 0.5)

    hooks = [m.register_forward_pre_hook(randomize) for m in model.modules()
             if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, TensorNorm))]
    try:
        model(torch.rand((CALIBRATION_BATCH, *input_shape[1:]), generator=gen))
    finally:
        for hook in hooks:
            hook.remove()


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


def _input_quant(signed: bool, bits: int = 8) -> nn.Module:
    """A QuantIdentity for inputs in [0, 1] with the constant scale 2^(2-bits) (2^-6 at
    8 bits: 1.0 is code 64, the digits' 1/16 steps are exact), returning a QuantTensor.
    Brevitas divides the constant by 2^(bits-1) when signed, by 2^bits - 1 when
    unsigned, so the constant is that divisor times the scale (exact in float32)."""
    from brevitas.inject.enum import ScalingImplType
    from brevitas.nn import QuantIdentity
    from brevitas.quant import Int8ActPerTensorFloat, Uint8ActPerTensorFloat
    quant = Int8ActPerTensorFloat if signed else Uint8ActPerTensorFloat
    divisor = 1 << (bits - 1) if signed else (1 << bits) - 1
    top = divisor * 2.0 ** (2 - bits)
    return QuantIdentity(act_quant=quant, bit_width=bits, scaling_impl_type=ScalingImplType.CONST,
                         scaling_const=top, min_val=-top if signed else 0.0, max_val=top,
                         return_quant_tensor=True)


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
        self.inp = _input_quant(signed=True)
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


class ResNet8(nn.Module):
    """CIFAR ResNet-8 (input 3x32x32): 8-bit signed input; 3x3 conv stem 3->16 + BN +
    QuantReLU; three stages of one ``QuantBasicBlock`` each (16, 32 and 64 channels,
    strides 1, 2, 2; both addends of each residual add come from one shared quantizer:
    the identity shortcut's (the previous activation's), or the stride-2 blocks' 1x1
    stride-2 conv + BN + QuantReLU shortcut's); 8x8 TruncAvgPool2d (global; the 10-bit
    sum of 64 4-bit codes is floored to 8 bits); QuantLinear 64 -> 10 with an Int32 bias.
    Block weights per-channel ``w_bits``, stem and fc 8-bit; activations ``a_bits``
    (unsigned, QuantReLU)."""

    def __init__(self, w_bits: int = 4, a_bits: int = 4, num_classes: int = 10):
        super().__init__()
        from brevitas.nn import QuantConv2d, QuantLinear, QuantReLU, TruncAvgPool2d
        from brevitas.quant import Int32Bias, TruncTo8bit
        from brevitas_examples.bnn_pynq.models.resnet import QuantBasicBlock
        self.inp = _input_quant(signed=True)
        self.stem = QuantConv2d(3, 16, 3, padding=1, bias=False, weight_bit_width=8)
        self.bn = nn.BatchNorm2d(16)
        self.relu = QuantReLU(bit_width=a_bits, return_quant_tensor=True)
        blocks, shared, planes_in = [], self.relu, 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            block = QuantBasicBlock(planes_in, planes, stride=stride, shared_quant_act=shared,
                                    act_bit_width=a_bits, weight_bit_width=w_bits)
            blocks.append(block)
            shared, planes_in = block.relu_out, planes
        self.blocks = nn.Sequential(*blocks)
        self.pool = TruncAvgPool2d(kernel_size=8, trunc_quant=TruncTo8bit,
                                   float_to_int_impl_type="FLOOR")
        self.fc = QuantLinear(64, num_classes, bias=True, weight_bit_width=8,
                              bias_quant=Int32Bias)

    def forward(self, x):
        x = self.relu(self.bn(self.stem(self.inp(x))))
        x = self.pool(self.blocks(x))
        return self.fc(torch.flatten(x, 1))


def resnet8(seed: int = 0) -> nn.Module:
    """A :class:`ResNet8` with seeded random weights and BN statistics, in eval mode."""
    model = ResNet8()
    _seeded_init(model, seed)
    return model.eval()


class MLP(nn.Module):
    """2-layer MLP on the 64 digits pixels: 8-bit unsigned input, QuantLinear 64 -> 32
    (bias), 4-bit QuantReLU, QuantLinear 32 -> 10 (bias); 4-bit weights."""

    def __init__(self, hidden: int = 32, w_bits: int = 4, a_bits: int = 4):
        super().__init__()
        from brevitas.nn import QuantLinear, QuantReLU
        from brevitas.quant import Int32Bias
        self.inp = _input_quant(signed=False)
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


def train_digits(module: nn.Module, epochs: int = 15, seed: int = 0, lr: float = 3e-2) -> float:
    """Train ``module`` (input [N, 1, 8, 8]) on the sklearn digits training split
    (cimstack's fixed split) with Adam, cosine learning rate, batch 64, seeded shuffling,
    on one torch thread (restored after; two threads are slower for these tiny
    tensors); returns the test accuracy. Leaves the module in eval mode."""
    from cimstack.quant.data import load_digits_split
    data = load_digits_split()
    x_tr, y_tr = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    x_te, y_te = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        module.train()
        for _ in range(epochs):
            order = torch.randperm(len(x_tr), generator=gen)
            for start in range(0, len(order), 64):
                idx = order[start:start + 64]
                opt.zero_grad()
                loss = nn.functional.cross_entropy(_logits(module(x_tr[idx])), y_tr[idx])
                loss.backward()
                opt.step()
            sched.step()
        module.eval()
        with torch.no_grad():
            pred = _logits(module(x_te)).argmax(1)
    finally:
        torch.set_num_threads(threads)
    return float((pred == y_te).float().mean())


def _logits(out) -> torch.Tensor:
    """A module's output as a plain tensor (a QuantTensor's ``value``)."""
    return getattr(out, "value", out)
