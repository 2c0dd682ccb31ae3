"""The seed papers' workloads at full size: the zoo's VGG16 (14 macro layers, 313 M MACs
per image) and ResNet18 (21 macro layers, 555 M MACs, residual adds), W4A4, exported to
QONNX, imported, and run on random images through the reference and the emulated
overlay, bit for bit on every node. Their layers with K = 2304 and 4608 rows (more than
the dcim kernel's MAX_K = 1152) run as row tiles, and every tile and column slice shows
up as a weight load in the stage times. Timing at batch 16: ``bench/bench_full_size.py``.
"""

from __future__ import annotations

from itertools import pairwise

import pytest

import torch

from cimstack.backends import open_backend  # noqa: E402
from cimstack.data import random_images  # noqa: E402
from cimstack.hw import macros  # noqa: E402
from cimstack.importer.qonnx_import import import_qonnx  # noqa: E402
from cimstack.models.zoo import MODELS, build, export  # noqa: E402
from cimstack.overlay_shape import DCIM  # noqa: E402
from cimstack.ref.network import quantize_input  # noqa: E402
from cimstack.verify.compare import verify  # noqa: E402

IMAGES = 2
MAX_K, MAX_N = DCIM.capacity["MAX_K"], DCIM.capacity["MAX_N"]


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def imported(name: str, folder):
    """The zoo network ``name`` (seed 1, W4A4) exported to QONNX and imported."""
    path = export(build(name, seed=1), torch.zeros(MODELS[name].input_shape),
                  folder / f"{name}.onnx")
    return import_qonnx(path)


@pytest.mark.parametrize("name", ["vgg16", "resnet18"])
def test_full_size_network_runs_bit_exact_on_the_emulated_overlay(name, tmp_path,
                                                                   monkeypatch):
    bundle = imported(name, tmp_path)
    tiles = []                                   # (layer, first row, last row + 1)
    real_tile_layer = macros.tile_layer

    def spy(layer, start, stop):
        tiles.append((layer.name, start, stop))
        return real_tile_layer(layer, start, stop)
    monkeypatch.setattr(macros, "tile_layer", spy)

    backend = open_backend("emu")
    x = quantize_input(bundle, random_images(bundle, IMAGES, seed=1))
    report = verify(bundle, x, backend.engine, "emu", stages=backend.stage_times)
    assert report.ok, report.summary()
    assert [layer.name for layer in report.layers] == [layer.name for layer in bundle.layers]
    assert sum(layer.elements for layer in report.layers) > 5 * 10**5   # codes compared

    # every layer with K > MAX_K went through the row tiles, in order, covering all rows
    big = {layer.name: layer.k for layer in bundle.macro_layers if layer.k > MAX_K}
    assert sorted(set(big.values())) == [2304, 4608]
    for layer_name, k in big.items():
        spans = [(a, b) for n, a, b in tiles if n == layer_name]
        assert len(spans) == ceil_div(k, MAX_K)
        assert spans[0][0] == 0 and spans[-1][1] == k
        assert all(b == c for (_, b), (c, _) in pairwise(spans))
        assert all(b - a <= MAX_K for a, b in spans)
    assert {n for n, _, _ in tiles} == set(big)

    # each row tile of each column slice is one weight load (all vectors fit one batch)
    loads = sum(ceil_div(layer.k, MAX_K) * ceil_div(layer.channels, MAX_N)
                for layer in bundle.macro_layers)
    assert report.stages["weight_loads"] == loads > 2 * len(bundle.macro_layers)
    weights = sum(layer.weight.size for layer in bundle.macro_layers)
    assert report.stages["weight_load_bytes"] >= weights * 4 // 8   # 4-bit weights at least
