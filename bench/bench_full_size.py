"""The seed papers' workloads at full size: the zoo's ResNet18 and VGG16 (W4A4, seed 1,
random weights and calibrated statistics, :mod:`cimstack.models.zoo`) exported to
QONNX and imported, on a batch of 16 seeded random images
(:func:`cimstack.data.random_images`).

ResNet18: the reference backend against torch's float forward (the plain float network
of bench_graph.py, :class:`FloatResNet`: the same layers with the dequantized weights,
no quantizers) and against the bound (the reference's lowered matrix products alone),
the emulated overlay against the reference. VGG16: the emulated overlay against the
reference. Each figure is the median of 5 rounds after one warm-up, the rounds
interleaving every run of one network so that all see the same machine load (the cores
are shared). Before timing, one verification per network compares the emulated overlay
with the reference on every node of the batch; its stage times (weight loads of the
row tiles and column slices included) are recorded.

    python bench/bench_full_size.py          # writes bench/results/full_size.json
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from cimstack.backends import open_backend
from cimstack.data import random_images
from cimstack.importer.qonnx_import import import_qonnx
from cimstack.models.zoo import MODELS, build, export
from cimstack.ref.network import quantize_input, run_network
from cimstack.verify.compare import verify

from bench_graph import FloatResNet, bundle_runs, lowered_products, macs_per_image
from common import interleaved_medians, record

BATCH = 16
REPEAT = 5          # rounds; ResNet18's emulated overlay takes several seconds a round
SEED = 1


def imported(name: str, folder: Path):
    """``(module, bundle)``: the zoo network ``name`` and its QONNX import."""
    model = build(name, seed=SEED)
    path = export(model, torch.zeros(MODELS[name].input_shape), folder / f"{name}.onnx")
    return model, import_qonnx(path)


def emu_check(bundle, x_int) -> dict:
    """One verification of the emulated overlay against the reference on every node:
    whether it is bit-exact, and its stage times (a fresh overlay, so only this run)."""
    emu = open_backend("emu")
    report = verify(bundle, x_int, emu.engine, "emu", stages=emu.stage_times)
    return {"bit_exact_every_node": report.ok, "nodes": len(report.layers),
            "stage_times": report.stages}


def resnet18(folder: Path) -> dict:
    model, bundle = imported("resnet18", folder)
    images = random_images(bundle, BATCH, seed=SEED)
    x_int = quantize_input(bundle, images)
    xt = torch.from_numpy(np.asarray(images, np.float32))
    float_model = FloatResNet(model).eval()
    mats = lowered_products(bundle, x_int)
    check = emu_check(bundle, x_int)
    emu = open_backend("emu")
    with torch.no_grad():
        t = interleaved_medians({**bundle_runs(bundle, x_int, emu, mats),
                                 "float": lambda: float_model(xt)}, repeat=REPEAT)
        float_pred = float_model(xt).argmax(1).numpy()
    ref_pred = run_network(bundle, x_int).predictions
    return {
        "macro_layers": len(bundle.macro_layers),
        "macs_per_image": macs_per_image(bundle),
        "reference_s": t["reference"], "reference_images_per_s": BATCH / t["reference"],
        "matmul_bound_s": t["bound"],
        "torch_float_s": t["float"], "torch_float_images_per_s": BATCH / t["float"],
        "emu_s": t["emu"], "emu_images_per_s": BATCH / t["emu"],
        "reference_over_torch_float": t["reference"] / t["float"],
        "matmul_bound_over_torch_float": t["bound"] / t["float"],
        "reference_over_matmul_bound": t["reference"] / t["bound"],
        "emu_over_reference": t["emu"] / t["reference"],
        "emu_vs_reference": check,
        "float_top1_agrees_with_reference": float(np.mean(float_pred == ref_pred)),
    }


def vgg16(folder: Path) -> dict:
    _, bundle = imported("vgg16", folder)
    x_int = quantize_input(bundle, random_images(bundle, BATCH, seed=SEED))
    check = emu_check(bundle, x_int)
    emu = open_backend("emu")
    t = interleaved_medians(bundle_runs(bundle, x_int, emu), repeat=REPEAT)
    return {
        "macro_layers": len(bundle.macro_layers),
        "macs_per_image": macs_per_image(bundle),
        "reference_s": t["reference"], "reference_images_per_s": BATCH / t["reference"],
        "emu_s": t["emu"], "emu_images_per_s": BATCH / t["emu"],
        "emu_over_reference": t["emu"] / t["reference"],
        "emu_vs_reference": check,
    }


def main() -> None:
    torch.set_num_threads(2)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        figs = {"resnet18": resnet18(Path(tmp)), "vgg16": vgg16(Path(tmp))}
    record("full_size", {
        "workload": f"zoo ResNet18 and VGG16 (W4A4, first conv and fc W8, seed {SEED}), "
                    f"imported from QONNX, {BATCH} random 3x32x32 images, one batch",
        "load_average_1_5_15min_at_start": list(load),
        "load_average_1_5_15min_at_end": list(os.getloadavg()),
        **figs,
        "targets": {"resnet18.reference_over_torch_float": 2.0,
                    "resnet18.emu_over_reference": 10.0},
    })


if __name__ == "__main__":
    main()
