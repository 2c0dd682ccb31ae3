"""Spiking CNN for the event core: surrogate-gradient training with Brevitas weights.

``conv(2->c1, k)-IF-pool2 -> conv(c1->c2, k)-IF-pool2 -> flatten -> fc(10)-IF``, run
layer-first in every timestep; both convs take the same kernel size, stride and zero
padding (default 5, 1, 0). Weights are Brevitas ``QuantConv2d`` / ``QuantLinear``
with a per-tensor power-of-two (fixed-point) scale ``s = 2^-f`` of ``w_bits`` bits,
no bias. The integrate-and-fire neuron (:class:`IFNeuron`, our own, so that it fires
at ``v >= theta`` exactly as the event core) has threshold 1.0 and reset by
subtraction, with a fast-sigmoid surrogate gradient. Because the spikes are 0/1 and
the weights are integers times ``2^-f``, every membrane value is exact in float32:
the torch model and the integer export (``theta = 2^f``) give the same spikes as long
as the membranes stay inside the ``v_bits`` range. Pooling on spikes is max = OR.
The loss is cross-entropy on the output spike counts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError


class SpikeFn(torch.autograd.Function):
    """Heaviside ``v >= 0`` forward, fast-sigmoid derivative backward."""

    slope = 5.0

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / (1.0 + SpikeFn.slope * x.abs()) ** 2


class IFNeuron(nn.Module):
    """Integrate-and-fire, threshold 1, reset by subtraction (state passed explicitly)."""

    def __init__(self, theta: float = 1.0):
        super().__init__()
        self.theta = theta

    def forward(self, current, v):
        v = v + current
        s = SpikeFn.apply(v - self.theta)
        return s, v - s * self.theta


class SpikingCNN(nn.Module):
    def __init__(self, w_bits: int = 8, channels=(12, 32), ksize: int = 5,
                 input_shape=(2, 34, 34), n_classes: int = 10, stride: int = 1,
                 padding: int = 0):
        super().__init__()
        from brevitas.nn import QuantConv2d, QuantLinear
        from brevitas.quant import Int8WeightPerTensorFixedPoint

        from ..overlay_shape import SNN
        from ..ref.snn import MAX_PAD, MAX_STRIDE, conv_out
        if not 2 <= w_bits <= 16:
            raise ConfigError(f"w_bits = {w_bits}: training supports 2..16 bits")
        k_max = SNN.capacity["MAX_KSIZE"]
        if not (1 <= ksize <= k_max and 1 <= stride <= MAX_STRIDE and 0 <= padding <= MAX_PAD):
            raise ConfigError(f"ksize {ksize}, stride {stride}, padding {padding}: the event "
                              f"core takes ksize 1..{k_max}, stride 1..{MAX_STRIDE}, "
                              f"padding 0..{MAX_PAD}")
        q = dict(weight_quant=Int8WeightPerTensorFixedPoint, weight_bit_width=w_bits, bias=False)
        c, h, w = input_shape
        c1, c2 = channels
        conv = dict(stride=stride, padding=padding)
        self.conv1 = QuantConv2d(c, c1, ksize, **conv, **q)
        self.conv2 = QuantConv2d(c1, c2, ksize, **conv, **q)

        def out(size):                   # conv, then 2x2 pooling (floor)
            return conv_out(size, ksize, padding, stride) if size + 2 * padding >= ksize \
                else 0
        o1 = (out(h), out(w))
        p1 = (o1[0] // 2, o1[1] // 2)
        o2 = (out(p1[0]), out(p1[1]))
        p2 = (o2[0] // 2, o2[1] // 2)
        if min(p2) < 1:
            raise ConfigError(f"input {h}x{w} with ksize {ksize}, stride {stride}, padding "
                              f"{padding}: the second pooling leaves {p2[0]}x{p2[1]} outputs; "
                              "use a smaller kernel or stride, or more padding")
        self.fc = QuantLinear(c2 * p2[0] * p2[1], n_classes, **q)
        self.if1, self.if2, self.if3 = IFNeuron(), IFNeuron(), IFNeuron()
        self.pool = nn.MaxPool2d(2)
        self.w_bits, self.channels, self.ksize = w_bits, tuple(channels), ksize
        self.stride, self.padding = stride, padding
        self.input_shape = tuple(input_shape)
        self.shapes = [(c1, *o1), (c1, *p1), (c2, *o2), (c2, *p2), (n_classes,)]

    @staticmethod
    def _if_over_time(cur, neuron):
        """IF neuron over currents [T, B, ...] -> spikes [T, B, ...]."""
        v = torch.zeros_like(cur[0])
        out = []
        for step in range(cur.shape[0]):
            s, v = neuron(cur[step], v)
            out.append(s)
        return torch.stack(out)

    def forward(self, x):
        """x: [B, T, C, H, W] float 0/1 -> (spike counts [B, 10], output spikes [T, B, 10]).

        Layer by layer over all timesteps (no feedback, so the same spikes as
        layer-first per timestep); each layer's currents in one batched call."""
        import torch.nn.functional as F
        b, t = x.shape[:2]
        xs = x.transpose(0, 1).reshape(t * b, *x.shape[2:])
        conv = dict(stride=self.stride, padding=self.padding)
        c1 = F.conv2d(xs, self.conv1.quant_weight().value, **conv)
        s1 = self._if_over_time(c1.reshape(t, b, *c1.shape[1:]), self.if1)
        p1 = self.pool(s1.reshape(t * b, *s1.shape[2:]))
        c2 = F.conv2d(p1, self.conv2.quant_weight().value, **conv)
        s2 = self._if_over_time(c2.reshape(t, b, *c2.shape[1:]), self.if2)
        p2 = self.pool(s2.reshape(t * b, *s2.shape[2:])).flatten(1)
        c3 = F.linear(p2, self.fc.quant_weight().value)
        out = self._if_over_time(c3.reshape(t, b, -1), self.if3)
        return out.sum(0), out


@dataclass
class SnnTrainResult:
    model: SpikingCNN
    n_steps: int
    torch_acc: float
    net: object                   # exported SnnNet (integer)
    ref_acc: float
    history: list = field(default_factory=list)
    seconds: float = 0.0


def _frames(split: str, n_steps: int, limit, seed: int, data=None, progress=None):
    from ..events.datasets import load_event_data
    ds = load_event_data(data, split, limit, seed)
    return ds.frames(n_steps), ds.labels


def train_snn(n_steps: int = 16, epochs: int = 8, w_bits: int = 8, v_bits: int = 16,
              channels=(12, 32), batch: int = 32, lr: float = 3e-3, seed: int = 0,
              limit_train: int | None = None, limit_test: int | None = None, data=None,
              progress: bool = False, log=print, ksize: int = 5, stride: int = 1,
              padding: int = 0) -> SnnTrainResult:
    """Train on the built-in event digits (or ``data``: N-MNIST folder), export to the
    integer network and evaluate it with the integer reference. ``ksize``, ``stride``
    and ``padding`` are both convs' (:class:`SpikingCNN`)."""
    from ..ref.snn import run_snn
    from .snn_export import export_snn
    start = time.perf_counter()
    torch.manual_seed(seed)
    x_tr, y_tr = _frames("train", n_steps, limit_train, seed, data)
    x_te, y_te = _frames("test", n_steps, limit_test, seed, data)
    n_classes = int(max(y_tr.max(), y_te.max()) + 1) if len(y_tr) else 10
    model = SpikingCNN(w_bits, channels, ksize, input_shape=x_tr.shape[2:],
                       n_classes=max(10, n_classes), stride=stride, padding=padding)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs))
    xt = torch.from_numpy(x_tr)
    yt = torch.from_numpy(y_tr)
    gen = torch.Generator().manual_seed(seed)
    history = []
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        for i in range(0, len(xt), batch):
            idx = perm[i:i + batch]
            counts, _ = model(xt[idx].float())
            loss = nn.functional.cross_entropy(counts, yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((counts.argmax(1) == yt[idx]).sum())
            total += len(idx)
        sched.step()
        history.append({"epoch": ep + 1, "loss": loss_sum / total, "train_acc": correct / total})
        if progress:
            log(f"epoch {ep + 1}/{epochs}: loss {loss_sum / total:.3f}, "
                f"train acc {correct / total:.3f}")
    model.eval()
    with torch.no_grad():
        preds = []
        for i in range(0, len(x_te), 128):
            counts, _ = model(torch.from_numpy(x_te[i:i + 128]).float())
            preds.append(counts.argmax(1).numpy())
    torch_acc = float((np.concatenate(preds) == y_te).mean())
    net = export_snn(model, v_bits=v_bits, name="event-digits-snn",
                     meta={"n_steps": n_steps, "torch_test_acc": torch_acc, "seed": seed})
    res = run_snn(net, x_te)
    ref_acc = float((res.predictions == y_te).mean())
    net.meta["ref_test_acc"] = ref_acc
    return SnnTrainResult(model, n_steps, torch_acc, net, ref_acc, history,
                          time.perf_counter() - start)
