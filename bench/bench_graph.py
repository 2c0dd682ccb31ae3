"""An imported graph network on the reference backend against torch, and the emulated
overlay against the reference, in one run.

The network is the CIFAR-shaped ResNet-8 of the QONNX import tests
(``tests/qonnx_models.py``: Brevitas ``QuantBasicBlock`` blocks, residual adds,
4-bit activations, seeded random weights), exported to QONNX and imported into a
bundle; the batch is 64 seeded random images (:func:`cimstack.data.random_images`).
Each figure is the median of 11 rounds after one warm-up, the rounds interleaving every
run so that all see the same machine load (the cores are shared). Torch runs
the same network twice: the Brevitas module in eval mode (fake quantization on every
tensor) and a plain float network with the same layers and the dequantized weights
(no quantizers): that one is "torch's float forward", as in bench_reference.py. The
bound is the reference's matrix products alone: each macro layer's lowered inputs and
weights already in the float type of its exact product (float32 below 2^24), one BLAS
product per layer, without lowering, conversion, requantization, adds and pooling.

    python bench/bench_graph.py               # writes bench/results/graph.json
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cimstack.backends import open_backend
from cimstack.bundle import INPUT
from cimstack.data import random_images
from cimstack.importer.qonnx_import import import_qonnx
from cimstack.ref.dcim import product_type
from cimstack.ref.lowering import lower_conv
from cimstack.ref.network import quantize_input, run_network

from common import interleaved_medians, record

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from qonnx_models import export, resnet8  # noqa: E402  (the tests' network builders)

BATCH = 64
REPEAT = 11         # rounds; the overlay takes about 0.5 s a round


def lowered_products(bundle, x_int: np.ndarray) -> list:
    """``(x_mat, w_mat)`` of every macro layer on this batch: its real lowered input
    (codes plus the input format's offset, as the executor passes them) and its weight
    matrix, both in the float type of the layer's exact product."""
    acts = {INPUT: x_int, **run_network(bundle, x_int, keep_activations=True).activations}
    formats, mats = bundle.formats(), []
    for layer in bundle.macro_layers:
        x, offset = acts[layer.inputs[0]], formats[layer.inputs[0]].offset
        u = x.astype(np.int16) + offset if offset else x
        x_mat = lower_conv(u, layer, offset) if layer.op == "conv2d" else u.reshape(len(u), -1)
        dtype = product_type(layer.k, layer.w_bits, layer.x_bits)
        mats.append((x_mat.astype(dtype), layer.matrix().astype(dtype)))
    return mats


def macs_per_image(bundle) -> int:
    """Multiply-accumulates of the macro layers per image."""
    return sum(layer.vectors * layer.k * layer.channels for layer in bundle.macro_layers)


def bundle_runs(bundle, x_int: np.ndarray, emu, mats: list | None = None) -> dict:
    """The timed runs of a bundle on ``x_int``: the reference, the emulated overlay
    (``emu``, an open backend) and, given the lowered products ``mats``
    (:func:`lowered_products`), their matrix products alone (the bound)."""
    runs = {"reference": lambda: run_network(bundle, x_int),
            "emu": lambda: run_network(bundle, x_int, engine=emu.engine)}
    if mats is not None:
        runs["bound"] = lambda: [x_mat @ w_mat for x_mat, w_mat in mats]
    return runs


def _conv(qconv) -> nn.Conv2d:
    """A plain Conv2d with the shape and the dequantized weights of a QuantConv2d."""
    conv = nn.Conv2d(qconv.in_channels, qconv.out_channels, qconv.kernel_size,
                     stride=qconv.stride, padding=qconv.padding, bias=False)
    conv.weight.data.copy_(qconv.quant_weight().value)
    return conv


class FloatResNet(nn.Module):
    """A zoo :class:`~cimstack.models.zoo.ResNet` (the ResNet-8 of
    ``tests/qonnx_models.py``, ResNet18) without quantizers: the same convs (dequantized
    weights), batch norms, ReLUs, residual adds, global average pool and linear layer,
    in float32."""

    def __init__(self, q):
        super().__init__()
        self.stem, self.bn = _conv(q.stem), q.bn
        self.blocks = nn.ModuleList()
        for qb in q.blocks:
            block = nn.Module()
            block.conv1, block.bn1 = _conv(qb.conv1), qb.bn1
            block.conv2, block.bn2 = _conv(qb.conv2), qb.bn2
            block.short = (nn.Sequential(_conv(qb.downsample[0]), qb.downsample[1])
                           if len(qb.downsample) else None)
            self.blocks.append(block)
        self.fc = nn.Linear(q.fc.in_features, q.fc.out_features)
        self.fc.weight.data.copy_(q.fc.quant_weight().value)
        self.fc.bias.data.copy_(q.fc.bias)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(x)))
        for b in self.blocks:
            out = torch.relu(b.bn1(b.conv1(x)))
            out = torch.relu(b.bn2(b.conv2(out)))
            short = x if b.short is None else torch.relu(b.short(x))
            x = torch.relu(out + short)
        x = nn.functional.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))


def main() -> None:
    torch.set_num_threads(2)
    model = resnet8()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = import_qonnx(export(model, torch.zeros(1, 3, 32, 32), Path(tmp) / "resnet8.onnx"))
    images = random_images(bundle, BATCH)
    x_int = quantize_input(bundle, images)
    xt = torch.from_numpy(np.asarray(images, np.float32))
    float_model = FloatResNet(model).eval()
    macs = macs_per_image(bundle)

    mats = lowered_products(bundle, x_int)

    emu = open_backend("emu")
    load = os.getloadavg()[0]
    with torch.no_grad():
        t = interleaved_medians({**bundle_runs(bundle, x_int, emu, mats),
                                 "float": lambda: float_model(xt),
                                 "brevitas": lambda: model(xt)}, repeat=REPEAT)
    t_ref, t_bound, t_float, t_brevitas, t_emu = (
        t[k] for k in ("reference", "bound", "float", "brevitas", "emu"))

    ref_logits = run_network(bundle, x_int).logits
    emu_equal = bool((run_network(bundle, x_int, engine=emu.engine).logits == ref_logits).all())
    with torch.no_grad():
        float_pred = float_model(xt).argmax(1).numpy()
    figs = {
        "workload": f"ResNet-8 (tests/qonnx_models.py, W4A4, stem and fc W8), imported "
                    f"from QONNX, {BATCH} random 3x32x32 images, one batch",
        "load_average_1min_at_start": load,
        "macro_layers": len(bundle.macro_layers),
        "macs_per_image": macs,
        "reference_s": t_ref, "reference_images_per_s": BATCH / t_ref,
        "reference_gmac_per_s": macs * BATCH / t_ref / 1e9,
        "matmul_bound_s": t_bound,
        "torch_float_s": t_float, "torch_float_images_per_s": BATCH / t_float,
        "torch_brevitas_s": t_brevitas, "torch_brevitas_images_per_s": BATCH / t_brevitas,
        "emu_s": t_emu, "emu_images_per_s": BATCH / t_emu,
        "reference_over_torch_float": t_ref / t_float,
        "matmul_bound_over_torch_float": t_bound / t_float,
        "reference_over_matmul_bound": t_ref / t_bound,
        "reference_over_torch_brevitas": t_ref / t_brevitas,
        "emu_over_reference": t_emu / t_ref,
        "emu_equals_reference": emu_equal,
        "float_top1_agrees_with_reference": float(np.mean(float_pred == ref_logits.argmax(1))),
        "targets": {"reference_over_torch_float": 2.0, "emu_over_reference": 10.0},
    }
    record("graph", figs)


if __name__ == "__main__":
    main()
