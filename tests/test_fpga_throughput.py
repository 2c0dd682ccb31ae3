"""The overlay keeps up with its stream (issue 13, item 4): the modelled throughput
(:func:`cimstack.cost.fpga_cost`) of the digits CNN and of FINN's CNV on the PYNQ-Z2 at
100 MHz is at least half the AXI DMA bound, at batch 1 and at the demo's batch (the
digits test set), and the overlay's resource estimate still fits the xc7z020. Both
checks fail if the kernels' cycle model or their hardware estimate regress."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from conftest import digits_like_bundle
from rich.console import Console

from cimstack.cost import fpga_cost, network_cost
from cimstack.cost.cli import macro_tables
from cimstack.hw.resources import estimate
from cimstack.overlay_shape import overlay_shape
from cimstack.quant.data import load_digits_split

DEMO_BATCH = len(load_digits_split().x_test)   # the demo costs the overlay at this batch


@pytest.fixture(scope="module")
def cnv():
    """FINN's CNV (W4A4 build of the zoo) imported from its QONNX export."""
    import torch
    from cimstack.importer.qonnx_import import import_qonnx
    from cimstack.models.zoo import MODELS, build, export
    with tempfile.TemporaryDirectory() as tmp:
        path = export(build("cnv", seed=1), torch.zeros(MODELS["cnv"].input_shape),
                      Path(tmp) / "cnv.onnx")
        return import_qonnx(path)


def digits():
    """The demo's network: W8A8, half of the blocks pruned, exact read-out."""
    return digits_like_bundle(w_bits=(8, 8, 8), x_bits=(8, 8, 8), sparsity=0.5)


@pytest.mark.parametrize("batch", [1, DEMO_BATCH])
def test_digits_cnn_reaches_half_the_dma_bound(batch):
    f = fpga_cost(digits(), batch=batch)
    assert f["images_per_s"] >= 0.5 * f["dma_bound_images_per_s"], f


@pytest.mark.parametrize("batch", [1, DEMO_BATCH])
def test_cnv_reaches_half_the_dma_bound(cnv, batch):
    f = fpga_cost(cnv, batch=batch)
    assert f["images_per_s"] >= 0.5 * f["dma_bound_images_per_s"], f


def test_the_overlay_still_fits_the_board():
    est = estimate(overlay_shape("pynq-z2"))
    assert est.fits, est.fraction()
    assert not est.warnings


def test_the_published_cnv_figure_is_printed_beside_the_model():
    bundle = digits()
    tables = macro_tables(network_cost(bundle).to_dict(), fpga_cost(bundle))
    console = Console(record=True, width=200)
    for table in tables:
        console.print(table)
    text = console.export_text()
    assert "published (BNN-PYNQ, CNV-W1A1, PYNQ-Z2)" in text and "9,150 images/s" in text
