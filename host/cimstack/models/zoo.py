"""The model zoo: the seed papers' networks as Brevitas modules, exported to QONNX.

:data:`MODELS` maps each name to a :class:`ZooModel` (network, input shape, one-line
description, paper). Every network takes ``(bits, width)``: weights and
activations of ``bits`` bits (first conv and classifier: 8-bit weights; FINN's CNV: its
own cfg with ``bits`` everywhere), channel counts times ``width``.

Weights are random, not trained (no CIFAR-10 can be downloaded here): every conv and
linear weight is drawn from N(0, (g * sqrt(2 / fan_in))^2) with one gain g ~ U(0.7, 1.3)
per layer (Kaiming-normal, per-layer spread; FINN's CNV: uniform in [-1, 1], its weight
quantizers clip at +-1). :func:`calibrate` then sets, in one forward pass on random
images in [0, 1], every batch norm's statistics around its input's and every learned
activation scale from its input's 99.9th percentile, so each activation uses several
of its codes. :func:`train_digits` trains a small-width build on the sklearn digits
upsampled to 3x32x32 (:func:`digits_as`), for accuracy measured on something real.
Everything is deterministic for a given seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError

# FINN's networks: name -> (cfg file of brevitas_examples.bnn_pynq, weight bits, act bits).
# LFC has no W2A2 cfg upstream: it is LFC's cfg with the bit widths of TFC/SFC-W2A2
# (2-bit weights, activations and input).
FINN_NETS = {
    "tfc_w1a1": ("tfc_1w1a", 1, 1), "tfc_w2a2": ("tfc_2w2a", 2, 2),
    "sfc_w1a1": ("sfc_1w1a", 1, 1), "sfc_w2a2": ("sfc_2w2a", 2, 2),
    "lfc_w1a1": ("lfc_1w1a", 1, 1), "lfc_w2a2": ("lfc_1w1a", 2, 2),
    "cnv_w1a1": ("cnv_1w1a", 1, 1), "cnv_w2a2": ("cnv_2w2a", 2, 2),
}
CALIBRATION_BATCH = 16   # random images the norms' and activations' statistics come from
ACT_PERCENTILE = 99.9    # an activation's threshold: this percentile of its input
CIFAR_SHAPE = (1, 3, 32, 32)

# VGG feature configurations: channels of a 3x3 conv (+ BN + QuantReLU), "M" a 2x2 max pool
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
             512, 512, 512, "M")
# IMAGINE-style: every conv's K = C_in * 9 <= 1152 rows of the analog macro (C_in <= 128)
IMAGINE_CFG = (64, 64, "M", 128, 128, "M", 128, 128, "M")


def export(module: nn.Module, example_input: torch.Tensor, path) -> Path:
    """Write ``module`` as a QONNX file at ``path`` (``brevitas.export.export_qonnx``,
    the TorchScript exporter, eval mode)."""
    from brevitas.export import export_qonnx
    module.eval()
    export_qonnx(module, example_input, export_path=str(path), dynamo=False)
    return Path(path)


def input_quant(signed: bool, bits: int = 8) -> nn.Module:
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


# ---------------------------------------------------------------- random statistics

@torch.no_grad()
def calibrate(model: nn.Module, input_shape, gen: torch.Generator) -> None:
    """Set the statistics of ``model`` (in eval mode) in one forward pass on random
    inputs in [0, 1]. Just before a BatchNorm or TensorNorm runs, its input's mean and
    variance are measured (per channel; TensorNorm: one scalar), then its running mean
    becomes that mean plus 0.25 input standard deviations times N(0, 1), its running
    variance that variance times U(0.5, 2), its weight U(0.5, 1.5) and its bias
    U(-0.5, 0.5). Just before an activation with a learned scale (Brevitas'
    ``ParameterFromRuntimeStatsScaling``) first runs, its threshold becomes the
    :data:`ACT_PERCENTILE` percentile of its (rectified, for a QuantReLU) input.
    Activations with a constant scale (FINN's, the inputs') keep it."""
    from brevitas.core.scaling import ParameterFromRuntimeStatsScaling
    from brevitas.nn import QuantReLU
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

    def set_threshold(act, inputs):
        scaling = scalings[act]
        if scaling.counter > scaling.collect_stats_steps:      # set on an earlier call
            return
        value = getattr(inputs[0], "value", inputs[0]).detach().abs().flatten()
        if isinstance(act, QuantReLU):
            value = value[value > 0] if bool((value > 0).any()) else value
        threshold = torch.quantile(value[:1 << 24].float(), ACT_PERCENTILE / 100)
        scaling.buffer.fill_(max(float(threshold), 1e-3))
        scaling.init_scale()

    hooks = [m.register_forward_pre_hook(randomize) for m in model.modules()
             if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, TensorNorm))]
    scalings = {}                          # activation -> its learned scale
    for module in model.modules():
        found = [s for s in module.modules() if isinstance(s, ParameterFromRuntimeStatsScaling)]
        if hasattr(module, "act_quant") and len(found) == 1:
            scalings[module] = found[0]
            hooks.append(module.register_forward_pre_hook(set_threshold))
    try:
        model(torch.rand((CALIBRATION_BATCH, *input_shape[1:]), generator=gen))
    finally:
        for hook in hooks:
            hook.remove()


@torch.no_grad()
def kaiming_weights(model: nn.Module, gen: torch.Generator) -> None:
    """Every conv and linear weight from N(0, (g sqrt(2 / fan_in))^2) with one gain
    g ~ U(0.7, 1.3) per layer; biases U(-0.1, 0.1)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            gain = 0.7 + 0.6 * float(torch.rand((), generator=gen))
            std = gain * (2.0 / m.weight[0].numel()) ** 0.5
            m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * std)
            if m.bias is not None:
                m.bias.copy_((torch.rand(m.bias.shape, generator=gen) * 2 - 1) * 0.1)


# ---------------------------------------------------------------- networks

def scaled(channels: int, width: float) -> int:
    """``channels`` times ``width``, at least 4."""
    return max(4, round(channels * width))


class VGG(nn.Module):
    """A CIFAR VGG (input 3x32x32, 8-bit unsigned, 1.0 = code 64): per entry of ``cfg``
    a 3x3 padded conv + BN + ``bits``-bit QuantReLU, or ("M") a 2x2 max pool; when the
    features end above 1x1, a global TruncAvgPool2d (the sum of the codes floored to 8
    bits); a QuantLinear classifier with an Int32 bias. Conv weights ``bits`` bits
    per tensor, the first conv and the classifier 8 bits."""

    def __init__(self, cfg, bits: int = 4, width: float = 1.0, num_classes: int = 10):
        super().__init__()
        from brevitas.nn import QuantConv2d, QuantLinear, QuantReLU, TruncAvgPool2d
        from brevitas.quant import Int32Bias, TruncTo8bit
        self.inp = input_quant(signed=False)
        layers, channels, size = [], 3, 32
        for entry in cfg:
            if entry == "M":
                layers.append(nn.MaxPool2d(2))
                size //= 2
                continue
            out = scaled(entry, width)
            layers += [QuantConv2d(channels, out, 3, padding=1, bias=False,
                                   weight_bit_width=8 if channels == 3 else bits),
                       nn.BatchNorm2d(out), QuantReLU(bit_width=bits, return_quant_tensor=True)]
            channels = out
        if size > 1:
            layers.append(TruncAvgPool2d(kernel_size=size, trunc_quant=TruncTo8bit,
                                         float_to_int_impl_type="FLOOR"))
        self.features = nn.Sequential(*layers)
        self.fc = QuantLinear(channels, num_classes, bias=True, weight_bit_width=8,
                              bias_quant=Int32Bias)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(self.inp(x)), 1))


class ResNet(nn.Module):
    """A CIFAR ResNet (input 3x32x32, 8-bit signed input scale 2^-6): 3x3 conv stem
    (8-bit weights) + BN + QuantReLU; stages of Brevitas' ``QuantBasicBlock`` (the
    residual block of ``brevitas_examples.bnn_pynq``: both addends of each residual add
    come from one shared quantizer, the identity shortcut's or the 1x1 stride-2 conv +
    BN + QuantReLU shortcut's), ``blocks[i]`` blocks of ``planes[i]`` channels, the
    first stage stride 1, the others stride 2; a global TruncAvgPool2d (sum floored to
    8 bits); QuantLinear with an Int32 bias (8-bit weights). Block weights per-channel
    ``w_bits``, activations ``a_bits`` (unsigned)."""

    def __init__(self, planes=(64, 128, 256, 512), blocks=(2, 2, 2, 2), w_bits: int = 4,
                 a_bits: int = 4, num_classes: int = 10):
        super().__init__()
        from brevitas.nn import QuantConv2d, QuantLinear, QuantReLU, TruncAvgPool2d
        from brevitas.quant import Int32Bias, TruncTo8bit
        from brevitas_examples.bnn_pynq.models.resnet import QuantBasicBlock
        self.inp = input_quant(signed=True)
        self.stem = QuantConv2d(3, planes[0], 3, padding=1, bias=False, weight_bit_width=8)
        self.bn = nn.BatchNorm2d(planes[0])
        self.relu = QuantReLU(bit_width=a_bits, return_quant_tensor=True)
        stack, shared, planes_in = [], self.relu, planes[0]
        for stage, (width, count) in enumerate(zip(planes, blocks)):
            for i in range(count):
                block = QuantBasicBlock(planes_in, width, stride=2 if stage and not i else 1,
                                        shared_quant_act=shared, act_bit_width=a_bits,
                                        weight_bit_width=w_bits)
                stack.append(block)
                shared, planes_in = block.relu_out, width
        self.blocks = nn.Sequential(*stack)
        size = 32 >> (len(planes) - 1)
        self.pool = TruncAvgPool2d(kernel_size=size, trunc_quant=TruncTo8bit,
                                   float_to_int_impl_type="FLOOR")
        self.fc = QuantLinear(planes_in, num_classes, bias=True, weight_bit_width=8,
                              bias_quant=Int32Bias)

    def forward(self, x):
        x = self.relu(self.bn(self.stem(self.inp(x))))
        x = self.pool(self.blocks(x))
        return self.fc(torch.flatten(x, 1))


def finn_architecture(cfg_name: str, w_bits: int, a_bits: int) -> nn.Module:
    """FINN's BNN-PYNQ network of ``brevitas_examples.bnn_pynq`` cfg ``cfg_name`` at
    ``w_bits``/``a_bits`` (FC nets: input bits = ``a_bits``), Brevitas' own init."""
    from brevitas_examples.bnn_pynq.models import get_model_cfg, model_impl
    cfg = get_model_cfg(cfg_name)
    cfg.set("QUANT", "WEIGHT_BIT_WIDTH", str(w_bits))
    cfg.set("QUANT", "ACT_BIT_WIDTH", str(a_bits))
    if cfg.get("MODEL", "ARCH") == "FC":
        cfg.set("QUANT", "IN_BIT_WIDTH", str(a_bits))
    return model_impl[cfg.get("MODEL", "ARCH")](cfg)


@torch.no_grad()
def uniform_weights(model: nn.Module, gen: torch.Generator) -> None:
    """Every conv and linear weight uniform in [-1, 1] (FINN's weight quantizers clip
    at +-1)."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.weight.copy_(torch.rand(module.weight.shape, generator=gen) * 2 - 1)


def finn_model(name: str, seed: int = 0) -> nn.Module:
    """FINN's network ``name`` (a key of :data:`FINN_NETS`) in eval mode, with
    :func:`uniform_weights` and :func:`calibrate`'d norm statistics."""
    gen = torch.Generator().manual_seed(seed)
    model = finn_architecture(*FINN_NETS[name])
    uniform_weights(model, gen)
    calibrate(model.eval(), finn_input_shape(name), gen)
    return model


def finn_input_shape(name: str) -> tuple[int, ...]:
    """The input shape (batch 1) of FINN's network ``name``: images in [0, 1]."""
    return CIFAR_SHAPE if name.startswith("cnv") else (1, 1, 28, 28)


# ---------------------------------------------------------------- the registry

@dataclass(frozen=True)
class ZooModel:
    """One zoo network: ``network(bits, width)`` -> its module with Brevitas' own init;
    ``finn_weights``: uniform weights in [-1, 1] instead of Kaiming-normal ones;
    ``digits_width``: the width of its digits-trained build (None: none)."""
    name: str
    network: Callable[[int, float], nn.Module]
    description: str
    paper: str
    input_shape: tuple[int, ...] = CIFAR_SHAPE
    finn_weights: bool = False
    digits_width: float | None = None


def _resnet18(bits, width):
    planes = tuple(scaled(p, width) for p in (64, 128, 256, 512))
    return ResNet(planes, (2, 2, 2, 2), bits, bits)


def _cnv(bits, width):
    if width != 1.0:
        raise ConfigError("cnv: FINN's CNV has fixed channel counts; it has no digits build")
    return finn_architecture("cnv_1w1a", bits, bits)


MODELS = {m.name: m for m in (
    ZooModel("vgg16", lambda bits, width: VGG(VGG16_CFG, bits, width),
             "CIFAR VGG16: 13 3x3 convs + BN, 5 max pools, linear classifier", "MARS",
             digits_width=1 / 16),
    ZooModel("resnet18", _resnet18, "CIFAR ResNet18: 8 QuantBasicBlocks, 1x1 stride-2 "
             "shortcuts, global average pool", "MARS", digits_width=1 / 16),
    ZooModel("imagine_cnn", lambda bits, width: VGG(IMAGINE_CFG, bits, width),
             "VGG-style CIFAR CNN, every conv K = C*9 <= 1152 rows of the analog macro",
             "IMAGINE", digits_width=1 / 8),
    ZooModel("cnv", _cnv, "FINN's CNV (BNN-PYNQ): 6 convs, 3 FCs, TensorNorm", "FINN",
             finn_weights=True),
)}


def zoo_model(name: str) -> ZooModel:
    """The zoo entry ``name``; an unknown name is one error line listing the names."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; the zoo has: {', '.join(MODELS)} "
                          "(`cimstack models list`)")
    return MODELS[name]


def build(name: str, seed: int = 0, bits: int = 4, width: float = 1.0) -> nn.Module:
    """The zoo network ``name`` in eval mode with random weights (seed ``seed``):
    Kaiming-normal (:func:`kaiming_weights`) or FINN's uniform ones, then
    :func:`calibrate`'d statistics."""
    if not 1 <= bits <= 8:
        raise ConfigError(f"--bits {bits}: give 1..8 (weight and activation bits)")
    entry = zoo_model(name)
    model = entry.network(bits, width)
    gen = torch.Generator().manual_seed(seed)
    (uniform_weights if entry.finn_weights else kaiming_weights)(model, gen)
    calibrate(model.eval(), entry.input_shape, gen)
    return model


@dataclass(frozen=True)
class Summary:
    """Macro layers (convs and linears), multiply-accumulates and weights per image."""
    layers: int
    macs: int
    weights: int


@torch.no_grad()
def summarize(module: nn.Module, input_shape) -> Summary:
    """Count ``module``'s convs and linears, their MACs per image and their weights, in
    one forward pass on zeros of ``input_shape``."""
    macs = []

    def count(layer, _inputs, out):
        out = getattr(out, "value", out)
        macs.append(out[0].numel() * layer.weight[0].numel())

    layers = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    hooks = [m.register_forward_hook(count) for m in layers]
    try:
        module(torch.zeros(input_shape))
    finally:
        for hook in hooks:
            hook.remove()
    return Summary(len(layers), sum(macs), sum(m.weight.numel() for m in layers))


# ---------------------------------------------------------------- digits training

def digits_as(images: np.ndarray, input_shape) -> np.ndarray:
    """Digits images [N, 1, 8, 8] in the input shape ``[1, C, H, W]``: upsampled by
    nearest neighbour (H // 8 times, so the 1/16 steps stay exact) and repeated over
    the C channels; unchanged when ``input_shape`` is already 1x8x8 or flat."""
    images = np.asarray(images, np.float32)
    if len(input_shape) != 4 or tuple(input_shape[1:]) == images.shape[1:]:
        return images
    _, channels, height, width = input_shape
    up = images.repeat(height // 8, axis=2).repeat(width // 8, axis=3)
    return np.ascontiguousarray(np.repeat(up, channels, axis=1))


def train_digits(module: nn.Module, epochs: int = 15, seed: int = 0, lr: float = 3e-2,
                 input_shape=None) -> float:
    """Train ``module`` on the sklearn digits training split (cimstack's fixed split;
    images :func:`digits_as` ``input_shape``, default 1x8x8) with Adam, cosine learning
    rate, batch 64, seeded shuffling, on one torch thread (restored after; two threads
    are slower for these tiny tensors); returns the test accuracy. Leaves the module in
    eval mode."""
    from ..quant.data import load_digits_split
    data = load_digits_split()
    shape = input_shape or (1, *data.x_train.shape[1:])
    x_tr = torch.from_numpy(digits_as(data.x_train, shape))
    x_te = torch.from_numpy(digits_as(data.x_test, shape))
    y_tr, y_te = torch.from_numpy(data.y_train), torch.from_numpy(data.y_test)
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
                loss = nn.functional.cross_entropy(logits(module(x_tr[idx])), y_tr[idx])
                loss.backward()
                opt.step()
            sched.step()
        module.eval()
        with torch.no_grad():
            pred = logits(module(x_te)).argmax(1)
    finally:
        torch.set_num_threads(threads)
    return float((pred == y_te).float().mean())


def logits(out) -> torch.Tensor:
    """A module's output as a plain tensor (a QuantTensor's ``value``)."""
    return getattr(out, "value", out)


DIGITS_EPOCHS = 6     # epochs of a digits build
DIGITS_LR = 1e-2


def build_digits(name: str, seed: int = 0, bits: int = 4) -> tuple[nn.Module, float]:
    """The digits build of ``name``: width ``digits_width``, random start (seed
    ``seed``), :data:`DIGITS_EPOCHS` epochs of :func:`train_digits` on 3x32x32 digits;
    returns the module (eval mode) and its test accuracy."""
    entry = zoo_model(name)
    if entry.digits_width is None:
        raise ConfigError(f"{name} has no digits build; models with one: "
                          f"{', '.join(m.name for m in MODELS.values() if m.digits_width)}")
    module = build(name, seed, bits, entry.digits_width)
    accuracy = train_digits(module, DIGITS_EPOCHS, seed, DIGITS_LR, entry.input_shape)
    return module, accuracy
