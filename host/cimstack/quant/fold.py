"""Batch-norm folding (MARS: BN is folded into the weights before quantization).

For a conv/linear with weight ``w`` and bias ``b`` followed by BN in eval mode
(``gamma``, ``beta``, running mean ``mu`` and variance ``var``):

    w' = w * gamma / sqrt(var + eps)        (per output channel)
    b' = beta + (b - mu) * gamma / sqrt(var + eps)
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def fold_bn(weight: torch.Tensor, bias: torch.Tensor | None,
            bn: nn.BatchNorm1d | nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(w', b')`` (new tensors, float64 arithmetic, cast back to ``weight.dtype``)."""
    w = weight.detach().double()
    b = bias.detach().double() if bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(b)
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(b)
    mu = bn.running_mean.detach().double()
    var = bn.running_var.detach().double()
    g = gamma / torch.sqrt(var + bn.eps)
    w_f = w * g.reshape(-1, *([1] * (w.dim() - 1)))
    b_f = beta + (b - mu) * g
    return w_f.to(weight.dtype), b_f.to(weight.dtype)


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new ``nn.Conv2d`` (with bias) equal to ``bn(conv(x))`` with BN in eval mode."""
    out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                    conv.padding, conv.dilation, conv.groups, bias=True)
    w, b = fold_bn(conv.weight, conv.bias, bn)
    out.weight.copy_(w)
    out.bias.copy_(b)
    return out


@torch.no_grad()
def fold_linear_bn(linear: nn.Linear, bn: nn.BatchNorm1d) -> nn.Linear:
    """A new ``nn.Linear`` (with bias) equal to ``bn(linear(x))`` with BN in eval mode."""
    out = nn.Linear(linear.in_features, linear.out_features, bias=True)
    w, b = fold_bn(linear.weight, linear.bias, bn)
    out.weight.copy_(w)
    out.bias.copy_(b)
    return out
